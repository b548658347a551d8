// SPDX-License-Identifier: MIT
#pragma once

// Reading EXPLAIN QUERY PLAN, for the tests that guard the library's indexes.

#include <sqlite3.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobsched_test {

/// The `detail` column (column 3) of each row of EXPLAIN QUERY PLAN for `sql`, after `bind`
/// bound its parameters (plans can depend on them).
inline std::vector<std::string> plan_of(sqlite3* db, const std::string& sql,
                                        const std::function<void(sqlite3_stmt*)>& bind) {
  const std::string explain = "EXPLAIN QUERY PLAN " + sql;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, explain.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db) + " in " +
                             explain);
  }
  bind(stmt);
  std::vector<std::string> details;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* detail = sqlite3_column_text(stmt, 3);
    details.emplace_back(detail != nullptr ? reinterpret_cast<const char*>(detail) : "");
  }
  sqlite3_finalize(stmt);
  return details;
}

inline std::string joined(const std::vector<std::string>& plan) {
  std::string text;
  for (const std::string& line : plan) {
    text += "  " + line + "\n";
  }
  return text;
}

inline bool mentions(const std::vector<std::string>& plan, const std::string& needle) {
  for (const std::string& line : plan) {
    if (line.find(needle) != std::string::npos) {
      return true;
    }
  }
  return false;
}

/// A row that reads the job table itself rather than through an index: "SCAN job" (SQLite
/// 3.36 and later) or "SCAN TABLE job" (older), with no index named.
inline bool scans_job_without_index(const std::vector<std::string>& plan) {
  for (const std::string& line : plan) {
    const bool scan = line.rfind("SCAN job", 0) == 0 || line.rfind("SCAN TABLE job", 0) == 0;
    if (scan && line.find("INDEX") == std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace jobsched_test
