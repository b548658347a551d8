// SPDX-License-Identifier: MIT
#pragma once

// A new job: checked before any SQL runs, then inserted (its row, then its payload) inside
// the caller's write transaction, in the state it is in at the time given.

#include <sqlite3.h>

#include <cstdint>
#include <utility>

#include "../job.hpp"
#include "../payload.hpp"
#include "../time.hpp"
#include "job_row.hpp"
#include "sqlite.hpp"
#include "statements.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// The checked times of a new job, its defaults taken from `now`; InvalidArgumentError for
// bad times or settings.
inline CheckedTimes checked_new_job(const Payload& data, const JobOptions& options,
                                    TimePoint now) {
  const TimePoint created = options.created_at ? *options.created_at : now;
  const TimePoint starts = options.starts_at ? *options.starts_at : created;
  const CheckedTimes times = check_job_times(created, starts, options.expires_at);
  check_payload(data);
  check_job_settings(options);
  if (options.unique)
    check_unique(*options.unique);
  return times;
}

// Binds a new job's values to ?1 and ?3 to ?10 of sql::insert_job (or insert_keyed_job).
inline void bind_new_job(Run& run, const JobOptions& options, const CheckedTimes& times,
                         double state_at) {
  run.bind(1, state_at);
  run.bind(3, times.created_at).bind(4, times.starts_at);
  bind_optional(run, 5, times.expires_at);
  run.bind(6, std::int64_t{options.priority}).bind_text(7, options.queue);
  bind_optional(run, 8, options.max_attempts);
  bind_optional(run, 9, options.initial_backoff);
  bind_optional(run, 10, options.max_backoff);
}

// After the row's insert: its payload, and the job as stored.
inline Job inserted_job(sqlite3* db, WriteStatements& write, Payload data,
                        const JobOptions& options, const CheckedTimes& times) {
  Job job;
  job.id = sqlite3_last_insert_rowid(db);
  {
    // A NULL payload too: a row left by a job deleted by hand under this id gives way.
    Run run(write.insert_payload);
    run.bind(2, job.id);
    bind_payload(run, 3, data);
    run.execute();
  }
  job.data = std::move(data);
  job.created_at = from_unix_seconds(times.created_at);
  job.starts_at = from_unix_seconds(times.starts_at);
  if (times.expires_at)
    job.expires_at = from_unix_seconds(*times.expires_at);
  job.max_attempts = options.max_attempts;
  job.initial_backoff = options.initial_backoff;
  job.max_backoff = options.max_backoff;
  job.priority = options.priority;
  job.queue = options.queue;
  return job;
}

// Inserts a checked job without a unique key in its state at `state_at`, and returns it as
// stored.
inline Job insert_job(sqlite3* db, WriteStatements& write, Payload data,
                      const JobOptions& options, const CheckedTimes& times, double state_at) {
  {
    Run run(write.insert_job);
    bind_new_job(run, options, times, state_at);
    run.execute();
  }
  return inserted_job(db, write, std::move(data), options, times);
}

}  // namespace jobsched::detail
