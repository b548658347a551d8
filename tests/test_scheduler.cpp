// SPDX-License-Identifier: MIT
// The core semantics of the original scheduler: adding, finding, counting, completing and
// deleting jobs, on a real file and in memory.

#include <memory>
#include <string>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_scheduler {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::PinnedClock;
using jobsched_test::TempFile;

namespace {

// A scheduler with a pinned clock, on a real file or in memory (each test runs on both).
struct Fixture {
  explicit Fixture(const std::string& where)
      : file("scheduler"),
        scheduler(Scheduler::open(where == "file" ? file.path() : ":memory:", clock.options())) {}
  TempFile file;
  PinnedClock clock;
  Scheduler scheduler;
};

JobOptions times(double created, double starts, std::optional<double> expires = std::nullopt) {
  JobOptions options;
  options.created_at = at(created);
  options.starts_at = at(starts);
  if (expires)
    options.expires_at = at(*expires);
  return options;
}

}  // namespace

TEST_CASE("a new job defaults to created now, starting at once, never expiring") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("payload");
  CHECK(job.id == 1);
  CHECK(job.data.bytes() == "payload");
  CHECK(job.created_at == f.clock.now());
  CHECK(job.starts_at == f.clock.now());
  CHECK_FALSE(job.expires_at.has_value());
  CHECK_FALSE(job.completed_at.has_value());
  CHECK_FALSE(job.locked_at.has_value());
  REQUIRE(f.scheduler.get_job(job.id).has_value());
  CHECK(*f.scheduler.get_job(job.id) == job);
}

TEST_CASE("a job's given times are stored exactly, and starts_at defaults to created_at") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job exact = f.scheduler.add_job("a", times(100.25, 200.5, 300.75));
  CHECK(exact.created_at == at(100.25));
  CHECK(exact.starts_at == at(200.5));
  CHECK(exact.expires_at == at(300.75));
  CHECK(*f.scheduler.get_job(exact.id) == exact);

  JobOptions created_only;
  created_only.created_at = at(50.0);
  const Job defaulted = f.scheduler.add_job("b", created_only);
  CHECK(defaulted.starts_at == at(50.0));
  CHECK(*f.scheduler.get_job(defaulted.id) == defaulted);
}

TEST_CASE("a time of zero is a time, not a missing value") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("zero", times(0.0, 0.0, 0.0));
  const auto stored = f.scheduler.get_job(job.id);
  REQUIRE(stored.has_value());
  CHECK(stored->created_at == at(0.0));
  CHECK(stored->starts_at == at(0.0));
  CHECK(stored->expires_at == at(0.0));
  CHECK(stored->is_expired(at(0.0)));
  CHECK(f.scheduler.count_pending_jobs(at(0.0)) == 0);
  CHECK(f.scheduler.count_pending_jobs(at(-1.0)) == 1);
}

TEST_CASE("add_job_from_now offsets start and expiry from the creation time") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job relative = f.scheduler.add_job_from_now("r", Seconds{3}, Seconds{10});
  CHECK(relative.created_at == f.clock.now());
  CHECK(relative.starts_at == f.clock.now() + Seconds{3});
  CHECK(relative.expires_at == f.clock.now() + Seconds{10});

  const Job given = f.scheduler.add_job_from_now("g", Seconds{1.5}, std::nullopt, at(1000.0));
  CHECK(given.created_at == at(1000.0));
  CHECK(given.starts_at == at(1001.5));
  CHECK_FALSE(given.expires_at.has_value());
  CHECK(*f.scheduler.get_job(given.id) == given);
}

TEST_CASE("get_job of an unknown id is empty") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  CHECK_FALSE(f.scheduler.get_job(1).has_value());
  f.scheduler.add_job("x");
  CHECK_FALSE(f.scheduler.get_job(2).has_value());
  CHECK_FALSE(f.scheduler.get_job(-1).has_value());
}

TEST_CASE("the next job is the earliest start, then the lowest id, due or not") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  CHECK_FALSE(f.scheduler.next_job(at(0.0)).has_value());
  const Job late = f.scheduler.add_job("late", times(0, 30));
  const Job tie_first = f.scheduler.add_job("tie 1", times(0, 20));
  const Job tie_second = f.scheduler.add_job("tie 2", times(0, 20));
  CHECK(f.scheduler.next_job(at(0.0))->id == tie_first.id);
  f.scheduler.complete_job(tie_first.id, at(1.0));
  CHECK(f.scheduler.next_job(at(0.0))->id == tie_second.id);
  f.scheduler.delete_job(tie_second.id);
  const auto next = f.scheduler.next_job(at(0.0));
  REQUIRE(next.has_value());
  CHECK(*next == late);
}

TEST_CASE("an expired job is never next, and expires exactly at its expiry time") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job expiring = f.scheduler.add_job("expiring", times(0, 10, 20));
  const Job later = f.scheduler.add_job("later", times(0, 15));
  CHECK(f.scheduler.next_job(at(19.999))->id == expiring.id);
  CHECK(f.scheduler.next_job(at(20.0))->id == later.id);
  CHECK(f.scheduler.count_pending_jobs(at(19.999)) == 2);
  CHECK(f.scheduler.count_pending_jobs(at(20.0)) == 1);
}

TEST_CASE("seconds_until_next_job gives the id and a delay that is never negative") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  CHECK_FALSE(f.scheduler.seconds_until_next_job(at(0.0)).has_value());
  const Job job = f.scheduler.add_job("j", times(0, 100, 200));
  auto delay = f.scheduler.seconds_until_next_job(at(40.0));
  REQUIRE(delay.has_value());
  CHECK(delay->id == job.id);
  CHECK(delay->delay == Seconds{60.0});
  delay = f.scheduler.seconds_until_next_job(at(150.0));
  REQUIRE(delay.has_value());
  CHECK(delay->delay == Seconds{0.0});
  CHECK_FALSE(f.scheduler.seconds_until_next_job(at(200.0)).has_value());
}

TEST_CASE("every optional time defaults to the scheduler's clock") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  f.clock.set(1000.0);
  CHECK(f.scheduler.now() == at(1000.0));
  const Job job = f.scheduler.add_job_from_now("j", Seconds{5}, Seconds{10});
  CHECK(f.scheduler.seconds_until_next_job()->delay == Seconds{5.0});
  CHECK(f.scheduler.count_pending_jobs() == 1);
  f.clock.advance(10.0);
  CHECK(f.scheduler.count_pending_jobs() == 0);
  CHECK_FALSE(f.scheduler.next_job().has_value());
  CHECK(f.scheduler.delete_expired_jobs() == 1);
  CHECK_FALSE(f.scheduler.get_job(job.id).has_value());

  const Job done = f.scheduler.add_job("d");
  REQUIRE(f.scheduler.complete_job(done.id));
  CHECK(f.scheduler.get_job(done.id)->completed_at == at(1010.0));
}

TEST_CASE("pending jobs are those neither completed nor expired, locked or not") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  f.scheduler.add_job("due", times(0, 0));
  f.scheduler.add_job("future", times(0, 500));
  const Job locked = f.scheduler.add_job("locked", times(0, 0));
  const Job completed = f.scheduler.add_job("completed", times(0, 0));
  f.scheduler.add_job("expired", times(0, 0, 50));
  REQUIRE(f.scheduler.lock_job(locked.id, at(1.0)));
  REQUIRE(f.scheduler.complete_job(completed.id, at(1.0)));
  CHECK(f.scheduler.count_pending_jobs(at(100.0)) == 3);
  CHECK(f.scheduler.count_pending_jobs(at(10.0)) == 4);
}

TEST_CASE("complete_job is true for a job that exists and keeps the first completion time") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", times(0, 0, 10));
  CHECK_FALSE(f.scheduler.complete_job(job.id + 1, at(1.0)));
  CHECK(f.scheduler.complete_job(job.id, at(5.0)));
  CHECK(f.scheduler.complete_job(job.id, at(7.0)));
  const auto stored = f.scheduler.get_job(job.id);
  CHECK(stored->completed_at == at(5.0));
  // A completed job is never expired, even long after its expiry time.
  CHECK_FALSE(stored->is_expired(at(100.0)));
  CHECK(f.scheduler.delete_expired_jobs(at(100.0)) == 0);
  CHECK(f.scheduler.count_pending_jobs(at(1.0)) == 0);
  CHECK_FALSE(f.scheduler.next_job(at(1.0)).has_value());
}

TEST_CASE("deleting reports what existed and what went") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job a = f.scheduler.add_job("a", times(0, 0));
  const Job b = f.scheduler.add_job("b", times(0, 0));
  const Job c = f.scheduler.add_job("c", times(0, 0, 10));
  const Job d = f.scheduler.add_job("d", times(0, 0, 10));
  const Job e = f.scheduler.add_job("e", times(0, 0, 30));
  f.scheduler.complete_job(a.id, at(1.0));
  f.scheduler.complete_job(d.id, at(1.0));

  CHECK(f.scheduler.delete_job(b.id));
  CHECK_FALSE(f.scheduler.delete_job(b.id));
  CHECK(f.scheduler.delete_expired_jobs(at(20.0)) == 1);  // c; d is completed, e not yet
  CHECK_FALSE(f.scheduler.get_job(c.id).has_value());
  CHECK(f.scheduler.delete_completed_jobs() == 2);  // a and d
  CHECK(f.scheduler.delete_completed_jobs() == 0);
  CHECK_FALSE(f.scheduler.get_job(a.id).has_value());
  CHECK(f.scheduler.get_job(e.id).has_value());
}

TEST_CASE("ids are never reused, even after the newest job is deleted") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job first = f.scheduler.add_job("1");
  const Job second = f.scheduler.add_job("2");
  REQUIRE(f.scheduler.delete_job(second.id));
  REQUIRE(f.scheduler.delete_job(first.id));
  CHECK(f.scheduler.add_job("3").id == second.id + 1);
}

TEST_CASE("jobs survive closing and reopening the file") {
  TempFile file("reopen");
  PinnedClock clock;
  Job job;
  {
    auto scheduler = Scheduler::open(file.path(), clock.options());
    job = scheduler.add_job("persisted", times(1, 2, 3));
    scheduler.add_job("done", times(1, 2));
    scheduler.complete_job(2, at(4.0));
  }
  auto reopened = Scheduler::open(file.path(), clock.options());
  CHECK_FALSE(reopened.migrated_from().has_value());
  CHECK(*reopened.get_job(job.id) == job);
  CHECK(reopened.get_job(2)->completed_at == at(4.0));
  CHECK(reopened.count_pending_jobs(at(2.5)) == 1);
}

TEST_CASE("a job is a plain value: copies compare equal and differ once changed") {
  Fixture f("memory");
  const Job job = f.scheduler.add_job("v", times(1, 2, 3));
  Job copy = job;
  CHECK(copy == job);
  copy.expires_at.reset();
  CHECK(copy != job);
  CHECK(job.is_pending(at(2.5)));
  CHECK_FALSE(job.is_pending(at(3.0)));
}

}  // namespace test_scheduler
