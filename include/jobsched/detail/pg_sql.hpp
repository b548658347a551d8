// SPDX-License-Identifier: MIT
#pragma once

// Every SQL statement the PostgreSQL store runs, in one place: the dialect's twin of sql.hpp.
// `@.` stands for the store's schema (quoted) and is replaced when a store prepares its
// statements (`@@`, in the migrations alone, for its name in a string literal). `$1` is always now (float8) and `$2` the default limit on attempts (int4),
// typed when prepared whether a statement reads them or not; a statement's own values come
// from $3 on.
//
// PostgreSQL needs no stored state hints: a job's state is computed from its times in every
// statement, exactly as the SQLite store's statements compute it, and partial indexes on
// open jobs keep the orders short.

#include <string>
#include <string_view>

namespace jobsched::detail::pg_sql {

// The schema version this build writes: the store's own numbering, from 1.
inline constexpr int schema_version = 1;

#define JOBSCHED_PG_OPEN "completed_at IS NULL AND failed_at IS NULL"
#define JOBSCHED_PG_UNEXPIRED "(expires_at IS NULL OR expires_at > $1)"
#define JOBSCHED_PG_MAX_ATTEMPTS "coalesce(max_attempts, $2)"
// A job whose lease ran out on its last attempt, before it expired: failed at that lease's
// end, whether or not its row says so yet (as JOBSCHED_ABANDONED in sql.hpp).
#define JOBSCHED_PG_ABANDONED                                                           \
  "(lease_until IS NOT NULL AND lease_until <= $1 AND attempts >= " JOBSCHED_PG_MAX_ATTEMPTS \
  " AND (expires_at IS NULL OR lease_until < expires_at))"
#define JOBSCHED_PG_LEASE_RAN_OUT "'the lease of attempt ' || attempts || ' ran out'"
// Not held: never locked or claimed, or its lease ran out with attempts left.
#define JOBSCHED_PG_FREE                                                      \
  "(locked_at IS NULL OR coalesce(lease_until <= $1 AND attempts < " JOBSCHED_PG_MAX_ATTEMPTS \
  ", false))"
// Of a queue not paused, as a hashed subplan (queue_pause.queue is never NULL): the planner
// keeps the orders walks of their indexes. NOT EXISTS became an anti-join, and <> ALL (ARRAY
// (...)) an estimate of one row, and both a sort of every open job for each claim.
#define JOBSCHED_PG_NOT_PAUSED "queue NOT IN (SELECT queue FROM @.queue_pause)"
// $N: a text[] of queues to serve, or NULL for every queue.
#define JOBSCHED_PG_IN_QUEUES(N) "($" N "::text[] IS NULL OR queue = ANY ($" N "::text[]))"
#define JOBSCHED_PG_CLAIMABLE \
  JOBSCHED_PG_OPEN " AND " JOBSCHED_PG_UNEXPIRED " AND " JOBSCHED_PG_FREE " AND " JOBSCHED_PG_NOT_PAUSED
// The columns of a job (read_job's order), an abandoned job shown as failed.
#define JOBSCHED_PG_JOB_COLUMNS                                                        \
  "id, data_kind, data, created_at, starts_at, expires_at, completed_at,"            \
  " CASE WHEN " JOBSCHED_PG_ABANDONED " THEN NULL ELSE locked_at END,"               \
  " CASE WHEN " JOBSCHED_PG_ABANDONED " THEN NULL ELSE lease_until END,"             \
  " attempts, max_attempts, backoff_initial, backoff_max,"                           \
  " CASE WHEN " JOBSCHED_PG_ABANDONED " THEN " JOBSCHED_PG_LEASE_RAN_OUT            \
  " ELSE last_error END,"                                                            \
  " CASE WHEN " JOBSCHED_PG_ABANDONED " THEN lease_until ELSE failed_at END,"        \
  " priority, queue, schedule, fire_at, result_kind, result, cancelled_at, unique_key"
#define JOBSCHED_PG_LET_GO "locked_at = NULL, lease_until = NULL, claim_token = NULL"
// The claim ($3 the job, $4 its token) still holds the job: not abandoned, not settled.
#define JOBSCHED_PG_HELD_BY \
  "id = $3 AND claim_token = $4 AND " JOBSCHED_PG_OPEN " AND NOT " JOBSCHED_PG_ABANDONED

// ---- The schema, version 1 ----------------------------------------------------------------
// These run unprepared, before the store's statements, with their own values from $1. Run under the store's advisory lock, in one transaction with the version row.
// Whether schema $1 has its version table (0 or 1); then the schema, if missing, and the table.
inline constexpr const char* version_table_exists =
    "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = $1::text"
    " AND tablename = 'schema_version'";
inline constexpr const char* version_table =
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = '@@')"
    " THEN CREATE SCHEMA @; END IF; END $$;"
    "CREATE TABLE @.schema_version (only_row boolean PRIMARY KEY DEFAULT true"
    " CHECK (only_row), version integer NOT NULL)";
inline constexpr const char* select_version = "SELECT version FROM @.schema_version";
inline constexpr const char* insert_version =
    "INSERT INTO @.schema_version (version) VALUES ($1::integer)"
    " ON CONFLICT (only_row) DO UPDATE SET version = excluded.version";
// The server's clock, in seconds since the Unix epoch (the moment the statement runs).
inline constexpr const char* server_time = "SELECT extract(epoch FROM clock_timestamp())::float8";
// The transaction-scoped lock that serialises migrations of one schema ($1 its name).
inline constexpr const char* lock_migrations =
    "SELECT pg_advisory_xact_lock(hashtextextended('jobsched migrations ' || $1::text, 0))";
inline constexpr const char* migration_1 =
    "CREATE SEQUENCE @.claim_token;"
    "CREATE TABLE @.job ("
    " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " data_kind smallint, data bytea,"
    " created_at float8 NOT NULL, starts_at float8 NOT NULL, expires_at float8,"
    " completed_at float8, locked_at float8, lease_until float8, lease_seconds float8,"
    " claim_token bigint, attempts integer NOT NULL DEFAULT 0, max_attempts integer,"
    " backoff_initial float8, backoff_max float8, last_error text, failed_at float8,"
    " priority integer NOT NULL DEFAULT 0, queue text NOT NULL DEFAULT '',"
    " schedule text, fire_at float8, result_kind smallint, result bytea, cancelled_at float8,"
    " unique_key text,"
    " CHECK (created_at <= starts_at), CHECK (expires_at IS NULL OR starts_at <= expires_at));"
    "CREATE INDEX job_claim_order ON @.job (priority DESC, starts_at, id)"
    " WHERE " JOBSCHED_PG_OPEN ";"
    "CREATE INDEX job_start_order ON @.job (starts_at, id) WHERE " JOBSCHED_PG_OPEN ";"
    "CREATE INDEX job_queue_order ON @.job (queue, priority DESC, starts_at, id)"
    " WHERE " JOBSCHED_PG_OPEN ";"
    "CREATE INDEX job_leases ON @.job (lease_until) WHERE lease_until IS NOT NULL;"
    "CREATE INDEX job_expiry ON @.job (expires_at)"
    " WHERE " JOBSCHED_PG_OPEN " AND expires_at IS NOT NULL;"
    "CREATE INDEX job_completed ON @.job (completed_at) WHERE completed_at IS NOT NULL;"
    "CREATE INDEX job_failed ON @.job (failed_at) WHERE failed_at IS NOT NULL;"
    "CREATE TABLE @.queue_pause (queue text PRIMARY KEY, paused_at float8 NOT NULL)";

// ---- The statements a store prepares, by name ---------------------------------------------
struct Statement {
  const char* name;
  const char* sql;
};

// Each statement's index in `statements`.
enum Id {
  insert_job,
  select_job,
  next_job,
  next_due,
  count_pending_jobs,
  complete_job,
  delete_job,
  delete_completed_jobs,
  delete_expired_jobs,
  delete_failed_jobs,
  lock_job,
  unlock_job,
  lock_next_job,
  claim_jobs,
  complete_claim,
  complete_claim_with_result,
  release_claim,
  snooze_claim,
  extend_claim,
  select_claimed,
  retry_later,
  fail_for_good,
  cancel_job,
  failed_jobs,
  retry_job,
  pause_queue,
  resume_queue,
  paused_queues,
  statement_count
};

inline constexpr Statement statements[statement_count] = {
    // $3 data_kind, $4 data, $5 created_at, $6 starts_at, $7 expires_at, $8 priority,
    // $9 queue, $10 max_attempts, $11 and $12 the backoffs.
    {"insert_job",
     "INSERT INTO @.job (data_kind, data, created_at, starts_at, expires_at, priority, queue,"
     " max_attempts, backoff_initial, backoff_max)"
     " VALUES ($3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id"},
    {"select_job", "SELECT " JOBSCHED_PG_JOB_COLUMNS " FROM @.job WHERE id = $3"},
    // In next_job's order (start, then id): the first pending free job of a served queue.
    {"next_job",
     "SELECT " JOBSCHED_PG_JOB_COLUMNS " FROM @.job AS job WHERE " JOBSCHED_PG_CLAIMABLE
     " ORDER BY starts_at, id LIMIT 1"},
    // The job seconds_until_next_job waits for, of queues $3 (NULL: all): the first free one
    // in start order, or a live lease that frees its job (not on its last attempt) at the
    // later of the lease's end and its start, whichever comes first (then the lower id).
    {"next_due",
     "SELECT id, at FROM ("
     " (SELECT id, starts_at AS at FROM @.job AS job WHERE " JOBSCHED_PG_CLAIMABLE
     "  AND " JOBSCHED_PG_IN_QUEUES("3") " ORDER BY starts_at, id LIMIT 1)"
     " UNION ALL"
     " (SELECT id, greatest(starts_at, lease_until) AS at FROM @.job AS job"
     "  WHERE lease_until IS NOT NULL AND lease_until > $1 AND " JOBSCHED_PG_OPEN
     "  AND " JOBSCHED_PG_UNEXPIRED " AND attempts < " JOBSCHED_PG_MAX_ATTEMPTS
     "  AND " JOBSCHED_PG_NOT_PAUSED " AND " JOBSCHED_PG_IN_QUEUES("3")
     "  ORDER BY 2, 1 LIMIT 1)) AS candidates ORDER BY at, id LIMIT 1"},
    {"count_pending_jobs",
     "SELECT count(*) FROM @.job WHERE " JOBSCHED_PG_OPEN " AND " JOBSCHED_PG_UNEXPIRED
     " AND NOT " JOBSCHED_PG_ABANDONED},
    // Completing ends any lock, claim or failure; a job completed again keeps its first
    // completion time. $3 the job, $4 the time.
    {"complete_job",
     "UPDATE @.job SET completed_at = coalesce(completed_at, $4), failed_at = NULL, "
     JOBSCHED_PG_LET_GO " WHERE id = $3"},
    {"delete_job", "DELETE FROM @.job WHERE id = $3"},
    {"delete_completed_jobs", "DELETE FROM @.job WHERE completed_at IS NOT NULL"},
    {"delete_expired_jobs",
     "DELETE FROM @.job WHERE " JOBSCHED_PG_OPEN " AND expires_at IS NOT NULL"
     " AND expires_at <= $1 AND NOT " JOBSCHED_PG_ABANDONED},
    {"delete_failed_jobs",
     "DELETE FROM @.job WHERE failed_at IS NOT NULL OR " JOBSCHED_PG_ABANDONED},
    // The successor's locks: a lock is a claim whose lease never runs out.
    {"lock_job",
     "UPDATE @.job AS job SET locked_at = $1, lease_until = NULL, claim_token = NULL"
     " WHERE id = $3 AND " JOBSCHED_PG_OPEN " AND " JOBSCHED_PG_UNEXPIRED
     " AND " JOBSCHED_PG_FREE},
    // True for any job that exists, held or not; an abandoned job is marked failed.
    {"unlock_job",
     "UPDATE @.job SET failed_at = CASE WHEN " JOBSCHED_PG_ABANDONED
     " THEN lease_until ELSE failed_at END, last_error = CASE WHEN " JOBSCHED_PG_ABANDONED
     " THEN " JOBSCHED_PG_LEASE_RAN_OUT " ELSE last_error END, " JOBSCHED_PG_LET_GO
     " WHERE id = $3"},
    {"lock_next_job",
     "WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM @.job AS job WHERE "
     JOBSCHED_PG_CLAIMABLE " ORDER BY starts_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
     " UPDATE @.job AS job SET locked_at = $1, lease_until = NULL, claim_token = NULL"
     " WHERE id = ANY (ARRAY(SELECT picked_id FROM picked)) RETURNING " JOBSCHED_PG_JOB_COLUMNS},
    // Claims up to $5 due free jobs of queues $4 (NULL: all) in claim order, leased until $3:
    // the rows are picked and locked first (MATERIALIZED: the planner may not fold the pick
    // into the UPDATE), each skipping rows another claim holds locked. The UPDATE finds them
    // by id = ANY: a join with the pick became a hash join over every job in generic plans.
    {"claim_jobs",
     "WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM @.job AS job WHERE "
     JOBSCHED_PG_CLAIMABLE " AND starts_at <= $1 AND " JOBSCHED_PG_IN_QUEUES("4")
     " ORDER BY priority DESC, starts_at, id LIMIT $5 FOR UPDATE SKIP LOCKED)"
     " UPDATE @.job AS job SET locked_at = $1, lease_until = $3, lease_seconds = $3 - $1,"
     " claim_token = nextval('@.claim_token'), attempts = job.attempts + 1,"
     " last_error = CASE WHEN job.lease_until IS NULL THEN job.last_error"
     "   ELSE 'the lease of attempt ' || job.attempts || ' ran out' END"
     " WHERE id = ANY (ARRAY(SELECT picked_id FROM picked)) RETURNING " JOBSCHED_PG_JOB_COLUMNS
     ", claim_token"},
    {"complete_claim",
     "UPDATE @.job SET completed_at = $1, " JOBSCHED_PG_LET_GO " WHERE " JOBSCHED_PG_HELD_BY},
    // $5 and $6 the result's kind and bytes.
    {"complete_claim_with_result",
     "UPDATE @.job SET completed_at = $1, result_kind = $5, result = $6, " JOBSCHED_PG_LET_GO
     " WHERE " JOBSCHED_PG_HELD_BY},
    // The attempt not counted.
    {"release_claim",
     "UPDATE @.job SET " JOBSCHED_PG_LET_GO ", attempts = greatest(attempts - 1, 0)"
     " WHERE " JOBSCHED_PG_HELD_BY},
    // Back to start at $5, no earlier than its creation and no later than its expiry.
    {"snooze_claim",
     "UPDATE @.job SET " JOBSCHED_PG_LET_GO ", attempts = greatest(attempts - 1, 0),"
     " starts_at = greatest(created_at, least($5, coalesce(expires_at, $5)))"
     " WHERE " JOBSCHED_PG_HELD_BY},
    // A lease never moves earlier than it is; $5 the end asked for.
    {"extend_claim",
     "UPDATE @.job SET lease_until = greatest(coalesce(lease_until, $5), $5),"
     " lease_seconds = $5 - $1 WHERE " JOBSCHED_PG_HELD_BY " RETURNING lease_until"},
    {"select_claimed",
     "SELECT attempts, max_attempts, backoff_initial, backoff_max, created_at, expires_at"
     " FROM @.job WHERE " JOBSCHED_PG_HELD_BY " FOR UPDATE"},
    // $5 the retry time, $6 the error.
    {"retry_later",
     "UPDATE @.job SET starts_at = $5, last_error = $6, " JOBSCHED_PG_LET_GO
     " WHERE " JOBSCHED_PG_HELD_BY},
    // $5 the error.
    {"fail_for_good",
     "UPDATE @.job SET failed_at = $1, last_error = $5, " JOBSCHED_PG_LET_GO
     " WHERE " JOBSCHED_PG_HELD_BY},
    // $3 the job, $4 the reason: it fails for good, and whatever claim holds it goes stale.
    {"cancel_job",
     "UPDATE @.job SET failed_at = $1, cancelled_at = $1, last_error = $4, " JOBSCHED_PG_LET_GO
     " WHERE id = $3 AND " JOBSCHED_PG_OPEN " AND " JOBSCHED_PG_UNEXPIRED
     " AND NOT " JOBSCHED_PG_ABANDONED},
    // In the order they failed, then by id (column 15 is the time it failed).
    {"failed_jobs",
     "SELECT " JOBSCHED_PG_JOB_COLUMNS " FROM @.job WHERE failed_at IS NOT NULL OR "
     JOBSCHED_PG_ABANDONED " ORDER BY 15, 1"},
    // Due now (within its creation and expiry), attempts reset, its last error kept.
    {"retry_job",
     "UPDATE @.job SET last_error = CASE WHEN " JOBSCHED_PG_ABANDONED " THEN "
     JOBSCHED_PG_LEASE_RAN_OUT " ELSE last_error END, failed_at = NULL, cancelled_at = NULL,"
     " attempts = 0, starts_at = greatest(created_at, least($1, coalesce(expires_at, $1))), "
     JOBSCHED_PG_LET_GO " WHERE id = $3 AND (failed_at IS NOT NULL OR " JOBSCHED_PG_ABANDONED
     ")"},
    // A queue ($3) stays paused from its first pause.
    {"pause_queue",
     "INSERT INTO @.queue_pause (queue, paused_at) VALUES ($3, $1)"
     " ON CONFLICT (queue) DO NOTHING"},
    {"resume_queue", "DELETE FROM @.queue_pause WHERE queue = $3"},
    {"paused_queues", "SELECT queue FROM @.queue_pause ORDER BY queue COLLATE \"C\""},
};

#undef JOBSCHED_PG_OPEN
#undef JOBSCHED_PG_UNEXPIRED
#undef JOBSCHED_PG_MAX_ATTEMPTS
#undef JOBSCHED_PG_ABANDONED
#undef JOBSCHED_PG_LEASE_RAN_OUT
#undef JOBSCHED_PG_FREE
#undef JOBSCHED_PG_NOT_PAUSED
#undef JOBSCHED_PG_IN_QUEUES
#undef JOBSCHED_PG_CLAIMABLE
#undef JOBSCHED_PG_JOB_COLUMNS
#undef JOBSCHED_PG_LET_GO
#undef JOBSCHED_PG_HELD_BY

// `sql` with every "@" replaced by `quoted_schema` (the schema as an identifier) and every
// "@@" by `schema` (its name, inside a string literal: check_schema_name allows no quote).
inline std::string in_schema(std::string_view sql, const std::string& quoted_schema,
                             std::string_view schema = {}) {
  std::string out;
  out.reserve(sql.size() + 16 * quoted_schema.size());
  for (std::size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] != '@') {
      out += sql[i];
    } else if (i + 1 < sql.size() && sql[i + 1] == '@') {
      out += schema;
      ++i;
    } else {
      out += quoted_schema;
    }
  }
  return out;
}

}  // namespace jobsched::detail::pg_sql
