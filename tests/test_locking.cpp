// SPDX-License-Identifier: MIT
// The successor's job locking: a locked job is pending but never next.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_locking {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Scheduler;
using jobsched_test::at;
using jobsched_test::PinnedClock;
using jobsched_test::TempFile;

namespace {

JobOptions starting(double starts, std::optional<double> expires = std::nullopt) {
  JobOptions options;
  options.created_at = at(0.0);
  options.starts_at = at(starts);
  if (expires)
    options.expires_at = at(*expires);
  return options;
}

}  // namespace

TEST_CASE("a locked job is not next but still counts as pending") {
  TempFile file("locking");
  auto scheduler = Scheduler::open(
      GENERATE(as<std::string>{}, "file", "memory") == "file" ? file.path() : ":memory:");
  const Job first = scheduler.add_job("first", starting(10));
  const Job second = scheduler.add_job("second", starting(20));

  CHECK(scheduler.lock_job(first.id, at(5.0)));
  CHECK(scheduler.get_job(first.id)->locked_at == at(5.0));
  CHECK(scheduler.next_job(at(5.0))->id == second.id);
  CHECK(scheduler.seconds_until_next_job(at(5.0))->id == second.id);
  CHECK(scheduler.count_pending_jobs(at(5.0)) == 2);

  CHECK(scheduler.unlock_job(first.id));
  CHECK_FALSE(scheduler.get_job(first.id)->locked_at.has_value());
  CHECK(scheduler.next_job(at(5.0))->id == first.id);
}

TEST_CASE("lock_job says whether it locked, unlock_job whether the job exists, as the successor") {
  PinnedClock clock;
  auto scheduler = Scheduler::open(":memory:", clock.options());
  const Job pending = scheduler.add_job("p", starting(0));
  const Job completed = scheduler.add_job("c", starting(0));
  const Job expired = scheduler.add_job("e", starting(0, 1));
  scheduler.complete_job(completed.id, at(0.5));

  CHECK(scheduler.unlock_job(pending.id));  // true for any job that exists, as the successor
  CHECK_FALSE(scheduler.unlock_job(999));
  CHECK(scheduler.lock_job(pending.id, at(2.0)));
  CHECK_FALSE(scheduler.lock_job(pending.id, at(3.0)));
  CHECK(scheduler.get_job(pending.id)->locked_at == at(2.0));
  CHECK_FALSE(scheduler.lock_job(completed.id, at(2.0)));
  CHECK_FALSE(scheduler.lock_job(expired.id, at(2.0)));
  CHECK_FALSE(scheduler.lock_job(999, at(2.0)));
  CHECK(scheduler.unlock_job(pending.id));
  CHECK(scheduler.unlock_job(pending.id));
  CHECK_FALSE(scheduler.get_job(pending.id)->locked_at.has_value());
  CHECK(scheduler.lock_job(pending.id));
  CHECK(scheduler.get_job(pending.id)->locked_at == clock.now());
}

TEST_CASE("lock_next_job takes jobs in next-job order until none is left") {
  auto scheduler = Scheduler::open(":memory:");
  const Job b = scheduler.add_job("b", starting(20));
  const Job a = scheduler.add_job("a", starting(10));
  scheduler.add_job("expired", starting(5, 6));

  const auto first = scheduler.lock_next_job(at(7.0));
  REQUIRE(first.has_value());
  CHECK(first->id == a.id);
  CHECK(first->data.bytes() == "a");
  CHECK(first->locked_at == at(7.0));
  CHECK(*scheduler.get_job(a.id) == *first);
  CHECK(scheduler.lock_next_job(at(7.0))->id == b.id);
  CHECK_FALSE(scheduler.lock_next_job(at(7.0)).has_value());
  CHECK_FALSE(scheduler.next_job(at(7.0)).has_value());
}

TEST_CASE("completing a locked job unlocks it") {
  auto scheduler = Scheduler::open(":memory:");
  const Job job = scheduler.add_job("j", starting(0));
  REQUIRE(scheduler.lock_next_job(at(1.0)).has_value());
  REQUIRE(scheduler.complete_job(job.id, at(2.0)));
  const auto stored = scheduler.get_job(job.id);
  CHECK(stored->completed_at == at(2.0));
  CHECK_FALSE(stored->locked_at.has_value());
  CHECK(scheduler.unlock_job(job.id));
  CHECK(*scheduler.get_job(job.id) == *stored);
}

TEST_CASE("four processes locking the next job never lock the same job twice") {
  TempFile file("lock-processes");
  constexpr int jobs = 400;
  constexpr int processes = 4;
  {
    auto scheduler = Scheduler::open(file.path());
    for (int i = 0; i < jobs; ++i)
      scheduler.add_job(std::to_string(i), starting(i));
  }
  const auto reports = jobsched_test::run_in_processes(processes, [&](const auto& report) {
    int status = 0;
    auto scheduler = Scheduler::open(file.path());
    // More locks than jobs means a lock did not hold: the loop would never end.
    for (int locks = 0; locks <= jobs; ++locks) {
      const auto job = scheduler.lock_next_job(at(1e6));
      if (!job)
        return status;
      if (!report(job->id))
        status = 2;
    }
    return 4;
  });
  CHECK(reports.exit_codes == std::vector<int>(processes, 0));
  CHECK(reports.times_reported.size() == static_cast<std::size_t>(jobs));
  CHECK(std::all_of(reports.times_reported.begin(), reports.times_reported.end(),
                    [](const auto& entry) { return entry.second == 1; }));
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs(at(1e6)) == jobs);
  CHECK_FALSE(scheduler.next_job(at(1e6)).has_value());
}

}  // namespace test_locking
