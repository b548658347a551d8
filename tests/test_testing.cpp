// SPDX-License-Identifier: MIT
// jobsched::testing, the helpers for users' own tests: a manual clock, drain (every due job
// through a handler on the test's thread, as a Worker runs it) and finders of stored jobs.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>
#include <jobsched/testing.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/temp_file.hpp"

namespace test_testing {

namespace {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::testing::DrainOptions;
using jobsched::testing::DrainResult;
using jobsched::testing::ManualClock;
using jobsched_test::at;
using jobsched_test::database;
using jobsched_test::seconds;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

constexpr double kT = 1'700'000'000.0;

// A job due `after` seconds after the clock's now (negative: already late), with a priority
// and a queue.
JobOptions due_in(const ManualClock& clock, double after, int priority = 0,
                  const std::string& queue = "") {
  JobOptions options;
  options.created_at = clock.now() - Seconds{3600};
  options.starts_at = clock.now() + Seconds{after};
  options.priority = priority;
  options.queue = queue;
  return options;
}

// Retries after exactly `backoff`, doubling: no jitter, so a test can check starts_at.
jobsched::Options exact_retries(const ManualClock& clock, double backoff) {
  jobsched::Options options = clock.options();
  options.retry.initial_backoff = Seconds{backoff};
  options.retry.jitter = 0.0;
  return options;
}

std::vector<std::int64_t> ids_of(const std::vector<Job>& jobs) {
  std::vector<std::int64_t> ids;
  ids.reserve(jobs.size());
  for (const Job& job : jobs)
    ids.push_back(job.id);
  return ids;
}

}  // namespace

TEST_CASE("a manual clock's copies share one time, which every scheduler opened with it reads",
          "[testing][clock]") {
  TempFile file("testing-clock");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  const ManualClock copy = clock;
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  CHECK(seconds(scheduler.now()) == kT);

  clock.advance(Seconds{2.5});
  CHECK(seconds(copy.now()) == kT + 2.5);
  CHECK(seconds(scheduler.now()) == kT + 2.5);
  clock.advance(-1s);
  CHECK(seconds(scheduler.now()) == kT + 1.5);
  clock.set(at(kT + 100));
  CHECK(seconds(copy.clock()()) == kT + 100);
  CHECK(seconds(scheduler.now()) == kT + 100);

  // options() keeps the rest of the base options.
  jobsched::Options base;
  base.busy_timeout = std::chrono::milliseconds{1234};
  base.retry.max_attempts = 3;
  const jobsched::Options options = clock.options(base);
  CHECK(options.busy_timeout == std::chrono::milliseconds{1234});
  CHECK(options.retry.max_attempts == 3);
  CHECK(seconds(options.clock()) == kT + 100);
}

TEST_CASE("a manual clock decides what is due: a job is claimed only once the clock reaches it",
          "[testing][clock]") {
  TempFile file("testing-clock-due");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  const Job job = scheduler.add_job(Payload("later"), due_in(clock, 10));

  REQUIRE(scheduler.seconds_until_next_job());
  CHECK(scheduler.seconds_until_next_job()->delay == Seconds{10});
  CHECK_FALSE(scheduler.claim_next_job(Seconds{60}));
  clock.advance(Seconds{9.5});
  CHECK(scheduler.seconds_until_next_job()->delay == Seconds{0.5});
  CHECK_FALSE(scheduler.claim_next_job(Seconds{60}));
  clock.advance(Seconds{0.5});
  const std::optional<jobsched::ClaimedJob> claimed = scheduler.claim_next_job(Seconds{60});
  REQUIRE(claimed);
  CHECK(claimed->job.id == job.id);
  CHECK(seconds(claimed->claim.lease_until) == kT + 70);
}

TEST_CASE("a manual clock advanced from two threads at once loses no step", "[testing][clock]") {
  ManualClock clock(at(kT));
  auto advance = [clock]() mutable {
    for (int i = 0; i < 20'000; ++i)
      clock.advance(1s);
  };
  jobsched_test::BoundedThread first(advance);
  jobsched_test::BoundedThread second(advance);
  first.join(jobsched_test::Deadline(30s, "the first thread's advances"));
  second.join(jobsched_test::Deadline(30s, "the second thread's advances"));
  CHECK(seconds(clock.now()) == kT + 40'000);
}

TEST_CASE("drain runs every due job in claim order and completes each when the handler returns",
          "[testing][drain]") {
  TempFile file("testing-drain-order");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  const Job late = scheduler.add_job(Payload("late"), due_in(clock, -5));
  const Job urgent = scheduler.add_job(Payload("urgent"), due_in(clock, -1, 5));
  const Job late_too = scheduler.add_job(Payload("late too"), due_in(clock, -5));
  const Job latest = scheduler.add_job(Payload("latest"), due_in(clock, -10));
  const Job now = scheduler.add_job(Payload("now"), due_in(clock, 0));
  const Job later = scheduler.add_job(Payload("later"), due_in(clock, 10, 100));

  std::vector<std::string> seen;
  const DrainResult result = jobsched::testing::drain(scheduler, [&](const Job& job) {
    seen.emplace_back(job.data.bytes());
    CHECK(job.attempts == 1);
  });
  CHECK(result.ran ==
        std::vector<std::int64_t>{urgent.id, latest.id, late.id, late_too.id, now.id});
  CHECK(seen == std::vector<std::string>{"urgent", "latest", "late", "late too", "now"});
  CHECK(result.completed == 5);
  CHECK(result.failed == 0);
  CHECK(result.stale == 0);
  CHECK_FALSE(result.stopped_at_max_jobs);
  for (const std::int64_t id : result.ran) {
    const Job done = *scheduler.get_job(id);
    CHECK(done.is_completed());
    CHECK(seconds(*done.completed_at) == kT);
    CHECK_FALSE(done.locked_at);
  }
  // The job not yet due did not run, and runs once the clock reaches it.
  CHECK_FALSE(scheduler.get_job(later.id)->is_completed());
  CHECK(jobsched::testing::drain(scheduler, [](const Job&) {}).ran.empty());
  clock.advance(10s);
  CHECK(jobsched::testing::drain(scheduler, [](const Job&) {}).ran ==
        std::vector<std::int64_t>{later.id});
  CHECK(seconds(*scheduler.get_job(later.id)->completed_at) == kT + 10);
}

TEST_CASE(
    "drain fails a job whose handler throws, with its message, and it retries after its "
    "backoff",
    "[testing][drain]") {
  TempFile file("testing-drain-fail");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), exact_retries(clock, 4));
  const Job mail = scheduler.add_job(Payload("mail"), due_in(clock, 0));
  JobOptions once = due_in(clock, 0);
  once.max_attempts = 1;
  const Job single = scheduler.add_job(Payload("once"), once);
  const Job odd = scheduler.add_job(Payload("odd"), due_in(clock, 0));

  auto failing = [](const Job& job) {
    if (job.data == Payload("odd"))
      throw 42;
    throw std::runtime_error("smtp down for " + std::string(job.data.bytes()));
  };
  const DrainResult first = jobsched::testing::drain(scheduler, failing);
  CHECK(first.ran == std::vector<std::int64_t>{mail.id, single.id, odd.id});
  CHECK(first.failed == 3);
  CHECK(first.completed == 0);

  Job retried = *scheduler.get_job(mail.id);
  CHECK(retried.is_pending(clock.now()));
  CHECK(retried.attempts == 1);
  CHECK(retried.last_error == std::optional<std::string>("smtp down for mail"));
  CHECK(seconds(retried.starts_at) == kT + 4);
  const Job given_up = *scheduler.get_job(single.id);
  CHECK(given_up.is_failed());
  CHECK(given_up.last_error == std::optional<std::string>("smtp down for once"));
  CHECK(scheduler.get_job(odd.id)->last_error == std::optional<std::string>("unknown exception"));

  // The retries are not due yet: draining again runs nothing.
  CHECK(jobsched::testing::drain(scheduler, failing).ran.empty());
  clock.advance(Seconds{3.9});
  CHECK(jobsched::testing::drain(scheduler, failing).ran.empty());
  // At the backoff's end it runs again, fails again, and backs off twice as long.
  clock.advance(Seconds{0.1});
  const DrainResult second = jobsched::testing::drain(scheduler, failing);
  CHECK(second.ran == std::vector<std::int64_t>{mail.id, odd.id});
  retried = *scheduler.get_job(mail.id);
  CHECK(retried.attempts == 2);
  CHECK(seconds(retried.starts_at) == kT + 4 + 8);
  clock.advance(8s);
  const DrainResult third = jobsched::testing::drain(scheduler, [](const Job&) {});
  CHECK(third.completed == 2);
  CHECK(scheduler.get_job(mail.id)->is_completed());
}

TEST_CASE("drain runs only the queues asked for", "[testing][drain]") {
  TempFile file("testing-drain-queues");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  const Job mail = scheduler.add_job(Payload("mail"), due_in(clock, 0, 0, "mail"));
  const Job billing = scheduler.add_job(Payload("billing"), due_in(clock, 0, 9, "billing"));
  const Job plain = scheduler.add_job(Payload("plain"), due_in(clock, 0));
  const Job sms = scheduler.add_job(Payload("sms"), due_in(clock, 0, 0, "sms"));

  DrainOptions options;
  options.queues = {"mail", ""};
  const DrainResult result = jobsched::testing::drain(
      scheduler, [](const Job&) {}, options);
  CHECK(result.ran == std::vector<std::int64_t>{mail.id, plain.id});
  CHECK(scheduler.get_job(billing.id)->attempts == 0);
  CHECK(scheduler.get_job(sms.id)->attempts == 0);
  CHECK(jobsched::testing::drain(scheduler, [](const Job&) {}).ran ==
        std::vector<std::int64_t>{billing.id, sms.id});
}

TEST_CASE("drain stops at max_jobs when the handler keeps adding due jobs, and says so",
          "[testing][drain]") {
  TempFile file("testing-drain-cap");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  scheduler.add_job(Payload("seed"), due_in(clock, 0));
  DrainOptions options;
  options.max_jobs = 5;
  const DrainResult result = jobsched::testing::drain(
      scheduler, [&](const Job&) { scheduler.add_job(Payload("again"), due_in(clock, 0)); },
      options);
  CHECK(result.ran.size() == 5);
  CHECK(result.completed == 5);
  CHECK(result.stopped_at_max_jobs);
  CHECK(jobsched::testing::enqueued(scheduler).size() == 1);

  SECTION("with no more due than max_jobs, all run and the cap was not what stopped it") {
    const DrainResult rest = jobsched::testing::drain(
        scheduler, [](const Job&) {}, options);
    CHECK(rest.ran.size() == 1);
    CHECK_FALSE(rest.stopped_at_max_jobs);
    options.max_jobs = 1;
    scheduler.add_job(Payload("one"), due_in(clock, 0));
    scheduler.add_job(Payload("not yet"), due_in(clock, 1));
    const DrainResult one = jobsched::testing::drain(
        scheduler, [](const Job&) {}, options);
    CHECK(one.ran.size() == 1);
    CHECK_FALSE(one.stopped_at_max_jobs);
  }
}

TEST_CASE(
    "drain runs the follow-ups a handler adds due now, not those due later, and counts "
    "a claim gone stale",
    "[testing][drain]") {
  TempFile file("testing-drain-follow-ups");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  const Job order = scheduler.add_job(Payload("order"), due_in(clock, 0));
  std::optional<Job> invoice;
  std::optional<Job> reminder;
  const DrainResult result = jobsched::testing::drain(scheduler, [&](const Job& job) {
    if (job.id == order.id) {
      invoice = scheduler.add_job(Payload("invoice"), due_in(clock, 0));
      reminder = scheduler.add_job(Payload("reminder"), due_in(clock, 86400));
    } else if (job.data == Payload("invoice")) {
      scheduler.cancel_job(job.id, "duplicate");
    }
  });
  REQUIRE(invoice);
  REQUIRE(reminder);
  CHECK(result.ran == std::vector<std::int64_t>{order.id, invoice->id});
  CHECK(result.completed == 1);
  CHECK(result.stale == 1);
  const Job cancelled = *scheduler.get_job(invoice->id);
  CHECK(cancelled.is_cancelled());
  CHECK_FALSE(cancelled.is_completed());
  CHECK(scheduler.get_job(reminder->id)->attempts == 0);
}

TEST_CASE("the finders find stored jobs by queue and by payload, as get_job shows them",
          "[testing][finders]") {
  TempFile file("testing-finders");
  const bool on_file = GENERATE(true, false);
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  const std::string nul_bytes("to\0bob", 6);
  const Job bob = scheduler.add_job(Payload(nul_bytes), due_in(clock, 0, 0, "mail"));
  const Job alice = scheduler.add_job(Payload("to alice"), due_in(clock, 30, 0, "mail"));
  const Job report = scheduler.add_job(Payload("report"), due_in(clock, 0));
  const Job nothing = scheduler.add_job(Payload(), due_in(clock, 0, 0, "mail"));
  JobOptions short_lived = due_in(clock, 0);
  short_lived.expires_at = clock.now() + 5s;
  const Job expiring = scheduler.add_job(Payload("report"), short_lived);
  REQUIRE(scheduler.complete_job(report.id));

  using jobsched::testing::all_jobs;
  using jobsched::testing::enqueued;
  using jobsched::testing::jobs_in_queue;
  using jobsched::testing::jobs_with_payload;
  using jobsched::testing::only_job;
  CHECK(ids_of(all_jobs(scheduler)) ==
        std::vector<std::int64_t>{bob.id, alice.id, report.id, nothing.id, expiring.id});
  CHECK(ids_of(jobs_in_queue(scheduler, "mail")) ==
        std::vector<std::int64_t>{bob.id, alice.id, nothing.id});
  CHECK(ids_of(jobs_in_queue(scheduler, "")) == std::vector<std::int64_t>{report.id, expiring.id});
  CHECK(jobs_in_queue(scheduler, "billing").empty());
  CHECK(ids_of(jobs_with_payload(scheduler, Payload("report"))) ==
        std::vector<std::int64_t>{report.id, expiring.id});
  CHECK(ids_of(jobs_with_payload(scheduler, Payload(nul_bytes))) ==
        std::vector<std::int64_t>{bob.id});
  CHECK(jobs_with_payload(scheduler, Payload("to")).empty());  // the bytes before the NUL
  CHECK(ids_of(jobs_with_payload(scheduler, Payload())) == std::vector<std::int64_t>{nothing.id});
  CHECK(ids_of(jobs_with_payload(scheduler, Payload(""))).empty());  // empty is not NULL

  // Each as get_job shows it at the time asked.
  const std::vector<Job> mail = jobs_in_queue(scheduler, "mail", at(kT + 1));
  CHECK(mail.front() == *scheduler.get_job(bob.id, at(kT + 1)));
  CHECK(jobs_with_payload(scheduler, Payload("report"))[0].is_completed());

  // enqueued: neither completed, failed nor expired, due or not.
  CHECK(ids_of(enqueued(scheduler)) ==
        std::vector<std::int64_t>{bob.id, alice.id, nothing.id, expiring.id});
  clock.advance(5s);
  CHECK(ids_of(enqueued(scheduler)) == std::vector<std::int64_t>{bob.id, alice.id, nothing.id});
  CHECK(ids_of(enqueued(scheduler, at(kT))) ==
        std::vector<std::int64_t>{bob.id, alice.id, nothing.id, expiring.id});

  // only_job: the one job, or nothing when there are none or several.
  const std::optional<Job> one = only_job(jobs_with_payload(scheduler, Payload("to alice")));
  REQUIRE(one);
  CHECK(one->id == alice.id);
  CHECK(one->queue == "mail");
  CHECK(seconds(one->starts_at) == kT + 30);
  CHECK_FALSE(only_job(jobs_with_payload(scheduler, Payload("report"))));
  CHECK_FALSE(only_job(jobs_in_queue(scheduler, "billing")));
}

TEST_CASE(
    "a Worker opened with a manual clock's options runs a job only once that clock "
    "reaches it",
    "[testing][clock][worker]") {
  TempFile file("testing-worker-clock");
  ManualClock clock(at(kT));
  auto scheduler = Scheduler::open(file.path(), clock.options());
  const Job later = scheduler.add_job(Payload("later"), due_in(clock, 60));

  struct Seen {
    std::mutex mutex;
    std::vector<std::int64_t> ids;
    std::size_t size() {
      const std::lock_guard<std::mutex> lock(mutex);
      return ids.size();
    }
  };
  auto seen = std::make_shared<Seen>();
  jobsched::WorkerOptions options;
  options.scheduler = clock.options();
  options.poll_interval = std::chrono::milliseconds{10};
  jobsched::Worker worker(
      file.path(),
      [seen](const Job& job) {
        const std::lock_guard<std::mutex> lock(seen->mutex);
        seen->ids.push_back(job.id);
      },
      options);

  // Due in 60 s of the manual clock: in real time the worker waits, and does not run it.
  const Job now = scheduler.add_job(Payload("now"), due_in(clock, 0));
  jobsched_test::require_eventually(jobsched_test::Deadline(10s, "the job due now to run"),
                                    [&] { return seen->size() == 1; });
  std::this_thread::sleep_for(std::chrono::milliseconds{300});
  CHECK(seen->size() == 1);
  CHECK(scheduler.get_job(later.id)->attempts == 0);

  // The clock moved past it; a sleeping worker notices at the next commit to its file.
  clock.advance(60s);
  const Job nudge = scheduler.add_job(Payload("nudge"), due_in(clock, 0));
  jobsched_test::require_eventually(
      jobsched_test::Deadline(10s, "the worker to run the job the clock reached"), [&] {
        return scheduler.get_job(later.id)->is_completed() &&
               scheduler.get_job(nudge.id)->is_completed();
      });
  worker.stop();
  {
    const std::lock_guard<std::mutex> lock(seen->mutex);
    CHECK(seen->ids.front() == now.id);
    CHECK(seen->ids.size() == 3);
  }
  // It completed them at the manual time.
  CHECK(seconds(*scheduler.get_job(now.id)->completed_at) == kT);
  CHECK(seconds(*scheduler.get_job(later.id)->completed_at) == kT + 60);
}

}  // namespace test_testing
