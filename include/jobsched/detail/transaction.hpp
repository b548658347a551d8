// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include "sqlite.hpp"

namespace jobsched::detail {

// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`), so it never
// fails half-way with SQLITE_BUSY_SNAPSHOT. When the caller already has a transaction open
// on the connection, it joins it through a SAVEPOINT instead, and commits with it.
// Rolls back in its destructor unless committed.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db) : db_(db), nested_(sqlite3_get_autocommit(db) == 0) {
    exec(db_, nested_ ? "SAVEPOINT jobsched" : "BEGIN IMMEDIATE");
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;

  ~WriteTransaction() {
    if (done_)
      return;
    // Errors are ignored: a destructor must not throw, and a failed rollback leaves
    // nothing more to undo.
    if (nested_) {
      sqlite3_exec(db_, "ROLLBACK TO jobsched; RELEASE jobsched", nullptr, nullptr, nullptr);
    } else if (sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  void commit() {
    exec(db_, nested_ ? "RELEASE jobsched" : "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool nested_;
  bool done_ = false;
};

}  // namespace jobsched::detail
