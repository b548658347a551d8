// SPDX-License-Identifier: MIT
#pragma once

// A job row: binding a new job's values, reading the columns of JOBSCHED_JOB_COLUMNS
// (detail/sql.hpp) back into a Job.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

#include "../job.hpp"
#include "../payload.hpp"
#include "../time.hpp"
#include "sqlite.hpp"

namespace jobsched::detail {

inline void bind_optional(Run& run, int index, std::optional<double> value) {
  if (value) {
    run.bind(index, *value);
  } else {
    run.bind_null(index);
  }
}
inline void bind_optional(Run& run, int index, std::optional<Seconds> value) {
  bind_optional(run, index, value ? std::optional<double>(value->count()) : std::nullopt);
}
inline void bind_optional(Run& run, int index, std::optional<int> value) {
  if (value) {
    run.bind(index, std::int64_t{*value});
  } else {
    run.bind_null(index);
  }
}

inline void bind_payload(Run& run, int index, const Payload& data) {
  switch (data.storage_class()) {
    case StorageClass::null:
      run.bind_null(index);
      break;
    case StorageClass::integer:
      run.bind(index, *data.as_integer());
      break;
    case StorageClass::real:
      run.bind(index, *data.as_real());
      break;
    case StorageClass::text:
      run.bind_text(index, data.bytes());
      break;
    case StorageClass::blob:
      run.bind_blob(index, data.bytes());
      break;
  }
}

inline std::optional<TimePoint> read_optional_time(const Run& run, int column) {
  if (run.column_type(column) == SQLITE_NULL)
    return std::nullopt;
  return from_unix_seconds(run.column_double(column));
}

inline Payload read_payload(const Run& run, int column) {
  switch (run.column_type(column)) {
    case SQLITE_INTEGER:
      return Payload::integer(run.column_int64(column));
    case SQLITE_FLOAT:
      return Payload::real(run.column_double(column));
    case SQLITE_TEXT:
      return Payload::text(run.column_text(column));
    case SQLITE_BLOB:
      return Payload(run.column_blob(column));
    default:
      return Payload();
  }
}

// Columns in the order of JOBSCHED_JOB_COLUMNS in detail/sql.hpp.
inline constexpr int job_columns = 21;
inline Job read_job(const Run& run) {
  Job job;
  job.id = run.column_int64(0);
  job.data = read_payload(run, 1);
  job.created_at = from_unix_seconds(run.column_double(2));
  job.starts_at = from_unix_seconds(run.column_double(3));
  job.expires_at = read_optional_time(run, 4);
  job.completed_at = read_optional_time(run, 5);
  job.locked_at = read_optional_time(run, 6);
  job.lease_until = read_optional_time(run, 7);
  job.attempts = static_cast<int>(run.column_int64(8));
  if (run.column_type(9) != SQLITE_NULL)
    job.max_attempts = static_cast<int>(run.column_int64(9));
  if (run.column_type(10) != SQLITE_NULL)
    job.initial_backoff = Seconds{run.column_double(10)};
  if (run.column_type(11) != SQLITE_NULL)
    job.max_backoff = Seconds{run.column_double(11)};
  if (run.column_type(12) != SQLITE_NULL)
    job.last_error = std::string(run.column_text(12));
  job.failed_at = read_optional_time(run, 13);
  job.priority = static_cast<int>(run.column_int64(14));
  job.queue = std::string(run.column_text(15));
  if (run.column_type(16) != SQLITE_NULL)
    job.firing = Firing{std::string(run.column_text(16)), from_unix_seconds(run.column_double(17))};
  job.result = read_payload(run, 18);
  job.cancelled_at = read_optional_time(run, 19);
  if (run.column_type(20) != SQLITE_NULL)
    job.key = std::string(run.column_text(20));
  return job;
}

}  // namespace jobsched::detail
