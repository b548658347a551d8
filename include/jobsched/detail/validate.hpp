// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "../error.hpp"
#include "../job.hpp"
#include "../payload.hpp"
#include "../retry.hpp"
#include "../time.hpp"
#include "../unique.hpp"

namespace jobsched::detail {

// Seconds as a short decimal: "1700000000.25", "0", "nan", "-inf", "1e+300".
inline std::string format_seconds(double seconds) {
  if (std::isnan(seconds))
    return "nan";
  if (std::isinf(seconds))
    return seconds < 0 ? "-inf" : "inf";
  char buffer[64];
  if (std::fabs(seconds) >= 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.17g", seconds);
    return buffer;
  }
  std::snprintf(buffer, sizeof buffer, "%.6f", seconds);
  std::string text = buffer;
  text.erase(text.find_last_not_of('0') + 1);
  if (text.back() == '.')
    text.pop_back();
  return text;
}

// The times jobsched accepts: the years 1 to 9999 (0001-01-01T00:00:00Z up to, not
// including, 10000-01-01T00:00:00Z). Far outside them a double's rounding swallows whole
// leases, and no calendar prints them.
inline constexpr double earliest_time = -62135596800.0;
inline constexpr double end_of_time = 253402300800.0;
// The last whole second before end_of_time: 9999-12-31T23:59:59Z.
inline constexpr double latest_time = end_of_time - 1.0;

inline bool is_valid_time(double seconds) noexcept {
  return seconds >= earliest_time && seconds < end_of_time;
}

// A time for messages: ISO 8601 in UTC with its fraction, then the stored seconds, as in
// "2023-11-14T22:13:20.25Z (1700000000.25)"; only the seconds for a time out of range.
inline std::string format_time(double seconds) {
  if (!is_valid_time(seconds))
    return format_seconds(seconds);
  const auto micros = static_cast<std::int64_t>(std::llround(seconds * 1e6));
  constexpr std::int64_t per_day = 86'400'000'000;
  std::int64_t days = micros / per_day;
  std::int64_t in_day = micros % per_day;
  if (in_day < 0) {
    in_day += per_day;
    --days;
  }
  // Days since 1970-01-01 to a civil date, in 400-year eras starting on March 1st.
  const std::int64_t shifted = days + 719468;
  const std::int64_t era = (shifted >= 0 ? shifted : shifted - 146096) / 146097;
  const std::int64_t day_of_era = shifted - era * 146097;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t month_index = (5 * day_of_year + 2) / 153;
  const std::int64_t day = day_of_year - (153 * month_index + 2) / 5 + 1;
  const std::int64_t month = month_index < 10 ? month_index + 3 : month_index - 9;
  const std::int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  const std::int64_t second_of_day = in_day / 1'000'000;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(second_of_day / 3600),
                static_cast<long long>(second_of_day / 60 % 60),
                static_cast<long long>(second_of_day % 60));
  std::string text = buffer;
  if (const std::int64_t fraction = in_day % 1'000'000; fraction != 0) {
    std::snprintf(buffer, sizeof buffer, ".%06lld", static_cast<long long>(fraction));
    std::string digits = buffer;
    digits.erase(digits.find_last_not_of('0') + 1);
    text += digits;
  }
  return text + "Z (" + format_seconds(seconds) + ")";
}

// A duration in whole milliseconds for SQLite's int parameters, clamped to [0, INT_MAX].
inline int clamped_milliseconds(std::chrono::milliseconds duration) noexcept {
  const auto count = duration.count();
  return static_cast<int>(std::clamp<decltype(count)>(count, 0, std::numeric_limits<int>::max()));
}

[[noreturn]] inline void throw_invalid(const std::string& message) {
  throw InvalidArgumentError("jobsched: " + message);
}

// Refuses NaN, infinite and out-of-range times; returns the time in stored seconds.
inline double checked_time(const char* name, TimePoint time) {
  const double seconds = to_unix_seconds(time);
  if (!is_valid_time(seconds)) {
    throw_invalid(std::string(name) + " must be a time within the years 1 to 9999, got " +
                  format_seconds(seconds) + (std::isfinite(seconds) ? " s since 1970" : ""));
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
    throw_invalid("created_at " + format_time(times.created_at) + " is after starts_at " +
                  format_time(times.starts_at));
  }
  if (times.expires_at && times.starts_at > *times.expires_at) {
    throw_invalid("starts_at " + format_time(times.starts_at) + " is after expires_at " +
                  format_time(*times.expires_at));
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

// Refuses a unique key that is empty or holds a NUL byte, a negative or non-finite period,
// an OnConflict that is none of its values.
inline void check_unique(const Unique& unique) {
  if (unique.key.empty())
    throw_invalid("a unique key must not be empty");
  if (const std::size_t nul = unique.key.find('\0'); nul != std::string::npos) {
    throw_invalid("a unique key must not hold a NUL byte, got one at byte " +
                  std::to_string(nul + 1) + " of " + std::to_string(unique.key.size()));
  }
  checked_duration("Unique::completed_within", unique.completed_within);
  const auto policy = static_cast<int>(unique.on_conflict);
  if (policy < static_cast<int>(OnConflict::return_existing) ||
      policy > static_cast<int>(OnConflict::fail)) {
    throw_invalid("Unique::on_conflict must be return_existing, replace or fail, got " +
                  std::to_string(policy));
  }
}

// Refuses a REAL NaN payload: SQLite would store it as NULL, losing it.
inline void check_payload(const Payload& data) {
  const std::optional<double> real = data.as_real();
  if (real && std::isnan(*real)) {
    throw_invalid("a REAL payload must not be NaN (SQLite would store it as NULL)");
  }
}

}  // namespace jobsched::detail
