// SPDX-License-Identifier: MIT
// Crash chaos: four worker processes drain 3000 jobs under one-second leases while one of
// them is SIGKILLed at random every ~150 ms and replaced. No job is lost, none is leased
// twice at once, no stale completion is accepted, and the file stays intact. Delivery is
// at-least-once: jobs whose worker died re-run, and that is only reported.
// tools/chaos.cpp runs the same code (tests/support/chaos.hpp) for as long as you like.

#include "catch.hpp"
#include "support/chaos.hpp"
#include "support/temp_file.hpp"

using jobsched_test::TempFile;

TEST_CASE("workers killed at random lose no job, never share a live lease, and never "
          "complete a stale claim",
          "[chaos]") {
  TempFile file("crash-chaos");
  jobsched_chaos::Config config;
  config.processes = 4;
  config.jobs = 3000;
  config.kill_interval = std::chrono::milliseconds{150};
  config.lease = jobsched::Seconds{1.0};
  config.time_limit = std::chrono::seconds{55};

  const jobsched_chaos::Result result = jobsched_chaos::run_chaos(file.path(), config);
  INFO(result.summary());
  WARN("crash chaos: " << result.summary());

  REQUIRE_FALSE(result.timed_out);
  // The run was chaotic enough to mean something.
  CHECK(result.kills >= 5);
  CHECK(result.starts >= result.jobs);
  // The promises.
  CHECK(result.lost == 0);
  CHECK(result.accepted_not_completed == 0);
  CHECK(result.double_leased == 0);
  CHECK(result.reclaimed_after_completion == 0);
  CHECK(result.stale_accepted == 0);
  CHECK(result.integrity == "ok");
  // The harness itself: every completion was preceded by a reported claim, and the workers
  // met no error (the busy timeout is 5 s; a killed worker's locks die with it).
  CHECK(result.completed_without_start == 0);
  CHECK(result.worker_errors == 0);
  CHECK(result.unexpected_exits == 0);
  CHECK(result.completes_accepted <= result.jobs);

  // A fresh scheduler still works on the file.
  auto scheduler = jobsched::Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == 0);
  const jobsched::Job job = scheduler.add_job("after the chaos");
  const auto claimed = scheduler.claim_next_job(jobsched::Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == job.id);
  CHECK(scheduler.complete(claimed->claim));
}

TEST_CASE("the chaos harness sees two live leases when a worker's clock runs ahead",
          "[chaos]") {
  // Odd-numbered workers claim with a clock 5 s ahead, so to them every lease has run out:
  // they take jobs other workers still hold. The counter must see it, or the test above
  // proves nothing.
  TempFile file("crash-chaos-skew");
  jobsched_chaos::Config config;
  config.processes = 4;
  config.jobs = 300;
  config.kill_interval = std::chrono::milliseconds{150};
  config.lease = jobsched::Seconds{1.0};
  config.max_work = std::chrono::microseconds{5000};
  config.slow_per_mille = 0;
  config.claim_skew = jobsched::Seconds{5.0};
  config.time_limit = std::chrono::seconds{30};

  const jobsched_chaos::Result result = jobsched_chaos::run_chaos(file.path(), config);
  INFO(result.summary());
  WARN("crash chaos, skewed clocks: " << result.summary());
  REQUIRE_FALSE(result.timed_out);
  CHECK(result.double_leased > 0);
  CHECK(result.lost == 0);
  CHECK(result.stale_accepted == 0);
  CHECK(result.integrity == "ok");
}
