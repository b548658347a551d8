// SPDX-License-Identifier: MIT
#pragma once

// What every benchmark shares: a fixed "now", the files of N stored jobs (built once and
// kept), and a small RAII wrapper over the C API for the hand-written baselines.

#include <sqlite3.h>
#include <unistd.h>
#include <jobsched/jobsched.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace bench {

// Every run sees the same jobs due: half of the stored jobs start in the hour before `now`,
// half in the hour after; a quarter expire a day after `now`; none expired.
inline constexpr double now_seconds = 1.8e9;
inline const jobsched::TimePoint now = jobsched::from_unix_seconds(now_seconds);

// Where the job files are kept: $JOBSCHED_BENCH_DIR, else ./bench-data.
inline std::filesystem::path data_dir() {
  const char* dir = std::getenv("JOBSCHED_BENCH_DIR");
  std::filesystem::path path = dir != nullptr && *dir != '\0' ? dir : "bench-data";
  std::filesystem::create_directories(path);
  return path;
}

// One connection, closed on scope exit.
class Db {
 public:
  explicit Db(const std::filesystem::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK)
      throw std::runtime_error("cannot open " + path.string() + ": " + sqlite3_errmsg(db_));
    sqlite3_busy_timeout(db_, 5000);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { sqlite3_close_v2(db_); }
  sqlite3* get() const noexcept { return db_; }
  void exec(const char* sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string text = message != nullptr ? message : "?";
      sqlite3_free(message);
      throw std::runtime_error(std::string(sql) + ": " + text);
    }
  }

 private:
  sqlite3* db_ = nullptr;
};

// One prepared statement, reset after each use by the caller, finalized on scope exit.
class Stmt {
 public:
  Stmt(const Db& db, const char* sql) {
    if (sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db.get()));
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const noexcept { return stmt_; }
  // Steps once; throws on an error, returns whether a row came.
  bool step() const {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc != SQLITE_DONE) {
      throw std::runtime_error(std::string(sqlite3_sql(stmt_)) + ": " +
                               sqlite3_errmsg(sqlite3_db_handle(stmt_)));
    }
    return false;
  }
  void reset() const { sqlite3_reset(stmt_); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

enum class Schema {
  jobsched,     // ours, current version
  handwritten,  // one table with partial indexes fit for the hand-written SQL (our version 4)
  original,     // the Python original at version 1: one index on (completed_at, expires_at)
};

inline const char* name(Schema schema) {
  switch (schema) {
    case Schema::jobsched:
      return "jobsched";
    case Schema::handwritten:
      return "handwritten";
    case Schema::original:
      break;
  }
  return "original";
}

// Creates the tables and indexes of the lineage up to `version`, as they were.
inline void create_schema(const Db& db, int version) {
  for (const auto& migration : jobsched::detail::migrations) {
    if (migration.version > version)
      break;
    db.exec(migration.script);
  }
  db.exec(("UPDATE job_schema SET value = " + std::to_string(version) + " WHERE key = 'version'")
              .c_str());
}

// A file filled through the C API, in row form (the payload in job.data), given what the
// upgrade to the current version gives every job: its payload moved out, its state at now.
inline void to_current_form(const Db& db) {
  db.exec("BEGIN");
  db.exec("INSERT INTO job_payload (job_id, data) SELECT id, data FROM job WHERE data IS NOT NULL");
  db.exec("UPDATE job SET data = NULL WHERE data IS NOT NULL");
  const Stmt states(db, jobsched::detail::sql::set_job_states);
  sqlite3_bind_double(states.get(), 1, now_seconds);
  sqlite3_bind_int(states.get(), 2, 10);
  states.step();
  db.exec("COMMIT");
}

// The start of job i of n: spread over the two hours around `now`, not in id order.
inline double starts_at(long i, long n) {
  const long slot = (i * 7919) % n;
  return now_seconds - 3600.0 + 7200.0 * static_cast<double>(slot) / static_cast<double>(n);
}

// Fills the file with n jobs in one transaction through the C API.
inline void fill(const Db& db, long n) {
  db.exec("BEGIN");
  const Stmt insert(
      db, "INSERT INTO job (data, created_at, starts_at, expires_at) VALUES (?, ?, ?, ?)");
  const std::string payload(32, 'x');
  for (long i = 0; i < n; ++i) {
    sqlite3_bind_blob(insert.get(), 1, payload.data(), static_cast<int>(payload.size()),
                      SQLITE_STATIC);
    sqlite3_bind_double(insert.get(), 2, now_seconds - 86400.0);
    sqlite3_bind_double(insert.get(), 3, starts_at(i, n));
    if (i % 4 == 0) {
      sqlite3_bind_double(insert.get(), 4, now_seconds + 86400.0);
    } else {
      sqlite3_bind_null(insert.get(), 4);
    }
    insert.step();
    insert.reset();
  }
  db.exec("COMMIT");
}

// The kept file of n jobs in this schema, built on first use (WAL, checkpointed, so the
// main file alone is the whole database and can be copied).
inline std::filesystem::path stored_jobs(Schema schema, long n) {
  // Named by the schema version this build writes, so that a file kept from an older build
  // (whose rows lack what the current version stores) is never measured again.
  const std::filesystem::path path =
      data_dir() / (std::string(name(schema)) + "-v" +
                    std::to_string(jobsched::current_schema_version) + "-" + std::to_string(n) +
                    ".db");
  if (std::filesystem::exists(path))
    return path;
  const std::filesystem::path partial = path.string() + ".partial";
  std::filesystem::remove(partial);
  if (schema == Schema::jobsched) {
    jobsched::Scheduler::open(partial.string());  // creates the current schema
  } else {
    create_schema(Db(partial), schema == Schema::handwritten ? 4 : 1);
  }
  {
    const Db db(partial);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = OFF");
    fill(db, n);
    if (schema == Schema::jobsched)
      to_current_form(db);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::filesystem::remove(partial.string() + "-wal");
  std::filesystem::remove(partial.string() + "-shm");
  std::filesystem::rename(partial, path);
  return path;
}

// A private copy of the kept file, deleted on scope exit: for work that writes.
class WorkCopy {
 public:
  WorkCopy(Schema schema, long n)
      : path_(data_dir() / (std::string("work-") + name(schema) + "-" + std::to_string(n) + "-" +
                            std::to_string(::getpid()) + ".db")) {
    remove_all();
    std::filesystem::copy_file(stored_jobs(schema, n), path_);
  }
  WorkCopy(const WorkCopy&) = delete;
  WorkCopy& operator=(const WorkCopy&) = delete;
  ~WorkCopy() { remove_all(); }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void remove_all() noexcept {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(path_.string() + suffix, ignored);
  }
  std::filesystem::path path_;
};

}  // namespace bench
