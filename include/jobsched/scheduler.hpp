// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cmath>
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
#include "detail/counts.hpp"
#include "detail/events.hpp"
#include "detail/job_order.hpp"
#include "detail/job_row.hpp"
#include "detail/many_rows.hpp"
#include "detail/new_job.hpp"
#include "detail/settle.hpp"
#include "detail/sql.hpp"
#include "detail/sqlite.hpp"
#include "detail/statements.hpp"
#include "detail/transaction.hpp"
#include "detail/unique.hpp"
#include "detail/upkeep.hpp"
#include "detail/validate.hpp"
#include "detail/firing.hpp"
#include "detail/front.hpp"
#include "detail/listing.hpp"
#include "detail/stats.hpp"
#include "detail/retention.hpp"
#include "detail/wake.hpp"
#include "error.hpp"
#include "job.hpp"
#include "job_state.hpp"
#include "listing.hpp"
#include "migrations.hpp"
#include "options.hpp"
#include "retention.hpp"
#include "rule.hpp"
#include "schedule.hpp"
#include "stats.hpp"
#include "time.hpp"
#include "transaction.hpp"
#include "unique.hpp"

namespace jobsched {

/// A persistent schedule of jobs in one SQLite database.
///
/// Thread safety: one Scheduler is used by one thread at a time, like the SQLite connection
/// it wraps. Any number of schedulers, in any threads and processes, may share one file.
/// Every call that takes an optional time uses the scheduler's clock when it is empty.
class Scheduler {
 public:
  /// Opens (creating if needed) the database at `path`, or ":memory:", and upgrades its
  /// schema. Files use WAL. Throws InvalidArgumentError for an empty path, ReadOnlyError for
  /// a file or directory this process cannot write, SchemaError for a file this build cannot
  /// use, IoError when the file cannot be opened; every message names the path, and none of
  /// these writes anything. A failed upgrade leaves the file as it was.
  static Scheduler open(const std::string& path, Options options = {}) {
    detail::check_path(path);
    try {
      detail::check_sqlite_version(sqlite3_libversion_number());
      detail::check_options(options);
      return Scheduler(detail::open_connection(path, options.read_only), std::move(options));
    } catch (const Error& error) {
      rethrow_opening(error, path);
    }
  }

  /// Uses a connection the host already has, set up and migrated as `open` does (extended
  /// result codes on, the busy timeout applied). With Ownership::owned the scheduler closes
  /// it, even when adopt throws; with borrowed the host must keep it open for the
  /// scheduler's lifetime and close it afterwards. A read-only handle needs
  /// Options::read_only.
  static Scheduler adopt(sqlite3* db, Ownership ownership, Options options = {}) {
    detail::ConnectionPtr connection(
        db, detail::ConnectionCloser{ownership == Ownership::owned,
                                     detail::clamped_milliseconds(options.busy_timeout)});
    if (db == nullptr)
      detail::throw_invalid("adopt() needs an open sqlite3 handle, got null");
    const char* file = sqlite3_db_filename(db, "main");
    const std::string path = file == nullptr || *file == '\0' ? ":memory:" : file;
    try {
      detail::check_sqlite_version(sqlite3_libversion_number());
      detail::check_options(options);
      if (!options.read_only && sqlite3_db_readonly(db, "main") == 1) {
        throw ReadOnlyError(std::string(detail::message_prefix) +
                                "the handle is read-only (Options::read_only reads it)",
                            SQLITE_READONLY, SQLITE_READONLY);
      }
      return Scheduler(std::move(connection), std::move(options));
    } catch (const Error& error) {
      rethrow_opening(error, path);
    }
  }

  /// Movable: the moved-from scheduler may only be destroyed or assigned to.
  Scheduler(Scheduler&&) noexcept = default;
  /// Closes this scheduler's connection (if owned) and takes `other`'s.
  Scheduler& operator=(Scheduler&&) noexcept = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler() = default;

  /// Adds a job and returns it as stored. Refuses NaN, infinite and out-of-range times and
  /// created_at > starts_at > expires_at with InvalidArgumentError, before any SQL runs.
  /// With JobOptions::unique, when another job holds the key at now, its OnConflict decides:
  /// that job is returned, replaced and returned, or UniqueConflictError is thrown.
  Job add_job(Payload data, const JobOptions& options = {}) {
    const detail::CheckedTimes times = checked_new_job(data, options);
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &writes().transaction);
    const double state_at = state_time(times.created_at);
    move_on(state_at);
    bool inserted = true;
    Job job;
    if (options.unique) {
      detail::UniqueAdd unique = add_unique_job(std::move(data), options, times, state_at);
      inserted = unique.outcome == detail::UniqueOutcome::inserted;
      job = std::move(unique.job);
    } else {
      job = insert_job(std::move(data), options, times, state_at);
    }
    transaction.commit();
    if (inserted && events_)
      emit(EventKind::added, job, state_at);
    events.deliver();
    job_added();
    return job;
  }

  /// Adds every job in one transaction (one commit, so many times faster than one at a
  /// time) and returns them as stored, in order. Every job is checked first: a bad one is
  /// refused with InvalidArgumentError naming its place in the list, and none is added.
  /// Unique keys conflict with earlier jobs of the list as with stored ones; every entry of
  /// one job shows it as the list left it; a UniqueConflictError adds none.
  std::vector<Job> add_jobs(std::vector<NewJob> jobs) {
    const std::vector<detail::CheckedTimes> times = detail::checked_new_jobs(jobs, now());
    std::vector<Job> added;
    added.reserve(jobs.size());
    std::vector<bool> inserted;  // for the events: which of `added` this call inserted
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &writes().transaction);
    const double state_at = state_time(times.empty() ? 0.0 : times.front().created_at);
    move_on(state_at, jobs.size());
    std::optional<detail::UniqueBatch> keyed;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (!jobs[i].options.unique) {
        // The jobs without a key from here on, many to a statement.
        std::size_t end = i + 1;
        while (end < jobs.size() && !jobs[end].options.unique)
          ++end;
        detail::insert_jobs(db(), writes(), insert_many_, jobs, times, i, end, state_at, added);
        inserted.resize(added.size(), true);
        i = end - 1;
        continue;
      }
      if (!keyed)
        keyed.emplace(jobs.size());
      keyed->add(i, added, [&] {
        detail::UniqueAdd unique =
            add_unique_job(std::move(jobs[i].data), jobs[i].options, times[i], state_at);
        inserted.push_back(unique.outcome == detail::UniqueOutcome::inserted);
        return unique;
      });
    }
    if (keyed)
      keyed->finish(added);
    transaction.commit();
    if (events_) {
      for (std::size_t i = 0; i < added.size(); ++i) {
        if (inserted[i])
          emit(EventKind::added, added[i], state_at);
      }
    }
    events.deliver();
    if (!added.empty())
      job_added();
    return added;
  }

  /// Adds a job that starts `starts_after` after its creation and, if `expires_after` is
  /// given, expires that long after its creation. Durations must be finite and not negative.
  Job add_job_from_now(Payload data, Seconds starts_after,
                       std::optional<Seconds> expires_after = std::nullopt,
                       std::optional<TimePoint> created_at = std::nullopt) {
    return add_job(std::move(data),
                   detail::options_from_now(starts_after, expires_after, created_at, now()));
  }

  /// The job with this id, whatever its state at `now`, or empty if there is none. A job
  /// whose lease ran out on its last attempt shows as failed at that lease's end.
  std::optional<Job> get_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(reads().select_job);
    bind_now(run, checked_now(now));
    run.bind(2, id);
    if (!run.step())
      return std::nullopt;
    return detail::read_job(run);
  }

  /// The pending, unlocked job with the earliest start (then the lowest id), due or not.
  std::optional<Job> next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    make_due_firings(at);
    const detail::ReadTransaction snapshot = read_transaction();
    const std::optional<detail::Candidate> next = order(at).first_in_start_order(nullptr);
    return next ? job_by_id(next->id, at) : std::nullopt;
  }

  /// The next job's id and the time until it can be claimed: next_job's job when one is due;
  /// else whichever becomes free first, at its start or at the end of the lease that holds
  /// it. Never negative (a late job's lateness is `now - starts_at`); empty when no job is
  /// pending but locked ones.
  std::optional<JobDelay> seconds_until_next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    make_due_firings(at);
    const detail::ReadTransaction snapshot = read_transaction();
    return detail::delay_until(order(at).first_due(nullptr), at);
  }

  /// As above, counting only jobs in `queues`.
  std::optional<JobDelay> seconds_until_next_job(const std::vector<std::string>& queues,
                                                 std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    const double at = checked_now(now);
    make_due_firings(at);
    const detail::ReadTransaction snapshot = read_transaction();
    return detail::delay_until(order(at).first_due(&queues), at);
  }

  /// How many jobs are neither completed, failed nor expired at `now`, locked or not.
  std::int64_t count_pending_jobs(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(reads().count_pending_jobs);
    bind_now(run, checked_now(now));
    run.step();
    return run.column_int64(0);
  }

  /// Marks the job completed, whatever its state (ending any lock, claim or failure). True
  /// when the job exists; a job completed again stays completed at its first completion time.
  bool complete_job(std::int64_t id, std::optional<TimePoint> completed_at = std::nullopt) {
    const double at = checked_now(completed_at, "completed_at");
    detail::Run run(writes().complete_job);
    run.bind(2, id).bind(3, at);
    return run.execute() > 0;
  }

  /// Deletes the job. True when it existed.
  bool delete_job(std::int64_t id) {
    detail::WriteStatements& write = writes();
    detail::WriteTransaction transaction(db(), &write.transaction);
    detail::Run(write.delete_payload).bind(2, id).execute();
    const bool deleted = detail::Run(write.delete_job).bind(2, id).execute() > 0;
    transaction.commit();
    return deleted;
  }

  /// Deletes every completed job; returns how many went.
  std::int64_t delete_completed_jobs() {
    detail::WriteStatements& write = writes();
    return delete_many(write.delete_completed_payloads, write.delete_completed_jobs, 0.0);
  }

  /// Deletes every job expired at `now` (completed and failed jobs never expire); returns how
  /// many went.
  std::int64_t delete_expired_jobs(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteStatements& write = writes();
    return delete_many(write.delete_expired_payloads, write.delete_expired_jobs, at);
  }

  /// Locks a pending job that nobody holds so it no longer shows as next: a claim whose
  /// lease never runs out. True when this call locked it. unlock_job or complete_job ends it.
  bool lock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(writes().lock_job);
    bind_now(run, checked_now(now));
    run.bind(2, id);
    return run.execute() > 0;
  }

  /// Ends the lock or claim on a job, if any. True when the job exists (held or not), as the
  /// successor library answers.
  bool unlock_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(writes().unlock_job);
    bind_now(run, checked_now(now));
    run.bind(2, id);
    return run.execute() > 0;
  }

  /// Atomically locks and returns the job next_job(now) would return; empty if none.
  /// Of many schedulers calling it at once, each gets a different job.
  std::optional<Job> lock_next_job(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteStatements& write = writes();
    detail::WriteTransaction transaction(db(), &write.transaction);
    const std::optional<detail::Candidate> next =
        detail::JobOrder(reads(), at, options_.retry.max_attempts, move_on(at))
            .first_in_start_order(nullptr);
    std::optional<Job> locked;
    if (next) {
      detail::Run run(write.lock_job_by_id);
      run.bind(1, at).bind(2, next->id);
      if (run.execute() > 0)
        locked = job_by_id(next->id, at);
    }
    transaction.commit();
    return locked;
  }

  /// Claims the due, free job that comes first (higher priority, then earlier start, then
  /// lower id) in any queue, leasing it for `lease`: no other claim gets it until the lease
  /// runs out, and then it counts as a failed attempt. Jobs whose lease ran out on their last
  /// attempt are marked failed on the way. One write transaction; empty when nothing is due.
  std::optional<ClaimedJob> claim_next_job(Seconds lease,
                                           std::optional<TimePoint> now = std::nullopt) {
    return detail::first_claimed(claim(1, lease, nullptr, now));
  }

  /// As above, from the named queues only ("" is the default queue).
  std::optional<ClaimedJob> claim_next_job(Seconds lease, const std::vector<std::string>& queues,
                                           std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    return detail::first_claimed(claim(1, lease, &queues, now));
  }

  /// Claims up to `limit` due jobs in claim order, in one write transaction, each with its
  /// own claim; fewer (or none) when fewer are due. `limit` must be at least 1.
  std::vector<ClaimedJob> claim_jobs(std::size_t limit, Seconds lease,
                                     std::optional<TimePoint> now = std::nullopt) {
    return claim(detail::checked_limit(limit), lease, nullptr, now);
  }

  /// As above, from the named queues only ("" is the default queue).
  std::vector<ClaimedJob> claim_jobs(std::size_t limit, Seconds lease,
                                     const std::vector<std::string>& queues,
                                     std::optional<TimePoint> now = std::nullopt) {
    detail::check_queues(queues);
    return claim(detail::checked_limit(limit), lease, &queues, now);
  }

  /// Completes a claimed job. False, changing nothing, when the claim is stale: its lease ran
  /// out and the job was claimed again or failed (on its last attempt), or it was failed,
  /// released, unlocked or deleted.
  bool complete(const Claim& claim, std::optional<TimePoint> now = std::nullopt) {
    detail::EventScope events(events_.get());
    const double at = checked_now(now);
    const bool completed = settle(writes().complete_claim, claim, at);
    events.deliver();
    return completed;
  }

  /// Completes a claimed job and stores `result` with it (get_job shows it as Job::result).
  /// False, changing nothing, when the claim is stale.
  bool complete(const Claim& claim, const Payload& result,
                std::optional<TimePoint> now = std::nullopt) {
    detail::EventScope events(events_.get());
    const double at = checked_now(now);
    const bool completed = settled(claim, at, EventKind::completed, {}, [&] {
      detail::Run run(writes().complete_claim_with_result);
      run.bind(1, at).bind(2, claim.job_id).bind(3, claim.token);
      detail::bind_payload(run, 4, result);
      return run.execute() > 0;
    });
    events.deliver();
    return completed;
  }

  /// Gives a claimed job back to run again `delay` from now, without spending the attempt
  /// (it starts no later than its expiry). False, changing nothing, when the claim is stale.
  bool snooze(const Claim& claim, Seconds delay, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const double seconds = delay.count();
    if (!std::isfinite(seconds) || seconds < 0) {
      detail::throw_invalid("a snooze's delay must be finite and not negative, got " +
                            detail::format_seconds(seconds) + " s");
    }
    const double until = detail::checked_time("the snooze's end", from_unix_seconds(at + seconds));
    detail::EventScope events(events_.get());
    const bool snoozed = settled(claim, at, EventKind::snoozed, {}, [&] {
      detail::Run run(writes().snooze_claim);
      run.bind(1, at).bind(2, claim.job_id).bind(3, claim.token).bind(4, until);
      return run.execute() > 0;
    });
    events.deliver();
    return snoozed;
  }

  /// Cancels a job that is neither completed, failed nor expired: it never runs, and a claim
  /// on it goes stale (its complete, extend or fail answers false). The job is kept, failed
  /// for good, with `reason` as its last error and `cancelled_at` set, until deleted. False,
  /// changing nothing, for any other job.
  bool cancel_job(std::int64_t id, std::string_view reason = "cancelled",
                  std::optional<TimePoint> now = std::nullopt) {
    detail::EventScope events(events_.get());
    const double at = checked_now(now);
    detail::Run run(writes().cancel_job);
    bind_now(run, at);
    run.bind(2, id).bind_text(3, reason);
    const bool cancelled = run.execute() > 0;
    if (cancelled && events_)
      emit(EventKind::cancelled, event_job(id, at), at, std::nullopt, std::string(reason));
    events.deliver();
    return cancelled;
  }

  /// Completes every claimed job in one transaction. Each answer is complete's for its
  /// claim: false, changing nothing for it, when that claim is stale.
  std::vector<bool> complete_all(const std::vector<Claim>& claims,
                                 std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    // Many to a statement, unless each needs its event, or a job comes twice.
    if (events_ || claims.size() < 2 || detail::repeats_a_job(claims)) {
      return settle_all(claims, at, [&](const Claim& claim, double when) {
        return settle(writes().complete_claim, claim, when);
      });
    }
    detail::WriteTransaction transaction(db(), &writes().transaction);
    std::vector<bool> answers(claims.size());
    for (std::size_t first = 0; first < claims.size(); first += detail::rows_per_settle) {
      detail::complete_many(many_rows(), claims, first,
                            std::min(claims.size(), first + detail::rows_per_settle), at, answers);
    }
    transaction.commit();
    return answers;
  }

  /// Records every failed attempt in one transaction, each as fail does; false for a
  /// stale claim.
  std::vector<bool> fail_all(const std::vector<ClaimFailure>& failures,
                             std::optional<TimePoint> now = std::nullopt) {
    return settle_all(failures, checked_now(now), [&](const ClaimFailure& failure, double at) {
      return fail_claim(failure.claim, failure.error, at);
    });
  }

  /// Gives every claimed job back in one transaction, each as release does; false for a
  /// stale claim.
  std::vector<bool> release_all(const std::vector<Claim>& claims,
                                std::optional<TimePoint> now = std::nullopt) {
    return settle_all(claims, checked_now(now), [&](const Claim& claim, double at) {
      return settle(writes().release_claim, claim, at);
    });
  }

  /// Records a failed attempt with its error. The job returns after the retry policy's
  /// backoff (never past its expiry), or, after its last attempt, is failed for good: kept,
  /// neither pending nor expired. False, changing nothing, when the claim is stale.
  bool fail(const Claim& claim, std::string_view error,
            std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &writes().transaction);
    const bool failed = fail_claim(claim, error, at);
    transaction.commit();
    events.deliver();
    return failed;
  }

  /// Extends a claim's lease to `lease` from now (a heartbeat), updating `claim` to the end
  /// stored. A lease never moves earlier: when `now + lease` is before its end, it stays.
  /// False, changing nothing, when the claim is stale.
  bool extend(Claim& claim, Seconds lease, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const double until = detail::lease_end(at, lease);
    detail::EventScope events(events_.get());
    detail::Run run(writes().extend_claim);
    bind_now(run, at);
    run.bind(2, claim.job_id).bind(3, claim.token).bind(4, until);
    if (!run.step()) {
      if (events_)
        emit(EventKind::lease_lost, event_job(claim.job_id, at), at);
      events.deliver();
      return false;
    }
    const double stored = run.column_double(0);
    run.execute();  // finish the statement so its write commits now
    claim.lease_until = from_unix_seconds(stored);
    return true;
  }

  /// Gives a claimed job back without counting the attempt: it is free again at once.
  /// False, changing nothing, when the claim is stale.
  bool release(const Claim& claim, std::optional<TimePoint> now = std::nullopt) {
    detail::EventScope events(events_.get());
    const double at = checked_now(now);
    const bool released = settle(writes().release_claim, claim, at);
    events.deliver();
    return released;
  }

  /// Jobs failed for good at `now`, in the order they failed (then by id). A read: jobs whose
  /// lease ran out on their last attempt are listed, failed at that lease's end, whether or
  /// not a write has marked them yet.
  std::vector<Job> failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(reads().select_failed_jobs);
    bind_now(run, checked_now(now));
    std::vector<Job> jobs;
    while (run.step())
      jobs.push_back(detail::read_job(run));
    return jobs;
  }

  /// Puts a failed job back in the schedule, due now, with its attempts reset (its last
  /// error kept). A job whose expiry has passed stays expired. True when it was failed.
  bool retry_job(std::int64_t id, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteStatements& write = writes();
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &write.transaction);
    fail_abandoned_jobs(at);
    auto retry = [&] {
      detail::Run run(write.retry_job);
      run.bind(1, at).bind(2, id);
      return run.execute() > 0;
    };
    bool retried = false;
    try {
      retried = retry();
    } catch (const ConstraintError& error) {
      // ix_job_unique: another open job has its key; retried when that one lets go of it.
      if (error.extended_code() != SQLITE_CONSTRAINT_UNIQUE ||
          !detail::free_key_for_retry(unique_statements(), id, at))
        throw;
      retried = retry();
    }
    if (retried && events_)
      emit(EventKind::retried, event_job(id, at), at);
    transaction.commit();
    events.deliver();
    return retried;
  }

  /// Deletes every job failed by `now`; returns how many went.
  std::int64_t delete_failed_jobs(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    detail::WriteStatements& write = writes();
    detail::WriteTransaction transaction(db(), &write.transaction);
    fail_abandoned_jobs(at);
    const std::int64_t deleted =
        delete_many(write.delete_failed_payloads, write.delete_failed_jobs, at);
    transaction.commit();
    return deleted;
  }

  /// Deletes the jobs older than `ages` at `now`, by kind (completed, failed, cancelled),
  /// with their payloads, in write transactions of at most 100 jobs each, pausing between
  /// them so that other writers get the lock; then checkpoints without waiting, bringing the
  /// -wal file back under Options::wal_size_limit when no reader is in the way. Idempotent,
  /// safe from many processes at once; within the host's transaction it joins it. Throws
  /// InvalidArgumentError for a negative or non-finite age, deleting nothing.
  PruneResult prune(const PruneAges& ages, std::optional<TimePoint> now = std::nullopt) {
    detail::check_prune_ages(ages);
    const double at = checked_now(now);
    return retention_.prune(db(), writes().transaction, *busy_wait_, options_.wal_size_limit,
                            ages, at);
  }

  /// A write transaction for the host's own writes and any scheduler calls between, so that
  /// they commit or roll back together (see Transaction): `auto tx = s.transaction(); ...;
  /// tx.commit();`. ReadOnlyError on a read-only scheduler.
  Transaction transaction() {
    return Transaction(db(), &writes().transaction, file_, events_.get());
  }

  /// Delivers to Options::on_event the events of a transaction the host committed itself
  /// on handle(), now rather than at the next call. Does nothing inside a transaction.
  void deliver_events() noexcept {
    if (events_)
      events_->deliver();
  }

  /// After the clock was set back: cuts each live lease that now looks longer than it was
  /// asked for (it was granted after `now`) to its length from now, so that a job whose
  /// holder died is not stranded until the clock catches up. Leases of jobs in `keep` (the
  /// caller's own, which it goes on extending) stay. Returns how many it cut. One write
  /// transaction over the live leases; a Worker calls it when its clock steps back.
  std::int64_t cut_overlong_leases(std::optional<TimePoint> now = std::nullopt,
                                   const std::vector<std::int64_t>& keep = {}) {
    const double at = checked_now(now);
    detail::WriteStatements& write = writes();
    detail::WriteTransaction transaction(db(), &write.transaction);
    std::vector<std::int64_t> overlong;
    // Held jobs, and jobs moved on from a lease that ran out before the clock went back.
    for (const std::int64_t state : {0, 1, 2, 3, 5}) {
      detail::Run run(write.overlong_leases);
      run.bind(1, at).bind(2, state);
      while (run.step()) {
        const std::int64_t id = run.column_int64(0);
        if (std::find(keep.begin(), keep.end(), id) == keep.end())
          overlong.push_back(id);
      }
    }
    std::int64_t cut = 0;
    for (const std::int64_t id : overlong) {
      detail::Run run(write.cut_lease);
      run.bind(1, at).bind(2, id);
      cut += run.execute();
    }
    transaction.commit();
    return cut;
  }

  /// Pauses `queue` ("" is the default queue) in every process: claims, lock_next_job,
  /// next_job and seconds_until_next_job pass over its jobs until resume_queue, and Workers
  /// stop taking them; jobs already claimed run on, adds still add, and count_pending_jobs
  /// counts them. A queue with no jobs may be paused. True when it was not paused already.
  bool pause_queue(const std::string& queue, std::optional<TimePoint> now = std::nullopt) {
    detail::Run run(writes().pause_queue);
    run.bind(1, checked_now(now)).bind_text(2, queue);
    return run.execute() > 0;
  }

  /// Lets claims take `queue`'s jobs again (Workers waiting notice at once). True when it
  /// was paused.
  bool resume_queue(const std::string& queue) {
    detail::Run run(writes().resume_queue);
    run.bind_text(2, queue);
    const bool resumed = run.execute() > 0;
    if (resumed)
      job_added();
    return resumed;
  }

  /// The paused queues, by name.
  std::vector<std::string> paused_queues() {
    std::vector<std::string> paused;
    detail::Run run(reads().paused_queues);
    while (run.step())
      paused.emplace_back(run.column_text(0));
    return paused;
  }

  /// Creates the schedule `name`, or updates it to `rule` and `options`; putting the same
  /// definition again changes nothing, so a program may declare its schedules at every start.
  /// The next firing is made at once, as a job that starts at the fire time (an update makes
  /// it again, unless it was claimed). A paused schedule stays paused. Returns it as stored.
  Schedule put_schedule(const std::string& name, const Rule& rule,
                        const ScheduleOptions& options = {},
                        std::optional<TimePoint> now = std::nullopt) {
    detail::check_schedule_name(name);
    detail::check_schedule_options(options);
    const double at = checked_now(now);
    {
      detail::WriteTransaction transaction(db(), &writes().transaction);
      detail::Firings firings = firing_maker();
      const std::optional<detail::StoredSchedule> old =
          detail::find_schedule(schedule_statements(), name);
      if (!old) {
        firings.create(name, rule, options, at);
      } else if (!old->rule || *old->rule != rule || !detail::same_options(old->options, options)) {
        firings.redefine(*old, rule, options, at);
      }
      transaction.commit();
    }
    return *get_schedule(name);
  }

  /// The schedule named `name`; empty when there is none. SchemaError when its stored rule
  /// is not one this build reads.
  std::optional<Schedule> get_schedule(const std::string& name) {
    const std::optional<detail::StoredSchedule> stored =
        detail::find_schedule(schedule_statements(), name);
    if (!stored)
      return std::nullopt;
    return stored->to_schedule();
  }

  /// Every schedule, by name.
  std::vector<Schedule> schedules() { return detail::all_schedules(schedule_statements()); }

  /// Stops the schedule making firings (its firing made ahead is taken back unless claimed)
  /// until resumed. False when there is no such schedule.
  bool pause_schedule(const std::string& name, std::optional<TimePoint> now = std::nullopt) {
    return change_schedule(name, now, [](detail::Firings& firings,
                                         const detail::StoredSchedule& schedule, double at) {
      if (!schedule.paused)
        firings.pause(schedule, at);
    });
  }

  /// Starts a paused schedule again from now: the firings that fell due while it was paused
  /// are not made. False when there is no such schedule.
  bool resume_schedule(const std::string& name, std::optional<TimePoint> now = std::nullopt) {
    return change_schedule(name, now, [](detail::Firings& firings,
                                         const detail::StoredSchedule& schedule, double at) {
      if (schedule.paused)
        firings.resume(schedule, at);
    });
  }

  /// Deletes the schedule, and its firing made ahead unless claimed; the jobs it made before
  /// stay. False when there is no such schedule.
  bool delete_schedule(const std::string& name, std::optional<TimePoint> now = std::nullopt) {
    return change_schedule(name, now, [](detail::Firings& firings,
                                         const detail::StoredSchedule& schedule, double at) {
      firings.remove(schedule, at);
    });
  }

  /// One page of the jobs in `query.state` at `now` (every job, by id, when empty), in the
  /// order of the time that state is about, then id: scheduled and available by start,
  /// running by lease end (then locks, which never end, by start), completed by completion,
  /// failed and cancelled by failure, expired by expiry. Keyset pagination: pass the page's
  /// next_after as `query.after` (each job once, none skipped, equal times included).
  /// O(log n + page) a page, plus the rows passed over: those of other queues when a queue
  /// is named, cancelled ones when listing failed ones, and jobs whose stored state
  /// lags behind `now` (as many as the claims have not moved on yet). InvalidArgumentError
  /// for a limit outside 1 to max_page_size, and for an `after` with no such job or one
  /// that left the state.
  JobPage list_jobs(const JobQuery& query = {}, std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const detail::ReadTransaction snapshot = read_transaction();
    return detail::list_jobs(detail::listing_statements(listing_statements_, db(), needs_upgrade()),
                             reads(), query, at, options_.retry.max_attempts);
  }

  /// The jobs by queue and state at `now`, the lateness of each queue's oldest due job, the
  /// schema version and the number of schedules, in one read transaction. Its pending counts
  /// are count_pending_jobs's. In a file that keeps its counts (keep_counts), O(queues ×
  /// states × log n), plus the jobs whose stored state lags behind `now` (as for
  /// count_pending_jobs). Otherwise counting reads every job's index entry (completed, failed
  /// and cancelled ones each with its row, for its queue): O(n), some 0.5 s at 1,000,000.
  Stats stats(std::optional<TimePoint> now = std::nullopt) {
    const double at = checked_now(now);
    const detail::ReadTransaction snapshot = read_transaction();
    return detail::read_stats(detail::stats_statements(stats_statements_, db(), needs_upgrade()),
                              reads(), at, options_.retry.max_attempts, schema_.version);
  }

  /// Keeps (true) or stops keeping (false) the counts of jobs by queue and state in the file,
  /// maintained by triggers in every connection's and process's writes, the host's own SQL
  /// included, so that stats need not walk the jobs. Turning them on counts every job once
  /// (O(n)); each later write transaction that changes a count writes one more page (one
  /// WAL frame), some 25 % more instructions on a claim and complete. Either call is
  /// idempotent; true again recounts when a trigger went missing. One write transaction
  /// (joining the caller's). ReadOnlyError when read-only.
  void keep_counts(bool on) { detail::keep_counts(db(), writes().transaction, on); }

  /// True when the file keeps its counts (keep_counts).
  bool counts_kept() {
    const detail::Statement kept(db(), detail::sql::counts_kept);
    return detail::counts_kept(kept);
  }

  /// A number that changes whenever another connection commits to the file: a cheap way
  /// to notice their new jobs (SQLite's `PRAGMA data_version`).
  std::int64_t data_version() {
    detail::Run run(reads().data_version);
    run.step();
    return run.column_int64(0);
  }

  /// The database file's absolute path; empty for an in-memory database.
  const std::string& file() const noexcept { return file_; }

  /// The scheduler's current time, from its clock.
  TimePoint now() const { return options_.clock ? options_.clock() : system_now(); }

  /// The version this scheduler migrated the file from when it opened it: -1 when it created
  /// the schema in a new or empty file, 0 to 3 for an older job file; empty when the file
  /// was already current (or another connection migrated it first), and when read-only.
  std::optional<int> migrated_from() const noexcept { return schema_.migrated_from; }

  /// The file's schema version as this scheduler reads it: current_schema_version, unless
  /// the scheduler is read-only and the file is older (-1 for a file with no job table).
  int schema_version() const noexcept { return schema_.version; }

  /// True for a read-only scheduler on a file at an older version: it reads the jobs as if
  /// upgraded (no leases, attempts or queues yet); opening it to write upgrades it.
  bool needs_upgrade() const noexcept { return schema_.version < current_schema_version; }

  /// True when opened with Options::read_only: every write call throws ReadOnlyError.
  bool read_only() const noexcept { return !statements_.write.has_value(); }

  /// The underlying SQLite handle, for the host's own statements and transactions.
  sqlite3* handle() const noexcept { return connection_.get(); }

 private:
  // Claims up to `limit` jobs in one write transaction.
  std::vector<ClaimedJob> claim(std::size_t limit, Seconds lease,
                                const std::vector<std::string>* queues,
                                std::optional<TimePoint> now) {
    detail::WriteStatements& write = writes();
    // A clock that answers nonsense is refused before waiting for anything; the clock is
    // read again once the write lock is held, so that waiting does not eat into the lease.
    detail::lease_end(checked_now(now), lease);
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &write.transaction);
    const double at = checked_now(now);
    const double until = detail::lease_end(at, lease);
    fail_abandoned_jobs(at);
    const detail::Lag lag = move_on(at, limit);
    detail::JobOrder order(reads(), at, options_.retry.max_attempts, lag);
    std::vector<ClaimedJob> claimed;
    // One query for the whole batch when no state lags, its jobs claimed many to a
    // statement; else one walk per job, and one statement.
    std::vector<detail::Candidate> batch;
    if (limit > 1)
      batch = order.first_claimable_batch(queues, limit);
    if (batch.size() > 1) {
      claim_batch(batch, at, until, claimed);
    } else if (batch.size() == 1) {
      claim_one(batch.front().id, at, until, claimed);
    } else {
      while (claimed.size() < limit) {
        const std::optional<detail::Candidate> best = order.first_claimable(queues);
        if (!best || !claim_one(best->id, at, until, claimed))
          break;
      }
    }
    transaction.commit();
    // The payloads, after the commit, so that reading a big one neither holds the write lock
    // nor delays the commit the lease counts from (a job deleted meanwhile keeps none); for a
    // batch, in one read transaction rather than one each.
    if (!claimed.empty()) {
      std::optional<detail::ReadTransaction> snapshot;
      if (claimed.size() > 1)
        snapshot.emplace(db(), reads().begin_read, reads().end_read);
      for (ClaimedJob& job : claimed) {
        detail::Run run(reads().select_payload);
        run.bind(2, job.job.id);
        if (run.step())
          job.job.data = detail::read_payload(run, 0);
      }
    }
    if (events_) {
      for (const ClaimedJob& job : claimed) {
        emit(EventKind::claimed, job.job, at,
             Seconds{std::max(0.0, at - to_unix_seconds(job.job.starts_at))});
      }
    }
    events.deliver();
    return claimed;
  }

  // Claims job `id`, claimable at `at`, until `until`, adding it to `claimed`; false when it
  // was not claimable after all.
  bool claim_one(std::int64_t id, double at, double until, std::vector<ClaimedJob>& claimed) {
    detail::WriteStatements& write = writes();
    {
      detail::Run update(write.claim_job);
      bind_now(update, at);
      update.bind(2, id).bind(3, until);
      if (update.execute() == 0)
        return false;
    }
    detail::Run run(write.select_claimed_job);
    bind_now(run, at);
    run.bind(2, id);
    if (!run.step())
      return false;
    Job job = detail::read_job(run);
    const std::int64_t token = run.column_int64(detail::job_columns);
    claimed.push_back(ClaimedJob{std::move(job), Claim{id, token, from_unix_seconds(until)}});
    return true;
  }

  // Claims the jobs of `batch`, claimable at `at`, until `until`, many to a statement,
  // adding them to `claimed` in order; stops after a job that was not claimable after all.
  void claim_batch(const std::vector<detail::Candidate>& batch, double at, double until,
                   std::vector<ClaimedJob>& claimed) {
    const auto bind = [&](detail::Run& run) { bind_now(run, at); };
    for (std::size_t first = 0; first < batch.size(); first += detail::rows_per_settle) {
      std::vector<std::int64_t> ids;
      for (std::size_t i = first; i < std::min(batch.size(), first + detail::rows_per_settle); ++i)
        ids.push_back(batch[i].id);
      std::vector<ClaimedJob> some = detail::claim_many(many_rows(), ids, until, bind);
      const bool all = some.size() == ids.size();
      for (ClaimedJob& job : some)
        claimed.push_back(std::move(job));
      if (!all)
        return;
    }
  }

  detail::ManyRowStatements& many_rows() {
    if (!many_rows_)
      many_rows_.emplace(db());
    return *many_rows_;
  }

  bool settle(detail::Statement& statement, const Claim& claim, double at) {
    const EventKind kind = &statement == &writes().release_claim ? EventKind::released
                                                                 : EventKind::completed;
    return settled(claim, at, kind, {}, [&] { return detail::settle(statement, claim, at); });
  }

  bool fail_claim(const Claim& claim, std::string_view error, double at) {
    return settled(claim, at, EventKind::retrying, error, [&] {
      return detail::fail_claim(writes(), options_.retry, random_, claim, error, at);
    });
  }

  // Runs `settle_one` (true when the claim settled the job) and, with an event hook, makes
  // its event: `kind` (retrying becomes failed when the job failed for good), or lease_lost
  // when the claim was stale. Only with a hook does it read the job, before and after.
  template <class SettleOne>
  bool settled(const Claim& claim, double at, EventKind kind, std::string_view error,
               SettleOne settle_one) {
    if (!events_)
      return settle_one();
    const std::optional<Job> before = job_by_id(claim.job_id, at);
    const bool ok = settle_one();
    Job after = event_job(claim.job_id, at);
    if (!ok) {
      emit(EventKind::lease_lost, std::move(after), at);
      return false;
    }
    if (kind == EventKind::retrying && after.failed_at)
      kind = EventKind::failed;
    std::optional<Seconds> ran;
    if (before && before->locked_at)
      ran = Seconds{at - to_unix_seconds(*before->locked_at)};
    emit(kind, std::move(after), at, std::nullopt, std::string(error), ran);
    return true;
  }

  // The job `id` at `at`, for an event; only its id when it is gone.
  Job event_job(std::int64_t id, double at) {
    std::optional<Job> job = job_by_id(id, at);
    if (job)
      return std::move(*job);
    Job gone;
    gone.id = id;
    return gone;
  }

  void emit(EventKind kind, Job job, double at, std::optional<Seconds> waited = std::nullopt,
            std::string error = {}, std::optional<Seconds> ran = std::nullopt) {
    Event event;
    event.kind = kind;
    event.job = std::move(job);
    event.at = from_unix_seconds(at);
    event.waited = waited;
    event.ran = ran;
    event.error = std::move(error);
    events_->add(std::move(event));
  }

  detail::CheckedTimes checked_new_job(const Payload& data, const JobOptions& options) const {
    return detail::checked_new_job(data, options, now());
  }

  Job insert_job(Payload data, const JobOptions& options, const detail::CheckedTimes& times,
                 double state_at) {
    return detail::insert_job(db(), writes(), std::move(data), options, times, state_at);
  }

  detail::UniqueAdd add_unique_job(Payload data, const JobOptions& options,
                                   const detail::CheckedTimes& times, double at) {
    return detail::add_unique_job(db(), reads(), writes(), unique_statements(), std::move(data),
                                  options, times, at);
  }

  detail::UniqueStatements& unique_statements() {
    writes();
    if (!unique_statements_)
      unique_statements_.emplace(db());
    return *unique_statements_;
  }

  // `settle_one(item, at)` for each item, in one write transaction.
  template <class Item, class SettleOne>
  std::vector<bool> settle_all(const std::vector<Item>& items, double at, SettleOne settle_one) {
    std::vector<bool> answers;
    answers.reserve(items.size());
    detail::EventScope events(events_.get());
    detail::WriteTransaction transaction(db(), &writes().transaction);
    for (const Item& item : items)
      answers.push_back(settle_one(item, at));
    transaction.commit();
    events.deliver();
    return answers;
  }

  // Wakes this process's workers on the file. Inside the host's transaction the job is not
  // visible yet; workers see it by polling once the host commits.
  void job_added() {
    if (sqlite3_get_autocommit(db()) != 0)
      detail::WakeHub::instance().job_added(file_);
  }

  // Moves on the jobs whose stored state lags behind `at` (see detail/upkeep.hpp), and
  // makes the next firings of up to `jobs` schedules that are due (detail/firing.hpp).
  detail::Lag move_on(double at, std::size_t jobs = 1) {
    const detail::Lag lag = detail::move_on(reads(), writes(), at, jobs);
    if (lag.schedule_due)
      firing_maker().make_due(at, jobs);
    return lag;
  }

  // For next_job and seconds_until_next_job: makes the firings after those due, so that a
  // caller that only reads sees each schedule's next firing. A write of its own, skipped
  // when the scheduler is read-only or another writer holds the lock (the next call, or the
  // next claim, makes them).
  void make_due_firings(double at) {
    if (read_only() || !read_lag().at(at).schedule_due)
      return;
    try {
      detail::WriteTransaction transaction(db(), &writes().transaction);
      firing_maker().make_due(at, detail::sql::firings_per_read);
      transaction.commit();
    } catch (const BusyError&) {
    }
  }

  template <class Change>
  bool change_schedule(const std::string& name, std::optional<TimePoint> now, Change change) {
    detail::check_schedule_name(name);
    const double at = checked_now(now);
    detail::WriteTransaction transaction(db(), &writes().transaction);
    const std::optional<detail::StoredSchedule> schedule =
        detail::find_schedule(schedule_statements(), name);
    if (!schedule)
      return false;
    detail::Firings firings = firing_maker();
    change(firings, *schedule, at);
    transaction.commit();
    return true;
  }

  detail::ScheduleStatements& schedule_statements() {
    if (!schedule_statements_)
      schedule_statements_.emplace(db(), !read_only());
    return *schedule_statements_;
  }

  detail::Firings firing_maker() {
    detail::WriteStatements& write = writes();
    return detail::Firings(db(), schedule_statements(), write);
  }

  // Deletes the jobs (and then their payloads) that `jobs` deletes, in one transaction.
  std::int64_t delete_many(detail::Statement& payloads, detail::Statement& jobs, double at) {
    detail::WriteTransaction transaction(db(), &writes().transaction);
    {
      detail::Run run(payloads);
      bind_now(run, at);
      run.execute();
    }
    detail::Run run(jobs);
    bind_now(run, at);
    const std::int64_t deleted = run.execute();
    transaction.commit();
    return deleted;
  }

  std::optional<Job> job_by_id(std::int64_t id, double at) {
    detail::Run run(reads().select_job);
    bind_now(run, at);
    run.bind(2, id);
    if (!run.step())
      return std::nullopt;
    return detail::read_job(run);
  }

  detail::ReadTransaction read_transaction() {
    return detail::ReadTransaction(db(), reads().begin_read, reads().end_read);
  }

  // Marks failed the jobs whose lease ran out on their last attempt (after a look, which
  // is cheaper when there are none: see sql::any_abandoned_job).
  void fail_abandoned_jobs(double at) {
    detail::WriteStatements& write = writes();
    {
      detail::Run look(write.any_abandoned_job);
      bind_now(look, at);
      if (!look.step())
        return;
    }
    detail::Run run(write.fail_abandoned_jobs);
    bind_now(run, at);
    run.execute();
  }

  // The schedule's orders at `at`, for a call that only reads (inside its read transaction).
  detail::JobOrder order(double at) {
    return detail::JobOrder(reads(), at, options_.retry.max_attempts, read_lag().at(at));
  }

  // Where the stored states lag, for reads: read again only when the file changed since the
  // last time (another connection committed, or this one changed a row), so that a caller
  // polling next_job or seconds_until_next_job pays one cheap look.
  const detail::LagTimes& read_lag() {
    std::int64_t version = 0;
    {
      detail::Run run(reads().data_version);
      run.step();
      version = run.column_int64(0);
    }
    const std::int64_t changes = sqlite3_total_changes64(db());
    if (!lag_cache_ || version != lag_version_ || changes != lag_changes_) {
      lag_cache_ = detail::LagTimes::read(reads().lagging_for_reads, false);
      lag_version_ = version;
      lag_changes_ = changes;
    }
    return *lag_cache_;
  }

  // Binds "now" (?1) and the default limit on attempts (?20), those the statement has.
  void bind_now(detail::Run& run, double at) const {
    const int parameters = run.parameter_count();
    if (parameters >= 1)
      run.bind(1, at);
    if (parameters >= detail::sql::default_max_attempts)
      run.bind(detail::sql::default_max_attempts, std::int64_t{options_.retry.max_attempts});
  }

  // Names the path in an error from opening it, once ("jobsched: cannot open 'PATH': ...").
  [[noreturn]] static void rethrow_opening(const Error& error, const std::string& path) {
    if (error.extended_code() == SQLITE_READONLY_DIRECTORY) {
      throw ReadOnlyError(
          std::string(detail::message_prefix) + "cannot open '" + path +
              "': its directory is read-only, and SQLite must create files beside the"
              " database (-wal and -shm, or -journal)",
          error.code(), error.extended_code(), error.sql());
    }
    detail::rethrow_in_context(error, "cannot open '" + path + "'");
  }

  Scheduler(detail::ConnectionPtr connection, Options options)
      : busy_wait_(std::make_unique<detail::BusyWait>(options.busy_timeout)),
        connection_(std::move(connection)),
        options_(std::move(options)),
        schema_(detail::set_up_connection(connection_.get(), *busy_wait_, options_)),
        file_(detail::is_memory_database(connection_.get())
                  ? std::string()
                  : std::string(sqlite3_db_filename(connection_.get(), "main"))),
        statements_(detail::Statements::prepare(connection_.get(), !options_.read_only,
                                               schema_.version < current_schema_version)) {
    detail::set_durability(connection_.get(), options_);
    if (options_.on_event)
      events_ = std::make_unique<detail::EventQueue>(connection_.get(), options_.on_event);
  }

  // The time a new job's stored state is decided at: now, or `fallback` when the clock
  // answers nonsense (a job given all its times needs no clock; the state is only a hint).
  double state_time(double fallback) const {
    const double at = to_unix_seconds(now());
    return detail::is_valid_time(at) ? at : fallback;
  }

  double checked_now(std::optional<TimePoint> time, const char* name = "now") const {
    return detail::checked_time(name, time ? *time : now());
  }

  detail::ReadStatements& reads() noexcept { return statements_.read; }

  // The statements that write; ReadOnlyError on a read-only scheduler.
  detail::WriteStatements& writes() {
    if (!statements_.write) {
      throw ReadOnlyError(std::string(detail::message_prefix) + "this scheduler on '" +
                              (file_.empty() ? std::string(":memory:") : file_) +
                              "' was opened read-only (Options::read_only); it cannot write",
                          SQLITE_READONLY, SQLITE_READONLY);
    }
    return *statements_.write;
  }

  sqlite3* db() const noexcept { return connection_.get(); }

  // The connection's busy handler points here: it must outlive the connection.
  std::unique_ptr<detail::BusyWait> busy_wait_;
  detail::ConnectionPtr connection_;
  // Options::on_event's queue, when there is a hook; its rollback hook points here.
  std::unique_ptr<detail::EventQueue> events_;
  Options options_;
  detail::SchemaState schema_;
  std::string file_;
  std::mt19937_64 random_{std::random_device{}()};
  std::optional<detail::LagTimes> lag_cache_;
  std::int64_t lag_version_ = 0;
  std::int64_t lag_changes_ = 0;
  detail::Statements statements_;
  std::optional<detail::ScheduleStatements> schedule_statements_;  // on first use
  std::optional<detail::ListingStatements> listing_statements_;  // on first use
  std::optional<detail::StatsStatements> stats_statements_;  // on first use
  detail::Retention retention_;  // Scheduler::prune, its statements prepared on first use
  std::optional<detail::UniqueStatements> unique_statements_;      // on first use
  std::optional<detail::InsertManyStatements> insert_many_;        // on first use
  std::optional<detail::ManyRowStatements> many_rows_;             // on first use
};

}  // namespace jobsched
