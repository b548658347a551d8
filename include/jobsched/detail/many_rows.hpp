// SPDX-License-Identifier: MIT
#pragma once

// Claiming and completing many jobs with one statement each, up to sql::rows_per_settle at a
// time (see there for why), inside the caller's write transaction; each job answers as its
// one-at-a-time statement would.

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../claim.hpp"
#include "../error.hpp"
#include "job_row.hpp"
#include "sql.hpp"
#include "sqlite.hpp"

namespace jobsched::detail {

// Prepared on first use.
struct ManyRowStatements {
  explicit ManyRowStatements(sqlite3* db)
      : claim(db, sql::claim_jobs(sql::rows_per_settle)),
        select_claimed(db, sql::select_claimed_jobs(sql::rows_per_settle)),
        select_held(db, sql::select_held(sql::rows_per_settle)),
        complete(db, sql::complete_claims(sql::rows_per_settle)) {}
  Statement claim, select_claimed, select_held, complete;
};

inline constexpr auto rows_per_settle = static_cast<std::size_t>(sql::rows_per_settle);
inline constexpr int first_batch_parameter = 21;

// Whether some job comes twice among `claims` (then each must be settled alone, in order).
inline bool repeats_a_job(const std::vector<Claim>& claims) {
  std::vector<std::int64_t> ids;
  ids.reserve(claims.size());
  for (const Claim& claim : claims)
    ids.push_back(claim.job_id);
  std::sort(ids.begin(), ids.end());
  return std::adjacent_find(ids.begin(), ids.end()) != ids.end();
}

// Binds claims[first, end) as held_by_any's pairs, those of the claims `keep` says yes to;
// NULL for the rest of the statement's slots.
template <class Keep>
void bind_claims(Run& run, const std::vector<Claim>& claims, std::size_t first, std::size_t end,
                 Keep keep) {
  for (std::size_t slot = 0; slot < rows_per_settle; ++slot) {
    const int parameter = first_batch_parameter + 2 * static_cast<int>(slot);
    const std::size_t i = first + slot;
    if (i < end && keep(i)) {
      run.bind(parameter, claims[i].job_id).bind(parameter + 1, claims[i].token);
    } else {
      run.bind_null(parameter).bind_null(parameter + 1);
    }
  }
}

// Completes claims[first, end) at `at` (at most rows_per_settle of them, no job twice),
// setting answers[i] to whether claim i was held (false: stale, its job unchanged).
inline void complete_many(ManyRowStatements& many, const std::vector<Claim>& claims,
                          std::size_t first, std::size_t end, double at,
                          std::vector<bool>& answers) {
  std::vector<std::int64_t> held;
  {
    Run run(many.select_held);
    run.bind(1, at);
    bind_claims(run, claims, first, end, [](std::size_t) { return true; });
    while (run.step())
      held.push_back(run.column_int64(0));
  }
  const auto is_held = [&](std::size_t i) {
    return std::find(held.begin(), held.end(), claims[i].job_id) != held.end();
  };
  for (std::size_t i = first; i < end; ++i)
    answers[i] = is_held(i);
  if (held.empty())
    return;
  Run run(many.complete);
  run.bind(1, at);
  bind_claims(run, claims, first, end, is_held);
  const std::int64_t completed = run.execute();
  if (completed != static_cast<std::int64_t>(held.size())) {
    throw Error(std::string(message_prefix) + "completed " + std::to_string(completed) +
                    " of the " + std::to_string(held.size()) + " jobs found held",
                SQLITE_ERROR, SQLITE_ERROR);
  }
}

// Binds `ids` from the first batch parameter on, NULL for the rest of the slots.
inline void bind_ids(Run& run, const std::vector<std::int64_t>& ids) {
  for (std::size_t slot = 0; slot < rows_per_settle; ++slot) {
    const int parameter = first_batch_parameter + static_cast<int>(slot);
    if (slot < ids.size()) {
      run.bind(parameter, ids[slot]);
    } else {
      run.bind_null(parameter);
    }
  }
}

// Claims the jobs `ids` (at most rows_per_settle, each once, all claimable) at `at` until
// `until` in one statement, and reads back in that order the jobs it leased, with their
// claims: all of them, unless one was not claimable after all. `bind_now` binds ?1 and the
// limit on attempts.
template <class BindNow>
std::vector<ClaimedJob> claim_many(ManyRowStatements& many, const std::vector<std::int64_t>& ids,
                                   double until, BindNow bind_now) {
  {
    Run run(many.claim);
    bind_now(run);
    run.bind(3, until);
    bind_ids(run, ids);
    run.execute();
  }
  std::vector<ClaimedJob> rows;
  rows.reserve(ids.size());
  {
    Run run(many.select_claimed);
    bind_now(run);
    bind_ids(run, ids);
    while (run.step()) {
      // A job the claim did not lease keeps its lease end: a live one is never `until`
      // (no other claim in this transaction leased it), and one that ran out is earlier.
      const int lease_until = job_columns + 1;
      if (run.column_type(lease_until) == SQLITE_NULL || run.column_double(lease_until) != until)
        continue;
      const std::int64_t token = run.column_int64(job_columns);
      Job job = read_job(run);
      const std::int64_t id = job.id;
      rows.push_back(ClaimedJob{std::move(job), Claim{id, token, from_unix_seconds(until)}});
    }
  }
  // In the order asked for: the rows come in id order.
  std::vector<ClaimedJob> ordered;
  ordered.reserve(rows.size());
  for (const std::int64_t id : ids) {
    const auto row = std::find_if(rows.begin(), rows.end(),
                                  [&](const ClaimedJob& claimed) { return claimed.job.id == id; });
    if (row != rows.end())
      ordered.push_back(std::move(*row));
  }
  return ordered;
}

}  // namespace jobsched::detail
