// SPDX-License-Identifier: MIT
// A job's state is one function of its row and `now`, the same in every call. The case that
// needs care: a job whose lease ran out on its last attempt failed at that lease's end,
// whether or not a write has marked its row yet, and whichever call meets it first. And the
// next job is the same job whichever call names it: next_job, seconds_until_next_job with or
// without queues, even when leases ran out or were moved back.

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_job_state {

using jobsched::Claim;
using jobsched::Job;
using jobsched::JobDelay;
using jobsched::JobOptions;
using jobsched::RetryPolicy;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::exec_raw;
using jobsched_test::query_int;
using jobsched_test::starting;
using jobsched_test::stored;

namespace {

constexpr double kT = jobsched_test::pinned_now;

RetryPolicy attempts(int max_attempts) {
  RetryPolicy policy;
  policy.max_attempts = max_attempts;
  policy.initial_backoff = Seconds{10};
  policy.jitter = 0.0;
  return policy;
}

struct Fixture : jobsched_test::SchedulerFixture {
  explicit Fixture(const std::string& where, int max_attempts = 1)
      : SchedulerFixture("job-state", where, attempts(max_attempts)) {}

  /// The raw row's failed_at, or -1 when it is NULL: what a write has marked.
  double marked_failed_at(std::int64_t id) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(scheduler.handle(),
                               "SELECT coalesce(failed_at, -1) FROM job WHERE id = ?", -1, &stmt,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, id);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const double value = sqlite3_column_double(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
  }
};

/// The failed job as every call must show it: failed at kT + 30, its lease gone.
void check_failed_at_lease_end(const Job& job) {
  CHECK(job.is_failed());
  CHECK(job.failed_at == at(kT + 30));
  CHECK_FALSE(job.is_completed());
  CHECK_FALSE(job.locked_at.has_value());
  CHECK_FALSE(job.lease_until.has_value());
  CHECK(job.attempts == 1);
  REQUIRE(job.last_error.has_value());
  CHECK(*job.last_error == "the lease of attempt 1 ran out");
  CHECK_FALSE(job.is_pending(at(kT + 100)));
  CHECK_FALSE(job.is_expired(at(kT + 100)));
}

}  // namespace

TEST_CASE("a job whose lease ran out on its last attempt failed at that lease end, in every call") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  // Expires after its lease ran out: it failed first, so it never expires.
  const Job job = f.scheduler.add_job("j", starting(kT - 1, kT + 50));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claimed.has_value());
  Claim claim = claimed->claim;
  const auto later = at(kT + 100);

  // Just before the end, it is held; at the end, it failed.
  const Job held = *f.scheduler.get_job(job.id, at(kT + 29.5));
  CHECK_FALSE(held.is_failed());
  CHECK(held.lease_until == at(kT + 30));
  check_failed_at_lease_end(*f.scheduler.get_job(job.id, at(kT + 30)));

  // Unmarked, every read agrees.
  REQUIRE(f.marked_failed_at(job.id) == -1);
  const Job shown = *f.scheduler.get_job(job.id, later);
  check_failed_at_lease_end(shown);
  CHECK(f.scheduler.count_pending_jobs(later) == 0);
  CHECK_FALSE(f.scheduler.next_job(later).has_value());
  CHECK_FALSE(f.scheduler.seconds_until_next_job(later).has_value());
  CHECK_FALSE(f.scheduler.seconds_until_next_job({""}, later).has_value());
  const std::vector<Job> listed = f.scheduler.failed_jobs(later);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0] == shown);
  CHECK(f.scheduler.failed_jobs(at(kT + 29)).empty());

  // Its claim is stale: nothing that would revive or settle it changes the row.
  const std::int64_t changes = f.changes();
  CHECK_FALSE(f.scheduler.complete(claim, later));
  CHECK_FALSE(f.scheduler.extend(claim, Seconds{60}, later));
  CHECK_FALSE(f.scheduler.release(claim, later));
  CHECK_FALSE(f.scheduler.fail(claim, "late", later));
  CHECK_FALSE(f.scheduler.lock_job(job.id, later));
  CHECK(f.scheduler.delete_expired_jobs(later) == 0);
  CHECK(f.changes() == changes);
  CHECK(claim == claimed->claim);

  // Whichever write marks it, it is marked failed at the lease end, not at that call's time,
  // and it reads the same as before.
  const std::string marker =
      GENERATE(as<std::string>{}, "claim", "unlock_job", "retry_job of another", "failed_jobs");
  INFO("marked by " << marker);
  const double when = kT + 5000;
  if (marker == "claim") {
    CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(when)).has_value());
  } else if (marker == "unlock_job") {
    CHECK(f.scheduler.unlock_job(job.id, at(when)));
  } else if (marker == "retry_job of another") {
    CHECK_FALSE(f.scheduler.retry_job(job.id + 1, at(when)));
  } else {
    CHECK(f.scheduler.failed_jobs(at(when)).size() == 1);  // a read: marks nothing
  }
  if (marker != "failed_jobs")
    CHECK(f.marked_failed_at(job.id) == kT + 30);
  CHECK(*f.scheduler.get_job(job.id, at(when)) == shown);
  CHECK(*f.scheduler.get_job(job.id, later) == shown);
  CHECK(f.scheduler.failed_jobs(at(when)) == listed);
  CHECK(f.scheduler.delete_expired_jobs(at(when)) == 0);
}

TEST_CASE("a job that expired before its last lease ran out is expired, never failed") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  // Expiry at or before the lease end: the job expired first (at the same instant, too).
  const double expires = GENERATE(kT + 20, kT + 30);
  INFO("expires at kT + " << expires - kT << ", the lease ends at kT + 30");
  const Job job = f.scheduler.add_job("j", starting(kT - 1, expires));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}, at(kT)).has_value());
  const auto later = at(kT + 100);

  const Job shown = *f.scheduler.get_job(job.id, later);
  CHECK_FALSE(shown.is_failed());
  CHECK(shown.is_expired(later));
  CHECK(f.scheduler.failed_jobs(later).empty());
  CHECK(f.scheduler.count_pending_jobs(later) == 0);
  // A claim marks abandoned jobs; this one is not abandoned.
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, later).has_value());
  CHECK(f.marked_failed_at(job.id) == -1);
  CHECK(f.scheduler.delete_expired_jobs(later) == 1);
}

TEST_CASE("complete_job completes a job whatever its state, a failed one included") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}, at(kT)).has_value());
  const bool marked = GENERATE(false, true);
  INFO((marked ? "failed, marked" : "failed, not marked"));
  if (marked)
    REQUIRE_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 40)).has_value());
  REQUIRE(f.scheduler.get_job(job.id, at(kT + 50))->is_failed());

  CHECK(f.scheduler.complete_job(job.id, at(kT + 50)));
  const Job completed = *f.scheduler.get_job(job.id, at(kT + 60));
  CHECK(completed.is_completed());
  CHECK(completed.completed_at == at(kT + 50));
  CHECK_FALSE(completed.is_failed());
  CHECK(f.scheduler.failed_jobs(at(kT + 60)).empty());
}

TEST_CASE("a lease that runs out with attempts left frees the job, its claim may still settle") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), 3);
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claimed.has_value());
  const Job shown = *f.scheduler.get_job(job.id, at(kT + 100));
  CHECK_FALSE(shown.is_failed());
  CHECK(shown.lease_until == at(kT + 30));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 100)) == 1);
  CHECK(f.scheduler.next_job(at(kT + 100))->id == job.id);
  // Nobody claimed it again, so the late completion is the truth.
  CHECK(f.scheduler.complete(claimed->claim, at(kT + 100)));
  CHECK(f.scheduler.get_job(job.id, at(kT + 100))->completed_at == at(kT + 100));
}

// ---- The next job, whichever call names it ---------------------------------------------------

TEST_CASE("both forms of seconds_until_next_job name next_job's job when a lease ran out") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), 5);
  const bool two_queues = GENERATE(false, true);
  INFO((two_queues ? "in queues a and b" : "both in the default queue"));
  JobOptions first = starting(kT - 10);
  JobOptions second = starting(kT - 8);
  if (two_queues) {
    first.queue = "a";
    second.queue = "b";
  }
  const Job a = f.scheduler.add_job("a", first);
  const auto claimed = f.scheduler.claim_next_job(Seconds{5}, at(kT - 10));
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == a.id);
  const Job b = f.scheduler.add_job("b", second);

  // At kT, a's lease (to kT - 5) ran out: a is free again and starts before b.
  const auto now = at(kT);
  REQUIRE(f.scheduler.next_job(now)->id == a.id);
  const std::vector<std::string> queues =
      two_queues ? std::vector<std::string>{"b", "a"} : std::vector<std::string>{""};
  CHECK(f.scheduler.seconds_until_next_job(now) == (JobDelay{a.id, Seconds{0}}));
  CHECK(f.scheduler.seconds_until_next_job(queues, now) == (JobDelay{a.id, Seconds{0}}));
  if (two_queues) {
    CHECK(f.scheduler.seconds_until_next_job({"b"}, now) == (JobDelay{b.id, Seconds{0}}));
    CHECK(f.scheduler.seconds_until_next_job({"a"}, now) == (JobDelay{a.id, Seconds{0}}));
  }
}

TEST_CASE("a lease moved back before its job's start does not hide an earlier lease end") {
  // Leases come from the lease index in order of their end. `late` holds a lease that ends
  // first but, moved back before its start (by a program that shortened it), frees its job
  // only at its start; `early` is freed at its own lease end, earlier. A worker asking must
  // wake for `early`.
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), 5);
  const Job early = f.scheduler.add_job("early", starting(kT));
  REQUIRE(f.scheduler.claim_next_job(Seconds{300}, at(kT))->job.id == early.id);
  const Job late = f.scheduler.add_job("late", starting(kT + 50));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 50))->job.id == late.id);
  // early's lease now ends at kT + 30; late's at kT + 10, before its start.
  exec_raw(f.scheduler.handle(), "UPDATE job SET lease_until = " + std::to_string(kT + 30) +
                                     " WHERE id = " + std::to_string(early.id) +
                                     "; UPDATE job SET lease_until = " + std::to_string(kT + 10) +
                                     " WHERE id = " + std::to_string(late.id));

  const auto now = at(kT + 5);
  CHECK(f.scheduler.seconds_until_next_job(now) == (JobDelay{early.id, Seconds{25}}));
  CHECK(f.scheduler.seconds_until_next_job({""}, now) == (JobDelay{early.id, Seconds{25}}));
  // Once early's lease ends it is free and due; late waits for its start.
  CHECK(f.scheduler.next_job(at(kT + 30))->id == early.id);
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 40)) == (JobDelay{early.id, Seconds{0}}));
}

TEST_CASE("next_job and both forms of seconds_until_next_job agree in any mix of states") {
  // Random schedules of free, due, held, lapsed, locked, completed and expired jobs in one
  // queue: whenever a job is due, all three name next_job's; otherwise both forms name the
  // same job with the same delay, which never passes the next start.
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  std::mt19937_64 random(GENERATE(1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u));
  Fixture f(where, 3);
  auto uniform = [&](double low, double high) {
    return std::uniform_real_distribution<double>(low, high)(random);
  };
  for (int i = 0; i < 40; ++i) {
    JobOptions options = starting(kT + std::floor(uniform(-100, 100)));
    if (uniform(0, 1) < 0.2)
      options.expires_at = *options.starts_at + Seconds{std::floor(uniform(0, 150))};
    const Job job = f.scheduler.add_job("j", options);
    const double roll = uniform(0, 1);
    if (roll < 0.1) {
      f.scheduler.complete_job(job.id, at(kT - 200));
    } else if (roll < 0.2) {
      f.scheduler.lock_job(job.id, at(kT - 200));
    }
  }
  // Claims at times before kT, with leases that end before or after it.
  for (int i = 0; i < 25; ++i) {
    const double when = kT + std::floor(uniform(-100, 60));
    const auto claimed = f.scheduler.claim_next_job(Seconds{std::floor(uniform(1, 120))}, at(when));
    if (claimed && uniform(0, 1) < 0.3) {
      Claim claim = claimed->claim;
      f.scheduler.extend(claim, Seconds{std::floor(uniform(1, 120))}, at(when + 1));
    }
  }
  for (int probe = 0; probe < 30; ++probe) {
    const auto now = at(kT + std::floor(uniform(-120, 200)));
    INFO("now = kT + " << jobsched::to_unix_seconds(now) - kT);
    const std::optional<Job> next = f.scheduler.next_job(now);
    const std::optional<JobDelay> plain = f.scheduler.seconds_until_next_job(now);
    const std::optional<JobDelay> filtered = f.scheduler.seconds_until_next_job({""}, now);
    CHECK(plain == filtered);
    if (next && next->starts_at <= now) {
      REQUIRE(plain.has_value());
      CHECK(plain->id == next->id);
      CHECK(plain->delay == Seconds{0});
    }
    if (next && plain)
      CHECK(plain->delay <= std::max(Seconds{0}, next->starts_at - now));
    if (plain)
      CHECK(plain->delay >= Seconds{0});
  }
}

TEST_CASE("a job that used its attempts and holds no lease is never taken for abandoned") {
  // "Abandoned" must be true or false, never NULL: with no lease it is false. Found by the
  // fuzzer: a last attempt's claim ended by unlock_job left lease_until NULL, NOT (NULL) is
  // NULL, and delete_expired_jobs kept the expired job.
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1, kT + 10));
  REQUIRE(f.scheduler.claim_next_job(Seconds{5}, at(kT)).has_value());
  REQUIRE(f.scheduler.unlock_job(job.id, at(kT + 1)));
  const bool locked_again = GENERATE(false, true);
  INFO((locked_again ? "locked again" : "left unlocked"));
  if (locked_again)
    REQUIRE(f.scheduler.lock_job(job.id, at(kT + 2)));
  const auto later = at(kT + 20);
  CHECK(f.scheduler.get_job(job.id, later)->is_expired(later));
  CHECK(f.scheduler.count_pending_jobs(later) == 0);
  CHECK(f.scheduler.failed_jobs(later).empty());
  CHECK(f.scheduler.delete_expired_jobs(later) == 1);
  CHECK_FALSE(f.scheduler.get_job(job.id, later).has_value());
}

}  // namespace test_job_state
