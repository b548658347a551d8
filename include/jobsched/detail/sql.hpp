// SPDX-License-Identifier: MIT
#pragma once

// Every SQL statement the scheduler runs, in one place, so that another SQL dialect can
// follow. `?1` is always "now" and `?20` the default limit on attempts, where a statement
// needs them; a statement's own values come from ?2 on.

namespace jobsched::detail::sql {

// The parameter every statement that needs it binds to the default limit on attempts.
inline constexpr int default_max_attempts = 20;

// Pending: neither completed, failed nor expired. The first two terms are the predicate of
// the partial indexes, so every query on pending jobs can use them.
#define JOBSCHED_OPEN "completed_at IS NULL AND failed_at IS NULL"
#define JOBSCHED_PENDING JOBSCHED_OPEN " AND (expires_at IS NULL OR expires_at > ?1)"
// ?20 is always the scheduler's default limit on attempts (RetryPolicy::max_attempts).
#define JOBSCHED_MAX_ATTEMPTS "coalesce(max_attempts, ?20)"
// Abandoned: an open job whose lease ran out on its last attempt, before it expired. It
// failed at that lease end, whether or not its row says so yet (the next write that meets it
// marks it); every statement treats it so, reads through JOBSCHED_JOB_COLUMNS included.
// Never NULL (a job without a lease is not abandoned), so that NOT of it keeps every row
// that is not.
#define JOBSCHED_ABANDONED                                                              \
  "(lease_until IS NOT NULL AND lease_until <= ?1 AND attempts >= " JOBSCHED_MAX_ATTEMPTS \
  " AND " JOBSCHED_OPEN " AND (expires_at IS NULL OR lease_until < expires_at))"
#define JOBSCHED_LEASE_RAN_OUT "'the lease of attempt ' || attempts || ' ran out'"
// A job's columns, an abandoned job shown as its row will be once marked (see
// fail_abandoned_jobs), so that a job's state is one function of its row and now.
#define JOBSCHED_JOB_COLUMNS                                       \
  "id, data, created_at, starts_at, expires_at, completed_at,"     \
  " CASE WHEN " JOBSCHED_ABANDONED                                 \
  " THEN NULL ELSE locked_at END,"                                 \
  " CASE WHEN " JOBSCHED_ABANDONED                                 \
  " THEN NULL ELSE lease_until END,"                               \
  " attempts, max_attempts, backoff_initial, backoff_max,"         \
  " CASE WHEN " JOBSCHED_ABANDONED " THEN " JOBSCHED_LEASE_RAN_OUT \
  " ELSE last_error END,"                                          \
  " CASE WHEN " JOBSCHED_ABANDONED " THEN lease_until ELSE failed_at END, priority, queue"
// Not held: never locked or claimed, or the claim's lease ran out before its last attempt
// (after the last one, the job is failed).
#define JOBSCHED_FREE \
  "(locked_at IS NULL OR (lease_until <= ?1 AND attempts < " JOBSCHED_MAX_ATTEMPTS "))"
#define JOBSCHED_NEXT \
  "WHERE " JOBSCHED_PENDING " AND " JOBSCHED_FREE " ORDER BY starts_at, id LIMIT 1"
// The claim (?2 the job, ?3 the token) still holds the job: not abandoned, not settled.
#define JOBSCHED_HELD_BY \
  "id = ?2 AND claim_token = ?3 AND " JOBSCHED_OPEN " AND NOT " JOBSCHED_ABANDONED
#define JOBSCHED_LET_GO "locked_at = NULL, lease_until = NULL, claim_token = NULL"
// Marks an abandoned job failed at its lease end, in the same UPDATE as other changes (SET
// reads the row as it was, so these see the old lease_until even beside JOBSCHED_LET_GO).
#define JOBSCHED_MARK_IF_ABANDONED                                              \
  "failed_at = CASE WHEN " JOBSCHED_ABANDONED                                   \
  " THEN lease_until ELSE failed_at END,"                                       \
  " last_error = CASE WHEN " JOBSCHED_ABANDONED " THEN " JOBSCHED_LEASE_RAN_OUT \
  " ELSE last_error END"

inline constexpr const char* insert_job =
    "INSERT INTO job (data, created_at, starts_at, expires_at, priority, queue, max_attempts,"
    " backoff_initial, backoff_max) VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
inline constexpr const char* select_job = "SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE id = ?2";
inline constexpr const char* select_next_job =
    "SELECT " JOBSCHED_JOB_COLUMNS " FROM job " JOBSCHED_NEXT;
inline constexpr const char* select_next_start = "SELECT id, starts_at FROM job " JOBSCHED_NEXT;
// Every open job, less the expired ones not deleted yet and the abandoned ones not expired
// (those failed, the others expired first). The first term is a plain walk of a partial
// index (no comparison per entry: SQLite knows every entry matches), about 3x faster than
// counting a range of it (17 ms against 45 ms for 1,000,000 jobs); the expired range is only
// as long as the expired jobs kept.
inline constexpr const char* count_pending_jobs =
    "SELECT (SELECT count(*) FROM job WHERE " JOBSCHED_OPEN
    ")"
    " - (SELECT count(*) FROM job WHERE " JOBSCHED_OPEN
    " AND expires_at <= ?1)"
    " - (SELECT count(*) FROM job WHERE " JOBSCHED_ABANDONED
    " AND (expires_at IS NULL OR expires_at > ?1))";
// Completing ends any lock or claim, and a failure: the job is completed, whatever it was.
// A job completed again keeps its first completion time.
inline constexpr const char* complete_job =
    "UPDATE job SET completed_at = coalesce(completed_at, ?3), failed_at = NULL, " JOBSCHED_LET_GO
    " WHERE id = ?2";
inline constexpr const char* delete_job = "DELETE FROM job WHERE id = ?2";
inline constexpr const char* delete_completed_jobs =
    "DELETE FROM job WHERE completed_at IS NOT NULL";
inline constexpr const char* delete_expired_jobs = "DELETE FROM job WHERE " JOBSCHED_OPEN
                                                   " AND expires_at <= ?1"
                                                   " AND NOT " JOBSCHED_ABANDONED;

// The successor's locks: a lock is a claim whose lease never runs out.
inline constexpr const char* lock_job =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL"
    " WHERE id = ?2 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE;
// As the successor: true (a row changed) for any job that exists, held or not. An abandoned
// job stays failed.
inline constexpr const char* unlock_job =
    "UPDATE job SET " JOBSCHED_MARK_IF_ABANDONED ", " JOBSCHED_LET_GO " WHERE id = ?2";
inline constexpr const char* lock_next_job =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL"
    " WHERE id = (SELECT id FROM job " JOBSCHED_NEXT ") RETURNING " JOBSCHED_JOB_COLUMNS;

// Claims. The claim order is priority (higher first), then starts_at, then id, among due
// jobs of the queues served. The index (queue, priority DESC, starts_at) serves it through
// a skip-scan done by hand: each queue, each priority level from the highest, the first
// due free job of the level. That is a few index probes per queue and level, whatever the
// number of jobs stored; SQLite alone would sort the due jobs.
// The first queue from ?2 on, with its highest priority level: one probe.
inline constexpr const char* next_queue = "SELECT queue, priority FROM job WHERE " JOBSCHED_OPEN
                                          " AND queue >= ?2 ORDER BY queue, priority DESC LIMIT 1";
inline constexpr const char* next_priority = "SELECT priority FROM job WHERE " JOBSCHED_OPEN
                                             " AND queue = ?2 AND priority <= ?3"
                                             " ORDER BY priority DESC LIMIT 1";
inline constexpr const char* first_due_in_level =
    "SELECT id, starts_at FROM job WHERE " JOBSCHED_PENDING " AND " JOBSCHED_FREE
    " AND queue = ?2 AND priority = ?3 AND starts_at <= ?1 ORDER BY starts_at, id LIMIT 1";
inline constexpr const char* first_free_in_level =
    "SELECT id, starts_at FROM job WHERE " JOBSCHED_PENDING " AND " JOBSCHED_FREE
    " AND queue = ?2 AND priority = ?3 ORDER BY starts_at, id LIMIT 1";
// Live leases that will free their job when they end (not on its last attempt), in order of
// their end, in queue ?2 or in any queue when ?2 is NULL. A job is free again at the later
// of its lease end and its start: a lease may end before the start when it was moved back.
inline constexpr const char* live_leases =
    "SELECT id, starts_at, lease_until FROM job"
    " WHERE lease_until > ?1 AND " JOBSCHED_PENDING
    " AND (?2 IS NULL OR queue = ?2)"
    " AND attempts < " JOBSCHED_MAX_ATTEMPTS " ORDER BY lease_until, id";
// No RETURNING: inside a transaction, an UPDATE ... RETURNING opens a statement journal
// (a savepoint and an allocation of some 160 KiB, given back to the system after each
// claim); the row is read back by id instead.
inline constexpr const char* claim_job =
    "UPDATE job SET locked_at = ?1, lease_until = ?3, claim_token = random(),"
    " attempts = attempts + 1,"
    " last_error = CASE WHEN lease_until IS NULL THEN last_error"
    "   ELSE 'the lease of attempt ' || attempts || ' ran out' END"
    " WHERE id = ?2";
inline constexpr const char* select_claimed_job =
    "SELECT " JOBSCHED_JOB_COLUMNS ", claim_token FROM job WHERE id = ?2";
// Whether any job is abandoned, asked before marking them: an UPDATE that may change many
// rows inside a transaction opens a statement journal (an allocation of some 160 KiB here,
// and a savepoint) even when no row matches; a SELECT does not.
inline constexpr const char* any_abandoned_job =
    "SELECT 1 FROM job WHERE " JOBSCHED_ABANDONED " LIMIT 1";
// Marks the abandoned jobs failed, at their lease end: the time they failed.
inline constexpr const char* fail_abandoned_jobs =
    "UPDATE job SET failed_at = lease_until, " JOBSCHED_LET_GO
    ", last_error = " JOBSCHED_LEASE_RAN_OUT " WHERE " JOBSCHED_ABANDONED;
inline constexpr const char* complete_claim =
    "UPDATE job SET completed_at = ?1, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;
// A lease never moves earlier than it is (a holder whose clock stepped back would hand its
// job to another worker while it still runs); ?4 is the lease end asked for.
inline constexpr const char* extend_claim =
    "UPDATE job SET lease_until = max(coalesce(lease_until, ?4), ?4) WHERE " JOBSCHED_HELD_BY
    " RETURNING lease_until";
inline constexpr const char* release_claim =
    "UPDATE job SET " JOBSCHED_LET_GO ", attempts = max(attempts - 1, 0) WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* select_claimed =
    "SELECT attempts, max_attempts, backoff_initial, backoff_max, created_at, expires_at"
    " FROM job WHERE " JOBSCHED_HELD_BY;
// ?4 the retry time, ?5 the error.
inline constexpr const char* retry_later =
    "UPDATE job SET starts_at = ?4, last_error = ?5, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;
inline constexpr const char* fail_for_good =
    "UPDATE job SET failed_at = ?1, last_error = ?5, " JOBSCHED_LET_GO " WHERE " JOBSCHED_HELD_BY;

// Failed jobs: those marked, and the abandoned ones not marked yet, in the order they failed.
inline constexpr const char* select_failed_jobs =
    "SELECT " JOBSCHED_JOB_COLUMNS
    " FROM job WHERE failed_at IS NOT NULL"
    " UNION ALL SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE " JOBSCHED_ABANDONED
    " ORDER BY 14, 1";
inline constexpr const char* retry_job =
    "UPDATE job SET failed_at = NULL, attempts = 0,"
    " starts_at = max(created_at, min(?1, coalesce(expires_at, ?1)))"
    " WHERE id = ?2 AND failed_at IS NOT NULL";
inline constexpr const char* delete_failed_jobs = "DELETE FROM job WHERE failed_at IS NOT NULL";

#undef JOBSCHED_MARK_IF_ABANDONED
#undef JOBSCHED_LET_GO
#undef JOBSCHED_HELD_BY
#undef JOBSCHED_NEXT
#undef JOBSCHED_FREE
#undef JOBSCHED_JOB_COLUMNS
#undef JOBSCHED_LEASE_RAN_OUT
#undef JOBSCHED_ABANDONED
#undef JOBSCHED_MAX_ATTEMPTS
#undef JOBSCHED_PENDING
#undef JOBSCHED_OPEN

// Schema introspection, used before and during migrations.
inline constexpr const char* has_table =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
inline constexpr const char* select_version = "SELECT value FROM job_schema WHERE key = 'version'";
inline constexpr const char* update_version =
    "UPDATE job_schema SET value = ?1 WHERE key = 'version'";
inline constexpr const char* data_version = "PRAGMA data_version";

}  // namespace jobsched::detail::sql
