// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "detail/error_record.hpp"
#include "detail/new_job.hpp"
#include "error.hpp"
#include "job.hpp"
#include "options.hpp"
#include "scheduler.hpp"
#include "transaction.hpp"
#include "unique.hpp"

namespace jobsched {

/// Adds jobs from many threads with group commit: each add returns once its job is
/// committed (with Synchronous::full, on disk), and the adds of threads waiting at the same
/// time share one commit, so that many threads reach many times the rate of one commit per
/// add. One connection and one committing thread of its own, which holds the write lock
/// while it gathers a batch (at most 0.2 ms more than the inserts take).
///
/// Thread safety: add() may be called from any number of threads at once.
class Adder {
 public:
  /// Opens the file as Scheduler::open does and starts the committing thread. Throws what
  /// Scheduler::open throws, and InvalidArgumentError for an in-memory database.
  explicit Adder(const std::string& path, Options options = {})
      : scheduler_(Scheduler::open(path, std::move(options))) {
    if (scheduler_.file().empty()) {
      detail::throw_invalid("an Adder needs a database file; '" + path +
                            "' is in memory, a separate database for each connection");
    }
    committer_ = std::thread([this] { run(); });
  }

  Adder(const Adder&) = delete;
  Adder& operator=(const Adder&) = delete;

  /// Commits every add already made, then stops. Never throws.
  ~Adder() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (committer_.joinable())
      committer_.join();
  }

  /// Adds a job and returns it as stored, once its commit is done. A bad job is refused with
  /// InvalidArgumentError before anything is written (the others go on); a commit that fails
  /// (busy, I/O) throws its error from every add it carried, and none of them is added. A
  /// unique key's conflict (JobOptions::unique) throws UniqueConflictError from its add alone.
  Job add(Payload data, JobOptions options = {}) {
    // Checked here, in the caller's thread, so that a bad job fails alone; created now, not
    // when its commit comes.
    if (!options.created_at)
      options.created_at = scheduler_.now();
    detail::checked_new_job(data, options, *options.created_at);
    Pending pending{NewJob{std::move(data), std::move(options)}, {}, {}, false};
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_)
        detail::throw_invalid("the Adder is stopping; it takes no more jobs");
      pending_.push_back(&pending);
    }
    changed_.notify_one();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      answered_.wait(lock, [&] { return pending.answered; });
    }
    // Thrown afresh in this thread, from values: no exception object is shared with another.
    if (pending.error)
      pending.error->raise();
    return std::move(*pending.added);
  }

  /// How many transactions it committed so far (each carried one add or more).
  std::int64_t commits() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return commits_;
  }

 private:
  // An add waiting for its commit, on its caller's stack until answered.
  struct Pending {
    NewJob job;
    std::optional<Job> added;                 // guarded by mutex_, with answered
    std::optional<detail::ErrorRecord> error;  // guarded by mutex_, with answered
    bool answered = false;                     // guarded by mutex_
  };

  // The committing thread: opens a transaction, inserts every add waiting, and goes on
  // inserting adds as they come until the batch is as big as the last one (their threads,
  // answered by the last commit, come back one by one) or a moment (far less than a commit)
  // has passed; then commits them together and answers each. Inserting while the threads
  // come back, rather than after they all did, keeps their return off the commit's path.
  void run() {
    std::size_t last_batch = 1;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty())
        return;  // stopping, nothing left
      std::vector<Pending*> batch;
      lock.unlock();
      try {
        std::vector<Job> added;
        std::vector<std::optional<detail::ErrorRecord>> refused;
        Transaction transaction = scheduler_.transaction();
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        lock.lock();
        for (;;) {
          const std::size_t from = batch.size();
          batch.insert(batch.end(), pending_.begin(), pending_.end());
          pending_.clear();
          lock.unlock();
          insert(batch, from, added, refused);
          lock.lock();
          if (batch.size() >= last_batch || stopping_ ||
              !changed_.wait_until(lock, give_up, [&] { return !pending_.empty() || stopping_; }))
            break;
        }
        lock.unlock();
        transaction.commit();
        lock.lock();
        // Counted before any add returns, so that its caller sees its own commit counted.
        ++commits_;
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (refused[i])
            batch[i]->error = std::move(refused[i]);
          else
            batch[i]->added = std::move(added[i]);
          batch[i]->answered = true;
        }
      } catch (...) {
        // Rolled back: every add of the batch fails with the error, none is added.
        const detail::ErrorRecord error = detail::ErrorRecord::current();
        if (!lock.owns_lock())
          lock.lock();
        for (Pending* pending : batch) {
          pending->error = error;
          pending->answered = true;
        }
      }
      answered_.notify_all();
      last_batch = std::max<std::size_t>(batch.size(), 1);
    }
  }

  // Inserts the jobs of batch[from...] in the open transaction, adding what each became to
  // `added` and `refused`.
  void insert(std::vector<Pending*>& batch, std::size_t from, std::vector<Job>& added,
              std::vector<std::optional<detail::ErrorRecord>>& refused) {
    std::vector<NewJob> jobs;
    jobs.reserve(batch.size() - from);
    for (std::size_t i = from; i < batch.size(); ++i)
      jobs.push_back(std::move(batch[i]->job));
    std::vector<std::optional<detail::ErrorRecord>> these(jobs.size());
    std::vector<Job> stored = add_all(std::move(jobs), these);
    for (std::size_t i = 0; i < stored.size(); ++i) {
      added.push_back(std::move(stored[i]));
      refused.push_back(std::move(these[i]));
    }
  }

  // The jobs, in the transaction open. When a unique key's conflict may throw (OnConflict::fail or
  // replace), each add goes in a savepoint of its own, so that a conflict refuses that add
  // alone (its error in `refused`).
  std::vector<Job> add_all(std::vector<NewJob> jobs,
                           std::vector<std::optional<detail::ErrorRecord>>& refused) {
    const bool may_conflict = std::any_of(jobs.begin(), jobs.end(), [](const NewJob& job) {
      return job.options.unique && job.options.unique->on_conflict != OnConflict::return_existing;
    });
    if (!may_conflict)
      return scheduler_.add_jobs(std::move(jobs));
    std::vector<Job> added(jobs.size());
    Transaction transaction = scheduler_.transaction();
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      try {
        added[i] = scheduler_.add_job(std::move(jobs[i].data), jobs[i].options);
      } catch (const UniqueConflictError&) {
        refused[i] = detail::ErrorRecord::current();
      }
    }
    transaction.commit();
    return added;
  }

  Scheduler scheduler_;  // used by the committing thread only, and now() by add()
  mutable std::mutex mutex_;
  std::condition_variable changed_;   // for the committing thread
  std::condition_variable answered_;  // for the callers of add()
  std::vector<Pending*> pending_;     // guarded by mutex_
  std::int64_t commits_ = 0;      // guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
  std::thread committer_;
};

}  // namespace jobsched
