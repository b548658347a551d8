// SPDX-License-Identifier: MIT
#pragma once

/// jobsched::testing: helpers for unit-testing code that uses jobsched, as Oban.Testing and
/// rivertest do for theirs. Include <jobsched/testing.hpp> in tests; jobsched.hpp does not.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claim.hpp"
#include "detail/sqlite.hpp"
#include "job.hpp"
#include "options.hpp"
#include "payload.hpp"
#include "scheduler.hpp"
#include "time.hpp"

namespace jobsched::testing {

/// A clock the test sets and advances by hand. Copies share one time, so every scheduler
/// and Worker opened with options() (or clock()) reads the same moment; reads and writes
/// are safe from any thread. A sleeping Worker does not notice the clock moving: it wakes
/// at the next commit to its file, or after the real time it meant to sleep.
class ManualClock {
 public:
  /// Starts at `start`: by default the system time when constructed, then frozen.
  explicit ManualClock(TimePoint start = system_now())
      : time_(std::make_shared<std::atomic<double>>(to_unix_seconds(start))) {}

  /// The clock's time.
  TimePoint now() const { return from_unix_seconds(time_->load(std::memory_order_acquire)); }
  /// Moves the clock to `time`, forward or back.
  void set(TimePoint time) { time_->store(to_unix_seconds(time), std::memory_order_release); }
  /// Moves the clock by `by` (negative: back).
  void advance(Seconds by) {
    double seen = time_->load(std::memory_order_acquire);
    while (!time_->compare_exchange_weak(seen, seen + by.count(), std::memory_order_acq_rel)) {
    }
  }

  /// A Clock reading this clock's time, for Options::clock.
  Clock clock() const {
    return [time = time_] { return from_unix_seconds(time->load(std::memory_order_acquire)); };
  }
  /// `base` with its clock replaced by this one: `Scheduler::open(path, clock.options())`.
  Options options(Options base = {}) const {
    base.clock = clock();
    return base;
  }

 private:
  std::shared_ptr<std::atomic<double>> time_;
};

/// How drain runs jobs.
struct DrainOptions {
  /// Each claim's lease. There is no heartbeat: a handler that moves the clock past its
  /// lease loses the claim (counted in DrainResult::stale).
  Seconds lease{60};
  /// The queues to run ("" is the default queue); empty: every queue.
  std::vector<std::string> queues;
  /// drain stops after running this many jobs, so that a handler that keeps adding due jobs
  /// cannot loop forever.
  std::size_t max_jobs = 10'000;
};

/// What drain did.
struct DrainResult {
  /// Handlers that returned, their jobs completed.
  std::int64_t completed = 0;
  /// Handlers that threw, their attempts recorded as failed (the job retries after its
  /// backoff, or is failed for good after its last attempt).
  std::int64_t failed = 0;
  /// Handlers whose claim went stale before they finished (the job was cancelled, deleted or
  /// its lease ran out), so their result was not recorded.
  std::int64_t stale = 0;
  /// The ids of the jobs run, in the order they ran.
  std::vector<std::int64_t> ran;
  /// True when drain stopped at DrainOptions::max_jobs with jobs still due.
  bool stopped_at_max_jobs = false;
};

/// Runs every job due at the scheduler's now (its clock), one at a time on the calling
/// thread, in claim order (priority, then start, then id), as a Worker would: claims it,
/// runs `handler`, completes the job when the handler returns and fails the attempt with the
/// exception's message when it throws. Repeats until nothing is due, so jobs the handler
/// adds due now run too. Jobs due later, such as retries after their backoff and the next
/// firings of schedules, do not run: advance the clock and drain again. What the scheduler
/// throws (BusyError, InvalidArgumentError for bad options) propagates.
inline DrainResult drain(Scheduler& scheduler, const std::function<void(const Job&)>& handler,
                         const DrainOptions& options = {}) {
  DrainResult result;
  auto claim = [&]() -> std::optional<ClaimedJob> {
    if (options.queues.empty())
      return scheduler.claim_next_job(options.lease);
    return scheduler.claim_next_job(options.lease, options.queues);
  };
  while (result.ran.size() < options.max_jobs) {
    std::optional<ClaimedJob> claimed = claim();
    if (!claimed)
      return result;
    result.ran.push_back(claimed->job.id);
    std::optional<std::string> error;
    try {
      handler(claimed->job);
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    const bool recorded =
        error ? scheduler.fail(claimed->claim, *error) : scheduler.complete(claimed->claim);
    if (!recorded) {
      ++result.stale;
    } else if (error) {
      ++result.failed;
    } else {
      ++result.completed;
    }
  }
  const std::optional<JobDelay> next = options.queues.empty()
                                           ? scheduler.seconds_until_next_job()
                                           : scheduler.seconds_until_next_job(options.queues);
  result.stopped_at_max_jobs = next && next->delay.count() <= 0.0;
  return result;
}

namespace detail {

// The finders' SQL, in one place. They read ids only, then get_job for each, so that every
// Job is exactly what the library shows.
struct FinderSql {
  static constexpr const char* all_ids = "SELECT id FROM job ORDER BY id";
  static constexpr const char* ids_in_queue = "SELECT id FROM job WHERE queue = ?1 ORDER BY id";
  static constexpr const char* ids_with_key =
      "SELECT id FROM job WHERE unique_key = ?1 ORDER BY id";
};

inline std::vector<Job> jobs_by_ids(Scheduler& scheduler, const char* sql,
                                    std::optional<std::string_view> queue,
                                    std::optional<TimePoint> now) {
  const TimePoint at = now ? *now : scheduler.now();
  std::vector<std::int64_t> ids;
  {
    const jobsched::detail::Statement statement(scheduler.handle(), sql, 0);
    jobsched::detail::Run run(statement);
    if (queue)
      run.bind_text(1, *queue);
    while (run.step())
      ids.push_back(run.column_int64(0));
  }
  std::vector<Job> jobs;
  jobs.reserve(ids.size());
  for (const std::int64_t id : ids) {
    if (std::optional<Job> job = scheduler.get_job(id, at))
      jobs.push_back(std::move(*job));
  }
  return jobs;
}

}  // namespace detail

/// Every job, whatever its state at `now`, by id.
inline std::vector<Job> all_jobs(Scheduler& scheduler,
                                 std::optional<TimePoint> now = std::nullopt) {
  return detail::jobs_by_ids(scheduler, detail::FinderSql::all_ids, std::nullopt, now);
}

/// Every job in `queue` ("" is the default queue), whatever its state at `now`, by id.
inline std::vector<Job> jobs_in_queue(Scheduler& scheduler, std::string_view queue,
                                      std::optional<TimePoint> now = std::nullopt) {
  return detail::jobs_by_ids(scheduler, detail::FinderSql::ids_in_queue, queue, now);
}

/// Every job with the unique key `key` (JobOptions::unique), whatever its state at `now`
/// (open, expired, completed, failed), by id.
inline std::vector<Job> jobs_with_key(Scheduler& scheduler, std::string_view key,
                                      std::optional<TimePoint> now = std::nullopt) {
  return detail::jobs_by_ids(scheduler, detail::FinderSql::ids_with_key, key, now);
}

/// Every job whose payload equals `data` (bytes and storage class), whatever its state at
/// `now`, by id.
inline std::vector<Job> jobs_with_payload(Scheduler& scheduler, const Payload& data,
                                          std::optional<TimePoint> now = std::nullopt) {
  std::vector<Job> jobs = all_jobs(scheduler, now);
  std::vector<Job> matching;
  for (Job& job : jobs) {
    if (job.data == data)
      matching.push_back(std::move(job));
  }
  return matching;
}

/// The jobs still to run at `now`: neither completed, failed nor expired (due or not, held
/// or not), by id.
inline std::vector<Job> enqueued(Scheduler& scheduler,
                                 std::optional<TimePoint> now = std::nullopt) {
  const TimePoint at = now ? *now : scheduler.now();
  std::vector<Job> jobs = all_jobs(scheduler, at);
  std::vector<Job> pending;
  for (Job& job : jobs) {
    if (job.is_pending(at))
      pending.push_back(std::move(job));
  }
  return pending;
}

/// The one job of `jobs`; empty when there are none or more than one:
/// `REQUIRE(only_job(jobs_in_queue(scheduler, "mail")))`.
inline std::optional<Job> only_job(std::vector<Job> jobs) {
  if (jobs.size() != 1)
    return std::nullopt;
  return std::move(jobs.front());
}

}  // namespace jobsched::testing
