// SPDX-License-Identifier: MIT
// Job control: a transaction guard for the host's own writes, results stored with a
// completion, snoozing a claim without spending its attempt, cancelling pending and running
// jobs (and racing a cancel against claims in other processes).

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_control {

namespace {

using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::Payload;
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

constexpr double kT = 1'700'000'000.0;

jobsched::JobOptions due_at(double time) {
  jobsched::JobOptions options;
  options.created_at = at(time);
  options.starts_at = at(time);
  return options;
}

}  // namespace

TEST_CASE("a transaction commits the host's writes and the jobs added in it together",
          "[control][transaction]") {
  TempFile file("control-transaction");
  const bool on_file = GENERATE(true, false);
  auto scheduler = Scheduler::open(database(file, on_file));
  sqlite3* db = scheduler.handle();
  exec_raw(db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)");
  SECTION("committed: both") {
    auto tx = scheduler.transaction();
    CHECK(tx.active());
    exec_raw(db, "INSERT INTO orders (item) VALUES ('book')");
    scheduler.add_job(Payload("ship the book"), due_at(kT));
    tx.commit();
    CHECK_FALSE(tx.active());
    CHECK(query_int(db, "SELECT count(*) FROM orders") == 1);
    CHECK(scheduler.count_pending_jobs(at(kT)) == 1);
    CHECK(sqlite3_get_autocommit(db) == 1);
  }
  SECTION("left without a commit: neither") {
    {
      auto tx = scheduler.transaction();
      exec_raw(db, "INSERT INTO orders (item) VALUES ('book')");
      scheduler.add_job(Payload("ship the book"), due_at(kT));
    }
    CHECK(query_int(db, "SELECT count(*) FROM orders") == 0);
    CHECK(scheduler.count_pending_jobs(at(kT)) == 0);
    CHECK(sqlite3_get_autocommit(db) == 1);
  }
  SECTION("rolled back: neither, and it cannot be committed after") {
    auto tx = scheduler.transaction();
    scheduler.add_job(Payload("ship the book"), due_at(kT));
    tx.rollback();
    CHECK(scheduler.count_pending_jobs(at(kT)) == 0);
    const std::optional<std::string> error =
        thrown<jobsched::InvalidArgumentError>([&] { tx.commit(); });
    CHECK(contains(error.value_or(""), "cannot commit a transaction that was committed or rolled back"));
  }
  SECTION("inside the host's own transaction: it joins, and the host's ROLLBACK undoes it") {
    exec_raw(db, "BEGIN IMMEDIATE");
    {
      auto tx = scheduler.transaction();
      scheduler.add_job(Payload("inner"), due_at(kT));
      tx.commit();
    }
    CHECK(sqlite3_get_autocommit(db) == 0);
    CHECK(scheduler.count_pending_jobs(at(kT)) == 1);
    exec_raw(db, "ROLLBACK");
    CHECK(scheduler.count_pending_jobs(at(kT)) == 0);
  }
  SECTION("a nested one rolled back undoes only its own part") {
    auto outer = scheduler.transaction();
    scheduler.add_job(Payload("outer"), due_at(kT));
    {
      auto inner = scheduler.transaction();
      scheduler.add_job(Payload("inner"), due_at(kT));
    }
    outer.commit();
    CHECK(scheduler.count_pending_jobs(at(kT)) == 1);
    CHECK(scheduler.next_job(at(kT))->data == Payload("outer"));
  }
  SECTION("a transaction moved keeps its one rollback") {
    std::optional<jobsched::Transaction> moved;
    {
      auto tx = scheduler.transaction();
      scheduler.add_job(Payload("moved"), due_at(kT));
      moved.emplace(std::move(tx));
    }
    CHECK(sqlite3_get_autocommit(db) == 0);
    moved->commit();
    CHECK(scheduler.count_pending_jobs(at(kT)) == 1);
  }
}

TEST_CASE("a read-only scheduler refuses a transaction", "[control][transaction]") {
  TempFile file("control-transaction-read-only");
  { Scheduler::open(file.path()); }
  jobsched::Options options;
  options.read_only = true;
  auto reader = Scheduler::open(file.path(), options);
  CHECK(thrown<jobsched::ReadOnlyError>([&] { reader.transaction(); }));
}

TEST_CASE("a completion stores its result, and get_job returns it", "[control][results]") {
  TempFile file("control-result");
  const bool on_file = GENERATE(true, false);
  auto scheduler = Scheduler::open(database(file, on_file));
  const Job job = scheduler.add_job(Payload("resize"), due_at(kT));
  const ClaimedJob claimed = *scheduler.claim_next_job(Seconds{60}, at(kT));
  const std::string bytes("\0png", 4);
  REQUIRE(scheduler.complete(claimed.claim, Payload::blob(bytes.data(), bytes.size()), at(kT + 1)));
  const Job done = *scheduler.get_job(job.id, at(kT + 2));
  CHECK(done.is_completed());
  CHECK(seconds(*done.completed_at) == kT + 1);
  CHECK(done.result == Payload::blob(bytes.data(), bytes.size()));
  // A stale claim stores nothing.
  CHECK_FALSE(scheduler.complete(claimed.claim, Payload("again"), at(kT + 3)));
  CHECK(scheduler.get_job(job.id, at(kT + 3))->result == Payload::blob(bytes.data(), bytes.size()));
  // Without a result, it stays NULL.
  scheduler.add_job(Payload("other"), due_at(kT));
  const ClaimedJob other = *scheduler.claim_next_job(Seconds{60}, at(kT));
  REQUIRE(scheduler.complete(other.claim, at(kT + 1)));
  CHECK(scheduler.get_job(other.job.id)->result.is_null());
}

TEST_CASE("a snoozed job runs again after its delay, without spending an attempt",
          "[control][snooze]") {
  TempFile file("control-snooze");
  const bool on_file = GENERATE(true, false);
  auto scheduler = Scheduler::open(database(file, on_file));
  jobsched::JobOptions options = due_at(kT);
  options.max_attempts = 1;
  const Job job = scheduler.add_job(Payload("poll the API"), options);
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const double now = kT + 100.0 * round;
    const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(Seconds{60}, at(now));
    REQUIRE(claimed);
    CHECK(claimed->job.attempts == 1);  // on its only attempt, every time
    REQUIRE(scheduler.snooze(claimed->claim, Seconds{30}, at(now + 1)));
    const Job snoozed = *scheduler.get_job(job.id, at(now + 2));
    CHECK(seconds(snoozed.starts_at) == now + 31);
    CHECK(snoozed.attempts == 0);
    CHECK_FALSE(snoozed.locked_at);
    CHECK_FALSE(scheduler.claim_next_job(Seconds{60}, at(now + 30)));
    CHECK(scheduler.seconds_until_next_job(at(now + 2))->delay.count() == 29.0);
    // A snoozed claim is stale.
    CHECK_FALSE(scheduler.complete(claimed->claim, at(now + 3)));
  }
  SECTION("never past its expiry") {
    jobsched::JobOptions expiring = due_at(kT);
    expiring.expires_at = at(kT + 1000);
    const Job other = scheduler.add_job(Payload("expiring"), expiring);
    scheduler.delete_job(job.id);
    const ClaimedJob claimed = *scheduler.claim_next_job(Seconds{60}, at(kT + 500));
    REQUIRE(claimed.job.id == other.id);
    REQUIRE(scheduler.snooze(claimed.claim, Seconds{1e6}, at(kT + 501)));
    CHECK(seconds(scheduler.get_job(other.id, at(kT + 502))->starts_at) == kT + 1000);
  }
  SECTION("a bad delay is refused, naming it, and the claim holds") {
    const ClaimedJob claimed = *scheduler.claim_next_job(Seconds{60}, at(kT + 400));
    CHECK(contains(thrown<jobsched::InvalidArgumentError>([&] {
                     scheduler.snooze(claimed.claim, Seconds{-1}, at(kT + 401));
                   }).value_or(""),
                   "got -1 s"));
    CHECK(thrown<jobsched::InvalidArgumentError>(
        [&] { scheduler.snooze(claimed.claim, Seconds{std::nan("")}, at(kT + 401)); }));
    CHECK(scheduler.complete(claimed.claim, at(kT + 402)));
  }
}

TEST_CASE("a cancelled job never runs, and a running one's claim goes stale",
          "[control][cancel]") {
  TempFile file("control-cancel");
  const bool on_file = GENERATE(true, false);
  auto scheduler = Scheduler::open(database(file, on_file));
  const Job pending = scheduler.add_job(Payload("pending"), due_at(kT));
  const Job running = scheduler.add_job(Payload("running"), due_at(kT + 1));
  const ClaimedJob claimed = *scheduler.claim_next_job(Seconds{60}, at(kT + 1));
  REQUIRE(claimed.job.id == pending.id);
  // Cancel the other, not yet claimed; then the claimed one.
  REQUIRE(scheduler.cancel_job(running.id, "the customer left", at(kT + 2)));
  REQUIRE(scheduler.cancel_job(pending.id, "shutting down", at(kT + 3)));
  CHECK_FALSE(scheduler.claim_next_job(Seconds{60}, at(kT + 10)));
  CHECK_FALSE(scheduler.next_job(at(kT + 10)));
  CHECK(scheduler.count_pending_jobs(at(kT + 10)) == 0);
  {
    const Job cancelled = *scheduler.get_job(running.id, at(kT + 10));
    CHECK(cancelled.is_cancelled());
    CHECK(cancelled.is_failed());
    CHECK(seconds(*cancelled.cancelled_at) == kT + 2);
    CHECK(seconds(*cancelled.failed_at) == kT + 2);
    CHECK(cancelled.last_error == std::optional<std::string>("the customer left"));
  }
  // The running claim learns it: extend, complete and fail refuse it.
  jobsched::Claim claim = claimed.claim;
  CHECK_FALSE(scheduler.extend(claim, Seconds{60}, at(kT + 4)));
  CHECK_FALSE(scheduler.complete(claim, at(kT + 4)));
  CHECK_FALSE(scheduler.fail(claim, "oops", at(kT + 4)));
  CHECK(scheduler.get_job(pending.id)->last_error == std::optional<std::string>("shutting down"));
  // Listed with the failed jobs; cancelling again, or a completed job, changes nothing.
  CHECK(scheduler.failed_jobs(at(kT + 10)).size() == 2);
  CHECK_FALSE(scheduler.cancel_job(pending.id, "again", at(kT + 11)));
  CHECK(scheduler.get_job(pending.id)->last_error == std::optional<std::string>("shutting down"));
  CHECK_FALSE(scheduler.cancel_job(12345, "none", at(kT + 11)));
  // Retried, it is a job like any other again.
  REQUIRE(scheduler.retry_job(running.id, at(kT + 20)));
  CHECK_FALSE(scheduler.get_job(running.id, at(kT + 20))->is_cancelled());
  CHECK(scheduler.claim_next_job(Seconds{60}, at(kT + 20))->job.id == running.id);
}

TEST_CASE("a job completed or expired cannot be cancelled", "[control][cancel]") {
  auto scheduler = Scheduler::open(":memory:");
  const Job done = scheduler.add_job(Payload("done"), due_at(kT));
  scheduler.complete_job(done.id, at(kT));
  jobsched::JobOptions expiring = due_at(kT);
  expiring.expires_at = at(kT + 5);
  const Job expired = scheduler.add_job(Payload("expired"), expiring);
  const std::int64_t changes = sqlite3_total_changes64(scheduler.handle());
  CHECK_FALSE(scheduler.cancel_job(done.id, "late", at(kT + 10)));
  CHECK_FALSE(scheduler.cancel_job(expired.id, "late", at(kT + 10)));
  CHECK(sqlite3_total_changes64(scheduler.handle()) == changes);
  CHECK(scheduler.get_job(expired.id, at(kT + 10))->is_expired(at(kT + 10)));
}

TEST_CASE("cancels racing claims in other processes: each job ends completed or cancelled",
          "[control][cancel][processes]") {
  TempFile file("control-cancel-race");
  constexpr int kJobs = 400;
  {
    auto scheduler = Scheduler::open(file.path());
    std::vector<jobsched::NewJob> jobs(kJobs);
    scheduler.add_jobs(jobs);
  }
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      4,
      [&](auto report) {
        // Every process claims and cancels: a job with an odd id is cancelled unless a claim
        // got it first, the others are completed.
        auto scheduler = Scheduler::open(file.path());
        for (int id = 1; id <= kJobs; ++id) {
          if (id % 2 == 1 && scheduler.cancel_job(id, "odd"))
            report(-id);
          const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(Seconds{60});
          if (claimed && scheduler.complete(claimed->claim))
            report(claimed->job.id);
        }
        while (const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(Seconds{60})) {
          if (scheduler.complete(claimed->claim))
            report(claimed->job.id);
        }
        return 0;
      },
      std::chrono::seconds(60));
  for (const int code : reports.exit_codes)
    CHECK(code == 0);
  auto scheduler = Scheduler::open(file.path());
  int completed = 0;
  int cancelled = 0;
  for (int id = 1; id <= kJobs; ++id) {
    CAPTURE(id);
    const Job job = *scheduler.get_job(id);
    // Exactly one end, reported once, by the process that made it.
    CHECK(job.is_completed() != job.is_cancelled());
    const std::int64_t key = job.is_completed() ? id : -id;
    REQUIRE(reports.times_reported.count(key) == 1);
    CHECK(reports.times_reported.at(key) == 1);
    CHECK(reports.times_reported.count(job.is_completed() ? -id : id) == 0);
    if (id % 2 == 0)
      CHECK(job.is_completed());
    completed += job.is_completed() ? 1 : 0;
    cancelled += job.is_cancelled() ? 1 : 0;
  }
  CHECK(completed + cancelled == kJobs);
  CHECK(cancelled > 0);
}

}  // namespace test_control
