// SPDX-License-Identifier: MIT
#pragma once

// A Worker's completion with the jobs its handler added (JobContext::add_job): both commit
// together or not at all. A follow-up whose unique key is held, with OnConflict::fail (or a
// replace of a running holder), cannot be added; the completion is then undone and the
// attempt fails with the conflict as its error, retried as any failed attempt.

#include <optional>
#include <vector>

#include "../claim.hpp"
#include "../error.hpp"
#include "../job.hpp"
#include "../payload.hpp"
#include "../scheduler.hpp"
#include "../transaction.hpp"

namespace jobsched::detail {

enum class FollowUpCompletion { completed, failed, stale };

inline FollowUpCompletion complete_with_follow_ups(Scheduler& scheduler, const Claim& claim,
                                                   const std::optional<Payload>& result,
                                                   const std::vector<NewJob>& follow_ups) {
  auto complete = [&] {
    return result ? scheduler.complete(claim, *result) : scheduler.complete(claim);
  };
  if (follow_ups.empty())
    return complete() ? FollowUpCompletion::completed : FollowUpCompletion::stale;
  try {
    Transaction savepoint = scheduler.transaction();
    if (!complete())
      return FollowUpCompletion::stale;
    scheduler.add_jobs(follow_ups);
    savepoint.commit();
    return FollowUpCompletion::completed;
  } catch (const UniqueConflictError& error) {
    return scheduler.fail(claim, error.what()) ? FollowUpCompletion::failed
                                               : FollowUpCompletion::stale;
  }
}

}  // namespace jobsched::detail
