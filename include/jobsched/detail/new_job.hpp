// SPDX-License-Identifier: MIT
#pragma once

// A new job: checked before any SQL runs, then inserted (its row, then its payload) inside
// the caller's write transaction, in the state it is in at the time given.

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// Binds a new job's eight values, in sql::insert_job's order, from parameter `first` on.
inline void bind_job_values(Run& run, int first, const JobOptions& options,
                            const CheckedTimes& times) {
  run.bind(first, times.created_at).bind(first + 1, times.starts_at);
  bind_optional(run, first + 2, times.expires_at);
  run.bind(first + 3, std::int64_t{options.priority}).bind_text(first + 4, options.queue);
  bind_optional(run, first + 5, options.max_attempts);
  bind_optional(run, first + 6, options.initial_backoff);
  bind_optional(run, first + 7, options.max_backoff);
}

// Binds a new job's values to ?1 and ?3 to ?10 of sql::insert_job (or insert_keyed_job).
inline void bind_new_job(Run& run, const JobOptions& options, const CheckedTimes& times,
                         double state_at) {
  run.bind(1, state_at);
  bind_job_values(run, 3, options, times);
}

// A job as its insert stored it.
inline Job stored_job(std::int64_t id, Payload data, const JobOptions& options,
                      const CheckedTimes& times) {
  Job job;
  job.id = id;
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

// After the row's insert: its payload, and the job as stored.
inline Job inserted_job(sqlite3* db, WriteStatements& write, Payload data,
                        const JobOptions& options, const CheckedTimes& times) {
  const std::int64_t id = sqlite3_last_insert_rowid(db);
  {
    // A NULL payload too: a row left by a job deleted by hand under this id gives way.
    Run run(write.insert_payload);
    run.bind(2, id);
    bind_payload(run, 3, data);
    run.execute();
  }
  return stored_job(id, std::move(data), options, times);
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

// The statements that insert sql::rows_per_insert jobs at once, prepared on first use.
struct InsertManyStatements {
  explicit InsertManyStatements(sqlite3* db)
      : jobs(db, sql::insert_jobs(sql::rows_per_insert)),
        payloads(db, sql::insert_payloads(sql::rows_per_insert)) {}
  Statement jobs, payloads;
};

// Inserts checked jobs without unique keys, jobs[i] with times[i] for i in [first, end),
// in their states at `state_at`, appending each as stored to `added` in order: whole
// batches of sql::rows_per_insert in one statement each (their rows and their payloads),
// the rest one by one. Inside the caller's write transaction.
inline void insert_jobs(sqlite3* db, WriteStatements& write,
                        std::optional<InsertManyStatements>& many, std::vector<NewJob>& jobs,
                        const std::vector<CheckedTimes>& times, std::size_t first,
                        std::size_t end, double state_at, std::vector<Job>& added) {
  constexpr auto rows = static_cast<std::size_t>(sql::rows_per_insert);
  std::size_t i = first;
  for (; end - i >= rows; i += rows) {
    if (!many)
      many.emplace(db);
    {
      Run run(many->jobs);
      run.bind(1, state_at);
      for (std::size_t row = 0; row < rows; ++row)
        bind_job_values(run, static_cast<int>(21 + 8 * row), jobs[i + row].options, times[i + row]);
      const std::int64_t inserted = run.execute();
      if (inserted != sql::rows_per_insert) {
        throw Error(std::string(message_prefix) + "an insert of " + std::to_string(rows) +
                        " jobs stored " + std::to_string(inserted),
                    SQLITE_ERROR, SQLITE_ERROR);
      }
    }
    const std::int64_t first_id =
        sqlite3_last_insert_rowid(db) - static_cast<std::int64_t>(rows) + 1;
    {
      Run run(many->payloads);
      for (std::size_t row = 0; row < rows; ++row) {
        run.bind(static_cast<int>(21 + 2 * row), first_id + static_cast<std::int64_t>(row));
        bind_payload(run, static_cast<int>(22 + 2 * row), jobs[i + row].data);
      }
      run.execute();
    }
    for (std::size_t row = 0; row < rows; ++row) {
      NewJob& job = jobs[i + row];
      added.push_back(stored_job(first_id + static_cast<std::int64_t>(row), std::move(job.data),
                                 job.options, times[i + row]));
    }
  }
  for (; i < end; ++i)
    added.push_back(insert_job(db, write, std::move(jobs[i].data), jobs[i].options, times[i],
                               state_at));
}

}  // namespace jobsched::detail
