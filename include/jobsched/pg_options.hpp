// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <string>

#include "retry.hpp"
#include "time.hpp"

namespace jobsched {

/// How a PgScheduler works: the SQLite Options that apply to a server, and where its tables
/// live.
struct PgOptions {
  /// The schema that holds the tables, created if missing: letters, digits and '_', not
  /// starting with a digit, at most 63 characters. Each schema is a separate schedule.
  std::string schema = "jobsched";
  /// The source of now; empty: the system clock.
  Clock clock;
  /// When a failed job runs again, as for Options::retry.
  RetryPolicy retry;
  /// Whose clock `now` is: false, the host's (`clock`); true, the server's, for fleets whose
  /// hosts disagree: the host's clock plus the skew measured when the scheduler connects
  /// (PgScheduler::clock_skew), so that it costs no round trip per call.
  bool server_clock = false;
  /// How long a call waits for a row lock another connection holds before it throws
  /// BusyError (the server's lock_timeout, set on connections PgScheduler::open makes).
  std::chrono::milliseconds busy_timeout{5000};
};

}  // namespace jobsched
