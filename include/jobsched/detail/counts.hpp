// SPDX-License-Identifier: MIT
#pragma once

// Kept counts: the jobs by queue and kind in a table of the file (job_count), kept by
// triggers on job in every connection's writes, once Scheduler::keep_counts turns them on.
// The SQL is in sql.hpp ("Kept counts").

#include <sqlite3.h>

#include <cstdint>

#include "sql.hpp"
#include "sqlite.hpp"
#include "transaction.hpp"

namespace jobsched::detail {

// True when every trigger that keeps the counts is in the file.
inline bool counts_kept(const Statement& kept) {
  Run run(kept);
  return run.step() && run.column_int64(0) == 3;
}

// Turns the kept counts on (counting every job once, or again when a trigger is missing) or
// off, in one write transaction (joining the caller's).
inline void keep_counts(sqlite3* db, const TransactionStatements& statements, bool on) {
  WriteTransaction transaction(db, &statements);
  const Statement kept(db, sql::counts_kept);
  if (!on || !counts_kept(kept))
    exec(db, sql::drop_counts);
  if (on && !counts_kept(kept))
    exec(db, sql::keep_counts);
  transaction.commit();
}

}  // namespace jobsched::detail
