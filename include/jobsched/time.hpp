// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <functional>

namespace jobsched {

/// A span of time in seconds, fractional: the unit the job files store.
using Seconds = std::chrono::duration<double>;

/// A moment on the system clock, with fractional seconds since the Unix epoch.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, Seconds>;

/// The source of "now" for a scheduler; tests pin it, the default reads the system clock.
using Clock = std::function<TimePoint()>;

/// The current system time.
inline TimePoint system_now() {
  return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
}

/// The moment `seconds` after the Unix epoch, as the job files store it.
inline TimePoint from_unix_seconds(double seconds) noexcept {
  return TimePoint{Seconds{seconds}};
}

/// Seconds since the Unix epoch, as the job files store them.
inline double to_unix_seconds(TimePoint time) noexcept {
  return time.time_since_epoch().count();
}

}  // namespace jobsched
