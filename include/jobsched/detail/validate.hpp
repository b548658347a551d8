// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include "../error.hpp"
#include "../payload.hpp"
#include "../time.hpp"

namespace jobsched::detail {

/// Seconds as a short decimal: "1700000000.25", "0", "nan", "-inf".
inline std::string format_seconds(double seconds) {
  if (std::isnan(seconds)) return "nan";
  if (std::isinf(seconds)) return seconds < 0 ? "-inf" : "inf";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  std::string text = buffer;
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.') text.pop_back();
  return text;
}

[[noreturn]] inline void throw_invalid(const std::string& message) {
  throw InvalidArgumentError("jobsched: " + message);
}

/// Refuses NaN and infinite times; returns the time in stored seconds.
inline double checked_time(const char* name, TimePoint time) {
  const double seconds = to_unix_seconds(time);
  if (!std::isfinite(seconds)) {
    throw_invalid(std::string(name) + " must be a finite time, got " + format_seconds(seconds));
  }
  return seconds;
}

/// Refuses NaN, infinite and negative durations; returns the duration in seconds.
inline double checked_duration(const char* name, Seconds duration) {
  const double seconds = duration.count();
  if (!std::isfinite(seconds) || seconds < 0) {
    throw_invalid(std::string(name) + " must be a finite, non-negative duration, got " +
                  format_seconds(seconds) + " s");
  }
  return seconds;
}

/// The stored times of a new job, checked: finite, and created <= starts <= expires.
struct CheckedTimes {
  double created_at;
  double starts_at;
  std::optional<double> expires_at;
};

inline CheckedTimes check_job_times(TimePoint created, TimePoint starts,
                                    std::optional<TimePoint> expires) {
  CheckedTimes times{checked_time("created_at", created), checked_time("starts_at", starts),
                     std::nullopt};
  if (expires) times.expires_at = checked_time("expires_at", *expires);
  if (times.created_at > times.starts_at) {
    throw_invalid("created_at (" + format_seconds(times.created_at) +
                  ") is after starts_at (" + format_seconds(times.starts_at) + ")");
  }
  if (times.expires_at && times.starts_at > *times.expires_at) {
    throw_invalid("starts_at (" + format_seconds(times.starts_at) +
                  ") is after expires_at (" + format_seconds(*times.expires_at) + ")");
  }
  return times;
}

/// Refuses a REAL NaN payload: SQLite would store it as NULL, losing it.
inline void check_payload(const Payload& data) {
  const std::optional<double> real = data.as_real();
  if (real && std::isnan(*real)) {
    throw_invalid("a REAL payload must not be NaN (SQLite would store it as NULL)");
  }
}

}  // namespace jobsched::detail
