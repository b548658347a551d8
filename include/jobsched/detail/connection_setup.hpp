// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "../migrations.hpp"
#include "../options.hpp"
#include "sqlite.hpp"
#include "validate.hpp"

namespace jobsched::detail {

/// Switches a file to WAL. SQLite answers SQLITE_BUSY at once, without its busy handler,
/// while another connection uses a rollback-journal file, so this waits here instead,
/// up to the busy timeout.
inline void enable_wal(sqlite3* db, std::chrono::milliseconds timeout) {
  constexpr const char* sql = "PRAGMA journal_mode = WAL";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds pause{1};
  for (;;) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    const auto now = std::chrono::steady_clock::now();
    if ((rc & 0xff) != SQLITE_BUSY || now >= deadline) throw_error(db, rc, sql);
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds{50});
  }
}

/// Refuses options no connection can use, before anything is opened.
inline void check_options(const Options& options) {
  const auto timeout = options.busy_timeout.count();
  if (timeout < 0) {
    throw_invalid("busy_timeout must not be negative, got " + std::to_string(timeout) + " ms");
  }
  check_retry_policy(options.retry);
}

/// Sets a new connection up and brings its schema to the current version; returns the
/// version it migrated from, if it migrated. The version is read first, so a file this build
/// cannot use is refused before anything is written; the journal mode changes only after
/// the migration committed, so a failed migration leaves the file exactly as it was.
inline std::optional<int> set_up_connection(sqlite3* db, const Options& options) {
  const auto timeout = options.busy_timeout.count();
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(std::min<decltype(timeout)>(timeout, INT32_MAX)));

  std::optional<int> migrated_from;
  if (read_schema_version(db) != current_schema_version) migrated_from = migrate(db);

  // Neither setting can change inside a transaction: a host that adopts a handle with one
  // open keeps the settings it chose.
  if (sqlite3_get_autocommit(db) != 0) {
    if (!is_memory_database(db)) enable_wal(db, options.busy_timeout);
    exec(db, options.synchronous == Synchronous::normal ? "PRAGMA synchronous = NORMAL"
                                                         : "PRAGMA synchronous = FULL");
  }
  return migrated_from;
}

}  // namespace jobsched::detail
