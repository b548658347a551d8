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

// Waits for another connection's lock, up to the busy timeout: 1 ms, then doubling up to
// 8 ms between tries. SQLite's own handler sleeps up to 100 ms between tries, so a waiter
// can starve behind busy workers. Waits much shorter than a transaction (we tried 20 us
// doubling to 1 ms) hand the lock from connection to connection after every claim, and
// each must reread the pages the last one changed: bench_drain with 1, 2 and 4 processes of
// 4 threads ran at 9,100 to 11,600 jobs/s that way, 13,700 to 15,800 with these waits.
// One per connection, used by one thread at a time, like the connection.
class BusyWait {
 public:
  explicit BusyWait(std::chrono::milliseconds timeout) noexcept : timeout_(timeout) {}

  // The handler for sqlite3_busy_handler; `tries` is 0 on the first call for one lock.
  static int handler(void* self, int tries) noexcept {
    return static_cast<BusyWait*>(self)->wait(tries);
  }

 private:
  int wait(int tries) noexcept {
    const auto now = std::chrono::steady_clock::now();
    if (tries == 0)
      first_try_ = now;
    const auto waited = now - first_try_;
    if (waited >= timeout_)
      return 0;
    const std::chrono::steady_clock::duration pause =
        std::chrono::milliseconds(1) * (1 << std::min(tries, 3));
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, timeout_ - waited));
    return 1;
  }

  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point first_try_{};
};

// Switches a file to WAL. SQLite answers SQLITE_BUSY at once, without its busy handler,
// while another connection uses a rollback-journal file, so this waits here instead,
// up to the busy timeout.
inline void enable_wal(sqlite3* db, std::chrono::milliseconds timeout) {
  constexpr const char* sql = "PRAGMA journal_mode = WAL";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::chrono::milliseconds pause{1};
  for (;;) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK)
      return;
    const auto now = std::chrono::steady_clock::now();
    if ((rc & 0xff) != SQLITE_BUSY || now >= deadline)
      throw_error(db, rc, sql);
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds{50});
  }
}

// Refuses options no connection can use, before anything is opened.
inline void check_options(const Options& options) {
  const auto timeout = options.busy_timeout.count();
  if (timeout < 0) {
    throw_invalid("busy_timeout must not be negative, got " + std::to_string(timeout) + " ms");
  }
  check_retry_policy(options.retry);
}

// Sets a new connection up and brings its schema to the current version; returns the
// version it migrated from, if it migrated. The version is read first, so a file this build
// cannot use is refused before anything is written.
inline std::optional<int> set_up_connection(sqlite3* db, BusyWait& busy_wait) {
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_handler(db, &BusyWait::handler, &busy_wait);
  if (read_schema_version(db) == current_schema_version)
    return std::nullopt;
  return migrate(db);
}

// Sets the journal mode and durability, the first writes to a file that is not migrated:
// called once the schema is known to be usable (migrated, statements prepared), so that a
// file refused or whose migration failed stays exactly as it was.
inline void set_durability(sqlite3* db, const Options& options) {
  // Neither setting can change inside a transaction: a host that adopts a handle with one
  // open keeps the settings it chose.
  if (sqlite3_get_autocommit(db) == 0)
    return;
  if (!is_memory_database(db))
    enable_wal(db, options.busy_timeout);
  exec(db, options.synchronous == Synchronous::normal ? "PRAGMA synchronous = NORMAL"
                                                      : "PRAGMA synchronous = FULL");
}

}  // namespace jobsched::detail
