// SPDX-License-Identifier: MIT
#pragma once

// Retention: Scheduler::prune deletes old completed, failed and cancelled jobs with their
// payloads, a batch at a time, each batch a write transaction of its own, so that no
// transaction holds the write lock for long and other writers get it between batches. Then
// it checkpoints, never waiting, so that the -wal file comes back under
// Options::wal_size_limit once no reader holds an old snapshot.

#include <sqlite3.h>
#if __has_include(<sys/stat.h>)
#include <sys/stat.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "../retention.hpp"
#include "connection_setup.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "transaction.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// Jobs deleted in one transaction, at most. Deleting 100 jobs with their payloads from a
// file of 1,000,000 holds the write lock 1.5 ms (jobs next to each other) to 4.5 ms (each on
// pages of its own), the commit (FULL) included; 250 took 22 ms spread out, once the pages
// changed no longer fit SQLite's page cache (measured with sqlite3_trace_v2 from the end of
// BEGIN IMMEDIATE to the end of COMMIT).
inline constexpr std::int64_t prune_batch_jobs = 100;

// After each full batch a prune lets go of the lock for as long as it held it (1 to 8 ms),
// so that it holds it at most about half the time: SQLite hands the lock to no one in
// particular, and a prune that took it back at once would keep out writers that wait
// (jobsched's busy handler tries again every 1 to 8 ms).
inline constexpr std::chrono::milliseconds shortest_prune_pause{1};
inline constexpr std::chrono::milliseconds longest_prune_pause{8};

// A limit on the prunes this thread runs: the Worker's claiming thread prunes in slices, so
// that neither its claims nor stop() wait long for a big backlog.
struct PruneSlice {
  const std::atomic<bool>* stop = nullptr;
  std::chrono::steady_clock::time_point end;
  bool cut_short = false;  // a prune left work for the next slice
};

inline PruneSlice*& current_prune_slice() noexcept {
  thread_local PruneSlice* slice = nullptr;
  return slice;
}

inline void check_prune_ages(const PruneAges& ages) {
  if (ages.completed)
    checked_duration("PruneAges::completed", *ages.completed);
  if (ages.failed)
    checked_duration("PruneAges::failed", *ages.failed);
  if (ages.cancelled)
    checked_duration("PruneAges::cancelled", *ages.cancelled);
}

// The statements of a prune, prepared on its first use (a writable connection only).
struct RetentionStatements {
  explicit RetentionStatements(sqlite3* db)
      : old_completed_jobs(db, sql::old_completed_jobs),
        old_failed_jobs(db, sql::old_failed_jobs),
        old_abandoned_jobs(db, sql::old_abandoned_jobs),
        delete_payload(db, sql::delete_payload),
        delete_job(db, sql::delete_job) {}
  Statement old_completed_jobs, old_failed_jobs, old_abandoned_jobs, delete_payload, delete_job;
};

// The size of the file at `path` in bytes; empty when it cannot be told.
inline std::optional<std::int64_t> file_size(const char* path) {
#if __has_include(<sys/stat.h>)
  struct stat info {};
  if (path != nullptr && ::stat(path, &info) == 0)
    return static_cast<std::int64_t>(info.st_size);
#else
  (void)path;
#endif
  return std::nullopt;
}

// A checkpoint that never waits: PASSIVE copies what no reader still needs, without locks;
// when that emptied the log and the -wal file is bigger than `limit`, TRUNCATE cuts it to
// nothing, without a busy handler, so that it gives up at once (and this connection holds
// the write lock only for that moment) if a writer or a reader on an old snapshot is there.
// Best effort: the next prune tries again, and once the log is emptied, the next write cuts
// the file back to `limit` (journal_size_limit).
inline void checkpoint_wal(sqlite3* db, BusyWait& busy_wait, std::int64_t limit) {
  if (sqlite3_get_autocommit(db) == 0 || is_memory_database(db))
    return;
  int frames = 0;
  int copied = 0;
  if (sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) !=
          SQLITE_OK ||
      frames < 0 || copied < frames)
    return;
  const std::optional<std::int64_t> size =
      file_size(sqlite3_filename_wal(sqlite3_db_filename(db, "main")));
  if (size && *size <= limit)
    return;
  sqlite3_busy_handler(db, nullptr, nullptr);
  sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  sqlite3_busy_handler(db, &BusyWait::handler, &busy_wait);
}

// Scheduler::prune's work, with its statements.
class Retention {
 public:
  PruneResult prune(sqlite3* db, const TransactionStatements& transactions, BusyWait& busy_wait,
                    std::int64_t wal_size_limit, const PruneAges& ages, double now) {
    if (!statements_)
      statements_.emplace(db);
    db_ = db;
    transactions_ = &transactions;
    PruneResult result;
    const bool done = prune_completed(ages, now, result) && prune_failed(ages, now, result) &&
                      prune_abandoned(ages, now, result);
    if (done)
      checkpoint_wal(db, busy_wait, wal_size_limit);
    return result;
  }

 private:
  // Runs `batch` (which returns how many jobs it looked at) in write transactions of its
  // own until one looks at less than a full batch, pausing after each full one (see
  // shortest_prune_pause). False when the thread's PruneSlice cut it short.
  template <class Batch>
  bool in_batches(Batch batch) {
    for (;;) {
      std::int64_t looked_at = 0;
      const auto began = std::chrono::steady_clock::now();
      {
        WriteTransaction transaction(db_, transactions_);
        looked_at = batch();
        transaction.commit();
      }
      if (looked_at < prune_batch_jobs)
        return true;
      if (PruneSlice* slice = current_prune_slice()) {
        if ((slice->stop != nullptr && slice->stop->load(std::memory_order_acquire)) ||
            std::chrono::steady_clock::now() >= slice->end) {
          slice->cut_short = true;
          return false;
        }
      }
      if (sqlite3_get_autocommit(db_) != 0) {
        std::this_thread::sleep_for(
            std::clamp<std::chrono::steady_clock::duration>(std::chrono::steady_clock::now() - began,
                                                            shortest_prune_pause,
                                                            longest_prune_pause));
      }
    }
  }

  // Deletes the jobs `ids` and their payloads; returns how many there were.
  std::int64_t delete_jobs(const std::vector<std::int64_t>& ids) {
    std::int64_t deleted = 0;
    for (const std::int64_t id : ids) {
      Run(statements_->delete_payload).bind(2, id).execute();
      deleted += Run(statements_->delete_job).bind(2, id).execute();
    }
    return deleted;
  }

  // The ids a statement with ?2 a time and ?3 a limit selects (?1 now), into ids_.
  std::int64_t select_ids(Statement& statement, double now, double before) {
    ids_.clear();
    Run run(statement);
    run.bind(1, now).bind(2, before).bind(3, prune_batch_jobs);
    while (run.step())
      ids_.push_back(run.column_int64(0));
    return static_cast<std::int64_t>(ids_.size());
  }

  bool prune_completed(const PruneAges& ages, double now, PruneResult& result) {
    if (!ages.completed)
      return true;
    const double before = now - ages.completed->count();
    return in_batches([&] {
      const std::int64_t found = select_ids(statements_->old_completed_jobs, now, before);
      result.completed += delete_jobs(ids_);
      return found;
    });
  }

  // One walk of the failed jobs in the order they failed, cancelled ones among them: each
  // batch goes on after the last job the one before looked at, so that a job kept (of the
  // kind with the longer age) is looked at once a prune.
  bool prune_failed(const PruneAges& ages, double now, PruneResult& result) {
    if (!ages.failed && !ages.cancelled)
      return true;
    // The cutoffs as plain values (an optional<double> here trips GCC 12's
    // -Wmaybe-uninitialized at -O3): -infinity keeps that kind.
    constexpr double keep = -std::numeric_limits<double>::infinity();
    const double failed_before = ages.failed ? now - ages.failed->count() : keep;
    const double cancelled_before = ages.cancelled ? now - ages.cancelled->count() : keep;
    const double end = std::max(failed_before, cancelled_before);
    double after_time = -std::numeric_limits<double>::infinity();
    std::int64_t after_id = std::numeric_limits<std::int64_t>::min();
    std::vector<std::int64_t> cancelled;
    return in_batches([&] {
      ids_.clear();
      cancelled.clear();
      std::int64_t looked_at = 0;
      {
        Run run(statements_->old_failed_jobs);
        run.bind(1, now).bind(2, after_time).bind(3, after_id).bind(4, end);
        if (ages.failed)
          run.bind(5, failed_before);
        else
          run.bind_null(5);
        if (ages.cancelled)
          run.bind(6, cancelled_before);
        else
          run.bind_null(6);
        run.bind(7, prune_batch_jobs);
        while (run.step()) {
          ++looked_at;
          after_id = run.column_int64(0);
          after_time = run.column_double(1);
          if (run.column_int64(3) != 0)
            (run.column_int64(2) != 0 ? cancelled : ids_).push_back(after_id);
        }
      }
      result.failed += delete_jobs(ids_);
      result.cancelled += delete_jobs(cancelled);
      return looked_at;
    });
  }

  // Jobs whose lease ran out on their last attempt and that no write has marked failed yet:
  // failed at that lease's end.
  bool prune_abandoned(const PruneAges& ages, double now, PruneResult& result) {
    if (!ages.failed)
      return true;
    const double before = now - ages.failed->count();
    return in_batches([&] {
      const std::int64_t found = select_ids(statements_->old_abandoned_jobs, now, before);
      result.failed += delete_jobs(ids_);
      return found;
    });
  }

  std::optional<RetentionStatements> statements_;
  std::vector<std::int64_t> ids_;
  sqlite3* db_ = nullptr;
  const TransactionStatements* transactions_ = nullptr;
};

}  // namespace jobsched::detail
