// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>
#if __has_include(<unistd.h>)
#include <unistd.h>
#endif
#if __has_include(<sys/stat.h>)
#include <sys/stat.h>
#endif

#include <algorithm>
#include <cerrno>
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
  if (options.wal_size_limit < 0) {
    throw_invalid("wal_size_limit must not be negative, got " +
                  std::to_string(options.wal_size_limit) + " bytes");
  }
  check_retry_policy(options.retry);
}

// The oldest SQLite jobsched works with (sqlite3_changes64 came in 3.37.0).
inline constexpr int oldest_sqlite = 3037000;
static_assert(SQLITE_VERSION_NUMBER >= oldest_sqlite,
              "jobsched needs SQLite 3.37.0 or newer: these sqlite3.h headers are older");

inline std::string sqlite_version_text(int number) {
  return std::to_string(number / 1000000) + "." + std::to_string(number / 1000 % 1000) + "." +
         std::to_string(number % 1000);
}

// Refuses an SQLite library older than jobsched needs (the program may run with an older
// libsqlite3 than the headers it was built with).
inline void check_sqlite_version(int number) {
  if (number < oldest_sqlite) {
    throw Error(std::string(message_prefix) + "needs SQLite " + sqlite_version_text(oldest_sqlite) +
                    " or newer; this program runs with SQLite " + sqlite_version_text(number),
                SQLITE_ERROR, SQLITE_ERROR);
  }
}

// Refuses a path SQLite would take for something else: "" is a private temporary database
// whose jobs vanish on close, and a NUL byte would cut the path short.
inline void check_path(const std::string& path) {
  if (path.empty()) {
    throw_invalid(
        "the database path is empty; name a file (or \":memory:\" for a database that lives "
        "only as long as its scheduler)");
  }
  if (const auto nul = path.find('\0'); nul != std::string::npos) {
    throw_invalid("the database path '" + path.substr(0, nul) + "\\0" + path.substr(nul + 1) +
                  "' holds a NUL byte");
  }
}

// True when the directory a plain path names a file in cannot be written (POSIX only).
inline bool directory_refuses_writes(const std::string& path) {
#if __has_include(<unistd.h>)
  if (path.rfind("file:", 0) == 0)
    return false;  // a URI: its path is SQLite's to decode
  const std::size_t slash = path.find_last_of('/');
  const std::string directory =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  return ::access(directory.c_str(), W_OK) != 0 && (errno == EACCES || errno == EROFS);
#else
  (void)path;
  return false;
#endif
}

// SQLite takes a 1-byte file for an empty one (a workaround for an OS X filesystem, in
// os_unix.c) and would write a new database over it: such a file is not a database.
inline void refuse_one_byte_file(const std::string& path) {
#if __has_include(<sys/stat.h>)
  if (path == ":memory:" || path.rfind("file:", 0) == 0)
    return;  // no file, or a URI whose path is SQLite's to decode
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && info.st_size == 1) {
    throw SchemaError(std::string(message_prefix) + "the file is not a database: it holds 1 byte",
                      SQLITE_NOTADB, SQLITE_NOTADB);
  }
#else
  (void)path;
#endif
}

// Opens the connection: to read and write, creating the file, or only to read. A file this
// process cannot write is refused before anything is read from it, so that SQLite leaves no
// -wal or -shm file beside it.
inline ConnectionPtr open_connection(const std::string& path, bool read_only) {
  refuse_one_byte_file(path);
  sqlite3* raw = nullptr;
  const int mode = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, mode | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, nullptr);
  ConnectionPtr connection(raw, ConnectionCloser{true});
  if (rc != SQLITE_OK) {
    // SQLite tries to create, then to read: its errno says only that the file is missing.
    if (!read_only && (rc & 0xff) == SQLITE_CANTOPEN && directory_refuses_writes(path)) {
      throw ReadOnlyError(
          std::string(message_prefix) + "the file does not exist and its directory is read-only",
          SQLITE_CANTOPEN, SQLITE_CANTOPEN);
    }
    throw_error(raw, raw != nullptr ? sqlite3_extended_errcode(raw) : rc);
  }
  if (!read_only && sqlite3_db_readonly(raw, "main") == 1) {
    throw ReadOnlyError(std::string(message_prefix) +
                            "the file is read-only (Options::read_only opens it for reading)",
                        SQLITE_READONLY, SQLITE_READONLY);
  }
  return connection;
}

// What a scheduler found when it opened: the file's schema version as it now reads it, and
// the version it migrated from, if it migrated.
struct SchemaState {
  int version = current_schema_version;
  std::optional<int> migrated_from;
};

// Sets a new connection up and brings its schema to the current version, unless it is
// read-only: then an older schema is shown as the current one (see show_as_current). The
// version is read first, so a file this build cannot use is refused before anything is
// written.
inline SchemaState set_up_connection(sqlite3* db, BusyWait& busy_wait, const Options& options) {
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_handler(db, &BusyWait::handler, &busy_wait);
  const int version = read_schema_version(db);
  if (version == current_schema_version)
    return SchemaState{};
  if (options.read_only) {
    show_as_current(db, version, options.retry.max_attempts);
    return SchemaState{version, std::nullopt};
  }
  // The stored states are hints (detail/sql.hpp): a clock that answers nonsense only costs
  // the first calls some walking, so the system's clock stands in for it.
  double now = to_unix_seconds(system_now());
  if (options.clock) {
    const double clock = to_unix_seconds(options.clock());
    if (clock >= earliest_time && clock <= latest_time)
      now = clock;
  }
  return SchemaState{current_schema_version, migrate(db, now, options.retry.max_attempts)};
}

// Sets the journal mode and durability, the first writes to a file that is not migrated:
// called once the schema is known to be usable (migrated, statements prepared), so that a
// file refused or whose migration failed stays exactly as it was. Not on read-only ones.
inline void set_durability(sqlite3* db, const Options& options) {
  // Neither setting can change inside a transaction: a host that adopts a handle with one
  // open keeps the settings it chose.
  if (options.read_only || sqlite3_get_autocommit(db) == 0)
    return;
  // The -wal file's bound (Options::wal_size_limit): SQLite cuts the file back to it when a
  // write restarts the log, after a checkpoint that copied all of it.
  exec(db, ("PRAGMA journal_size_limit = " + std::to_string(options.wal_size_limit)).c_str());
  if (!is_memory_database(db))
    enable_wal(db, options.busy_timeout);
  exec(db, options.synchronous == Synchronous::normal ? "PRAGMA synchronous = NORMAL"
                                                      : "PRAGMA synchronous = FULL");
}

}  // namespace jobsched::detail
