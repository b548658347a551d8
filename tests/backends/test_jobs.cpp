// SPDX-License-Identifier: MIT
// One job's life, over both stores: the same calls give the same answers and store the
// same rows (adds, the orders, claims and their leases, settling, retries, failures, locks,
// cancels, paused queues, deletes), and bad input is refused before anything is written.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../catch.hpp"
#include "../support/checks.hpp"
#include "backends.hpp"

namespace test_backend_jobs {

namespace {

using jobsched::Claim;
using jobsched::ClaimedJob;
using jobsched::InvalidArgumentError;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::NewJob;
using jobsched::Payload;
using jobsched::RetryPolicy;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::job_times;
using jobsched_test::PgBackend;
using jobsched_test::PinnedClock;
using jobsched_test::SqliteBackend;
using jobsched_test::thrown;

constexpr double kT = 1'700'000'000.0;

RetryPolicy no_jitter() {
  RetryPolicy retry;
  retry.max_attempts = 3;
  retry.initial_backoff = Seconds{10.0};
  retry.multiplier = 2.0;
  retry.max_backoff = Seconds{15.0};
  retry.jitter = 0.0;
  return retry;
}

}  // namespace

TEMPLATE_TEST_CASE("backends: a job is stored as added, every field and payload kind",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("added");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock);

  std::vector<Payload> payloads = {Payload(), Payload(std::string()),
                                   Payload(std::string("a\0b\xff", 4)), Payload::text("text"),
                                   Payload::integer(-42), Payload::real(0.1),
                                   Payload(std::string(100000, 'x'))};
  std::vector<Job> added;
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    JobOptions options = job_times(at(kT - 5), at(kT + static_cast<double>(i)), at(kT + 100));
    options.priority = static_cast<int>(i) - 3;
    options.queue = i % 2 == 0 ? "" : "mail \"q\"";
    options.max_attempts = 4;
    options.initial_backoff = Seconds{0.25};
    options.max_backoff = Seconds{7.5};
    added.push_back(scheduler.add_job(payloads[i], options));
  }
  for (std::size_t i = 0; i < added.size(); ++i) {
    INFO(TestType::name << " job " << i);
    CHECK(added[i].id == static_cast<std::int64_t>(i + 1));
    CHECK(added[i].data == payloads[i]);
    CHECK(added[i].starts_at == at(kT + static_cast<double>(i)));
    CHECK(scheduler.get_job(added[i].id) == added[i]);
  }
  // Defaults: created now, starting then, never expiring.
  const Job plain = scheduler.add_job("plain");
  CHECK(plain.created_at == at(kT));
  CHECK(plain.starts_at == at(kT));
  CHECK_FALSE(plain.expires_at);
  CHECK(scheduler.get_job(plain.id) == plain);
  CHECK_FALSE(scheduler.get_job(999));
  CHECK(scheduler.count_pending_jobs() == 8);

  // From now: the start and the expiry both count from the creation.
  const Job from_now = scheduler.add_job_from_now("later", Seconds{10}, Seconds{30});
  CHECK(from_now.created_at == at(kT));
  CHECK(from_now.starts_at == at(kT + 10));
  CHECK(from_now.expires_at == at(kT + 30));
  CHECK(scheduler.get_job(from_now.id) == from_now);
}

TEMPLATE_TEST_CASE("backends: bad times are refused, naming them, and nothing is written",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("refused");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock);

  const auto message = thrown<InvalidArgumentError>(
      [&] { scheduler.add_job("x", job_times(at(kT + 10), at(kT))); });
  REQUIRE(message);
  CHECK(jobsched_test::contains(*message, "created_at"));
  CHECK(jobsched_test::contains(*message, "is after starts_at"));

  std::vector<NewJob> jobs(3);
  jobs[0].data = "ok";
  jobs[1].data = "ok too";
  jobs[2].options = job_times(at(kT), at(kT + 10), at(kT + 5));
  const auto batch = thrown<InvalidArgumentError>([&] { scheduler.add_jobs(jobs); });
  REQUIRE(batch);
  CHECK(jobsched_test::contains(*batch, "job 3 of 3: starts_at"));
  CHECK(jobsched_test::contains(*batch, "is after expires_at"));
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK_FALSE(scheduler.get_job(1));
  CHECK(thrown<InvalidArgumentError>([&] { scheduler.claim_next_job(Seconds{0}); }));
  CHECK(thrown<InvalidArgumentError>([&] { scheduler.claim_jobs(0, Seconds{1}); }));
  CHECK(thrown<InvalidArgumentError>(
      [&] { scheduler.seconds_until_next_job(std::vector<std::string>{}); }));
}

TEMPLATE_TEST_CASE("backends: next_job and seconds_until_next_job in start order",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("next");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock);

  CHECK_FALSE(scheduler.next_job());
  CHECK_FALSE(scheduler.seconds_until_next_job());
  const Job late = scheduler.add_job("late", job_times(at(kT), at(kT + 30)));
  const Job soon = scheduler.add_job("soon", job_times(at(kT), at(kT + 10)));
  const Job tie = scheduler.add_job("tie", job_times(at(kT), at(kT + 10)));
  const Job expiring = scheduler.add_job("expiring", job_times(at(kT), at(kT + 1), at(kT + 2)));

  CHECK(scheduler.next_job() == expiring);
  CHECK(scheduler.seconds_until_next_job() == jobsched::JobDelay{expiring.id, Seconds{1.0}});
  // Expired at kT + 2: then the earlier start, the lower id at a tie.
  CHECK(scheduler.next_job(at(kT + 5)) == soon);
  CHECK(scheduler.seconds_until_next_job(at(kT + 5)) == jobsched::JobDelay{soon.id, Seconds{5.0}});
  // Never negative.
  CHECK(scheduler.seconds_until_next_job(at(kT + 100)) == jobsched::JobDelay{soon.id, Seconds{0}});
  // A locked job is not next; the queue filter.
  CHECK(scheduler.lock_job(soon.id, at(kT + 5)));
  CHECK(scheduler.next_job(at(kT + 5))->id == tie.id);
  CHECK(scheduler.seconds_until_next_job(std::vector<std::string>{"other"}, at(kT + 5)) ==
        std::nullopt);
  CHECK(scheduler.count_pending_jobs(at(kT + 5)) == 3);
  const std::optional<Job> locked = scheduler.lock_next_job(at(kT + 5));
  CHECK(locked == scheduler.get_job(tie.id, at(kT + 5)));
  CHECK(scheduler.get_job(tie.id)->locked_at == at(kT + 5));
  CHECK(scheduler.next_job(at(kT + 5))->id == late.id);
  CHECK(scheduler.unlock_job(tie.id, at(kT + 6)));
  CHECK(scheduler.next_job(at(kT + 6))->id == tie.id);
  CHECK_FALSE(scheduler.unlock_job(999, at(kT + 6)));
}

TEMPLATE_TEST_CASE("backends: claims in claim order, leases, and stale claims refused",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("claims");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock, no_jitter());

  JobOptions low = job_times(at(kT), at(kT));
  JobOptions high = low;
  high.priority = 5;
  JobOptions later = job_times(at(kT), at(kT + 50));
  const Job a = scheduler.add_job("a", low);
  const Job b = scheduler.add_job("b", high);
  const Job c = scheduler.add_job("c", low);
  scheduler.add_job("later", later);

  const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(10, Seconds{30}, at(kT + 1));
  REQUIRE(claimed.size() == 3);
  CHECK(claimed[0].job.id == b.id);
  CHECK(claimed[1].job.id == a.id);
  CHECK(claimed[2].job.id == c.id);
  for (const ClaimedJob& job : claimed) {
    CHECK(job.claim.job_id == job.job.id);
    CHECK(job.claim.lease_until == at(kT + 31));
    CHECK(job.job.lease_until == at(kT + 31));
    CHECK(job.job.locked_at == at(kT + 1));
    CHECK(job.job.attempts == 1);
    CHECK(scheduler.get_job(job.job.id, at(kT + 1)) == job.job);
  }
  CHECK(claimed[0].claim.token != claimed[1].claim.token);
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, at(kT + 2)));

  // A stale token changes nothing.
  Claim stale = claimed[0].claim;
  stale.token += 1;
  CHECK_FALSE(scheduler.complete(stale, at(kT + 2)));
  CHECK_FALSE(scheduler.get_job(b.id)->completed_at);

  // Extend never moves a lease earlier.
  Claim extended = claimed[1].claim;
  CHECK(scheduler.extend(extended, Seconds{100}, at(kT + 2)));
  CHECK(extended.lease_until == at(kT + 102));
  CHECK(scheduler.extend(extended, Seconds{1}, at(kT + 3)));
  CHECK(extended.lease_until == at(kT + 102));

  CHECK(scheduler.complete(claimed[0].claim, at(kT + 4)));
  CHECK_FALSE(scheduler.complete(claimed[0].claim, at(kT + 5)));
  CHECK(scheduler.get_job(b.id)->completed_at == at(kT + 4));
  CHECK_FALSE(scheduler.get_job(b.id)->locked_at);

  // Release: free at once, the attempt not counted.
  CHECK(scheduler.release(claimed[2].claim, at(kT + 5)));
  const Job released = *scheduler.get_job(c.id, at(kT + 5));
  CHECK(released.attempts == 0);
  CHECK_FALSE(released.locked_at);
  CHECK(scheduler.claim_next_job(Seconds{30}, at(kT + 6))->job.id == c.id);

  // A lease that ran out frees its job (attempts left); the old claim goes stale once
  // claimed again, and the new claim says the old lease ran out.
  const auto again = scheduler.claim_next_job(Seconds{10}, at(kT + 200));
  REQUIRE(again);
  CHECK(again->job.id == a.id);
  CHECK(again->job.attempts == 2);
  CHECK(again->job.last_error == std::string("the lease of attempt 1 ran out"));
  CHECK_FALSE(scheduler.complete(extended, at(kT + 201)));
  CHECK(scheduler.complete(again->claim, at(kT + 201)));
}

TEMPLATE_TEST_CASE("backends: failures back off, then fail for good, retry_job and cancel_job",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("failures");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock, no_jitter());
  const Job job = scheduler.add_job("flaky", job_times(at(kT), at(kT)));

  auto first = scheduler.claim_next_job(Seconds{60}, at(kT));
  REQUIRE(first);
  CHECK(scheduler.fail(first->claim, "boom 1", at(kT + 1)));
  Job stored = *scheduler.get_job(job.id, at(kT + 1));
  CHECK(stored.starts_at == at(kT + 11));  // 10 s backoff
  CHECK(stored.last_error == std::string("boom 1"));
  CHECK_FALSE(stored.locked_at);
  CHECK_FALSE(scheduler.fail(first->claim, "again", at(kT + 2)));
  CHECK_FALSE(scheduler.claim_next_job(Seconds{60}, at(kT + 10)));

  auto second = scheduler.claim_next_job(Seconds{60}, at(kT + 11));
  REQUIRE(second);
  CHECK(scheduler.fail(second->claim, "boom 2", at(kT + 12)));
  CHECK(scheduler.get_job(job.id)->starts_at == at(kT + 27));  // 20 s, capped at 15

  auto third = scheduler.claim_next_job(Seconds{60}, at(kT + 27));
  REQUIRE(third);
  CHECK(third->job.attempts == 3);
  CHECK(scheduler.fail(third->claim, "boom 3", at(kT + 28)));
  stored = *scheduler.get_job(job.id, at(kT + 28));
  CHECK(stored.failed_at == at(kT + 28));
  CHECK(stored.last_error == std::string("boom 3"));
  CHECK(scheduler.count_pending_jobs(at(kT + 28)) == 0);
  CHECK(scheduler.failed_jobs(at(kT + 28)) == std::vector<Job>{stored});

  CHECK(scheduler.retry_job(job.id, at(kT + 30)));
  stored = *scheduler.get_job(job.id, at(kT + 30));
  CHECK_FALSE(stored.failed_at);
  CHECK(stored.attempts == 0);
  CHECK(stored.starts_at == at(kT + 30));
  CHECK(stored.last_error == std::string("boom 3"));
  CHECK_FALSE(scheduler.retry_job(job.id, at(kT + 31)));

  // Cancel: failed for good with the reason; the claim holding it goes stale.
  auto held = scheduler.claim_next_job(Seconds{60}, at(kT + 31));
  REQUIRE(held);
  CHECK(scheduler.cancel_job(job.id, "not wanted", at(kT + 32)));
  CHECK_FALSE(scheduler.complete(held->claim, at(kT + 33)));
  stored = *scheduler.get_job(job.id, at(kT + 33));
  CHECK(stored.cancelled_at == at(kT + 32));
  CHECK(stored.failed_at == at(kT + 32));
  CHECK(stored.last_error == std::string("not wanted"));
  CHECK_FALSE(scheduler.cancel_job(job.id, "twice", at(kT + 34)));
  CHECK(scheduler.delete_failed_jobs(at(kT + 34)) == 1);
  CHECK_FALSE(scheduler.get_job(job.id));
}

TEMPLATE_TEST_CASE("backends: a lease run out on the last attempt fails the job at its end",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("abandoned");
  PinnedClock clock;
  clock.set(kT);
  RetryPolicy retry = no_jitter();
  retry.max_attempts = 1;
  auto scheduler = backend.open(clock, retry);
  const Job job = scheduler.add_job("crashes", job_times(at(kT), at(kT)));
  auto claimed = scheduler.claim_next_job(Seconds{10}, at(kT));
  REQUIRE(claimed);

  // Before the lease ends it is held; after, a read sees it failed at the lease's end,
  // with no write in between.
  CHECK(scheduler.count_pending_jobs(at(kT + 9)) == 1);
  const Job seen = *scheduler.get_job(job.id, at(kT + 11));
  CHECK(seen.failed_at == at(kT + 10));
  CHECK_FALSE(seen.locked_at);
  CHECK_FALSE(seen.lease_until);
  CHECK(seen.last_error == std::string("the lease of attempt 1 ran out"));
  CHECK(scheduler.count_pending_jobs(at(kT + 11)) == 0);
  CHECK(scheduler.failed_jobs(at(kT + 11)) == std::vector<Job>{seen});
  CHECK_FALSE(scheduler.complete(claimed->claim, at(kT + 11)));
  CHECK_FALSE(scheduler.claim_next_job(Seconds{10}, at(kT + 11)));
  CHECK_FALSE(scheduler.seconds_until_next_job(at(kT + 11)));
  CHECK(scheduler.retry_job(job.id, at(kT + 12)));
  CHECK(scheduler.claim_next_job(Seconds{10}, at(kT + 12))->job.last_error ==
        std::string("the lease of attempt 1 ran out"));
}

TEMPLATE_TEST_CASE("backends: a last lease that ends at the expiry leaves the job expired",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("lease_at_expiry");
  PinnedClock clock;
  clock.set(kT);
  RetryPolicy retry = no_jitter();
  retry.max_attempts = 1;
  auto scheduler = backend.open(clock, retry);
  const Job job = scheduler.add_job("late", job_times(at(kT), at(kT), at(kT + 10)));
  REQUIRE(scheduler.claim_next_job(Seconds{10}, at(kT)));
  const Job seen = *scheduler.get_job(job.id, at(kT + 11));
  CHECK_FALSE(seen.failed_at);
  CHECK(seen.lease_until == at(kT + 10));
  CHECK(seen.is_expired(at(kT + 11)));
  CHECK(scheduler.failed_jobs(at(kT + 11)).empty());
  CHECK(scheduler.delete_expired_jobs(at(kT + 11)) == 1);
}

TEMPLATE_TEST_CASE("backends: seconds_until_next_job waits for a live lease to free its job",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("lease_wait");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock, no_jitter());
  const Job held = scheduler.add_job("held", job_times(at(kT), at(kT)));
  auto claimed = scheduler.claim_next_job(Seconds{20}, at(kT));
  REQUIRE(claimed);
  const Job later = scheduler.add_job("later", job_times(at(kT), at(kT + 60)));
  CHECK(scheduler.seconds_until_next_job(at(kT + 5)) == jobsched::JobDelay{held.id, Seconds{15}});
  CHECK(scheduler.next_job(at(kT + 5))->id == later.id);
  CHECK(scheduler.complete(claimed->claim, at(kT + 6)));
  CHECK(scheduler.seconds_until_next_job(at(kT + 6)) == jobsched::JobDelay{later.id, Seconds{54}});
}

TEMPLATE_TEST_CASE("backends: snooze, results, complete_job, deletes and paused queues",
                   "[backends]", SqliteBackend, PgBackend) {
  TestType backend("control");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock, no_jitter());
  JobOptions mail = job_times(at(kT), at(kT), at(kT + 1000));
  mail.queue = "mail";
  const Job a = scheduler.add_job("a", mail);
  const Job b = scheduler.add_job("b", job_times(at(kT), at(kT)));
  const Job c = scheduler.add_job("c", job_times(at(kT), at(kT), at(kT + 5)));

  // Snooze: back later (never past its expiry), the attempt not counted.
  auto first = scheduler.claim_next_job(Seconds{30}, std::vector<std::string>{"mail"}, at(kT));
  REQUIRE(first);
  CHECK(first->job.id == a.id);
  CHECK(scheduler.snooze(first->claim, Seconds{5000}, at(kT + 1)));
  CHECK(scheduler.get_job(a.id)->starts_at == at(kT + 1000));
  CHECK(scheduler.get_job(a.id)->attempts == 0);

  // A result.
  auto second = scheduler.claim_next_job(Seconds{30}, at(kT + 2));
  REQUIRE(second);
  CHECK(second->job.id == b.id);
  CHECK(scheduler.complete(second->claim, Payload(std::string("r\0s", 3)), at(kT + 3)));
  CHECK(scheduler.get_job(b.id)->result == Payload(std::string("r\0s", 3)));

  // complete_job keeps the first time.
  CHECK(scheduler.complete_job(b.id, at(kT + 9)));
  CHECK(scheduler.get_job(b.id)->completed_at == at(kT + 3));
  CHECK_FALSE(scheduler.complete_job(999, at(kT + 9)));

  // Paused queues are passed over by claims and next_job, not by counts.
  CHECK(scheduler.pause_queue("mail", at(kT + 4)));
  CHECK_FALSE(scheduler.pause_queue("mail", at(kT + 4)));
  CHECK(scheduler.paused_queues() == std::vector<std::string>{"mail"});
  CHECK(scheduler.count_pending_jobs(at(kT + 4)) == 2);
  CHECK(scheduler.resume_queue("mail"));
  CHECK_FALSE(scheduler.resume_queue("mail"));
  CHECK(scheduler.paused_queues().empty());

  // Deletes.
  CHECK(scheduler.delete_expired_jobs(at(kT + 6)) == 1);
  CHECK_FALSE(scheduler.get_job(c.id));
  CHECK(scheduler.delete_completed_jobs() == 1);
  CHECK(scheduler.delete_job(a.id));
  CHECK_FALSE(scheduler.delete_job(a.id));
  CHECK(scheduler.count_pending_jobs(at(kT + 6)) == 0);
}

TEMPLATE_TEST_CASE("backends: a paused queue's due job is not claimed", "[backends]",
                   SqliteBackend, PgBackend) {
  TestType backend("paused");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock);
  JobOptions mail = job_times(at(kT), at(kT));
  mail.queue = "mail";
  mail.priority = 9;
  scheduler.add_job("mail", mail);
  const Job plain = scheduler.add_job("plain", job_times(at(kT), at(kT + 1)));
  CHECK(scheduler.pause_queue("mail", at(kT)));
  CHECK(scheduler.next_job(at(kT + 2))->id == plain.id);
  CHECK(scheduler.seconds_until_next_job(at(kT)) == jobsched::JobDelay{plain.id, Seconds{1}});
  const auto claimed = scheduler.claim_jobs(5, Seconds{30}, at(kT + 2));
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].job.id == plain.id);
}

TEMPLATE_TEST_CASE("backends: batches settle each claim as alone", "[backends]",
                   SqliteBackend, PgBackend) {
  TestType backend("batches");
  PinnedClock clock;
  clock.set(kT);
  auto scheduler = backend.open(clock, no_jitter());
  std::vector<NewJob> jobs(6);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].data = "job " + std::to_string(i);
    jobs[i].options = job_times(at(kT), at(kT + static_cast<double>(i)));
  }
  const std::vector<Job> added = scheduler.add_jobs(jobs);
  REQUIRE(added.size() == 6);
  for (const Job& job : added)
    CHECK(scheduler.get_job(job.id) == job);
  const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(6, Seconds{30}, at(kT + 10));
  REQUIRE(claimed.size() == 6);
  std::vector<Claim> claims;
  for (const ClaimedJob& job : claimed)
    claims.push_back(job.claim);
  Claim stale = claims[1];
  stale.token += 7;
  const std::vector<bool> done =
      scheduler.complete_all({claims[0], stale, claims[2]}, at(kT + 11));
  CHECK(done == std::vector<bool>{true, false, true});
  CHECK(scheduler.release_all({claims[1], claims[0]}, at(kT + 12)) ==
        std::vector<bool>{true, false});
  CHECK(scheduler.fail_all({{claims[3], "e3"}, {claims[4], "e4"}}, at(kT + 13)) ==
        std::vector<bool>{true, true});
  CHECK(scheduler.get_job(claims[3].job_id)->starts_at == at(kT + 23));
  CHECK(scheduler.get_job(claims[4].job_id)->last_error == std::string("e4"));
  CHECK(scheduler.count_pending_jobs(at(kT + 13)) == 4);
}

}  // namespace test_backend_jobs
