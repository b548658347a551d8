// SPDX-License-Identifier: MIT
// Crash chaos: a producer adds 1,500 jobs (300 before the run) while three plain worker
// processes of two threads each and a process running a jobsched::Worker claim them under
// half-second leases, complete, fail, release or extend them, and every ~150 ms one of them
// (producer and Worker included) is SIGKILLed and replaced. Jobs have 2 to 4 attempts, so
// failures and lost leases end some of them failed. Every id whose add returned ends
// completed (exactly one accepted completion) or failed (none, all attempts used, at its
// lease end or its fail); no job is leased twice at once; no stale or late call is
// accepted; the file stays intact. Delivery is at-least-once: reruns are only reported.
// Two more cases prove the harness can fail: skewed clocks must show double leases, and a
// row deleted mid-run must show as lost.
// tools/chaos.cpp runs the same code (tests/support/chaos.hpp) for as long as you like.

#include "catch.hpp"
#include "support/chaos.hpp"
#include "support/temp_file.hpp"

namespace test_crash_chaos {

using jobsched_chaos::Config;
using jobsched_chaos::Result;
using jobsched_test::TempFile;

namespace {

void check_promises(const Result& result) {
  CHECK(result.missing == 0);
  CHECK(result.unfinished == 0);
  CHECK(result.lost == 0);
  CHECK(result.unexplained_rows == 0);
  CHECK(result.accepted_not_completed == 0);
  CHECK(result.completed_unexplained == 0);
  CHECK(result.completed_and_failed == 0);
  CHECK(result.double_leased == 0);
  CHECK(result.stale_accepted == 0);
  CHECK(result.reclaimed_after_completion == 0);
  CHECK(result.claimed_after_failure == 0);
  CHECK(result.claims_beyond_last_attempt == 0);
  CHECK(result.failed_early == 0);
  CHECK(result.late_last_attempt_accepted == 0);
  CHECK(result.failed_at_not_lease_end == 0);
  CHECK(result.lease_moved_earlier == 0);
  CHECK(result.state_mismatch == 0);
  CHECK(result.pending_at_end == 0);
  CHECK(result.integrity == "ok");
}

}  // namespace

TEST_CASE(
    "workers, a Worker and a producer killed at random lose no job, never share a "
    "live lease, and accept no stale or late call",
    "[chaos]") {
  TempFile file("crash-chaos");
  const Config config;  // the defaults are this test's figures
  REQUIRE(config.jobs == 1500);
  const Result result = jobsched_chaos::run_chaos(file.path(), config);
  INFO(result.summary());
  WARN("crash chaos: " << result.summary());

  REQUIRE_FALSE(result.timed_out);
  REQUIRE(result.harness_errors == 0);
  // The run was chaotic enough to mean something, on every path.
  CHECK(result.kills >= 8);
  CHECK(result.kills_of_producer >= 1);
  CHECK(result.kills_of_worker_processes >= 1);
  CHECK(result.claims + result.handler_starts >= result.jobs);
  CHECK(result.handler_starts > 0);
  CHECK(result.handler_throws > 0);
  CHECK(result.fails_accepted > 0);
  CHECK(result.releases_accepted > 0);
  CHECK(result.extends_accepted > 0);
  CHECK(result.completed_by_worker_processes > 0);
  CHECK(result.failed > 0);
  CHECK(result.failed_by_lease > 0);
  // The promises.
  check_promises(result);
  // The accounting: every id, and every completion.
  CHECK(result.added_reported + result.added_unreported == result.jobs);
  CHECK(result.added_unreported <= result.kills_of_producer);
  CHECK(result.completed + result.failed == result.jobs);
  CHECK(result.completes_accepted + result.completed_by_worker_processes +
            result.completed_unreported ==
        result.completed);
  // The harness itself: the children met no error (the busy timeout is 5 s; a killed
  // process's locks die with it) and ended only when killed.
  CHECK(result.worker_errors == 0);
  CHECK(result.unexpected_exits == 0);
  CHECK(result.ok());

  // A fresh scheduler still works on the file.
  auto scheduler = jobsched::Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == 0);
  const jobsched::Job job = scheduler.add_job("after the chaos");
  const auto claimed = scheduler.claim_next_job(jobsched::Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == job.id);
  CHECK(scheduler.complete(claimed->claim));
}

TEST_CASE("the chaos harness sees two live leases when a worker's clock runs ahead", "[chaos]") {
  // Odd-numbered plain worker processes claim with a clock 5 s ahead, so to them every
  // lease has run out: they take jobs other workers still hold. The counter must see it,
  // or the test above proves nothing.
  TempFile file("crash-chaos-skew");
  Config config;
  config.jobs = 400;
  config.initial_jobs = 200;
  config.slow_per_mille = 0;
  config.max_work = std::chrono::microseconds{5000};
  config.claim_skew = jobsched::Seconds{5.0};
  config.time_limit = std::chrono::seconds{30};

  const Result result = jobsched_chaos::run_chaos(file.path(), config);
  INFO(result.summary());
  WARN("crash chaos, skewed clocks: " << result.summary());
  REQUIRE_FALSE(result.timed_out);
  REQUIRE(result.harness_errors == 0);
  CHECK(result.double_leased > 0);
  CHECK_FALSE(result.ok());
  CHECK(result.lost == 0);
  CHECK(result.integrity == "ok");
}

TEST_CASE("the chaos harness counts a job deleted mid-run as lost", "[chaos]") {
  // A rogue process deletes three random rows while the workers run. Nothing but the
  // accounting of every added id can see it: the run ends as usual (nothing pending).
  TempFile file("crash-chaos-rogue");
  Config config;
  config.jobs = 600;
  config.initial_jobs = 300;
  config.rogue_deletes = 3;
  config.time_limit = std::chrono::seconds{30};

  const Result result = jobsched_chaos::run_chaos(file.path(), config);
  INFO(result.summary());
  WARN("crash chaos, rogue deletes: " << result.summary());
  REQUIRE_FALSE(result.timed_out);
  REQUIRE(result.harness_errors == 0);
  CHECK(result.deleted_by_rogue == 3);
  CHECK(result.deleted_reported >= 1);
  CHECK(result.missing == result.deleted_reported);
  CHECK(result.lost == result.missing);
  CHECK(result.violation_count() == result.lost);
  CHECK_FALSE(result.ok());
  CHECK(result.integrity == "ok");
}

}  // namespace test_crash_chaos
