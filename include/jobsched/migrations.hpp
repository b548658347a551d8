// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

#include "detail/sql.hpp"
#include "detail/sqlite.hpp"
#include "detail/transaction.hpp"
#include "error.hpp"

namespace jobsched {

/// The schema version this build writes. Files at versions -1 (empty) to 2, written by the
/// original Python scheduler and its successor, and 3 (ours), are upgraded to it on open.
inline constexpr int current_schema_version = 7;

namespace detail {

// A later migration that rebuilds or drops job's columns must drop the kept counts' triggers
// first (sql::drop_counts) and put them back after (sql::keep_counts) when they were there.
struct Migration {
  int version;
  const char* script;
  // Run after `script` once each job's state is set (sql::set_job_states), when not null.
  const char* after_states = nullptr;
};

// The lineage of job.db files. Versions 0 to 2 are exactly what the Python programs ran;
// they must never change, or files they wrote would be upgraded differently from ours.
inline constexpr Migration migrations[] = {
    {0,
     "CREATE TABLE IF NOT EXISTS job ("
     " id INTEGER PRIMARY KEY AUTOINCREMENT,"
     " data BLOB,"
     " created_at REAL NOT NULL,"
     " starts_at REAL NOT NULL,"
     " expires_at REAL,"
     " completed_at REAL,"
     " CONSTRAINT job_must_be_created_before_start CHECK (created_at <= starts_at),"
     " CONSTRAINT job_must_start_before_expiration"
     "  CHECK (expires_at IS NULL OR starts_at <= expires_at));"
     "CREATE INDEX IF NOT EXISTS ix_job_starts_at_expires_at ON job (starts_at, expires_at);"},
    {1,
     "DROP INDEX IF EXISTS ix_job_starts_at_expires_at;"
     "CREATE INDEX IF NOT EXISTS ix_job_completed_at_expires_at"
     " ON job (completed_at, expires_at);"
     "CREATE TABLE IF NOT EXISTS job_schema (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
     "INSERT OR IGNORE INTO job_schema (key, value) VALUES ('version', 0);"},
    {2, "ALTER TABLE job ADD COLUMN locked_at REAL;"},
    // Ours: the next job comes from a partial index in (starts_at, id) order, so finding it
    // never sorts; counting and expiring pending jobs scan a covering index of their expiry
    // (completed_at is in it only so that SQLite sees the index covers those queries).
    {3,
     "DROP INDEX IF EXISTS ix_job_completed_at_expires_at;"
     "CREATE INDEX ix_job_pending_starts_at ON job (starts_at) WHERE completed_at IS NULL;"
     "CREATE INDEX ix_job_pending_expires_at ON job (expires_at, completed_at)"
     " WHERE completed_at IS NULL;"},
    // Claims with leases, retries, failed jobs, priorities and queues. A lock from version 2
    // is a claim whose lease never runs out (lease_until NULL). Failed jobs leave the
    // partial indexes of pending jobs; claims read (queue, priority DESC, starts_at).
    {4,
     "ALTER TABLE job ADD COLUMN lease_until REAL;"
     "ALTER TABLE job ADD COLUMN claim_token INTEGER;"
     "ALTER TABLE job ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE job ADD COLUMN max_attempts INTEGER;"
     "ALTER TABLE job ADD COLUMN backoff_initial REAL;"
     "ALTER TABLE job ADD COLUMN backoff_max REAL;"
     "ALTER TABLE job ADD COLUMN last_error TEXT;"
     "ALTER TABLE job ADD COLUMN failed_at REAL;"
     "ALTER TABLE job ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE job ADD COLUMN queue TEXT NOT NULL DEFAULT '';"
     "DROP INDEX ix_job_pending_starts_at;"
     "DROP INDEX ix_job_pending_expires_at;"
     "CREATE INDEX ix_job_pending_starts_at ON job (starts_at)"
     " WHERE completed_at IS NULL AND failed_at IS NULL;"
     "CREATE INDEX ix_job_pending_expires_at ON job (expires_at, completed_at, failed_at)"
     " WHERE completed_at IS NULL AND failed_at IS NULL;"
     "CREATE INDEX ix_job_claim_order ON job (queue, priority DESC, starts_at)"
     " WHERE completed_at IS NULL AND failed_at IS NULL;"
     "CREATE INDEX ix_job_leases ON job (lease_until) WHERE lease_until IS NOT NULL;"
     "CREATE INDEX ix_job_failed ON job (failed_at) WHERE failed_at IS NOT NULL;"},
    // Every call logarithmic whatever the jobs are doing: each job's state is stored
    // (detail/sql.hpp numbers them), and each index holds the jobs of the states it serves,
    // so that held, locked, expired and finished jobs leave the ones claims and next_job
    // read. Payloads move to a table of their own, so that a claim, which rewrites its row,
    // does not copy the payload.
    {5,
     "ALTER TABLE job ADD COLUMN state INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE job_payload (job_id INTEGER PRIMARY KEY, data);"
     "INSERT INTO job_payload (job_id, data) SELECT id, data FROM job WHERE data IS NOT NULL;"
     "UPDATE job SET data = NULL WHERE data IS NOT NULL;"
     "DROP INDEX ix_job_pending_starts_at;"
     "DROP INDEX ix_job_pending_expires_at;"
     "DROP INDEX ix_job_claim_order;"
     "DROP INDEX ix_job_leases;",
     // Claims from named queues, and the walks of lagging states; claims from every queue;
     // next_job; leases by their end (a job moved on keeps its lease's end); expiry, of
     // jobs in the schedule and of those moved out; completions.
     "CREATE INDEX ix_job_queue_order ON job (queue, state, priority DESC, starts_at)"
     " WHERE completed_at IS NULL AND failed_at IS NULL;"
     "CREATE INDEX ix_job_claim_order ON job (priority DESC, starts_at) WHERE state = 1;"
     "CREATE INDEX ix_job_start_order ON job (state, starts_at);"
     "CREATE INDEX ix_job_leases ON job (state, lease_until) WHERE lease_until IS NOT NULL;"
     "CREATE INDEX ix_job_expiry ON job (expires_at)"
     " WHERE state < 5 AND expires_at IS NOT NULL;"
     "CREATE INDEX ix_job_expired ON job (expires_at) WHERE state = 5;"
     "CREATE INDEX ix_job_completed ON job (completed_at) WHERE state = 6;"},
    // Recurring schedules (detail/firing.hpp): each schedule's next firing is made ahead, as
    // a job, and the schedule is due once that firing is; a job made by a schedule names it
    // and its fire time, at most one job per firing. Results and cancellation.
    {6,
     "CREATE TABLE schedule (name TEXT PRIMARY KEY NOT NULL, rule TEXT NOT NULL,"
     " misfire INTEGER NOT NULL, catch_up_limit INTEGER NOT NULL, data, queue TEXT NOT NULL,"
     " priority INTEGER NOT NULL, expires_after REAL, max_attempts INTEGER,"
     " backoff_initial REAL, backoff_max REAL, paused INTEGER NOT NULL DEFAULT 0,"
     " made_through REAL, ahead_at REAL, ahead_job INTEGER, error TEXT,"
     " created_at REAL NOT NULL, updated_at REAL NOT NULL);"
     "CREATE INDEX ix_schedule_due ON schedule (ahead_at)"
     " WHERE paused = 0 AND ahead_at IS NOT NULL;"
     "ALTER TABLE job ADD COLUMN schedule TEXT;"
     "ALTER TABLE job ADD COLUMN fire_at REAL;"
     "CREATE UNIQUE INDEX ix_job_firing ON job (schedule, fire_at) WHERE schedule IS NOT NULL;"
     // Job control: a completion's result, and cancellation (a job failed for good, with
     // the time it was cancelled).
     "ALTER TABLE job ADD COLUMN result;"
     "ALTER TABLE job ADD COLUMN cancelled_at REAL;"},
    // Unique jobs: at most one pending or running job (states 0 to 4) per key, enforced by
    // the index; completions by key, for keys unique over a period. Paused queues. Each
    // lease's length as asked for, so that a lease the clock's step back made look longer can
    // be cut to it (a lease taken before has its length from its claim's time). Cancelled
    // jobs by cancellation, so that listing them passes over no failed ones.
    {7,
     "ALTER TABLE job ADD COLUMN unique_key TEXT;"
     "CREATE UNIQUE INDEX ix_job_unique ON job (unique_key)"
     " WHERE unique_key IS NOT NULL AND state < 5;"
     "CREATE INDEX ix_job_key_completed ON job (unique_key, completed_at)"
     " WHERE unique_key IS NOT NULL AND state = 6;"
     "CREATE TABLE queue_pause (queue TEXT PRIMARY KEY NOT NULL, paused_at REAL NOT NULL)"
     " WITHOUT ROWID;"
     "ALTER TABLE job ADD COLUMN lease_seconds REAL;"
     "UPDATE job SET lease_seconds = lease_until - locked_at"
     " WHERE lease_until IS NOT NULL AND locked_at IS NOT NULL;"
     "CREATE INDEX ix_job_cancelled ON job (failed_at) WHERE cancelled_at IS NOT NULL;"},
};
static_assert(sizeof migrations / sizeof migrations[0] == current_schema_version + 1);

inline bool has_table(sqlite3* db, const char* name) {
  const Statement statement(db, sql::has_table, 0);
  Run run(statement);
  run.bind_text(1, name);
  return run.step();
}

// The file's schema version: -1 without a `job` table, 0 with a `job` table but no
// `job_schema`, else the version row. Throws SchemaError when the version row is missing
// or is not an integer, and when the file is not an SQLite database.
inline int read_schema_version(sqlite3* db) {
  if (!has_table(db, "job_schema"))
    return has_table(db, "job") ? 0 : -1;
  const Statement statement(db, sql::select_version, 0);
  Run run(statement);
  if (!run.step()) {
    throw SchemaError("jobsched: table job_schema has no 'version' row; refusing to open",
                      SQLITE_ERROR, SQLITE_ERROR, sql::select_version);
  }
  if (run.column_type(0) != SQLITE_INTEGER) {
    throw SchemaError(
        "jobsched: job_schema version is not an integer: '" + std::string(run.column_text(0)) + "'",
        SQLITE_MISMATCH, SQLITE_MISMATCH, sql::select_version);
  }
  const std::int64_t version = run.column_int64(0);
  if (version < 0 || version > current_schema_version) {
    throw SchemaError("jobsched: schema version " + std::to_string(version) +
                          " is not one this build knows (it knows up to " +
                          std::to_string(current_schema_version) + "); refusing to open",
                      SQLITE_ERROR, SQLITE_ERROR, sql::select_version);
  }
  return static_cast<int>(version);
}

// For a read-only scheduler on a file at an older version: temporary views named `job`,
// `schedule` and (before version 5) `job_payload`, which SQLite finds before main's tables, show the old table with the columns
// it lacks at their defaults (no lease, no attempt, the default queue, each job's state from
// its columns, `default_max_attempts` deciding a last attempt), so that every read works
// unchanged. They live in the connection's temporary database: nothing is written to the
// file.
inline void show_as_current(sqlite3* db, int version, int default_max_attempts) {
  std::string columns = version < 0
                            ? "NULL AS id, NULL AS data, 0.0 AS created_at, 0.0 AS starts_at,"
                              " NULL AS expires_at, NULL AS completed_at"
                            : "id, data, created_at, starts_at, expires_at, completed_at";
  columns += version >= 2 ? ", locked_at" : ", NULL AS locked_at";
  if (version >= 5) {
    columns +=
        ", lease_until, claim_token, attempts, max_attempts, backoff_initial, backoff_max,"
        " last_error, failed_at, priority, queue, state";
  } else if (version >= 4) {
    columns +=
        ", lease_until, claim_token, attempts, max_attempts, backoff_initial, backoff_max,"
        " last_error, failed_at, priority, queue, CASE WHEN completed_at IS NOT NULL THEN 6"
        " WHEN failed_at IS NOT NULL THEN 7 WHEN lease_until IS NOT NULL THEN CASE WHEN"
        " attempts >= coalesce(max_attempts, " +
        std::to_string(default_max_attempts) +
        ") THEN 3 ELSE 2 END WHEN locked_at IS NOT NULL THEN 4 ELSE 0 END AS state";
  } else {
    columns +=
        ", NULL AS lease_until, NULL AS claim_token, 0 AS attempts, NULL AS max_attempts,"
        " NULL AS backoff_initial, NULL AS backoff_max, NULL AS last_error, NULL AS failed_at,"
        " 0 AS priority, '' AS queue, CASE WHEN completed_at IS NOT NULL THEN 6";
    columns += version >= 2 ? " WHEN locked_at IS NOT NULL THEN 4" : "";
    columns += " ELSE 0 END AS state";
    if (version < 0)
      columns = columns.substr(0, columns.find(", CASE WHEN")) + ", 0 AS state";
  }
  columns += version >= 6 ? ", schedule, fire_at, result, cancelled_at"
                          : ", NULL AS schedule, NULL AS fire_at, NULL AS result, NULL AS cancelled_at";
  columns += ", NULL AS unique_key";
  const std::string view =
      "CREATE TEMP VIEW job AS SELECT " + columns + (version < 0 ? " LIMIT 0" : " FROM main.job");
  exec(db, view.c_str());
  // No paused queues before version 7, no schedules before version 6.
  exec(db, "CREATE TEMP VIEW queue_pause AS SELECT NULL AS queue, NULL AS paused_at LIMIT 0");
  if (version < 6)
    exec(db,
         "CREATE TEMP VIEW schedule AS SELECT NULL AS name, NULL AS rule, NULL AS misfire,"
         " NULL AS catch_up_limit, NULL AS data, NULL AS queue, NULL AS priority,"
         " NULL AS expires_after, NULL AS max_attempts, NULL AS backoff_initial,"
         " NULL AS backoff_max, NULL AS paused, NULL AS made_through, NULL AS ahead_at,"
         " NULL AS ahead_job, NULL AS error, NULL AS created_at, NULL AS updated_at LIMIT 0");
  // Before version 5 every payload is in the old rows, which the view shows.
  if (version < 5)
    exec(db, "CREATE TEMP VIEW job_payload AS SELECT NULL AS job_id, NULL AS data LIMIT 0");
}

// Brings the schema to the current version in one write transaction (joined through a
// SAVEPOINT if the caller has one open). Reads the version again once the write lock is
// held, so that of several connections opening an old file at once exactly one migrates.
// Returns the version it migrated from, or nothing when the file was already current. Jobs
// get the state they are in at `now`, with `default_max_attempts` deciding a last attempt.
inline std::optional<int> migrate(sqlite3* db, double now, int default_max_attempts) {
  WriteTransaction transaction(db);
  const int from = read_schema_version(db);
  if (from == current_schema_version)
    return std::nullopt;
  for (const Migration& migration : migrations) {
    if (migration.version <= from)
      continue;
    try {
      exec(db, migration.script);
      if (migration.after_states != nullptr) {
        const Statement statement(db, sql::set_job_states, 0);
        Run run(statement);
        run.bind(1, now).bind(2, std::int64_t{default_max_attempts});
        run.execute();
        exec(db, migration.after_states);
      }
    } catch (const BusyError&) {
      throw;
    } catch (const IoError&) {
      throw;
    } catch (const Error& error) {
      // A `job` table (or view) that is not the lineage's: the file is not a job database.
      throw SchemaError("jobsched: cannot upgrade the schema from version " + std::to_string(from) +
                            " to " + std::to_string(migration.version) + ": " + reason(error),
                        error.code(), error.extended_code(), error.sql());
    }
  }
  const Statement statement(db, sql::update_version, 0);
  Run run(statement);
  run.bind(1, std::int64_t{current_schema_version});
  run.execute();
  transaction.commit();
  return from;
}

}  // namespace detail
}  // namespace jobsched
