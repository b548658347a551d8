// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos, shared by tests/test_crash_chaos.cpp (short runs in the unit suite) and
// tools/chaos.cpp (long runs). Real processes share one file while the parent SIGKILLs one
// of them at random moments and forks a replacement:
// - a producer adds the jobs (after a few the parent added first) and reports each id once
//   add_job returned; it is killed and replaced like the rest, and adds until the file holds
//   Config::jobs ids;
// - plain worker processes run several threads, each with its own Scheduler: claim, then
//   complete, fail, release, or extend (a heartbeat, sometimes a shorter one) before
//   completing, or sleep past the lease; every call is reported before it is made (its
//   "intent") and once it returned (its result);
// - processes running a real jobsched::Worker (threads and heartbeat): the handler reports
//   each start and whether it will return or throw; the Worker completes or fails inside,
//   so those outcomes are read from the final file;
// - with Config::rogue_deletes, a rogue process deletes random rows: the harness's own test
//   that a vanished job shows as lost.
// Jobs have few attempts (RetryPolicy and JobOptions::max_attempts) and short backoffs, so
// failures and leases running out end jobs failed. The run ends when the producer finished
// and count_pending_jobs() is 0; then run_chaos checks the promises of DESIGN.md
// ("Semantics", "Concurrency and delivery") against the reports and the final file: every
// added id is there, completed (one accepted completion) or failed (none, all attempts
// used, failed at its lease end or its fail), no two live leases, no stale or late call
// accepted, an intact file. See Result for every count.
//
// Times: records carry wall-clock times (CLOCK_REALTIME, the clock the scheduler uses,
// shared by all processes) taken just before a call and just after it returned, and the
// `now` each call compared leases with (a claim's is its locked_at; others are passed in).
// A commit happened between its call's `before` and `after`, so two events are ordered only
// when those windows say so; ambiguous pairs are never counted as violations.
//
// Every wait has a bound: the parent's (Config::time_limit, reaping, draining) count as
// timed_out or harness_errors; each child dies by alarm() soon after the time limit, and
// leaves with _exit() when its parent is gone. Children never return into a test framework.

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <jobsched/jobsched.hpp>

namespace jobsched_chaos {

struct Config {
  /// Plain worker processes, each running `threads` threads with a Scheduler each.
  int processes = 3;
  int threads = 2;
  /// Processes running a jobsched::Worker of `worker_threads` threads (and its heartbeat).
  int worker_processes = 1;
  int worker_threads = 2;
  /// Jobs in all; the parent adds `initial_jobs` before the run, the producer the rest.
  int jobs = 1500;
  int initial_jobs = 300;
  /// The producer's pause after each add.
  std::chrono::microseconds add_interval{1000};
  /// The parent kills a process every interval (+-50%): in turn a plain worker, the
  /// producer (while it runs), a plain worker, a Worker process; which one at random.
  std::chrono::milliseconds kill_interval{150};
  jobsched::Seconds lease{0.5};
  /// Each job "works" for a random time up to this.
  std::chrono::microseconds max_work{2000};
  /// A plain worker thread's pause after a claim found nothing.
  std::chrono::microseconds idle_pause{5000};
  /// Of every 1000 claims of a plain worker: fail(claim, error); release(claim); a
  /// heartbeat (work 1.2 leases, extending twice, the first time sometimes by a quarter
  /// lease only: a lease never moves earlier); sleep to 0-1 ms past the lease end, then
  /// complete, extend and complete, fail or release (stale if the job was claimed again,
  /// refused on its last attempt). The rest complete after a short work.
  int fail_per_mille = 200;
  int release_per_mille = 60;
  int heartbeat_per_mille = 30;
  int slow_per_mille = 20;
  /// Of every 1000 claims on a job's last attempt, these go slow first (then the above).
  int slow_last_attempt_per_mille = 200;
  /// Of every 1000 jobs a Worker's handler runs: it throws; it works 1.3 leases (its
  /// heartbeat must keep the lease).
  int handler_fail_per_mille = 200;
  int handler_slow_per_mille = 20;
  /// RetryPolicy::max_attempts of every scheduler; a third of the jobs set one less (at
  /// least 1) in JobOptions::max_attempts, a third one more.
  int max_attempts = 3;
  jobsched::Seconds initial_backoff{0.02};
  jobsched::Seconds max_backoff{0.1};
  /// For the harness's own test only: odd-numbered plain worker processes claim with a
  /// clock this far ahead, so they take jobs whose leases are live for everyone else.
  jobsched::Seconds claim_skew{0.0};
  /// For the harness's own test only: a rogue process deletes this many random rows.
  int rogue_deletes = 0;
  /// Give up (and report timed_out) after this long.
  std::chrono::seconds time_limit{55};
  jobsched::Synchronous synchronous = jobsched::Synchronous::full;
  /// 0: a random seed.
  std::uint64_t seed = 0;
};

struct Result {
  // The run.
  int jobs = 0;  // Config::jobs: ids added in all
  double seconds = 0;
  std::uint64_t seed = 0;
  bool timed_out = false;
  int kills = 0;
  int kills_of_producer = 0;
  int kills_of_worker_processes = 0;  // processes running a jobsched::Worker
  int processes_started = 0;
  int producers_started = 0;
  int unexpected_exits = 0;  // children that ended without being killed or finishing
  int harness_errors = 0;    // a bound of the harness was reached, or a report made no sense
  std::string first_harness_error;
  // What the processes reported.
  std::int64_t added_reported = 0;    // ids whose add_job returned (parent and producer)
  std::int64_t added_unreported = 0;  // in the file: a producer killed before reporting it
  std::int64_t deleted_by_rogue = 0;
  std::int64_t deleted_reported = 0;  // of those, ids whose add was reported
  std::int64_t claims = 0;            // by plain workers
  std::int64_t handler_starts = 0;    // Worker handlers started (a claim each)
  std::int64_t handler_throws = 0;
  std::int64_t completes_accepted = 0, completes_refused = 0;
  std::int64_t fails_accepted = 0, fails_refused = 0;
  std::int64_t releases_accepted = 0, releases_refused = 0;
  std::int64_t extends_accepted = 0, extends_refused = 0;
  std::int64_t calls_thrown = 0;   // calls that threw: outcome unknown
  std::int64_t worker_errors = 0;  // exceptions caught by children (should be none)
  std::string first_worker_error;
  std::int64_t late_claims = 0;        // claims that returned after their own lease_until
  std::int64_t unreported_claims = 0;  // attempts in the file never reported (killed)
  std::int64_t jobs_run_more_than_once = 0;
  std::int64_t max_runs_of_one_job = 0;
  // The final file.
  std::int64_t completed = 0;
  std::int64_t completed_by_worker_processes = 0;  // no accepted complete reported: a Worker's
  std::int64_t completed_unreported = 0;  // no accepted complete reported: a killed thread's
  std::int64_t failed = 0;
  std::int64_t failed_by_lease = 0;         // of those, a lease ran out on the last attempt
  std::int64_t failed_unmarked_at_end = 0;  // of those, rows not yet marked failed
  // Broken promises: all must be 0 (and integrity "ok").
  std::int64_t missing = 0;                 // ids whose add returned, gone from the file
  std::int64_t unfinished = 0;              // in the file, neither completed nor failed at the end
  std::int64_t lost = 0;                    // missing + unfinished
  std::int64_t unexplained_rows = 0;        // rows no add explains, not even a killed producer's
  std::int64_t accepted_not_completed = 0;  // complete() true, the file says otherwise
  std::int64_t completed_unexplained = 0;   // completed, yet no claim could have done it
  std::int64_t completed_and_failed = 0;
  std::int64_t double_leased = 0;               // jobs claimed while another lease was live
  std::int64_t stale_accepted = 0;              // calls accepted on a claim taken over
  std::int64_t reclaimed_after_completion = 0;  // claims begun after the job's completion
  std::int64_t claimed_after_failure = 0;       // claims begun after the job failed
  std::int64_t claims_beyond_last_attempt = 0;
  std::int64_t failed_early = 0;                // failed with attempts to spare
  std::int64_t late_last_attempt_accepted = 0;  // a call accepted after the last lease ran out
  std::int64_t failed_at_not_lease_end = 0;     // failed_at neither the lease end nor the fail
  std::int64_t lease_moved_earlier = 0;         // an accepted extend shortened the lease
  std::int64_t state_mismatch = 0;              // failed_jobs() or get_job() disagrees with the row
  std::int64_t pending_at_end = 0;              // count_pending_jobs() after the run
  std::string integrity;
  std::vector<std::string> violations;  // the first few of each kind, described

  std::int64_t violation_count() const {
    return lost + unexplained_rows + accepted_not_completed + completed_unexplained +
           completed_and_failed + double_leased + stale_accepted + reclaimed_after_completion +
           claimed_after_failure + claims_beyond_last_attempt + failed_early +
           late_last_attempt_accepted + failed_at_not_lease_end + lease_moved_earlier +
           state_mismatch + pending_at_end;
  }

  /// Every promise kept, and nothing went wrong in the harness or its children.
  bool ok() const {
    return !timed_out && harness_errors == 0 && worker_errors == 0 && unexpected_exits == 0 &&
           violation_count() == 0 && integrity == "ok";
  }

  std::string summary() const {
    auto n = [](std::int64_t value) { return static_cast<long long>(value); };
    char line[3072];
    std::snprintf(
        line, sizeof line,
        "run: jobs=%d seconds=%.1f kills=%d (producer %d, Worker processes %d) processes=%d "
        "producers=%d unexpected_exits=%d harness_errors=%d timed_out=%d seed=%llu\n"
        "reports: added=%lld added_unreported=%lld deleted_by_rogue=%lld (reported %lld) "
        "claims=%lld handler_starts=%lld handler_throws=%lld complete=%lld/%lld "
        "fail=%lld/%lld release=%lld/%lld extend=%lld/%lld (accepted/refused) "
        "calls_thrown=%lld worker_errors=%lld late_claims=%lld unreported_claims=%lld "
        "run_more_than_once=%lld max_runs=%lld\n"
        "file: completed=%lld (by Worker processes %lld, unreported %lld) failed=%lld (by "
        "lease %lld, unmarked at the end %lld)\n"
        "violations: lost=%lld (missing %lld, unfinished %lld) unexplained_rows=%lld "
        "accepted_not_completed=%lld completed_unexplained=%lld completed_and_failed=%lld "
        "double_leased=%lld stale_accepted=%lld reclaimed_after_completion=%lld "
        "claimed_after_failure=%lld claims_beyond_last_attempt=%lld failed_early=%lld "
        "late_last_attempt_accepted=%lld failed_at_not_lease_end=%lld "
        "lease_moved_earlier=%lld state_mismatch=%lld pending_at_end=%lld "
        "integrity=%s",
        jobs, seconds, kills, kills_of_producer, kills_of_worker_processes, processes_started,
        producers_started, unexpected_exits, harness_errors, timed_out ? 1 : 0,
        static_cast<unsigned long long>(seed), n(added_reported), n(added_unreported),
        n(deleted_by_rogue), n(deleted_reported), n(claims), n(handler_starts), n(handler_throws),
        n(completes_accepted), n(completes_refused), n(fails_accepted), n(fails_refused),
        n(releases_accepted), n(releases_refused), n(extends_accepted), n(extends_refused),
        n(calls_thrown), n(worker_errors), n(late_claims), n(unreported_claims),
        n(jobs_run_more_than_once), n(max_runs_of_one_job), n(completed),
        n(completed_by_worker_processes), n(completed_unreported), n(failed), n(failed_by_lease),
        n(failed_unmarked_at_end), n(lost), n(missing), n(unfinished), n(unexplained_rows),
        n(accepted_not_completed), n(completed_unexplained), n(completed_and_failed),
        n(double_leased), n(stale_accepted), n(reclaimed_after_completion),
        n(claimed_after_failure), n(claims_beyond_last_attempt), n(failed_early),
        n(late_last_attempt_accepted), n(failed_at_not_lease_end), n(lease_moved_earlier),
        n(state_mismatch), n(pending_at_end), integrity.c_str());
    std::string text = line;
    for (const std::string& violation : violations)
      text += "\n  " + violation;
    if (!first_worker_error.empty())
      text += "\n  first worker error: " + first_worker_error;
    if (!first_harness_error.empty())
      text += "\n  first harness error: " + first_harness_error;
    return text;
  }
};

namespace detail {

enum Kind : std::int32_t {
  kAdded = 1,     // producer: job_id's add_job returned
  kHello,         // producer: started; job_id = the highest id ever added to the file
  kProducerDone,  // producer: the file holds Config::jobs ids
  kDeleted,       // rogue: job_id deleted
  kClaim,         // plain worker: a claim returned
  kIntent,        // plain worker: about to make call `action` on the claim
  kResult,        // plain worker: call `action` returned `accepted` (-1: it threw)
  kHandlerStart,  // Worker handler: started job_id (the token is not known)
  kHandlerEnd,    // Worker handler: will return (accepted 1) or throw (accepted 0)
  kError,         // any child: an exception, with its extended code in `accepted`
};
enum Action : std::int32_t { kComplete = 1, kFail = 2, kRelease = 3, kExtend = 4 };

/// One fixed-size record, written whole (far below PIPE_BUF, so atomic even when several
/// threads of a process share the pipe).
struct Record {
  std::int32_t kind = 0;
  std::int32_t action = 0;
  std::int32_t accepted = 0;
  std::int32_t attempt = 0;       // claim, handler start: the job's attempts after the claim
  std::int32_t max_attempts = 0;  // claim, handler start: the job's limit
  std::int32_t thread = 0;        // the thread of the process that wrote it
  std::int64_t job_id = 0;
  std::int64_t token = 0;
  double at = 0;           // claim: its own time (locked_at); call: the `now` passed to it
  double lease_until = 0;  // claim: its lease end; extend: the lease end it returned
  double before = 0;       // wall time just before the call
  double after = 0;        // wall time just after it returned
  char message[96] = {};   // error: what()
};

enum class Role { plain, worker, producer, rogue };

/// A record as the parent logged it.
struct Logged {
  Record record;
  int process = 0;  // the child's number, in start order
  Role role = Role::plain;
};

inline double wall_now() {
  return jobsched::to_unix_seconds(jobsched::system_now());
}

inline jobsched::Options scheduler_options(const Config& config) {
  jobsched::Options options;
  options.synchronous = config.synchronous;
  options.busy_timeout = std::chrono::milliseconds{5000};
  options.retry.max_attempts = config.max_attempts;
  options.retry.initial_backoff = config.initial_backoff;
  options.retry.max_backoff = config.max_backoff;
  return options;
}

/// A new job's settings: two priorities, two queues, a quarter starting up to 100 ms later,
/// a third with one attempt less than the policy, a third with one more.
inline jobsched::JobOptions new_job_options(std::mt19937_64& random, const Config& config) {
  std::uniform_int_distribution<int> pick(0, 11);
  std::uniform_real_distribution<double> later(0.0, 0.1);
  const int kind = pick(random);
  jobsched::JobOptions options;
  options.priority = kind % 2;
  options.queue = kind % 3 == 0 ? "mail" : "";
  if (kind % 4 == 0) {
    options.created_at = jobsched::system_now();
    options.starts_at = *options.created_at + jobsched::Seconds{later(random)};
  }
  const int limit = pick(random) % 3;
  if (limit == 1)
    options.max_attempts = std::max(1, config.max_attempts - 1);
  if (limit == 2) {
    options.max_attempts = config.max_attempts + 1;
    options.initial_backoff = config.initial_backoff / 2.0;
    options.max_backoff = config.max_backoff / 2.0;
  }
  return options;
}

inline bool send(int fd, const Record& record) {
  return ::write(fd, &record, sizeof record) == static_cast<ssize_t>(sizeof record);
}

/// In a child: report, and leave if the parent is gone.
inline void send_or_exit(int fd, const Record& record) {
  if (!send(fd, record))
    ::_exit(3);
}

inline void report_error(int fd, int thread, int code, const char* what) {
  Record error;
  error.kind = kError;
  error.thread = thread;
  error.accepted = code;
  std::snprintf(error.message, sizeof error.message, "%s", what);
  send_or_exit(fd, error);
}

/// The first thing every child does: die (SIGALRM) soon after the parent's time limit,
/// whatever happens.
inline void start_child(const Config& config) {
  ::alarm(static_cast<unsigned>(std::max<long long>(1, config.time_limit.count()) + 30));
}

inline void exit_if_orphaned(pid_t parent) {
  if (::getppid() != parent)
    ::_exit(4);
}

inline void pause_for(std::chrono::microseconds duration) {
  std::this_thread::sleep_for(duration);
}

/// The producer: adds jobs until the file holds Config::jobs ids, reporting each one after
/// add_job returned, then reports done and exits 0. Only one producer runs at a time and it
/// is the only writer of new rows, so ids are consecutive (AUTOINCREMENT, never reused).
[[noreturn]] inline void producer_main(const std::string& path, const Config& config, int out,
                                       std::uint64_t seed, pid_t parent) {
  start_child(config);
  std::mt19937_64 random(seed);
  try {
    auto scheduler = jobsched::Scheduler::open(path, scheduler_options(config));
    std::int64_t last = 0;
    {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(scheduler.handle(),
                             "SELECT seq FROM sqlite_sequence WHERE name = 'job'", -1, &stmt,
                             nullptr) != SQLITE_OK) {
        report_error(out, 0, -1, "producer: cannot read sqlite_sequence");
        ::_exit(1);
      }
      if (sqlite3_step(stmt) == SQLITE_ROW)
        last = sqlite3_column_int64(stmt, 0);
      sqlite3_finalize(stmt);
    }
    Record hello;
    hello.kind = kHello;
    hello.job_id = last;
    send_or_exit(out, hello);
    while (last < config.jobs) {
      exit_if_orphaned(parent);
      Record added;
      added.kind = kAdded;
      added.before = wall_now();
      const jobsched::Job job =
          scheduler.add_job(jobsched::Payload::integer(last + 1), new_job_options(random, config));
      added.after = wall_now();
      added.job_id = job.id;
      send_or_exit(out, added);
      if (job.id != last + 1) {
        report_error(out, 0, -1, "producer: ids are not consecutive");
        ::_exit(1);
      }
      last = job.id;
      pause_for(config.add_interval);
    }
    Record done;
    done.kind = kProducerDone;
    done.job_id = last;
    send_or_exit(out, done);
    ::_exit(0);
  } catch (const jobsched::Error& e) {
    report_error(out, 0, e.extended_code(), e.what());
  } catch (const std::exception& e) {
    report_error(out, 0, -1, e.what());
  }
  ::_exit(1);
}

/// The rogue (the harness's own test): deletes `deletes` random rows at random moments,
/// reporting each id, then exits 0.
[[noreturn]] inline void rogue_main(const std::string& path, const Config& config, int out,
                                    std::uint64_t seed, pid_t parent, int deletes) {
  start_child(config);
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> wait_ms(100, 500);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    report_error(out, 0, -1, "rogue: cannot open the file");
    ::_exit(1);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM job WHERE id = (SELECT id FROM job ORDER BY random() "
                         "LIMIT 1) RETURNING id",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    report_error(out, 0, sqlite3_extended_errcode(db), sqlite3_errmsg(db));
    ::_exit(1);
  }
  for (int done = 0; done < deletes;) {  // until killed by alarm() at the latest
    exit_if_orphaned(parent);
    std::this_thread::sleep_for(std::chrono::milliseconds{wait_ms(random)});
    Record deleted;
    deleted.kind = kDeleted;
    deleted.before = wall_now();
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      deleted.job_id = sqlite3_column_int64(stmt, 0);
      rc = sqlite3_step(stmt);
    }
    sqlite3_reset(stmt);
    deleted.after = wall_now();
    if (rc != SQLITE_DONE) {
      report_error(out, 0, sqlite3_extended_errcode(db), sqlite3_errmsg(db));
      ::_exit(1);
    }
    if (deleted.job_id != 0) {  // else the table was empty: try again
      send_or_exit(out, deleted);
      ++done;
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  ::_exit(0);
}

/// One thread of a plain worker process: claim, report, act on the claim, report; forever.
inline void plain_thread(const std::string& path, const Config& config, int out, std::uint64_t seed,
                         bool skewed, int thread, pid_t parent) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<long> work_us(0, static_cast<long>(config.max_work.count()));
  std::uniform_int_distribution<int> per_mille(0, 999);
  std::uniform_int_distribution<long> overshoot_us(0, 1000);
  const std::vector<std::string> queues{"", "mail"};
  const auto lease_part = [&](double share) {
    return std::chrono::duration_cast<std::chrono::microseconds>(config.lease * share);
  };
  std::optional<jobsched::Scheduler> scheduler;
  for (;;) {
    exit_if_orphaned(parent);
    try {
      if (!scheduler)
        scheduler.emplace(jobsched::Scheduler::open(path, scheduler_options(config)));
      Record claim;
      claim.kind = kClaim;
      claim.thread = thread;
      const std::optional<jobsched::TimePoint> now =
          skewed ? std::optional<jobsched::TimePoint>(jobsched::system_now() + config.claim_skew)
                 : std::nullopt;
      claim.before = wall_now();
      std::optional<jobsched::ClaimedJob> claimed =
          thread % 2 == 0 ? scheduler->claim_next_job(config.lease, now)
                          : scheduler->claim_next_job(config.lease, queues, now);
      claim.after = wall_now();
      if (!claimed) {
        pause_for(config.idle_pause);
        continue;
      }
      jobsched::Claim& held = claimed->claim;
      claim.job_id = held.job_id;
      claim.token = held.token;
      claim.at = jobsched::to_unix_seconds(claimed->job.locked_at.value_or(jobsched::TimePoint{}));
      claim.lease_until = jobsched::to_unix_seconds(held.lease_until);
      claim.attempt = claimed->job.attempts;
      claim.max_attempts = claimed->job.max_attempts.value_or(config.max_attempts);
      send_or_exit(out, claim);

      // Reports the intent, makes the call with `now` = its `before`, reports the result;
      // false when it threw (the claim is then left to its lease).
      auto call = [&](Action action, auto body) {
        Record record;
        record.kind = kIntent;
        record.action = action;
        record.thread = thread;
        record.job_id = held.job_id;
        record.token = held.token;
        record.before = wall_now();
        record.at = record.before;
        send_or_exit(out, record);
        record.kind = kResult;
        try {
          record.accepted = body(jobsched::from_unix_seconds(record.at)) ? 1 : 0;
        } catch (const jobsched::Error& e) {
          record.accepted = -1;
          record.after = wall_now();
          send_or_exit(out, record);
          report_error(out, thread, e.extended_code(), e.what());
          return false;
        }
        record.after = wall_now();
        record.lease_until = jobsched::to_unix_seconds(held.lease_until);
        send_or_exit(out, record);
        return true;
      };
      auto complete = [&] {
        return call(kComplete,
                    [&](jobsched::TimePoint at) { return scheduler->complete(held, at); });
      };
      auto extend = [&](jobsched::Seconds lease) {
        return call(kExtend,
                    [&](jobsched::TimePoint at) { return scheduler->extend(held, lease, at); });
      };

      // On a last attempt, go slow more often: a late call must be refused there.
      const bool last_attempt = claim.attempt >= claim.max_attempts;
      const int choice =
          last_attempt && per_mille(random) < config.slow_last_attempt_per_mille
              ? config.fail_per_mille + config.release_per_mille + config.heartbeat_per_mille
              : per_mille(random);
      int bound = config.fail_per_mille;
      if (choice < bound) {
        pause_for(std::chrono::microseconds{work_us(random)});
        const std::string error = "chaos: attempt " + std::to_string(claim.attempt) + " failed";
        call(kFail, [&](jobsched::TimePoint at) { return scheduler->fail(held, error, at); });
      } else if (choice < (bound += config.release_per_mille)) {
        pause_for(std::chrono::microseconds{work_us(random)});
        call(kRelease, [&](jobsched::TimePoint) { return scheduler->release(held); });
      } else if (choice < (bound += config.heartbeat_per_mille)) {
        pause_for(lease_part(0.4));
        if (extend(per_mille(random) < 500 ? config.lease / 4.0 : config.lease)) {
          pause_for(lease_part(0.4));
          if (extend(config.lease)) {
            pause_for(lease_part(0.4));
            complete();
          }
        }
      } else if (choice < (bound += config.slow_per_mille)) {
        // Just past the lease end, before another claim is likely to notice it; then any
        // call: stale if the job was claimed again, refused on the last attempt.
        std::this_thread::sleep_until(held.lease_until +
                                      std::chrono::microseconds{overshoot_us(random)});
        const std::string error = "chaos: late attempt " + std::to_string(claim.attempt);
        switch (per_mille(random) % 4) {
          case 0:
            if (extend(config.lease))
              complete();
            break;
          case 1:
            complete();
            break;
          case 2:
            call(kFail, [&](jobsched::TimePoint at) { return scheduler->fail(held, error, at); });
            break;
          default:
            call(kRelease, [&](jobsched::TimePoint) { return scheduler->release(held); });
        }
      } else {
        pause_for(std::chrono::microseconds{work_us(random)});
        complete();
      }
    } catch (const jobsched::Error& e) {
      report_error(out, thread, e.extended_code(), e.what());
      pause_for(std::chrono::microseconds{5000});
    } catch (const std::exception& e) {
      report_error(out, thread, -1, e.what());
      pause_for(std::chrono::microseconds{5000});
    }
  }
}

/// A plain worker process: `threads` threads, each opening its own Scheduler (after the
/// fork, in the thread), until killed.
[[noreturn]] inline void plain_main(const std::string& path, const Config& config, int out,
                                    std::uint64_t seed, bool skewed, pid_t parent) {
  start_child(config);
  std::vector<std::thread> threads;
  try {
    for (int t = 0; t < config.threads; ++t) {
      threads.emplace_back(plain_thread, std::cref(path), std::cref(config), out,
                           seed + static_cast<std::uint64_t>(t) * 0x9E3779B97F4A7C15ull, skewed, t,
                           parent);
    }
  } catch (const std::exception& e) {
    report_error(out, -1, -1, e.what());
    ::_exit(1);
  }
  for (;;) {
    exit_if_orphaned(parent);
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

/// A process running a jobsched::Worker, until killed. The handler reports each start and
/// whether it will return (the Worker completes) or throw (the Worker fails the attempt).
[[noreturn]] inline void worker_main(const std::string& path, const Config& config, int out,
                                     std::uint64_t seed, pid_t parent) {
  start_child(config);
  std::atomic<int> threads_seen{0};
  auto handler = [&config, out, seed, &threads_seen](const jobsched::Job& job) {
    thread_local const int thread = threads_seen.fetch_add(1);
    thread_local std::mt19937_64 random(seed ^ (static_cast<std::uint64_t>(thread) << 32));
    std::uniform_int_distribution<long> work_us(0, static_cast<long>(config.max_work.count()));
    std::uniform_int_distribution<int> per_mille(0, 999);
    Record start;
    start.kind = kHandlerStart;
    start.thread = thread;
    start.job_id = job.id;
    start.at = jobsched::to_unix_seconds(job.locked_at.value_or(jobsched::TimePoint{}));
    start.lease_until = jobsched::to_unix_seconds(job.lease_until.value_or(jobsched::TimePoint{}));
    start.attempt = job.attempts;
    start.max_attempts = job.max_attempts.value_or(config.max_attempts);
    start.before = start.at;
    start.after = wall_now();
    send_or_exit(out, start);
    const int choice = per_mille(random);
    const bool will_throw = choice < config.handler_fail_per_mille;
    if (!will_throw && choice < config.handler_fail_per_mille + config.handler_slow_per_mille) {
      std::this_thread::sleep_for(
          std::chrono::duration_cast<std::chrono::microseconds>(config.lease * 1.3));
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds{work_us(random)});
    }
    Record end;
    end.kind = kHandlerEnd;
    end.thread = thread;
    end.job_id = job.id;
    end.accepted = will_throw ? 0 : 1;
    end.before = wall_now();
    send_or_exit(out, end);
    if (will_throw)
      throw std::runtime_error("chaos: the handler threw");
  };
  try {
    jobsched::WorkerOptions options;
    options.threads = config.worker_threads;
    options.lease = config.lease;
    options.poll_interval = std::chrono::milliseconds{20};
    options.grace = std::chrono::milliseconds{0};
    options.scheduler = scheduler_options(config);
    jobsched::Worker worker(path, handler, options);
    for (;;) {
      exit_if_orphaned(parent);
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  } catch (const jobsched::Error& e) {
    report_error(out, -1, e.extended_code(), e.what());
  } catch (const std::exception& e) {
    report_error(out, -1, -1, e.what());
  }
  ::_exit(1);
}

// ---- The parent's side ----------------------------------------------------------------

struct Child {
  Role role = Role::plain;
  pid_t pid = -1;  // -1: the slot is empty (a producer or rogue that finished)
  int fd = -1;
  int number = 0;
  bool finished = false;  // producer: reported done; rogue: did its deletes
  int deletes_done = 0;   // rogue
  std::string buffer;
};

inline void harness_error(Result& result, const std::string& text) {
  if (result.harness_errors++ == 0)
    result.first_harness_error = text;
}

/// Moves the complete records in `child.buffer` to `log`.
inline void take_records(Child& child, std::vector<Logged>& log) {
  std::size_t used = 0;
  while (child.buffer.size() - used >= sizeof(Record)) {
    Logged logged;
    std::memcpy(&logged.record, child.buffer.data() + used, sizeof(Record));
    logged.process = child.number;
    logged.role = child.role;
    if (logged.record.kind == kProducerDone)
      child.finished = true;
    if (logged.record.kind == kDeleted)
      ++child.deletes_done;
    log.push_back(logged);
    used += sizeof(Record);
  }
  child.buffer.erase(0, used);
}

/// Reads what is there; false at end of file.
inline bool read_some(Child& child, std::vector<Logged>& log) {
  char bytes[8192];
  for (;;) {
    const ssize_t got = ::read(child.fd, bytes, sizeof bytes);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    child.buffer.append(bytes, static_cast<std::size_t>(got));
    take_records(child, log);
    return true;
  }
}

/// After the child died: reads to the end of its pipe (for at most 5 s) and closes it.
inline void drain(Child& child, std::vector<Logged>& log, Result& result) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  for (;;) {
    pollfd ready{child.fd, POLLIN, 0};
    const int polled = ::poll(&ready, 1, 100);
    if (polled > 0 && !read_some(child, log))
      break;
    if (polled < 0 && errno != EINTR) {
      harness_error(result, "poll failed while draining a pipe");
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      harness_error(result, "a dead child's pipe did not close within 5 s");
      break;
    }
  }
  if (!child.buffer.empty())
    harness_error(result, "a child's pipe ended inside a record");
  ::close(child.fd);
  child.fd = -1;
}

/// Waits (at most 10 s) for the child to end; its wait status, or nothing.
inline std::optional<int> reap(pid_t pid, Result& result) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid)
      return status;
    if (got < 0 && errno != EINTR) {
      harness_error(result, "waitpid failed");
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      harness_error(result, "a child did not end within 10 s of SIGKILL");
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
}

inline std::string integrity_check(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK)
    return std::string("cannot prepare integrity_check: ") + sqlite3_errmsg(db);
  std::string result;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (!result.empty())
      result += "; ";
    result += text != nullptr ? reinterpret_cast<const char*>(text) : "?";
  }
  sqlite3_finalize(stmt);
  return result;
}

// ---- The analysis -----------------------------------------------------------------------

inline constexpr double kNever = std::numeric_limits<double>::infinity();
/// Times compared across a double round trip through the file.
inline constexpr double kTimeSlack = 1e-6;

struct Call {
  Action action;
  int accepted;  // 1, 0, or -1 (threw: unknown)
  double at, before, after, lease_until;
};

/// One claim: a plain worker's (with its calls) or a Worker handler's.
struct ClaimInfo {
  std::int64_t job = 0;
  std::int64_t token = 0;  // plain only
  bool by_worker = false;  // a jobsched::Worker's (its calls are not seen)
  int process = 0;
  int thread = 0;
  int attempt = 0;
  int max_attempts = 0;
  double at = 0, lease_until = 0, before = 0, after = 0;
  std::vector<Call> calls;
  // The end call (complete, fail or release) it announced, if any.
  Action end_action = Action{};
  double end_intent_before = kNever;
  std::optional<Call> end;  // its result, if reported
  // Worker: the handler's last word.
  bool handler_throws = false;
  double handler_end_before = kNever;

  /// From when the holder may have let go of the job (fail or release), making a claim by
  /// someone else legitimate; kNever if it never tried, or was refused.
  double free_from() const {
    if (by_worker)
      return handler_throws ? handler_end_before : kNever;
    if ((end_action == kFail || end_action == kRelease) && !(end && end->accepted == 0))
      return end_intent_before;
    return kNever;
  }
  /// When its accepted complete had surely committed; kNever if none.
  double completed_by() const {
    return end && end->action == kComplete && end->accepted == 1 ? end->after : kNever;
  }
  /// Its lease end as far as a claim begun at `second_before` can know it: the latest of
  /// the claim's and of its accepted extends returned by then (a lease never moves earlier).
  double lease_end_before(double second_before) const {
    double end_time = lease_until;
    for (const Call& call : calls) {
      if (call.action == kExtend && call.accepted == 1 && call.after <= second_before)
        end_time = std::max(end_time, call.lease_until);
    }
    return end_time;
  }
  double final_lease_end() const { return lease_end_before(kNever); }
  bool may_have_completed() const {
    if (by_worker)
      return !handler_throws;
    return end_action == kComplete && (!end || end->accepted != 0);
  }
  std::int64_t accepted_completes() const {
    return std::count_if(calls.begin(), calls.end(), [](const Call& call) {
      return call.action == kComplete && call.accepted == 1;
    });
  }
};

/// What the parent learnt from its children, apart from the records.
struct RunFacts {
  std::set<std::int64_t> added_by_parent;
  std::set<int> killed;  // child numbers SIGKILLed by the parent
};

/// The records, sorted out.
struct Reports {
  std::set<std::int64_t> added;
  std::set<std::int64_t> deleted;
  /// Ids a killed producer may have added without reporting: the one after its last report.
  std::set<std::int64_t> maybe_unreported;
  std::vector<ClaimInfo> claims;
  std::map<std::int64_t, std::vector<std::size_t>> claims_of;  // job -> claims, by `at`
};

inline void count_result(const Call& call, Result& result) {
  if (call.accepted < 0) {
    ++result.calls_thrown;
    return;
  }
  const bool yes = call.accepted == 1;
  switch (call.action) {
    case kComplete:
      ++(yes ? result.completes_accepted : result.completes_refused);
      break;
    case kFail:
      ++(yes ? result.fails_accepted : result.fails_refused);
      break;
    case kRelease:
      ++(yes ? result.releases_accepted : result.releases_refused);
      break;
    case kExtend:
      ++(yes ? result.extends_accepted : result.extends_refused);
      break;
  }
}

inline ClaimInfo claim_from(const Logged& logged) {
  const Record& r = logged.record;
  ClaimInfo claim;
  claim.by_worker = r.kind == kHandlerStart;
  claim.job = r.job_id;
  claim.token = r.token;
  claim.process = logged.process;
  claim.thread = r.thread;
  claim.attempt = r.attempt;
  claim.max_attempts = r.max_attempts;
  claim.at = r.at;
  claim.lease_until = r.lease_until;
  claim.before = r.before;
  claim.after = r.after;
  return claim;
}

inline Reports read_reports(const std::vector<Logged>& log, const RunFacts& facts, Result& result) {
  Reports reports;
  reports.added = facts.added_by_parent;
  struct Incarnation {
    std::int64_t hello = -1;  // the highest id when it started; -1: no hello
    std::int64_t last_reported = -1;
  };
  std::map<int, Incarnation> producers;
  std::vector<ClaimInfo>& claims = reports.claims;
  std::map<std::pair<std::int64_t, std::int64_t>, std::size_t> by_token;  // (job, token)
  std::map<std::pair<int, int>, std::size_t> open_handler;                // (process, thread)
  for (const Logged& logged : log) {
    const Record& r = logged.record;
    switch (r.kind) {
      case kAdded:
        if (!reports.added.insert(r.job_id).second)
          harness_error(result, "id " + std::to_string(r.job_id) + " reported added twice");
        producers[logged.process].last_reported = r.job_id;
        break;
      case kHello:
        producers[logged.process].hello = r.job_id;
        break;
      case kProducerDone:
        break;
      case kDeleted:
        reports.deleted.insert(r.job_id);
        break;
      case kClaim:
        if (!by_token.emplace(std::make_pair(r.job_id, r.token), claims.size()).second)
          harness_error(result, "one token reported for two claims");
        claims.push_back(claim_from(logged));
        break;
      case kIntent:
      case kResult: {
        const auto found = by_token.find(std::make_pair(r.job_id, r.token));
        if (found == by_token.end()) {
          harness_error(result, "a call on a claim nobody reported");
          break;
        }
        ClaimInfo& claim = claims[found->second];
        const auto action = static_cast<Action>(r.action);
        const bool ends = action == kComplete || action == kFail || action == kRelease;
        if (r.kind == kIntent) {
          if (ends) {
            claim.end_action = action;
            claim.end_intent_before = r.before;
          }
          break;
        }
        const Call call{action, r.accepted, r.at, r.before, r.after, r.lease_until};
        claim.calls.push_back(call);
        if (ends)
          claim.end = call;
        count_result(call, result);
        break;
      }
      case kHandlerStart:
        open_handler[std::make_pair(logged.process, r.thread)] = claims.size();
        claims.push_back(claim_from(logged));
        ++result.handler_starts;
        break;
      case kHandlerEnd: {
        const auto found = open_handler.find(std::make_pair(logged.process, r.thread));
        if (found == open_handler.end() || claims[found->second].job != r.job_id) {
          harness_error(result, "a handler ended a job it never started");
          break;
        }
        ClaimInfo& claim = claims[found->second];
        claim.handler_throws = r.accepted == 0;
        claim.handler_end_before = r.before;
        result.handler_throws += claim.handler_throws ? 1 : 0;
        open_handler.erase(found);
        break;
      }
      case kError:
        if (result.worker_errors++ == 0)
          result.first_worker_error = std::string(r.message, strnlen(r.message, sizeof r.message));
        break;
      default:
        harness_error(result, "a record of unknown kind " + std::to_string(r.kind));
    }
  }
  result.added_reported = static_cast<std::int64_t>(reports.added.size());
  result.deleted_by_rogue = static_cast<std::int64_t>(reports.deleted.size());
  for (const std::int64_t id : reports.deleted)
    result.deleted_reported += reports.added.count(id) != 0 ? 1 : 0;
  for (const auto& [process, incarnation] : producers) {
    if (facts.killed.count(process) != 0 && incarnation.hello >= 0) {
      reports.maybe_unreported.insert(std::max(incarnation.hello, incarnation.last_reported) + 1);
    }
  }
  for (std::size_t i = 0; i < claims.size(); ++i) {
    reports.claims_of[claims[i].job].push_back(i);
    if (!claims[i].by_worker) {
      ++result.claims;
      result.late_claims += claims[i].after >= claims[i].lease_until ? 1 : 0;
    }
  }
  for (auto& [job, mine] : reports.claims_of) {
    std::sort(mine.begin(), mine.end(),
              [&](std::size_t a, std::size_t b) { return claims[a].at < claims[b].at; });
  }
  return reports;
}

/// A row of the final file, and the job's state as a function of the row and the time it
/// was read: a job whose lease ran out on its last attempt failed at that lease end, whether
/// or not the row says so yet.
struct Row {
  std::optional<double> completed_at, failed_at, lease_until, expires_at;
  std::int64_t attempts = 0;
  std::int64_t max_attempts = 0;  // the job's own, or the policy's
  std::string last_error;
  bool abandoned = false;  // failed, not marked in the row

  std::optional<double> failed_time() const { return abandoned ? lease_until : failed_at; }
};

struct FinalFile {
  std::map<std::int64_t, Row> rows;
  std::map<std::int64_t, jobsched::Job> listed_failed;  // failed_jobs()
  std::map<std::int64_t, jobsched::Job> got;            // get_job() of every row
};

inline std::map<std::int64_t, Row> read_rows(sqlite3* db, const Config& config, double now,
                                             Result& result) {
  std::map<std::int64_t, Row> rows;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, completed_at, failed_at, lease_until, expires_at, "
                         "attempts, max_attempts, last_error FROM job",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    harness_error(result, std::string("cannot read the job table: ") + sqlite3_errmsg(db));
    return rows;
  }
  auto optional_double = [stmt](int column) -> std::optional<double> {
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
      return std::nullopt;
    return sqlite3_column_double(stmt, column);
  };
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Row row;
    row.completed_at = optional_double(1);
    row.failed_at = optional_double(2);
    row.lease_until = optional_double(3);
    row.expires_at = optional_double(4);
    row.attempts = sqlite3_column_int64(stmt, 5);
    row.max_attempts = sqlite3_column_type(stmt, 6) == SQLITE_NULL ? config.max_attempts
                                                                   : sqlite3_column_int64(stmt, 6);
    const unsigned char* error = sqlite3_column_text(stmt, 7);
    if (error != nullptr)
      row.last_error = reinterpret_cast<const char*>(error);
    row.abandoned = !row.completed_at && !row.failed_at && row.lease_until &&
                    *row.lease_until <= now && row.attempts >= row.max_attempts &&
                    (!row.expires_at || *row.lease_until < *row.expires_at);
    rows.emplace(sqlite3_column_int64(stmt, 0), row);
  }
  if (rc != SQLITE_DONE)
    harness_error(result, std::string("reading the job table: ") + sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return rows;
}

/// Reads the file once every child is dead: its rows, then what the API says of them.
inline FinalFile read_final_file(const std::string& path, const Config& config, Result& result) {
  FinalFile file;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
  if (rc != SQLITE_OK) {
    harness_error(result, "cannot open the file after the run");
    result.integrity = "cannot open the file";
    return file;
  }
  sqlite3_busy_timeout(db.get(), 5000);
  const double read_at = wall_now();
  file.rows = read_rows(db.get(), config, read_at, result);
  try {
    auto scheduler = jobsched::Scheduler::open(path, scheduler_options(config));
    const jobsched::TimePoint now = jobsched::from_unix_seconds(read_at);
    for (jobsched::Job& job : scheduler.failed_jobs(now))
      file.listed_failed.emplace(job.id, std::move(job));
    for (const auto& [id, row] : file.rows) {
      if (std::optional<jobsched::Job> job = scheduler.get_job(id))
        file.got.emplace(id, std::move(*job));
    }
    result.pending_at_end = scheduler.count_pending_jobs(now);
  } catch (const std::exception& e) {
    harness_error(result, std::string("reading the file through a Scheduler: ") + e.what());
  }
  result.integrity = integrity_check(db.get());
  return file;
}

class Notes {
 public:
  explicit Notes(Result& result) : result_(result) {}
  /// Keeps the first two descriptions of each kind, 24 in all.
  void add(const std::string& kind, const std::string& text) {
    if (++seen_[kind] <= 2 && result_.violations.size() < 24)
      result_.violations.push_back(kind + ": " + text);
  }

 private:
  Result& result_;
  std::map<std::string, int> seen_;
};

inline std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6f", seconds);
  return text;
}

inline std::string describe(const ClaimInfo& claim) {
  char text[256];
  std::snprintf(
      text, sizeof text, "%s %d.%d (attempt %d of %d, at %.6f, lease until %.6f, window %.6f-%.6f)",
      claim.by_worker ? "Worker process" : "process", claim.process, claim.thread, claim.attempt,
      claim.max_attempts, claim.at, claim.lease_until, claim.before, claim.after);
  return text;
}

inline std::string describe_call(const Call& call) {
  static const char* const names[] = {"?", "complete", "fail", "release", "extend"};
  char text[160];
  std::snprintf(text, sizeof text, "%s(now %.6f) -> %d in %.6f-%.6f, lease until %.6f",
                names[call.action >= 1 && call.action <= 4 ? call.action : 0], call.at,
                call.accepted, call.before, call.after, call.lease_until);
  return text;
}

/// Every claim of a job and its calls, for a violation's note.
inline std::string describe_claims(const Reports& reports, std::int64_t job) {
  std::string text;
  const auto found = reports.claims_of.find(job);
  if (found == reports.claims_of.end())
    return "; no claim reported";
  for (const std::size_t c : found->second) {
    text += "; " + describe(reports.claims[c]);
    for (const Call& call : reports.claims[c].calls)
      text += " " + describe_call(call);
  }
  return text;
}

/// Why a failed job's failed_at is wrong, if it is: it must be the time of the fail that
/// ended its last attempt, or the end of that attempt's lease.
inline std::optional<std::string> wrong_failure_time(const Row& row,
                                                     const std::vector<const ClaimInfo*>& mine) {
  const double failed_at = *row.failed_time();
  if (mine.empty())
    return std::nullopt;
  const ClaimInfo& last = *mine.back();
  // Only when the newest claim reported was the last attempt and did not end otherwise
  // (a release or complete accepted: then the failing claim went unreported).
  const bool ended_otherwise = last.end && last.end->accepted == 1 && last.end->action != kFail;
  if (last.attempt < last.max_attempts || ended_otherwise)
    return std::nullopt;
  const double lease_end = last.final_lease_end();
  auto is = [&](double expected) { return std::fabs(failed_at - expected) <= kTimeSlack; };
  if (!last.by_worker && last.end && last.end->action == kFail && last.end->accepted == 1) {
    if (!is(last.end->at))
      return "its last fail was at " + seconds_text(last.end->at) + ", it failed at " +
             seconds_text(failed_at);
    return std::nullopt;
  }
  if (!last.by_worker && last.end && last.end->accepted == 0) {
    // Every call of the claim was reported, all extends included: it failed at lease end.
    if (!is(lease_end))
      return "its last lease ended at " + seconds_text(lease_end) + ", it failed at " +
             seconds_text(failed_at);
    return std::nullopt;
  }
  // A fail the thread or handler may have made, or extends (a Worker's heartbeat) may have
  // gone unreported: only a lower bound.
  const bool may_have_failed =
      last.by_worker ? last.handler_throws : last.end_action == kFail && is(last.end_intent_before);
  if (!may_have_failed && failed_at < lease_end - kTimeSlack)
    return "it failed at " + seconds_text(failed_at) + ", before its last lease ended at " +
           seconds_text(lease_end);
  return std::nullopt;
}

/// Every id added, every row, against the reports.
inline void check_rows(const Reports& reports, const FinalFile& file, Result& result,
                       Notes& notes) {
  for (const std::int64_t id : reports.added) {
    if (file.rows.count(id) == 0) {
      ++result.missing;
      notes.add("missing", "job " + std::to_string(id) + "'s add returned; it is gone" +
                               (reports.deleted.count(id) != 0 ? " (the rogue deleted it)" : ""));
    }
  }
  for (const auto& [id, row] : file.rows) {
    const std::string name = "job " + std::to_string(id);
    if (reports.added.count(id) == 0) {
      if (reports.maybe_unreported.count(id) != 0) {
        ++result.added_unreported;
      } else {
        ++result.unexplained_rows;
        notes.add("unexplained row", name + " was never reported added");
      }
    }
    std::vector<const ClaimInfo*> mine;
    if (const auto found = reports.claims_of.find(id); found != reports.claims_of.end()) {
      for (const std::size_t c : found->second)
        mine.push_back(&reports.claims[c]);
    }
    const bool completed = row.completed_at.has_value();
    const std::optional<double> failed_at = row.failed_time();
    const bool failed = failed_at.has_value();

    // What the API says: failed_jobs() and get_job() agree with the row.
    std::optional<std::string> disagrees;
    const auto listed = file.listed_failed.find(id);
    const auto got = file.got.find(id);
    if ((listed != file.listed_failed.end()) != failed) {
      disagrees = failed ? "failed, not listed by failed_jobs()" : "listed by failed_jobs()";
    } else if (listed != file.listed_failed.end() &&
               std::fabs(jobsched::to_unix_seconds(*listed->second.failed_at) - *failed_at) >
                   kTimeSlack) {
      disagrees = "failed_jobs() says it failed at " +
                  seconds_text(jobsched::to_unix_seconds(*listed->second.failed_at)) +
                  ", the row at " + seconds_text(*failed_at);
    } else if (got == file.got.end()) {
      disagrees = "get_job() found nothing";
    } else if (got->second.is_completed() != completed || got->second.is_failed() != failed ||
               (failed && std::fabs(jobsched::to_unix_seconds(*got->second.failed_at) -
                                    *failed_at) > kTimeSlack)) {
      disagrees = "get_job() says completed " + std::to_string(got->second.is_completed()) +
                  ", failed " + std::to_string(got->second.is_failed());
    }
    if (disagrees) {
      ++result.state_mismatch;
      notes.add("state mismatch", name + ": " + *disagrees);
    }

    std::int64_t accepted_completes = 0;
    for (const ClaimInfo* claim : mine)
      accepted_completes += claim->accepted_completes();
    if (completed && failed) {
      ++result.completed_and_failed;
      notes.add("completed and failed", name);
    }
    if (!completed && !failed) {
      ++result.unfinished;
      notes.add("unfinished", name + " is neither completed nor failed at the end (attempts " +
                                  std::to_string(row.attempts) + ")" +
                                  describe_claims(reports, id));
    }
    if (accepted_completes > 0 && !completed) {
      ++result.accepted_not_completed;
      notes.add("accepted, not completed", name + ": complete() returned true" +
                                               (failed ? ", the job failed" : "") +
                                               describe_claims(reports, id));
    }
    if (completed) {
      ++result.completed;
      if (accepted_completes > 1) {
        result.stale_accepted += accepted_completes - 1;
        notes.add("stale accepted", name + ": " + std::to_string(accepted_completes) +
                                        " accepted completes" + describe_claims(reports, id));
      } else if (accepted_completes == 0) {
        const bool by_worker = std::any_of(mine.begin(), mine.end(), [](const ClaimInfo* c) {
          return c->by_worker && c->may_have_completed();
        });
        const bool by_killed = std::any_of(mine.begin(), mine.end(), [](const ClaimInfo* c) {
          return !c->by_worker && c->may_have_completed();
        });
        if (by_worker) {
          ++result.completed_by_worker_processes;
        } else if (by_killed) {
          ++result.completed_unreported;
        } else {
          ++result.completed_unexplained;
          notes.add("completed unexplained",
                    name + " completed at " + seconds_text(*row.completed_at) +
                        ", no claim could have completed it" + describe_claims(reports, id));
        }
      }
      for (const ClaimInfo* claim : mine) {
        if (claim->before > *row.completed_at + kTimeSlack) {
          ++result.reclaimed_after_completion;
          notes.add("claimed after completion", name + " completed at " +
                                                    seconds_text(*row.completed_at) +
                                                    ", claimed by " + describe(*claim));
          break;
        }
      }
    }
    if (failed) {
      ++result.failed;
      result.failed_by_lease +=
          row.abandoned || row.last_error.rfind("the lease of attempt", 0) == 0 ? 1 : 0;
      result.failed_unmarked_at_end += row.abandoned ? 1 : 0;
      if (row.attempts < row.max_attempts) {
        ++result.failed_early;
        notes.add("failed early", name + " failed after " + std::to_string(row.attempts) + " of " +
                                      std::to_string(row.max_attempts) + " attempts");
      }
      for (const ClaimInfo* claim : mine) {
        if (claim->before > *failed_at + kTimeSlack) {
          ++result.claimed_after_failure;
          notes.add("claimed after failure", name + " failed at " + seconds_text(*failed_at) +
                                                 ", claimed by " + describe(*claim));
          break;
        }
      }
      if (const std::optional<std::string> wrong = wrong_failure_time(row, mine)) {
        ++result.failed_at_not_lease_end;
        notes.add("failed_at not at the lease end", name + ": " + *wrong + " (" + row.last_error +
                                                        ")" + describe_claims(reports, id));
      }
    }
  }
}

/// The claims of each job, against each other.
inline void check_claims(const Reports& reports, Result& result, Notes& notes) {
  const std::vector<ClaimInfo>& claims = reports.claims;
  for (const auto& [job, mine] : reports.claims_of) {
    const std::string name = "job " + std::to_string(job);
    const auto runs = static_cast<std::int64_t>(mine.size());
    result.jobs_run_more_than_once += runs > 1 ? 1 : 0;
    result.max_runs_of_one_job = std::max(result.max_runs_of_one_job, runs);
    for (const std::size_t c : mine) {
      const ClaimInfo& claim = claims[c];
      if (claim.attempt > claim.max_attempts) {
        ++result.claims_beyond_last_attempt;
        notes.add("claim beyond the last attempt", name + " by " + describe(claim));
      }
      // Each call in order: accepted after another claim surely took the job over (stale),
      // or after the lease of the last attempt ran out (late); an extend that shortened it.
      double lease_end = claim.lease_until;
      for (const Call& call : claim.calls) {
        if (call.accepted != 1)
          continue;
        for (const std::size_t o : mine) {
          const ClaimInfo& other = claims[o];
          if (o != c && other.before >= claim.after && other.after <= call.before) {
            ++result.stale_accepted;
            notes.add("stale accepted", name + ": " + describe_call(call) + " of " +
                                            describe(claim) + ", after the claim of " +
                                            describe(other));
            break;
          }
        }
        if (claim.attempt >= claim.max_attempts && call.at >= lease_end + kTimeSlack) {
          ++result.late_last_attempt_accepted;
          notes.add("late call accepted on the last attempt",
                    name + ": " + describe_call(call) + " of " + describe(claim) +
                        ", whose lease ended at " + seconds_text(lease_end));
        }
        if (call.action == kExtend) {
          if (call.lease_until < lease_end - kTimeSlack) {
            ++result.lease_moved_earlier;
            notes.add("lease moved earlier", name + ": " + describe_call(call) + " of " +
                                                 describe(claim) + ", lease was until " +
                                                 seconds_text(lease_end));
          }
          lease_end = std::max(lease_end, call.lease_until);
        }
      }
    }
    // `second` was claimed while `first` held a live lease: it committed before first's
    // lease end, by the claim's own time (`at`, what the library compares leases with) or
    // by the wall clock (`after`), and first had surely neither let go of the job before
    // (fail, release) nor completed it.
    auto live_lease_taken = [](const ClaimInfo& first, const ClaimInfo& second) {
      if (!(std::min(second.at, second.after) < first.lease_end_before(second.before)))
        return false;
      return second.after < first.free_from() && first.completed_by() > second.before;
    };
    bool overlapped = false;
    for (std::size_t i = 0; i < mine.size() && !overlapped; ++i) {
      for (std::size_t j = i + 1; j < mine.size() && !overlapped; ++j) {
        const ClaimInfo& a = claims[mine[i]];
        const ClaimInfo& b = claims[mine[j]];
        // The order of the two commits, when the call windows tell it; otherwise either.
        const bool a_first = a.after <= b.before;
        const bool b_first = b.after <= a.before;
        const bool taken = a_first   ? live_lease_taken(a, b)
                           : b_first ? live_lease_taken(b, a)
                                     : live_lease_taken(a, b) && live_lease_taken(b, a);
        if (taken) {
          overlapped = true;
          ++result.double_leased;
          notes.add("two live leases",
                    name + " claimed by " + describe(a) + " and by " + describe(b));
        }
      }
    }
  }
}

/// Counts the broken promises in the log and the final file.
inline void analyse(const std::vector<Logged>& log, const RunFacts& facts, const std::string& path,
                    const Config& config, Result& result) {
  Notes notes(result);
  const Reports reports = read_reports(log, facts, result);
  const FinalFile file = read_final_file(path, config, result);
  std::int64_t attempts_in_file = 0;
  for (const auto& [id, row] : file.rows)
    attempts_in_file += row.attempts;
  result.unreported_claims =
      attempts_in_file - (result.claims + result.handler_starts - result.releases_accepted);
  check_rows(reports, file, result, notes);
  check_claims(reports, result, notes);
  if (result.pending_at_end != 0)
    notes.add("pending at the end", std::to_string(result.pending_at_end) + " jobs");
  result.lost = result.missing + result.unfinished;
}

}  // namespace detail

/// Runs one chaos round on a new file at `path` (which must not exist yet).
inline Result run_chaos(const std::string& path, const Config& config) {
  using namespace detail;
  using Clock = std::chrono::steady_clock;
  Result result;
  result.jobs = config.jobs;
  result.seed = config.seed != 0 ? config.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  std::mt19937_64 random(result.seed);
  const jobsched::Options options = scheduler_options(config);
  RunFacts facts;
  const Clock::time_point began = Clock::now();

  // The first jobs, in one transaction. No connection stays open in the parent across a
  // fork, and no thread ever runs in it.
  try {
    auto scheduler = jobsched::Scheduler::open(path, options);
    std::vector<std::int64_t> ids;
    if (sqlite3_exec(scheduler.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error("BEGIN failed");
    for (int i = 0; i < std::min(config.initial_jobs, config.jobs); ++i)
      ids.push_back(
          scheduler.add_job(jobsched::Payload::integer(i + 1), new_job_options(random, config)).id);
    if (sqlite3_exec(scheduler.handle(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("COMMIT failed: ") + sqlite3_errmsg(scheduler.handle()));
    facts.added_by_parent.insert(ids.begin(), ids.end());
  } catch (const std::exception& e) {
    harness_error(result, std::string("adding the first jobs: ") + e.what());
    return result;
  }

  const pid_t parent = ::getpid();
  std::vector<Child> children;
  auto add_slot = [&children](Role role) {
    children.emplace_back();
    children.back().role = role;
  };
  for (int i = 0; i < config.processes; ++i)
    add_slot(Role::plain);
  for (int i = 0; i < config.worker_processes; ++i)
    add_slot(Role::worker);
  add_slot(Role::producer);
  if (config.rogue_deletes > 0)
    add_slot(Role::rogue);
  std::vector<Logged> log;
  log.reserve(static_cast<std::size_t>(config.jobs) * 8 + 1024);

  auto spawn = [&](std::size_t slot) {
    int fds[2];
    if (::pipe(fds) != 0) {
      harness_error(result, "pipe failed");
      return false;
    }
    Child& child = children[slot];
    const int number = result.processes_started++;
    const std::uint64_t seed = random();
    int plain_number = 0;
    for (std::size_t i = 0; i < slot; ++i)
      plain_number += children[i].role == Role::plain ? 1 : 0;
    const bool skewed = config.claim_skew.count() != 0 && plain_number % 2 == 1;
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      harness_error(result, "fork failed");
      return false;
    }
    if (pid == 0) {
      ::close(fds[0]);
      for (const Child& other : children) {
        if (other.fd >= 0)
          ::close(other.fd);
      }
      switch (child.role) {
        case Role::plain:
          plain_main(path, config, fds[1], seed, skewed, parent);
        case Role::worker:
          worker_main(path, config, fds[1], seed, parent);
        case Role::producer:
          producer_main(path, config, fds[1], seed, parent);
        case Role::rogue:
          rogue_main(path, config, fds[1], seed, parent, config.rogue_deletes - child.deletes_done);
      }
      ::_exit(1);
    }
    ::close(fds[1]);
    child.pid = pid;
    child.fd = fds[0];
    child.number = number;
    child.buffer.clear();
    if (child.role == Role::producer)
      ++result.producers_started;
    return true;
  };
  // A child that ended (killed, or on its own): collect it and decide whether it comes back.
  auto replace = [&](std::size_t slot, bool killed) {
    Child& child = children[slot];
    const std::optional<int> status = reap(child.pid, result);
    drain(child, log, result);
    const bool finished_well = status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0 &&
                               (child.finished || (child.role == Role::rogue &&
                                                   child.deletes_done >= config.rogue_deletes));
    if (killed) {
      facts.killed.insert(child.number);
    } else if (!finished_well) {
      ++result.unexpected_exits;
    }
    child.pid = -1;
    if (child.role == Role::rogue && child.deletes_done >= config.rogue_deletes)
      child.finished = true;
    if (!status || child.finished)
      return true;  // done, or not collectable: either way, no replacement
    return spawn(slot);
  };

  bool spawned = true;
  for (std::size_t i = 0; i < children.size() && spawned; ++i)
    spawned = spawn(i);

  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto next_interval = [&] {
    return std::chrono::duration_cast<Clock::duration>(config.kill_interval * jitter(random));
  };
  Clock::time_point next_kill = Clock::now() + next_interval();
  Clock::time_point next_look = Clock::now();
  std::vector<pollfd> polled;
  std::vector<std::size_t> polled_slot;
  while (spawned && result.harness_errors == 0) {
    const Clock::time_point now = Clock::now();
    if (now - began > config.time_limit) {
      result.timed_out = true;
      break;
    }
    const bool others_done = std::all_of(children.begin(), children.end(), [](const Child& c) {
      return (c.role != Role::producer && c.role != Role::rogue) || c.finished;
    });
    if (others_done && now >= next_look) {
      // Done when every job was added and none is pending (completed or failed, or gone).
      std::int64_t pending = -1;
      try {
        auto scheduler = jobsched::Scheduler::open(path, options);
        pending = scheduler.count_pending_jobs();
      } catch (const std::exception&) {
        // Busy or the like: look again later.
      }
      if (pending == 0)
        break;
      next_look = Clock::now() + std::chrono::milliseconds{50};
    }
    if (now >= next_kill) {
      // The victim's role in turn (so that each is killed, whatever the luck), the victim
      // and the moment at random.
      static constexpr Role turns[] = {Role::plain, Role::producer, Role::plain, Role::worker};
      std::vector<std::size_t> killable;
      for (int pass = 0; pass < 2 && killable.empty(); ++pass) {
        for (std::size_t i = 0; i < children.size(); ++i) {
          if (children[i].pid > 0 && children[i].role != Role::rogue &&
              (pass == 1 || children[i].role == turns[result.kills % 4]))
            killable.push_back(i);
        }
      }
      if (!killable.empty()) {
        std::uniform_int_distribution<std::size_t> pick(0, killable.size() - 1);
        const std::size_t slot = killable[pick(random)];
        ::kill(children[slot].pid, SIGKILL);
        ++result.kills;
        result.kills_of_producer += children[slot].role == Role::producer ? 1 : 0;
        result.kills_of_worker_processes += children[slot].role == Role::worker ? 1 : 0;
        spawned = replace(slot, true);
      }
      next_kill = Clock::now() + next_interval();
    }
    polled.clear();
    polled_slot.clear();
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (children[i].pid > 0) {
        polled.push_back(pollfd{children[i].fd, POLLIN, 0});
        polled_slot.push_back(i);
      }
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(next_kill, others_done ? next_look : next_kill) - Clock::now());
    const int ready = ::poll(polled.data(), polled.size(),
                             static_cast<int>(std::clamp<long long>(wait.count(), 0, 20)));
    if (ready <= 0)
      continue;
    for (std::size_t k = 0; k < polled.size() && spawned; ++k) {
      if ((polled[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      if (!read_some(children[polled_slot[k]], log))
        spawned = replace(polled_slot[k], false);  // ended on its own
    }
  }
  for (Child& child : children) {
    if (child.pid <= 0)
      continue;
    ::kill(child.pid, SIGKILL);
    reap(child.pid, result);
    drain(child, log, result);
    child.pid = -1;
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - began).count();
  analyse(log, facts, path, config, result);
  return result;
}

}  // namespace jobsched_chaos
