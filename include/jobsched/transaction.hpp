// SPDX-License-Identifier: MIT
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <utility>

#include "detail/events.hpp"
#include "detail/transaction.hpp"
#include "detail/validate.hpp"
#include "detail/wake.hpp"

namespace jobsched {

/// A write transaction on a scheduler's connection (Scheduler::transaction()), so that jobs
/// are added, claimed or settled atomically with the host's own writes on the same handle:
/// `BEGIN IMMEDIATE`, or a SAVEPOINT inside a transaction already open, which it then
/// commits with. Rolls back in its destructor unless committed; never throws from it.
///
/// Thread safety: as its Scheduler's, one thread at a time.
class Transaction {
 public:
  /// Movable: the moved-from transaction is neither committed nor rolled back by it.
  Transaction(Transaction&&) noexcept = default;
  /// Takes `other`'s transaction, rolling back this one first unless committed.
  Transaction& operator=(Transaction&&) noexcept = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() = default;

  /// Commits (or, nested, releases its savepoint into the outer transaction). Workers in
  /// this process on the file wake for the jobs it added. InvalidArgumentError when it was
  /// committed already or rolled back.
  void commit() {
    check_open("commit");
    const bool outermost = !transaction_->nested();
    transaction_->commit();
    transaction_.reset();
    if (outermost && events_ != nullptr)
      events_->deliver();
    if (outermost && !file_.empty())
      detail::WakeHub::instance().job_added(file_);
  }

  /// Undoes everything since it began, now rather than at destruction. InvalidArgumentError
  /// when it was committed already or rolled back.
  void rollback() {
    check_open("roll back");
    transaction_.reset();
  }

  /// True until commit() or rollback().
  bool active() const noexcept { return transaction_ != nullptr; }

 private:
  friend class Scheduler;

  Transaction(sqlite3* db, const detail::TransactionStatements* prepared, std::string file,
              detail::EventQueue* events)
      : transaction_(std::make_unique<detail::WriteTransaction>(db, prepared)),
        file_(std::move(file)),
        events_(events) {}

  void check_open(const char* what) const {
    if (!transaction_) {
      detail::throw_invalid(std::string("cannot ") + what +
                            " a transaction that was committed or rolled back");
    }
  }

  std::unique_ptr<detail::WriteTransaction> transaction_;
  std::string file_;
  detail::EventQueue* events_;  // its scheduler's (which outlives it), or null
};

}  // namespace jobsched
