// SPDX-License-Identifier: MIT
// Event hooks (Options::on_event): one event per change to a job, with the job as the change
// left it and its timings, delivered only once the change is committed.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/temp_file.hpp"

namespace test_events {

namespace {

using jobsched::Claim;
using jobsched::EventKind;
using jobsched::Job;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::database;
using jobsched_test::exec_raw;
using jobsched_test::seconds;
using jobsched_test::TempFile;

constexpr double kT = 1'700'000'000.0;

// The events a hook saw, from any thread.
struct Recorder {
  std::mutex mutex;
  std::vector<jobsched::Event> events;

  jobsched::EventHook hook() {
    return [this](const jobsched::Event& event) {
      const std::lock_guard<std::mutex> lock(mutex);
      events.push_back(event);
    };
  }
  std::vector<EventKind> kinds() {
    const std::lock_guard<std::mutex> lock(mutex);
    std::vector<EventKind> result;
    for (const jobsched::Event& event : events)
      result.push_back(event.kind);
    return result;
  }
  std::size_t size() {
    const std::lock_guard<std::mutex> lock(mutex);
    return events.size();
  }
  void clear() {
    const std::lock_guard<std::mutex> lock(mutex);
    events.clear();
  }
};

jobsched::JobOptions starting(double time, int max_attempts = 3) {
  jobsched::JobOptions options;
  options.created_at = at(kT - 100);
  options.starts_at = at(time);
  options.max_attempts = max_attempts;
  options.initial_backoff = Seconds{1};
  return options;
}

struct Fixture {
  explicit Fixture(const std::string& name, bool on_file) : file(name) {
    jobsched::Options options;
    options.on_event = recorder.hook();
    scheduler.emplace(Scheduler::open(database(file, on_file), options));
  }
  TempFile file;
  Recorder recorder;
  std::optional<Scheduler> scheduler;
};

}  // namespace

TEST_CASE("a claim and its completion each make an event, with the job and its timings",
          "[events]") {
  Fixture f("events-claim", GENERATE(true, false));
  Scheduler& scheduler = *f.scheduler;
  const Job job = scheduler.add_job("j", starting(kT - 5));
  f.recorder.clear();
  const auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claimed);
  REQUIRE(f.recorder.size() == 1);
  {
    const jobsched::Event& event = f.recorder.events[0];
    CHECK(event.kind == EventKind::claimed);
    CHECK(event.job.id == job.id);
    CHECK(event.job.attempts == 1);
    CHECK(event.job.data == job.data);
    CHECK(seconds(event.at) == kT);
    REQUIRE(event.waited);
    CHECK(event.waited->count() == 5.0);  // claimed 5 s after it was due
    CHECK_FALSE(event.ran);
  }
  CHECK(scheduler.complete(claimed->claim, jobsched::Payload::text("done"), at(kT + 2.5)));
  REQUIRE(f.recorder.size() == 2);
  const jobsched::Event& event = f.recorder.events[1];
  CHECK(event.kind == EventKind::completed);
  CHECK(event.job.is_completed());
  CHECK(event.job.result == jobsched::Payload::text("done"));
  REQUIRE(event.ran);
  CHECK(event.ran->count() == 2.5);
  CHECK(std::string(jobsched::to_string(event.kind)) == "completed");
}

TEST_CASE("failed attempts are retrying until the last, which is failed, with the error",
          "[events]") {
  Fixture f("events-fail", GENERATE(true, false));
  Scheduler& scheduler = *f.scheduler;
  scheduler.add_job("j", starting(kT, 2));
  f.recorder.clear();
  auto first = scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(first);
  CHECK(scheduler.fail(first->claim, "boom", at(kT + 1)));
  auto second = scheduler.claim_next_job(Seconds{30}, at(kT + 100));
  REQUIRE(second);
  CHECK(scheduler.fail(second->claim, "boom again", at(kT + 103)));
  CHECK(f.recorder.kinds() == std::vector<EventKind>{EventKind::claimed, EventKind::retrying,
                                                     EventKind::claimed, EventKind::failed});
  CHECK(f.recorder.events[1].error == "boom");
  CHECK(f.recorder.events[1].ran->count() == 1.0);
  CHECK(f.recorder.events[3].error == "boom again");
  CHECK(f.recorder.events[3].job.is_failed());
  CHECK(f.recorder.events[3].ran->count() == 3.0);
}

TEST_CASE("a stale claim's settle or extend is a lost lease, cancel, snooze and release say so",
          "[events]") {
  Fixture f("events-lost", GENERATE(true, false));
  Scheduler& scheduler = *f.scheduler;
  const Job a = scheduler.add_job("a", starting(kT));
  const Job b = scheduler.add_job("b", starting(kT + 1));
  const Job c = scheduler.add_job("c", starting(kT + 2));
  auto claim_a = scheduler.claim_next_job(Seconds{30}, at(kT + 5));
  auto claim_b = scheduler.claim_next_job(Seconds{30}, at(kT + 5));
  auto claim_c = scheduler.claim_next_job(Seconds{30}, at(kT + 5));
  REQUIRE((claim_a && claim_b && claim_c));
  f.recorder.clear();
  CHECK(scheduler.cancel_job(a.id, "not wanted", at(kT + 6)));
  CHECK_FALSE(scheduler.complete(claim_a->claim, at(kT + 7)));
  Claim stale = claim_a->claim;
  CHECK_FALSE(scheduler.extend(stale, Seconds{30}, at(kT + 8)));
  CHECK(scheduler.snooze(claim_b->claim, Seconds{60}, at(kT + 9)));
  CHECK(scheduler.release(claim_c->claim, at(kT + 10)));
  CHECK(f.recorder.kinds() ==
        std::vector<EventKind>{EventKind::cancelled, EventKind::lease_lost, EventKind::lease_lost,
                               EventKind::snoozed, EventKind::released});
  CHECK(f.recorder.events[0].error == "not wanted");
  CHECK(f.recorder.events[0].job.is_cancelled());
  CHECK(f.recorder.events[1].job.id == a.id);
  CHECK(f.recorder.events[3].job.id == b.id);
  CHECK(seconds(f.recorder.events[3].job.starts_at) == kT + 69);
  CHECK(f.recorder.events[4].job.id == c.id);
  CHECK(f.recorder.events[4].job.attempts == 0);
  // A claim on a deleted job: the event names its id alone.
  auto claim = scheduler.claim_next_job(Seconds{30}, at(kT + 11));
  REQUIRE(claim);
  REQUIRE(scheduler.delete_job(claim->job.id));
  f.recorder.clear();
  CHECK_FALSE(scheduler.complete(claim->claim, at(kT + 12)));
  REQUIRE(f.recorder.size() == 1);
  CHECK(f.recorder.events[0].kind == EventKind::lease_lost);
  CHECK(f.recorder.events[0].job.id == claim->job.id);
  CHECK(f.recorder.events[0].job.data.is_null());
}

TEST_CASE("events of a transaction arrive when it commits, and never when it rolls back",
          "[events]") {
  Fixture f("events-transaction", GENERATE(true, false));
  Scheduler& scheduler = *f.scheduler;
  for (const char* name : {"a", "b", "c"})
    scheduler.add_job(name, starting(kT));
  f.recorder.clear();
  {
    auto tx = scheduler.transaction();
    auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT));
    REQUIRE(claimed);
    CHECK(scheduler.complete(claimed->claim, at(kT + 1)));
    CHECK(f.recorder.size() == 0);  // not committed yet
    tx.rollback();
  }
  CHECK(f.recorder.size() == 0);
  {
    auto tx = scheduler.transaction();
    auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT));
    REQUIRE(claimed);
    CHECK(scheduler.complete(claimed->claim, at(kT + 1)));
    CHECK(f.recorder.size() == 0);
    tx.commit();
  }
  CHECK(f.recorder.kinds() == std::vector<EventKind>{EventKind::claimed, EventKind::completed});
  // The host's own transaction: rolled back, nothing; committed, delivered at the next call.
  f.recorder.clear();
  exec_raw(scheduler.handle(), "BEGIN IMMEDIATE");
  REQUIRE(scheduler.claim_next_job(Seconds{30}, at(kT + 2)));
  exec_raw(scheduler.handle(), "ROLLBACK");
  CHECK(f.recorder.size() == 0);
  exec_raw(scheduler.handle(), "BEGIN IMMEDIATE");
  auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT + 2));
  REQUIRE(claimed);
  exec_raw(scheduler.handle(), "COMMIT");
  CHECK(f.recorder.size() == 0);
  CHECK(scheduler.complete(claimed->claim, at(kT + 3)));
  CHECK(f.recorder.kinds() == std::vector<EventKind>{EventKind::claimed, EventKind::completed});
  // Or at once, asked for.
  f.recorder.clear();
  exec_raw(scheduler.handle(), "BEGIN IMMEDIATE");
  REQUIRE(scheduler.claim_next_job(Seconds{30}, at(kT + 4)));
  scheduler.deliver_events();  // inside the transaction: nothing yet
  CHECK(f.recorder.size() == 0);
  exec_raw(scheduler.handle(), "COMMIT");
  scheduler.deliver_events();
  CHECK(f.recorder.kinds() == std::vector<EventKind>{EventKind::claimed});
}

TEST_CASE("a batch settles with one event per claim, and a hook that throws changes nothing",
          "[events]") {
  TempFile file("events-batch");
  int calls = 0;
  jobsched::Options options;
  options.on_event = [&calls](const jobsched::Event&) {
    ++calls;
    throw std::runtime_error("the hook's own failure");
  };
  auto scheduler = Scheduler::open(file.path(), options);
  for (int i = 0; i < 3; ++i)
    scheduler.add_job("j", starting(kT));
  calls = 0;
  std::vector<jobsched::ClaimedJob> claimed = scheduler.claim_jobs(3, Seconds{30}, at(kT));
  REQUIRE(claimed.size() == 3);
  CHECK(calls == 3);
  std::vector<Claim> claims{claimed[0].claim, claimed[1].claim, claimed[2].claim};
  REQUIRE(scheduler.delete_job(claimed[2].job.id));
  CHECK(scheduler.complete_all(claims, at(kT + 1)) == std::vector<bool>{true, true, false});
  CHECK(calls == 6);
  CHECK(scheduler.get_job(claimed[0].job.id)->is_completed());
}

TEST_CASE("a Worker's connections report every claim and completion", "[events][worker]") {
  TempFile file("events-worker");
  {
    auto scheduler = Scheduler::open(file.path());
    for (int i = 0; i < 20; ++i)
      scheduler.add_job("j", starting(kT));
  }
  Recorder recorder;
  jobsched::WorkerOptions options;
  options.threads = 3;
  options.scheduler.on_event = recorder.hook();
  {
    jobsched::Worker worker(file.path(), [](const Job&) {}, options);
    jobsched_test::require_eventually(
        jobsched_test::Deadline(Seconds{20}, "the worker to complete 20 jobs"),
        [&] { return worker.completed() == 20; });
    worker.stop();
  }
  int claims = 0;
  int completions = 0;
  for (const EventKind kind : recorder.kinds()) {
    claims += kind == EventKind::claimed ? 1 : 0;
    completions += kind == EventKind::completed ? 1 : 0;
  }
  CHECK(claims == 20);
  CHECK(completions == 20);
}

TEST_CASE("adds make an event per job added, none for a unique key found, retry_job too",
          "[events]") {
  Fixture f("events-add", GENERATE(true, false));
  Scheduler& scheduler = *f.scheduler;
  jobsched::JobOptions keyed = starting(kT, 1);
  keyed.unique = jobsched::Unique{"k"};
  const Job first = scheduler.add_job("a", keyed);
  const Job again = scheduler.add_job("b", keyed);  // returns the holder, adds nothing
  CHECK(again.id == first.id);
  const std::vector<Job> batch = scheduler.add_jobs(
      {jobsched::NewJob{jobsched::Payload::text("c"), starting(kT, 1)},
       jobsched::NewJob{jobsched::Payload::text("d"), keyed},
       jobsched::NewJob{jobsched::Payload::text("e"), starting(kT, 1)}});
  REQUIRE(batch.size() == 3);
  CHECK(f.recorder.kinds() ==
        std::vector<EventKind>{EventKind::added, EventKind::added, EventKind::added});
  CHECK(f.recorder.events[0].job == first);
  CHECK(f.recorder.events[1].job == batch[0]);
  CHECK(f.recorder.events[2].job == batch[2]);
  f.recorder.clear();
  auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT + 1));
  REQUIRE(claimed);
  REQUIRE(scheduler.fail(claimed->claim, "last attempt", at(kT + 2)));
  CHECK(scheduler.retry_job(claimed->job.id, at(kT + 3)));
  CHECK(f.recorder.kinds() ==
        std::vector<EventKind>{EventKind::claimed, EventKind::failed, EventKind::retried});
  CHECK(f.recorder.events[2].job.attempts == 0);
  CHECK_FALSE(f.recorder.events[2].job.is_failed());
  // A refused add makes no event.
  f.recorder.clear();
  keyed.unique->on_conflict = jobsched::OnConflict::fail;
  CHECK_THROWS_AS(scheduler.add_jobs({jobsched::NewJob{jobsched::Payload::text("f"), starting(kT)},
                                      jobsched::NewJob{jobsched::Payload::text("g"), keyed}}),
                  jobsched::UniqueConflictError);
  CHECK(f.recorder.size() == 0);
}

}  // namespace test_events
