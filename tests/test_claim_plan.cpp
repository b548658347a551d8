// SPDX-License-Identifier: MIT
// The query plans of the claim statements on a migrated file: the skip-scan probes read the
// claim-order index, the lease statements the lease index, a claim updates its job by id;
// none sorts into a temporary b-tree or scans the job table. And the work one claim does,
// counted in SQLite VM operations, stays flat as the number of stored jobs grows.

#include <sqlite3.h>

#include <cstdint>
#include <limits>
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

using jobsched::Seconds;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using jobsched_test::write_v1_file;

constexpr double kNow = 1'700'000'000.0;

/// A statement to explain, and the values of its parameters (by position, from ?1).
struct Param {
  enum Kind { null, real, integer, text } kind;
  double real_value = 0;
  std::int64_t integer_value = 0;
  std::string text_value;
};
Param now_param() {
  return {Param::real, kNow, 0, {}};
}
Param real_param(double value) {
  return {Param::real, value, 0, {}};
}
Param int_param(std::int64_t value) {
  return {Param::integer, 0, value, {}};
}
Param text_param(std::string value) {
  return {Param::text, 0, 0, std::move(value)};
}
Param null_param() {
  return {Param::null, 0, 0, {}};
}

/// The plan of `sql` with `params` bound to ?1, ?2, ...
std::vector<std::string> plan_of(sqlite3* db, const std::string& sql,
                                 const std::vector<Param>& params) {
  return jobsched_test::plan_of(db, sql, [&](sqlite3_stmt* stmt) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      const Param& param = params[i];
      switch (param.kind) {
        case Param::null:
          sqlite3_bind_null(stmt, index);
          break;
        case Param::real:
          sqlite3_bind_double(stmt, index, param.real_value);
          break;
        case Param::integer:
          sqlite3_bind_int64(stmt, index, param.integer_value);
          break;
        case Param::text:
          sqlite3_bind_text(stmt, index, param.text_value.c_str(), -1, SQLITE_TRANSIENT);
          break;
      }
    }
  });
}

struct Expected {
  const char* name;
  const char* sql;
  std::vector<Param> params;
  const char* must_use;   // an index name, or "INTEGER PRIMARY KEY"
  bool may_sort = false;  // checked for sorting by its own test
};

std::vector<Expected> claim_statements() {
  namespace sql = jobsched::detail::sql;
  const Param int_max = int_param(std::numeric_limits<int>::max());
  // ?1 is "now" in every statement, unbound where a statement does not use it.
  return {
      {"next_queue", sql::next_queue, {null_param(), text_param("")}, "ix_job_claim_order"},
      {"next_priority",
       sql::next_priority,
       {null_param(), text_param("q1"), int_max},
       "ix_job_claim_order"},
      {"first_due_in_level",
       sql::first_due_in_level,
       {now_param(), text_param("q1"), int_param(0)},
       "ix_job_claim_order"},
      {"first_free_in_level",
       sql::first_free_in_level,
       {now_param(), text_param("q1"), int_param(0)},
       "ix_job_claim_order"},
      {"live_leases (any queue)", sql::live_leases, {now_param(), null_param()}, "ix_job_leases"},
      {"live_leases (one queue)",
       sql::live_leases,
       {now_param(), text_param("q1")},
       "ix_job_leases"},
      {"any_abandoned_job", sql::any_abandoned_job, {now_param()}, "ix_job_leases"},
      {"fail_abandoned_jobs", sql::fail_abandoned_jobs, {now_param()}, "ix_job_leases"},
      {"claim_job",
       sql::claim_job,
       {now_param(), int_param(1), real_param(kNow + 30)},
       "INTEGER PRIMARY KEY"},
      {"select_claimed_job",
       sql::select_claimed_job,
       {now_param(), int_param(1)},
       "INTEGER PRIMARY KEY"},
  };
}

/// The statements on claims that act on one job by its id or read the failed jobs.
std::vector<Expected> by_id_statements() {
  namespace sql = jobsched::detail::sql;
  const std::vector<Param> held{now_param(), int_param(1), int_param(12345), real_param(kNow + 30),
                                text_param("e")};
  return {
      {"complete_claim", sql::complete_claim, held, "INTEGER PRIMARY KEY"},
      {"extend_claim", sql::extend_claim, held, "INTEGER PRIMARY KEY"},
      {"release_claim", sql::release_claim, held, "INTEGER PRIMARY KEY"},
      {"select_claimed", sql::select_claimed, held, "INTEGER PRIMARY KEY"},
      {"retry_later", sql::retry_later, held, "INTEGER PRIMARY KEY"},
      {"fail_for_good", sql::fail_for_good, held, "INTEGER PRIMARY KEY"},
      {"retry_job", sql::retry_job, {now_param(), int_param(1)}, "INTEGER PRIMARY KEY"},
      // Sorts the failed jobs it returns (their failure time is a CASE of two columns).
      {"select_failed_jobs", sql::select_failed_jobs, {now_param()}, "ix_job_failed", true},
      {"delete_failed_jobs", sql::delete_failed_jobs, {}, "ix_job_failed"},
  };
}

/// `sorting`: whether to check the statements that may sort (only those) for sorting.
void check_plans(sqlite3* db, const std::vector<Expected>& statements, bool sorting = false) {
  for (const Expected& statement : statements) {
    if (sorting && !statement.may_sort)
      continue;
    const std::vector<std::string> plan = plan_of(db, statement.sql, statement.params);
    INFO(statement.name << " plan:\n" << joined(plan));
    CAPTURE(statement.sql);
    CHECK_FALSE(plan.empty());
    if (sorting || !statement.may_sort)
      CHECK_FALSE(mentions(plan, "TEMP B-TREE"));
    CHECK_FALSE(scans_job_without_index(plan));
    CHECK(mentions(plan, statement.must_use));
  }
}

/// `count` varied jobs: ten queues, priorities -3 to 3, past and future starts; some
/// completed, failed, expired, locked for good, or claimed with a live or lapsed lease.
void add_varied_jobs(jobsched::Scheduler& scheduler, int count) {
  exec_raw(scheduler.handle(), "BEGIN");
  for (int i = 0; i < count; ++i) {
    jobsched::JobOptions options;
    options.created_at = jobsched::from_unix_seconds(kNow - 100'000);
    options.starts_at = jobsched::from_unix_seconds(kNow - 50'000 + (i * 37 % 100'000));
    if (i % 10 == 3)
      options.expires_at = *options.starts_at + Seconds{100};
    options.priority = i % 7 - 3;
    options.queue = i % 10 == 0 ? "" : "q" + std::to_string(i % 10);
    if (i % 13 == 0)
      options.max_attempts = 3;
    const jobsched::Job job = scheduler.add_job(jobsched::Payload("p"), options);
    if (i % 3 == 0)
      scheduler.complete_job(job.id, jobsched::from_unix_seconds(kNow - 1));
  }
  const std::string now = std::to_string(kNow);
  exec_raw(scheduler.handle(),
           "UPDATE job SET failed_at = " + now +
               " - 5, attempts = 3, last_error = 'x'"
               " WHERE completed_at IS NULL AND id % 11 = 0;"
               "UPDATE job SET locked_at = " +
               now +
               " - 9 WHERE completed_at IS NULL"
               " AND failed_at IS NULL AND id % 17 = 0;"
               "UPDATE job SET locked_at = " +
               now +
               " - 9, attempts = 1,"
               " lease_until = " +
               now +
               " + (id % 5 - 2) * 30, claim_token = id"
               " WHERE completed_at IS NULL AND failed_at IS NULL AND locked_at IS NULL"
               " AND id % 19 = 0;");
  exec_raw(scheduler.handle(), "COMMIT");
}

}  // namespace

TEST_CASE("the claim statements read the claim-order and lease indexes, never sorting",
          "[query-plan]") {
  TempFile file("claim-plan");
  auto scheduler = jobsched::Scheduler::open(file.path());
  REQUIRE(scheduler.migrated_from() == std::optional<int>(-1));
  sqlite3* db = scheduler.handle();
  SECTION("on a fresh file") {
    check_plans(db, claim_statements());
    check_plans(db, by_id_statements());
  }
  SECTION("on a fresh file, after ANALYZE") {
    exec_raw(db, "ANALYZE");
    check_plans(db, claim_statements());
    check_plans(db, by_id_statements());
  }
  SECTION("with 5000 varied jobs, after ANALYZE") {
    add_varied_jobs(scheduler, 5000);
    exec_raw(db, "ANALYZE");
    REQUIRE(query_int(db, "SELECT count(*) FROM sqlite_stat1") > 0);
    REQUIRE(query_int(db, "SELECT count(*) FROM job WHERE failed_at IS NOT NULL") > 100);
    REQUIRE(query_int(db, "SELECT count(*) FROM job WHERE lease_until IS NOT NULL") > 50);
    check_plans(db, claim_statements());
    check_plans(db, by_id_statements());
  }
  SECTION("with 5000 varied jobs, after ANALYZE, in a new connection") {
    add_varied_jobs(scheduler, 5000);
    exec_raw(db, "ANALYZE");
    auto raw = open_raw(file.path());
    check_plans(raw.get(), claim_statements());
    check_plans(raw.get(), by_id_statements());
  }
}

TEST_CASE("the claim statements read the same indexes on a file migrated from version 1",
          "[query-plan]") {
  TempFile file("claim-plan-v1");
  write_v1_file(file.path(), 3000);
  auto scheduler = jobsched::Scheduler::open(file.path());
  REQUIRE(scheduler.migrated_from() == std::optional<int>(1));
  SECTION("with the seed's stale statistics") {
    check_plans(scheduler.handle(), claim_statements());
  }
  SECTION("after ANALYZE") {
    exec_raw(scheduler.handle(), "ANALYZE");
    check_plans(scheduler.handle(), claim_statements());
  }
}

TEST_CASE("the live leases are read in order of their end, without sorting the held jobs",
          "[query-plan]") {
  // seconds_until_next_job walks them from the first end and stops at the first lease that
  // ends after the best time found, so they must come from ix_job_leases in order.
  TempFile file("claim-plan-lease-sort");
  auto scheduler = jobsched::Scheduler::open(file.path());
  SECTION("on a fresh file") {
    check_plans(scheduler.handle(), claim_statements());
  }
  SECTION("with 5000 varied jobs, after ANALYZE") {
    add_varied_jobs(scheduler, 5000);
    exec_raw(scheduler.handle(), "ANALYZE");
    check_plans(scheduler.handle(), claim_statements());
  }
}

// ---- The work of a claim ---------------------------------------------------------------------

namespace {

int count_progress(void* counter) {
  ++*static_cast<long*>(counter);
  return 0;  // go on
}

/// A file holding `stored` jobs in 5 queues and 4 priority levels: most start in the future,
/// a third are completed, and 40 are due. Returns the SQLite VM operations (in units of 10)
/// spent by 20 claims, each completed at once.
long claim_work(int stored, bool with_expired = false) {
  TempFile file("claim-work");
  jobsched::Options options;
  options.clock = [] { return jobsched::from_unix_seconds(kNow); };
  options.synchronous = jobsched::Synchronous::normal;
  auto scheduler = jobsched::Scheduler::open(file.path(), options);
  exec_raw(scheduler.handle(), "BEGIN");
  int completed = 0;
  for (int i = 0; i < stored; ++i) {
    jobsched::JobOptions job;
    job.created_at = jobsched::from_unix_seconds(kNow - 1000);
    job.starts_at = jobsched::from_unix_seconds(i < 40 ? kNow - 40 + i : kNow + 10 + i);
    if (with_expired && i >= 40 && i % 3 == 1) {  // expired long ago, never deleted
      job.starts_at = jobsched::from_unix_seconds(kNow - 500 - i * 0.01);
      job.expires_at = job.starts_at;
    }
    job.priority = i % 4;
    job.queue = "q" + std::to_string(i % 5);
    const jobsched::Job added = scheduler.add_job(jobsched::Payload("p"), job);
    if (i >= 40 && i % 3 == 0)
      completed += scheduler.complete_job(added.id) ? 1 : 0;
  }
  exec_raw(scheduler.handle(), "COMMIT");
  exec_raw(scheduler.handle(), "ANALYZE");
  REQUIRE(completed > stored / 4);
  const long expired =
      with_expired ? query_int(scheduler.handle(), "SELECT count(*) FROM job WHERE expires_at < " +
                                                       std::to_string(kNow))
                   : 0;
  REQUIRE(scheduler.count_pending_jobs() == stored - completed - expired);

  long counter = 0;
  sqlite3_progress_handler(scheduler.handle(), 10, count_progress, &counter);
  for (int i = 0; i < 20; ++i) {
    const auto claimed = scheduler.claim_next_job(Seconds{30});
    REQUIRE(claimed.has_value());
    REQUIRE(scheduler.complete(claimed->claim));
  }
  sqlite3_progress_handler(scheduler.handle(), 0, nullptr, nullptr);
  return counter;
}

}  // namespace

TEST_CASE("a claim does about as much work with 20000 jobs stored as with 1000", "[performance]") {
  const long small = claim_work(1000);
  const long large = claim_work(20'000);
  INFO("VM operations / 10 for 20 claims: " << small << " at 1000 jobs, " << large
                                            << " at 20000 jobs");
  CHECK(small > 0);
  CHECK(large <= 2 * small);
}

TEST_CASE(
    "a claim does about as much work with 20000 jobs stored as with 1000, when a third"
    " of them expired long ago",
    "[.][performance][known-limitation]") {
  // Expired jobs stay in the partial claim-order index (it holds every job neither completed
  // nor failed) until delete_expired_jobs runs, and they start before now, so each level's
  // probe for its first due job steps over all of them: the work grows with their number.
  // next_job has the same shape on ix_job_pending_starts_at.
  const long small = claim_work(1000, true);
  const long large = claim_work(20'000, true);
  INFO("VM operations / 10 for 20 claims: " << small << " at 1000 jobs, " << large
                                            << " at 20000 jobs");
  CHECK(small > 0);
  CHECK(large <= 2 * small);
}
