// SPDX-License-Identifier: MIT
// Clocks that lie. A clock's answer is checked before anything waits for the write lock (a
// NaN clock is an InvalidArgumentError at once, never a BusyError after the busy timeout),
// and every time, from the clock or from an argument, must lie within the years 1 to 9999:
// far outside them a double's rounding swallows whole leases. A holder whose clock stepped
// back never shortens its own lease, so no other worker takes a job while it runs.

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_clock {

using jobsched::Claim;
using jobsched::InvalidArgumentError;
using jobsched::Job;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::starting;
using jobsched_test::TempFile;
using jobsched_test::thrown;

namespace {

constexpr double kT = jobsched_test::pinned_now;
constexpr double kYear1 = -62135596800.0;      // 0001-01-01T00:00:00Z
constexpr double kYear10000 = 253402300800.0;  // 10000-01-01T00:00:00Z, the first time refused
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

jobsched::Options clock_at(const std::shared_ptr<double>& seconds) {
  jobsched::Options options;
  options.clock = [seconds] { return at(*seconds); };
  options.busy_timeout = std::chrono::milliseconds{2000};
  return options;
}

/// Every call that reads the clock when given no time, by name.
std::vector<std::pair<std::string, std::function<void(Scheduler&, Claim&)>>> clock_calls() {
  return {
      {"add_job", [](Scheduler& s, Claim&) { s.add_job("x"); }},
      {"add_job_from_now", [](Scheduler& s, Claim&) { s.add_job_from_now("x", Seconds{1}); }},
      {"get_job", [](Scheduler& s, Claim&) { s.get_job(1); }},
      {"next_job", [](Scheduler& s, Claim&) { s.next_job(); }},
      {"seconds_until_next_job", [](Scheduler& s, Claim&) { s.seconds_until_next_job(); }},
      {"seconds_until_next_job(queues)",
       [](Scheduler& s, Claim&) { s.seconds_until_next_job({""}); }},
      {"count_pending_jobs", [](Scheduler& s, Claim&) { s.count_pending_jobs(); }},
      {"complete_job", [](Scheduler& s, Claim&) { s.complete_job(1); }},
      {"delete_expired_jobs", [](Scheduler& s, Claim&) { s.delete_expired_jobs(); }},
      {"lock_job", [](Scheduler& s, Claim&) { s.lock_job(1); }},
      {"unlock_job", [](Scheduler& s, Claim&) { s.unlock_job(1); }},
      {"lock_next_job", [](Scheduler& s, Claim&) { s.lock_next_job(); }},
      {"claim_next_job", [](Scheduler& s, Claim&) { s.claim_next_job(Seconds{30}); }},
      {"claim_next_job(queues)", [](Scheduler& s, Claim&) { s.claim_next_job(Seconds{30}, {""}); }},
      {"complete", [](Scheduler& s, Claim& c) { s.complete(c); }},
      {"fail", [](Scheduler& s, Claim& c) { s.fail(c, "e"); }},
      {"extend", [](Scheduler& s, Claim& c) { s.extend(c, Seconds{30}); }},
      {"release", [](Scheduler& s, Claim& c) { s.release(c); }},
      {"failed_jobs", [](Scheduler& s, Claim&) { s.failed_jobs(); }},
      {"retry_job", [](Scheduler& s, Claim&) { s.retry_job(1); }},
      {"delete_failed_jobs", [](Scheduler& s, Claim&) { s.delete_failed_jobs(); }},
  };
}

}  // namespace

TEST_CASE(
    "a clock that answers NaN, infinity or a time outside the years 1 to 9999 is refused "
    "by every call, naming the time, and nothing is written") {
  TempFile file("clock-bad");
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  const auto seconds = std::make_shared<double>(kT);
  Scheduler scheduler =
      Scheduler::open(where == "file" ? file.path() : ":memory:", clock_at(seconds));
  const Job job = scheduler.add_job("held", starting(kT - 10));
  Claim claim = scheduler.claim_next_job(Seconds{30})->claim;
  const std::int64_t changes = sqlite3_total_changes64(scheduler.handle());

  struct Bad {
    double seconds;
    const char* shown;
  };
  const Bad bad =
      GENERATE(Bad{kNan, "got nan"}, Bad{1e300, "got 1.0000000000000001e+300 s"},
               Bad{-1e300, "got -1.0000000000000001e+300 s"},
               Bad{std::numeric_limits<double>::infinity(), "got inf"},
               Bad{kYear10000, "got 253402300800 s"}, Bad{kYear1 - 1, "got -62135596801 s"});
  *seconds = bad.seconds;
  for (const auto& named : clock_calls()) {
    const auto& call = named.second;
    INFO(named.first << " with the clock at " << bad.shown);
    const auto error = thrown<InvalidArgumentError>([&] { call(scheduler, claim); });
    REQUIRE(error.has_value());
    CHECK(contains(*error, "within the years 1 to 9999"));
    CHECK(contains(*error, bad.shown));
  }
  CHECK(sqlite3_total_changes64(scheduler.handle()) == changes);
  *seconds = kT + 1;
  CHECK(scheduler.complete(claim));
  CHECK(scheduler.get_job(job.id)->completed_at == at(kT + 1));
}

TEST_CASE(
    "a NaN clock is refused at once by a claim, even while another connection holds the "
    "write lock") {
  // The claim used to read the clock only once it held the lock, so it waited out the busy
  // timeout and threw BusyError.
  TempFile file("clock-nan-locked");
  const auto seconds = std::make_shared<double>(kT);
  Scheduler scheduler = Scheduler::open(file.path(), clock_at(seconds));
  scheduler.add_job("due", starting(kT - 1));
  auto other = open_raw(file.path());
  exec_raw(other.get(), "BEGIN IMMEDIATE");
  *seconds = GENERATE(as<double>{}, kNan, 1e300);
  const bool named = GENERATE(false, true);
  INFO((named ? "named queues" : "any queue"));
  const auto started = std::chrono::steady_clock::now();
  bool invalid = false;
  try {
    if (named) {
      scheduler.claim_next_job(Seconds{30}, {""});
    } else {
      scheduler.claim_next_job(Seconds{30});
    }
  } catch (const InvalidArgumentError& error) {
    invalid = true;
    CHECK(contains(error.what(), "now must be a time within the years 1 to 9999"));
  } catch (const jobsched::Error& error) {
    FAIL("claim threw " << error.what() << " with clock " << *seconds);
  }
  CHECK(invalid);  // not a BusyError after 2 s
  // Generous: the point is that it does not wait for the 2 s busy timeout.
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds{1500});
  exec_raw(other.get(), "ROLLBACK");
}

TEST_CASE("times at the edges of the years 1 to 9999 are accepted, and one step outside refused") {
  auto scheduler = Scheduler::open(":memory:");
  const Job first = scheduler.add_job("year 1", jobsched_test::job_times(at(kYear1), at(kYear1)));
  CHECK(scheduler.get_job(first.id, at(kYear1))->created_at == at(kYear1));
  const double last = kYear10000 - 0.001;
  const Job late =
      scheduler.add_job("year 9999", jobsched_test::job_times(at(kT), at(last), at(last)));
  CHECK(scheduler.get_job(late.id, at(kT))->expires_at == at(last));

  const auto before_year_1 = thrown<InvalidArgumentError>(
      [&] { scheduler.add_job("x", jobsched_test::job_times(at(kYear1 - 0.5), at(kT))); });
  REQUIRE(before_year_1.has_value());
  CHECK(contains(*before_year_1, "created_at must be a time within the years 1 to 9999"));
  const auto year_10000 = thrown<InvalidArgumentError>(
      [&] { scheduler.add_job("x", jobsched_test::job_times(at(kT), at(kT), at(kYear10000))); });
  REQUIRE(year_10000.has_value());
  CHECK(contains(*year_10000, "expires_at"));
  const auto far_start = thrown<InvalidArgumentError>(
      [&] { scheduler.add_job_from_now("x", Seconds{1e300}, std::nullopt, at(kT)); });
  REQUIRE(far_start.has_value());
  CHECK(contains(*far_start, "starts_at"));
  CHECK(scheduler.count_pending_jobs(at(kT)) == 2);  // the two accepted
}

TEST_CASE("a lease whose end would fall after the year 9999 is refused, nothing claimed") {
  auto scheduler = Scheduler::open(":memory:");
  const Job job = scheduler.add_job("j", starting(kT - 1));
  const auto error =
      thrown<InvalidArgumentError>([&] { scheduler.claim_next_job(Seconds{1e300}, at(kT)); });
  REQUIRE(error.has_value());
  CHECK(contains(*error, "the lease's end must be a time within the years 1 to 9999"));
  CHECK(scheduler.get_job(job.id, at(kT))->attempts == 0);
  auto claimed = scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claimed.has_value());
  CHECK(thrown<InvalidArgumentError>([&] {
          scheduler.extend(claimed->claim, Seconds{3e11}, at(kT));
        }).has_value());
  CHECK(scheduler.get_job(job.id, at(kT))->lease_until == at(kT + 30));
}

TEST_CASE("a holder whose clock stepped back three hours extends without shortening its lease") {
  TempFile file("clock-step-back");
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::normal;
  auto holder = Scheduler::open(file.path(), options);
  auto other = Scheduler::open(file.path(), options);
  const Job job = holder.add_job("j", starting(kT - 1));
  auto claimed = holder.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claimed.has_value());
  Claim claim = claimed->claim;

  // "30 s from now" three hours ago: the lease stays where it is, and the claim says so.
  CHECK(holder.extend(claim, Seconds{30}, at(kT - 3 * 3600)));
  CHECK(claim.lease_until == at(kT + 30));
  CHECK(other.get_job(job.id, at(kT + 10))->lease_until == at(kT + 30));
  CHECK_FALSE(other.claim_next_job(Seconds{30}, at(kT + 10)).has_value());
  // Back on time, a heartbeat moves it forward as usual.
  CHECK(holder.extend(claim, Seconds{30}, at(kT + 20)));
  CHECK(claim.lease_until == at(kT + 50));
  CHECK_FALSE(other.claim_next_job(Seconds{30}, at(kT + 40)).has_value());
  CHECK(holder.complete(claim, at(kT + 45)));
}

TEST_CASE(
    "a Worker whose clock steps back three hours keeps its lease: a worker on a true clock "
    "never takes the job while it runs",
    "[worker]") {
  // The handler runs 2.5 s under a 3 s lease; the heartbeat beats every second. Once the
  // handler has started, the Worker's clock is three hours early. A heartbeat used to move
  // the lease to "3 s from now" on that clock, hours in the past, and the other worker, on a
  // true clock, took the job at once.
  TempFile file("clock-step-back-worker");
  const double start = jobsched::to_unix_seconds(jobsched::system_now());
  {
    auto scheduler = Scheduler::open(file.path());
    scheduler.add_job("long", starting(start - 10));
  }
  auto stepped_back = std::make_shared<std::atomic<bool>>(false);
  jobsched::WorkerOptions options;
  // With a second thread free, the claimer waits for work and sees the step: it must leave
  // the lease of the job its own handler runs as it is.
  options.threads = GENERATE(1, 2);
  options.lease = Seconds{3};
  options.scheduler.clock = [stepped_back] {
    return jobsched::system_now() - (stepped_back->load() ? Seconds{3 * 3600} : Seconds{0});
  };
  std::atomic<bool> running{false};
  std::atomic<bool> finished{false};
  auto other = Scheduler::open(file.path());
  int taken_while_running = 0;
  {
    jobsched::Worker worker(
        file.path(),
        [&](const Job&) {
          stepped_back->store(true);
          running.store(true);
          std::this_thread::sleep_for(std::chrono::milliseconds{2500});
          running.store(false);
          finished.store(true);
        },
        options);
    jobsched_test::require_eventually(
        jobsched_test::Deadline(Seconds{10}, "the Worker to start the job"),
        [&] { return running.load(); });
    // Claim as another worker would, every 20 ms, while the handler runs.
    const jobsched_test::Deadline deadline(Seconds{20}, "the handler to finish");
    while (!finished.load() && !deadline.passed()) {
      if (const auto claimed = other.claim_next_job(Seconds{30})) {
        if (running.load())
          ++taken_while_running;
        other.release(claimed->claim);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    REQUIRE(finished.load());
    jobsched_test::require_eventually(
        jobsched_test::Deadline(Seconds{10}, "the Worker to complete the job"),
        [&] { return worker.completed() == 1; });
    worker.stop();
  }
  CHECK(taken_while_running == 0);
  CHECK(other.count_pending_jobs() == 0);
}

TEST_CASE("a lease the clock's step back made look long is cut to its length from now",
          "[clock]") {
  const bool on_file = GENERATE(true, false);
  TempFile file("clock-cut-lease");
  jobsched_test::PinnedClock clock;
  clock.set(kT);
  auto scheduler = Scheduler::open(jobsched_test::database(file, on_file), clock.options());
  // Jobs hours old, so that they are due on either clock.
  const Job held = scheduler.add_job("held", starting(kT - 7300));
  const Job kept = scheduler.add_job("kept", starting(kT - 7250));
  const Job locked = scheduler.add_job("locked", starting(kT - 7));
  REQUIRE(scheduler.claim_next_job(Seconds{30}, at(kT))->job.id == held.id);
  REQUIRE(scheduler.claim_next_job(Seconds{30}, at(kT))->job.id == kept.id);
  REQUIRE(scheduler.lock_job(locked.id, at(kT)));
  const Job fresh = scheduler.add_job("fresh", starting(kT - 7200));
  // An hour back: both leases were granted "in the future". One claimed on the new clock is
  // as long as it was asked to be, and stays.
  const double back = kT - 3600;
  clock.set(back);
  auto fresh_claim = scheduler.claim_next_job(Seconds{1000}, at(back));
  REQUIRE(fresh_claim);
  REQUIRE(fresh_claim->job.id == fresh.id);
  CHECK(scheduler.cut_overlong_leases(at(back + 1), {kept.id}) == 1);
  CHECK(scheduler.get_job(held.id, at(back + 1))->lease_until == at(back + 1 + 30));
  CHECK(scheduler.get_job(kept.id, at(back + 1))->lease_until == at(kT + 30));
  CHECK(scheduler.get_job(fresh.id, at(back + 1))->lease_until == at(back + 1000));
  CHECK(scheduler.get_job(locked.id, at(back + 1))->locked_at == at(kT));
  CHECK(scheduler.cut_overlong_leases(at(back + 1), {kept.id}) == 0);  // cut once
  // The cut lease runs out 30 s later on the new clock, and the job is claimed again.
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, at(back + 30)).has_value());
  const auto again = scheduler.claim_next_job(Seconds{30}, at(back + 31));
  REQUIRE(again);
  CHECK(again->job.id == held.id);
  CHECK(again->job.attempts == 2);
  // An extended lease is cut to the length of the extension.
  Claim claim = fresh_claim->claim;
  REQUIRE(scheduler.extend(claim, Seconds{90}, at(back + 2)));
  CHECK(scheduler.cut_overlong_leases(at(back - 600)) >= 1);
  CHECK(scheduler.get_job(fresh.id, at(back - 600))->lease_until == at(back - 600 + 90));
}

TEST_CASE("a lease that ran out, then looks live again once the clock goes back, is cut too",
          "[clock]") {
  TempFile file("clock-cut-moved-on");
  jobsched_test::PinnedClock clock;
  clock.set(kT);
  auto scheduler = Scheduler::open(file.path(), clock.options());
  const Job job = scheduler.add_job("j", starting(kT - 7200));
  REQUIRE(scheduler.claim_next_job(Seconds{30}).has_value());
  // The lease runs out; the next write moves the job on (it keeps its lease's end).
  clock.set(kT + 100);
  scheduler.add_job("later", starting(kT + 1e6));
  CHECK(jobsched_test::query_int(scheduler.handle(),
                                 "SELECT state FROM job WHERE id = " + std::to_string(job.id)) == 1);
  clock.set(kT - 3600);
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}).has_value());  // held again, for an hour
  CHECK(scheduler.cut_overlong_leases() == 1);
  CHECK(scheduler.get_job(job.id)->lease_until == at(kT - 3600 + 30));
  clock.set(kT - 3600 + 30);
  CHECK(scheduler.claim_next_job(Seconds{30})->job.id == job.id);
}

TEST_CASE("a Worker whose clock steps back a year runs the job of a holder that died",
          "[clock][worker]") {
  // The holder claims with a 2 s lease and dies. The worker's clock then steps back a year:
  // the lease now looks a year long. The worker notices the step and cuts it to 2 s. (The
  // job is two years old, so that it is still due on the stepped clock.)
  TempFile file("clock-step-back-dead-holder");
  const double start = jobsched::to_unix_seconds(jobsched::system_now());
  std::int64_t id = 0;
  {
    auto holder = Scheduler::open(file.path());
    id = holder.add_job("orphan", starting(start - 2 * 365 * 86400.0)).id;
    REQUIRE(holder.claim_next_job(Seconds{2}).has_value());
  }
  auto stepped_back = std::make_shared<std::atomic<bool>>(false);
  jobsched::WorkerOptions options;
  options.poll_interval = std::chrono::milliseconds{20};
  options.scheduler.clock = [stepped_back] {
    return jobsched::system_now() - (stepped_back->load() ? Seconds{365 * 86400.0} : Seconds{0});
  };
  std::atomic<int> ran{0};
  jobsched::Worker worker(file.path(), [&](const Job&) { ++ran; }, options);
  std::this_thread::sleep_for(std::chrono::milliseconds{200});
  CHECK(ran.load() == 0);  // the lease holds
  stepped_back->store(true);
  jobsched_test::require_eventually(
      jobsched_test::Deadline(Seconds{15}, "the worker to run the dead holder's job"),
      [&] { return worker.completed() == 1; });
  worker.stop();
  auto scheduler = Scheduler::open(file.path());
  const Job job = *scheduler.get_job(id);
  CHECK(job.is_completed());
  CHECK(job.attempts == 2);
  CHECK(ran.load() == 1);
}

}  // namespace test_clock
