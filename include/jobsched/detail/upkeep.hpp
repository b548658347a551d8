// SPDX-License-Identifier: MIT
#pragma once

// The upkeep every claim and add does on its way: jobs whose stored state lags behind now
// (scheduled jobs that came due, free jobs that expired, leases with attempts left that ran
// out) are moved on, unseen by any call,
// at most sql::moves_per_write of each kind for each job the write adds or claims, oldest
// first, so that each job is moved once and no write does unbounded work. See the states in detail/sql.hpp.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "job_order.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "statements.hpp"

namespace jobsched::detail {

// Moves on the lagging jobs at `at`, inside the caller's write transaction: up to
// sql::moves_per_write of each kind for each of the `jobs` the write adds or claims (a
// batch does work in proportion to it anyway). Returns where the states still lag, for the
// schedule's orders to walk.
inline Lag move_on(ReadStatements& reads, WriteStatements& writes, double at,
                   std::size_t jobs = 1) {
  Lag lag = LagTimes::read(reads.lagging_for_writes, true).at(at);
  if (!lag.due_scheduled && !lag.expired && !lag.ran_out_lease)
    return lag;
  const std::int64_t limit =
      std::int64_t{sql::moves_per_write} * static_cast<std::int64_t>(std::max<std::size_t>(jobs, 1));
  std::vector<std::int64_t> ids;
  // Moves the jobs `pick` names with `move_one`; true when more lag. It picks one more than
  // it moves, so that a write which moves the last lagging job knows none is left, and the
  // schedule's orders need not walk for more.
  auto move = [&](Statement& pick, auto move_one) {
    ids.clear();
    {
      Run run(pick);
      run.bind(1, at).bind(2, limit + 1);
      while (run.step())
        ids.push_back(run.column_int64(0));
    }
    const bool more = static_cast<std::int64_t>(ids.size()) > limit;
    if (more)
      ids.pop_back();
    for (const std::int64_t id : ids)
      move_one(id);
    return more;
  };
  auto move_free = [&](std::int64_t id) {
    Run run(writes.move_free_job);
    run.bind(1, at).bind(2, id);
    run.execute();
  };
  if (lag.due_scheduled)
    lag.due_scheduled = move(writes.due_scheduled, move_free);
  if (lag.expired)
    lag.expired = move(writes.expired_free, move_free);
  if (lag.ran_out_lease)
    lag.ran_out_lease = move(writes.ran_out_leases, move_free);
  // Leases run out on a last attempt are not moved here: marking an abandoned job failed is
  // seen by every call (its row keeps it failed even for a clock set back), so claims mark
  // them all, as before version 5 (Scheduler::fail_abandoned_jobs).
  return lag;
}

}  // namespace jobsched::detail
