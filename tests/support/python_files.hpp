// SPDX-License-Identifier: MIT
#pragma once

// Files as the Python programs wrote them: the schema SQL of versions 0 to 2 exactly as they
// ran it, spelled out here rather than taken from migrations.hpp, so that a change there
// shows as a failed upgrade instead of going unnoticed.

#include <sqlite3.h>

#include <string>

#include <jobsched/jobsched.hpp>

#include "temp_file.hpp"

namespace jobsched_test {

inline const char* const kV0Schema =
    "CREATE TABLE job (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB,"
    " created_at REAL NOT NULL, starts_at REAL NOT NULL, expires_at REAL, completed_at REAL,"
    " CONSTRAINT job_must_be_created_before_start CHECK (created_at <= starts_at),"
    " CONSTRAINT job_must_start_before_expiration"
    " CHECK (expires_at IS NULL OR starts_at <= expires_at));"
    "CREATE INDEX ix_job_starts_at_expires_at ON job (starts_at, expires_at);";

inline const char* const kV1Schema =
    "DROP INDEX ix_job_starts_at_expires_at;"
    "CREATE INDEX ix_job_completed_at_expires_at ON job (completed_at, expires_at);"
    "CREATE TABLE job_schema (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT INTO job_schema (key, value) VALUES ('version', 0);"
    "UPDATE job_schema SET value = 1 WHERE key = 'version';";

inline const char* const kV2Schema =
    "ALTER TABLE job ADD COLUMN locked_at REAL;"
    "UPDATE job_schema SET value = 2 WHERE key = 'version';";

/// Creates the schema up to `version` (0 to 2), one transaction per version, as the
/// programs' migrations did.
inline void write_python_schema(sqlite3* db, int version) {
  exec_raw(db, std::string("BEGIN;") + kV0Schema + "COMMIT;");
  if (version >= 1)
    exec_raw(db, std::string("BEGIN;") + kV1Schema + "COMMIT;");
  if (version >= 2)
    exec_raw(db, std::string("BEGIN;") + kV2Schema + "COMMIT;");
}

/// A version-1 file in WAL mode as the seed wrote it, with `count` jobs (most completed, a
/// third expiring), and the statistics of ANALYZE, as if the seed had ever run it.
inline void write_v1_file(const std::string& path, int count) {
  auto owner = open_raw(path);
  sqlite3* db = owner.get();
  exec_raw(db, "PRAGMA journal_mode = WAL");
  write_python_schema(db, 1);
  exec_raw(db,
           "BEGIN;"
           "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < " +
               std::to_string(count - 1) +
               ")"
               " INSERT INTO job (data, created_at, starts_at, expires_at, completed_at)"
               " SELECT 'python', 1690000000.0 + i, 1690000000.0 + i + (i % 5) * 60,"
               "  CASE WHEN i % 3 = 0 THEN 1690000000.0 + i + 600 END,"
               "  CASE WHEN i % 4 != 0 THEN 1690000100.0 + i END"
               " FROM n;"
               "COMMIT;");
  exec_raw(db, "ANALYZE");
}

/// A Python program's file at `version` holding the jobs `insert` adds, read by `reader`
/// (read-only: as if upgraded), and a copy of it upgraded by `writer`; both on a clock pinned
/// at `now`, so that a test can compare what the two make of the same jobs.
struct OldFileAndUpgrade {
  OldFileAndUpgrade(const std::string& name, int version, const std::string& insert, double now)
      : file(name), copy(name + "-copy"), writer(open_writer(version, insert, now)),
        reader(jobsched::Scheduler::open(file.path(), options(now, true))) {}

  TempFile file;
  TempFile copy;
  jobsched::Scheduler writer;
  jobsched::Scheduler reader;

 private:
  static jobsched::Options options(double now, bool read_only) {
    jobsched::Options result;
    result.clock = [now] { return jobsched::from_unix_seconds(now); };
    result.read_only = read_only;
    return result;
  }
  jobsched::Scheduler open_writer(int version, const std::string& insert, double now) {
    {
      auto raw = open_raw(file.path());
      write_python_schema(raw.get(), version);
      exec_raw(raw.get(), insert);
    }
    write_bytes(copy.path(), read_bytes(file.path()));
    return jobsched::Scheduler::open(copy.path(), options(now, false));
  }
};

}  // namespace jobsched_test
