// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "detail/validate.hpp"
#include "job.hpp"
#include "retry.hpp"
#include "time.hpp"

namespace jobsched {

/// What a job is doing at a moment: one function of its row and that moment, the same in
/// every call (list_jobs, stats, count_pending_jobs). Pending is scheduled, available or
/// running.
enum class JobState {
  scheduled,  ///< free, not due yet
  available,  ///< free and due: a claim may take it
  running,    ///< held: claimed with a live lease, or locked
  completed,
  failed,     ///< failed for good (out of attempts, or its last lease ran out)
  cancelled,  ///< cancelled (cancel_job): failed for good, with cancelled_at
  expired,    ///< neither completed nor failed, and its expiry has passed
};

/// Every state, in the enum's order.
inline constexpr std::array<JobState, 7> all_job_states = {
    JobState::scheduled, JobState::available, JobState::running, JobState::completed,
    JobState::failed,    JobState::cancelled, JobState::expired};

/// The state's name, as parse_job_state reads it: "scheduled", "available", ...
inline const char* to_string(JobState state) noexcept {
  switch (state) {
    case JobState::scheduled:
      return "scheduled";
    case JobState::available:
      return "available";
    case JobState::running:
      return "running";
    case JobState::completed:
      return "completed";
    case JobState::failed:
      return "failed";
    case JobState::cancelled:
      return "cancelled";
    case JobState::expired:
      return "expired";
  }
  return "unknown";
}

/// The state named `name` (as to_string writes it); InvalidArgumentError naming it, and the
/// names there are, for any other text.
inline JobState parse_job_state(std::string_view name) {
  std::string names;
  for (const JobState state : all_job_states) {
    if (name == to_string(state))
      return state;
    names += names.empty() ? "" : ", ";
    names += to_string(state);
  }
  detail::throw_invalid("unknown job state '" + std::string(name) + "' (one of " + names + ")");
}

/// The job's state at `now`. Exact for a job read at `now` (get_job, list_jobs): its row
/// shows a job whose lease ran out on its last attempt as failed. For a job read earlier,
/// such a lease counts as the last attempt when `attempts` reached the job's max_attempts,
/// or else `default_max_attempts` (pass the scheduler's RetryPolicy::max_attempts).
/// One case it cannot see: a keyed job that expired, with the clock then set back before its
/// expiry while another open job holds its key, stays expired in the scheduler's calls.
inline JobState state_of(const Job& job, TimePoint now,
                         int default_max_attempts = RetryPolicy{}.max_attempts) noexcept {
  if (job.completed_at)
    return JobState::completed;
  if (job.failed_at)
    return job.cancelled_at ? JobState::cancelled : JobState::failed;
  const bool lease_ran_out = job.lease_until && *job.lease_until <= now;
  if (lease_ran_out && job.attempts >= job.max_attempts.value_or(default_max_attempts) &&
      (!job.expires_at || *job.lease_until < *job.expires_at))
    return JobState::failed;
  if (job.expires_at && *job.expires_at <= now)
    return JobState::expired;
  const bool held = job.lease_until ? !lease_ran_out : job.locked_at.has_value();
  if (held)
    return JobState::running;
  return job.starts_at <= now ? JobState::available : JobState::scheduled;
}

}  // namespace jobsched
