// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "transaction.hpp"

namespace jobsched::detail {

// A statement's SQL without its INDEXED BY clauses, for the views that show an older file
// to a read-only scheduler (views have no indexes).
inline std::string without_indexed_by(std::string sql) {
  static constexpr std::string_view clause = " INDEXED BY ";
  for (std::size_t at = sql.find(clause); at != std::string::npos; at = sql.find(clause, at)) {
    std::size_t end = at + clause.size();
    while (end < sql.size() && sql[end] != ' ')
      ++end;
    sql.erase(at, end - at);
  }
  return sql;
}

inline std::string prepared(const char* sql, bool views) {
  return views ? without_indexed_by(sql) : std::string(sql);
}

// The statements that only read, prepared on every connection (read-only ones included).
// `views`: the job table is a view (see show_as_current).
struct ReadStatements {
  ReadStatements(sqlite3* db, bool views)
      : select_job(db, prepared(sql::select_job, views)),
        count_pending_jobs(db, prepared(sql::count_pending_jobs, views)),
        lagging_for_writes(db, prepared(sql::lagging_for_writes, views)),
        lagging_for_reads(db, prepared(sql::lagging_for_reads, views)),
        first_in_start_order(db, prepared(sql::first_in_start_order, views)),
        first_available(db, prepared(sql::first_available, views)),
        first_available_in_queue(db, prepared(sql::first_available_in_queue, views)),
        available_in_claim_order(db, prepared(sql::available_in_claim_order, views)),
        available_in_queue_in_claim_order(
            db, prepared(sql::available_in_queue_in_claim_order, views)),
        available_with_queue_in_claim_order(
            db, prepared(sql::available_with_queue_in_claim_order, views)),
        next_queue(db, prepared(sql::next_queue, views)),
        next_priority(db, prepared(sql::next_priority, views)),
        first_due_in_level(db, prepared(sql::first_due_in_level, views)),
        first_free_in_level(db, prepared(sql::first_free_in_level, views)),
        unexpired_moved_out(db, prepared(sql::unexpired_moved_out, views)),
        live_leases(db, prepared(sql::live_leases, views)),
        select_failed_jobs(db, prepared(sql::select_failed_jobs, views)),
        select_payload(db, prepared(sql::select_payload, views)),
        paused_queues(db, prepared(sql::paused_queues, views)),
        data_version(db, prepared(sql::data_version, views)),
        begin_read(db, "BEGIN"),
        end_read(db, "COMMIT") {}
  Statement select_job, count_pending_jobs, lagging_for_writes, lagging_for_reads, first_in_start_order, first_available, first_available_in_queue, available_in_claim_order,
      available_in_queue_in_claim_order, available_with_queue_in_claim_order, next_queue, next_priority, first_due_in_level, first_free_in_level, unexpired_moved_out, live_leases, select_failed_jobs, select_payload, paused_queues, data_version;
  Statement begin_read, end_read;  // a ReadTransaction
};

// The statements that write, prepared unless the scheduler is read-only.
struct WriteStatements {
  explicit WriteStatements(sqlite3* db)
      : insert_job(db, sql::insert_job),
        insert_payload(db, sql::insert_payload),
        complete_job(db, sql::complete_job),
        delete_job(db, sql::delete_job),
        delete_payload(db, sql::delete_payload),
        delete_completed_payloads(db, sql::delete_completed_payloads),
        delete_completed_jobs(db, sql::delete_completed_jobs),
        delete_expired_payloads(db, sql::delete_expired_payloads),
        delete_expired_jobs(db, sql::delete_expired_jobs),
        delete_failed_payloads(db, sql::delete_failed_payloads),
        delete_failed_jobs(db, sql::delete_failed_jobs),
        lock_job(db, sql::lock_job),
        unlock_job(db, sql::unlock_job),
        lock_job_by_id(db, sql::lock_job_by_id),
        due_scheduled(db, sql::due_scheduled),
        expired_free(db, sql::expired_free),
        ran_out_leases(db, sql::ran_out_leases),
        move_free_job(db, sql::move_free_job),
        claim_job(db, sql::claim_job),
        select_claimed_job(db, sql::select_claimed_job),
        any_abandoned_job(db, sql::any_abandoned_job),
        fail_abandoned_jobs(db, sql::fail_abandoned_jobs),
        complete_claim(db, sql::complete_claim),
        extend_claim(db, sql::extend_claim),
        release_claim(db, sql::release_claim),
        complete_claim_with_result(db, sql::complete_claim_with_result),
        snooze_claim(db, sql::snooze_claim),
        cancel_job(db, sql::cancel_job),
        select_claimed(db, sql::select_claimed),
        retry_later(db, sql::retry_later),
        fail_for_good(db, sql::fail_for_good),
        retry_job(db, sql::retry_job),
        overlong_leases(db, sql::overlong_leases),
        cut_lease(db, sql::cut_lease),
        pause_queue(db, sql::pause_queue),
        resume_queue(db, sql::resume_queue),
        transaction(db) {}
  Statement insert_job, insert_payload, complete_job, delete_job, delete_payload, delete_completed_payloads, delete_completed_jobs, delete_expired_payloads, delete_expired_jobs, delete_failed_payloads, delete_failed_jobs, lock_job, unlock_job, lock_job_by_id, due_scheduled, expired_free, ran_out_leases, move_free_job, claim_job, select_claimed_job, any_abandoned_job, fail_abandoned_jobs, complete_claim, extend_claim, release_claim, complete_claim_with_result, snooze_claim, cancel_job, select_claimed, retry_later, fail_for_good, retry_job, overlong_leases, cut_lease, pause_queue, resume_queue;
  TransactionStatements transaction;
};

// Every statement a Scheduler runs, prepared once when it opens and reused by every call.
// A Scheduler declares it after its connection, so the statements are finalized first.
struct Statements {
  // A `job` table that is not ours (other columns, a view) fails to prepare: a schema
  // problem, reported as such.
  static Statements prepare(sqlite3* db, bool writable, bool views) {
    try {
      return Statements(db, writable, views);
    } catch (const BusyError&) {
      throw;
    } catch (const IoError&) {
      throw;
    } catch (const Error& error) {
      throw SchemaError(
          std::string(message_prefix) +
              "the database's job table is not one this build can use: " + reason(error),
          error.code(), error.extended_code(), error.sql());
    }
  }

  Statements(sqlite3* db, bool writable, bool views) : read(db, views) {
    if (writable)
      write.emplace(db);
  }

  ReadStatements read;
  std::optional<WriteStatements> write;
};

}  // namespace jobsched::detail
