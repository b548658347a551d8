// SPDX-License-Identifier: MIT
// Retries: a failed attempt returns the job after an exponential, capped backoff (with
// jitter when asked), never past its expiry; after the last attempt the job is failed for
// good and kept, neither pending nor expired, until retry_job brings it back or
// delete_failed_jobs removes it. Settings that cannot work are refused up front.

#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_retries {

using jobsched::Claim;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::RetryPolicy;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::PinnedClock;
using jobsched_test::query_int;
using jobsched_test::starting;
using jobsched_test::stored;
using jobsched_test::TempFile;
using jobsched_test::thrown;

namespace {

constexpr double kT = jobsched_test::pinned_now;

/// max_attempts 4, backoff 10 s doubling up to 25 s, no jitter.
RetryPolicy policy_4_10_2_25() {
  RetryPolicy policy;
  policy.max_attempts = 4;
  policy.initial_backoff = Seconds{10};
  policy.multiplier = 2.0;
  policy.max_backoff = Seconds{25};
  policy.jitter = 0.0;
  return policy;
}

struct Fixture : jobsched_test::SchedulerFixture {
  explicit Fixture(const std::string& where, const RetryPolicy& retry = policy_4_10_2_25())
      : SchedulerFixture("retries", where, retry) {}
};

/// Claims job `id` at `when` (it must be the one claimed), and returns the claim.
Claim claim_at(Scheduler& scheduler, std::int64_t id, double when) {
  const auto claimed = scheduler.claim_next_job(Seconds{60}, at(when));
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == id);
  return claimed->claim;
}

/// Claims and fails job `id` over and over, each attempt at the time it is due, failing it
/// one second after each claim; returns the delays between each failure and the next start.
std::vector<double> backoffs_until_failed(Scheduler& scheduler, std::int64_t id, int limit = 50) {
  std::vector<double> delays;
  for (int attempt = 1; attempt <= limit; ++attempt) {
    const double due = jobsched::to_unix_seconds(stored(scheduler, id).starts_at);
    const double claimed_at = std::max(due, kT);
    const Claim claim = claim_at(scheduler, id, claimed_at);
    REQUIRE(scheduler.fail(claim, "attempt " + std::to_string(attempt), at(claimed_at + 1)));
    const Job after = stored(scheduler, id);
    if (after.is_failed())
      return delays;
    delays.push_back(jobsched::to_unix_seconds(after.starts_at) - (claimed_at + 1));
  }
  return delays;
}

}  // namespace

TEST_CASE("failed attempts back off 10, 20, then 25 s (capped), and the 4th fails for good") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));

  // Attempt 1, failed at kT + 1: back in 10 s.
  Claim claim = claim_at(f.scheduler, job.id, kT);
  CHECK(f.scheduler.fail(claim, "first", at(kT + 1)));
  Job after = stored(f.scheduler, job.id);
  CHECK(after.starts_at == at(kT + 11));
  CHECK(after.attempts == 1);
  CHECK(after.last_error == std::optional<std::string>("first"));
  CHECK_FALSE(after.locked_at.has_value());
  CHECK_FALSE(after.lease_until.has_value());
  CHECK_FALSE(after.is_failed());
  CHECK(after.is_pending(at(kT + 1)));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 1)) == 1);
  CHECK(f.scheduler.next_job(at(kT + 1))->id == job.id);
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 1))->delay == Seconds{10});
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 10.999)).has_value());
  CHECK_FALSE(f.scheduler.fail(claim, "again", at(kT + 2)));  // the claim is spent

  // Attempt 2, failed at kT + 12: back in 20 s.
  claim = claim_at(f.scheduler, job.id, kT + 11);
  CHECK(f.scheduler.fail(claim, "second", at(kT + 12)));
  after = stored(f.scheduler, job.id);
  CHECK(after.starts_at == at(kT + 32));
  CHECK(after.attempts == 2);
  CHECK(after.last_error == std::optional<std::string>("second"));

  // Attempt 3, failed at kT + 33: 40 s capped to 25 s.
  claim = claim_at(f.scheduler, job.id, kT + 32);
  CHECK(f.scheduler.fail(claim, "third", at(kT + 33)));
  after = stored(f.scheduler, job.id);
  CHECK(after.starts_at == at(kT + 58));
  CHECK(after.attempts == 3);

  // Attempt 4 is the last: failed for good.
  claim = claim_at(f.scheduler, job.id, kT + 58);
  CHECK(f.scheduler.fail(claim, "fourth and last", at(kT + 60)));
  after = stored(f.scheduler, job.id);
  CHECK(after.failed_at == at(kT + 60));
  CHECK(after.is_failed());
  CHECK(after.attempts == 4);
  CHECK(after.last_error == std::optional<std::string>("fourth and last"));
  CHECK(after.starts_at == at(kT + 58));
  CHECK_FALSE(after.locked_at.has_value());
  CHECK_FALSE(after.lease_until.has_value());
  CHECK_FALSE(after.completed_at.has_value());
  CHECK_FALSE(after.is_pending(at(kT + 60)));
  CHECK_FALSE(after.is_expired(at(kT + 60)));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 60)) == 0);
  CHECK_FALSE(f.scheduler.next_job(at(kT + 60)).has_value());
  CHECK_FALSE(f.scheduler.seconds_until_next_job(at(kT + 60)).has_value());
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 1e6)).has_value());
  CHECK(f.scheduler.delete_expired_jobs(at(kT + 1e6)) == 0);
  CHECK(f.scheduler.delete_completed_jobs() == 0);
  const std::vector<Job> failed = f.scheduler.failed_jobs();
  REQUIRE(failed.size() == 1);
  CHECK(failed[0] == after);
  // Failing or completing with the spent claim changes nothing.
  CHECK_FALSE(f.scheduler.fail(claim, "late", at(kT + 61)));
  CHECK_FALSE(f.scheduler.complete(claim, at(kT + 61)));
  CHECK(stored(f.scheduler, job.id) == after);
}

TEST_CASE("failing uses the scheduler's clock when no time is given") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{60});
  REQUIRE(claimed.has_value());
  f.clock.set(kT + 7.5);
  CHECK(f.scheduler.fail(claimed->claim, "oops"));
  CHECK(stored(f.scheduler, job.id).starts_at == at(kT + 17.5));
}

TEST_CASE("a failure reported after the lease ran out, before any new claim, still counts") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const Claim claim = claim_at(f.scheduler, job.id, kT);  // lease until kT + 60
  CHECK(f.scheduler.fail(claim, "slow", at(kT + 100)));
  const Job after = stored(f.scheduler, job.id);
  CHECK(after.starts_at == at(kT + 110));
  CHECK(after.attempts == 1);
  CHECK(after.last_error == std::optional<std::string>("slow"));
}

TEST_CASE("a job's own max_attempts and backoffs win over the retry policy") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));

  SECTION("fewer attempts and shorter backoffs") {
    JobOptions options = starting(kT - 1);
    options.max_attempts = 2;
    options.initial_backoff = Seconds{3};
    options.max_backoff = Seconds{5};
    const Job job = f.scheduler.add_job("j", options);
    CHECK(job.max_attempts == std::optional<int>(2));
    CHECK(job.initial_backoff == std::optional<Seconds>(Seconds{3}));
    CHECK(job.max_backoff == std::optional<Seconds>(Seconds{5}));
    CHECK(stored(f.scheduler, job.id) == job);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{3});
    CHECK(stored(f.scheduler, job.id).attempts == 2);
    CHECK(stored(f.scheduler, job.id).last_error == std::optional<std::string>("attempt 2"));
  }
  SECTION("more attempts, with the policy's backoffs") {
    JobOptions options = starting(kT - 1);
    options.max_attempts = 6;
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{10, 20, 25, 25, 25});
    CHECK(stored(f.scheduler, job.id).attempts == 6);
  }
  SECTION("a longer first backoff and a higher cap") {
    JobOptions options = starting(kT - 1);
    options.initial_backoff = Seconds{30};
    options.max_backoff = Seconds{100};
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{30, 60, 100});
    CHECK(stored(f.scheduler, job.id).attempts == 4);
  }
  SECTION("only a first backoff: the policy's cap still applies") {
    JobOptions options = starting(kT - 1);
    options.initial_backoff = Seconds{1};
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{1, 2, 4});
  }
  SECTION("only a cap") {
    JobOptions options = starting(kT - 1);
    options.max_backoff = Seconds{12};
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{10, 12, 12});
  }
  SECTION("a zero cap retries at once") {
    JobOptions options = starting(kT - 1);
    options.max_backoff = Seconds{0};
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id) == std::vector<double>{0, 0, 0});
  }
  SECTION("a single attempt fails for good at once") {
    JobOptions options = starting(kT - 1);
    options.max_attempts = 1;
    const Job job = f.scheduler.add_job("j", options);
    CHECK(backoffs_until_failed(f.scheduler, job.id).empty());
    CHECK(stored(f.scheduler, job.id).failed_at == at(kT + 1));
  }
}

TEST_CASE("jobs without overrides follow whichever policy their scheduler has") {
  // The policy is the scheduler's, not the job's: a file opened with another policy retries
  // the same job differently.
  TempFile file("retries-policy");
  PinnedClock clock;
  jobsched::Options first = clock.options();
  first.retry = policy_4_10_2_25();
  auto one = Scheduler::open(file.path(), first);
  const Job job = one.add_job("j", starting(kT - 1));
  CHECK(backoffs_until_failed(one, job.id, 1) == std::vector<double>{10});

  jobsched::Options second = first;
  second.retry.initial_backoff = Seconds{3};
  second.retry.multiplier = 3;
  second.retry.max_backoff = Seconds{1000};
  auto two = Scheduler::open(file.path(), second);
  CHECK(backoffs_until_failed(two, job.id, 1) == std::vector<double>{9});
}

TEST_CASE("with jitter one half, each retry waits between half the backoff and all of it") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), [] {
    RetryPolicy policy;
    policy.max_attempts = 1000;
    policy.initial_backoff = Seconds{10};
    policy.multiplier = 1.0;  // the backoff stays 10 s
    policy.max_backoff = Seconds{10};
    policy.jitter = 0.5;
    return policy;
  }());
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const std::vector<double> delays = backoffs_until_failed(f.scheduler, job.id, 300);
  REQUIRE(delays.size() == 300);
  std::set<double> distinct;
  double lowest = 10;
  double highest = 5;
  for (const double delay : delays) {
    // The times are around 1.7e9 s, so a subtraction is exact to a few hundred nanoseconds.
    CHECK(delay >= 5.0 - 1e-6);
    CHECK(delay <= 10.0 + 1e-6);
    distinct.insert(delay);
    lowest = std::min(lowest, delay);
    highest = std::max(highest, delay);
  }
  INFO("lowest " << lowest << ", highest " << highest << ", " << distinct.size() << " distinct");
  CHECK(distinct.size() > 100);
  CHECK(lowest < 6.0);   // 300 uniform draws: all above 6 s has probability 0.8^300
  CHECK(highest > 9.0);  // likewise
}

TEST_CASE("with jitter one half and doubling, each delay lies within its own backoff's range") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), [] {
    RetryPolicy policy;
    policy.max_attempts = 9;
    policy.initial_backoff = Seconds{4};
    policy.multiplier = 2.0;
    policy.max_backoff = Seconds{300};
    policy.jitter = 0.5;
    return policy;
  }());
  for (int round = 0; round < 20; ++round) {
    const Job job = f.scheduler.add_job("j", starting(kT - 1));
    const std::vector<double> delays = backoffs_until_failed(f.scheduler, job.id);
    REQUIRE(delays.size() == 8);
    const double expected[] = {4, 8, 16, 32, 64, 128, 256, 300};
    for (std::size_t i = 0; i < delays.size(); ++i) {
      INFO("round " << round << ", retry " << i + 1 << ", backoff " << expected[i]);
      CHECK(delays[i] >= expected[i] * 0.5 - 1e-6);
      CHECK(delays[i] <= expected[i] + 1e-6);
    }
  }
}

TEST_CASE("a retry never lands after the job's expiry: the job expires instead") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job soon = f.scheduler.add_job("expires soon", starting(kT - 1, kT + 5));
  const Job roomy = f.scheduler.add_job("expires later", starting(kT - 1, kT + 100));

  CHECK(f.scheduler.fail(claim_at(f.scheduler, soon.id, kT), "e", at(kT + 1)));
  CHECK(f.scheduler.fail(claim_at(f.scheduler, roomy.id, kT), "e", at(kT + 1)));
  const Job capped = stored(f.scheduler, soon.id);
  CHECK(capped.starts_at == at(kT + 5));  // not kT + 11
  CHECK(capped.expires_at == at(kT + 5));
  CHECK_FALSE(capped.is_failed());
  CHECK(stored(f.scheduler, roomy.id).starts_at == at(kT + 11));

  CHECK(f.scheduler.count_pending_jobs(at(kT + 4.5)) == 2);
  CHECK(f.scheduler.count_pending_jobs(at(kT + 5)) == 1);
  CHECK(capped.is_expired(at(kT + 5)));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 5)).has_value());
  CHECK(f.scheduler.claim_next_job(Seconds{60}, at(kT + 11))->job.id == roomy.id);
  CHECK(f.scheduler.failed_jobs().empty());
  CHECK(f.scheduler.delete_expired_jobs(at(kT + 11)) == 1);
  CHECK_FALSE(f.scheduler.get_job(soon.id).has_value());
}

TEST_CASE("a failure after the job's expiry leaves it expired, not failed") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1, kT + 5));
  const Claim claim = claim_at(f.scheduler, job.id, kT);
  CHECK(f.scheduler.fail(claim, "too late anyway", at(kT + 8)));
  const Job after = stored(f.scheduler, job.id);
  CHECK(after.starts_at == at(kT + 5));
  CHECK_FALSE(after.is_failed());
  CHECK(after.is_expired(at(kT + 8)));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 8)) == 0);
  CHECK(f.scheduler.failed_jobs().empty());
}

TEST_CASE("retry_job brings a failed job back due now, attempts reset, last error kept") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions once = starting(kT - 1);
  once.max_attempts = 1;
  const Job job = f.scheduler.add_job("j", once);
  REQUIRE(f.scheduler.fail(claim_at(f.scheduler, job.id, kT), "broken", at(kT + 1)));
  REQUIRE(stored(f.scheduler, job.id).is_failed());

  f.clock.set(kT + 100);
  CHECK(f.scheduler.retry_job(job.id));
  const Job back = stored(f.scheduler, job.id);
  CHECK_FALSE(back.is_failed());
  CHECK(back.attempts == 0);
  CHECK(back.starts_at == at(kT + 100));
  CHECK(back.last_error == std::optional<std::string>("broken"));
  CHECK(back.is_pending(at(kT + 100)));
  CHECK(f.scheduler.count_pending_jobs() == 1);
  CHECK(f.scheduler.failed_jobs().empty());
  CHECK(f.scheduler.next_job()->id == job.id);
  CHECK(f.scheduler.seconds_until_next_job()->delay == Seconds{0});

  const auto again = f.scheduler.claim_next_job(Seconds{60});
  REQUIRE(again.has_value());
  CHECK(again->job.id == job.id);
  CHECK(again->job.attempts == 1);
  CHECK(again->job.last_error == std::optional<std::string>("broken"));
  CHECK(f.scheduler.complete(again->claim));
  CHECK(stored(f.scheduler, job.id).completed_at == at(kT + 100));
}

TEST_CASE("retry_job at an explicit time makes the job due at that time") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions once = starting(kT - 1);
  once.max_attempts = 1;
  const Job job = f.scheduler.add_job("j", once);
  REQUIRE(f.scheduler.fail(claim_at(f.scheduler, job.id, kT), "broken", at(kT + 1)));
  CHECK(f.scheduler.retry_job(job.id, at(kT + 500)));
  CHECK(stored(f.scheduler, job.id).starts_at == at(kT + 500));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 499)).has_value());
  CHECK(f.scheduler.claim_next_job(Seconds{60}, at(kT + 500))->job.id == job.id);
}

TEST_CASE("retry_job of a failed job whose expiry passed leaves it expired") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions once = starting(kT - 1, kT + 50);
  once.max_attempts = 1;
  const Job job = f.scheduler.add_job("j", once);
  REQUIRE(f.scheduler.fail(claim_at(f.scheduler, job.id, kT), "broken", at(kT + 1)));
  CHECK(f.scheduler.retry_job(job.id, at(kT + 100)));
  const Job back = stored(f.scheduler, job.id);
  CHECK_FALSE(back.is_failed());
  CHECK(back.starts_at == at(kT + 50));
  CHECK(back.is_expired(at(kT + 100)));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 100)) == 0);
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 100)).has_value());
}

TEST_CASE("retry_job is false, changing nothing, for a job that is not failed") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job pending = f.scheduler.add_job("pending", starting(kT + 50));
  const Job done = f.scheduler.add_job("done", starting(kT - 1));
  REQUIRE(f.scheduler.complete_job(done.id, at(kT)));
  const Job held = f.scheduler.add_job("held", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{60})->job.id == held.id);
  const Job retried = f.scheduler.add_job("retried", starting(kT - 1));
  REQUIRE(f.scheduler.fail(claim_at(f.scheduler, retried.id, kT), "once", at(kT + 1)));
  const Job expired = f.scheduler.add_job("expired", starting(kT - 10, kT - 5));

  const std::int64_t changes = f.changes();
  for (const Job& job : {pending, done, held, retried, expired}) {
    INFO("job " << job.data.bytes());
    const Job before = stored(f.scheduler, job.id);
    CHECK_FALSE(f.scheduler.retry_job(job.id, at(kT + 2)));
    CHECK(stored(f.scheduler, job.id) == before);
  }
  CHECK_FALSE(f.scheduler.retry_job(9999, at(kT + 2)));
  CHECK(f.changes() == changes);
}

TEST_CASE("delete_failed_jobs deletes only the failed jobs and says how many went") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions once = starting(kT - 3);
  once.max_attempts = 1;
  std::vector<std::int64_t> failed_ids;
  for (int i = 0; i < 3; ++i) {
    const Job job = f.scheduler.add_job("failed " + std::to_string(i), once);
    REQUIRE(f.scheduler.fail(claim_at(f.scheduler, job.id, kT), "x", at(kT + 1)));
    failed_ids.push_back(job.id);
  }
  const Job done = f.scheduler.add_job("done", starting(kT - 1));
  REQUIRE(f.scheduler.complete_job(done.id, at(kT)));
  const Job pending = f.scheduler.add_job("pending", starting(kT + 50));
  const Job expired = f.scheduler.add_job("expired", starting(kT - 10, kT - 5));
  const Job held = f.scheduler.add_job("held", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{60})->job.id == held.id);
  const Job retrying = f.scheduler.add_job("retrying", starting(kT - 1));
  REQUIRE(f.scheduler.fail(claim_at(f.scheduler, retrying.id, kT), "once", at(kT + 1)));
  REQUIRE(f.scheduler.failed_jobs().size() == 3);

  CHECK(f.scheduler.delete_failed_jobs() == 3);
  for (const std::int64_t id : failed_ids)
    CHECK_FALSE(f.scheduler.get_job(id).has_value());
  for (const Job& job : {done, pending, expired, held, retrying}) {
    INFO("job " << job.data.bytes());
    CHECK(f.scheduler.get_job(job.id).has_value());
  }
  CHECK(query_int(f.scheduler.handle(), "SELECT count(*) FROM job") == 5);
  CHECK(f.scheduler.failed_jobs().empty());
  CHECK(f.scheduler.delete_failed_jobs() == 0);
}

TEST_CASE("failed_jobs lists jobs in the order they failed, ties by id") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions once = starting(kT - 1);
  once.max_attempts = 1;
  std::vector<Claim> claims;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(f.scheduler.add_job(std::to_string(i), once).id);
    claims.push_back(claim_at(f.scheduler, ids.back(), kT));
  }
  CHECK(f.scheduler.failed_jobs().empty());
  // Fail them as 3, 1, 4 (all at kT + 2), 0, 2.
  REQUIRE(f.scheduler.fail(claims[3], "c", at(kT + 1)));
  REQUIRE(f.scheduler.fail(claims[4], "d", at(kT + 2)));
  REQUIRE(f.scheduler.fail(claims[1], "d", at(kT + 2)));
  REQUIRE(f.scheduler.fail(claims[0], "e", at(kT + 3)));
  REQUIRE(f.scheduler.fail(claims[2], "f", at(kT + 4)));
  std::vector<std::int64_t> listed;
  for (const Job& job : f.scheduler.failed_jobs()) {
    CHECK(job.is_failed());
    listed.push_back(job.id);
  }
  CHECK(listed == std::vector<std::int64_t>{ids[3], ids[1], ids[4], ids[0], ids[2]});
  CHECK(f.scheduler.failed_jobs()[0].failed_at == at(kT + 1));
  CHECK(f.scheduler.failed_jobs()[4].failed_at == at(kT + 4));
}

TEST_CASE("a retry policy that cannot work is refused by open, naming the setting") {
  struct Bad {
    const char* what;
    RetryPolicy policy;
    const char* field;
    const char* shown;
  };
  auto with = [](auto change) {
    RetryPolicy policy;
    change(policy);
    return policy;
  };
  const Bad bad = GENERATE_COPY(
      Bad{"no attempt", with([](RetryPolicy& p) { p.max_attempts = 0; }), "max_attempts", "0"},
      Bad{"negative attempts", with([](RetryPolicy& p) { p.max_attempts = -2; }), "max_attempts",
          "-2"},
      Bad{"shrinking", with([](RetryPolicy& p) { p.multiplier = 0.5; }), "multiplier", "0.5"},
      Bad{"NaN multiplier",
          with([](RetryPolicy& p) { p.multiplier = std::numeric_limits<double>::quiet_NaN(); }),
          "multiplier", "nan"},
      Bad{"infinite multiplier",
          with([](RetryPolicy& p) { p.multiplier = std::numeric_limits<double>::infinity(); }),
          "multiplier", "inf"},
      Bad{"jitter above 1", with([](RetryPolicy& p) { p.jitter = 1.5; }), "jitter", "1.5"},
      Bad{"negative jitter", with([](RetryPolicy& p) { p.jitter = -0.1; }), "jitter", "-0.1"},
      Bad{"NaN jitter",
          with([](RetryPolicy& p) { p.jitter = std::numeric_limits<double>::quiet_NaN(); }),
          "jitter", "nan"},
      Bad{"negative backoff", with([](RetryPolicy& p) { p.initial_backoff = Seconds{-1}; }),
          "initial_backoff", "-1"},
      Bad{"infinite backoff", with([](RetryPolicy& p) {
            p.initial_backoff = Seconds{std::numeric_limits<double>::infinity()};
          }),
          "initial_backoff", "inf"},
      Bad{"negative cap", with([](RetryPolicy& p) { p.max_backoff = Seconds{-3}; }), "max_backoff",
          "-3"});
  INFO(bad.what);
  TempFile file("retries-bad-policy");
  jobsched::Options options;
  options.retry = bad.policy;
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  const auto error = thrown<jobsched::InvalidArgumentError>(
      [&] { Scheduler::open(where == "file" ? file.path() : ":memory:", options); });
  REQUIRE(error.has_value());
  CHECK(contains(*error, bad.field));
  CHECK(contains(*error, std::string("got ") + bad.shown));
  // Refused before anything was opened: no file was created.
  CHECK(::access(file.path().c_str(), F_OK) != 0);
}

TEST_CASE("the edges of a valid retry policy are accepted") {
  RetryPolicy policy;
  policy.max_attempts = 1;
  policy.multiplier = 1.0;
  policy.jitter = GENERATE(0.0, 1.0);
  policy.initial_backoff = Seconds{0};
  policy.max_backoff = Seconds{0};
  jobsched::Options options;
  options.retry = policy;
  auto scheduler = Scheduler::open(":memory:", options);
  const Job job = scheduler.add_job("j", starting(kT - 1));
  const auto claimed = scheduler.claim_next_job(Seconds{1}, at(kT));
  REQUIRE(claimed.has_value());
  CHECK(scheduler.fail(claimed->claim, "only", at(kT + 0.5)));
  CHECK(scheduler.get_job(job.id)->failed_at == at(kT + 0.5));
}

TEST_CASE("a job whose retry settings cannot work is refused by add_job, storing nothing") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  struct Bad {
    const char* field;
    std::optional<int> max_attempts;
    std::optional<double> initial_backoff;
    std::optional<double> max_backoff;
    const char* shown;
  };
  const Bad bad = GENERATE(Bad{"max_attempts", 0, std::nullopt, std::nullopt, "got 0"},
                           Bad{"max_attempts", -1, std::nullopt, std::nullopt, "got -1"},
                           Bad{"initial_backoff", std::nullopt, -2.0, std::nullopt, "got -2 s"},
                           Bad{"initial_backoff", std::nullopt,
                               std::numeric_limits<double>::quiet_NaN(), std::nullopt, "got nan s"},
                           Bad{"max_backoff", std::nullopt, std::nullopt,
                               -std::numeric_limits<double>::infinity(), "got -inf s"});
  INFO(bad.field << " " << bad.shown);
  const Job existing = f.scheduler.add_job("existing", starting(kT - 1));
  const std::int64_t changes = f.changes();

  JobOptions options = starting(kT - 1);
  options.max_attempts = bad.max_attempts;
  if (bad.initial_backoff)
    options.initial_backoff = Seconds{*bad.initial_backoff};
  if (bad.max_backoff)
    options.max_backoff = Seconds{*bad.max_backoff};
  const auto error =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.add_job("bad", options); });
  REQUIRE(error.has_value());
  CHECK(contains(*error, bad.field));
  CHECK(contains(*error, bad.shown));
  CHECK(f.changes() == changes);
  CHECK(query_int(f.scheduler.handle(), "SELECT count(*) FROM job") == 1);
  CHECK(query_int(f.scheduler.handle(), "SELECT max(id) FROM job") == existing.id);
  CHECK(f.scheduler.count_pending_jobs() == 1);
}

TEST_CASE("a zero backoff stays zero however large the multiplier", "[retries]") {
  // RetryPolicy::backoff computes initial * pow(multiplier, attempts - 1): with initial 0
  // and a pow that overflows to infinity, that is 0 * inf = NaN, which std::min does not
  // cap. fail() then binds NaN as starts_at, which SQLite stores as NULL, and the NOT NULL
  // constraint throws. The policy itself is valid (initial 0, multiplier finite and >= 1).
  RetryPolicy policy;
  policy.max_attempts = 5;
  policy.initial_backoff = Seconds{0};
  policy.multiplier = 1e200;
  policy.max_backoff = Seconds{60};
  policy.jitter = 0.0;
  CHECK(policy.backoff(3, Seconds{0}, Seconds{60}) == Seconds{0});
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), policy);
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  std::vector<double> delays;
  CHECK_NOTHROW(delays = backoffs_until_failed(f.scheduler, job.id));
  CHECK(delays == std::vector<double>{0, 0, 0, 0});
}

}  // namespace test_retries
