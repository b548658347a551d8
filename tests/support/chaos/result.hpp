// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: what a run found (Result): its figures, the counts of broken promises and the
// text that describes them.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace jobsched_chaos {

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

inline void harness_error(Result& result, const std::string& text) {
  if (result.harness_errors++ == 0)
    result.first_harness_error = text;
}

}  // namespace detail

}  // namespace jobsched_chaos
