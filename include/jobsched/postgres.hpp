// SPDX-License-Identifier: MIT
#pragma once

// The schedule of jobs on a PostgreSQL server, for workers on many hosts: the Scheduler's
// calls and promises over libpq. Only programs that include this header need libpq (CMake:
// link jobsched::postgres).

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "claim.hpp"
#include "detail/front.hpp"
#include "detail/new_job.hpp"
#include "detail/pg.hpp"
#include "detail/pg_job_row.hpp"
#include "detail/pg_migrations.hpp"
#include "detail/pg_sql.hpp"
#include "detail/validate.hpp"
#include "error.hpp"
#include "job.hpp"
#include "options.hpp"
#include "payload.hpp"
#include "pg_options.hpp"
#include "time.hpp"

namespace jobsched {

/// A persistent schedule of jobs in one schema of a PostgreSQL database, with the calls of
/// Scheduler and the same answers for the same rows and times.
///
/// Where the server differs: queue names must be UTF-8 without NUL bytes (others are refused
/// with InvalidArgumentError); in errors and cancel reasons such bytes become U+FFFD. A call
/// that fails inside the host's transaction leaves that transaction failed, as any failed
/// statement does on PostgreSQL, except calls of several statements, which undo their own part.
///
/// Thread safety: one PgScheduler is used by one thread at a time, like the connection it
/// wraps. Any number of schedulers, on any hosts, may share one schema.
class PgScheduler {
 public:
  /// Connects with `conninfo` (a libpq connection string or URI) and creates or upgrades
  /// the schema. IoError when the server cannot be reached, naming the connection string's
  /// host and database; SchemaError for a schema this build cannot use.
  static PgScheduler open(const std::string& conninfo, PgOptions options = {}) {
    detail::pg::check_schema_name(options.schema);
    detail::check_retry_policy(options.retry);
    detail::pg::ConnectionPtr connection(PQconnectdb(conninfo.c_str()));
    if (!connection || PQstatus(connection.get()) != CONNECTION_OK) {
      detail::pg::throw_connection_error(connection.get(),
                                         "cannot connect to PostgreSQL with '" +
                                             described(conninfo) + "'");
    }
    detail::pg::set_lock_timeout(connection.get(), options.busy_timeout);
    return PgScheduler(std::move(connection), Ownership::owned, std::move(options));
  }

  /// Uses a connection the host already has (its session settings untouched); `ownership`
  /// says whether the scheduler closes it (an owned one is closed even when adopt throws). Inside the host's transaction, calls join it
  /// through a SAVEPOINT, so that adding a job commits with the host's own writes.
  static PgScheduler adopt(PGconn* connection, Ownership ownership, PgOptions options = {}) {
    // Owned from here on: closed even when a check below throws.
    detail::pg::ConnectionPtr adopted(
        connection, detail::pg::ConnectionCloser{ownership == Ownership::owned});
    if (connection == nullptr || PQstatus(connection) != CONNECTION_OK)
      detail::throw_invalid("adopt needs an open PostgreSQL connection");
    detail::pg::check_schema_name(options.schema);
    detail::check_retry_policy(options.retry);
    return PgScheduler(std::move(adopted), ownership, std::move(options));
  }

  /// Movable: the moved-from scheduler may only be destroyed or assigned to.
  PgScheduler(PgScheduler&&) noexcept = default;
  /// Closes this scheduler's connection (if owned) and takes `other`'s.
  PgScheduler& operator=(PgScheduler&&) noexcept = default;
  PgScheduler(const PgScheduler&) = delete;
  PgScheduler& operator=(const PgScheduler&) = delete;
  /// Closes the connection if the scheduler owns it; a borrowed one is left without the
  /// scheduler's prepared statements, except inside a failed transaction (the server refuses
  /// DEALLOCATE there): then they stay until the session ends, under names no other
  /// scheduler uses.
  ~PgScheduler() {
    if (!connection_ || ownership_ == Ownership::owned)
      return;
    for (std::size_t i = 0; i < statements_.size(); ++i) {
      if (statements_[i]) {
        const std::string deallocate = "DEALLOCATE " + statement_name(i);
        PQclear(PQexec(connection_.get(), deallocate.c_str()));
      }
    }
  }

  /// Adds a job, as Scheduler::add_job: the times checked (InvalidArgumentError names bad
  /// ones) before any SQL runs. Unique keys are not supported on PostgreSQL yet.
  Job add_job(Payload data, const JobOptions& options = {}) {
    const detail::CheckedTimes times = checked_new_job(data, options);
    const std::int64_t id = insert(data, options, times);
    return detail::stored_job(id, std::move(data), options, times);
  }

  /// Adds every job in one transaction, as Scheduler::add_jobs: all or none, each checked
  /// before any is written.
  std::vector<Job> add_jobs(std::vector<NewJob> jobs) {
    for (const NewJob& job : jobs) {
      refuse_unique(job.options);
      detail::pg::check_text("the queue", job.options.queue);
    }
    const std::vector<detail::CheckedTimes> times = detail::checked_new_jobs(jobs, now());
    std::vector<Job> added;
    added.reserve(jobs.size());
    detail::pg::Transaction transaction(db());
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const std::int64_t id = insert(jobs[i].data, jobs[i].options, times[i]);
      added.push_back(detail::stored_job(id, std::move(jobs[i].data), jobs[i].options, times[i]));
    }
    transaction.commit();
    return added;
  }

  /// Adds a job due `starts_after` from now, as Scheduler::add_job_from_now.
  Job add_job_from_now(Payload data, Seconds starts_after,
                       std::optional<Seconds> expires_after = std::nullopt,
                       std::optional<TimePoint> created_at = std::nullopt) {
    return add_job(std::move(data),
                   detail::options_from_now(starts_after, expires_after, created_at, now()));
  }

  /// The job `id` as stored, seen at `now`; empty when there is none.
  std::optional<Job> get_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    const detail::pg::Rows rows = run(detail::pg_sql::select_job, params(checked_now(now)).add(id));
    if (rows.empty())
      return std::nullopt;
    return detail::pg::read_job(rows, 0);
  }

  /// The pending free job that starts first (then the lowest id), of queues not paused.
  std::optional<Job> next_job(std::optional<TimePoint> now = std::nullopt) {
    const detail::pg::Rows rows = run(detail::pg_sql::next_job, params(checked_now(now)));
    if (rows.empty())
      return std::nullopt;
    return detail::pg::read_job(rows, 0);
  }

  /// The job to wait for and how long until it is due (never negative), as
  /// Scheduler::seconds_until_next_job; empty when nothing is pending.
  std::optional<JobDelay> seconds_until_next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    return next_due(params(at).add_null(), at);
  }

  /// The same, for the jobs of `queues` only.
  std::optional<JobDelay> seconds_until_next_job(const std::vector<std::string>& queues,
                                                 std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    const double at = checked_now(now);
    return next_due(params(at).add_text(text_array(queues)), at);
  }

  /// How many jobs are pending at `now`, held or not.
  std::int64_t count_pending_jobs(std::optional<TimePoint> now = std::nullopt) {
    return run(detail::pg_sql::count_pending_jobs, params(checked_now(now))).int64(0, 0);
  }

  /// Marks the job completed at `completed_at` (a job completed again keeps its first
  /// time); true when it exists.
  bool complete_job(std::int64_t id, std::optional<TimePoint> completed_at = std::nullopt) {
    const double at = checked_now(completed_at, "completed_at");
    return changed(detail::pg_sql::complete_job, params(at).add(id).add(at));
  }

  /// Deletes the job; true when it existed.
  bool delete_job(std::int64_t id) {
    return changed(detail::pg_sql::delete_job, params(to_unix_seconds(now())).add(id));
  }

  /// Deletes every completed job; returns how many went.
  std::int64_t delete_completed_jobs() {
    return run(detail::pg_sql::delete_completed_jobs, params(0.0)).changed();
  }

  /// Deletes every job expired at `now`; returns how many went.
  std::int64_t delete_expired_jobs(std::optional<TimePoint> now = std::nullopt) {
    return run(detail::pg_sql::delete_expired_jobs, params(checked_now(now))).changed();
  }

  /// Locks a pending free job (a claim whose lease never runs out); false otherwise.
  bool lock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::lock_job, params(checked_now(now)).add(id));
  }

  /// Lets go of any lock or claim on the job; true when it exists.
  bool unlock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::unlock_job, params(checked_now(now)).add(id));
  }

  /// Atomically locks and returns the job next_job(now) would return; empty if none. Of many
  /// schedulers calling it at once, each gets a different job.
  std::optional<Job> lock_next_job(std::optional<TimePoint> now = std::nullopt) {
    const detail::pg::Rows rows = run(detail::pg_sql::lock_next_job, params(checked_now(now)));
    if (rows.empty())
      return std::nullopt;
    return detail::pg::read_job(rows, 0);
  }

  /// Claims the due free job that comes first (higher priority, then earlier start, then
  /// lower id) with a lease of `lease`; empty when none is due.
  std::optional<ClaimedJob> claim_next_job(Seconds lease,
                                           std::optional<TimePoint> now = std::nullopt) {
    return detail::first_claimed(claim(1, lease, nullptr, now));
  }

  /// The same, from `queues` only.
  std::optional<ClaimedJob> claim_next_job(Seconds lease, const std::vector<std::string>& queues,
                                           std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    return detail::first_claimed(claim(1, lease, &queues, now));
  }

  /// Claims up to `limit` due free jobs in claim order, in one statement.
  std::vector<ClaimedJob> claim_jobs(std::size_t limit, Seconds lease,
                                     std::optional<TimePoint> now = std::nullopt) {
    return claim(detail::checked_limit(limit), lease, nullptr, now);
  }

  /// The same, from `queues` only.
  std::vector<ClaimedJob> claim_jobs(std::size_t limit, Seconds lease,
                                     const std::vector<std::string>& queues,
                                     std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    return claim(detail::checked_limit(limit), lease, &queues, now);
  }

  /// Completes a claimed job; false, changing nothing, when the claim is stale.
  bool complete(const Claim& claim, std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::complete_claim, held_by(claim, checked_now(now)));
  }

  /// Completes a claimed job and stores `result` with it (Job::result).
  bool complete(const Claim& claim, const Payload& result,
                std::optional<TimePoint> now = std::nullopt) {
    detail::check_payload(result);
    detail::pg::Params values = held_by(claim, checked_now(now));
    detail::pg::add_payload(values, result);
    return changed(detail::pg_sql::complete_claim_with_result, values);
  }

  /// Gives the job back to start again `delay` from now, the attempt not counted.
  bool snooze(const Claim& claim, Seconds delay, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const double seconds = delay.count();
    if (!std::isfinite(seconds) || seconds < 0) {
      detail::throw_invalid("snooze's delay must be finite and not negative, got " +
                            detail::format_seconds(seconds) + " s");
    }
    const double until = detail::checked_time("the snooze's end", from_unix_seconds(at + seconds));
    return changed(detail::pg_sql::snooze_claim, held_by(claim, at).add(until));
  }

  /// Cancels a pending job with `reason` as its last error: it fails for good, and any claim
  /// on it goes stale. False when it is not pending (or does not exist).
  bool cancel_job(std::int64_t id, std::string_view reason = "cancelled",
                  std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::cancel_job,
                   params(checked_now(now)).add(id).add_text(detail::pg::storable_text(reason)));
  }

  /// Completes every claimed job in one transaction; each answer is complete's.
  std::vector<bool> complete_all(const std::vector<Claim>& claims,
                                 std::optional<TimePoint> now = std::nullopt) {
    return settle_all(claims, checked_now(now),
                      [&](const Claim& claim, double at) { return complete(claim, from_unix_seconds(at)); });
  }

  /// Records every failed attempt in one transaction, each as fail does.
  std::vector<bool> fail_all(const std::vector<ClaimFailure>& failures,
                             std::optional<TimePoint> now = std::nullopt) {
    return settle_all(failures, checked_now(now), [&](const ClaimFailure& failure, double at) {
      return fail_claim(failure.claim, failure.error, at);
    });
  }

  /// Gives every claimed job back in one transaction, each as release does.
  std::vector<bool> release_all(const std::vector<Claim>& claims,
                                std::optional<TimePoint> now = std::nullopt) {
    return settle_all(claims, checked_now(now),
                      [&](const Claim& claim, double at) { return release(claim, from_unix_seconds(at)); });
  }

  /// Records a failed attempt with its error: the job returns after the retry policy's
  /// backoff (never past its expiry), or after its last attempt fails for good. False,
  /// changing nothing, when the claim is stale.
  bool fail(const Claim& claim, std::string_view error,
            std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::pg::Transaction transaction(db());
    const bool failed = fail_claim(claim, error, at);
    transaction.commit();
    return failed;
  }

  /// Extends a claim's lease to `lease` from now, updating `claim`; a lease never moves
  /// earlier. False, changing nothing, when the claim is stale.
  bool extend(Claim& claim, Seconds lease, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const double until = detail::lease_end(at, lease);
    const detail::pg::Rows rows = run(detail::pg_sql::extend_claim, held_by(claim, at).add(until));
    if (rows.empty())
      return false;
    claim.lease_until = from_unix_seconds(rows.real(0, 0));
    return true;
  }

  /// Gives a claimed job back without counting the attempt; false when the claim is stale.
  bool release(const Claim& claim, std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::release_claim, held_by(claim, checked_now(now)));
  }

  /// Jobs failed for good at `now`, in the order they failed (then by id), those whose lease
  /// ran out on their last attempt included.
  std::vector<Job> failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    const detail::pg::Rows rows = run(detail::pg_sql::failed_jobs, params(checked_now(now)));
    std::vector<Job> jobs;
    jobs.reserve(static_cast<std::size_t>(rows.size()));
    for (int row = 0; row < rows.size(); ++row)
      jobs.push_back(detail::pg::read_job(rows, row));
    return jobs;
  }

  /// Puts a failed job back in the schedule, due now, attempts reset; true when it was failed.
  bool retry_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    return changed(detail::pg_sql::retry_job, params(checked_now(now)).add(id));
  }

  /// Deletes every job failed by `now`; returns how many went.
  std::int64_t delete_failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    return run(detail::pg_sql::delete_failed_jobs, params(checked_now(now))).changed();
  }

  /// Pauses `queue` for every scheduler on the schema: claims, lock_next_job, next_job and
  /// seconds_until_next_job pass over its jobs. True when it was not paused already.
  bool pause_queue(const std::string& queue, std::optional<TimePoint> now = std::nullopt) {
    detail::pg::check_text("the queue", queue);
    return changed(detail::pg_sql::pause_queue, params(checked_now(now)).add_text(queue));
  }

  /// Lets claims take `queue`'s jobs again; true when it was paused.
  bool resume_queue(const std::string& queue) {
    detail::pg::check_text("the queue", queue);
    return changed(detail::pg_sql::resume_queue, params(0.0).add_text(queue));
  }

  /// The paused queues, by name (bytewise order, as on SQLite).
  std::vector<std::string> paused_queues() {
    const detail::pg::Rows rows = run(detail::pg_sql::paused_queues, params(0.0));
    std::vector<std::string> paused;
    for (int row = 0; row < rows.size(); ++row)
      paused.emplace_back(rows.text(row, 0));
    return paused;
  }

  /// The scheduler's clock: PgOptions::clock (or the system clock), plus clock_skew() when
  /// PgOptions::server_clock is set.
  TimePoint now() const {
    const TimePoint host = options_.clock ? options_.clock() : system_now();
    return options_.server_clock ? host + skew_ : host;
  }

  /// How far the server's clock is ahead of the host's (PgOptions::clock), negative when
  /// behind: measured when the scheduler connected (within half a round trip), or at the
  /// last measure_clock_skew().
  Seconds clock_skew() const noexcept { return skew_; }

  /// Measures clock_skew() again (clocks drift), and returns it.
  Seconds measure_clock_skew() {
    const TimePoint before = options_.clock ? options_.clock() : system_now();
    const double server = detail::pg::run(db(), detail::pg_sql::server_time).real(0, 0);
    const TimePoint after = options_.clock ? options_.clock() : system_now();
    const TimePoint middle = before + (after - before) / 2;
    skew_ = from_unix_seconds(server) - middle;
    return skew_;
  }

  /// The schema's version before this scheduler opened it (0: it was created now).
  int migrated_from() const noexcept { return migrated_from_; }

  /// The schema version in use (the store's own numbering).
  int schema_version() const noexcept { return detail::pg_sql::schema_version; }

  /// The schema that holds the tables.
  const std::string& schema() const noexcept { return options_.schema; }

  /// The libpq connection, for the host's own statements and transactions. One the scheduler
  /// opened is connected again, at the next call, after the server closed it.
  PGconn* handle() const noexcept { return connection_.get(); }

 private:
  PgScheduler(detail::pg::ConnectionPtr connection, Ownership ownership, PgOptions options)
      : connection_(std::move(connection)),
        ownership_(ownership),
        options_(std::move(options)),
        quoted_schema_(detail::pg::quoted(options_.schema)),
        prefix_("jobsched_" + std::to_string(next_instance()) + "_") {
    migrated_from_ = detail::pg::migrate(connection_.get(), options_.schema).before;
    measure_clock_skew();
  }

  // A process-wide count, so that schedulers sharing a connection name their statements apart.
  static std::uint64_t next_instance() {
    static std::atomic<std::uint64_t> count{0};
    return ++count;
  }

  std::string statement_name(std::size_t index) const {
    return prefix_ + detail::pg_sql::statements[index].name;
  }

  // Runs the statement `id` with `values` (whose first two are now and the default limit).
  detail::pg::Rows run(detail::pg_sql::Id id, const detail::pg::Params& values) {
    const auto index = static_cast<std::size_t>(id);
    std::unique_ptr<detail::pg::Prepared>& statement = statements_[index];
    if (!statement) {
      statement = std::make_unique<detail::pg::Prepared>(
          statement_name(index),
          detail::pg_sql::in_schema(detail::pg_sql::statements[index].sql, quoted_schema_));
    }
    return statement->run(db(), values);
  }

  bool changed(detail::pg_sql::Id id, const detail::pg::Params& values) {
    return run(id, values).changed() > 0;
  }

  // $1 now and $2 the default limit on attempts, which every statement takes.
  detail::pg::Params params(double at) const {
    detail::pg::Params values;
    values.add(at).add(options_.retry.max_attempts);
    return values;
  }

  // now, then the claim's job and token ($3, $4).
  detail::pg::Params held_by(const Claim& claim, double at) const {
    detail::pg::Params values = params(at);
    values.add(claim.job_id).add(claim.token);
    return values;
  }

  detail::CheckedTimes checked_new_job(const Payload& data, const JobOptions& options) const {
    refuse_unique(options);
    detail::pg::check_text("the queue", options.queue);
    return detail::checked_new_job(data, options, now());
  }

  static void refuse_unique(const JobOptions& options) {
    if (options.unique) {
      detail::throw_invalid("unique jobs (JobOptions::unique) are not supported on PostgreSQL "
                            "yet; key '" + options.unique->key + "' was not added");
    }
  }

  std::int64_t insert(const Payload& data, const JobOptions& options,
                      const detail::CheckedTimes& times) {
    detail::pg::Params values = params(times.created_at);
    detail::pg::add_payload(values, data);
    values.add(times.created_at).add(times.starts_at).add(times.expires_at);
    values.add(options.priority).add_text(options.queue).add(options.max_attempts);
    values.add(seconds(options.initial_backoff)).add(seconds(options.max_backoff));
    return run(detail::pg_sql::insert_job, values).int64(0, 0);
  }

  static std::optional<double> seconds(std::optional<Seconds> value) {
    if (!value)
      return std::nullopt;
    return value->count();
  }

  std::optional<JobDelay> next_due(const detail::pg::Params& values, double at) {
    const detail::pg::Rows rows = run(detail::pg_sql::next_due, values);
    if (rows.empty())
      return std::nullopt;
    return JobDelay{rows.int64(0, 0), Seconds{std::max(0.0, rows.real(0, 1) - at)}};
  }

  std::vector<ClaimedJob> claim(std::size_t limit, Seconds lease,
                                const std::vector<std::string>* queues,
                                std::optional<TimePoint> now) {
    const double at = checked_now(now);
    const double until = detail::lease_end(at, lease);
    detail::pg::Params values = params(at);
    values.add(until);
    if (queues != nullptr)
      values.add_text(text_array(*queues));
    else
      values.add_null();
    values.add(static_cast<std::int64_t>(limit));
    const detail::pg::Rows rows = run(detail::pg_sql::claim_jobs, values);
    std::vector<ClaimedJob> claimed;
    claimed.reserve(static_cast<std::size_t>(rows.size()));
    for (int row = 0; row < rows.size(); ++row) {
      ClaimedJob job{detail::pg::read_job(rows, row), {}};
      job.claim = Claim{job.job.id, rows.int64(row, detail::pg::job_columns),
                        from_unix_seconds(until)};
      claimed.push_back(std::move(job));
    }
    // RETURNING gives no order: claim order, as the rows were picked.
    std::sort(claimed.begin(), claimed.end(), [](const ClaimedJob& a, const ClaimedJob& b) {
      if (a.job.priority != b.job.priority)
        return a.job.priority > b.job.priority;
      if (a.job.starts_at != b.job.starts_at)
        return a.job.starts_at < b.job.starts_at;
      return a.job.id < b.job.id;
    });
    return claimed;
  }

  bool fail_claim(const Claim& claim, std::string_view error, double at) {
    const detail::pg::Rows held = run(detail::pg_sql::select_claimed, held_by(claim, at));
    if (held.empty())
      return false;
    detail::HeldJob job;
    job.attempts = static_cast<int>(held.int64(0, 0));
    if (!held.is_null(0, 1))
      job.max_attempts = static_cast<int>(held.int64(0, 1));
    job.initial_backoff = held.optional_real(0, 2);
    job.max_backoff = held.optional_real(0, 3);
    job.created_at = held.real(0, 4);
    job.expires_at = held.optional_real(0, 5);
    const std::optional<double> when = detail::retry_time(job, options_.retry, random_, at);
    if (when)
      run(detail::pg_sql::retry_later, held_by(claim, at).add(*when).add_text(detail::pg::storable_text(error)));
    else
      run(detail::pg_sql::fail_for_good, held_by(claim, at).add_text(detail::pg::storable_text(error)));
    return true;
  }

  template <class Item, class SettleOne>
  std::vector<bool> settle_all(const std::vector<Item>& items, double at, SettleOne settle_one) {
    std::vector<bool> answers;
    answers.reserve(items.size());
    detail::pg::Transaction transaction(db());
    for (const Item& item : items)
      answers.push_back(settle_one(item, at));
    transaction.commit();
    return answers;
  }

  // A PostgreSQL array literal of `values`: {"a","b"}, each quoted, '"' and '\' escaped.
  static std::string text_array(const std::vector<std::string>& values) {
    for (const std::string& value : values)
      detail::pg::check_text("the queue", value);
    std::string literal = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
      literal += i == 0 ? "\"" : ",\"";
      for (const char c : values[i]) {
        if (c == '"' || c == '\\')
          literal += '\\';
        literal += c;
      }
      literal += '"';
    }
    return literal + "}";
  }

  // The connection string with any password left out, for an error message.
  static std::string described(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (options == nullptr) {
      std::string reason = error != nullptr ? error : "it cannot be parsed";
      PQfreemem(error);
      while (!reason.empty() && reason.back() == '\n')
        reason.pop_back();
      return "(unreadable: " + reason + ")";
    }
    std::string text;
    for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
      if (option->val == nullptr || option->val[0] == '\0' ||
          std::string_view(option->keyword) == "password")
        continue;
      text += (text.empty() ? "" : " ") + std::string(option->keyword) + "=" + option->val;
    }
    PQconninfoFree(options);
    return text;
  }

  double checked_now(std::optional<TimePoint> time, const char* name = "now") const {
    return detail::checked_time(name, time ? *time : now());
  }

  // The connection, connected again first when the server closed it (a restart, a
  // terminated session) and it is the scheduler's own: the call that met the loss threw
  // IoError, not knowing whether its change committed; the next one starts a new session.
  PGconn* db() {
    if (ownership_ == Ownership::owned && PQstatus(connection_.get()) == CONNECTION_BAD)
      reconnect();
    return connection_.get();
  }

  void reconnect() {
    PQreset(connection_.get());
    if (PQstatus(connection_.get()) != CONNECTION_OK) {
      detail::pg::throw_connection_error(connection_.get(),
                                         "lost the connection to PostgreSQL and cannot connect "
                                         "again");
    }
    detail::pg::set_lock_timeout(connection_.get(), options_.busy_timeout);
    for (std::unique_ptr<detail::pg::Prepared>& statement : statements_) {
      if (statement)
        statement->forget();
    }
    measure_clock_skew();  // perhaps another server now (a failover)
  }

  detail::pg::ConnectionPtr connection_;
  Ownership ownership_ = Ownership::owned;
  PgOptions options_;
  std::string quoted_schema_;
  std::string prefix_;
  int migrated_from_ = 0;
  Seconds skew_{0};
  std::array<std::unique_ptr<detail::pg::Prepared>, detail::pg_sql::statement_count> statements_;
  std::mt19937_64 random_{std::random_device{}()};
};

}  // namespace jobsched
