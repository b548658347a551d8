// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace jobsched {

/// Every error jobsched throws. Carries SQLite's primary and extended result codes and,
/// when a statement failed, its SQL text (in sql(), not in the message). From PostgreSQL,
/// the codes are SQLite's nearest ones and sqlstate() is the server's own.
class Error : public std::runtime_error {
 public:
  /// An error with `message` (what(), no SQL), SQLite's primary and extended result codes and
  /// the failing statement's SQL (empty when none).
  Error(const std::string& message, int code, int extended_code, std::string sql = {})
      : std::runtime_error(message),
        code_(code),
        extended_code_(extended_code),
        sql_(std::move(sql)) {}
  /// As above, from PostgreSQL: with the five-character SQLSTATE of the failure.
  Error(const std::string& message, int code, int extended_code, std::string sql,
        std::string sqlstate)
      : std::runtime_error(message),
        code_(code),
        extended_code_(extended_code),
        sql_(std::move(sql)),
        sqlstate_(std::move(sqlstate)) {}

  /// The primary SQLite result code (for example SQLITE_BUSY).
  int code() const noexcept { return code_; }
  /// The extended SQLite result code (for example SQLITE_IOERR_FSYNC).
  int extended_code() const noexcept { return extended_code_; }
  /// The SQL that failed, or empty when the error did not come from a statement.
  const std::string& sql() const noexcept { return sql_; }
  /// PostgreSQL's SQLSTATE (for example "40P01"); empty for SQLite and for a lost connection.
  const std::string& sqlstate() const noexcept { return sqlstate_; }

 private:
  int code_;
  int extended_code_;
  std::string sql_;
  std::string sqlstate_;
};

/// A bad argument (a time out of order, NaN, infinite or outside the years 1 to 9999, a
/// negative duration, an empty path), refused before any SQL ran. Its code is SQLITE_MISUSE.
class InvalidArgumentError : public Error {
 public:
  /// An error with `message`, naming the bad values.
  explicit InvalidArgumentError(const std::string& message)
      : Error(message, SQLITE_MISUSE, SQLITE_MISUSE) {}
};

/// The database stayed locked by another connection for longer than the busy timeout.
/// Nothing was changed.
class BusyError : public Error {
 public:
  /// Takes the message and codes as Error does.
  using Error::Error;
};

/// The file is not a job database this build can use: not SQLite at all, a schema
/// version newer than this build knows, or a `job_schema` table without its version row.
class SchemaError : public Error {
 public:
  /// Takes the message and codes as Error does.
  using Error::Error;
};

/// Reading or writing the file failed, or the disk (or the database's size limit) is full.
class IoError : public Error {
 public:
  /// Takes the message and codes as Error does.
  using Error::Error;
};

/// The file, or its directory, cannot be written: refused at open (nothing is left behind),
/// or a write call on a scheduler opened with Options::read_only.
class ReadOnlyError : public IoError {
 public:
  /// Takes the message and codes as Error does.
  using IoError::IoError;
};

/// A constraint in the database refused the change.
class ConstraintError : public Error {
 public:
  /// Takes the message and codes as Error does.
  using Error::Error;
};

/// A unique job's key is held by another job (Unique, OnConflict::fail, or a replace or
/// retry_job that cannot be done): nothing was changed. Codes SQLITE_CONSTRAINT and
/// SQLITE_CONSTRAINT_UNIQUE.
class UniqueConflictError : public ConstraintError {
 public:
  /// An error with `message`, the conflicting `key` and the id of the job holding it.
  UniqueConflictError(const std::string& message, std::string key, std::int64_t existing_id)
      : ConstraintError(message, SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_UNIQUE),
        key_(std::move(key)),
        existing_id_(existing_id) {}

  /// The key.
  const std::string& key() const noexcept { return key_; }
  /// The id of the job holding it; 0 when that is an earlier job of the same add_jobs call.
  std::int64_t existing_id() const noexcept { return existing_id_; }

 private:
  std::string key_;
  std::int64_t existing_id_;
};

}  // namespace jobsched
