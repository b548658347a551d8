// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "../error.hpp"
#include "../job.hpp"
#include "../payload.hpp"
#include "../retry.hpp"
#include "../time.hpp"

namespace jobsched::detail {

// Seconds as a short decimal: "1700000000.25", "0", "nan", "-inf".
inline std::string format_seconds(double seconds) {
  if (std::isnan(seconds))
    return "nan";
  if (std::isinf(seconds))
    return seconds < 0 ? "-inf" : "inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  std::string text = buffer;
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.')
    text.pop_back();
  return text;
}

// A duration in whole milliseconds for SQLite's int parameters, clamped to [0, INT_MAX].
inline int clamped_milliseconds(std::chrono::milliseconds duration) noexcept {
  const auto count = duration.count();
  return static_cast<int>(std::clamp<decltype(count)>(count, 0, std::numeric_limits<int>::max()));
}

[[noreturn]] inline void throw_invalid(const std::string& message) {
  throw InvalidArgumentError("jobsched: " + message);
}

// Refuses NaN and infinite times; returns the time in stored seconds.
inline double checked_time(const char* name, TimePoint time) {
  const double seconds = to_unix_seconds(time);
  if (!std::isfinite(seconds)) {
    throw_invalid(std::string(name) + " must be a finite time, got " + format_seconds(seconds));
  }
  return seconds;
}

// Refuses NaN, infinite and negative durations; returns the duration in seconds.
inline double checked_duration(const char* name, Seconds duration) {
  const double seconds = duration.count();
  if (!std::isfinite(seconds) || seconds < 0) {
    throw_invalid(std::string(name) + " must be a finite, non-negative duration, got " +
                  format_seconds(seconds) + " s");
  }
  return seconds;
}

// The stored times of a new job, checked: finite, and created <= starts <= expires.
struct CheckedTimes {
  double created_at;
  double starts_at;
  std::optional<double> expires_at;
};

inline CheckedTimes check_job_times(TimePoint created, TimePoint starts,
                                    std::optional<TimePoint> expires) {
  CheckedTimes times{checked_time("created_at", created), checked_time("starts_at", starts),
                     std::nullopt};
  if (expires)
    times.expires_at = checked_time("expires_at", *expires);
  if (times.created_at > times.starts_at) {
    throw_invalid("created_at (" + format_seconds(times.created_at) + ") is after starts_at (" +
                  format_seconds(times.starts_at) + ")");
  }
  if (times.expires_at && times.starts_at > *times.expires_at) {
    throw_invalid("starts_at (" + format_seconds(times.starts_at) + ") is after expires_at (" +
                  format_seconds(*times.expires_at) + ")");
  }
  return times;
}

// Refuses a lease that is not a finite, positive duration; returns it in seconds.
inline double checked_lease(Seconds lease) {
  const double seconds = lease.count();
  if (!std::isfinite(seconds) || seconds <= 0) {
    throw_invalid("a lease must be a finite, positive duration, got " + format_seconds(seconds) +
                  " s");
  }
  return seconds;
}

inline void check_max_attempts(const char* name, int max_attempts) {
  if (max_attempts < 1) {
    throw_invalid(std::string(name) + " must be at least 1, got " + std::to_string(max_attempts));
  }
}

// Refuses retry settings that cannot work: no attempt at all, a negative or infinite
// backoff, a shrinking multiplier, jitter outside [0, 1].
inline void check_retry_policy(const RetryPolicy& policy) {
  check_max_attempts("RetryPolicy::max_attempts", policy.max_attempts);
  checked_duration("RetryPolicy::initial_backoff", policy.initial_backoff);
  checked_duration("RetryPolicy::max_backoff", policy.max_backoff);
  if (!std::isfinite(policy.multiplier) || policy.multiplier < 1.0) {
    throw_invalid("RetryPolicy::multiplier must be finite and at least 1, got " +
                  format_seconds(policy.multiplier));
  }
  if (!(policy.jitter >= 0.0 && policy.jitter <= 1.0)) {
    throw_invalid("RetryPolicy::jitter must be between 0 and 1, got " +
                  format_seconds(policy.jitter));
  }
}

// Refuses a new job's retry overrides that cannot work.
inline void check_job_settings(const JobOptions& options) {
  if (options.max_attempts)
    check_max_attempts("max_attempts", *options.max_attempts);
  if (options.initial_backoff)
    checked_duration("initial_backoff", *options.initial_backoff);
  if (options.max_backoff)
    checked_duration("max_backoff", *options.max_backoff);
}

// Refuses a REAL NaN payload: SQLite would store it as NULL, losing it.
inline void check_payload(const Payload& data) {
  const std::optional<double> real = data.as_real();
  if (real && std::isnan(*real)) {
    throw_invalid("a REAL payload must not be NaN (SQLite would store it as NULL)");
  }
}

}  // namespace jobsched::detail
