// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>

#include "../error.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "transaction.hpp"

namespace jobsched::detail {

// The statements that only read, prepared on every connection (read-only ones included).
struct ReadStatements {
  explicit ReadStatements(sqlite3* db)
      : select_job(db, sql::select_job),
        select_next_job(db, sql::select_next_job),
        select_next_start(db, sql::select_next_start),
        count_pending_jobs(db, sql::count_pending_jobs),
        next_queue(db, sql::next_queue),
        next_priority(db, sql::next_priority),
        first_due_in_level(db, sql::first_due_in_level),
        first_free_in_level(db, sql::first_free_in_level),
        live_leases(db, sql::live_leases),
        select_failed_jobs(db, sql::select_failed_jobs),
        data_version(db, sql::data_version) {}
  Statement select_job, select_next_job, select_next_start, count_pending_jobs, next_queue,
      next_priority, first_due_in_level, first_free_in_level, live_leases, select_failed_jobs,
      data_version;
};

// The statements that write, prepared unless the scheduler is read-only.
struct WriteStatements {
  explicit WriteStatements(sqlite3* db)
      : insert_job(db, sql::insert_job),
        complete_job(db, sql::complete_job),
        delete_job(db, sql::delete_job),
        delete_completed_jobs(db, sql::delete_completed_jobs),
        delete_expired_jobs(db, sql::delete_expired_jobs),
        lock_job(db, sql::lock_job),
        unlock_job(db, sql::unlock_job),
        lock_next_job(db, sql::lock_next_job),
        claim_job(db, sql::claim_job),
        select_claimed_job(db, sql::select_claimed_job),
        any_abandoned_job(db, sql::any_abandoned_job),
        fail_abandoned_jobs(db, sql::fail_abandoned_jobs),
        complete_claim(db, sql::complete_claim),
        extend_claim(db, sql::extend_claim),
        release_claim(db, sql::release_claim),
        select_claimed(db, sql::select_claimed),
        retry_later(db, sql::retry_later),
        fail_for_good(db, sql::fail_for_good),
        retry_job(db, sql::retry_job),
        delete_failed_jobs(db, sql::delete_failed_jobs),
        transaction(db) {}
  Statement insert_job, complete_job, delete_job, delete_completed_jobs, delete_expired_jobs,
      lock_job, unlock_job, lock_next_job, claim_job, select_claimed_job, any_abandoned_job,
      fail_abandoned_jobs, complete_claim, extend_claim, release_claim, select_claimed, retry_later,
      fail_for_good, retry_job, delete_failed_jobs;
  TransactionStatements transaction;
};

// Every statement a Scheduler runs, prepared once when it opens and reused by every call.
// A Scheduler declares it after its connection, so the statements are finalized first.
struct Statements {
  // A `job` table that is not ours (other columns, a view) fails to prepare: a schema
  // problem, reported as such.
  static Statements prepare(sqlite3* db, bool writable) {
    try {
      return Statements(db, writable);
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

  Statements(sqlite3* db, bool writable) : read(db) {
    if (writable)
      write.emplace(db);
  }

  ReadStatements read;
  std::optional<WriteStatements> write;
};

}  // namespace jobsched::detail
