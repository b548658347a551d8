// SPDX-License-Identifier: MIT
// The query plans of every statement the library runs, on a fresh file, on one holding jobs in
// every state (after ANALYZE, and in a new connection), and on one migrated from version 1:
// each reads the index of the states it serves (or a row by its id), none sorts into a
// temporary b-tree (but the list of failed jobs), none scans the job table.

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

namespace test_query_plan {

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

/// A value bound to one parameter.
struct Param {
  enum Kind { null, real, integer, text } kind = null;
  double real_value = 0;
  std::int64_t integer_value = 0;
  std::string text_value;
};
Param real(double value) {
  return {Param::real, value, 0, {}};
}
Param integer(std::int64_t value) {
  return {Param::integer, 0, value, {}};
}
Param text(std::string value) {
  return {Param::text, 0, 0, std::move(value)};
}
Param null() {
  return {};
}

/// A statement, the values of ?2 on (?1 is always now, ?20 the default limit on attempts),
/// the index its plan must name, and whether it may sort.
struct Expected {
  const char* name;
  const char* sql;
  std::vector<Param> params;
  std::vector<const char*> must_use;  // index names, or "INTEGER PRIMARY KEY"
  bool may_sort = false;
  bool lists_schedules = false;  // reads every schedule, by name
};

std::vector<std::string> plan_of(sqlite3* db, const Expected& statement) {
  return jobsched_test::plan_of(db, statement.sql, [&](sqlite3_stmt* stmt) {
    const int count = sqlite3_bind_parameter_count(stmt);
    if (count >= 1)
      sqlite3_bind_double(stmt, 1, kNow);
    if (count >= 20)
      sqlite3_bind_int64(stmt, 20, 10);
    for (std::size_t i = 0; i < statement.params.size(); ++i) {
      const int index = static_cast<int>(i) + 2;
      const Param& param = statement.params[i];
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

constexpr const char* by_id = "INTEGER PRIMARY KEY";
constexpr const char* schedule_by_name = "sqlite_autoindex_schedule_1";

std::vector<Expected> statements() {
  namespace sql = jobsched::detail::sql;
  const Param top = integer(std::numeric_limits<int>::max());
  const std::vector<Param> held{integer(1), integer(12345), real(kNow + 30), text("e")};
  const Param moves = integer(sql::moves_per_write);
  return {
      // Reads.
      {"select_job", sql::select_job, {integer(1)}, {by_id}},
      {"select_payload", sql::select_payload, {integer(1)}, {by_id}},
      {"count_pending_jobs",
       sql::count_pending_jobs,
       {},
       {"ix_job_start_order", "ix_job_expiry", "ix_job_leases", "ix_job_expired"}},
      {"lagging_for_writes",
       sql::lagging_for_writes,
       {},
       {"ix_job_start_order", "ix_job_leases", "ix_job_expiry", "ix_job_expired",
        "ix_schedule_due"}},
      {"lagging_for_reads",
       sql::lagging_for_reads,
       {},
       {"ix_job_leases", "ix_job_expired", "ix_schedule_due"}},
      {"first_in_start_order (scheduled)",
       sql::first_in_start_order,
       {integer(0)},
       {"ix_job_start_order"}},
      {"first_in_start_order (available)",
       sql::first_in_start_order,
       {integer(1)},
       {"ix_job_start_order"}},
      {"first_in_start_order (leased)",
       sql::first_in_start_order,
       {integer(2)},
       {"ix_job_start_order"}},
      {"first_available", sql::first_available, {}, {"ix_job_claim_order"}},
      {"first_available_in_queue",
       sql::first_available_in_queue,
       {text("q1")},
       {"ix_job_queue_order"}},
      {"next_queue", sql::next_queue, {text("")}, {"ix_job_queue_order"}},
      {"next_priority",
       sql::next_priority,
       {text("q1"), top, integer(0)},
       {"ix_job_queue_order"}},
      {"first_due_in_level",
       sql::first_due_in_level,
       {text("q1"), integer(0), integer(2)},
       {"ix_job_queue_order"}},
      {"first_free_in_level",
       sql::first_free_in_level,
       {text("q1"), integer(0), integer(0)},
       {"ix_job_queue_order"}},
      {"unexpired_moved_out (any queue)",
       sql::unexpired_moved_out,
       {null()},
       {"ix_job_expired"}},
      {"unexpired_moved_out (one queue)",
       sql::unexpired_moved_out,
       {text("q1")},
       {"ix_job_expired"}},
      {"live_leases (any queue)", sql::live_leases, {null(), integer(2)}, {"ix_job_leases"}},
      {"live_leases (one queue)",
       sql::live_leases,
       {text("q1"), integer(2)},
       {"ix_job_leases"}},
      {"live_leases (moved on)", sql::live_leases, {null(), integer(1)}, {"ix_job_leases"}},
      // Sorts the failed jobs it returns (their failure time is a CASE of two columns).
      {"select_failed_jobs",
       sql::select_failed_jobs,
       {},
       {"ix_job_failed", "ix_job_leases"},
       true},
      // Writes of one job.
      {"complete_job", sql::complete_job, {integer(1), real(kNow)}, {by_id}},
      {"delete_job", sql::delete_job, {integer(1)}, {by_id}},
      {"delete_payload", sql::delete_payload, {integer(1)}, {by_id}},
      {"lock_job", sql::lock_job, {integer(1)}, {by_id}},
      {"unlock_job", sql::unlock_job, {integer(1)}, {by_id}},
      {"lock_job_by_id", sql::lock_job_by_id, {integer(1)}, {by_id}},
      {"claim_job", sql::claim_job, {integer(1), real(kNow + 30)}, {by_id}},
      {"select_claimed_job", sql::select_claimed_job, {integer(1)}, {by_id}},
      {"complete_claim", sql::complete_claim, held, {by_id}},
      {"extend_claim", sql::extend_claim, held, {by_id}},
      {"release_claim", sql::release_claim, held, {by_id}},
      {"select_claimed", sql::select_claimed, held, {by_id}},
      {"retry_later", sql::retry_later, held, {by_id}},
      {"fail_for_good", sql::fail_for_good, held, {by_id}},
      {"retry_job", sql::retry_job, {integer(1)}, {by_id}},
      {"move_free_job", sql::move_free_job, {integer(1)}, {by_id}},
      // A claim's upkeep.
      {"due_scheduled", sql::due_scheduled, {moves}, {"ix_job_start_order"}},
      {"expired_free", sql::expired_free, {moves}, {"ix_job_expiry"}},
      {"ran_out_leases", sql::ran_out_leases, {moves}, {"ix_job_leases"}},
      {"any_abandoned_job", sql::any_abandoned_job, {}, {"ix_job_leases"}},
      {"fail_abandoned_jobs", sql::fail_abandoned_jobs, {}, {"ix_job_leases"}},
      // Deleting many.
      {"delete_completed_payloads",
       sql::delete_completed_payloads,
       {},
       {"ix_job_completed"}},
      {"delete_completed_jobs", sql::delete_completed_jobs, {}, {"ix_job_completed"}},
      {"delete_expired_payloads",
       sql::delete_expired_payloads,
       {},
       {"ix_job_expired", "ix_job_expiry"}},
      {"delete_expired_jobs",
       sql::delete_expired_jobs,
       {},
       {"ix_job_expired", "ix_job_expiry"}},
      {"delete_failed_payloads", sql::delete_failed_payloads, {}, {"ix_job_failed"}},
      {"delete_failed_jobs", sql::delete_failed_jobs, {}, {"ix_job_failed"}},
      {"select_schedule", sql::select_schedule, {text("s")}, {schedule_by_name}},
      {"select_schedules", sql::select_schedules, {}, {schedule_by_name}, false, true},
      {"due_schedules", sql::due_schedules, {integer(16)}, {"ix_schedule_due"}},
      {"update_schedule", sql::update_schedule, {text("s")}, {schedule_by_name}},
      {"set_schedule_firings", sql::set_schedule_firings, {text("s")}, {schedule_by_name}},
      {"set_schedule_paused", sql::set_schedule_paused, {text("s")}, {schedule_by_name}},
      {"set_schedule_error", sql::set_schedule_error, {text("s")}, {schedule_by_name}},
      {"delete_schedule", sql::delete_schedule, {text("s")}, {schedule_by_name}},
      {"select_firing", sql::select_firing, {text("s"), real(kNow)}, {"ix_job_firing"}},
      {"withdraw_firing", sql::withdraw_firing, {integer(1), text("s")}, {by_id}},
      // Retention: a batch of old settled jobs.
      {"old_completed_jobs",
       sql::old_completed_jobs,
       {real(kNow - 10), integer(100)},
       {"ix_job_completed"}},
      {"old_failed_jobs",
       sql::old_failed_jobs,
       {real(kNow - 1000), integer(5), real(kNow - 10), real(kNow - 100), null(), integer(100)},
       {"ix_job_failed"}},
      {"old_abandoned_jobs",
       sql::old_abandoned_jobs,
       {real(kNow - 10), integer(100)},
       {"ix_job_leases"}},
      // Unique jobs.
      {"select_key_holder", sql::select_key_holder, {text("k")}, {"ix_job_unique"}},
      {"select_unique_key", sql::select_unique_key, {integer(1)}, {by_id}},
      {"move_out_expired", sql::move_out_expired, {integer(1)}, {by_id}},
      {"fail_abandoned_job", sql::fail_abandoned_job, {integer(1)}, {by_id}},
      {"key_completed_after",
       sql::key_completed_after,
       {text("k"), real(kNow - 3600)},
       {"ix_job_key_completed"}},
      {"replace_keyed_job", sql::replace_keyed_job, {integer(1)}, {by_id}},
      {"resume_queue", sql::resume_queue, {text("q")}, {"PRIMARY KEY"}},
      {"paused_queues", sql::paused_queues, {}, {"queue_pause"}},
      {"available_with_queue_in_claim_order",
       sql::available_with_queue_in_claim_order,
       {integer(65)},
       {"ix_job_claim_order"}},
  };
}

// Listing: each source's four statements (ties and after, both ways), any queue and one;
// the sources of lagging rows that their index does not hold in start order sort them
// (ranges as long as the lag). Stats: the open jobs in their covering index, in its order;
// the lagging ones grouped; settled ones grouped by their row's queue.
std::vector<Expected> listing_and_stats_statements() {
  namespace sql = jobsched::detail::sql;
  struct Listed {
    const char* name;
    const sql::Keyset* keyset;
    const char* index;
    bool sorts;
  };
  const Listed listed[] = {
      {"list_available", &sql::list_available, "ix_job_start_order", false},
      {"list_came_due", &sql::list_came_due, "ix_job_start_order", false},
      {"list_due_lease_ran_out", &sql::list_due_lease_ran_out, "ix_job_leases", true},
      {"list_due_moved_out", &sql::list_due_moved_out, "ix_job_expired", true},
      {"list_scheduled", &sql::list_scheduled, "ix_job_start_order", false},
      {"list_set_back", &sql::list_set_back, "ix_job_start_order", false},
      {"list_scheduled_lease_ran_out", &sql::list_scheduled_lease_ran_out, "ix_job_start_order",
       false},
      {"list_scheduled_moved_out", &sql::list_scheduled_moved_out, "ix_job_start_order", false},
      {"list_leased", &sql::list_leased, "ix_job_leases", false},
      {"list_leased_last", &sql::list_leased_last, "ix_job_leases", false},
      {"list_leased_scheduled", &sql::list_leased_scheduled, "ix_job_leases", false},
      {"list_leased_available", &sql::list_leased_available, "ix_job_leases", false},
      {"list_leased_moved_out", &sql::list_leased_moved_out, "ix_job_leases", false},
      {"list_locked", &sql::list_locked, "ix_job_start_order", false},
      {"list_completed", &sql::list_completed, "ix_job_completed", false},
      {"list_failed", &sql::list_failed, "ix_job_failed", false},
      {"list_abandoned", &sql::list_abandoned, "ix_job_leases", false},
      {"list_cancelled", &sql::list_cancelled, "ix_job_cancelled", false},
      {"list_expired", &sql::list_expired, "ix_job_expired", false},
      {"list_expired_in_place", &sql::list_expired_in_place, "ix_job_expiry", false},
      {"list_all", &sql::list_all, by_id, false},
  };
  std::vector<Expected> all;
  for (const Listed& source : listed) {
    const char* variants[] = {source.keyset->ties_ascending, source.keyset->after_ascending,
                              source.keyset->ties_descending, source.keyset->after_descending};
    for (const char* variant : variants) {
      for (const Param& queue : {null(), text("q1")}) {
        all.push_back({source.name, variant, {queue, real(kNow - 10), integer(5), integer(51)},
                       {source.index}, source.sorts});
      }
    }
  }
  all.push_back({"select_list_cursor", sql::select_list_cursor, {integer(1)}, {by_id}});
  all.push_back({"count_open_jobs", sql::count_open_jobs, {}, {"ix_job_queue_order"}});
  all.push_back({"count_lagging_jobs",
                 sql::count_lagging_jobs,
                 {},
                 {"ix_job_start_order", "ix_job_expiry", "ix_job_leases", "ix_job_expired"},
                 true});
  all.push_back(
      {"count_completed_jobs", sql::count_completed_jobs, {}, {"ix_job_completed"}, true});
  all.push_back({"count_failed_jobs", sql::count_failed_jobs, {}, {"ix_job_failed"}, true});
  all.push_back({"count_schedules", sql::count_schedules, {}, {}, false, true});
  return all;
}

/// The statements that claim and complete many jobs at once (sql::rows_per_settle): each job
/// found by id. Their batch's values are at ?21 on.
std::vector<Expected> many_row_statements() {
  namespace sql = jobsched::detail::sql;
  static const std::string claim_jobs = sql::claim_jobs(sql::rows_per_settle);
  static const std::string select_claimed_jobs = sql::select_claimed_jobs(sql::rows_per_settle);
  static const std::string select_held = sql::select_held(sql::rows_per_settle);
  static const std::string complete_claims = sql::complete_claims(sql::rows_per_settle);
  std::vector<Param> ids(19);        // ?2 to ?20
  ids[1] = real(kNow + 30);          // ?3, a claim's lease end
  ids[18] = integer(10);             // ?20, the default limit on attempts
  std::vector<Param> claims = ids;
  for (int row = 0; row < sql::rows_per_settle; ++row) {
    ids.push_back(integer(row + 1));
    claims.push_back(integer(row + 1));
    claims.push_back(integer(12345 + row));
  }
  ids.back() = null();  // a slot a short batch leaves over
  return {
      {"claim_jobs", claim_jobs.c_str(), ids, {by_id}},
      {"select_claimed_jobs", select_claimed_jobs.c_str(), ids, {by_id}},
      {"select_held", select_held.c_str(), claims, {by_id}},
      {"complete_claims", complete_claims.c_str(), claims, {by_id}},
  };
}

void check_plans(sqlite3* db) {
  std::vector<Expected> all = statements();
  for (const Expected& row : listing_and_stats_statements())
    all.push_back(row);
  for (const Expected& row : many_row_statements())
    all.push_back(row);
  for (const Expected& statement : all) {
    const std::vector<std::string> plan = plan_of(db, statement);
    INFO(statement.name << " plan:\n" << joined(plan));
    CAPTURE(statement.sql);
    CHECK_FALSE(plan.empty());
    if (!statement.may_sort)
      CHECK_FALSE(mentions(plan, "TEMP B-TREE"));
    CHECK_FALSE(scans_job_without_index(plan));
    CHECK_FALSE(mentions(plan, "SCAN job_payload"));
    if (!statement.lists_schedules)
      CHECK_FALSE(mentions(plan, "SCAN schedule"));
    for (const char* index : statement.must_use)
      CHECK(mentions(plan, index));
  }
}

/// `count` jobs in every state: ten queues, priorities -3 to 3, past and future starts,
/// completed, failed, expired (moved out and not), locked, claimed with a live or lapsed
/// lease, on a last attempt or not.
void add_jobs_in_every_state(jobsched::Scheduler& scheduler, int count) {
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
      options.max_attempts = 1;
    const jobsched::Job job = scheduler.add_job(jobsched::Payload("p"), options);
    if (i % 3 == 0)
      scheduler.complete_job(job.id, jobsched::from_unix_seconds(kNow - 1));
    else if (i % 17 == 0)
      scheduler.lock_job(job.id, jobsched::from_unix_seconds(kNow - 60'000));
  }
  exec_raw(scheduler.handle(), "COMMIT");
  // Claims at moments before now: leases that ran out and leases that still run, some on
  // a last attempt; failures; each claim moves some jobs on.
  for (int i = 0; i < 300; ++i) {
    const auto at = jobsched::from_unix_seconds(kNow - 200 + i * 0.5);
    const auto claimed = scheduler.claim_next_job(Seconds{i % 2 == 0 ? 10.0 : 100'000.0}, at);
    REQUIRE(claimed);
    if (i % 5 == 0)
      scheduler.fail(claimed->claim, "e", at);
  }
  // Schedules, paused and not, due and not.
  for (int i = 0; i < 50; ++i) {
    const std::string name = "s" + std::to_string(i);
    scheduler.put_schedule(name, jobsched::Rule::every(Seconds{60.0 + i}), {},
                           jobsched::from_unix_seconds(kNow - 100 * i));
    if (i % 4 == 0)
      scheduler.pause_schedule(name, jobsched::from_unix_seconds(kNow - 100 * i));
  }
}

}  // namespace

TEST_CASE("every statement reads the index of the states it serves, never sorting or scanning",
          "[query-plan]") {
  TempFile file("plan");
  jobsched::Options options;
  options.clock = [] { return jobsched::from_unix_seconds(kNow); };
  auto scheduler = jobsched::Scheduler::open(file.path(), options);
  REQUIRE(scheduler.migrated_from() == std::optional<int>(-1));
  sqlite3* db = scheduler.handle();
  SECTION("on a fresh file") {
    check_plans(db);
  }
  SECTION("on a fresh file, after ANALYZE") {
    exec_raw(db, "ANALYZE");
    check_plans(db);
  }
  SECTION("with 5000 jobs in every state, after ANALYZE") {
    add_jobs_in_every_state(scheduler, 5000);
    exec_raw(db, "ANALYZE");
    REQUIRE(query_int(db, "SELECT count(*) FROM sqlite_stat1") > 0);
    for (int state = 0; state <= 7; ++state) {
      CAPTURE(state);
      CHECK(query_int(db, "SELECT count(*) FROM job WHERE state = " + std::to_string(state)) > 0);
    }
    check_plans(db);
  }
  SECTION("with 5000 jobs in every state, after ANALYZE, in a new connection") {
    add_jobs_in_every_state(scheduler, 5000);
    exec_raw(db, "ANALYZE");
    auto raw = open_raw(file.path());
    check_plans(raw.get());
  }
}

TEST_CASE("every statement reads the same indexes on a file migrated from version 1",
          "[query-plan]") {
  TempFile file("plan-from-v1");
  write_v1_file(file.path(), 3000);
  auto scheduler = jobsched::Scheduler::open(file.path());
  REQUIRE(scheduler.migrated_from() == std::optional<int>(1));
  SECTION("with the seed's stale statistics") {
    check_plans(scheduler.handle());
  }
  SECTION("after ANALYZE") {
    exec_raw(scheduler.handle(), "ANALYZE");
    check_plans(scheduler.handle());
  }
  SECTION("after ANALYZE, in a new connection") {
    exec_raw(scheduler.handle(), "ANALYZE");
    auto raw = open_raw(file.path());
    check_plans(raw.get());
  }
}

}  // namespace test_query_plan
