// SPDX-License-Identifier: MIT
// The query plans of the library's own SQL on a migrated file: the next job comes from the
// partial index on pending jobs in (starts_at, id) order, never from a sort, never from the
// seed's ix_job_completed_at_expires_at, never from a full scan; counting reads a covering
// index. Checked on a fresh file and on one migrated from version 1, before and after ANALYZE.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/python_files.hpp"
#include "support/query_plan.hpp"
#include "support/temp_file.hpp"

using jobsched_test::joined;
using jobsched_test::mentions;
using jobsched_test::scans_job_without_index;

namespace {

using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::TempFile;
using jobsched_test::write_v1_file;

constexpr double kNow = 1'700'000'000.0;

/// The plan of one of the library's statements, with ?1 ("now") bound.
std::vector<std::string> plan_of(sqlite3* db, const std::string& sql) {
  return jobsched_test::plan_of(db, sql,
                                [](sqlite3_stmt* stmt) { sqlite3_bind_double(stmt, 1, kNow); });
}

/// The next-job statements: from the pending partial index, in order, no sort.
void check_next_job_plan(sqlite3* db, const char* name, const char* sql) {
  const std::vector<std::string> plan = plan_of(db, sql);
  INFO(name << " plan:\n" << joined(plan));
  CAPTURE(sql);
  CHECK_FALSE(plan.empty());
  CHECK_FALSE(mentions(plan, "TEMP B-TREE"));
  CHECK_FALSE(mentions(plan, "ix_job_completed_at_expires_at"));
  CHECK_FALSE(mentions(plan, "ix_job_starts_at_expires_at"));
  CHECK_FALSE(scans_job_without_index(plan));
  CHECK(mentions(plan, "ix_job_pending_starts_at"));
}

/// The next-job statements, and deleting expired jobs through the pending expiry index.
void check_all_plans(sqlite3* db) {
  using namespace jobsched::detail;
  check_next_job_plan(db, "select_next_job", sql::select_next_job);
  check_next_job_plan(db, "select_next_start", sql::select_next_start);
  check_next_job_plan(db, "lock_next_job", sql::lock_next_job);

  const std::vector<std::string> plan = plan_of(db, sql::delete_expired_jobs);
  INFO("delete_expired_jobs plan:\n" << joined(plan));
  CHECK_FALSE(scans_job_without_index(plan));
  CHECK_FALSE(mentions(plan, "ix_job_completed_at_expires_at"));
  CHECK(mentions(plan, "ix_job_pending_expires_at"));
}

/// Counting: every open job (a walk of the partial index, no comparison per entry) less the
/// expired range; both read the covering index only.
void check_count_plan(sqlite3* db) {
  const std::vector<std::string> plan = plan_of(db, jobsched::detail::sql::count_pending_jobs);
  INFO("count_pending_jobs plan:\n" << joined(plan));
  CHECK_FALSE(scans_job_without_index(plan));
  CHECK_FALSE(mentions(plan, "TEMP B-TREE"));
  CHECK_FALSE(mentions(plan, "ix_job_completed_at_expires_at"));
  int covering = 0;
  for (const std::string& line : plan) {
    if (line.find("USING COVERING INDEX ix_job_pending_expires_at") != std::string::npos) {
      ++covering;
    }
  }
  CHECK(covering == 2);
}

/// `count` jobs through the scheduler: most completed (as files that run a long time are),
/// some expired, the rest pending with and without expiry.
void add_jobs(jobsched::Scheduler& scheduler, int count) {
  exec_raw(scheduler.handle(), "BEGIN");
  for (int i = 0; i < count; ++i) {
    const double created = kNow - 10'000 + i;
    jobsched::JobOptions options;
    options.created_at = jobsched::from_unix_seconds(created);
    options.starts_at = jobsched::from_unix_seconds(created + (i % 7) * 100.0);
    if (i % 3 == 0)
      options.expires_at = jobsched::from_unix_seconds(created + 20'000);
    if (i % 11 == 0)
      options.expires_at = *options.starts_at;  // long expired
    const jobsched::Job job = scheduler.add_job(jobsched::Payload("p"), options);
    if (i % 4 != 0)
      scheduler.complete_job(job.id, jobsched::from_unix_seconds(kNow - 1));
  }
  exec_raw(scheduler.handle(), "COMMIT");
}

}  // namespace

TEST_CASE("the next-job queries on a fresh file read the pending index without sorting",
          "[query-plan]") {
  TempFile file("plan-fresh");
  auto scheduler = jobsched::Scheduler::open(file.path());
  REQUIRE(scheduler.migrated_from() == std::optional<int>(-1));
  SECTION("empty") {
    check_all_plans(scheduler.handle());
  }
  SECTION("empty, after ANALYZE") {
    exec_raw(scheduler.handle(), "ANALYZE");
    check_all_plans(scheduler.handle());
  }
  SECTION("with jobs, after ANALYZE") {
    add_jobs(scheduler, 2000);
    exec_raw(scheduler.handle(), "ANALYZE");
    REQUIRE(jobsched_test::query_int(scheduler.handle(), "SELECT count(*) FROM sqlite_stat1") > 0);
    check_all_plans(scheduler.handle());
  }
  SECTION("with only pending jobs that never expire, after ANALYZE") {
    exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 0; i < 2000; ++i) {
      jobsched::JobOptions options;
      options.created_at = jobsched::from_unix_seconds(kNow + i);
      scheduler.add_job(jobsched::Payload("p"), options);
    }
    exec_raw(scheduler.handle(), "COMMIT");
    exec_raw(scheduler.handle(), "ANALYZE");
    check_all_plans(scheduler.handle());
  }
}

TEST_CASE("the next-job queries on a file migrated from version 1 read the pending index",
          "[query-plan]") {
  TempFile file("plan-from-v1");
  write_v1_file(file.path(), 3000);
  auto scheduler = jobsched::Scheduler::open(file.path());
  REQUIRE(scheduler.migrated_from() == std::optional<int>(1));
  SECTION("as migrated (with the seed's stale statistics)") {
    check_all_plans(scheduler.handle());
  }
  SECTION("after ANALYZE") {
    exec_raw(scheduler.handle(), "ANALYZE");
    check_all_plans(scheduler.handle());
  }
  SECTION("after ANALYZE, in a new connection") {
    exec_raw(scheduler.handle(), "ANALYZE");
    auto raw = open_raw(file.path());
    check_all_plans(raw.get());
  }
}

TEST_CASE("counting pending jobs reads only the covering index of pending expiry times",
          "[query-plan]") {
  SECTION("a fresh file") {
    TempFile file("plan-count-fresh");
    auto scheduler = jobsched::Scheduler::open(file.path());
    check_count_plan(scheduler.handle());
  }
  SECTION("a fresh file holding only pending jobs that never expire, after ANALYZE") {
    TempFile file("plan-count-never-expire");
    auto scheduler = jobsched::Scheduler::open(file.path());
    exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 0; i < 2000; ++i) {
      jobsched::JobOptions options;
      options.created_at = jobsched::from_unix_seconds(kNow + i);
      scheduler.add_job(jobsched::Payload("p"), options);
    }
    exec_raw(scheduler.handle(), "COMMIT");
    exec_raw(scheduler.handle(), "ANALYZE");
    check_count_plan(scheduler.handle());
  }
  SECTION("a file migrated from version 1, after ANALYZE") {
    TempFile file("plan-count-from-v1");
    write_v1_file(file.path(), 3000);
    auto scheduler = jobsched::Scheduler::open(file.path());
    REQUIRE(scheduler.migrated_from() == std::optional<int>(1));
    exec_raw(scheduler.handle(), "ANALYZE");
    check_count_plan(scheduler.handle());
  }
}
