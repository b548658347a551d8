// SPDX-License-Identifier: MIT
#pragma once

// A scheduler on a pinned clock, on a real file or in memory, for tests that run the same
// checks on both.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

#include <jobsched/jobsched.hpp>

#include "temp_file.hpp"

namespace jobsched_test {

/// PinnedClock's default "now".
inline constexpr double pinned_now = 1'700'000'000.0;

struct SchedulerFixture {
  /// `where` is "file" or "memory"; `name` names the temporary file.
  SchedulerFixture(const std::string& name, const std::string& where,
                   const jobsched::RetryPolicy& retry)
      : file(name),
        scheduler(jobsched::Scheduler::open(where == "file" ? file.path() : ":memory:",
                                            options(retry))) {}

  jobsched::Options options(const jobsched::RetryPolicy& retry) const {
    jobsched::Options result = clock.options();
    result.retry = retry;
    return result;
  }
  /// How many rows this connection changed since it opened: unchanged means nothing written.
  std::int64_t changes() { return sqlite3_total_changes64(scheduler.handle()); }

  TempFile file;
  PinnedClock clock;
  jobsched::Scheduler scheduler;
};

/// A job created well before pinned_now that starts at `starts` (seconds since the epoch).
inline jobsched::JobOptions starting(double starts, std::optional<double> expires = std::nullopt) {
  jobsched::JobOptions options;
  options.created_at = at(pinned_now - 1e6);
  options.starts_at = at(starts);
  if (expires)
    options.expires_at = at(*expires);
  return options;
}

}  // namespace jobsched_test
