// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claim.hpp"
#include "detail/connection_setup.hpp"
#include "detail/job_row.hpp"
#include "detail/sql.hpp"
#include "detail/sqlite.hpp"
#include "detail/statements.hpp"
#include "detail/transaction.hpp"
#include "detail/validate.hpp"
#include "detail/wake.hpp"
#include "error.hpp"
#include "job.hpp"
#include "migrations.hpp"
#include "options.hpp"
#include "time.hpp"

namespace jobsched {

/// A persistent schedule of jobs in one SQLite database.
///
/// Thread safety: one Scheduler is used by one thread at a time, like the SQLite connection
/// it wraps. Any number of schedulers, in any threads and processes, may share one file.
/// Every call that takes an optional time uses the scheduler's clock when it is empty.
class Scheduler {
 public:
  /// Opens (creating if needed) the database at `path`, or ":memory:", and upgrades its
  /// schema. Files use WAL. Throws SchemaError for a file this build cannot use, IoError
  /// when the file cannot be opened, and writes nothing to the file in either case. A
  /// failed upgrade leaves the file as it was.
  static Scheduler open(const std::string& path, Options options = {}) {
    detail::check_options(options);
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(
        path.c_str(), &raw,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
        nullptr);
    detail::ConnectionPtr connection(raw, detail::ConnectionCloser{true});
    if (rc != SQLITE_OK) {
      detail::throw_code(raw != nullptr ? sqlite3_extended_errcode(raw) : rc,
                         "jobsched: cannot open '" + path +
                             "': " + (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    return Scheduler(std::move(connection), std::move(options));
  }

  /// Uses a connection the host already has, set up and migrated as `open` does (extended
  /// result codes on, the busy timeout applied). With Ownership::owned the scheduler closes
  /// it, even when adopt throws; with borrowed the host must keep it open for the
  /// scheduler's lifetime and close it afterwards.
  static Scheduler adopt(sqlite3* db, Ownership ownership, Options options = {}) {
    detail::ConnectionPtr connection(
        db, detail::ConnectionCloser{ownership == Ownership::owned,
                                     detail::clamped_milliseconds(options.busy_timeout)});
    if (db == nullptr)
      detail::throw_invalid("adopt() needs an open sqlite3 handle, got null");
    detail::check_options(options);
    return Scheduler(std::move(connection), std::move(options));
  }

  Scheduler(Scheduler&&) noexcept = default;
  Scheduler& operator=(Scheduler&&) noexcept = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler() = default;

  /// Adds a job and returns it as stored. Refuses NaN or infinite times and
  /// created_at > starts_at > expires_at with InvalidArgumentError, before any SQL runs.
  Job add_job(Payload data, const JobOptions& options = {}) {
    const TimePoint created = options.created_at ? *options.created_at : now();
    const TimePoint starts = options.starts_at ? *options.starts_at : created;
    const detail::CheckedTimes times = detail::check_job_times(created, starts, options.expires_at);
    detail::check_payload(data);
    detail::check_job_settings(options);
    {
      detail::Run run(statements_.insert_job);
      detail::bind_payload(run, 1, data);
      run.bind(2, times.created_at).bind(3, times.starts_at);
      detail::bind_optional(run, 4, times.expires_at);
      run.bind(5, std::int64_t{options.priority}).bind_text(6, options.queue);
      detail::bind_optional(run, 7, options.max_attempts);
      detail::bind_optional(run, 8, options.initial_backoff);
      detail::bind_optional(run, 9, options.max_backoff);
      run.execute();
    }
    Job job;
    job.id = sqlite3_last_insert_rowid(db());
    job.data = std::move(data);
    job.created_at = from_unix_seconds(times.created_at);
    job.starts_at = from_unix_seconds(times.starts_at);
    if (times.expires_at)
      job.expires_at = from_unix_seconds(*times.expires_at);
    job.max_attempts = options.max_attempts;
    job.initial_backoff = options.initial_backoff;
    job.max_backoff = options.max_backoff;
    job.priority = options.priority;
    job.queue = options.queue;
    // Inside the host's transaction the job is not visible yet; workers see it by polling
    // once the host commits.
    if (sqlite3_get_autocommit(db()) != 0)
      detail::WakeHub::instance().job_added(file_);
    return job;
  }

  /// Adds a job that starts `starts_after` after its creation and, if `expires_after` is
  /// given, expires that long after its creation. Durations must be finite and not negative.
  Job add_job_from_now(Payload data, Seconds starts_after,
                       std::optional<Seconds> expires_after = std::nullopt,
                       std::optional<TimePoint> created_at = std::nullopt) {
    detail::checked_duration("starts_after", starts_after);
    if (expires_after)
      detail::checked_duration("expires_after", *expires_after);
    JobOptions options;
    options.created_at = created_at ? *created_at : now();
    options.starts_at = *options.created_at + starts_after;
    if (expires_after)
      options.expires_at = *options.created_at + *expires_after;
    return add_job(std::move(data), options);
  }

  /// The job with this id, whatever its state; empty if there is none.
  std::optional<Job> get_job(std::int64_t id) {
    detail::Run run(statements_.select_job);
    run.bind(1, id);
    if (!run.step())
      return std::nullopt;
    return detail::read_job(run);
  }

  /// The pending, unlocked job with the earliest start (then the lowest id), due or not.
  std::optional<Job> next_job(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.select_next_job);
    bind_default_max_attempts(run);
    run.bind(1, checked_now(now));
    if (!run.step())
      return std::nullopt;
    return detail::read_job(run);
  }

  /// The next job's id and the time until it can be claimed: its start, or for a claimed
  /// job the end of its lease. Never negative (a late job's lateness is `now - starts_at`);
  /// empty when no job is pending but locked ones.
  std::optional<JobDelay> seconds_until_next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    std::optional<Candidate> next;
    {
      detail::Run run(statements_.select_next_start);
      bind_default_max_attempts(run);
      run.bind(1, at);
      if (run.step())
        next = Candidate{run.column_int64(0), 0, run.column_double(1)};
    }
    keep_earliest(next, first_lease_end(at, nullptr));
    return delay_until(next, at);
  }

  /// As above, counting only jobs in `queues`.
  std::optional<JobDelay> seconds_until_next_job(const std::vector<std::string>& queues,
                                                 std::optional<TimePoint> now = std::nullopt) {
    check_queues(queues);
    const double at = checked_now(now);
    std::optional<Candidate> next;
    for (const std::string& queue : queues) {
      for_each_priority(queue, [&](int priority) {
        detail::Run run(statements_.first_free_in_level);
        run.bind(1, at).bind_text(2, queue).bind(3, std::int64_t{priority});
        if (run.step())
          keep_earliest(next, Candidate{run.column_int64(0), priority, run.column_double(1)});
        return false;
      });
      keep_earliest(next, first_lease_end(at, &queue));
    }
    return delay_until(next, at);
  }

  /// How many jobs are neither completed nor expired at `now`, locked or not.
  std::int64_t count_pending_jobs(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.count_pending_jobs);
    run.bind(1, checked_now(now));
    bind_default_max_attempts(run);
    run.step();
    return run.column_int64(0);
  }

  /// Marks the job completed (and ends any lock or claim on it). True when the job exists; a job
  /// completed again stays completed at its first completion time.
  bool complete_job(std::int64_t id, std::optional<TimePoint> completed_at = std::nullopt) {
    const double at = checked_now(completed_at, "completed_at");
    detail::Run run(statements_.complete_job);
    run.bind(1, id).bind(2, at);
    return run.execute() > 0;
  }

  /// Deletes the job. True when it existed.
  bool delete_job(std::int64_t id) {
    detail::Run run(statements_.delete_job);
    run.bind(1, id);
    return run.execute() > 0;
  }

  /// Deletes every completed job; returns how many went.
  std::int64_t delete_completed_jobs() {
    detail::Run run(statements_.delete_completed_jobs);
    return run.execute();
  }

  /// Deletes every job expired at `now` (completed jobs never expire); returns how many went.
  std::int64_t delete_expired_jobs(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.delete_expired_jobs);
    run.bind(1, checked_now(now));
    return run.execute();
  }

  /// Locks a pending job that nobody holds so it no longer shows as next: a claim whose
  /// lease never runs out. True when this call locked it. unlock_job or complete_job ends it.
  bool lock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.lock_job);
    bind_default_max_attempts(run);
    run.bind(1, checked_now(now)).bind(2, id);
    return run.execute() > 0;
  }

  /// Ends the lock or claim on a job. True when it was held.
  bool unlock_job(std::int64_t id) {
    detail::Run run(statements_.unlock_job);
    run.bind(1, id);
    return run.execute() > 0;
  }

  /// Atomically locks and returns the job next_job(now) would return; empty if none.
  /// Of many schedulers calling it at once, each gets a different job.
  std::optional<Job> lock_next_job(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.lock_next_job);
    bind_default_max_attempts(run);
    run.bind(1, checked_now(now));
    if (!run.step())
      return std::nullopt;
    Job job = detail::read_job(run);
    run.execute();  // finish the statement so its write commits now
    return job;
  }

  /// Claims the due, free job that comes first (higher priority, then earlier start, then
  /// lower id) in any queue, leasing it for `lease`: no other claim gets it until the lease
  /// runs out, and then it counts as a failed attempt. Jobs whose lease ran out on their last
  /// attempt are failed on the way. One write transaction; empty when nothing is due.
  std::optional<ClaimedJob> claim_next_job(Seconds lease,
                                           std::optional<TimePoint> now = std::nullopt) {
    return claim(lease, nullptr, now);
  }

  /// As above, from the named queues only ("" is the default queue).
  std::optional<ClaimedJob> claim_next_job(Seconds lease, const std::vector<std::string>& queues,
                                           std::optional<TimePoint> now = std::nullopt) {
    check_queues(queues);
    return claim(lease, &queues, now);
  }

  /// Completes a claimed job. False, changing nothing, when the claim is stale: its lease ran
  /// out and the job was claimed again, or it was failed, released, unlocked or deleted.
  bool complete(const Claim& claim, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.complete_claim);
    run.bind(1, checked_now(now)).bind(2, claim.job_id).bind(3, claim.token);
    return run.execute() > 0;
  }

  /// Records a failed attempt with its error. The job returns after the retry policy's
  /// backoff (never past its expiry), or, after its last attempt, is failed for good: kept,
  /// neither pending nor expired. False, changing nothing, when the claim is stale.
  bool fail(const Claim& claim, std::string_view error,
            std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteTransaction transaction(db(), &statements_.transaction);
    std::optional<double> retry_at;
    {
      detail::Run run(statements_.select_claimed);
      run.bind(2, claim.job_id).bind(3, claim.token);
      if (!run.step())
        return false;
      const auto attempts = static_cast<int>(run.column_int64(0));
      const RetryPolicy& policy = options_.retry;
      const int max_attempts = run.column_type(1) == SQLITE_NULL
                                   ? policy.max_attempts
                                   : static_cast<int>(run.column_int64(1));
      if (attempts < max_attempts) {
        const Seconds initial = run.column_type(2) == SQLITE_NULL ? policy.initial_backoff
                                                                  : Seconds{run.column_double(2)};
        const Seconds cap =
            run.column_type(3) == SQLITE_NULL ? policy.max_backoff : Seconds{run.column_double(3)};
        const double backoff = policy.backoff(attempts, initial, cap).count();
        std::uniform_real_distribution<double> share(0.0, 1.0);
        double when = at + backoff * (1.0 - policy.jitter * share(random_));
        if (run.column_type(5) != SQLITE_NULL)
          when = std::min(when, run.column_double(5));
        retry_at = std::max(when, run.column_double(4));
      }
    }
    detail::Run run(retry_at ? statements_.retry_later : statements_.fail_for_good);
    run.bind(1, retry_at ? *retry_at : at).bind(2, claim.job_id).bind(3, claim.token);
    run.bind_text(4, error);
    run.execute();
    transaction.commit();
    return true;
  }

  /// Extends a claim's lease to `lease` from now (a heartbeat), updating `claim`. False,
  /// changing nothing, when the claim is stale.
  bool extend(Claim& claim, Seconds lease, std::optional<TimePoint> now = std::nullopt) {
    const double until = checked_now(now) + detail::checked_lease(lease);
    detail::Run run(statements_.extend_claim);
    run.bind(1, until).bind(2, claim.job_id).bind(3, claim.token);
    if (run.execute() == 0)
      return false;
    claim.lease_until = from_unix_seconds(until);
    return true;
  }

  /// Gives a claimed job back without counting the attempt: it is free again at once.
  /// False, changing nothing, when the claim is stale.
  bool release(const Claim& claim) {
    detail::Run run(statements_.release_claim);
    run.bind(2, claim.job_id).bind(3, claim.token);
    return run.execute() > 0;
  }

  /// Jobs that failed for good by `now`, oldest failure first. Marks first those whose
  /// lease ran out on their last attempt (a write).
  std::vector<Job> failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteTransaction transaction(db(), &statements_.transaction);
    fail_abandoned_jobs(at);
    std::vector<Job> jobs;
    {
      detail::Run run(statements_.select_failed_jobs);
      while (run.step())
        jobs.push_back(detail::read_job(run));
    }
    transaction.commit();
    return jobs;
  }

  /// Puts a failed job back in the schedule, due now, with its attempts reset (its last
  /// error kept). A job whose expiry has passed stays expired. True when it was failed.
  bool retry_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteTransaction transaction(db(), &statements_.transaction);
    fail_abandoned_jobs(at);
    detail::Run run(statements_.retry_job);
    run.bind(1, at).bind(2, id);
    const bool retried = run.execute() > 0;
    transaction.commit();
    return retried;
  }

  /// Deletes every job failed by `now`; returns how many went.
  std::int64_t delete_failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteTransaction transaction(db(), &statements_.transaction);
    fail_abandoned_jobs(at);
    detail::Run run(statements_.delete_failed_jobs);
    const std::int64_t deleted = run.execute();
    transaction.commit();
    return deleted;
  }

  /// A number that changes whenever another connection commits to the file: a cheap way
  /// to notice their new jobs (SQLite's `PRAGMA data_version`).
  std::int64_t data_version() {
    detail::Run run(statements_.data_version);
    run.step();
    return run.column_int64(0);
  }

  /// The database file's absolute path; empty for an in-memory database.
  const std::string& file() const noexcept { return file_; }

  /// The scheduler's current time, from its clock.
  TimePoint now() const { return options_.clock ? options_.clock() : system_now(); }

  /// The version this scheduler migrated the file from when it opened it, or empty when the
  /// file was already current (or another connection migrated it first).
  std::optional<int> migrated_from() const noexcept { return migrated_from_; }

  /// The underlying SQLite handle, for the host's own statements and transactions.
  sqlite3* handle() const noexcept { return connection_.get(); }

 private:
  // A job in claim order: higher priority, then earlier start, then lower id.
  struct Candidate {
    std::int64_t id;
    int priority;
    double starts_at;
  };

  std::optional<ClaimedJob> claim(Seconds lease, const std::vector<std::string>* queues,
                                  std::optional<TimePoint> now) {
    const double until_offset = detail::checked_lease(lease);
    if (now)
      detail::checked_time("now", *now);
    // Read the clock once the write lock is held, so that waiting for it does not eat into
    // the lease.
    detail::WriteTransaction transaction(db(), &statements_.transaction);
    const double at = checked_now(now);
    fail_abandoned_jobs(at);
    std::optional<Candidate> best;
    auto consider = [&](const std::string& queue, std::optional<int> top = std::nullopt) {
      std::optional<Candidate> found = first_due_in_queue(queue, at, top);
      if (found && (!best || comes_before(*found, *best)))
        best = found;
    };
    if (queues != nullptr) {
      for (const std::string& queue : *queues)
        consider(queue);
    } else {
      for_each_queue(consider);
    }
    std::optional<ClaimedJob> claimed;
    if (best) {
      detail::Run update(statements_.claim_job);
      update.bind(1, at).bind(2, at + until_offset).bind(3, best->id);
      if (update.execute() > 0) {
        detail::Run run(statements_.select_claimed_job);
        run.bind(1, best->id);
        if (run.step()) {
          claimed = ClaimedJob{detail::read_job(run), Claim{}};
          claimed->claim = Claim{claimed->job.id, run.column_int64(detail::job_columns),
                                 from_unix_seconds(at + until_offset)};
        }
      }
    }
    transaction.commit();
    return claimed;
  }

  void bind_default_max_attempts(detail::Run& run) const {
    run.bind(detail::sql::default_max_attempts, std::int64_t{options_.retry.max_attempts});
  }

  // Marks failed the jobs whose lease ran out on their last attempt (after a look, which
  // is cheaper when there are none: see sql::any_abandoned_job).
  void fail_abandoned_jobs(double at) {
    {
      detail::Run look(statements_.any_abandoned_job);
      look.bind(1, at);
      bind_default_max_attempts(look);
      if (!look.step())
        return;
    }
    detail::Run run(statements_.fail_abandoned_jobs);
    run.bind(1, at);
    bind_default_max_attempts(run);
    run.execute();
  }

  static bool comes_before(const Candidate& a, const Candidate& b) noexcept {
    if (a.priority != b.priority)
      return a.priority > b.priority;
    if (a.starts_at != b.starts_at)
      return a.starts_at < b.starts_at;
    return a.id < b.id;
  }

  static void keep_earliest(std::optional<Candidate>& earliest, std::optional<Candidate> other) {
    if (other && (!earliest || other->starts_at < earliest->starts_at ||
                  (other->starts_at == earliest->starts_at && other->id < earliest->id))) {
      earliest = other;
    }
  }

  static std::optional<JobDelay> delay_until(const std::optional<Candidate>& next, double at) {
    if (!next)
      return std::nullopt;
    return JobDelay{next->id, Seconds{std::max(0.0, next->starts_at - at)}};
  }

  // Calls `visit` with each queue that has open jobs, in order, and its highest priority
  // level: a skip-scan of the claim index, one probe per queue.
  template <class Visit>
  void for_each_queue(Visit visit) {
    std::string from;
    for (;;) {
      std::string queue;
      int top = 0;
      {
        detail::Run run(statements_.next_queue);
        run.bind_text(1, from);
        if (!run.step())
          return;
        // Only TEXT moves the scan forward; a BLOB sorts after every text and would repeat.
        if (run.column_type(0) != SQLITE_TEXT)
          detail::throw_code(SQLITE_CORRUPT, "jobsched: a job's queue is not text");
        queue = std::string(run.column_text(0));
        top = checked_priority(run, 1, std::numeric_limits<int>::max());
      }
      visit(queue, top);
      from = queue + '\0';  // the smallest string after `queue`
    }
  }

  // Calls `visit` with each priority level that has open jobs in `queue`, highest first,
  // until it returns true. `top`, when known, is the highest level (saves a probe).
  template <class Visit>
  void for_each_priority(const std::string& queue, Visit visit,
                         std::optional<int> top = std::nullopt) {
    std::int64_t at_most = std::numeric_limits<int>::max();
    for (;;) {
      int priority = 0;
      if (top) {
        priority = *top;
        top.reset();
      } else {
        detail::Run run(statements_.next_priority);
        run.bind_text(1, queue).bind(2, at_most);
        if (!run.step())
          return;
        priority = checked_priority(run, 0, at_most);
      }
      if (visit(priority))
        return;
      at_most = std::int64_t{priority} - 1;
    }
  }

  // A priority level read from the claim index: each level must be below the last, or the
  // skip-scan would repeat (a file written by something else may hold any value).
  static int checked_priority(detail::Run& run, int column, std::int64_t at_most) {
    const std::int64_t stored = run.column_int64(column);
    if (run.column_type(column) != SQLITE_INTEGER || stored > at_most ||
        stored < std::numeric_limits<int>::min()) {
      detail::throw_code(SQLITE_CORRUPT, "jobsched: a job's priority is not an int: " +
                                             std::string(run.column_text(column)));
    }
    return static_cast<int>(stored);
  }

  std::optional<Candidate> first_due_in_queue(const std::string& queue, double at,
                                              std::optional<int> top = std::nullopt) {
    std::optional<Candidate> found;
    for_each_priority(
        queue,
        [&](int priority) {
          detail::Run run(statements_.first_due_in_level);
          bind_default_max_attempts(run);
          run.bind(1, at).bind_text(2, queue).bind(3, std::int64_t{priority});
          if (run.step())
            found = Candidate{run.column_int64(0), priority, run.column_double(1)};
          return found.has_value();
        },
        top);
    return found;
  }

  // The claimed job whose lease runs out first (in `queue`, or in any queue when null).
  std::optional<Candidate> first_lease_end(double at, const std::string* queue) {
    detail::Run run(statements_.first_lease_end);
    run.bind(1, at);
    bind_default_max_attempts(run);
    if (queue != nullptr) {
      run.bind_text(2, *queue);
    } else {
      run.bind_null(2);
    }
    if (!run.step())
      return std::nullopt;
    return Candidate{run.column_int64(0), 0, run.column_double(1)};
  }

  static void check_queues(const std::vector<std::string>& queues) {
    if (queues.empty()) {
      detail::throw_invalid(
          "the list of queues is empty; name at least one (\"\" is the default queue), or "
          "call without queues to serve them all");
    }
  }

  Scheduler(detail::ConnectionPtr connection, Options options)
      : busy_wait_(std::make_unique<detail::BusyWait>(options.busy_timeout)),
        connection_(std::move(connection)),
        options_(std::move(options)),
        migrated_from_(detail::set_up_connection(connection_.get(), *busy_wait_)),
        file_(detail::is_memory_database(connection_.get())
                  ? std::string()
                  : std::string(sqlite3_db_filename(connection_.get(), "main"))),
        statements_(detail::Statements::prepare(connection_.get())) {
    detail::set_durability(connection_.get(), options_);
  }

  double checked_now(std::optional<TimePoint> time, const char* name = "now") const {
    return detail::checked_time(name, time ? *time : now());
  }

  sqlite3* db() const noexcept { return connection_.get(); }

  // The connection's busy handler points here: it must outlive the connection.
  std::unique_ptr<detail::BusyWait> busy_wait_;
  detail::ConnectionPtr connection_;
  Options options_;
  std::optional<int> migrated_from_;
  std::string file_;
  std::mt19937_64 random_{std::random_device{}()};
  detail::Statements statements_;
};

}  // namespace jobsched
