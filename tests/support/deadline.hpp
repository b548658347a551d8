// SPDX-License-Identifier: MIT
#pragma once

// Bounds for every wait in the tests. A wait that reaches its bound fails the test and says
// what it waited for, instead of stalling the suite until CTest's TIMEOUT kills it without a
// word (tests/test_time_limits.cpp adds one more bound around each whole test case).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "../catch.hpp"

namespace jobsched_test {

/// How much longer waits may take than in a plain build: sanitizer builds run several
/// times slower. JOBSCHED_TEST_TIME_SCALE (a positive number) stretches every bound
/// further, for a slow or crowded machine.
inline double time_scale() {
  static const double scale = [] {
    double value = 1.0;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    value = 3.0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    value = 3.0;
#endif
#endif
    if (const char* text = std::getenv("JOBSCHED_TEST_TIME_SCALE")) {
      const double factor = std::strtod(text, nullptr);
      if (factor > 0)
        value *= factor;
    }
    return value;
  }();
  return scale;
}

/// The moment by which `what` must have happened: `limit` from now, stretched by
/// time_scale().
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline(std::chrono::duration<double> limit, std::string what)
      : limit_(limit * time_scale()),
        what_(std::move(what)),
        end_(Clock::now() + std::chrono::duration_cast<Clock::duration>(limit_)) {}

  bool passed() const { return Clock::now() >= end_; }

  /// The time left, never negative.
  Clock::duration remaining() const {
    const Clock::duration left = end_ - Clock::now();
    return left > Clock::duration::zero() ? left : Clock::duration::zero();
  }

  /// The time left in milliseconds for poll(): at least 0, at most `cap`, so that a caller
  /// polling in a loop looks at the clock again now and then.
  int poll_ms(int cap = 100) const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(remaining()).count();
    return static_cast<int>(left < cap ? left : cap);
  }

  const std::string& what() const { return what_; }

  /// The failure message: what did not happen, and within how long.
  std::string failure() const {
    std::ostringstream text;
    text << "gave up waiting: " << what_ << " did not happen within " << limit_.count() << " s";
    return text.str();
  }

 private:
  std::chrono::duration<double> limit_;
  std::string what_;
  Clock::time_point end_;
};

/// Calls `condition` every few milliseconds until it holds (true) or the deadline passes
/// (false, after one last look).
template <class Condition>
bool wait_until(const Deadline& deadline, Condition condition) {
  while (!condition()) {
    if (deadline.passed())
      return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// Fails the test, naming the wait, unless `condition` holds before the deadline.
template <class Condition>
void require_eventually(const Deadline& deadline, Condition condition) {
  if (!wait_until(deadline, condition))
    FAIL(deadline.failure());
}

/// Ends the test process with `message` on stderr: for a thread that is stuck, which can
/// neither be stopped nor left running (it uses the test's stack). Catch reports the abort
/// as a failure of the running test case.
[[noreturn]] inline void abort_test(const std::string& message) {
  std::fprintf(stderr, "\njobsched tests: %s; aborting the test process\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

/// A thread that can be joined with a bound, which std::thread cannot. What the body throws
/// is thrown again by join(), in the joining thread.
class BoundedThread {
 public:
  template <class Body>
  explicit BoundedThread(Body body) {
    std::packaged_task<void()> task(std::move(body));
    finished_ = task.get_future();
    thread_ = std::thread(std::move(task));
  }
  BoundedThread(BoundedThread&&) noexcept = default;
  BoundedThread& operator=(BoundedThread&&) = delete;
  BoundedThread(const BoundedThread&) = delete;
  BoundedThread& operator=(const BoundedThread&) = delete;

  /// A thread left unjoined (the test failed early) gets a bound of its own too.
  ~BoundedThread() {
    if (thread_.joinable()) {
      wait(Deadline(std::chrono::seconds(30), "a thread of a failed test to finish"));
      thread_.join();
    }
  }

  /// Waits for the body to return; aborts the test naming the wait when it does not in time.
  void join(const Deadline& deadline) {
    wait(deadline);
    thread_.join();
    finished_.get();
  }

 private:
  void wait(const Deadline& deadline) {
    if (finished_.wait_for(deadline.remaining()) != std::future_status::ready)
      abort_test(deadline.failure());
  }

  std::future<void> finished_;
  std::thread thread_;
};

}  // namespace jobsched_test
