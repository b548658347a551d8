// SPDX-License-Identifier: MIT
// Claims: a due job is leased to one worker at a time under a random token; completing,
// failing, extending or releasing with a stale token changes nothing; a lease that runs out
// counts as an attempt; the successor's locks are claims that never run out. Checked with a
// pinned clock on a real file and in memory, across threads and processes, and on files
// migrated from the Python programs' version 2 and from our version 3.

#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/python_files.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_claims {

using jobsched::Claim;
using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::RetryPolicy;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::PinnedClock;
using jobsched_test::query_int;
using jobsched_test::starting;
using jobsched_test::stored;
using jobsched_test::TempFile;
using jobsched_test::thrown;

namespace {

constexpr double kT = jobsched_test::pinned_now;

RetryPolicy no_jitter(int max_attempts = 10) {
  RetryPolicy policy;
  policy.max_attempts = max_attempts;
  policy.initial_backoff = Seconds{10};
  policy.multiplier = 2.0;
  policy.max_backoff = Seconds{600};
  policy.jitter = 0.0;
  return policy;
}

// A scheduler with a pinned clock at kT, on a real file or in memory.
struct Fixture : jobsched_test::SchedulerFixture {
  explicit Fixture(const std::string& where, const RetryPolicy& retry = no_jitter())
      : SchedulerFixture("claims", where, retry) {}
};

}  // namespace

// ---- Claiming ------------------------------------------------------------------------------

TEST_CASE("claiming takes the due job and leases it from now, as its first attempt") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("work", starting(kT - 5));

  const std::optional<ClaimedJob> claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == job.id);
  CHECK(claimed->job.data.bytes() == "work");
  CHECK(claimed->job.starts_at == at(kT - 5));
  CHECK(claimed->job.locked_at == at(kT));
  CHECK(claimed->job.lease_until == at(kT + 30));
  CHECK(claimed->job.attempts == 1);
  CHECK_FALSE(claimed->job.completed_at.has_value());
  CHECK_FALSE(claimed->job.failed_at.has_value());
  CHECK_FALSE(claimed->job.last_error.has_value());
  CHECK(claimed->claim.job_id == job.id);
  CHECK(claimed->claim.lease_until == at(kT + 30));
  CHECK(claimed->claim.token != 0);
  // The job as returned is the job as stored.
  CHECK(stored(f.scheduler, job.id) == claimed->job);
  CHECK(query_int(f.scheduler.handle(), "SELECT claim_token FROM job WHERE id = " +
                                            std::to_string(job.id)) == claimed->claim.token);
}

TEST_CASE("claiming with an explicit time leases from that time, not from the clock") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("work", starting(kT + 100));
  const auto claimed = f.scheduler.claim_next_job(Seconds{2.5}, at(kT + 200.25));
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == job.id);
  CHECK(claimed->job.locked_at == at(kT + 200.25));
  CHECK(claimed->job.lease_until == at(kT + 202.75));
  CHECK(claimed->claim.lease_until == at(kT + 202.75));
}

TEST_CASE("each claim draws its own token") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  std::set<std::int64_t> tokens;
  for (int i = 0; i < 50; ++i)
    f.scheduler.add_job(std::to_string(i), starting(kT - 100 + i));
  for (int i = 0; i < 50; ++i) {
    const auto claimed = f.scheduler.claim_next_job(Seconds{60});
    REQUIRE(claimed.has_value());
    CHECK(claimed->job.data.bytes() == std::to_string(i));
    tokens.insert(claimed->claim.token);
  }
  CHECK(tokens.size() == 50);
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}).has_value());
}

TEST_CASE("a job that is not yet due is not claimed until its start") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("later", starting(kT + 10));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 9.999)).has_value());
  CHECK(stored(f.scheduler, job.id).attempts == 0);
  CHECK_FALSE(stored(f.scheduler, job.id).locked_at.has_value());

  f.clock.set(kT + 10);
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == job.id);
  CHECK(claimed->job.lease_until == at(kT + 40));
}

TEST_CASE("claiming an empty schedule, or one of completed and expired jobs, gives nothing") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  const Job done = f.scheduler.add_job("done", starting(kT - 10));
  f.scheduler.complete_job(done.id, at(kT - 5));
  const Job expired = f.scheduler.add_job("expired", starting(kT - 10, kT));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  CHECK(stored(f.scheduler, expired.id).attempts == 0);
  CHECK(stored(f.scheduler, done.id).attempts == 0);
}

TEST_CASE("a claimed job is not claimed again while its lease lives, nor next, but pending") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job held = f.scheduler.add_job("held", starting(kT - 10));
  const Job later = f.scheduler.add_job("later", starting(kT + 100));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == held.id);

  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 29.999)).has_value());
  CHECK(f.scheduler.next_job()->id == later.id);
  CHECK(f.scheduler.next_job(at(kT + 29.999))->id == later.id);
  CHECK(f.scheduler.count_pending_jobs() == 2);
  CHECK(f.scheduler.count_pending_jobs(at(kT + 29.999)) == 2);
  CHECK(stored(f.scheduler, held.id).attempts == 1);

  // Once the lease runs out the job is free: next again, and claimable.
  CHECK(f.scheduler.next_job(at(kT + 30))->id == held.id);
  const auto again = f.scheduler.claim_next_job(Seconds{30}, at(kT + 30));
  REQUIRE(again.has_value());
  CHECK(again->job.id == held.id);
  CHECK(again->job.attempts == 2);
}

TEST_CASE("seconds_until_next_job gives a lease's end, or a free job's start if earlier") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job a = f.scheduler.add_job("a", starting(kT - 10));
  REQUIRE(f.scheduler.claim_next_job(Seconds{60})->job.id == a.id);

  // Only the claimed job: it can be claimed again when its lease ends.
  auto delay = f.scheduler.seconds_until_next_job();
  REQUIRE(delay.has_value());
  CHECK(delay->id == a.id);
  CHECK(delay->delay == Seconds{60});
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 45))->delay == Seconds{15});
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 60))->delay == Seconds{0});
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 90))->delay == Seconds{0});
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 90))->id == a.id);

  // A free job that starts before the lease ends comes first.
  const Job b = f.scheduler.add_job("b", starting(kT + 20));
  delay = f.scheduler.seconds_until_next_job();
  REQUIRE(delay.has_value());
  CHECK(delay->id == b.id);
  CHECK(delay->delay == Seconds{20});

  // A free job that starts after the lease ends does not.
  f.scheduler.delete_job(b.id);
  const Job c = f.scheduler.add_job("c", starting(kT + 75));
  delay = f.scheduler.seconds_until_next_job();
  REQUIRE(delay.has_value());
  CHECK(delay->id == a.id);
  CHECK(delay->delay == Seconds{60});

  // Two leases: the earlier end wins.
  f.clock.set(kT + 5);
  f.scheduler.delete_job(c.id);
  const Job d = f.scheduler.add_job("d", starting(kT));
  REQUIRE(f.scheduler.claim_next_job(Seconds{40})->job.id == d.id);  // until kT + 45
  delay = f.scheduler.seconds_until_next_job();
  REQUIRE(delay.has_value());
  CHECK(delay->id == d.id);
  CHECK(delay->delay == Seconds{40});
  // Completing it leaves the other lease.
  REQUIRE(f.scheduler.complete_job(d.id));
  delay = f.scheduler.seconds_until_next_job();
  REQUIRE(delay.has_value());
  CHECK(delay->id == a.id);
  CHECK(delay->delay == Seconds{55});
}

// ---- Completing, failing, extending and releasing ------------------------------------------

TEST_CASE("completing with a live claim completes the job and ends the claim") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());

  CHECK(f.scheduler.complete(claimed->claim, at(kT + 5)));
  const Job done = stored(f.scheduler, job.id);
  CHECK(done.completed_at == at(kT + 5));
  CHECK(done.is_completed());
  CHECK_FALSE(done.locked_at.has_value());
  CHECK_FALSE(done.lease_until.has_value());
  CHECK(done.attempts == 1);
  CHECK_FALSE(done.failed_at.has_value());
  CHECK(f.scheduler.count_pending_jobs(at(kT + 5)) == 0);
  CHECK_FALSE(f.scheduler.seconds_until_next_job(at(kT + 5)).has_value());
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 1000)).has_value());

  // The claim is spent: completing again changes nothing.
  const std::int64_t changes = f.changes();
  CHECK_FALSE(f.scheduler.complete(claimed->claim, at(kT + 6)));
  CHECK(stored(f.scheduler, job.id) == done);
  CHECK(f.changes() == changes);
}

TEST_CASE("completing uses the clock when no time is given") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  f.clock.advance(12.5);
  CHECK(f.scheduler.complete(claimed->claim));
  CHECK(stored(f.scheduler, job.id).completed_at == at(kT + 12.5));
}

TEST_CASE("a stale claim changes nothing once its lease ran out and another claim took it") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto first = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(first.has_value());
  const auto second = f.scheduler.claim_next_job(Seconds{30}, at(kT + 31));
  REQUIRE(second.has_value());
  REQUIRE(second->job.id == job.id);
  CHECK(second->claim.token != first->claim.token);
  CHECK(second->job.attempts == 2);
  CHECK(second->job.lease_until == at(kT + 61));

  const Job before = stored(f.scheduler, job.id);
  const std::int64_t changes = f.changes();
  Claim stale = first->claim;
  const Claim stale_copy = stale;

  SECTION("complete") {
    CHECK_FALSE(f.scheduler.complete(stale, at(kT + 32)));
  }
  SECTION("fail") {
    CHECK_FALSE(f.scheduler.fail(stale, "stale failure", at(kT + 32)));
  }
  SECTION("extend") {
    CHECK_FALSE(f.scheduler.extend(stale, Seconds{600}, at(kT + 32)));
    CHECK(stale == stale_copy);  // the claim is not updated either
  }
  SECTION("release") {
    CHECK_FALSE(f.scheduler.release(stale));
  }
  CHECK(stored(f.scheduler, job.id) == before);
  CHECK(f.changes() == changes);
  CHECK(f.scheduler.count_pending_jobs(at(kT + 32)) == 1);
  // The live claim still works.
  Claim live = second->claim;
  CHECK(f.scheduler.extend(live, Seconds{30}, at(kT + 40)));
  CHECK(live.lease_until == at(kT + 70));
  CHECK(f.scheduler.complete(live, at(kT + 41)));
  CHECK(stored(f.scheduler, job.id).completed_at == at(kT + 41));
}

TEST_CASE("a claim for a job that does not exist, or with a made-up token, is refused") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  const Job before = stored(f.scheduler, job.id);

  Claim forged = claimed->claim;
  forged.token ^= 1;
  Claim elsewhere = claimed->claim;
  elsewhere.job_id = job.id + 1;
  for (Claim* claim : {&forged, &elsewhere}) {
    CHECK_FALSE(f.scheduler.complete(*claim));
    CHECK_FALSE(f.scheduler.fail(*claim, "x"));
    CHECK_FALSE(f.scheduler.extend(*claim, Seconds{100}));
    CHECK_FALSE(f.scheduler.release(*claim));
  }
  CHECK(stored(f.scheduler, job.id) == before);
  CHECK(f.scheduler.complete(claimed->claim));
}

TEST_CASE("a deleted job's claim is stale") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  REQUIRE(f.scheduler.delete_job(job.id));
  CHECK_FALSE(f.scheduler.complete(claimed->claim));
  CHECK_FALSE(f.scheduler.fail(claimed->claim, "gone"));
  CHECK_FALSE(f.scheduler.extend(claimed->claim, Seconds{5}));
  CHECK_FALSE(f.scheduler.release(claimed->claim));
  CHECK_FALSE(f.scheduler.get_job(job.id).has_value());
}

TEST_CASE("a lease that runs out counts as an attempt and is recorded as the last error") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}).has_value());

  const auto second = f.scheduler.claim_next_job(Seconds{30}, at(kT + 30));
  REQUIRE(second.has_value());
  CHECK(second->job.id == job.id);
  CHECK(second->job.attempts == 2);
  REQUIRE(second->job.last_error.has_value());
  CHECK(contains(*second->job.last_error, "lease"));
  CHECK(contains(*second->job.last_error, "1"));
  CHECK(second->job.locked_at == at(kT + 30));
  CHECK(second->job.lease_until == at(kT + 60));
  CHECK(second->job.starts_at == at(kT - 1));  // no backoff moved it

  const auto third = f.scheduler.claim_next_job(Seconds{30}, at(kT + 100));
  REQUIRE(third.has_value());
  CHECK(third->job.attempts == 3);
  REQUIRE(third->job.last_error.has_value());
  CHECK(contains(*third->job.last_error, "lease"));
  CHECK(contains(*third->job.last_error, "2"));
}

TEST_CASE("a job whose lease runs out on its last attempt ends failed, never claimed again") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  const bool own_limit = GENERATE(false, true);
  INFO(where << (own_limit ? ", the job's own max_attempts 2" : ", the policy's max_attempts 2"));
  Fixture f(where, no_jitter(own_limit ? 10 : 2));
  JobOptions options = starting(kT - 1);
  if (own_limit)
    options.max_attempts = 2;
  const Job job = f.scheduler.add_job("j", options);
  const Job other = f.scheduler.add_job("other", starting(kT + 500));

  REQUIRE(f.scheduler.claim_next_job(Seconds{30})->job.attempts == 1);
  const auto last = f.scheduler.claim_next_job(Seconds{30}, at(kT + 30));
  REQUIRE(last.has_value());
  REQUIRE(last->job.attempts == 2);  // the last allowed attempt, until kT + 60

  // The next claim after the lease ran out fails it on the way and finds nothing else due.
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 60)).has_value());
  const Job failed = stored(f.scheduler, job.id);
  CHECK(failed.failed_at == at(kT + 60));
  CHECK(failed.is_failed());
  CHECK(failed.attempts == 2);
  CHECK_FALSE(failed.locked_at.has_value());
  CHECK_FALSE(failed.lease_until.has_value());
  CHECK_FALSE(failed.completed_at.has_value());
  REQUIRE(failed.last_error.has_value());
  CHECK(contains(*failed.last_error, "lease"));
  CHECK(contains(*failed.last_error, "2"));
  CHECK_FALSE(failed.is_pending(at(kT + 60)));
  CHECK_FALSE(failed.is_expired(at(kT + 60)));
  CHECK(f.scheduler.count_pending_jobs(at(kT + 60)) == 1);  // only `other`
  CHECK(f.scheduler.next_job(at(kT + 60))->id == other.id);
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 60))->id == other.id);
  CHECK(f.scheduler.delete_expired_jobs(at(kT + 60)) == 0);

  const std::vector<Job> listed = f.scheduler.failed_jobs();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0] == failed);

  // The stale claim cannot revive it, and no later claim takes it.
  CHECK_FALSE(f.scheduler.complete(last->claim, at(kT + 61)));
  Claim last_claim = last->claim;
  CHECK_FALSE(f.scheduler.extend(last_claim, Seconds{30}, at(kT + 61)));
  const auto later = f.scheduler.claim_next_job(Seconds{30}, at(kT + 10'000));
  REQUIRE(later.has_value());
  CHECK(later->job.id == other.id);
  CHECK(stored(f.scheduler, job.id) == failed);
}

TEST_CASE("a job whose lease ran out on its last attempt is not pending before any claim") {
  // The library marks such jobs failed lazily, at the next write that looks (a claim,
  // failed_jobs, retry_job, delete_failed_jobs); reads treat them as failed already.
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), no_jitter(1));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  const auto after = at(kT + 31);
  CHECK(f.scheduler.count_pending_jobs(after) == 0);
  CHECK_FALSE(f.scheduler.seconds_until_next_job(after).has_value());
  CHECK(f.scheduler.failed_jobs(at(kT + 29)).empty());  // the lease still lived then
  CHECK(f.scheduler.failed_jobs(after).size() == 1);
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, after).has_value());
  CHECK(stored(f.scheduler, job.id).is_failed());
}

TEST_CASE("extending a claim moves its lease end and updates the claim") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  Claim claim = claimed->claim;
  const std::int64_t token = claim.token;

  CHECK(f.scheduler.extend(claim, Seconds{100}, at(kT + 20)));
  CHECK(claim.lease_until == at(kT + 120));
  CHECK(claim.token == token);
  CHECK(claim.job_id == job.id);
  Job now_stored = stored(f.scheduler, job.id);
  CHECK(now_stored.lease_until == at(kT + 120));
  CHECK(now_stored.locked_at == at(kT));  // still the time of the claim
  CHECK(now_stored.attempts == 1);

  // The old end no longer frees it; the new one does.
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 30)).has_value());
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 119.5)).has_value());
  CHECK(f.scheduler.seconds_until_next_job(at(kT + 30))->delay == Seconds{90});

  // Extending from the clock. A shorter lease than the one left never moves it earlier: the
  // claim is told the end that stands.
  f.clock.set(kT + 50);
  CHECK(f.scheduler.extend(claim, Seconds{5}));
  CHECK(claim.lease_until == at(kT + 120));
  CHECK(stored(f.scheduler, job.id).lease_until == at(kT + 120));
  CHECK(f.scheduler.extend(claim, Seconds{80}));
  CHECK(claim.lease_until == at(kT + 130));
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 129)).has_value());
  const auto again = f.scheduler.claim_next_job(Seconds{30}, at(kT + 130));
  REQUIRE(again.has_value());
  CHECK(again->job.attempts == 2);
  CHECK_FALSE(f.scheduler.extend(claim, Seconds{100}, at(kT + 131)));
  CHECK(claim.lease_until == at(kT + 130));
}

TEST_CASE("releasing a claim frees the job at once without counting the attempt") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());

  CHECK(f.scheduler.release(claimed->claim));
  const Job released = stored(f.scheduler, job.id);
  CHECK(released.attempts == 0);
  CHECK_FALSE(released.locked_at.has_value());
  CHECK_FALSE(released.lease_until.has_value());
  CHECK(released.starts_at == at(kT - 1));
  CHECK_FALSE(released.last_error.has_value());
  CHECK(f.scheduler.next_job()->id == job.id);
  CHECK(f.scheduler.seconds_until_next_job()->delay == Seconds{0});
  CHECK_FALSE(f.scheduler.release(claimed->claim));  // spent

  const auto again = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(again.has_value());
  CHECK(again->job.id == job.id);
  CHECK(again->job.attempts == 1);
  CHECK_FALSE(again->job.last_error.has_value());
  CHECK_FALSE(f.scheduler.complete(claimed->claim));  // the released claim stays stale
  CHECK(f.scheduler.complete(again->claim));
}

TEST_CASE("releasing a second attempt takes back only that attempt") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  REQUIRE(f.scheduler.claim_next_job(Seconds{30}).has_value());
  const auto second = f.scheduler.claim_next_job(Seconds{30}, at(kT + 30));
  REQUIRE(second.has_value());
  REQUIRE(second->job.attempts == 2);
  CHECK(f.scheduler.release(second->claim));
  const Job released = stored(f.scheduler, job.id);
  CHECK(released.attempts == 1);
  CHECK(released.last_error == second->job.last_error);
  const auto third = f.scheduler.claim_next_job(Seconds{30}, at(kT + 31));
  REQUIRE(third.has_value());
  CHECK(third->job.attempts == 2);
  CHECK(third->job.last_error == second->job.last_error);
}

// ---- Refused arguments -----------------------------------------------------------------------

TEST_CASE("a lease that is zero, negative, NaN or infinite is refused, naming it") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"), no_jitter(1));
  struct Bad {
    double seconds;
    const char* shown;
  };
  const Bad bad = GENERATE(Bad{0.0, "got 0 s"}, Bad{-5.0, "got -5 s"}, Bad{-0.25, "got -0.25 s"},
                           Bad{std::numeric_limits<double>::quiet_NaN(), "got nan s"},
                           Bad{std::numeric_limits<double>::infinity(), "got inf s"},
                           Bad{-std::numeric_limits<double>::infinity(), "got -inf s"});
  INFO("lease " << bad.shown);

  // A job whose lease ran out on its only attempt: a claim that ran would fail it.
  // (Both added before its lease runs out: an add moves such jobs on, marking it failed.)
  const Job abandoned = f.scheduler.add_job("abandoned", starting(kT - 10));
  const Job due = f.scheduler.add_job("due", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{5}, at(kT - 10));
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == abandoned.id);
  const Job abandoned_before = stored(f.scheduler, abandoned.id);
  const Job due_before = stored(f.scheduler, due.id);
  const std::int64_t changes = f.changes();
  const Seconds lease{bad.seconds};

  const auto any_queue =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.claim_next_job(lease); });
  REQUIRE(any_queue.has_value());
  CHECK(contains(*any_queue, "lease"));
  CHECK(contains(*any_queue, bad.shown));

  const auto named = thrown<jobsched::InvalidArgumentError>(
      [&] { f.scheduler.claim_next_job(lease, std::vector<std::string>{""}); });
  REQUIRE(named.has_value());
  CHECK(contains(*named, bad.shown));

  Claim claim = claimed->claim;
  const Claim claim_before = claim;
  const auto extended =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.extend(claim, lease, at(kT - 8)); });
  REQUIRE(extended.has_value());
  CHECK(contains(*extended, bad.shown));
  CHECK(claim == claim_before);

  CHECK(stored(f.scheduler, abandoned.id) == abandoned_before);
  CHECK(stored(f.scheduler, due.id) == due_before);
  CHECK(f.changes() == changes);
  // Shown failed (its lease ran out on its only attempt), but not marked: nothing ran.
  CHECK(stored(f.scheduler, abandoned.id).failed_at == at(kT - 5));
  CHECK(query_int(f.scheduler.handle(), "SELECT count(*) FROM job WHERE failed_at IS NULL") == 2);
}

TEST_CASE("a claim naming an empty list of queues is refused") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const Job before = stored(f.scheduler, job.id);
  const std::int64_t changes = f.changes();

  const auto claim_error = thrown<jobsched::InvalidArgumentError>(
      [&] { f.scheduler.claim_next_job(Seconds{30}, std::vector<std::string>{}); });
  REQUIRE(claim_error.has_value());
  CHECK(contains(*claim_error, "queues"));
  const auto delay_error = thrown<jobsched::InvalidArgumentError>(
      [&] { f.scheduler.seconds_until_next_job(std::vector<std::string>{}); });
  REQUIRE(delay_error.has_value());
  CHECK(contains(*delay_error, "queues"));

  CHECK(stored(f.scheduler, job.id) == before);
  CHECK(f.changes() == changes);
  CHECK(f.scheduler.claim_next_job(Seconds{30})->job.id == job.id);
}

TEST_CASE("claiming with a NaN or infinite time is refused before anything is written") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const double bad =
      GENERATE(std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity());
  const std::int64_t changes = f.changes();
  const auto error = thrown<jobsched::InvalidArgumentError>(
      [&] { f.scheduler.claim_next_job(Seconds{30}, at(bad)); });
  REQUIRE(error.has_value());
  CHECK(contains(*error, std::isnan(bad) ? "nan" : "inf"));
  CHECK(f.changes() == changes);
  CHECK(stored(f.scheduler, job.id).attempts == 0);
}

// ---- Locks, unlocks, and completing by id ------------------------------------------------------

TEST_CASE("the successor's locks are never claimed and never run out") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job a = f.scheduler.add_job("a", starting(kT - 20));
  const Job b = f.scheduler.add_job("b", starting(kT - 10));
  const Job c = f.scheduler.add_job("c", starting(kT - 5));
  REQUIRE(f.scheduler.lock_job(a.id, at(kT)));
  const auto locked = f.scheduler.lock_next_job(at(kT));
  REQUIRE(locked.has_value());
  REQUIRE(locked->id == b.id);

  const auto claimed = f.scheduler.claim_next_job(Seconds{1}, at(kT + 1));
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == c.id);
  REQUIRE(f.scheduler.complete(claimed->claim, at(kT + 1)));

  for (const double later : {kT + 2, kT + 3600, kT + 1e7}) {
    INFO("at " << later);
    CHECK_FALSE(f.scheduler.claim_next_job(Seconds{1}, at(later)).has_value());
    CHECK_FALSE(f.scheduler.next_job(at(later)).has_value());
    CHECK_FALSE(f.scheduler.seconds_until_next_job(at(later)).has_value());
    CHECK_FALSE(f.scheduler.seconds_until_next_job({""}, at(later)).has_value());
    CHECK(f.scheduler.count_pending_jobs(at(later)) == 2);
  }
  for (const Job& job : {a, b}) {
    const Job now_stored = stored(f.scheduler, job.id);
    CHECK(now_stored.locked_at == at(kT));
    CHECK_FALSE(now_stored.lease_until.has_value());
    CHECK(now_stored.attempts == 0);
    CHECK_FALSE(now_stored.is_failed());
  }
  CHECK(f.scheduler.failed_jobs().empty());

  CHECK(f.scheduler.unlock_job(a.id));
  const auto freed = f.scheduler.claim_next_job(Seconds{1}, at(kT + 1e7));
  REQUIRE(freed.has_value());
  CHECK(freed->job.id == a.id);
  CHECK(freed->job.attempts == 1);
}

TEST_CASE("a live claim cannot be locked, but a claim whose lease ran out can") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK_FALSE(f.scheduler.lock_job(job.id, at(kT + 10)));
  CHECK_FALSE(f.scheduler.lock_next_job(at(kT + 10)).has_value());
  CHECK(stored(f.scheduler, job.id).lease_until == at(kT + 30));

  CHECK(f.scheduler.lock_job(job.id, at(kT + 30)));
  const Job locked = stored(f.scheduler, job.id);
  CHECK(locked.locked_at == at(kT + 30));
  CHECK_FALSE(locked.lease_until.has_value());
  CHECK_FALSE(f.scheduler.complete(claimed->claim, at(kT + 31)));  // the lock took over
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{30}, at(kT + 1e6)).has_value());
}

TEST_CASE("unlocking a claimed job frees it and makes its claim stale") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{300});
  REQUIRE(claimed.has_value());

  CHECK(f.scheduler.unlock_job(job.id));
  const Job unlocked = stored(f.scheduler, job.id);
  CHECK_FALSE(unlocked.locked_at.has_value());
  CHECK_FALSE(unlocked.lease_until.has_value());
  CHECK(unlocked.attempts == 1);
  CHECK(f.scheduler.next_job()->id == job.id);
  CHECK(f.scheduler.unlock_job(job.id));  // true for any job that exists, as the successor
  CHECK(stored(f.scheduler, job.id) == unlocked);

  CHECK_FALSE(f.scheduler.complete(claimed->claim));
  CHECK_FALSE(f.scheduler.fail(claimed->claim, "x"));
  CHECK(stored(f.scheduler, job.id) == unlocked);
  const auto again = f.scheduler.claim_next_job(Seconds{300}, at(kT + 1));
  REQUIRE(again.has_value());
  CHECK(again->job.id == job.id);
  CHECK(again->job.attempts == 2);
  CHECK(again->job.lease_until == at(kT + 301));
}

TEST_CASE("complete_job by id completes a claimed job and makes its claim stale") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const Job job = f.scheduler.add_job("j", starting(kT - 1));
  const auto claimed = f.scheduler.claim_next_job(Seconds{300});
  REQUIRE(claimed.has_value());

  CHECK(f.scheduler.complete_job(job.id, at(kT + 7)));
  const Job done = stored(f.scheduler, job.id);
  CHECK(done.completed_at == at(kT + 7));
  CHECK_FALSE(done.locked_at.has_value());
  CHECK_FALSE(done.lease_until.has_value());
  CHECK(done.attempts == 1);

  CHECK_FALSE(f.scheduler.complete(claimed->claim, at(kT + 8)));
  Claim claim = claimed->claim;
  CHECK_FALSE(f.scheduler.extend(claim, Seconds{10}, at(kT + 8)));
  CHECK_FALSE(f.scheduler.fail(claimed->claim, "late", at(kT + 8)));
  CHECK_FALSE(f.scheduler.release(claimed->claim));
  CHECK(stored(f.scheduler, job.id) == done);
  CHECK(f.scheduler.count_pending_jobs(at(kT + 8)) == 0);
}

// ---- Never two live leases -------------------------------------------------------------------

TEST_CASE("of three schedulers on one file, no two ever hold live leases on the same job") {
  // A random walk (fixed seed) of claims, completions, failures, extensions, releases and
  // the passing of time, by three schedulers sharing one file and one pinned clock. A model
  // tracks every claim handed out; whenever a claim succeeds, every earlier claim on the job
  // must be finished or past its lease, and only the newest claim may still act.
  TempFile file("claims-leases");
  PinnedClock clock;
  std::vector<Scheduler> schedulers;
  for (int i = 0; i < 3; ++i) {
    jobsched::Options options = clock.options();
    options.synchronous = jobsched::Synchronous::normal;
    options.retry = no_jitter(3);
    options.retry.initial_backoff = Seconds{2};
    schedulers.push_back(Scheduler::open(file.path(), options));
  }
  for (int i = 0; i < 60; ++i)
    schedulers[0].add_job(std::to_string(i), starting(kT + i));

  struct Held {
    Claim claim;
    bool finished = false;  // completed, failed or released through this claim
  };
  std::map<std::int64_t, std::vector<Held>> claims;  // by job id, oldest first
  std::mt19937 random(20240611);
  int claims_made = 0;
  int stale_refused = 0;
  for (int step = 0; step < 1500; ++step) {
    Scheduler& scheduler = schedulers[random() % 3];
    const double now = jobsched::to_unix_seconds(clock.now());
    const auto action = random() % 10;
    if (action < 4) {
      const auto claimed = scheduler.claim_next_job(Seconds{static_cast<double>(1 + random() % 8)});
      if (claimed) {
        ++claims_made;
        for (const Held& earlier : claims[claimed->job.id]) {
          INFO("job " << claimed->job.id << " at " << now);
          CHECK((earlier.finished || jobsched::to_unix_seconds(earlier.claim.lease_until) <= now));
        }
        claims[claimed->job.id].push_back(Held{claimed->claim});
      }
    } else if (action < 8 && !claims.empty()) {
      // Act with a random claim on a random job: only the newest unfinished claim may act.
      auto it = claims.begin();
      std::advance(it, static_cast<long>(random() % claims.size()));
      std::vector<Held>& held = it->second;
      const std::size_t pick = random() % held.size();
      const bool newest = pick + 1 == held.size();
      const bool may_act = newest && !held[pick].finished;
      bool acted = false;
      switch (action) {
        case 4:
          acted = scheduler.complete(held[pick].claim);
          break;
        case 5:
          acted = scheduler.fail(held[pick].claim, "boom");
          break;
        case 6: {
          Claim copy = held[pick].claim;
          acted = scheduler.extend(copy, Seconds{3});
          if (acted)
            held[pick].claim = copy;
          break;
        }
        default:
          acted = scheduler.release(held[pick].claim);
          break;
      }
      // A stale claim never acts. The newest may act while its job has not moved on
      // (a lease that ran out without a new claim is not yet stale, nor failed).
      if (!may_act) {
        CHECK_FALSE(acted);
        ++stale_refused;
      }
      if (acted && action != 6)
        held[pick].finished = true;
    } else {
      clock.advance(static_cast<double>(random() % 5));
    }
    // No job ever has two live leases, as stored.
    CHECK(query_int(scheduler.handle(),
                    "SELECT count(*) FROM job WHERE lease_until IS NOT NULL AND"
                    " (locked_at IS NULL OR claim_token IS NULL)") == 0);
  }
  INFO(claims_made << " claims, " << stale_refused << " stale attempts refused");
  CHECK(claims_made > 50);
  CHECK(stale_refused > 50);
}

// ---- Threads and processes -------------------------------------------------------------------

TEST_CASE("four threads claiming and completing 2000 jobs claim each exactly once", "[threads]") {
  TempFile file("claims-threads");
  constexpr int kJobs = 2000;
  constexpr int kThreads = 4;
  PinnedClock clock;
  auto make_options = [&] {
    jobsched::Options options = clock.options();
    options.synchronous = jobsched::Synchronous::normal;
    options.busy_timeout = std::chrono::milliseconds(60'000);
    return options;
  };
  {
    auto scheduler = Scheduler::open(file.path(), make_options());
    exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 0; i < kJobs; ++i)
      scheduler.add_job(std::to_string(i), starting(kT - kJobs + i));
    exec_raw(scheduler.handle(), "COMMIT");
  }
  std::vector<std::vector<std::int64_t>> claimed(kThreads);
  std::vector<int> refused(kThreads, 0);
  std::vector<std::string> errors(kThreads);
  std::vector<jobsched_test::BoundedThread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        auto scheduler = Scheduler::open(file.path(), make_options());
        // More claims than jobs means a job came back: the loop would never end.
        for (int claims = 0; claims <= kJobs; ++claims) {
          const auto job = scheduler.claim_next_job(Seconds{3600});
          if (!job)
            return;
          claimed[static_cast<std::size_t>(t)].push_back(job->job.id);
          if (job->job.attempts != 1 || !scheduler.complete(job->claim)) {
            ++refused[static_cast<std::size_t>(t)];
          }
        }
        errors[static_cast<std::size_t>(t)] = "claimed more jobs than there are";
      } catch (const std::exception& error) {
        errors[static_cast<std::size_t>(t)] = error.what();
      }
    });
  }
  const jobsched_test::Deadline deadline(Seconds{60}, "four threads to drain 2000 jobs");
  for (jobsched_test::BoundedThread& thread : threads)
    thread.join(deadline);

  std::map<std::int64_t, int> times_claimed;
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(errors[static_cast<std::size_t>(t)].empty());
    CHECK(refused[static_cast<std::size_t>(t)] == 0);
    for (const std::int64_t id : claimed[static_cast<std::size_t>(t)])
      ++times_claimed[id];
  }
  CHECK(times_claimed.size() == static_cast<std::size_t>(kJobs));
  CHECK(std::all_of(times_claimed.begin(), times_claimed.end(),
                    [](const auto& entry) { return entry.second == 1; }));
  auto scheduler = Scheduler::open(file.path(), make_options());
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM job WHERE completed_at IS NOT NULL"
                  " AND attempts = 1 AND locked_at IS NULL") == kJobs);
}

TEST_CASE("three processes claiming and completing 600 jobs claim each exactly once",
          "[processes]") {
  TempFile file("claims-processes");
  constexpr int kJobs = 600;
  constexpr int kProcesses = 3;
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::normal;
  options.busy_timeout = std::chrono::milliseconds(60'000);
  {
    auto scheduler = Scheduler::open(file.path(), options);
    exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 0; i < kJobs; ++i)
      scheduler.add_job(std::to_string(i), starting(kT - kJobs + i));
    exec_raw(scheduler.handle(), "COMMIT");
  }
  const auto reports = jobsched_test::run_in_processes(kProcesses, [&](const auto& report) {
    int status = 0;
    auto scheduler = Scheduler::open(file.path(), options);
    // More claims than jobs means a job came back: the loop would never end.
    for (int claims = 0; claims <= kJobs; ++claims) {
      const auto job = scheduler.claim_next_job(Seconds{3600});
      if (!job)
        return status;
      if (!scheduler.complete(job->claim))
        status = 3;
      if (!report(job->job.id))
        status = 2;
    }
    return 4;
  });
  CHECK(reports.exit_codes == std::vector<int>(kProcesses, 0));
  CHECK(reports.times_reported.size() == static_cast<std::size_t>(kJobs));
  CHECK(std::all_of(reports.times_reported.begin(), reports.times_reported.end(),
                    [](const auto& entry) { return entry.second == 1; }));
  auto scheduler = Scheduler::open(file.path(), options);
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM job WHERE completed_at IS NOT NULL"
                  " AND attempts = 1") == kJobs);
}

// ---- Files from before claims ----------------------------------------------------------------

namespace {

/// A file at `version` (2: as the successor wrote it; 3: as our previous release left it)
/// holding jobs 1 (locked by the successor), 2 (completed), 3 (free and due), 4 (locked and
/// also overdue), 5 (free, starts later).
void write_old_file(const std::string& path, int version) {
  auto owner = open_raw(path);
  sqlite3* db = owner.get();
  exec_raw(db, "PRAGMA journal_mode = WAL");
  jobsched_test::write_python_schema(db, 2);
  if (version >= 3) {
    exec_raw(db, std::string("BEGIN;") + jobsched::detail::migrations[3].script +
                     "UPDATE job_schema SET value = 3 WHERE key = 'version'; COMMIT;");
  }
  const std::string t = std::to_string(kT);
  exec_raw(db,
           "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at, locked_at)"
           " VALUES"
           " ('locked', " +
               t + " - 100, " + t + " - 90, NULL, NULL, " + t +
               " - 80),"
               " ('done', " +
               t + " - 100, " + t + " - 90, NULL, " + t +
               " - 70, NULL),"
               " ('free', " +
               t + " - 100, " + t +
               " - 50, NULL, NULL, NULL),"
               " ('locked2', " +
               t + " - 100, " + t + " - 95, " + t + " + 1e7, NULL, " + t +
               " - 60),"
               " ('later', " +
               t + " - 100, " + t + " + 50, NULL, NULL, NULL);");
}

}  // namespace

TEST_CASE("opening a version 2 or 3 file migrates it, its locks stay locked, never claimed") {
  const int version = GENERATE(2, 3);
  INFO("version " << version);
  TempFile file("claims-lineage");
  write_old_file(file.path(), version);
  {
    auto raw = open_raw(file.path());
    REQUIRE(query_int(raw.get(), "SELECT value FROM job_schema WHERE key = 'version'") == version);
  }
  PinnedClock clock;
  auto scheduler = Scheduler::open(file.path(), clock.options());
  CHECK(scheduler.migrated_from() == std::optional<int>(version));
  CHECK(query_int(scheduler.handle(), "SELECT value FROM job_schema WHERE key = 'version'") ==
        jobsched::current_schema_version);

  // Every old job: no attempts, no lease, no failure, default priority and queue.
  for (std::int64_t id = 1; id <= 5; ++id) {
    INFO("job " << id);
    const Job job = stored(scheduler, id);
    CHECK(job.attempts == 0);
    CHECK_FALSE(job.lease_until.has_value());
    CHECK_FALSE(job.failed_at.has_value());
    CHECK_FALSE(job.last_error.has_value());
    CHECK_FALSE(job.max_attempts.has_value());
    CHECK(job.priority == 0);
    CHECK(job.queue.empty());
  }
  CHECK(stored(scheduler, 1).locked_at == at(kT - 80));
  CHECK(stored(scheduler, 4).locked_at == at(kT - 60));
  CHECK(stored(scheduler, 2).completed_at == at(kT - 70));
  CHECK(scheduler.count_pending_jobs() == 4);

  // The free due job is claimed; the locked ones never are, however late.
  const auto first = scheduler.claim_next_job(Seconds{10});
  REQUIRE(first.has_value());
  CHECK(first->job.id == 3);
  CHECK(first->job.attempts == 1);
  CHECK(scheduler.complete(first->claim, at(kT + 1)));
  const auto second = scheduler.claim_next_job(Seconds{10}, at(kT + 1e6));
  REQUIRE(second.has_value());
  CHECK(second->job.id == 5);
  CHECK(scheduler.complete(second->claim, at(kT + 1e6)));
  CHECK_FALSE(scheduler.claim_next_job(Seconds{10}, at(kT + 2e6)).has_value());
  CHECK_FALSE(scheduler.claim_next_job(Seconds{10}, std::vector<std::string>{""}, at(kT + 2e6))
                  .has_value());

  CHECK(stored(scheduler, 1).locked_at == at(kT - 80));
  CHECK(stored(scheduler, 4).locked_at == at(kT - 60));
  CHECK(stored(scheduler, 1).attempts == 0);
  CHECK(stored(scheduler, 4).attempts == 0);
  CHECK_FALSE(stored(scheduler, 1).is_failed());
  CHECK(stored(scheduler, 2).attempts == 0);
  CHECK(stored(scheduler, 2).completed_at == at(kT - 70));
  CHECK(scheduler.count_pending_jobs(at(kT + 2e6)) == 2);
  CHECK(scheduler.failed_jobs().empty());

  // Unlocking hands an old lock to the claims.
  CHECK(scheduler.unlock_job(1));
  const auto freed = scheduler.claim_next_job(Seconds{10}, at(kT + 2e6));
  REQUIRE(freed.has_value());
  CHECK(freed->job.id == 1);
  CHECK(freed->job.attempts == 1);
  CHECK_FALSE(freed->job.last_error.has_value());
}

}  // namespace test_claims
