// SPDX-License-Identifier: MIT
#pragma once

// The hand-written baseline: what a careful user writes with the C API against the same
// schema, with prepared statements reused, to get the same answers as jobsched.

#include "fixtures.hpp"

#include <cstdint>
#include <optional>
#include <string>

#define BASELINE_COLUMNS                                                                    \
  "id, data, created_at, starts_at, expires_at, completed_at, locked_at, lease_until,"      \
  " attempts, max_attempts, backoff_initial, backoff_max, last_error, failed_at, priority," \
  " queue"
// Pending: not completed, failed or expired.
#define BASELINE_PENDING \
  "completed_at IS NULL AND failed_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)"
// Free: nobody holds it, or the lease ran out before the last attempt (10 by default).
#define BASELINE_FREE \
  "(locked_at IS NULL OR (lease_until <= ?1 AND attempts < coalesce(max_attempts, 10)))"

namespace bench {

/// A job as the baseline reads it: the same columns jobsched's Job holds.
struct RawJob {
  std::int64_t id = 0;
  std::string data;
  double created_at = 0, starts_at = 0;
  std::optional<double> expires_at, completed_at, locked_at, lease_until;
  int attempts = 0;
  std::optional<int> max_attempts;
  std::optional<double> backoff_initial, backoff_max;
  std::optional<std::string> last_error;
  std::optional<double> failed_at;
  int priority = 0;
  std::string queue;
};

inline std::optional<double> optional_double(sqlite3_stmt* row, int column) {
  if (sqlite3_column_type(row, column) == SQLITE_NULL)
    return std::nullopt;
  return sqlite3_column_double(row, column);
}

inline RawJob read_raw_job(sqlite3_stmt* row) {
  RawJob job;
  job.id = sqlite3_column_int64(row, 0);
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(row, 1));
  job.data.assign(bytes != nullptr ? bytes : "",
                  static_cast<std::size_t>(sqlite3_column_bytes(row, 1)));
  job.created_at = sqlite3_column_double(row, 2);
  job.starts_at = sqlite3_column_double(row, 3);
  job.expires_at = optional_double(row, 4);
  job.completed_at = optional_double(row, 5);
  job.locked_at = optional_double(row, 6);
  job.lease_until = optional_double(row, 7);
  job.attempts = sqlite3_column_int(row, 8);
  if (sqlite3_column_type(row, 9) != SQLITE_NULL)
    job.max_attempts = sqlite3_column_int(row, 9);
  job.backoff_initial = optional_double(row, 10);
  job.backoff_max = optional_double(row, 11);
  if (sqlite3_column_type(row, 12) != SQLITE_NULL)
    job.last_error = reinterpret_cast<const char*>(sqlite3_column_text(row, 12));
  job.failed_at = optional_double(row, 13);
  job.priority = sqlite3_column_int(row, 14);
  job.queue = reinterpret_cast<const char*>(sqlite3_column_text(row, 15));
  return job;
}

// Claims by hand: one UPDATE ... RETURNING takes the first due free job in claim order (the
// default queue's), one UPDATE completes it while the token still holds.
class RawClaims {
 public:
  struct Claimed {
    RawJob job;
    std::int64_t token = 0;
  };

  explicit RawClaims(const Db& db)
      : db_(db),
        claim_(db,
               "UPDATE job SET locked_at = ?1, lease_until = ?2, claim_token = random(),"
               " attempts = attempts + 1 WHERE id = (SELECT id FROM job WHERE " BASELINE_PENDING
               " AND " BASELINE_FREE
               " AND queue = '' AND starts_at <= ?1"
               " ORDER BY priority DESC, starts_at, id LIMIT 1)"
               " RETURNING " BASELINE_COLUMNS ", claim_token"),
        complete_(db,
                  "UPDATE job SET completed_at = ?1, locked_at = NULL, lease_until = NULL,"
                  " claim_token = NULL WHERE id = ?2 AND claim_token = ?3"
                  " AND completed_at IS NULL AND failed_at IS NULL") {}

  std::optional<Claimed> claim(double at, double lease) const {
    sqlite3_bind_double(claim_.get(), 1, at);
    sqlite3_bind_double(claim_.get(), 2, at + lease);
    std::optional<Claimed> claimed;
    if (claim_.step()) {
      claimed = Claimed{read_raw_job(claim_.get()), sqlite3_column_int64(claim_.get(), 16)};
      claim_.step();  // finishes the UPDATE
    }
    claim_.reset();
    return claimed;
  }

  bool complete(const Claimed& claimed, double at) const {
    sqlite3_bind_double(complete_.get(), 1, at);
    sqlite3_bind_int64(complete_.get(), 2, claimed.job.id);
    sqlite3_bind_int64(complete_.get(), 3, claimed.token);
    complete_.step();
    complete_.reset();
    return sqlite3_changes(db_.get()) == 1;
  }

 private:
  const Db& db_;
  Stmt claim_;
  Stmt complete_;
};

}  // namespace bench
