// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>

#include "payload.hpp"
#include "time.hpp"

namespace jobsched {

/// A job as stored: plain data, copyable, with no link back to the scheduler.
struct Job {
  std::int64_t id = 0;
  Payload data;
  TimePoint created_at{};
  TimePoint starts_at{};
  /// Empty when the job never expires.
  std::optional<TimePoint> expires_at;
  /// Empty until the job is completed.
  std::optional<TimePoint> completed_at;
  /// When the job was locked; empty when it is not locked.
  std::optional<TimePoint> locked_at;

  bool is_completed() const noexcept { return completed_at.has_value(); }
  /// Not completed, and its expiry is at or before `now`.
  bool is_expired(TimePoint now) const noexcept {
    return !completed_at && expires_at && *expires_at <= now;
  }
  /// Not completed and not expired at `now` (locked or not).
  bool is_pending(TimePoint now) const noexcept { return !completed_at && !is_expired(now); }

  friend bool operator==(const Job& a, const Job& b) noexcept {
    return a.id == b.id && a.data == b.data && a.created_at == b.created_at &&
           a.starts_at == b.starts_at && a.expires_at == b.expires_at &&
           a.completed_at == b.completed_at && a.locked_at == b.locked_at;
  }
  friend bool operator!=(const Job& a, const Job& b) noexcept { return !(a == b); }
};

/// The times of a new job. Empty fields take the defaults: `created_at` is now,
/// `starts_at` is `created_at`, and the job never expires. A time of 0 is a time.
struct JobOptions {
  std::optional<TimePoint> created_at;
  std::optional<TimePoint> starts_at;
  std::optional<TimePoint> expires_at;
};

/// The next job's id and how long until it is due (zero when it is already due).
struct JobDelay {
  std::int64_t id = 0;
  Seconds delay{};

  friend bool operator==(const JobDelay& a, const JobDelay& b) noexcept {
    return a.id == b.id && a.delay == b.delay;
  }
  friend bool operator!=(const JobDelay& a, const JobDelay& b) noexcept { return !(a == b); }
};

}  // namespace jobsched
