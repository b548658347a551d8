// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the file once every child is dead: its rows, what failed_jobs(), get_job()
// and count_pending_jobs() say of them, and PRAGMA integrity_check.

#include <sqlite3.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <jobsched/jobsched.hpp>

#include "config.hpp"
#include "records.hpp"
#include "result.hpp"

namespace jobsched_chaos {

namespace detail {

inline std::string integrity_check(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK)
    return std::string("cannot prepare integrity_check: ") + sqlite3_errmsg(db);
  std::string result;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (!result.empty())
      result += "; ";
    result += text != nullptr ? reinterpret_cast<const char*>(text) : "?";
  }
  sqlite3_finalize(stmt);
  return result;
}

/// A row of the final file, and the job's state as a function of the row and the time it
/// was read: a job whose lease ran out on its last attempt failed at that lease end, whether
/// or not the row says so yet.
struct Row {
  std::optional<double> completed_at, failed_at, lease_until, expires_at;
  std::int64_t attempts = 0;
  std::int64_t max_attempts = 0;  // the job's own, or the policy's
  std::string last_error;
  bool abandoned = false;  // failed, not marked in the row

  std::optional<double> failed_time() const { return abandoned ? lease_until : failed_at; }
};

struct FinalFile {
  std::map<std::int64_t, Row> rows;
  std::map<std::int64_t, jobsched::Job> listed_failed;  // failed_jobs()
  std::map<std::int64_t, jobsched::Job> got;            // get_job() of every row
};

inline std::map<std::int64_t, Row> read_rows(sqlite3* db, const Config& config, double now,
                                             Result& result) {
  std::map<std::int64_t, Row> rows;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, completed_at, failed_at, lease_until, expires_at, "
                         "attempts, max_attempts, last_error FROM job",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    harness_error(result, std::string("cannot read the job table: ") + sqlite3_errmsg(db));
    return rows;
  }
  auto optional_double = [stmt](int column) -> std::optional<double> {
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
      return std::nullopt;
    return sqlite3_column_double(stmt, column);
  };
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Row row;
    row.completed_at = optional_double(1);
    row.failed_at = optional_double(2);
    row.lease_until = optional_double(3);
    row.expires_at = optional_double(4);
    row.attempts = sqlite3_column_int64(stmt, 5);
    row.max_attempts = sqlite3_column_type(stmt, 6) == SQLITE_NULL ? config.max_attempts
                                                                   : sqlite3_column_int64(stmt, 6);
    const unsigned char* error = sqlite3_column_text(stmt, 7);
    if (error != nullptr)
      row.last_error = reinterpret_cast<const char*>(error);
    row.abandoned = !row.completed_at && !row.failed_at && row.lease_until &&
                    *row.lease_until <= now && row.attempts >= row.max_attempts &&
                    (!row.expires_at || *row.lease_until < *row.expires_at);
    rows.emplace(sqlite3_column_int64(stmt, 0), row);
  }
  if (rc != SQLITE_DONE)
    harness_error(result, std::string("reading the job table: ") + sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return rows;
}

/// Reads the file once every child is dead: its rows, then what the API says of them.
inline FinalFile read_final_file(const std::string& path, const Config& config, Result& result) {
  FinalFile file;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
  if (rc != SQLITE_OK) {
    harness_error(result, "cannot open the file after the run");
    result.integrity = "cannot open the file";
    return file;
  }
  sqlite3_busy_timeout(db.get(), 5000);
  const double read_at = wall_now();
  file.rows = read_rows(db.get(), config, read_at, result);
  try {
    auto scheduler = jobsched::Scheduler::open(path, scheduler_options(config));
    const jobsched::TimePoint now = jobsched::from_unix_seconds(read_at);
    for (jobsched::Job& job : scheduler.failed_jobs(now))
      file.listed_failed.emplace(job.id, std::move(job));
    for (const auto& [id, row] : file.rows) {
      if (std::optional<jobsched::Job> job = scheduler.get_job(id))
        file.got.emplace(id, std::move(*job));
    }
    result.pending_at_end = scheduler.count_pending_jobs(now);
  } catch (const std::exception& e) {
    harness_error(result, std::string("reading the file through a Scheduler: ") + e.what());
  }
  result.integrity = integrity_check(db.get());
  return file;
}

}  // namespace detail

}  // namespace jobsched_chaos
