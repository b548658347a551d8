// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <string>

#include "job.hpp"
#include "time.hpp"

namespace jobsched {

/// Proof that a worker holds a job until `lease_until`. complete, fail, extend and release
/// take it; once the lease ran out and another worker claimed the job, it is stale and they
/// change nothing.
struct Claim {
  /// The claimed job.
  std::int64_t job_id = 0;
  /// A random number drawn for this claim alone.
  std::int64_t token = 0;
  /// When the lease runs out unless extended; after it the job can be claimed again.
  TimePoint lease_until{};

  /// Equal when job, token and lease end are all equal.
  friend bool operator==(const Claim& a, const Claim& b) noexcept {
    return a.job_id == b.job_id && a.token == b.token && a.lease_until == b.lease_until;
  }
  /// Not equal.
  friend bool operator!=(const Claim& a, const Claim& b) noexcept { return !(a == b); }
};

/// A failed attempt to record with Scheduler::fail_all: the claim and its error.
struct ClaimFailure {
  /// The claim whose attempt failed.
  Claim claim;
  /// The error to store as the job's last_error.
  std::string error;
};

/// A job just claimed, as stored after the claim, and the claim on it.
struct ClaimedJob {
  /// The job as the claim left it (locked, its attempt counted).
  Job job;
  /// The claim to pass to complete, fail, extend or release.
  Claim claim;
};

}  // namespace jobsched
