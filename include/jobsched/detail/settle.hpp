// SPDX-License-Identifier: MIT
#pragma once

// Settling a claim inside the caller's write transaction: completing or releasing it, or
// recording a failed attempt (retried after the policy's backoff, or failed for good after
// the last attempt). Each is false, changing nothing, when the claim is stale.

#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string_view>

#include "../claim.hpp"
#include "../retry.hpp"
#include "front.hpp"
#include "sqlite.hpp"
#include "statements.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// Completes or releases (`statement`, which uses ?1 now, ?2 the job, ?3 the token).
inline bool settle(Statement& statement, const Claim& claim, double at) {
  Run run(statement);
  run.bind(1, at).bind(2, claim.job_id).bind(3, claim.token);
  return run.execute() > 0;
}

inline bool fail_claim(WriteStatements& write, const RetryPolicy& policy,
                       std::mt19937_64& random, const Claim& claim, std::string_view error,
                       double at) {
  std::optional<double> retry_at;
  {
    Run run(write.select_claimed);
    run.bind(1, at).bind(2, claim.job_id).bind(3, claim.token);
    if (!run.step())
      return false;
    HeldJob held;
    held.attempts = static_cast<int>(run.column_int64(0));
    if (run.column_type(1) != SQLITE_NULL)
      held.max_attempts = static_cast<int>(run.column_int64(1));
    if (run.column_type(2) != SQLITE_NULL)
      held.initial_backoff = run.column_double(2);
    if (run.column_type(3) != SQLITE_NULL)
      held.max_backoff = run.column_double(3);
    held.created_at = run.column_double(4);
    if (run.column_type(5) != SQLITE_NULL)
      held.expires_at = run.column_double(5);
    retry_at = retry_time(held, policy, random, at);
  }
  Run run(retry_at ? write.retry_later : write.fail_for_good);
  run.bind(1, at).bind(2, claim.job_id).bind(3, claim.token);
  if (retry_at)
    run.bind(4, *retry_at);
  run.bind_text(5, error);
  run.execute();
  return true;
}

}  // namespace jobsched::detail
