// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "../error.hpp"

namespace jobsched::detail {

// Throws the Error subtype that matches an SQLite result code. The SQL goes in Error::sql()
// only: our statements mean nothing to the reader of a message.
[[noreturn]] inline void throw_code(int extended_code, std::string message, std::string sql = {}) {
  const int code = extended_code & 0xff;
  message +=
      " (SQLite code " + std::to_string(code) + ", extended " + std::to_string(extended_code) + ")";
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw BusyError(message, code, extended_code, std::move(sql));
    case SQLITE_READONLY:
      throw ReadOnlyError(message, code, extended_code, std::move(sql));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
      throw IoError(message, code, extended_code, std::move(sql));
    case SQLITE_NOTADB:
      throw SchemaError(message, code, extended_code, std::move(sql));
    case SQLITE_CONSTRAINT:
      throw ConstraintError(message, code, extended_code, std::move(sql));
    default:
      throw Error(message, code, extended_code, std::move(sql));
  }
}

inline constexpr std::string_view message_prefix = "jobsched: ";

// An error's message without its "jobsched: ", to go after some context.
inline std::string reason(const Error& error) {
  std::string_view message = error.what();
  if (message.substr(0, message_prefix.size()) == message_prefix)
    message.remove_prefix(message_prefix.size());
  return std::string(message);
}

// Throws a copy of `error`, of the same type, whose message says `context` first
// ("jobsched: <context>: <reason>").
[[noreturn]] inline void rethrow_in_context(const Error& error, const std::string& context) {
  const std::string message = std::string(message_prefix) + context + ": " + reason(error);
  const int code = error.code();
  const int extended = error.extended_code();
  const std::string& sql = error.sql();
  const std::string& state = error.sqlstate();
  if (dynamic_cast<const InvalidArgumentError*>(&error) != nullptr)
    throw InvalidArgumentError(message);
  if (dynamic_cast<const BusyError*>(&error) != nullptr)
    throw BusyError(message, code, extended, sql, state);
  if (dynamic_cast<const SchemaError*>(&error) != nullptr)
    throw SchemaError(message, code, extended, sql, state);
  if (dynamic_cast<const ReadOnlyError*>(&error) != nullptr)
    throw ReadOnlyError(message, code, extended, sql, state);
  if (dynamic_cast<const IoError*>(&error) != nullptr)
    throw IoError(message, code, extended, sql, state);
  if (dynamic_cast<const ConstraintError*>(&error) != nullptr)
    throw ConstraintError(message, code, extended, sql, state);
  throw Error(message, code, extended, sql, state);
}

// Throws the Error subtype for `rc`, with the connection's message and, when a system call
// failed, the system's reason (SQLite says only "unable to open database file"). A file or
// directory the process may not write is a ReadOnlyError.
[[noreturn]] inline void throw_error(sqlite3* db, int rc, std::string_view sql = {}) {
  std::string message(message_prefix);
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int code = rc & 0xff;
  const int system_errno = db != nullptr && (code == SQLITE_CANTOPEN || code == SQLITE_IOERR)
                               ? sqlite3_system_errno(db)
                               : 0;
  if (system_errno != 0)
    message += std::string(": ") + std::strerror(system_errno);
  if (code == SQLITE_CANTOPEN &&
      (system_errno == EACCES || system_errno == EPERM || system_errno == EROFS)) {
    throw ReadOnlyError(message + ", so the file or its directory cannot be written", code, rc,
                        std::string(sql));
  }
  throw_code(rc, std::move(message), std::string(sql));
}

// Closes a connection the scheduler owns. A borrowed one stays open, with SQLite's own
// busy handler put back (waiting the same time) in place of the scheduler's.
struct ConnectionCloser {
  bool owned = true;
  int borrowed_busy_timeout_ms = 0;
  void operator()(sqlite3* db) const noexcept {
    if (owned) {
      sqlite3_close_v2(db);
    } else {
      sqlite3_busy_timeout(db, borrowed_busy_timeout_ms);
    }
  }
};
using ConnectionPtr = std::unique_ptr<sqlite3, ConnectionCloser>;

struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};

// A prepared statement, prepared once and reset after every use.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, std::string_view sql, unsigned flags = SQLITE_PREPARE_PERSISTENT) {
    sqlite3_stmt* raw = nullptr;
    const int rc =
        sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &raw, nullptr);
    stmt_.reset(raw);
    if (rc != SQLITE_OK)
      throw_error(db, rc, sql);
  }

  sqlite3_stmt* get() const noexcept { return stmt_.get(); }

 private:
  std::unique_ptr<sqlite3_stmt, StatementFinalizer> stmt_;
};

// One execution of a prepared statement: binds, steps, reads columns, and resets the
// statement when it goes out of scope so its read transaction never lingers.
class Run {
 public:
  explicit Run(const Statement& statement) noexcept : stmt_(statement.get()) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() { sqlite3_reset(stmt_); }

  Run& bind(int index, double value) { return check(sqlite3_bind_double(stmt_, index, value)); }
  Run& bind(int index, std::int64_t value) {
    return check(sqlite3_bind_int64(stmt_, index, value));
  }
  Run& bind_null(int index) { return check(sqlite3_bind_null(stmt_, index)); }
  Run& bind_text(int index, std::string_view text) {
    return check(sqlite3_bind_text64(stmt_, index, text.empty() ? "" : text.data(), text.size(),
                                     SQLITE_STATIC, SQLITE_UTF8));
  }
  Run& bind_blob(int index, std::string_view bytes) {
    // A null pointer would bind NULL, so an empty payload binds a zero-length blob instead.
    if (bytes.empty())
      return check(sqlite3_bind_zeroblob(stmt_, index, 0));
    return check(sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC));
  }

  // The highest parameter number the statement uses.
  int parameter_count() const noexcept { return sqlite3_bind_parameter_count(stmt_); }

  // Steps once: true when a row is ready, false when the statement is done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    throw_error(sqlite3_db_handle(stmt_), rc, sqlite3_sql(stmt_));
  }

  // Steps a statement that returns no rows; returns how many rows it changed.
  std::int64_t execute() {
    while (step()) {
    }
    return sqlite3_changes64(sqlite3_db_handle(stmt_));
  }

  int column_type(int column) const noexcept { return sqlite3_column_type(stmt_, column); }
  std::int64_t column_int64(int column) const noexcept {
    return sqlite3_column_int64(stmt_, column);
  }
  double column_double(int column) const noexcept { return sqlite3_column_double(stmt_, column); }
  std::string_view column_text(int column) const noexcept {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return text == nullptr ? std::string_view{} : std::string_view{text, size};
  }
  std::string_view column_blob(int column) const noexcept {
    const auto* blob = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
    return blob == nullptr ? std::string_view{} : std::string_view{blob, size};
  }

 private:
  Run& check(int rc) {
    if (rc != SQLITE_OK)
      throw_error(sqlite3_db_handle(stmt_), rc, sqlite3_sql(stmt_));
    return *this;
  }

  sqlite3_stmt* stmt_;
};

// Runs one or more SQL statements that return no rows.
inline void exec(sqlite3* db, const char* sql) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK)
    throw_error(db, rc, sql);
}

// True when the connection is on an in-memory or temporary database rather than a file.
inline bool is_memory_database(sqlite3* db) noexcept {
  const char* file = sqlite3_db_filename(db, "main");
  return file == nullptr || *file == '\0';
}

}  // namespace jobsched::detail
