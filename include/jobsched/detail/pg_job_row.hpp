// SPDX-License-Identifier: MIT
#pragma once

// A job's row from the PostgreSQL store, in the column order of JOBSCHED_PG_JOB_COLUMNS.

#include <string>

#include "../job.hpp"
#include "../time.hpp"
#include "pg.hpp"

namespace jobsched::detail::pg {

inline constexpr int job_columns = 23;

inline std::optional<TimePoint> optional_time(const Rows& rows, int row, int column) {
  if (rows.is_null(row, column))
    return std::nullopt;
  return from_unix_seconds(rows.real(row, column));
}

inline Job read_job(const Rows& rows, int row) {
  Job job;
  job.id = rows.int64(row, 0);
  job.data = read_payload(rows, row, 1);
  job.created_at = from_unix_seconds(rows.real(row, 3));
  job.starts_at = from_unix_seconds(rows.real(row, 4));
  job.expires_at = optional_time(rows, row, 5);
  job.completed_at = optional_time(rows, row, 6);
  job.locked_at = optional_time(rows, row, 7);
  job.lease_until = optional_time(rows, row, 8);
  job.attempts = static_cast<int>(rows.int64(row, 9));
  if (!rows.is_null(row, 10))
    job.max_attempts = static_cast<int>(rows.int64(row, 10));
  if (!rows.is_null(row, 11))
    job.initial_backoff = Seconds{rows.real(row, 11)};
  if (!rows.is_null(row, 12))
    job.max_backoff = Seconds{rows.real(row, 12)};
  job.last_error = rows.optional_text(row, 13);
  job.failed_at = optional_time(rows, row, 14);
  job.priority = static_cast<int>(rows.int64(row, 15));
  job.queue = std::string(rows.text(row, 16));
  if (!rows.is_null(row, 17))
    job.firing = Firing{std::string(rows.text(row, 17)), from_unix_seconds(rows.real(row, 18))};
  job.result = read_payload(rows, row, 19);
  job.cancelled_at = optional_time(rows, row, 21);
  job.key = rows.optional_text(row, 22);
  return job;
}

}  // namespace jobsched::detail::pg
