// SPDX-License-Identifier: MIT
#pragma once

// The work measured, once per implementation: jobsched, the hand-written baseline
// (bench/baseline.hpp) and, for reads, the Python original's schema and queries. Each
// operation is set up by its constructor (not measured) and done once per call; it throws
// std::runtime_error when the answer is wrong, so a fast wrong answer never counts.
// bench_ops times them; bench_instructions counts their instructions under callgrind.

#include "baseline.hpp"
#include "fixtures.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// An operation ready to run: call it once per measured repetition.
using Operation = std::function<void()>;

inline void expect(bool ok, const char* what) {
  if (!ok)
    throw std::runtime_error(what);
}

inline jobsched::Options scheduler_options(bool full) {
  jobsched::Options options;
  options.synchronous = full ? jobsched::Synchronous::full : jobsched::Synchronous::normal;
  return options;
}

inline void set_synchronous(const Db& db, bool full) {
  db.exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

// The hand-written baselines read and write a file of the same jobs in the one-table form
// their SQL fits (Schema::handwritten): on ours, that SQL would sort.

// The scheduler or connection an operation keeps, with the copy of the file it writes to.
struct WithScheduler {
  WithScheduler(Schema schema, long n, bool writes, bool full = true)
      : copy(writes ? std::make_unique<WorkCopy>(schema, n) : nullptr),
        scheduler(jobsched::Scheduler::open((copy ? copy->path() : stored_jobs(schema, n)).string(),
                                            scheduler_options(full))) {}
  std::unique_ptr<WorkCopy> copy;
  jobsched::Scheduler scheduler;
};

struct WithDb {
  WithDb(Schema schema, long n, bool writes, bool full = true)
      : copy(writes ? std::make_unique<WorkCopy>(schema, n) : nullptr),
        db(copy ? copy->path() : stored_jobs(schema, n)) {
    set_synchronous(db, full);
  }
  std::unique_ptr<WorkCopy> copy;
  Db db;
};

inline const std::string& payload() {
  static const std::string bytes(32, 'y');
  return bytes;
}

// ---- add one job per transaction; 1,000 in one transaction --------------------------------

inline constexpr int batch_size = 1000;

inline Operation add_jobsched(long n, bool full, int per_transaction) {
  auto with = std::make_shared<WithScheduler>(Schema::jobsched, n, true, full);
  jobsched::JobOptions job;
  job.created_at = now;
  job.starts_at = now + jobsched::Seconds{60};
  return [with, job, per_transaction] {
    jobsched::Scheduler& scheduler = with->scheduler;
    if (per_transaction == 1) {
      expect(scheduler.add_job(payload(), job).id > 0, "no job added");
      return;
    }
    // A batch: add_jobs, one transaction.
    std::vector<jobsched::NewJob> jobs(static_cast<std::size_t>(per_transaction),
                                       jobsched::NewJob{jobsched::Payload(payload()), job});
    expect(scheduler.add_jobs(std::move(jobs)).size() == static_cast<std::size_t>(per_transaction),
           "no job added");
  };
}

inline Operation add_sqlite(long n, bool full, int per_transaction) {
  struct State : WithDb {
    State(long n, bool full)
        : WithDb(Schema::handwritten, n, true, full),
          begin(db, "BEGIN IMMEDIATE"),
          commit(db, "COMMIT"),
          insert(db, "INSERT INTO job (data, created_at, starts_at) VALUES (?1, ?2, ?3)") {}
    Stmt begin, commit, insert;
    void add_one() const {
      sqlite3_bind_blob(insert.get(), 1, payload().data(), static_cast<int>(payload().size()),
                        SQLITE_STATIC);
      sqlite3_bind_double(insert.get(), 2, now_seconds);
      sqlite3_bind_double(insert.get(), 3, now_seconds + 60);
      insert.step();
      insert.reset();
      expect(sqlite3_last_insert_rowid(db.get()) > 0, "no job added");
    }
  };
  auto state = std::make_shared<State>(n, full);
  return [state, per_transaction] {
    if (per_transaction == 1) {
      state->add_one();
      return;
    }
    state->begin.step();
    state->begin.reset();
    for (int i = 0; i < per_transaction; ++i)
      state->add_one();
    state->commit.step();
    state->commit.reset();
  };
}

// ---- next job -------------------------------------------------------------------------------

inline Operation next_job_jobsched(long n) {
  auto with = std::make_shared<WithScheduler>(Schema::jobsched, n, false);
  return [with] { expect(with->scheduler.next_job(now).has_value(), "no next job"); };
}

inline Operation next_job_sqlite(long n) {
  struct State : WithDb {
    explicit State(long n)
        : WithDb(Schema::handwritten, n, false),
          next(db, "SELECT " BASELINE_COLUMNS " FROM job WHERE " BASELINE_PENDING
                   " AND " BASELINE_FREE " ORDER BY starts_at, id LIMIT 1") {}
    Stmt next;
  };
  auto state = std::make_shared<State>(n);
  return [state] {
    sqlite3_bind_double(state->next.get(), 1, now_seconds);
    expect(state->next.step(), "no next job");
    const RawJob job = read_raw_job(state->next.get());
    state->next.reset();
    expect(job.id > 0, "no next job");
  };
}

// The original (version 1): the index on (completed_at, expires_at) finds the pending jobs,
// then SQLite sorts them by start.
inline Operation next_job_original(long n) {
  struct State : WithDb {
    explicit State(long n)
        : WithDb(Schema::original, n, false),
          next(db,
               "SELECT id, data, created_at, starts_at, expires_at, completed_at FROM job"
               " WHERE completed_at IS NULL AND (expires_at IS NULL OR ?1 < expires_at)"
               " ORDER BY starts_at LIMIT 1") {}
    Stmt next;
  };
  auto state = std::make_shared<State>(n);
  return [state] {
    sqlite3_stmt* row = state->next.get();
    sqlite3_bind_double(row, 1, now_seconds);
    expect(state->next.step(), "no next job");
    RawJob job;
    job.id = sqlite3_column_int64(row, 0);
    job.data.assign(static_cast<const char*>(sqlite3_column_blob(row, 1)),
                    static_cast<std::size_t>(sqlite3_column_bytes(row, 1)));
    job.created_at = sqlite3_column_double(row, 2);
    job.starts_at = sqlite3_column_double(row, 3);
    job.expires_at = optional_double(row, 4);
    job.completed_at = optional_double(row, 5);
    state->next.reset();
    expect(job.id > 0, "no next job");
  };
}

// ---- time until the next job ------------------------------------------------------------

inline Operation seconds_until_jobsched(long n) {
  auto with = std::make_shared<WithScheduler>(Schema::jobsched, n, false);
  return [with] { expect(with->scheduler.seconds_until_next_job(now).has_value(), "no next job"); };
}

// By hand, the same answer: the first free job's start, and the first lease to run out.
inline Operation seconds_until_sqlite(long n) {
  struct State : WithDb {
    explicit State(long n)
        : WithDb(Schema::handwritten, n, false),
          next(db, "SELECT id, starts_at FROM job WHERE " BASELINE_PENDING " AND " BASELINE_FREE
                   " ORDER BY starts_at, id LIMIT 1"),
          lease(db,
                "SELECT id, max(starts_at, lease_until) FROM job"
                " WHERE lease_until IS NOT NULL AND " BASELINE_PENDING
                " AND attempts < coalesce(max_attempts, 10) ORDER BY lease_until LIMIT 1") {}
    Stmt next, lease;
  };
  auto state = std::make_shared<State>(n);
  return [state] {
    std::int64_t id = 0;
    double at = 0;
    sqlite3_bind_double(state->next.get(), 1, now_seconds);
    if (state->next.step()) {
      id = sqlite3_column_int64(state->next.get(), 0);
      at = sqlite3_column_double(state->next.get(), 1);
    }
    state->next.reset();
    sqlite3_bind_double(state->lease.get(), 1, now_seconds);
    if (state->lease.step() && (id == 0 || sqlite3_column_double(state->lease.get(), 1) < at)) {
      id = sqlite3_column_int64(state->lease.get(), 0);
      at = sqlite3_column_double(state->lease.get(), 1);
    }
    state->lease.reset();
    expect(id > 0 && std::max(0.0, at - now_seconds) >= 0, "no next job");
  };
}

inline Operation seconds_until_original(long n) {
  struct State : WithDb {
    explicit State(long n)
        : WithDb(Schema::original, n, false),
          next(db,
               "SELECT id, starts_at FROM job WHERE completed_at IS NULL"
               " AND (expires_at IS NULL OR ?1 < expires_at) ORDER BY starts_at LIMIT 1") {}
    Stmt next;
  };
  auto state = std::make_shared<State>(n);
  return [state] {
    sqlite3_bind_double(state->next.get(), 1, now_seconds);
    expect(state->next.step(), "no next job");
    expect(sqlite3_column_int64(state->next.get(), 0) > 0, "no next job");
    state->next.reset();
  };
}

// ---- count ------------------------------------------------------------------------------------

inline Operation count_jobsched(long n) {
  auto with = std::make_shared<WithScheduler>(Schema::jobsched, n, false);
  return [with, n] { expect(with->scheduler.count_pending_jobs(now) == n, "wrong count"); };
}

inline Operation count_by_sql(Schema schema, long n, const char* sql) {
  struct State : WithDb {
    State(Schema schema, long n, const char* sql) : WithDb(schema, n, false), count(db, sql) {}
    Stmt count;
  };
  auto state = std::make_shared<State>(schema, n, sql);
  return [state, n] {
    sqlite3_bind_double(state->count.get(), 1, now_seconds);
    state->count.step();
    const std::int64_t counted = sqlite3_column_int64(state->count.get(), 0);
    state->count.reset();
    expect(counted == n, "wrong count");
  };
}

inline Operation count_sqlite(long n) {
  return count_by_sql(Schema::handwritten, n, "SELECT count(*) FROM job WHERE " BASELINE_PENDING);
}

inline Operation count_original(long n) {
  return count_by_sql(Schema::original, n,
                      "SELECT count(*) FROM job WHERE completed_at IS NULL"
                      " AND (expires_at IS NULL OR ?1 < expires_at)");
}

// ---- claim and complete, one transaction each (synchronous NORMAL) ---------------------------

inline Operation claim_complete_jobsched(long n) {
  auto with = std::make_shared<WithScheduler>(Schema::jobsched, n, true, false);
  return [with] {
    auto claimed = with->scheduler.claim_next_job(jobsched::Seconds{60}, now);
    expect(claimed && with->scheduler.complete(claimed->claim, now), "no job claimed");
  };
}

inline Operation claim_complete_sqlite(long n) {
  struct State : WithDb {
    explicit State(long n) : WithDb(Schema::handwritten, n, true, false), claims(db) {}
    RawClaims claims;
  };
  auto state = std::make_shared<State>(n);
  return [state] {
    const auto claimed = state->claims.claim(now_seconds, 60);
    expect(claimed && state->claims.complete(*claimed, now_seconds), "no job claimed");
  };
}

// ---- the table of work ------------------------------------------------------------------------

struct Work {
  const char* name;            // WORK in WORK/IMPLEMENTATION/JOBS
  const char* implementation;  // jobsched, sqlite or original
  bool writes;                 // runs a fixed number of times on its own copy
  std::function<Operation(long)> make;
};

inline std::vector<Work> all_work() {
  return {
      {"add_normal", "jobsched", true, [](long n) { return add_jobsched(n, false, 1); }},
      {"add_normal", "sqlite", true, [](long n) { return add_sqlite(n, false, 1); }},
      {"add_full", "jobsched", true, [](long n) { return add_jobsched(n, true, 1); }},
      {"add_full", "sqlite", true, [](long n) { return add_sqlite(n, true, 1); }},
      {"add_batch", "jobsched", true, [](long n) { return add_jobsched(n, true, batch_size); }},
      {"add_batch", "sqlite", true, [](long n) { return add_sqlite(n, true, batch_size); }},
      {"next_job", "jobsched", false, next_job_jobsched},
      {"next_job", "sqlite", false, next_job_sqlite},
      {"next_job", "original", false, next_job_original},
      {"seconds_until", "jobsched", false, seconds_until_jobsched},
      {"seconds_until", "sqlite", false, seconds_until_sqlite},
      {"seconds_until", "original", false, seconds_until_original},
      {"count", "jobsched", false, count_jobsched},
      {"count", "sqlite", false, count_sqlite},
      {"count", "original", false, count_original},
      {"claim_complete", "jobsched", true, claim_complete_jobsched},
      {"claim_complete", "sqlite", true, claim_complete_sqlite},
  };
}

}  // namespace bench
