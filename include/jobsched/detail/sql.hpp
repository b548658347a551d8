// SPDX-License-Identifier: MIT
#pragma once

// Every SQL statement the scheduler runs, in one place, so that another SQL dialect can
// follow. `?1` is always "now" where a statement needs it.

namespace jobsched::detail::sql {

// The parameter every statement that needs it binds to the default limit on attempts.
inline constexpr int default_max_attempts = 20;

#define JOBSCHED_JOB_COLUMNS                                                                \
  "id, data, created_at, starts_at, expires_at, completed_at, locked_at, lease_until,"      \
  " attempts, max_attempts, backoff_initial, backoff_max, last_error, failed_at, priority," \
  " queue"
// Pending: neither completed, failed nor expired. The first two terms are the predicate of
// the partial indexes, so every query on pending jobs can use them.
#define JOBSCHED_OPEN "completed_at IS NULL AND failed_at IS NULL"
#define JOBSCHED_PENDING JOBSCHED_OPEN " AND (expires_at IS NULL OR expires_at > ?1)"
// ?20 is always the scheduler's default limit on attempts (RetryPolicy::max_attempts).
#define JOBSCHED_MAX_ATTEMPTS "coalesce(max_attempts, ?20)"
// Not held: never locked or claimed, or the claim's lease ran out before its last attempt
// (after the last one, the job is failed).
#define JOBSCHED_FREE \
  "(locked_at IS NULL OR (lease_until <= ?1 AND attempts < " JOBSCHED_MAX_ATTEMPTS "))"
#define JOBSCHED_NEXT \
  "WHERE " JOBSCHED_PENDING " AND " JOBSCHED_FREE " ORDER BY starts_at, id LIMIT 1"
#define JOBSCHED_HELD_BY "id = ?2 AND claim_token = ?3 AND " JOBSCHED_OPEN
#define JOBSCHED_LET_GO "locked_at = NULL, lease_until = NULL, claim_token = NULL"

inline constexpr const char* insert_job =
    "INSERT INTO job (data, created_at, starts_at, expires_at, priority, queue, max_attempts,"
    " backoff_initial, backoff_max) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
inline constexpr const char* select_job = "SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE id = ?1";
inline constexpr const char* select_next_job =
    "SELECT " JOBSCHED_JOB_COLUMNS " FROM job " JOBSCHED_NEXT;
inline constexpr const char* select_next_start = "SELECT id, starts_at FROM job " JOBSCHED_NEXT;
// Claims whose lease ran out on their last attempt are failed already, though not yet
// marked (the next write marks them).
#define JOBSCHED_ABANDONED \
  "lease_until <= ?1 AND attempts >= " JOBSCHED_MAX_ATTEMPTS " AND " JOBSCHED_OPEN
// Every open job, less the expired ones not deleted yet and the few abandoned. The first
// term is a plain walk of a partial index (no comparison per entry: SQLite knows every entry
// matches), about 3x faster than counting a range of it (17 ms against 45 ms for 1,000,000
// jobs); the expired range is only as long as the expired jobs kept.
inline constexpr const char* count_pending_jobs =
    "SELECT (SELECT count(*) FROM job WHERE " JOBSCHED_OPEN
    ")"
    " - (SELECT count(*) FROM job WHERE " JOBSCHED_OPEN
    " AND expires_at <= ?1)"
    " - (SELECT count(*) FROM job WHERE " JOBSCHED_ABANDONED
    " AND (expires_at IS NULL OR expires_at > ?1))";
// A job completed again keeps its first completion time.
inline constexpr const char* complete_job =
    "UPDATE job SET completed_at = coalesce(completed_at, ?2), " JOBSCHED_LET_GO " WHERE id = ?1";
inline constexpr const char* delete_job = "DELETE FROM job WHERE id = ?1";
inline constexpr const char* delete_completed_jobs =
    "DELETE FROM job WHERE completed_at IS NOT NULL";
inline constexpr const char* delete_expired_jobs =
    "DELETE FROM job WHERE " JOBSCHED_OPEN " AND expires_at <= ?1";

// The successor's locks: a lock is a claim whose lease never runs out.
inline constexpr const char* lock_job =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL"
    " WHERE id = ?2 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE;
inline constexpr const char* unlock_job =
    "UPDATE job SET " JOBSCHED_LET_GO " WHERE id = ?1 AND locked_at IS NOT NULL";
inline constexpr const char* lock_next_job =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL"
    " WHERE id = (SELECT id FROM job " JOBSCHED_NEXT ") RETURNING " JOBSCHED_JOB_COLUMNS;

// Claims. The claim order is priority (higher first), then starts_at, then id, among due
// jobs of the queues served. The index (queue, priority DESC, starts_at) serves it through
// a skip-scan done by hand: each queue, each priority level from the highest, the first
// due free job of the level. That is a few index probes per queue and level, whatever the
// number of jobs stored; SQLite alone would sort the due jobs.
// The first queue from ?1 on, with its highest priority level: one probe.
inline constexpr const char* next_queue = "SELECT queue, priority FROM job WHERE " JOBSCHED_OPEN
                                          " AND queue >= ?1 ORDER BY queue, priority DESC LIMIT 1";
inline constexpr const char* next_priority = "SELECT priority FROM job WHERE " JOBSCHED_OPEN
                                             " AND queue = ?1 AND priority <= ?2"
                                             " ORDER BY priority DESC LIMIT 1";
inline constexpr const char* first_due_in_level =
    "SELECT id, starts_at FROM job WHERE " JOBSCHED_PENDING " AND " JOBSCHED_FREE
    " AND queue = ?2 AND priority = ?3 AND starts_at <= ?1 ORDER BY starts_at, id LIMIT 1";
inline constexpr const char* first_free_in_level =
    "SELECT id, starts_at FROM job WHERE " JOBSCHED_PENDING
    " AND locked_at IS NULL"
    " AND queue = ?2 AND priority = ?3 ORDER BY starts_at, id LIMIT 1";
// Held jobs are few (one per running worker): their index is scanned whole.
// A claim takes only due jobs and a lease only moves forward, so a held job is free at
// lease_until, and the leases index gives them in that order. A job on its last attempt is
// failed, not freed, when its lease runs out.
inline constexpr const char* first_lease_end =
    "SELECT id, max(starts_at, lease_until) FROM job"
    " WHERE lease_until IS NOT NULL AND " JOBSCHED_PENDING
    " AND (?2 IS NULL OR queue = ?2)"
    " AND attempts < " JOBSCHED_MAX_ATTEMPTS " ORDER BY lease_until, id LIMIT 1";
// No RETURNING: inside a transaction, an UPDATE ... RETURNING opens a statement journal
// (a savepoint and an allocation of some 160 KiB, given back to the system after each
// claim); the row is read back by id instead.
inline constexpr const char* claim_job =
    "UPDATE job SET locked_at = ?1, lease_until = ?2, claim_token = random(),"
    " attempts = attempts + 1,"
    " last_error = CASE WHEN lease_until IS NULL THEN last_error"
    "   ELSE 'the lease of attempt ' || attempts || ' ran out' END"
    " WHERE id = ?3";
inline constexpr const char* select_claimed_job =
    "SELECT " JOBSCHED_JOB_COLUMNS ", claim_token FROM job WHERE id = ?1";
// Whether any job is abandoned, asked before marking them: an UPDATE that may change many
// rows inside a transaction opens a statement journal (an allocation of some 160 KiB here,
// and a savepoint) even when no row matches; a SELECT does not.
inline constexpr const char* any_abandoned_job =
    "SELECT 1 FROM job WHERE " JOBSCHED_ABANDONED " LIMIT 1";
// A lease that ran out on the last allowed attempt fails the job; ?20 is the default limit.
inline constexpr const char* fail_abandoned_jobs =
    "UPDATE job SET failed_at = ?1, " JOBSCHED_LET_GO
    ","
    " last_error = 'the lease of attempt ' || attempts || ' ran out'"
    " WHERE " JOBSCHED_ABANDONED;
inline constexpr const char* complete_claim =
    "UPDATE job SET completed_at = ?1, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* extend_claim =
    "UPDATE job SET lease_until = ?1 WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* release_claim =
    "UPDATE job SET " JOBSCHED_LET_GO ", attempts = max(attempts - 1, 0) WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* select_claimed =
    "SELECT attempts, max_attempts, backoff_initial, backoff_max, created_at, expires_at"
    " FROM job WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* retry_later =
    "UPDATE job SET starts_at = ?1, last_error = ?4, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* fail_for_good =
    "UPDATE job SET failed_at = ?1, last_error = ?4, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;

// Failed jobs.
inline constexpr const char* select_failed_jobs = "SELECT " JOBSCHED_JOB_COLUMNS
                                                  " FROM job WHERE failed_at IS NOT NULL"
                                                  " ORDER BY failed_at, id";
inline constexpr const char* retry_job =
    "UPDATE job SET failed_at = NULL, attempts = 0,"
    " starts_at = max(created_at, min(?1, coalesce(expires_at, ?1)))"
    " WHERE id = ?2 AND failed_at IS NOT NULL";
inline constexpr const char* delete_failed_jobs = "DELETE FROM job WHERE failed_at IS NOT NULL";

#undef JOBSCHED_ABANDONED
#undef JOBSCHED_LET_GO
#undef JOBSCHED_HELD_BY
#undef JOBSCHED_NEXT
#undef JOBSCHED_FREE
#undef JOBSCHED_MAX_ATTEMPTS
#undef JOBSCHED_PENDING
#undef JOBSCHED_OPEN
#undef JOBSCHED_JOB_COLUMNS

// Schema introspection, used before and during migrations.
inline constexpr const char* has_table =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
inline constexpr const char* select_version = "SELECT value FROM job_schema WHERE key = 'version'";
inline constexpr const char* update_version =
    "UPDATE job_schema SET value = ?1 WHERE key = 'version'";
inline constexpr const char* data_version = "PRAGMA data_version";

}  // namespace jobsched::detail::sql
