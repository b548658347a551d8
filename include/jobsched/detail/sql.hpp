// SPDX-License-Identifier: MIT
#pragma once

// Every SQL statement the scheduler runs, in one place, so that another SQL dialect can
// follow. `?1` is always "now" where a statement needs it.

namespace jobsched::detail::sql {

#define JOBSCHED_JOB_COLUMNS "id, data, created_at, starts_at, expires_at, completed_at, locked_at"
#define JOBSCHED_PENDING "completed_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)"
#define JOBSCHED_NEXT \
  "WHERE " JOBSCHED_PENDING " AND locked_at IS NULL ORDER BY starts_at, id LIMIT 1"

inline constexpr const char* insert_job =
    "INSERT INTO job (data, created_at, starts_at, expires_at) VALUES (?1, ?2, ?3, ?4)";
inline constexpr const char* select_job =
    "SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE id = ?1";
inline constexpr const char* select_next_job =
    "SELECT " JOBSCHED_JOB_COLUMNS " FROM job " JOBSCHED_NEXT;
inline constexpr const char* select_next_start = "SELECT id, starts_at FROM job " JOBSCHED_NEXT;
// Two range scans of the covering index on pending expiry times.
inline constexpr const char* count_pending_jobs =
    "SELECT (SELECT count(*) FROM job WHERE completed_at IS NULL AND expires_at IS NULL)"
    " + (SELECT count(*) FROM job WHERE completed_at IS NULL AND expires_at > ?1)";
// A job completed again keeps its first completion time.
inline constexpr const char* complete_job =
    "UPDATE job SET completed_at = coalesce(completed_at, ?2), locked_at = NULL WHERE id = ?1";
inline constexpr const char* delete_job = "DELETE FROM job WHERE id = ?1";
inline constexpr const char* delete_completed_jobs =
    "DELETE FROM job WHERE completed_at IS NOT NULL";
inline constexpr const char* delete_expired_jobs =
    "DELETE FROM job WHERE completed_at IS NULL AND expires_at <= ?1";
inline constexpr const char* lock_job =
    "UPDATE job SET locked_at = ?1 WHERE id = ?2 AND locked_at IS NULL AND " JOBSCHED_PENDING;
inline constexpr const char* unlock_job =
    "UPDATE job SET locked_at = NULL WHERE id = ?1 AND locked_at IS NOT NULL";
inline constexpr const char* lock_next_job =
    "UPDATE job SET locked_at = ?1 WHERE id = (SELECT id FROM job " JOBSCHED_NEXT
    ") RETURNING " JOBSCHED_JOB_COLUMNS;

#undef JOBSCHED_NEXT
#undef JOBSCHED_PENDING
#undef JOBSCHED_JOB_COLUMNS

// Schema introspection, used before and during migrations.
inline constexpr const char* has_table =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
inline constexpr const char* select_version =
    "SELECT value FROM job_schema WHERE key = 'version'";
inline constexpr const char* update_version =
    "UPDATE job_schema SET value = ?1 WHERE key = 'version'";

}  // namespace jobsched::detail::sql
