// SPDX-License-Identifier: MIT
#pragma once

// Every SQL statement the scheduler runs, in one place, so that another SQL dialect can
// follow. A query on a partial index repeats the index's WHERE terms word for word: when
// SQLite must prove them from a term with a bound parameter instead, it prepares the
// statement again at every new binding (some 8 µs a call). `?1` is always "now" and `?20` the default limit on attempts, where a statement
// needs them; a statement's own values come from ?2 on, a batch's (many rows to a
// statement) from ?21 on.

#include <string>

namespace jobsched::detail::sql {

// The parameter every statement that needs it binds to the default limit on attempts.
inline constexpr int default_max_attempts = 20;

// How many jobs of each kind a claim or an add moves between states on its way, for each job
// it claims or adds (see the upkeep statements). Each write makes at most one job of each
// kind lag later (a claim a lease that may run out, an add a job that will come due and may
// expire), so one keeps pace; more would make every write pay for a backlog that the
// schedule's orders walk cheaply anyway (a move costs about what a claim costs).
inline constexpr int moves_per_write = 1;

// How many due schedules next_job and seconds_until_next_job make firings for, at most, in
// one call (each schedule's due firing is a job already; they make the ones after it).
inline constexpr int firings_per_read = 16;

// A job's stored state (column `state`), which decides the indexes it is in:
//   0 scheduled   free, not due when last written
//   1 available   free, due when last written
//   2 leased      claimed, with attempts left after this one
//   3 leased      claimed on its last attempt
//   4 locked      lock_job: a claim whose lease never runs out
//   5 expired     free, moved out of the schedule once its expiry had passed
//   6 completed   7 failed (marked)
// The discrete facts (held, last attempt, settled) are exact. The ones that time changes
// (due, expired, lease ran out) are hints: claims and adds move jobs on, a bounded number at
// a time, and every query still filters rows by their times, so that a job's state stays one
// function of its row and `now`; the stored state only says where to look.
// Open: neither completed nor failed (states 0 to 5). The predicate of the index in
// (queue, state, ...): with a range on state, SQLite would read it by the range rather
// than by the state asked for.
#define JOBSCHED_OPEN "completed_at IS NULL AND failed_at IS NULL"
#define JOBSCHED_UNEXPIRED "(expires_at IS NULL OR expires_at > ?1)"
#define JOBSCHED_PENDING JOBSCHED_OPEN " AND " JOBSCHED_UNEXPIRED
// For a job in state 0, 1, 2 or 5: free (JOBSCHED_FREE) when its lease, if any, ran out.
#define JOBSCHED_LEASE_OVER "(lease_until IS NULL OR lease_until <= ?1)"
// Some statements name their index: SQLite would at times read (state, starts_at) for a
// claim and sort; and where a state is a bound parameter, weighing the partial indexes of one
// state would make it prepare the statement again at every new binding. A read-only
// scheduler on an older file reads views with no indexes, and prepares them without (see
// without_indexed_by).
#define JOBSCHED_BY_QUEUE_ORDER " INDEXED BY ix_job_queue_order"
#define JOBSCHED_BY_START_ORDER " INDEXED BY ix_job_start_order"
#define JOBSCHED_BY_CLAIM_ORDER " INDEXED BY ix_job_claim_order"
#define JOBSCHED_BY_LEASES " INDEXED BY ix_job_leases"
// ?20 is always the scheduler's default limit on attempts (RetryPolicy::max_attempts).
#define JOBSCHED_MAX_ATTEMPTS "coalesce(max_attempts, ?20)"
// Abandoned: a job whose lease ran out on its last attempt, before it expired. It failed at
// that lease end, whether or not its row says so yet (the next write that meets it marks
// it); every statement treats it so, reads through JOBSCHED_JOB_COLUMNS included. Never NULL,
// so that NOT of it keeps every row that is not.
#define JOBSCHED_ABANDONED                                                   \
  "(state = 3 AND lease_until IS NOT NULL AND lease_until <= ?1 AND"         \
  " (expires_at IS NULL OR lease_until < expires_at))"
#define JOBSCHED_LEASE_RAN_OUT "'the lease of attempt ' || attempts || ' ran out'"
// The payload: in job_payload, or in the row itself for rows written by older versions or
// by hand (a claim rewrites its row, so a payload kept there would be copied by every claim).
#define JOBSCHED_PAYLOAD "coalesce(data, (SELECT data FROM job_payload WHERE job_id = job.id))"
// A job's columns, an abandoned job shown as its row will be once marked (see
// fail_abandoned_jobs), so that a job's state is one function of its row and now.
#define JOBSCHED_JOB_COLUMNS_WITH(PAYLOAD)                               \
  "id, " PAYLOAD ", created_at, starts_at, expires_at, completed_at,"   \
  " CASE WHEN " JOBSCHED_ABANDONED                                      \
  " THEN NULL ELSE locked_at END,"                                      \
  " CASE WHEN " JOBSCHED_ABANDONED                                      \
  " THEN NULL ELSE lease_until END,"                                    \
  " attempts, max_attempts, backoff_initial, backoff_max,"              \
  " CASE WHEN " JOBSCHED_ABANDONED " THEN " JOBSCHED_LEASE_RAN_OUT      \
  " ELSE last_error END,"                                               \
  " CASE WHEN " JOBSCHED_ABANDONED " THEN lease_until ELSE failed_at END, priority, queue,"    \
  " schedule, fire_at, result, cancelled_at, unique_key"
#define JOBSCHED_JOB_COLUMNS JOBSCHED_JOB_COLUMNS_WITH(JOBSCHED_PAYLOAD)
// Not held: not locked, not leased on its last attempt, and any lease run out (a lease that
// ran out before the last attempt frees its job; a job moved on keeps its lease's end).
#define JOBSCHED_FREE \
  "(state <> 4 AND state <> 3 AND (lease_until IS NULL OR lease_until <= ?1))"
// The state of a job let go at ?1 that starts at START.
#define JOBSCHED_FREE_STATE(START) \
  "CASE WHEN expires_at <= ?1 THEN 5 WHEN " START " <= ?1 THEN 1 ELSE 0 END"
#define JOBSCHED_LEASED_STATE \
  "CASE WHEN attempts >= " JOBSCHED_MAX_ATTEMPTS " THEN 3 ELSE 2 END"
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
// A job moved out as expired (state 5) goes back to states 0 to 4 (a claim, lock or lease
// change, a clock set back) only while no other open job holds its unique key: ix_job_unique
// would refuse the change, so it does not happen (the claim is stale, the lock not taken).
// Every read that finds a moved-out job unexpired at ?1 (a clock set back) asks it too: a
// job that may not reopen stays expired, in next_job, claims, counts, listings and stats.
#define JOBSCHED_KEY_MAY_REOPEN                                                        \
  "(state < 5 OR unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM job AS holder"        \
  " WHERE holder.unique_key = job.unique_key AND holder.unique_key IS NOT NULL"        \
  " AND holder.state < 5))"

// ---- Adding, reading and settling one job -----------------------------------------------
inline constexpr const char* insert_job =
    "INSERT INTO job (created_at, starts_at, expires_at, priority, queue, max_attempts,"
    " backoff_initial, backoff_max, state) VALUES (?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " CASE WHEN ?5 <= ?1 THEN 5 WHEN ?4 <= ?1 THEN 1 ELSE 0 END)";
// OR REPLACE: a row left by a job deleted by hand (without its payload) under an id used
// again (its sqlite_sequence reset) gives way.
inline constexpr const char* insert_payload =
    "INSERT OR REPLACE INTO job_payload (job_id, data) VALUES (?2, ?3)";

// ---- Adding many jobs: rows_per_insert of them in each statement -------------------------
// Each execution of a statement opens a cursor on the table and on every index it writes
// (a dozen for a job), each its own malloc where SQLite is built without lookaside, as
// Debian's is: most of what one job's insert costs. add_jobs inserts its jobs without a
// unique key this many to a statement: 15 k instructions a job, against 41 k one at a time.
inline constexpr int rows_per_insert = 32;

// insert_job for `rows` jobs: ?1 the time their state is for, then each job's eight values
// in insert_job's order (?3 to ?10 there), the first job's from ?21. AUTOINCREMENT gives
// the rows of one statement consecutive ids, the last sqlite3_last_insert_rowid.
inline std::string insert_jobs(int rows) {
  std::string sql =
      "INSERT INTO job (created_at, starts_at, expires_at, priority, queue, max_attempts,"
      " backoff_initial, backoff_max, state) VALUES ";
  for (int row = 0; row < rows; ++row) {
    const auto at = [&](int value) { return "?" + std::to_string(21 + 8 * row + value); };
    sql += row == 0 ? "(" : ", (";
    for (int value = 0; value < 8; ++value)
      sql += at(value) + ", ";
    sql += "CASE WHEN " + at(2) + " <= ?1 THEN 5 WHEN " + at(1) + " <= ?1 THEN 1 ELSE 0 END)";
  }
  return sql;
}

// insert_payload for `rows` jobs: each job's id and payload, the first job's at ?21, ?22.
inline std::string insert_payloads(int rows) {
  std::string sql = "INSERT OR REPLACE INTO job_payload (job_id, data) VALUES ";
  for (int row = 0; row < rows; ++row) {
    sql += row == 0 ? "(?" : ", (?";
    sql += std::to_string(21 + 2 * row) + ", ?" + std::to_string(22 + 2 * row) + ")";
  }
  return sql;
}
inline constexpr const char* select_job = "SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE id = ?2";
// Completing ends any lock or claim, and a failure: the job is completed, whatever it was.
// A job completed again keeps its first completion time.
inline constexpr const char* complete_job =
    "UPDATE job SET completed_at = coalesce(completed_at, ?3), failed_at = NULL, state = 6, "
    JOBSCHED_LET_GO " WHERE id = ?2";
inline constexpr const char* delete_job = "DELETE FROM job WHERE id = ?2";
inline constexpr const char* delete_payload = "DELETE FROM job_payload WHERE job_id = ?2";

// ---- Deleting many: the jobs' ids from an index, the payloads, then the rows -------------
#define JOBSCHED_EXPIRED_IDS                                                        \
  "SELECT id FROM job INDEXED BY ix_job_expired WHERE state = 5 AND expires_at <= ?1"                         \
  " UNION ALL SELECT id FROM job WHERE state < 5 AND expires_at IS NOT NULL"        \
  " AND expires_at <= ?1 AND NOT " JOBSCHED_ABANDONED
// (SQLite would rather scan the table than read a partial index it does not cover.)
inline constexpr const char* delete_completed_payloads =
    "DELETE FROM job_payload WHERE job_id IN"
    " (SELECT id FROM job INDEXED BY ix_job_completed WHERE state = 6)";
inline constexpr const char* delete_completed_jobs =
    "DELETE FROM job INDEXED BY ix_job_completed WHERE state = 6";
inline constexpr const char* delete_expired_payloads =
    "DELETE FROM job_payload WHERE job_id IN (" JOBSCHED_EXPIRED_IDS ")";
inline constexpr const char* delete_expired_jobs =
    "DELETE FROM job WHERE id IN (" JOBSCHED_EXPIRED_IDS ")";
inline constexpr const char* delete_failed_payloads =
    "DELETE FROM job_payload WHERE job_id IN (SELECT id FROM job WHERE failed_at IS NOT NULL)";
inline constexpr const char* delete_failed_jobs = "DELETE FROM job WHERE failed_at IS NOT NULL";
#undef JOBSCHED_EXPIRED_IDS

// How many jobs are pending: the open ones (a walk of a partial index, with no comparison per
// entry), less those moved out as expired (a range only as long as the expired jobs kept),
// less the expired and the abandoned ones among the rest (ranges only as long as the jobs
// that changed state since the writes last moved them on), plus the ones moved out that are
// not expired at ?1 (a clock set back).
inline constexpr const char* count_pending_jobs =
    "SELECT (SELECT count(*) FROM job" JOBSCHED_BY_QUEUE_ORDER " WHERE " JOBSCHED_OPEN ")"
    " - (SELECT count(*) FROM job" JOBSCHED_BY_START_ORDER " WHERE state = 5)"
    " - (SELECT count(*) FROM job WHERE state < 5 AND expires_at IS NOT NULL"
    "    AND expires_at <= ?1)"
    " - (SELECT count(*) FROM job WHERE " JOBSCHED_ABANDONED
    "    AND (expires_at IS NULL OR expires_at > ?1))"
    " + (SELECT count(*) FROM job INDEXED BY ix_job_expired WHERE state = 5 AND expires_at > ?1"
    "    AND " JOBSCHED_KEY_MAY_REOPEN ")";

// The successor's locks: a lock is a claim whose lease never runs out.
inline constexpr const char* lock_job =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL, state = 4"
    " WHERE id = ?2 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE " AND " JOBSCHED_KEY_MAY_REOPEN;
// As the successor: true (a row changed) for any job that exists, held or not. An abandoned
// job stays failed.
inline constexpr const char* unlock_job =
    "UPDATE job SET " JOBSCHED_MARK_IF_ABANDONED ", state = CASE WHEN " JOBSCHED_ABANDONED
    " THEN 7 WHEN state >= 6 OR (state = 5 AND unique_key IS NOT NULL) THEN state ELSE " JOBSCHED_FREE_STATE("starts_at") " END, "
    JOBSCHED_LET_GO " WHERE id = ?2";

// ---- The schedule's orders (detail/job_order.hpp walks them) ----------------------------
// Where the stored states lag behind ?1, one probe of an index each. For writes, which move
// jobs on: the earliest scheduled start, lease ends (with and without attempts left), the
// earliest expiry of a job in states 0 to 4, the latest expiry moved out (later than ?1 when
// the clock was set back). For reads: lease ends with attempts left, the latest expiry moved
// out, and the latest end of a lease whose job was moved on (in states 0, 1 and 5). Both:
// the earliest schedule due (its firing made ahead is due: the next one is to be made), and
// whether any queue is paused.
inline constexpr const char* lagging_for_writes =
    "SELECT (SELECT min(starts_at) FROM job WHERE state = 0),"
    " (SELECT min(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 2),"
    " (SELECT min(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 3),"
    " (SELECT min(expires_at) FROM job WHERE state < 5 AND expires_at IS NOT NULL),"
    " (SELECT max(expires_at) FROM job INDEXED BY ix_job_expired WHERE state = 5),"
    " (SELECT min(ahead_at) FROM schedule WHERE paused = 0 AND ahead_at IS NOT NULL),"
    " (SELECT 1 FROM queue_pause LIMIT 1)";
inline constexpr const char* lagging_for_reads =
    "SELECT (SELECT min(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 2),"
    " (SELECT max(expires_at) FROM job INDEXED BY ix_job_expired WHERE state = 5),"
    " (SELECT max(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 0),"
    " (SELECT max(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 1),"
    " (SELECT max(lease_until) FROM job WHERE lease_until IS NOT NULL AND state = 5),"
    " (SELECT min(ahead_at) FROM schedule WHERE paused = 0 AND ahead_at IS NOT NULL),"
    " (SELECT 1 FROM queue_pause LIMIT 1)";
// In next_job's order (start, then id): the first pending free job in state ?2 (0, 1 or 2).
inline constexpr const char* first_in_start_order =
    "SELECT id, starts_at FROM job" JOBSCHED_BY_START_ORDER " WHERE state = ?2 AND "
    JOBSCHED_UNEXPIRED " AND " JOBSCHED_LEASE_OVER " ORDER BY starts_at, id LIMIT 1";
// In claim order (priority, higher first, then start, then id): the first due free job of
// every queue, and of queue ?2.
inline constexpr const char* first_available =
    "SELECT id, priority, starts_at FROM job" JOBSCHED_BY_CLAIM_ORDER " WHERE state = 1 AND "
    JOBSCHED_UNEXPIRED " AND " JOBSCHED_LEASE_OVER
    " AND starts_at <= ?1 ORDER BY priority DESC, starts_at, id LIMIT 1";
inline constexpr const char* first_available_in_queue =
    "SELECT id, priority, starts_at FROM job" JOBSCHED_BY_QUEUE_ORDER
    " WHERE queue = ?2 AND state = 1 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE " AND starts_at <= ?1"
    " ORDER BY priority DESC, starts_at, id LIMIT 1";
// The same, the first ?2 of them (?3 the queue), for a batch claimed while no state lags.
inline constexpr const char* available_in_claim_order =
    "SELECT id, priority, starts_at FROM job" JOBSCHED_BY_CLAIM_ORDER " WHERE state = 1 AND "
    JOBSCHED_UNEXPIRED " AND " JOBSCHED_LEASE_OVER
    " AND starts_at <= ?1 ORDER BY priority DESC, starts_at, id LIMIT ?2";
inline constexpr const char* available_in_queue_in_claim_order =
    "SELECT id, priority, starts_at FROM job" JOBSCHED_BY_QUEUE_ORDER
    " WHERE queue = ?3 AND state = 1 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE
    " AND starts_at <= ?1 ORDER BY priority DESC, starts_at, id LIMIT ?2";
// The same in every queue with each job's queue, for a claim that passes over paused ones.
inline constexpr const char* available_with_queue_in_claim_order =
    "SELECT id, priority, starts_at, queue FROM job" JOBSCHED_BY_CLAIM_ORDER " WHERE state = 1 AND "
    JOBSCHED_UNEXPIRED " AND " JOBSCHED_LEASE_OVER
    " AND starts_at <= ?1 ORDER BY priority DESC, starts_at, id LIMIT ?2";
// The skip-scan of (queue, state, priority DESC, starts_at), for the states that lag: each
// queue, each priority level of a state from the highest, the first job of the level.
inline constexpr const char* next_queue = "SELECT queue FROM job" JOBSCHED_BY_QUEUE_ORDER
                                          " WHERE " JOBSCHED_OPEN
                                          " AND queue >= ?2 ORDER BY queue LIMIT 1";
inline constexpr const char* next_priority = "SELECT priority FROM job" JOBSCHED_BY_QUEUE_ORDER
                                             " WHERE " JOBSCHED_OPEN
                                             " AND queue = ?2 AND state = ?4 AND priority <= ?3"
                                             " ORDER BY priority DESC LIMIT 1";
inline constexpr const char* first_due_in_level =
    "SELECT id, starts_at FROM job" JOBSCHED_BY_QUEUE_ORDER " WHERE queue = ?2 AND state = ?4"
    " AND priority = ?3 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE " AND starts_at <= ?1"
    " ORDER BY starts_at, id LIMIT 1";
inline constexpr const char* first_free_in_level =
    "SELECT id, starts_at FROM job" JOBSCHED_BY_QUEUE_ORDER " WHERE queue = ?2 AND state = ?4"
    " AND priority = ?3 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE
    " ORDER BY starts_at, id LIMIT 1";
// Jobs moved out as expired that are not expired at ?1 (a clock set back), in queue ?2 or
// in any queue when ?2 is NULL.
inline constexpr const char* unexpired_moved_out =
    "SELECT id, priority, starts_at FROM job INDEXED BY ix_job_expired WHERE state = 5 AND expires_at > ?1"
    " AND " JOBSCHED_FREE " AND (?2 IS NULL OR queue = ?2) AND " JOBSCHED_KEY_MAY_REOPEN;
// Live leases of jobs in state ?3 that will free their job when they end (not on its last
// attempt), in order of their end, in queue ?2 or in any queue when ?2 is NULL: those of
// state 2, and (when the clock was set back) of jobs moved on since. A job is free again at
// the later of its lease end and its start: a lease may end before the start when it was
// moved back.
inline constexpr const char* live_leases =
    "SELECT id, starts_at, lease_until FROM job" JOBSCHED_BY_LEASES
    " WHERE lease_until IS NOT NULL AND state = ?3 AND lease_until > ?1"
    " AND (expires_at IS NULL OR expires_at > ?1)"
    " AND (?2 IS NULL OR queue = ?2) AND (state = 2 OR attempts < " JOBSCHED_MAX_ATTEMPTS ")"
    " ORDER BY lease_until, id";

// ---- Moving jobs on: a claim's bounded upkeep (at most moves_per_write of each) -----------
// Each picks the first jobs whose state lags from an index; each move is one row by id (an
// UPDATE that may change many rows opens a statement journal inside a transaction).
inline constexpr const char* due_scheduled =
    "SELECT id FROM job WHERE state = 0 AND starts_at <= ?1"
    " ORDER BY starts_at LIMIT ?2";
inline constexpr const char* expired_free =
    "SELECT id FROM job WHERE state < 5 AND expires_at IS NOT NULL AND expires_at <= ?1"
    " AND state <= 1 ORDER BY expires_at LIMIT ?2";
inline constexpr const char* ran_out_leases =
    "SELECT id FROM job WHERE lease_until IS NOT NULL AND state = 2 AND lease_until <= ?1"
    " ORDER BY lease_until LIMIT ?2";
// A free job (scheduled, available, or its lease run out) to the state it is in at ?1.
inline constexpr const char* move_free_job =
    "UPDATE job SET state = " JOBSCHED_FREE_STATE("starts_at") " WHERE id = ?2";

// ---- Claims ----------------------------------------------------------------------------
// No RETURNING: inside a transaction, an UPDATE ... RETURNING opens a statement journal
// (a savepoint and an allocation of some 160 KiB, given back to the system after each
// claim); the row is read back by id instead.
#define JOBSCHED_CLAIM                                                       \
  "UPDATE job SET locked_at = ?1, lease_until = ?3, lease_seconds = ?3 - ?1,"  \
  " claim_token = random(),"                                                 \
  " attempts = attempts + 1,"                                                \
  " last_error = CASE WHEN lease_until IS NULL THEN last_error"              \
  "   ELSE 'the lease of attempt ' || attempts || ' ran out' END,"           \
  " state = CASE WHEN attempts + 1 >= " JOBSCHED_MAX_ATTEMPTS " THEN 3 ELSE 2 END"
inline constexpr const char* claim_job =
    JOBSCHED_CLAIM " WHERE id = ?2 AND " JOBSCHED_KEY_MAY_REOPEN;
inline constexpr const char* lock_job_by_id =
    "UPDATE job SET locked_at = ?1, lease_until = NULL, claim_token = NULL, state = 4"
    " WHERE id = ?2 AND " JOBSCHED_KEY_MAY_REOPEN;
inline constexpr const char* select_claimed_job =
    "SELECT " JOBSCHED_JOB_COLUMNS_WITH("NULL") ", claim_token FROM job WHERE id = ?2";
// A claimed job's payload, read once the claim committed: a big one is read without
// holding the write lock, so that it neither delays other writers nor eats the lease.
inline constexpr const char* select_payload = "SELECT " JOBSCHED_PAYLOAD " FROM job WHERE id = ?2";

// Whether any job is abandoned, asked before marking them: an UPDATE that may change many
// rows inside a transaction opens a statement journal (an allocation of some 160 KiB here,
// and a savepoint) even when no row matches; a SELECT does not.
inline constexpr const char* any_abandoned_job =
    "SELECT 1 FROM job WHERE " JOBSCHED_ABANDONED " LIMIT 1";
// Marks the abandoned jobs failed, at their lease end: the time they failed.
inline constexpr const char* fail_abandoned_jobs =
    "UPDATE job SET failed_at = lease_until, state = 7, " JOBSCHED_LET_GO
    ", last_error = " JOBSCHED_LEASE_RAN_OUT " WHERE " JOBSCHED_ABANDONED;
#define JOBSCHED_COMPLETE "UPDATE job SET completed_at = ?1, state = 6, " JOBSCHED_LET_GO
inline constexpr const char* complete_claim = JOBSCHED_COMPLETE " WHERE " JOBSCHED_HELD_BY;

// ---- Claiming and completing many: up to rows_per_settle jobs to a statement -------------
// As for rows_per_insert: claim_jobs and the Worker's commits claim and complete their jobs
// this many to a statement, the slots a batch leaves over bound to NULL (which matches no
// job). Each statement finds its jobs by rowid, one probe per job.
inline constexpr int rows_per_settle = 32;

// "?first, ?first+step, ...": `rows` parameters.
inline std::string parameter_list(int rows, int first, int step) {
  std::string list;
  for (int row = 0; row < rows; ++row)
    list += (row == 0 ? "?" : ", ?") + std::to_string(first + step * row);
  return list;
}

// claim_job for the jobs ?21, ?22, ... (`rows` of them); ?1 now and ?3 the lease's end.
inline std::string claim_jobs(int rows) {
  return JOBSCHED_CLAIM " WHERE id IN (" + parameter_list(rows, 21, 1) +
         ") AND " JOBSCHED_KEY_MAY_REOPEN;
}

// select_claimed_job for the jobs ?21, ?22, ..., with each one's lease end last: the jobs a
// claim_jobs leased have the lease end it set.
inline std::string select_claimed_jobs(int rows) {
  return "SELECT " JOBSCHED_JOB_COLUMNS_WITH("NULL") ", claim_token, lease_until FROM job"
         " WHERE id IN (" + parameter_list(rows, 21, 1) + ")";
}

// JOBSCHED_HELD_BY for the claims ?21/?22, ?23/?24, ... (a job and its claim's token each).
inline std::string held_by_any(int rows) {
  std::string tokens = "CASE id";
  for (int row = 0; row < rows; ++row) {
    tokens += " WHEN ?" + std::to_string(21 + 2 * row) + " THEN ?" + std::to_string(22 + 2 * row);
  }
  return "id IN (" + parameter_list(rows, 21, 2) + ") AND claim_token = " + tokens +
         " END AND " JOBSCHED_OPEN " AND NOT " JOBSCHED_ABANDONED;
}

// Which of the claims (as in held_by_any) are held at ?1; then complete_claim for them.
inline std::string select_held(int rows) { return "SELECT id FROM job WHERE " + held_by_any(rows); }
inline std::string complete_claims(int rows) {
  return JOBSCHED_COMPLETE " WHERE " + held_by_any(rows);
}

// A lease never moves earlier than it is (a holder whose clock stepped back would hand its
// job to another worker while it still runs); ?4 is the lease end asked for.
inline constexpr const char* extend_claim =
    "UPDATE job SET lease_until = max(coalesce(lease_until, ?4), ?4), lease_seconds = ?4 - ?1,"
    " state = "
    JOBSCHED_LEASED_STATE " WHERE " JOBSCHED_HELD_BY " AND " JOBSCHED_KEY_MAY_REOPEN
    " RETURNING lease_until";
// ---- Job control -------------------------------------------------------------------------
// Completes with a result (?4).
inline constexpr const char* complete_claim_with_result =
    "UPDATE job SET completed_at = ?1, result = ?4, state = 6, " JOBSCHED_LET_GO
    " WHERE " JOBSCHED_HELD_BY;
// Gives the job back to start again at ?4 (no earlier than its creation, no later than its
// expiry), the attempt not counted.
#define JOBSCHED_SNOOZED_START "max(created_at, min(?4, coalesce(expires_at, ?4)))"
inline constexpr const char* snooze_claim =
    "UPDATE job SET " JOBSCHED_LET_GO ", attempts = max(attempts - 1, 0), starts_at = "
    JOBSCHED_SNOOZED_START ", state = " JOBSCHED_FREE_STATE(JOBSCHED_SNOOZED_START)
    " WHERE " JOBSCHED_HELD_BY " AND " JOBSCHED_KEY_MAY_REOPEN;
#undef JOBSCHED_SNOOZED_START
// Cancels a job (?2) that is neither settled, abandoned nor expired, with the reason ?3: it
// fails for good, and whatever claim holds it goes stale.
inline constexpr const char* cancel_job =
    "UPDATE job SET failed_at = ?1, cancelled_at = ?1, last_error = ?3, state = 7, "
    JOBSCHED_LET_GO " WHERE id = ?2 AND " JOBSCHED_PENDING " AND NOT " JOBSCHED_ABANDONED;

inline constexpr const char* release_claim =
    "UPDATE job SET " JOBSCHED_LET_GO ", attempts = max(attempts - 1, 0), state = "
    JOBSCHED_FREE_STATE("starts_at") " WHERE " JOBSCHED_HELD_BY " AND " JOBSCHED_KEY_MAY_REOPEN;
inline constexpr const char* select_claimed =
    "SELECT attempts, max_attempts, backoff_initial, backoff_max, created_at, expires_at"
    " FROM job WHERE " JOBSCHED_HELD_BY;
// ?4 the retry time, ?5 the error.
inline constexpr const char* retry_later =
    "UPDATE job SET starts_at = ?4, last_error = ?5, " JOBSCHED_LET_GO ", state = "
    JOBSCHED_FREE_STATE("?4") " WHERE " JOBSCHED_HELD_BY " AND " JOBSCHED_KEY_MAY_REOPEN;
inline constexpr const char* fail_for_good =
    "UPDATE job SET failed_at = ?1, last_error = ?5, state = 7, " JOBSCHED_LET_GO
    " WHERE " JOBSCHED_HELD_BY;

// Failed jobs: those marked, and the abandoned ones not marked yet, in the order they failed.
inline constexpr const char* select_failed_jobs =
    "SELECT " JOBSCHED_JOB_COLUMNS
    " FROM job WHERE failed_at IS NOT NULL"
    " UNION ALL SELECT " JOBSCHED_JOB_COLUMNS " FROM job WHERE " JOBSCHED_ABANDONED
    " ORDER BY 14, 1";
#define JOBSCHED_RETRY_START "max(created_at, min(?1, coalesce(expires_at, ?1)))"
inline constexpr const char* retry_job =
    "UPDATE job SET failed_at = NULL, cancelled_at = NULL, attempts = 0, starts_at = " JOBSCHED_RETRY_START
    ", state = " JOBSCHED_FREE_STATE(JOBSCHED_RETRY_START)
    " WHERE id = ?2 AND failed_at IS NOT NULL";
#undef JOBSCHED_RETRY_START

// ---- Leases after the clock was set back -------------------------------------------------
// Live leases (of jobs in state ?2) granted after ?1, which therefore look longer than asked
// for; then one of them (?2) cut to its length from ?1.
inline constexpr const char* overlong_leases =
    "SELECT id, claim_token FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    " AND state = ?2 AND lease_until > ?1 AND lease_until - lease_seconds > ?1";
inline constexpr const char* cut_lease =
    "UPDATE job SET lease_until = ?1 + lease_seconds WHERE id = ?2 AND lease_until IS NOT NULL"
    " AND lease_until - lease_seconds > ?1";

// ---- Paused queues ------------------------------------------------------------------------
// A queue paused (?2) at ?1 stays paused from its first pause; resuming deletes its row.
inline constexpr const char* pause_queue =
    "INSERT OR IGNORE INTO queue_pause (queue, paused_at) VALUES (?2, ?1)";
inline constexpr const char* resume_queue = "DELETE FROM queue_pause WHERE queue = ?2";
inline constexpr const char* paused_queues = "SELECT queue FROM queue_pause ORDER BY queue";

// ---- Unique jobs (detail/unique.hpp) ---------------------------------------------------
// A job with a unique key (?11), otherwise as insert_job: ix_job_unique refuses a second
// open job with the key, so the insert itself is the check.
inline constexpr const char* insert_keyed_job =
    "INSERT INTO job (created_at, starts_at, expires_at, priority, queue, max_attempts,"
    " backoff_initial, backoff_max, state, unique_key) VALUES (?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
    " CASE WHEN ?5 <= ?1 THEN 5 WHEN ?4 <= ?1 THEN 1 ELSE 0 END, ?11)";
// The job in ix_job_unique for key ?2, then whether at ?1 it is abandoned, expired and not
// held (no lock, no live lease), and free.
inline constexpr const char* select_key_holder =
    "SELECT " JOBSCHED_JOB_COLUMNS ", " JOBSCHED_ABANDONED ","
    " (expires_at IS NOT NULL AND expires_at <= ?1 AND state <> 4 AND " JOBSCHED_LEASE_OVER "),"
    " " JOBSCHED_FREE " FROM job WHERE unique_key = ?2 AND unique_key IS NOT NULL AND state < 5";
// The key of job ?2.
inline constexpr const char* select_unique_key = "SELECT unique_key FROM job WHERE id = ?2";
// An expired job (?2) moved out, so that it lets go of its key.
inline constexpr const char* move_out_expired = "UPDATE job SET state = 5 WHERE id = ?2";
// One abandoned job (?2) marked failed, as fail_abandoned_jobs marks them all.
inline constexpr const char* fail_abandoned_job =
    "UPDATE job SET failed_at = lease_until, state = 7, " JOBSCHED_LET_GO
    ", last_error = " JOBSCHED_LEASE_RAN_OUT " WHERE id = ?2 AND " JOBSCHED_ABANDONED;
// The job with key ?2 completed last, if after ?3 (ix_job_key_completed).
inline constexpr const char* key_completed_after =
    "SELECT id FROM job WHERE unique_key = ?2 AND unique_key IS NOT NULL AND state = 6"
    " AND completed_at > ?3 ORDER BY completed_at DESC LIMIT 1";
// OnConflict::replace: a pending free job (?2) takes a new start ?3, expiry ?4, priority ?5,
// queue ?6, limit on attempts ?7 and backoffs ?8, ?9; its payload goes to job_payload.
inline constexpr const char* replace_keyed_job =
    "UPDATE job SET data = NULL, starts_at = ?3, expires_at = ?4, priority = ?5, queue = ?6,"
    " max_attempts = ?7, backoff_initial = ?8, backoff_max = ?9,"
    " state = CASE WHEN ?4 <= ?1 THEN 5 WHEN ?3 <= ?1 THEN 1 ELSE 0 END"
    " WHERE id = ?2 AND " JOBSCHED_PENDING " AND " JOBSCHED_FREE;

// ---- Retention (detail/retention.hpp): old settled jobs, a batch at a time ---------------
// The first ?3 jobs completed before ?2, the oldest first.
inline constexpr const char* old_completed_jobs =
    "SELECT id FROM job INDEXED BY ix_job_completed WHERE state = 6 AND completed_at < ?2"
    " ORDER BY completed_at LIMIT ?3";
// The first ?7 failed jobs (cancelled ones among them: a cancel fails its job) in the order
// they failed, after failure time ?2 and id ?3, failed before ?4; with whether each is
// cancelled, and whether it goes: cancelled before ?6, or else failed before ?5 (a NULL
// keeps that kind).
inline constexpr const char* old_failed_jobs =
    "SELECT id, failed_at, cancelled_at IS NOT NULL,"
    " CASE WHEN cancelled_at IS NULL THEN failed_at < ?5 ELSE cancelled_at < ?6 END"
    " FROM job INDEXED BY ix_job_failed WHERE failed_at IS NOT NULL AND failed_at >= ?2"
    " AND (failed_at > ?2 OR id > ?3) AND failed_at < ?4 ORDER BY failed_at, id LIMIT ?7";
// The first ?3 abandoned jobs whose lease ended before ?2 (not marked failed yet).
inline constexpr const char* old_abandoned_jobs =
    "SELECT id FROM job WHERE " JOBSCHED_ABANDONED " AND lease_until < ?2"
    " ORDER BY lease_until LIMIT ?3";

// ---- Listing and stats (detail/listing.hpp, detail/stats.hpp) --------------------------
// A listing reads each state's jobs from the stored states that may hold them, each in an
// index's order of one time, then id. Keyset pagination past the job (?3 its time, ?4 its
// id): the jobs of that time after it (one seek on (time, rowid)), then the later times;
// ?2 the queue or NULL for every queue, ?5 the limit. The RANGE bounds the time; the ties
// say it of ?3 instead (SQLite would read a range on the time rather than the seek), and
// where it bounds the same side as the cursor it is a filter (+time), so that the index is
// read from the cursor (SQLite uses one bound a side).
struct Keyset {
  const char* ties_ascending;
  const char* after_ascending;
  const char* ties_descending;
  const char* after_descending;
};
#define JOBSCHED_LISTED(FROM, WHERE, KEY, RANGE, AFTER, ORDER)                              \
  "SELECT id, " KEY " FROM job" FROM " WHERE " WHERE " AND " RANGE                          \
  " AND (?2 IS NULL OR queue = ?2) AND " AFTER " ORDER BY " KEY ORDER ", id" ORDER " LIMIT ?5"
#define JOBSCHED_KEYSET(FROM, WHERE, KEY, ASCENDING_RANGE, TIE_RANGE, DESCENDING_RANGE)     \
  Keyset{JOBSCHED_LISTED(FROM, WHERE, KEY, TIE_RANGE, KEY " = ?3 AND id > ?4", ""),         \
         JOBSCHED_LISTED(FROM, WHERE, KEY, ASCENDING_RANGE, KEY " > ?3", ""),               \
         JOBSCHED_LISTED(FROM, WHERE, KEY, TIE_RANGE, KEY " = ?3 AND id < ?4", " DESC"),    \
         JOBSCHED_LISTED(FROM, WHERE, KEY, DESCENDING_RANGE, KEY " < ?3", " DESC")}
// Free and unexpired: available when due, scheduled when not. Stored as such (1 due, 0 not),
// and where states lag: came due (0), a lease with attempts left ran out (2; sorted, a
// range as long as the lag), moved out and not expired at ?1 (5, a clock set back; sorted);
// set back before a start (1), a lease ran out before a start (2) or moved out (5).
#define JOBSCHED_LISTED_FREE " AND " JOBSCHED_UNEXPIRED " AND " JOBSCHED_LEASE_OVER
inline constexpr Keyset list_available = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 1" JOBSCHED_LISTED_FREE, "starts_at", "starts_at <= ?1", "?3 <= ?1", "+starts_at <= ?1");
inline constexpr Keyset list_came_due = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 0" JOBSCHED_LISTED_FREE, "starts_at", "starts_at <= ?1", "?3 <= ?1", "+starts_at <= ?1");
inline constexpr Keyset list_due_lease_ran_out = JOBSCHED_KEYSET(
    JOBSCHED_BY_LEASES,
    "lease_until IS NOT NULL AND state = 2 AND lease_until <= ?1 AND " JOBSCHED_UNEXPIRED,
    "starts_at", "starts_at <= ?1", "?3 <= ?1", "+starts_at <= ?1");
inline constexpr Keyset list_due_moved_out = JOBSCHED_KEYSET(
    " INDEXED BY ix_job_expired",
    "state = 5 AND expires_at > ?1 AND " JOBSCHED_LEASE_OVER " AND " JOBSCHED_KEY_MAY_REOPEN,
    "starts_at", "starts_at <= ?1", "?3 <= ?1", "+starts_at <= ?1");
inline constexpr Keyset list_scheduled = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 0" JOBSCHED_LISTED_FREE, "starts_at", "+starts_at > ?1", "?3 > ?1", "starts_at > ?1");
inline constexpr Keyset list_set_back = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 1" JOBSCHED_LISTED_FREE, "starts_at", "+starts_at > ?1", "?3 > ?1", "starts_at > ?1");
inline constexpr Keyset list_scheduled_lease_ran_out = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 2" JOBSCHED_LISTED_FREE, "starts_at", "+starts_at > ?1", "?3 > ?1", "starts_at > ?1");
inline constexpr Keyset list_scheduled_moved_out = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 5 AND " JOBSCHED_KEY_MAY_REOPEN JOBSCHED_LISTED_FREE, "starts_at", "+starts_at > ?1", "?3 > ?1", "starts_at > ?1");
#undef JOBSCHED_LISTED_FREE
// Running: live leases by their end (2 and 3; 0, 1 and 5 when the clock was set back below
// the end of a lease whose job was moved on), then locks, which never end, by start.
#define JOBSCHED_LISTED_LEASES(STATE)                                                     \
  JOBSCHED_KEYSET(JOBSCHED_BY_LEASES,                                                     \
                  "lease_until IS NOT NULL AND state = " STATE " AND " JOBSCHED_UNEXPIRED, \
                  "lease_until", "+lease_until > ?1", "?3 > ?1", "lease_until > ?1")
inline constexpr Keyset list_leased = JOBSCHED_LISTED_LEASES("2");
inline constexpr Keyset list_leased_last = JOBSCHED_LISTED_LEASES("3");
inline constexpr Keyset list_leased_scheduled = JOBSCHED_LISTED_LEASES("0");
inline constexpr Keyset list_leased_available = JOBSCHED_LISTED_LEASES("1");
inline constexpr Keyset list_leased_moved_out = JOBSCHED_LISTED_LEASES("5 AND " JOBSCHED_KEY_MAY_REOPEN);
#undef JOBSCHED_LISTED_LEASES
inline constexpr Keyset list_locked = JOBSCHED_KEYSET(
    JOBSCHED_BY_START_ORDER, "state = 4 AND " JOBSCHED_UNEXPIRED, "starts_at", "1", "1", "1");
inline constexpr Keyset list_completed =
    JOBSCHED_KEYSET(" INDEXED BY ix_job_completed", "state = 6", "completed_at", "1", "1", "1");
// Failed by failure time: those marked (passing the cancelled ones), and the abandoned ones
// not marked yet (JOBSCHED_ABANDONED, its lease end the time). Cancelled: from their own
// index (a cancel's time is its failed_at).
inline constexpr Keyset list_failed =
    JOBSCHED_KEYSET(" INDEXED BY ix_job_failed", "failed_at IS NOT NULL AND cancelled_at IS NULL",
                    "failed_at", "1", "1", "1");
inline constexpr Keyset list_abandoned = JOBSCHED_KEYSET(
    JOBSCHED_BY_LEASES,
    "lease_until IS NOT NULL AND state = 3 AND (expires_at IS NULL OR lease_until < expires_at)",
    "lease_until", "lease_until <= ?1", "?3 <= ?1", "+lease_until <= ?1");
inline constexpr Keyset list_cancelled = JOBSCHED_KEYSET(
    " INDEXED BY ix_job_cancelled", "cancelled_at IS NOT NULL AND failed_at IS NOT NULL",
    "failed_at", "1", "1", "1");
// Expired by expiry: moved out (those unexpired at ?1 too when they may not reopen), and
// those still in states 0 to 4 (a range as long as the lag), but the abandoned ones.
inline constexpr Keyset list_expired = JOBSCHED_KEYSET(
    " INDEXED BY ix_job_expired", "state = 5", "expires_at",
    "(expires_at <= ?1 OR NOT " JOBSCHED_KEY_MAY_REOPEN ")",
    "(?3 <= ?1 OR NOT " JOBSCHED_KEY_MAY_REOPEN ")",
    "(+expires_at <= ?1 OR NOT " JOBSCHED_KEY_MAY_REOPEN ")");
inline constexpr Keyset list_expired_in_place = JOBSCHED_KEYSET(
    " INDEXED BY ix_job_expiry",
    "state < 5 AND expires_at IS NOT NULL AND NOT " JOBSCHED_ABANDONED, "expires_at",
    "expires_at <= ?1", "?3 <= ?1", "+expires_at <= ?1");
// Every job, by id (?3 is the id too).
inline constexpr Keyset list_all = JOBSCHED_KEYSET("", "1", "id", "1", "1", "1");
#undef JOBSCHED_KEYSET
#undef JOBSCHED_LISTED
// The cursor job's times, as stored.
inline constexpr const char* select_list_cursor =
    "SELECT state, starts_at, completed_at, failed_at, lease_until, locked_at, expires_at"
    " FROM job WHERE id = ?2";

// Stats: the open jobs by queue and stored state (a walk of the covering index, O(open
// jobs)); the jobs whose stored state lags (ranges as long as the lag, as count_pending_jobs
// reads) with the state they are in at ?1, numbered as JobState (0 scheduled, 1 available,
// 2 running, 4 failed, 6 expired); the completed, failed and cancelled jobs by queue (a
// walk of their index, reading each row's queue).
inline constexpr const char* count_open_jobs =
    "SELECT queue, state, count(*) FROM job" JOBSCHED_BY_QUEUE_ORDER " WHERE " JOBSCHED_OPEN
    " GROUP BY queue, state";
inline constexpr const char* count_lagging_jobs =
    "SELECT queue, state, CASE WHEN " JOBSCHED_ABANDONED " THEN 4 WHEN expires_at <= ?1 THEN 6"
    " WHEN NOT " JOBSCHED_FREE " THEN 2 WHEN starts_at <= ?1 THEN 1 ELSE 0 END, count(*)"
    " FROM job WHERE id IN ("
    "SELECT id FROM job" JOBSCHED_BY_START_ORDER " WHERE state = 0 AND starts_at <= ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_START_ORDER " WHERE state = 1 AND starts_at > ?1"
    " UNION ALL SELECT id FROM job INDEXED BY ix_job_expiry WHERE state < 5"
    "  AND expires_at IS NOT NULL AND expires_at <= ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    "  AND state = 2 AND lease_until <= ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    "  AND state = 3 AND lease_until <= ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    "  AND state = 0 AND lease_until > ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    "  AND state = 1 AND lease_until > ?1"
    " UNION ALL SELECT id FROM job" JOBSCHED_BY_LEASES " WHERE lease_until IS NOT NULL"
    "  AND state = 5 AND lease_until > ?1 AND " JOBSCHED_KEY_MAY_REOPEN
    " UNION ALL SELECT id FROM job INDEXED BY ix_job_expired WHERE state = 5 AND expires_at > ?1"
    "  AND " JOBSCHED_KEY_MAY_REOPEN
    ") GROUP BY 1, 2, 3";
inline constexpr const char* count_completed_jobs =
    "SELECT queue, count(*) FROM job INDEXED BY ix_job_completed WHERE state = 6 GROUP BY queue";
inline constexpr const char* count_failed_jobs =
    "SELECT queue, cancelled_at IS NOT NULL, count(*) FROM job INDEXED BY ix_job_failed"
    " WHERE failed_at IS NOT NULL GROUP BY 1, 2";
inline constexpr const char* count_schedules = "SELECT count(*) FROM schedule";

// ---- Kept counts (detail/counts.hpp): the jobs by queue and kind, kept by triggers ---------
// A kind is the stored state (0 to 7), and 8 for a cancelled job (failed, state 7). Each
// write transaction that changes a count writes one more page (a WAL frame), so they are
// kept only once asked for (Scheduler::keep_counts).
#define JOBSCHED_KIND(ROW) \
  "CASE WHEN " ROW ".state = 7 AND " ROW ".cancelled_at IS NOT NULL THEN 8 ELSE " ROW ".state END"
#define JOBSCHED_COUNT_IN(ROW)                                                           \
  "INSERT INTO job_count (queue, kind, jobs) VALUES (" ROW ".queue, " JOBSCHED_KIND(ROW) \
  ", 1) ON CONFLICT (queue, kind) DO UPDATE SET jobs = jobs + 1;"
#define JOBSCHED_COUNT_OUT(ROW)                                                   \
  "UPDATE job_count SET jobs = jobs - 1 WHERE queue = " ROW ".queue AND kind = " \
  JOBSCHED_KIND(ROW) ";"
inline constexpr const char* keep_counts =
    "CREATE TABLE job_count (queue TEXT NOT NULL, kind INTEGER NOT NULL,"
    " jobs INTEGER NOT NULL, PRIMARY KEY (queue, kind)) WITHOUT ROWID;"
    "INSERT INTO job_count (queue, kind, jobs)"
    " SELECT queue, " JOBSCHED_KIND("job") ", count(*) FROM job GROUP BY 1, 2;"
    "CREATE TRIGGER job_count_insert AFTER INSERT ON job BEGIN " JOBSCHED_COUNT_IN("new")
    " END;"
    "CREATE TRIGGER job_count_delete AFTER DELETE ON job BEGIN " JOBSCHED_COUNT_OUT("old")
    " END;"
    "CREATE TRIGGER job_count_update AFTER UPDATE OF state, queue, cancelled_at ON job"
    " WHEN old.queue IS NOT new.queue OR " JOBSCHED_KIND("old") " IS NOT " JOBSCHED_KIND("new")
    " BEGIN " JOBSCHED_COUNT_OUT("old") " " JOBSCHED_COUNT_IN("new") " END;";
#undef JOBSCHED_COUNT_OUT
#undef JOBSCHED_COUNT_IN
#undef JOBSCHED_KIND
inline constexpr const char* drop_counts =
    "DROP TRIGGER IF EXISTS job_count_insert; DROP TRIGGER IF EXISTS job_count_delete;"
    " DROP TRIGGER IF EXISTS job_count_update; DROP TABLE IF EXISTS job_count;";
inline constexpr const char* counts_kept =
    "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN"
    " ('job_count_insert', 'job_count_delete', 'job_count_update')";
inline constexpr const char* read_kept_counts =
    "SELECT queue, kind, jobs FROM job_count WHERE jobs <> 0";

// ---- Upgrading to version 5: each job's state at ?1, with ?2 the default limit on attempts
inline constexpr const char* set_job_states =
    "UPDATE job SET state = CASE"
    " WHEN completed_at IS NOT NULL THEN 6"
    " WHEN failed_at IS NOT NULL THEN 7"
    " WHEN lease_until IS NOT NULL THEN"
    "  CASE WHEN attempts >= coalesce(max_attempts, ?2) THEN 3 ELSE 2 END"
    " WHEN locked_at IS NOT NULL THEN 4"
    " ELSE " JOBSCHED_FREE_STATE("starts_at") " END";

// ---- Recurring schedules (detail/firing.hpp) ----------------------------------------------
// A schedule's next firing is made ahead as a job; the schedule is due once that firing is
// (ahead_at <= ?1), and the next write or next_job that meets it makes the firing after it.
#define JOBSCHED_SCHEDULE_COLUMNS                                                         \
  "name, rule, misfire, catch_up_limit, data, queue, priority, expires_after,"           \
  " max_attempts, backoff_initial, backoff_max, paused, made_through, ahead_at, ahead_job," \
  " error"
#define JOBSCHED_SCHEDULE_DUE "paused = 0 AND ahead_at IS NOT NULL"
inline constexpr const char* select_schedule =
    "SELECT " JOBSCHED_SCHEDULE_COLUMNS " FROM schedule WHERE name = ?2";
inline constexpr const char* select_schedules =
    "SELECT " JOBSCHED_SCHEDULE_COLUMNS " FROM schedule ORDER BY name";
// The first ?2 schedules due at ?1, the earliest first.
inline constexpr const char* due_schedules =
    "SELECT " JOBSCHED_SCHEDULE_COLUMNS " FROM schedule WHERE " JOBSCHED_SCHEDULE_DUE
    " AND ahead_at <= ?1 ORDER BY ahead_at LIMIT ?2";
// ?2 name, ?3 rule, ?4 misfire, ?5 catch-up limit, ?6 payload, ?7 queue, ?8 priority,
// ?9 expiry after the firing, ?10 attempts, ?11 and ?12 backoffs.
inline constexpr const char* insert_schedule =
    "INSERT INTO schedule (name, rule, misfire, catch_up_limit, data, queue, priority,"
    " expires_after, max_attempts, backoff_initial, backoff_max, created_at, updated_at)"
    " VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?1, ?1)";
inline constexpr const char* update_schedule =
    "UPDATE schedule SET rule = ?3, misfire = ?4, catch_up_limit = ?5, data = ?6, queue = ?7,"
    " priority = ?8, expires_after = ?9, max_attempts = ?10, backoff_initial = ?11,"
    " backoff_max = ?12, error = NULL, updated_at = ?1 WHERE name = ?2";
// ?3 the latest firing made before the next, ?4 the next firing and ?5 its job.
inline constexpr const char* set_schedule_firings =
    "UPDATE schedule SET made_through = ?3, ahead_at = ?4, ahead_job = ?5 WHERE name = ?2";
inline constexpr const char* set_schedule_paused =
    "UPDATE schedule SET paused = ?3, updated_at = ?1 WHERE name = ?2";
inline constexpr const char* set_schedule_error =
    "UPDATE schedule SET error = ?3, updated_at = ?1 WHERE name = ?2";
inline constexpr const char* delete_schedule = "DELETE FROM schedule WHERE name = ?2";
// A firing's job: ?2 the schedule, ?3 the fire time, ?4 the start, ?5 the expiry, then as
// insert_job. OR IGNORE: a job for this firing exists already, and no second is made.
inline constexpr const char* insert_firing =
    "INSERT OR IGNORE INTO job (created_at, starts_at, expires_at, priority, queue,"
    " max_attempts, backoff_initial, backoff_max, schedule, fire_at, state)"
    " VALUES (?1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?2, ?3, CASE WHEN ?4 <= ?1 THEN 1 ELSE 0 END)";
inline constexpr const char* select_firing =
    "SELECT id FROM job WHERE schedule = ?2 AND fire_at = ?3";
// Takes back a firing made ahead (?2 its job, ?3 the schedule) that nobody has claimed,
// locked or settled.
inline constexpr const char* withdraw_firing =
    "DELETE FROM job WHERE id = ?2 AND schedule = ?3 AND attempts = 0 AND locked_at IS NULL"
    " AND " JOBSCHED_OPEN;
#undef JOBSCHED_SCHEDULE_DUE
#undef JOBSCHED_SCHEDULE_COLUMNS

#undef JOBSCHED_BY_LEASES
#undef JOBSCHED_BY_CLAIM_ORDER
#undef JOBSCHED_BY_START_ORDER
#undef JOBSCHED_BY_QUEUE_ORDER
#undef JOBSCHED_KEY_MAY_REOPEN
#undef JOBSCHED_MARK_IF_ABANDONED
#undef JOBSCHED_LET_GO
#undef JOBSCHED_HELD_BY
#undef JOBSCHED_LEASED_STATE
#undef JOBSCHED_FREE_STATE
#undef JOBSCHED_FREE
#undef JOBSCHED_JOB_COLUMNS
#undef JOBSCHED_JOB_COLUMNS_WITH
#undef JOBSCHED_PAYLOAD
#undef JOBSCHED_LEASE_RAN_OUT
#undef JOBSCHED_ABANDONED
#undef JOBSCHED_MAX_ATTEMPTS
#undef JOBSCHED_PENDING
#undef JOBSCHED_LEASE_OVER
#undef JOBSCHED_UNEXPIRED
#undef JOBSCHED_OPEN

// Schema introspection, used before and during migrations.
inline constexpr const char* has_table =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
inline constexpr const char* select_version = "SELECT value FROM job_schema WHERE key = 'version'";
inline constexpr const char* update_version =
    "UPDATE job_schema SET value = ?1 WHERE key = 'version'";
inline constexpr const char* data_version = "PRAGMA data_version";

}  // namespace jobsched::detail::sql
