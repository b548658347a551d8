// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <cmath>

#include "time.hpp"

namespace jobsched {

/// When a failed job runs again: after an exponential backoff with jitter, capped, until it
/// has been attempted `max_attempts` times; then it is failed for good. A claim whose lease
/// ran out counts as a failed attempt. Jobs may override max_attempts and the backoffs.
struct RetryPolicy {
  /// Attempts in all, the first one included (at least 1).
  int max_attempts = 10;
  /// The backoff after the first failed attempt.
  Seconds initial_backoff{1.0};
  /// Each further failed attempt multiplies the backoff by this (at least 1).
  double multiplier = 2.0;
  /// The backoff never exceeds this.
  Seconds max_backoff{600.0};
  /// The share of each backoff drawn at random (0 to 1): the delay is uniform in
  /// [backoff * (1 - jitter), backoff], so that failed jobs do not return all at once.
  double jitter = 0.25;

  /// The backoff after `attempts` failed attempts (1 or more), before jitter.
  Seconds backoff(int attempts, Seconds initial, Seconds max) const {
    if (initial.count() <= 0.0)
      return Seconds{0.0};  // and never 0 * inf = NaN
    const double exponent = static_cast<double>(std::max(attempts, 1) - 1);
    const double seconds = initial.count() * std::pow(multiplier, exponent);
    return Seconds{seconds <= max.count() ? seconds : max.count()};
  }
};

}  // namespace jobsched
