// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace jobsched::detail {

// Process-wide: wakes the workers of a database file as soon as this process adds a job to
// it. Adding costs one atomic load while no worker runs in the process.
class WakeHub {
 public:
  static WakeHub& instance() {
    // Never destroyed, so that a thread still waiting at exit never touches a dead hub.
    static WakeHub* const hub = new WakeHub;
    return *hub;
  }

  // Called after a job was committed to `file` (an absolute path; empty for memory).
  void job_added(const std::string& file) {
    if (file.empty() || listeners_.load(std::memory_order_acquire) == 0)
      return;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      ++generations_[file];
    }
    changed_.notify_all();
  }

  // Wakes every waiter, to have it look at its stop flag.
  void wake_all() {
    { const std::lock_guard<std::mutex> lock(mutex_); }
    changed_.notify_all();
  }

  // How many jobs this process added to `file` so far; wait_until compares against it.
  std::uint64_t generation(const std::string& file) {
    const std::lock_guard<std::mutex> lock(mutex_);
    return generations_[file];
  }

  // Waits until a job is added to `file` after `seen`, `stop()` is true, or the deadline.
  template <class Deadline, class Stop>
  void wait_until(const std::string& file, std::uint64_t seen, Deadline deadline, Stop stop) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_until(lock, deadline, [&] { return generations_[file] != seen || stop(); });
  }

  // While one of these lives, job_added notifies. A worker holds one for its lifetime,
  // so no add can slip between its look at the database and its wait.
  class Listener {
   public:
    Listener() { instance().listeners_.fetch_add(1, std::memory_order_acq_rel); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    ~Listener() { instance().listeners_.fetch_sub(1, std::memory_order_acq_rel); }
  };

 private:
  WakeHub() = default;
  std::atomic<int> listeners_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_map<std::string, std::uint64_t> generations_;
};

}  // namespace jobsched::detail
