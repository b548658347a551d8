// SPDX-License-Identifier: MIT
// Kept counts (Scheduler::keep_counts): the job_count table, kept by triggers, equals a count
// of the rows after every kind of change (each call, the host's own SQL, a rollback, another
// process's writes), and stats read from it equals stats counted by walking the jobs.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "catch.hpp"
#include "jobsched/jobsched.hpp"
#include "jobsched/testing.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_counts {

namespace {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::Seconds;

constexpr double kStart = 1'700'000'000.0;

jobsched::TimePoint at(double seconds) { return jobsched::from_unix_seconds(seconds); }

using Counts = std::map<std::tuple<std::string, std::int64_t>, std::int64_t>;

Counts rows_of(sqlite3* db, const char* sql) {
  Counts counts;
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    counts[{reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)),
            sqlite3_column_int64(stmt, 1)}] = sqlite3_column_int64(stmt, 2);
  }
  sqlite3_finalize(stmt);
  return counts;
}

// The kept counts, and the same counted from the rows.
Counts kept(Scheduler& scheduler) {
  return rows_of(scheduler.handle(), "SELECT queue, kind, jobs FROM job_count WHERE jobs <> 0");
}
Counts counted(Scheduler& scheduler) {
  return rows_of(scheduler.handle(),
                 "SELECT queue, CASE WHEN state = 7 AND cancelled_at IS NOT NULL THEN 8"
                 " ELSE state END, count(*) FROM job GROUP BY 1, 2");
}

std::int64_t query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const std::int64_t value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

void exec(sqlite3* db, const char* sql) {
  REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
}

// Every count of a Stats, by queue, to compare two.
std::map<std::string, std::vector<std::int64_t>> by_queue(const jobsched::Stats& stats) {
  std::map<std::string, std::vector<std::int64_t>> table;
  for (const jobsched::QueueStats& queue : stats.queues) {
    jobsched::JobCounts jobs = queue.jobs;
    for (const jobsched::JobState state : jobsched::all_job_states)
      table[queue.queue].push_back(jobs[state]);
  }
  return table;
}

// Stats at the clock's now, read from the kept counts, then walked with them turned off.
void check_stats_agree(Scheduler& scheduler) {
  REQUIRE(scheduler.counts_kept());
  const jobsched::Stats from_counts = scheduler.stats();
  scheduler.keep_counts(false);
  REQUIRE_FALSE(scheduler.counts_kept());
  const jobsched::Stats walked = scheduler.stats();
  scheduler.keep_counts(true);
  CHECK(by_queue(from_counts) == by_queue(walked));
  CHECK(from_counts.oldest_due.has_value() == walked.oldest_due.has_value());
}

}  // namespace

TEST_CASE("kept counts equal the rows after every kind of change, and stats agree", "[counts]") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  jobsched_test::TempFile file("counts");
  jobsched::testing::ManualClock clock(at(kStart));
  jobsched::Options options = clock.options();
  options.retry.max_attempts = 2;  // so that jobs reach their last attempt, and fail
  auto scheduler = Scheduler::open(where == "file" ? file.path() : ":memory:", options);
  scheduler.keep_counts(true);
  REQUIRE(scheduler.counts_kept());
  std::mt19937 random(7);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  const std::vector<std::string> queues{"", "mail", "video"};
  std::vector<std::int64_t> ids;
  std::vector<jobsched::Claim> claims;
  double now = kStart;
  int kinds_seen = 0;
  for (int step = 0; step < 600; ++step) {
    CAPTURE(step);
    const int action = pick(16);
    const std::int64_t some_id = ids.empty() ? 1 : ids[static_cast<std::size_t>(pick(static_cast<int>(ids.size())))];
    switch (action) {
      case 0:
      case 1:
      case 2: {
        JobOptions job;
        job.queue = queues[static_cast<std::size_t>(pick(3))];
        const double start = now + pick(20);
        job.starts_at = at(start);
        if (pick(3) == 0)
          job.expires_at = at(start + 1 + pick(30));
        if (pick(4) == 0)
          job.unique = jobsched::Unique{"key" + std::to_string(pick(5))};
        ids.push_back(scheduler.add_job(Payload::text("x"), job).id);
        break;
      }
      case 3:
      case 4:
        if (auto claimed = scheduler.claim_next_job(Seconds{5 + pick(10)}))
          claims.push_back(claimed->claim);
        break;
      case 5:
        for (const jobsched::ClaimedJob& claimed : scheduler.claim_jobs(3, Seconds{10}))
          claims.push_back(claimed.claim);
        break;
      case 6:
      case 7:
        if (!claims.empty()) {
          const jobsched::Claim claim = claims.back();
          claims.pop_back();
          switch (pick(4)) {
            case 0:
              scheduler.complete(claim);
              break;
            case 1:
              scheduler.fail(claim, "boom");
              break;
            case 2:
              scheduler.release(claim);
              break;
            default:
              scheduler.snooze(claim, Seconds{3});
              break;
          }
        }
        break;
      case 8:
        scheduler.cancel_job(some_id, "no longer wanted");
        break;
      case 9:
        try {
          scheduler.retry_job(some_id);
        } catch (const jobsched::Error&) {
          // A key another open job holds: refused with nothing changed.
        }
        break;
      case 10:
        if (pick(2) == 0) {
          scheduler.lock_job(some_id);
        } else {
          scheduler.unlock_job(some_id);
        }
        break;
      case 11:
        scheduler.delete_job(some_id);
        break;
      case 12:
        now += pick(8);
        clock.set(at(now));
        break;
      case 13: {
        // The host's own SQL: a queue changed, a row deleted, and a rolled-back delete.
        const std::string id = std::to_string(some_id);
        exec(scheduler.handle(), ("UPDATE job SET queue = 'moved' WHERE id = " + id).c_str());
        exec(scheduler.handle(), "BEGIN; DELETE FROM job; ROLLBACK;");
        if (pick(3) == 0)
          exec(scheduler.handle(), ("DELETE FROM job WHERE id = " + id).c_str());
        break;
      }
      case 14:
        switch (pick(4)) {
          case 0:
            scheduler.prune(jobsched::PruneAges{Seconds{5}, Seconds{10}, Seconds{1}});
            break;
          case 1:
            scheduler.delete_completed_jobs();
            break;
          case 2:
            scheduler.delete_expired_jobs();
            break;
          default:
            scheduler.delete_failed_jobs();
            break;
        }
        break;
      default: {
        // Inside a transaction of the host's that rolls back, nothing counts.
        const Counts before = kept(scheduler);
        {
          auto transaction = scheduler.transaction();
          scheduler.add_job(Payload::text("undone"));
          scheduler.claim_next_job(Seconds{10});
        }
        CHECK(kept(scheduler) == before);
        break;
      }
    }
    REQUIRE(kept(scheduler) == counted(scheduler));
    if (step % 50 == 49)
      check_stats_agree(scheduler);
    kinds_seen |= [&] {
      int seen = 0;
      for (const auto& [key, jobs] : kept(scheduler))
        seen |= 1 << std::get<1>(key);
      return seen;
    }();
  }
  // Every kind was counted at some point: 0 to 8 (5 expired moved out, 8 cancelled).
  CHECK(kinds_seen == 0x1ff);
}

TEST_CASE("keep_counts counts the jobs already there, stops, and recounts", "[counts]") {
  jobsched_test::TempFile file("counts-later");
  jobsched::testing::ManualClock clock(at(kStart));
  auto scheduler = Scheduler::open(file.path(), clock.options());
  for (int i = 0; i < 30; ++i) {
    JobOptions options;
    options.queue = i % 3 == 0 ? "a" : "b";
    scheduler.add_job(Payload::text("x"), options);
  }
  const std::optional<jobsched::ClaimedJob> claimed = scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed);
  scheduler.complete(claimed->claim);
  scheduler.cancel_job(claimed->job.id + 1);
  CHECK_FALSE(scheduler.counts_kept());
  scheduler.keep_counts(true);
  CHECK(scheduler.counts_kept());
  CHECK(kept(scheduler) == counted(scheduler));
  CHECK(kept(scheduler).at({"a", 6}) == 1);
  CHECK(kept(scheduler).at({"b", 8}) == 1);
  // stats reads them (not the jobs): a count changed by hand shows.
  CHECK(scheduler.stats().totals.completed == 1);
  exec(scheduler.handle(), "UPDATE job_count SET jobs = 1000 WHERE queue = 'a' AND kind = 6");
  CHECK(scheduler.stats().totals.completed == 1000);
  // Twice is once (and true again does not recount while every trigger is there).
  scheduler.keep_counts(true);
  CHECK(kept(scheduler).at({"a", 6}) == 1000);
  exec(scheduler.handle(), "UPDATE job_count SET jobs = 1 WHERE queue = 'a' AND kind = 6");
  CHECK(kept(scheduler) == counted(scheduler));
  // Off: the table and its triggers go; writes carry on.
  scheduler.keep_counts(false);
  CHECK_FALSE(scheduler.counts_kept());
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM sqlite_master WHERE name LIKE 'job_count%'") == 0);
  scheduler.add_job(Payload::text("while off"));
  scheduler.keep_counts(false);
  // A trigger gone missing (the host dropped it): true again recounts and restores it.
  scheduler.keep_counts(true);
  exec(scheduler.handle(), "DROP TRIGGER job_count_delete");
  CHECK_FALSE(scheduler.counts_kept());
  exec(scheduler.handle(), "DELETE FROM job WHERE queue = 'a'");
  scheduler.keep_counts(true);
  CHECK(scheduler.counts_kept());
  CHECK(kept(scheduler) == counted(scheduler));
  CHECK(kept(scheduler).count({"a", 1}) == 0);
  // Another connection sees them, and counts with them.
  auto other = Scheduler::open(file.path(), clock.options());
  CHECK(other.counts_kept());
  other.add_job(Payload::text("from the other connection"));
  CHECK(kept(scheduler) == counted(scheduler));
}

TEST_CASE("keep_counts on a read-only scheduler throws ReadOnlyError, changing nothing",
          "[counts]") {
  jobsched_test::TempFile file("counts-read-only");
  { Scheduler::open(file.path()).add_job(Payload::text("x")); }
  jobsched::Options options;
  options.read_only = true;
  auto reader = Scheduler::open(file.path(), options);
  CHECK_THROWS_AS(reader.keep_counts(true), jobsched::ReadOnlyError);
  CHECK_FALSE(reader.counts_kept());
  CHECK(reader.stats().totals.available == 1);
}

TEST_CASE("writes from other processes keep the counts", "[counts][processes]") {
  jobsched_test::TempFile file("counts-processes");
  {
    auto scheduler = Scheduler::open(file.path());
    scheduler.keep_counts(true);
    for (int i = 0; i < 200; ++i) {
      JobOptions options;
      options.queue = "q" + std::to_string(i % 4);
      scheduler.add_job(Payload::text("x"), options);
    }
  }
  // 4 processes: each adds 50 jobs and claims and settles 50 (completed, failed, cancelled).
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      4,
      [&](auto report) {
        jobsched::Options options;
        options.retry.max_attempts = 1;  // a failure is final
        auto scheduler = Scheduler::open(file.path(), options);
        for (int i = 0; i < 50; ++i) {
          scheduler.add_job(Payload::text("more"));
          if (auto claimed = scheduler.claim_next_job(Seconds{60})) {
            if (i % 3 == 0) {
              scheduler.complete(claimed->claim);
            } else if (i % 3 == 1) {
              scheduler.fail(claimed->claim, "boom");
            } else {
              scheduler.cancel_job(claimed->job.id);
            }
            report(1);
          }
        }
        return 0;
      },
      std::chrono::seconds(60));
  for (const int code : reports.exit_codes)
    CHECK(code == 0);
  auto scheduler = Scheduler::open(file.path());
  CHECK(kept(scheduler) == counted(scheduler));
  const jobsched::Stats stats = scheduler.stats();
  CHECK(stats.totals.completed + stats.totals.failed + stats.totals.cancelled == 200);
  CHECK(stats.totals.available == 200);
  check_stats_agree(scheduler);
}

}  // namespace test_counts
