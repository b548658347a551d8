// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "detail/connection_setup.hpp"
#include "detail/sql.hpp"
#include "detail/sqlite.hpp"
#include "detail/validate.hpp"
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
  /// when the file cannot be opened; in both cases nothing is written.
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
                         "jobsched: cannot open '" + path + "': " +
                             (raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    return Scheduler(std::move(connection), std::move(options));
  }

  /// Uses a connection the host already has, set up and migrated as `open` does (extended
  /// result codes on, the busy timeout applied). With Ownership::owned the scheduler closes
  /// it, even when adopt throws; with borrowed the host must keep it open for the
  /// scheduler's lifetime and close it afterwards.
  static Scheduler adopt(sqlite3* db, Ownership ownership, Options options = {}) {
    detail::ConnectionPtr connection(db, detail::ConnectionCloser{ownership == Ownership::owned});
    if (db == nullptr) detail::throw_invalid("adopt() needs an open sqlite3 handle, got null");
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
    {
      detail::Run run(statements_.insert_job);
      bind_payload(run, 1, data);
      run.bind(2, times.created_at).bind(3, times.starts_at);
      bind_optional(run, 4, times.expires_at);
      run.execute();
    }
    Job job;
    job.id = sqlite3_last_insert_rowid(db());
    job.data = std::move(data);
    job.created_at = from_unix_seconds(times.created_at);
    job.starts_at = from_unix_seconds(times.starts_at);
    if (times.expires_at) job.expires_at = from_unix_seconds(*times.expires_at);
    return job;
  }

  /// Adds a job that starts `starts_after` after its creation and, if `expires_after` is
  /// given, expires that long after its creation. Durations must be finite and not negative.
  Job add_job_from_now(Payload data, Seconds starts_after,
                       std::optional<Seconds> expires_after = std::nullopt,
                       std::optional<TimePoint> created_at = std::nullopt) {
    detail::checked_duration("starts_after", starts_after);
    if (expires_after) detail::checked_duration("expires_after", *expires_after);
    JobOptions options;
    options.created_at = created_at ? *created_at : now();
    options.starts_at = *options.created_at + starts_after;
    if (expires_after) options.expires_at = *options.created_at + *expires_after;
    return add_job(std::move(data), options);
  }

  /// The job with this id, whatever its state; empty if there is none.
  std::optional<Job> get_job(std::int64_t id) {
    detail::Run run(statements_.select_job);
    run.bind(1, id);
    if (!run.step()) return std::nullopt;
    return read_job(run);
  }

  /// The pending, unlocked job with the earliest start (then the lowest id), due or not.
  std::optional<Job> next_job(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.select_next_job);
    run.bind(1, checked_now(now));
    if (!run.step()) return std::nullopt;
    return read_job(run);
  }

  /// The next job's id and the time until it starts, never negative (a late job's lateness
  /// is `now - starts_at`); empty when no unlocked job is pending.
  std::optional<JobDelay> seconds_until_next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::Run run(statements_.select_next_start);
    run.bind(1, at);
    if (!run.step()) return std::nullopt;
    return JobDelay{run.column_int64(0), Seconds{std::max(0.0, run.column_double(1) - at)}};
  }

  /// How many jobs are neither completed nor expired at `now`, locked or not.
  std::int64_t count_pending_jobs(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.count_pending_jobs);
    run.bind(1, checked_now(now));
    run.step();
    return run.column_int64(0);
  }

  /// Marks the job completed (and unlocks it). True when the job exists; a job completed
  /// again stays completed at its first completion time.
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

  /// Locks a pending, unlocked job so it no longer shows as next. True when this call
  /// locked it. A lock never expires: unlock_job or complete_job ends it.
  bool lock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.lock_job);
    run.bind(1, checked_now(now)).bind(2, id);
    return run.execute() > 0;
  }

  /// Unlocks a locked job. True when it was locked.
  bool unlock_job(std::int64_t id) {
    detail::Run run(statements_.unlock_job);
    run.bind(1, id);
    return run.execute() > 0;
  }

  /// Atomically locks and returns the job next_job(now) would return; empty if none.
  /// Of many schedulers calling it at once, each gets a different job.
  std::optional<Job> lock_next_job(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(statements_.lock_next_job);
    run.bind(1, checked_now(now));
    if (!run.step()) return std::nullopt;
    Job job = read_job(run);
    run.execute();  // finish the statement so its write commits now
    return job;
  }

  /// The scheduler's current time, from its clock.
  TimePoint now() const { return options_.clock ? options_.clock() : system_now(); }

  /// The version this scheduler migrated the file from when it opened it, or empty when the
  /// file was already current (or another connection migrated it first).
  std::optional<int> migrated_from() const noexcept { return migrated_from_; }

  /// The underlying SQLite handle, for the host's own statements and transactions.
  sqlite3* handle() const noexcept { return connection_.get(); }

 private:
  // Prepared once, reused by every call; declared after the connection so they die first.
  struct Statements {
    explicit Statements(sqlite3* db)
        : insert_job(db, detail::sql::insert_job),
          select_job(db, detail::sql::select_job),
          select_next_job(db, detail::sql::select_next_job),
          select_next_start(db, detail::sql::select_next_start),
          count_pending_jobs(db, detail::sql::count_pending_jobs),
          complete_job(db, detail::sql::complete_job),
          delete_job(db, detail::sql::delete_job),
          delete_completed_jobs(db, detail::sql::delete_completed_jobs),
          delete_expired_jobs(db, detail::sql::delete_expired_jobs),
          lock_job(db, detail::sql::lock_job),
          unlock_job(db, detail::sql::unlock_job),
          lock_next_job(db, detail::sql::lock_next_job) {}
    detail::Statement insert_job, select_job, select_next_job, select_next_start,
        count_pending_jobs, complete_job, delete_job, delete_completed_jobs,
        delete_expired_jobs, lock_job, unlock_job, lock_next_job;
  };

  Scheduler(detail::ConnectionPtr connection, Options options)
      : connection_(std::move(connection)),
        options_(std::move(options)),
        migrated_from_(detail::set_up_connection(connection_.get(), options_)),
        statements_(connection_.get()) {}

  double checked_now(std::optional<TimePoint> time, const char* name = "now") const {
    return detail::checked_time(name, time ? *time : now());
  }

  static void bind_optional(detail::Run& run, int index, std::optional<double> value) {
    if (value) {
      run.bind(index, *value);
    } else {
      run.bind_null(index);
    }
  }

  static void bind_payload(detail::Run& run, int index, const Payload& data) {
    switch (data.storage_class()) {
      case StorageClass::null: run.bind_null(index); break;
      case StorageClass::integer: run.bind(index, *data.as_integer()); break;
      case StorageClass::real: run.bind(index, *data.as_real()); break;
      case StorageClass::text: run.bind_text(index, data.bytes()); break;
      case StorageClass::blob: run.bind_blob(index, data.bytes()); break;
    }
  }

  static std::optional<TimePoint> read_optional_time(const detail::Run& run, int column) {
    if (run.column_type(column) == SQLITE_NULL) return std::nullopt;
    return from_unix_seconds(run.column_double(column));
  }

  static Payload read_payload(const detail::Run& run, int column) {
    switch (run.column_type(column)) {
      case SQLITE_INTEGER: return Payload::integer(run.column_int64(column));
      case SQLITE_FLOAT: return Payload::real(run.column_double(column));
      case SQLITE_TEXT: return Payload::text(run.column_text(column));
      case SQLITE_BLOB: return Payload(run.column_blob(column));
      default: return Payload();
    }
  }

  // Columns in the order of JOBSCHED_JOB_COLUMNS in detail/sql.hpp.
  static Job read_job(const detail::Run& run) {
    Job job;
    job.id = run.column_int64(0);
    job.data = read_payload(run, 1);
    job.created_at = from_unix_seconds(run.column_double(2));
    job.starts_at = from_unix_seconds(run.column_double(3));
    job.expires_at = read_optional_time(run, 4);
    job.completed_at = read_optional_time(run, 5);
    job.locked_at = read_optional_time(run, 6);
    return job;
  }

  sqlite3* db() const noexcept { return connection_.get(); }

  detail::ConnectionPtr connection_;
  Options options_;
  std::optional<int> migrated_from_;
  Statements statements_;
};

}  // namespace jobsched
