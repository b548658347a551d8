// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include "sqlite.hpp"

namespace jobsched::detail {

// The statements that open and close a write transaction, prepared once: a ROLLBACK that
// had to be parsed when memory ran out would fail and leave the transaction open for good.
struct TransactionStatements {
  explicit TransactionStatements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        rollback(db, "ROLLBACK"),
        savepoint(db, "SAVEPOINT jobsched"),
        release(db, "RELEASE jobsched"),
        rollback_to(db, "ROLLBACK TO jobsched") {}
  Statement begin, commit, rollback, savepoint, release, rollback_to;
};

// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`), so it never
// fails half-way with SQLITE_BUSY_SNAPSHOT. When the caller already has a transaction open
// on the connection, it joins it through a SAVEPOINT instead, and commits with it.
// Rolls back in its destructor unless committed. Without prepared statements (during
// migration, before they exist) it parses its SQL each time.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db, const TransactionStatements* prepared = nullptr)
      : db_(db), prepared_(prepared), nested_(sqlite3_get_autocommit(db) == 0) {
    if (prepared_ != nullptr) {
      Run(nested_ ? prepared_->savepoint : prepared_->begin).execute();
    } else {
      exec(db_, nested_ ? "SAVEPOINT jobsched" : "BEGIN IMMEDIATE");
    }
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  ~WriteTransaction() {
    if (done_)
      return;
    // Errors are ignored: a destructor must not throw.
    if (nested_) {
      undo(prepared_ != nullptr ? prepared_->rollback_to.get() : nullptr, "ROLLBACK TO jobsched");
      undo(prepared_ != nullptr ? prepared_->release.get() : nullptr, "RELEASE jobsched");
    } else if (sqlite3_get_autocommit(db_) == 0) {
      undo(prepared_ != nullptr ? prepared_->rollback.get() : nullptr, "ROLLBACK");
    }
  }

  // True when it joined a transaction already open (through a SAVEPOINT).
  bool nested() const noexcept { return nested_; }

  void commit() {
    if (prepared_ != nullptr) {
      Run(nested_ ? prepared_->release : prepared_->commit).execute();
    } else {
      exec(db_, nested_ ? "RELEASE jobsched" : "COMMIT");
    }
    done_ = true;
  }

 private:
  void undo(sqlite3_stmt* statement, const char* sql) noexcept {
    if (statement != nullptr) {
      sqlite3_step(statement);
      sqlite3_reset(statement);
    } else {
      sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    }
  }

  sqlite3* db_;
  const TransactionStatements* prepared_;
  bool nested_;
  bool done_ = false;
};

// A read transaction around a call's several reads, so that they see one snapshot of the
// file; nothing when the caller already has a transaction open on the connection.
class ReadTransaction {
 public:
  ReadTransaction(sqlite3* db, const Statement& begin, const Statement& end)
      : end_(sqlite3_get_autocommit(db) != 0 ? end.get() : nullptr) {
    if (end_ != nullptr)
      Run(begin).execute();
  }
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;
  // Ending a transaction that only read cannot lose anything: errors are ignored.
  ~ReadTransaction() {
    if (end_ != nullptr) {
      sqlite3_step(end_);
      sqlite3_reset(end_);
    }
  }

 private:
  sqlite3_stmt* end_;
};

}  // namespace jobsched::detail
