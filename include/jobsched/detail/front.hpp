// SPDX-License-Identifier: MIT
#pragma once

// What every store's scheduler does the same between a call's arguments and its SQL: the
// checks of claims' and batches' arguments, lease ends, a job added from now, and the time a
// failed attempt runs again. Written once, so that the stores cannot drift apart.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../claim.hpp"
#include "../job.hpp"
#include "../retry.hpp"
#include "../time.hpp"
#include "new_job.hpp"
#include "validate.hpp"

namespace jobsched::detail {

inline std::size_t checked_limit(std::size_t limit) {
  if (limit == 0)
    throw_invalid("the number of jobs to claim must be at least 1, got 0");
  return limit;
}

inline void check_queues(const std::vector<std::string>& queues) {
  if (queues.empty()) {
    throw_invalid(
        "the list of queues is empty; name at least one (\"\" is the default queue), or "
        "call without queues to serve them all");
  }
}

// The end of a lease of `lease` from `at`, checked: a lease must be positive and end
// within the years 1 to 9999.
inline double lease_end(double at, Seconds lease) {
  const double until = at + checked_lease(lease);
  return checked_time("the lease's end", from_unix_seconds(until));
}

inline std::optional<ClaimedJob> first_claimed(std::vector<ClaimedJob> claimed) {
  if (claimed.empty())
    return std::nullopt;
  return std::move(claimed.front());
}

// add_job_from_now's options: starting `starts_after` and expiring `expires_after` after
// the job's creation (`created_at`, or `now`).
inline JobOptions options_from_now(Seconds starts_after, std::optional<Seconds> expires_after,
                                   std::optional<TimePoint> created_at, TimePoint now) {
  checked_duration("starts_after", starts_after);
  if (expires_after)
    checked_duration("expires_after", *expires_after);
  JobOptions options;
  options.created_at = created_at ? *created_at : now;
  options.starts_at = *options.created_at + starts_after;
  if (expires_after)
    options.expires_at = *options.created_at + *expires_after;
  return options;
}

// Each job of an add_jobs checked, before any is written; InvalidArgumentError names the
// first bad one's place in the list.
inline std::vector<CheckedTimes> checked_new_jobs(const std::vector<NewJob>& jobs,
                                                  TimePoint now) {
  std::vector<CheckedTimes> times;
  times.reserve(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    try {
      times.push_back(checked_new_job(jobs[i].data, jobs[i].options, now));
    } catch (const InvalidArgumentError& error) {
      throw_invalid("job " + std::to_string(i + 1) + " of " + std::to_string(jobs.size()) +
                    ": " + reason(error));
    }
  }
  return times;
}

// A claimed job's row, as the retry decision needs it (its own settings empty where the
// policy's apply).
struct HeldJob {
  int attempts = 0;
  std::optional<int> max_attempts;
  std::optional<double> initial_backoff;
  std::optional<double> max_backoff;
  double created_at = 0;
  std::optional<double> expires_at;
};

// When a failed attempt at `at` runs again: after the policy's backoff with jitter (never
// before the job's creation, never after its expiry); empty after its last attempt.
inline std::optional<double> retry_time(const HeldJob& job, const RetryPolicy& policy,
                                        std::mt19937_64& random, double at) {
  const int max_attempts = job.max_attempts ? *job.max_attempts : policy.max_attempts;
  if (job.attempts >= max_attempts)
    return std::nullopt;
  const Seconds initial = job.initial_backoff ? Seconds{*job.initial_backoff} : policy.initial_backoff;
  const Seconds cap = job.max_backoff ? Seconds{*job.max_backoff} : policy.max_backoff;
  const double backoff = policy.backoff(job.attempts, initial, cap).count();
  std::uniform_real_distribution<double> share(0.0, 1.0);
  double when = at + backoff * (1.0 - policy.jitter * share(random));
  if (job.expires_at)
    when = std::min(when, *job.expires_at);
  when = std::min(when, latest_time);
  return std::max(when, job.created_at);
}

}  // namespace jobsched::detail
