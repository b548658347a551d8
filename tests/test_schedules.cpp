// SPDX-License-Identifier: MIT
// Recurring schedules in the file: each firing made exactly once, in order, whoever meets it
// (claims, adds, or next_job alone); the next firing visible to callers that only read;
// the misfire policies after downtime; the clock stepping back and forward; declaring a
// schedule again; pause, resume, delete; bad input refused with nothing written.

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_schedules {

namespace {

using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::Misfire;
using jobsched::Rule;
using jobsched::Schedule;
using jobsched::ScheduleOptions;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::database;
using jobsched_test::exec_raw;
using jobsched_test::query_int;
using jobsched_test::seconds;
using jobsched_test::TempFile;
using jobsched_test::thrown;

// A whole number of 10-second periods, so that every-10-s firings fall on round times.
constexpr double kT = 1'700'000'000.0;

// The fire times of the jobs claimed at `now` (up to 1,000), in claim order, completed.
std::vector<double> run_due(Scheduler& scheduler, double now,
                            const std::string& schedule = "tick") {
  std::vector<double> fired;
  for (const ClaimedJob& claimed : scheduler.claim_jobs(1000, Seconds{60}, at(now))) {
    REQUIRE(claimed.job.firing);
    if (claimed.job.firing->schedule == schedule)
      fired.push_back(seconds(claimed.job.firing->at));
    REQUIRE(scheduler.complete(claimed.claim, at(now)));
  }
  return fired;
}

ScheduleOptions with_misfire(Misfire misfire, int catch_up_limit = 100) {
  ScheduleOptions options;
  options.misfire = misfire;
  options.catch_up_limit = catch_up_limit;
  return options;
}

}  // namespace

TEST_CASE("a schedule's next firing is a job that next_job and seconds_until_next_job show",
          "[schedules]") {
  TempFile file("schedule-visible");
  const bool on_file = GENERATE(true, false);
  jobsched_test::PinnedClock clock;
  clock.set(kT + 3);
  auto scheduler = Scheduler::open(database(file, on_file), clock.options());
  ScheduleOptions options;
  options.data = jobsched::Payload::text("nightly report");
  options.queue = "reports";
  options.priority = 7;
  options.max_attempts = 3;
  options.expires_after = Seconds{600};
  options.misfire = Misfire::once;
  const Schedule stored =
      scheduler.put_schedule("report", Rule::every(Seconds{10}), options, at(kT + 3));
  CHECK(stored.name == "report");
  CHECK(stored.rule == Rule::every(Seconds{10}));
  CHECK_FALSE(stored.paused);
  REQUIRE(stored.next_fire);
  CHECK(seconds(*stored.next_fire) == kT + 10);
  CHECK_FALSE(stored.last_fire);

  const std::optional<Job> next = scheduler.next_job(at(kT + 3));
  REQUIRE(next);
  CHECK(seconds(next->starts_at) == kT + 10);
  CHECK(seconds(next->created_at) == kT + 3);
  REQUIRE(next->expires_at);
  CHECK(seconds(*next->expires_at) == kT + 610);
  CHECK(next->data == jobsched::Payload::text("nightly report"));
  CHECK(next->queue == "reports");
  CHECK(next->priority == 7);
  CHECK(next->max_attempts == std::optional<int>(3));
  REQUIRE(next->firing);
  CHECK(next->firing->schedule == "report");
  CHECK(seconds(next->firing->at) == kT + 10);

  const std::optional<jobsched::JobDelay> delay = scheduler.seconds_until_next_job(at(kT + 3));
  REQUIRE(delay);
  CHECK(delay->id == next->id);
  CHECK(delay->delay.count() == 7.0);
  // Not due yet: nothing to claim.
  CHECK(scheduler.claim_jobs(10, Seconds{60}, at(kT + 9)).empty());
  // A job added by hand has no firing.
  CHECK_FALSE(scheduler.add_job(jobsched::Payload("x")).firing);
  // With Misfire::skip, a firing's job expires when the next one is due, at the latest.
  options.misfire = Misfire::skip;
  scheduler.put_schedule("report", Rule::every(Seconds{10}), options, at(kT + 3));
  CHECK(query_int(scheduler.handle(), "SELECT expires_at FROM job WHERE schedule = 'report'") ==
        static_cast<long long>(kT) + 20);
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job WHERE schedule = 'report'") == 1);
}

TEST_CASE("claims make each firing once, in order, and the next one ahead", "[schedules]") {
  TempFile file("schedule-claims");
  const bool on_file = GENERATE(true, false);
  auto scheduler = Scheduler::open(database(file, on_file));
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  std::vector<double> fired;
  // A claim every 5 s for 200 s: each firing exactly once, on time.
  for (double now = kT; now <= kT + 200; now += 5) {
    for (const double fire : run_due(scheduler, now))
      fired.push_back(fire);
    // Always one firing ahead, never two.
    CHECK(query_int(scheduler.handle(),
                    "SELECT count(*) FROM job WHERE schedule = 'tick' AND completed_at IS NULL") ==
          1);
  }
  std::vector<double> expected;
  for (double fire = kT + 10; fire <= kT + 200; fire += 10)
    expected.push_back(fire);
  CHECK(fired == expected);
  const Schedule stored = *scheduler.get_schedule("tick");
  CHECK(seconds(*stored.last_fire) == kT + 200);
  CHECK(seconds(*stored.next_fire) == kT + 210);
}

TEST_CASE("the seed's loop runs a schedule with next_job and complete_job alone",
          "[schedules]") {
  TempFile file("schedule-seed-loop");
  auto scheduler = Scheduler::open(file.path());
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  std::vector<double> completed;
  double now = kT;
  // Wait until the next job, complete it, ask again: a caller that never claims or adds.
  for (int round = 0; round < 20; ++round) {
    const std::optional<jobsched::JobDelay> delay = scheduler.seconds_until_next_job(at(now));
    REQUIRE(delay);
    now += delay->delay.count();
    const std::optional<Job> job = scheduler.get_job(delay->id, at(now));
    REQUIRE(job);
    REQUIRE(job->firing);
    completed.push_back(seconds(job->firing->at));
    REQUIRE(scheduler.complete_job(delay->id, at(now)));
  }
  std::vector<double> expected;
  for (int i = 1; i <= 20; ++i)
    expected.push_back(kT + 10.0 * i);
  CHECK(completed == expected);
}

TEST_CASE("after downtime, each misfire policy makes the firings it promises", "[schedules]") {
  TempFile file("schedule-misfire");
  auto scheduler = Scheduler::open(file.path());
  // Every 10 s from kT; the program runs the firing at kT+10, then is down until kT+95.
  SECTION("skip: only the next future firing runs") {
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::skip), at(kT));
    CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
    CHECK(run_due(scheduler, kT + 95).empty());  // kT+20 was made ahead, and dropped at kT+30
    CHECK(run_due(scheduler, kT + 100) == std::vector<double>{kT + 100});
    CHECK(run_due(scheduler, kT + 110) == std::vector<double>{kT + 110});
  }
  SECTION("once: one late run for all those missed, then on schedule") {
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::once), at(kT));
    CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
    CHECK(run_due(scheduler, kT + 95) == std::vector<double>{kT + 20});
    CHECK(run_due(scheduler, kT + 99).empty());
    CHECK(run_due(scheduler, kT + 100) == std::vector<double>{kT + 100});
  }
  SECTION("catch_up: each missed firing, oldest first, up to the cap") {
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::catch_up, 3),
                           at(kT));
    CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
    // kT+20 (made ahead) and three more; kT+60 to kT+90 are past the cap.
    CHECK(run_due(scheduler, kT + 95) == std::vector<double>{kT + 20, kT + 30, kT + 40, kT + 50});
    CHECK(run_due(scheduler, kT + 100) == std::vector<double>{kT + 100});
  }
  SECTION("catch_up with every missed firing within the cap") {
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::catch_up, 100),
                           at(kT));
    CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
    CHECK(run_due(scheduler, kT + 95) ==
          std::vector<double>{kT + 20, kT + 30, kT + 40, kT + 50, kT + 60, kT + 70, kT + 80,
                              kT + 90});
    CHECK(run_due(scheduler, kT + 100) == std::vector<double>{kT + 100});
  }
}

TEST_CASE("a late job knows the time it was due", "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::catch_up), at(kT));
  const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(10, Seconds{60}, at(kT + 35));
  REQUIRE(claimed.size() == 3);
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    CAPTURE(i);
    CHECK(seconds(claimed[i].job.firing->at) == kT + 10.0 * static_cast<double>(i + 1));
  }
  // Made ahead at kT, it starts on time; the two made late start when they were made.
  CHECK(seconds(claimed[0].job.starts_at) == kT + 10);
  CHECK(seconds(claimed[1].job.starts_at) == kT + 35);
  CHECK(seconds(claimed[2].job.starts_at) == kT + 35);
}

TEST_CASE("the clock stepping back never makes a firing twice, a step forward is a misfire",
          "[schedules]") {
  TempFile file("schedule-clock");
  auto scheduler = Scheduler::open(file.path());
  scheduler.put_schedule("tick", Rule::every(Seconds{600}, at(kT)),
                         with_misfire(Misfire::catch_up, 1000), at(kT));
  std::multiset<double> fired;
  auto run = [&](double now) {
    for (const double fire : run_due(scheduler, now))
      fired.insert(fire);
  };
  for (double now = kT; now <= kT + 3600; now += 60)
    run(now);
  CHECK(fired.size() == 6);
  // Back an hour, and forward again through the same hour.
  for (double now = kT; now <= kT + 3600; now += 60)
    run(now);
  CHECK(fired.size() == 6);
  // Forward a day: catch_up makes every missed firing once.
  run(kT + 3600 + 86400);
  CHECK(fired.size() == 6 + 144);
  for (const double fire : fired)
    CHECK(fired.count(fire) == 1);
  CHECK(*fired.rbegin() == kT + 3600 + 86400);
}

TEST_CASE("declaring the same schedule again writes nothing, a change makes its firing again",
          "[schedules]") {
  TempFile file("schedule-redeclare");
  auto scheduler = Scheduler::open(file.path());
  ScheduleOptions options;
  options.data = jobsched::Payload("v1");
  const Schedule first = scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT));
  const std::int64_t ahead = scheduler.next_job(at(kT))->id;
  const std::int64_t changes = sqlite3_total_changes64(scheduler.handle());
  const std::int64_t version = query_int(scheduler.handle(), "PRAGMA main.data_version");
  const Schedule again =
      scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT + 5));
  CHECK(sqlite3_total_changes64(scheduler.handle()) == changes);
  CHECK(query_int(scheduler.handle(), "PRAGMA main.data_version") == version);
  CHECK(again.next_fire == first.next_fire);

  SECTION("new options: the firing ahead is made again with them, at the same time") {
    options.data = jobsched::Payload("v2");
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT + 5));
    CHECK_FALSE(scheduler.get_job(ahead));
    const Job next = *scheduler.next_job(at(kT + 5));
    CHECK(next.data == jobsched::Payload("v2"));
    CHECK(seconds(next.firing->at) == kT + 10);
    CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 1);
    CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job_payload") == 1);
  }
  SECTION("a new rule: the next firing is the new rule's") {
    scheduler.put_schedule("tick", Rule::every(Seconds{7}, at(kT)), options, at(kT + 5));
    CHECK_FALSE(scheduler.get_job(ahead));
    CHECK(seconds(scheduler.next_job(at(kT + 5))->firing->at) == kT + 7);
    CHECK(scheduler.get_schedule("tick")->rule == Rule::every(Seconds{7}, at(kT)));
  }
  SECTION("a firing already claimed stays, and the new rule fires after it") {
    const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(1, Seconds{60}, at(kT + 10));
    REQUIRE(claimed.size() == 1);
    // The claim made kT+20 ahead; claim that one early too, with the clock ahead.
    const std::vector<ClaimedJob> early = scheduler.claim_jobs(1, Seconds{60}, at(kT + 20));
    REQUIRE(early.size() == 1);
    CHECK(seconds(early[0].job.firing->at) == kT + 20);
    // That claim made kT+30 ahead; the clock is back at kT+12 for the change.
    const std::int64_t ahead_of_early = scheduler.get_schedule("tick")->next_fire
                                            ? scheduler.next_job(at(kT + 20))->id
                                            : 0;
    scheduler.put_schedule("tick", Rule::every(Seconds{3}, at(kT)), options, at(kT + 12));
    CHECK(scheduler.get_job(early[0].job.id));
    CHECK_FALSE(scheduler.get_job(ahead_of_early));
    // Never at or before a firing already made, though the clock says kT+12.
    CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 21);
  }
}

TEST_CASE("a firing already due stays made when its schedule changes, pauses or is deleted",
          "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  ScheduleOptions options;
  options.data = jobsched::Payload("v1");
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT));
  const std::int64_t due = scheduler.next_job(at(kT))->id;
  // At kT+11 the kT+10 firing is due, and nobody has met it yet.
  SECTION("changed") {
    options.data = jobsched::Payload("v2");
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT + 11));
    CHECK(scheduler.get_job(due)->data == jobsched::Payload("v1"));
    CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 20);
    const std::vector<ClaimedJob> first = scheduler.claim_jobs(10, Seconds{60}, at(kT + 19));
    REQUIRE(first.size() == 1);
    CHECK(first[0].job.data == jobsched::Payload("v1"));
    const std::vector<ClaimedJob> second = scheduler.claim_jobs(10, Seconds{60}, at(kT + 20));
    REQUIRE(second.size() == 1);
    CHECK(second[0].job.data == jobsched::Payload("v2"));
  }
  SECTION("paused") {
    REQUIRE(scheduler.pause_schedule("tick", at(kT + 11)));
    CHECK(scheduler.get_job(due));
    CHECK(seconds(*scheduler.get_schedule("tick")->last_fire) == kT + 10);
  }
  SECTION("deleted") {
    REQUIRE(scheduler.delete_schedule("tick", at(kT + 11)));
    CHECK(scheduler.get_job(due));
  }
}

TEST_CASE("a schedule resumed with the clock set back never makes a firing again",
          "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
  REQUIRE(scheduler.pause_schedule("tick", at(kT + 12)));
  REQUIRE(scheduler.resume_schedule("tick", at(kT + 5)));
  CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 20);
}

TEST_CASE("a paused schedule makes no firings, resumed, it goes on from now", "[schedules]") {
  TempFile file("schedule-pause");
  auto scheduler = Scheduler::open(file.path());
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::catch_up), at(kT));
  CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
  REQUIRE(scheduler.pause_schedule("tick", at(kT + 12)));
  const Schedule paused = *scheduler.get_schedule("tick");
  CHECK(paused.paused);
  CHECK_FALSE(paused.next_fire);
  CHECK(seconds(*paused.last_fire) == kT + 10);
  // The firing made ahead (kT+20) was taken back.
  CHECK_FALSE(scheduler.next_job(at(kT + 12)));
  CHECK(run_due(scheduler, kT + 60).empty());
  // Declaring it at a restart does not resume it.
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), with_misfire(Misfire::catch_up),
                         at(kT + 61));
  CHECK(scheduler.get_schedule("tick")->paused);
  REQUIRE(scheduler.resume_schedule("tick", at(kT + 65)));
  CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 70);
  CHECK(run_due(scheduler, kT + 70) == std::vector<double>{kT + 70});
  // Pausing twice, resuming twice: no change the second time.
  CHECK(scheduler.resume_schedule("tick", at(kT + 71)));
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job WHERE completed_at IS NULL") == 1);
  CHECK_FALSE(scheduler.pause_schedule("nope", at(kT)));
  CHECK_FALSE(scheduler.resume_schedule("nope", at(kT)));
}

TEST_CASE("deleting a schedule takes back its firing ahead and keeps the jobs it made",
          "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  const ClaimedJob running = scheduler.claim_jobs(1, Seconds{60}, at(kT + 10)).at(0);
  REQUIRE(scheduler.delete_schedule("tick", at(kT + 11)));
  CHECK_FALSE(scheduler.get_schedule("tick"));
  CHECK(scheduler.schedules().empty());
  CHECK(scheduler.get_job(running.job.id));
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 1);
  CHECK(scheduler.complete(running.claim, at(kT + 12)));
  CHECK_FALSE(scheduler.delete_schedule("tick", at(kT + 12)));
  CHECK(scheduler.claim_jobs(10, Seconds{60}, at(kT + 100)).empty());
}

TEST_CASE("schedules are listed by name, with cron rules in a time zone", "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  scheduler.put_schedule("b", Rule::cron("30 2 * * *"), {}, at(kT));
  scheduler.put_schedule("a", Rule::every(Seconds{90}), {}, at(kT));
  const std::vector<Schedule> all = scheduler.schedules();
  REQUIRE(all.size() == 2);
  CHECK(all[0].name == "a");
  CHECK(all[1].name == "b");
  CHECK(all[1].rule == Rule::cron("30 2 * * *"));
  // kT is 2023-11-14 22:13:20 UTC; the next 02:30 UTC is the next day's.
  CHECK(seconds(*all[1].next_fire) == 1'700'015'400.0);
}

TEST_CASE("bad schedules are refused, naming the value, and nothing is written",
          "[schedules]") {
  TempFile file("schedule-bad");
  auto scheduler = Scheduler::open(file.path());
  const std::int64_t changes = sqlite3_total_changes64(scheduler.handle());
  auto refused = [&](const std::string& name, const ScheduleOptions& options) {
    return thrown<jobsched::InvalidArgumentError>(
        [&] { scheduler.put_schedule(name, Rule::every(Seconds{10}), options, at(kT)); });
  };
  CHECK(contains(refused("", {}).value_or(""), "name must not be empty"));
  CHECK(contains(refused(std::string("a\0b", 3), {}).value_or(""), "NUL"));
  ScheduleOptions options;
  options.catch_up_limit = 0;
  CHECK(contains(refused("s", options).value_or(""), "catch_up_limit must be at least 1, got 0"));
  options = {};
  options.expires_after = Seconds{-1};
  CHECK(contains(refused("s", options).value_or(""), "expires_after"));
  options = {};
  options.max_attempts = 0;
  CHECK(contains(refused("s", options).value_or(""), "max_attempts must be at least 1, got 0"));
  options = {};
  options.initial_backoff = Seconds{std::nan("")};
  CHECK(contains(refused("s", options).value_or(""), "initial_backoff"));
  options = {};
  options.misfire = static_cast<Misfire>(7);
  CHECK(contains(refused("s", options).value_or(""), "got 7"));
  CHECK(thrown<jobsched::InvalidArgumentError>([&] { scheduler.pause_schedule(""); }));
  CHECK(sqlite3_total_changes64(scheduler.handle()) == changes);
  CHECK(scheduler.schedules().empty());
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 0);
}

TEST_CASE("a second job for one firing is refused by the file itself", "[schedules]") {
  TempFile file("schedule-unique");
  auto scheduler = Scheduler::open(file.path());
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  const int result = sqlite3_exec(scheduler.handle(),
                                  "INSERT INTO job (created_at, starts_at, schedule, fire_at)"
                                  " SELECT created_at, starts_at, schedule, fire_at FROM job",
                                  nullptr, nullptr, nullptr);
  CHECK(result == SQLITE_CONSTRAINT_UNIQUE);
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 1);
}

TEST_CASE("a schedule whose stored rule this build cannot read stops, and says why",
          "[schedules]") {
  TempFile file("schedule-unreadable");
  auto scheduler = Scheduler::open(file.path());
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT));
  scheduler.put_schedule("other", Rule::every(Seconds{10}), {}, at(kT));
  exec_raw(scheduler.handle(), "UPDATE schedule SET rule = 'lunar 3' WHERE name = 'tick'");
  const std::optional<std::string> error =
      thrown<jobsched::SchemaError>([&] { scheduler.get_schedule("tick"); });
  REQUIRE(error);
  CHECK(contains(*error, "schedule 'tick'"));
  CHECK(contains(*error, "'lunar 3'"));
  // The other schedule, and claims, carry on; the one made ahead still runs.
  CHECK(run_due(scheduler, kT + 10, "other") == std::vector<double>{kT + 10});
  CHECK(run_due(scheduler, kT + 20, "other") == std::vector<double>{kT + 20});
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM schedule WHERE name = 'tick' AND ahead_at IS NULL"
                  " AND error IS NOT NULL") == 1);
  // Putting it again starts it.
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT + 21));
  CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 30);
}

TEST_CASE("processes declaring and claiming one schedule at once make each firing once",
          "[schedules][processes]") {
  TempFile file("schedule-processes");
  { Scheduler::open(file.path()); }
  // Each process declares the schedule and claims with the same fast clock: firings every
  // 10 s of a clock that runs 1,000 times faster than the wall clock's.
  const double start = kT;
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      4,
      [&](auto report) {
        jobsched::Options options;
        const auto wall = std::chrono::steady_clock::now();
        options.clock = [wall, start] {
          const double elapsed =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
          return at(start + 1000.0 * elapsed);
        };
        auto scheduler = Scheduler::open(file.path(), options);
        scheduler.put_schedule("tick", Rule::every(Seconds{10}),
                               with_misfire(Misfire::catch_up, 1000));
        // Until +2000 s, then until nothing is due: a process descheduled near the end (a
        // loaded machine) still takes the firings that came due meanwhile.
        bool took = true;
        while (scheduler.now() < at(start + 2000) || took) {
          const std::vector<ClaimedJob> batch = scheduler.claim_jobs(4, Seconds{3600});
          took = !batch.empty();
          for (const ClaimedJob& claimed : batch) {
            report(static_cast<std::int64_t>(seconds(claimed.job.firing->at)));
            scheduler.complete(claimed.claim);
          }
        }
        return 0;
      },
      std::chrono::seconds(60));
  for (const int code : reports.exit_codes)
    CHECK(code == 0);
  // Every firing from the first one made to the last, each exactly once.
  REQUIRE(!reports.times_reported.empty());
  const std::int64_t first = reports.times_reported.begin()->first;
  const std::int64_t last = reports.times_reported.rbegin()->first;
  {
    auto check = Scheduler::open(file.path());
    CHECK(query_int(check.handle(), "SELECT min(fire_at) FROM job WHERE schedule = 'tick'") ==
          first);
  }
  CHECK(last >= static_cast<std::int64_t>(start) + 1900);
  for (std::int64_t fire = first; fire <= last; fire += 10) {
    CAPTURE(fire);
    CHECK(reports.times_reported.count(fire) == 1);
    if (reports.times_reported.count(fire) == 1)
      CHECK(reports.times_reported.at(fire) == 1);
  }
  CHECK(static_cast<std::int64_t>(reports.times_reported.size()) == (last - first) / 10 + 1);
}

namespace {

// A file as version 5 or 6 wrote it: a current one without what the later versions added.
void write_old_file(const std::string& path, int version) {
  {
    jobsched_test::PinnedClock clock;
    clock.set(kT);
    auto scheduler = Scheduler::open(path, clock.options());
    jobsched::JobOptions options;
    options.queue = "q";
    scheduler.add_job(jobsched::Payload::text("first"), options);
    scheduler.add_job(jobsched::Payload::blob("\0\1", 2));
    scheduler.claim_next_job(Seconds{60}, at(kT + 1));
    if (version >= 6)
      scheduler.put_schedule("old", Rule::every(Seconds{30}), {}, at(kT + 1));
  }
  auto raw = jobsched_test::open_raw(path);
  exec_raw(raw.get(),
           "DROP INDEX ix_job_unique; DROP INDEX ix_job_key_completed; DROP INDEX ix_job_cancelled;"
           " ALTER TABLE job DROP COLUMN unique_key; DROP TABLE queue_pause;"
           " ALTER TABLE job DROP COLUMN lease_seconds;");
  if (version < 6) {
    exec_raw(raw.get(),
             "DROP INDEX ix_job_firing; ALTER TABLE job DROP COLUMN fire_at;"
             " ALTER TABLE job DROP COLUMN schedule; ALTER TABLE job DROP COLUMN result;"
             " ALTER TABLE job DROP COLUMN cancelled_at; DROP TABLE schedule;");
  }
  exec_raw(raw.get(),
           ("UPDATE job_schema SET value = " + std::to_string(version) + " WHERE key = 'version'")
               .c_str());
}

}  // namespace

TEST_CASE("a version-5 or -6 file reads as it was, and upgrades with every job and payload intact",
          "[schedules][migrations]") {
  const int version = GENERATE(5, 6);
  TempFile file("schedule-v" + std::to_string(version));
  write_old_file(file.path(), version);
  std::vector<Job> before;
  std::optional<jobsched::TimePoint> old_fire;
  {
    jobsched::Options options;
    options.read_only = true;
    auto reader = Scheduler::open(file.path(), options);
    CHECK(reader.schema_version() == version);
    CHECK(reader.needs_upgrade());
    CHECK(reader.schedules().size() == (version >= 6 ? 1U : 0U));
    CHECK_FALSE(reader.get_schedule("tick"));
    for (std::int64_t id = 1; id <= (version >= 6 ? 3 : 2); ++id)
      before.push_back(*reader.get_job(id, at(kT + 2)));
    CHECK(before[0].data == jobsched::Payload::text("first"));
    CHECK(before[0].queue == "q");
    CHECK(before[0].attempts == 1);
    CHECK(before[1].data == jobsched::Payload::blob("\0\1", 2));
    CHECK_FALSE(before[0].key);
    CHECK(reader.count_pending_jobs(at(kT + 2)) == (version >= 6 ? 3 : 2));
    if (version >= 6) {
      old_fire = reader.get_schedule("old")->next_fire;
      REQUIRE(old_fire);
      CHECK(before[2].firing == jobsched::Firing{"old", *old_fire});
    }
  }
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.migrated_from() == std::optional<int>(version));
  CHECK(scheduler.schema_version() == jobsched::current_schema_version);
  for (std::int64_t id = 1; id <= static_cast<std::int64_t>(before.size()); ++id)
    CHECK(*scheduler.get_job(id, at(kT + 2)) == before[static_cast<std::size_t>(id - 1)]);
  if (version >= 6)
    CHECK(scheduler.get_schedule("old")->next_fire == old_fire);
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), {}, at(kT + 2));
  CHECK(seconds(*scheduler.get_schedule("tick")->next_fire) == kT + 10);
}

TEST_CASE("a cron schedule in New York fires once a day across both daylight-saving changes",
          "[schedules][time-zones]") {
  if (!jobsched::TimeZone::named_zones_supported()) {
    WARN("this build has no zone database (jobsched::tz): skipped");
    return;
  }
  auto scheduler = Scheduler::open(":memory:");
  const jobsched::TimeZone new_york = jobsched::TimeZone::named("America/New_York");
  auto fires_between = [&](const std::string& cron, double from, double to) {
    scheduler.put_schedule("daily", Rule::cron(cron, new_york), {}, at(from));
    std::vector<double> fired;
    for (double now = from; now <= to; now += 600) {
      for (const double fire : run_due(scheduler, now, "daily"))
        fired.push_back(fire);
    }
    scheduler.delete_schedule("daily", at(to));
    return fired;
  };
  // 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist: it runs right after
  // the jump, at 03:00 EDT (07:00 UTC).
  CHECK(fires_between("30 2 * * *", 1772798400, 1772798400 + 3.5 * 86400) ==
        std::vector<double>{1772868600, 1772953200, 1773037800});
  // 2026-11-01: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice: it runs once, at
  // the first (05:30 UTC), then 01:30 EST (06:30 UTC) the next day.
  CHECK(fires_between("30 1 * * *", 1793361600, 1793361600 + 3.5 * 86400) ==
        std::vector<double>{1793424600, 1793511000, 1793601000});
}

TEST_CASE("a Worker runs every firing of a fast schedule once, in order", "[schedules][worker]") {
  TempFile file("schedule-worker");
  const double interval = 0.05;
  const jobsched::TimePoint anchor = jobsched::system_now();
  double first_fire = 0;
  {
    auto scheduler = Scheduler::open(file.path());
    first_fire = seconds(*scheduler
                              .put_schedule("tick", Rule::every(Seconds{interval}, anchor),
                                            with_misfire(Misfire::catch_up, 1000))
                              .next_fire);
  }
  std::mutex mutex;
  std::vector<double> fired;
  jobsched::WorkerOptions options;
  options.threads = 2;
  jobsched::Worker worker(
      file.path(),
      [&](const Job& job) {
        const std::lock_guard<std::mutex> lock(mutex);
        fired.push_back(seconds(job.firing->at));
      },
      options);
  jobsched_test::require_eventually(
      jobsched_test::Deadline(std::chrono::seconds(20), "20 firings run by the worker"), [&] {
        const std::lock_guard<std::mutex> lock(mutex);
        return fired.size() >= 20;
      });
  worker.stop();
  std::vector<long long> periods;
  for (const double fire : fired)
    periods.push_back(std::llround((fire - seconds(anchor)) / interval));
  std::sort(periods.begin(), periods.end());
  CAPTURE(periods);
  for (std::size_t i = 1; i < periods.size(); ++i)
    CHECK(periods[i] == periods[i - 1] + 1);
  // From the first firing after the schedule was put.
  CHECK(periods.front() == std::llround((first_fire - seconds(anchor)) / interval));
}

TEST_CASE("threads declaring and claiming one schedule at once make each firing once",
          "[schedules]") {
  TempFile file("schedule-threads");
  { Scheduler::open(file.path()); }
  const auto wall = std::chrono::steady_clock::now();
  jobsched::Options options;
  options.clock = [wall] {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
    return at(kT + 1000.0 * elapsed);
  };
  std::mutex mutex;
  std::map<double, int> runs;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto scheduler = Scheduler::open(file.path(), options);
      scheduler.put_schedule("tick", Rule::every(Seconds{10}),
                             with_misfire(Misfire::catch_up, 1000));
      while (scheduler.now() < at(kT + 1500)) {
        // Half the threads claim; the others only read, which makes firings too.
        if (t % 2 == 1)
          scheduler.seconds_until_next_job();
        for (const ClaimedJob& claimed : scheduler.claim_jobs(2, Seconds{3600})) {
          {
            const std::lock_guard<std::mutex> lock(mutex);
            ++runs[seconds(claimed.job.firing->at)];
          }
          scheduler.complete(claimed.claim);
        }
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();
  REQUIRE(runs.size() > 100);
  const double first = runs.begin()->first;
  const double last = runs.rbegin()->first;
  // From the first firing made (when the first thread declared the schedule, on a clock
  // that runs 1,000 times faster than the wall's), every one up to the last run.
  auto check = Scheduler::open(file.path());
  CHECK(query_int(check.handle(), "SELECT min(fire_at) FROM job WHERE schedule = 'tick'") ==
        static_cast<long long>(first));
  CHECK(static_cast<double>(runs.size()) == (last - first) / 10 + 1);
  for (const auto& [fire, count] : runs) {
    CAPTURE(fire);
    CHECK(count == 1);
  }
}

TEST_CASE("a schedule changed or paused after downtime first makes the firings it missed",
          "[schedules]") {
  auto scheduler = Scheduler::open(":memory:");
  ScheduleOptions options = with_misfire(Misfire::catch_up, 100);
  options.data = jobsched::Payload("v1");
  scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT));
  CHECK(run_due(scheduler, kT + 10) == std::vector<double>{kT + 10});
  // Down until kT+95, then declared with a new payload (or paused) before anything claims.
  SECTION("changed") {
    options.data = jobsched::Payload("v2");
    scheduler.put_schedule("tick", Rule::every(Seconds{10}), options, at(kT + 95));
    const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(100, Seconds{60}, at(kT + 95));
    std::vector<double> fired;
    for (const ClaimedJob& job : claimed) {
      fired.push_back(seconds(job.job.firing->at));
      CHECK(job.job.data == jobsched::Payload("v1"));
    }
    CHECK(fired == std::vector<double>{kT + 20, kT + 30, kT + 40, kT + 50, kT + 60, kT + 70,
                                       kT + 80, kT + 90});
    const std::vector<ClaimedJob> next = scheduler.claim_jobs(100, Seconds{60}, at(kT + 100));
    REQUIRE(next.size() == 1);
    CHECK(next[0].job.data == jobsched::Payload("v2"));
  }
  SECTION("paused") {
    REQUIRE(scheduler.pause_schedule("tick", at(kT + 95)));
    CHECK(run_due(scheduler, kT + 95).size() == 8);
    CHECK(seconds(*scheduler.get_schedule("tick")->last_fire) == kT + 90);
  }
}

}  // namespace test_schedules
