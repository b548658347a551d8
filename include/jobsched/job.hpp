// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "payload.hpp"
#include "time.hpp"
#include "unique.hpp"

namespace jobsched {

/// The firing a schedule made a job for: the schedule's name, and the time the firing was
/// due (a job made late, after downtime, starts later than this).
struct Firing {
  /// The name of the schedule that fired.
  std::string schedule;
  /// When the firing was due by the schedule's rule.
  TimePoint at{};

  /// Equal when schedule and time are equal.
  friend bool operator==(const Firing& a, const Firing& b) noexcept {
    return a.schedule == b.schedule && a.at == b.at;
  }
  /// Not equal.
  friend bool operator!=(const Firing& a, const Firing& b) noexcept { return !(a == b); }
};

/// A job as stored: plain data, copyable, with no link back to the scheduler.
struct Job {
  /// The job's id, unique in its file (1 or more).
  std::int64_t id = 0;
  /// The payload, as added.
  Payload data;
  /// When the job was added (JobOptions::created_at).
  TimePoint created_at{};
  /// When the job is due. A failed attempt moves it to the time of the next attempt.
  TimePoint starts_at{};
  /// Empty when the job never expires.
  std::optional<TimePoint> expires_at;
  /// Empty until the job is completed.
  std::optional<TimePoint> completed_at;
  /// When the job was locked or claimed; empty when nobody holds it.
  std::optional<TimePoint> locked_at;
  /// When the current claim's lease runs out; empty for a lock, which never expires.
  std::optional<TimePoint> lease_until;
  /// How many times the job was claimed (each claim is an attempt).
  int attempts = 0;
  /// The job's own limit on attempts; empty: the scheduler's RetryPolicy.
  std::optional<int> max_attempts;
  /// The job's own backoffs; empty: the scheduler's RetryPolicy.
  std::optional<Seconds> initial_backoff;
  /// The job's own cap on the backoff; empty: the scheduler's RetryPolicy.
  std::optional<Seconds> max_backoff;
  /// The error of the last failed attempt.
  std::optional<std::string> last_error;
  /// When the job failed for good (it ran out of attempts); empty otherwise.
  std::optional<TimePoint> failed_at;
  /// Higher runs first among due jobs.
  int priority = 0;
  /// The queue the job is in; "" is the default queue.
  std::string queue;
  /// For a job a schedule made, the firing it runs; empty for a job added.
  std::optional<Firing> firing;
  /// What the handler stored with its completion (Scheduler::complete with a result); NULL
  /// otherwise.
  Payload result;
  /// When the job was cancelled (cancel_job); it is then failed too, with the reason as its
  /// last error. Empty otherwise.
  std::optional<TimePoint> cancelled_at;
  /// The job's unique key (JobOptions::unique); empty for a job added without one.
  std::optional<std::string> key;

  /// True once completed (completed_at is set).
  bool is_completed() const noexcept { return completed_at.has_value(); }
  /// True once failed for good or cancelled (failed_at is set).
  bool is_failed() const noexcept { return failed_at.has_value(); }
  /// True once cancelled (cancelled_at is set).
  bool is_cancelled() const noexcept { return cancelled_at.has_value(); }
  /// Neither completed nor failed, and its expiry is at or before `now`.
  bool is_expired(TimePoint now) const noexcept {
    return !completed_at && !failed_at && expires_at && *expires_at <= now;
  }
  /// Neither completed, failed nor expired at `now` (held or not).
  bool is_pending(TimePoint now) const noexcept {
    return !completed_at && !failed_at && !is_expired(now);
  }

  /// Equal when every field is equal.
  friend bool operator==(const Job& a, const Job& b) noexcept {
    return a.id == b.id && a.data == b.data && a.created_at == b.created_at &&
           a.starts_at == b.starts_at && a.expires_at == b.expires_at &&
           a.completed_at == b.completed_at && a.locked_at == b.locked_at &&
           a.lease_until == b.lease_until && a.attempts == b.attempts &&
           a.max_attempts == b.max_attempts && a.initial_backoff == b.initial_backoff &&
           a.max_backoff == b.max_backoff && a.last_error == b.last_error &&
           a.failed_at == b.failed_at && a.priority == b.priority && a.queue == b.queue &&
           a.firing == b.firing && a.result == b.result && a.cancelled_at == b.cancelled_at &&
           a.key == b.key;
  }
  /// Not equal.
  friend bool operator!=(const Job& a, const Job& b) noexcept { return !(a == b); }
};

/// A new job's times and settings. Empty times take the defaults: `created_at` is now,
/// `starts_at` is `created_at`, and the job never expires. A time of 0 is a time.
struct JobOptions {
  /// When the job is added; empty: the scheduler's now.
  std::optional<TimePoint> created_at;
  /// When the job falls due, at or after created_at; empty: created_at.
  std::optional<TimePoint> starts_at;
  /// When the job expires unrun, after starts_at; empty: never.
  std::optional<TimePoint> expires_at;
  /// Higher runs first among due jobs.
  int priority = 0;
  /// The queue; "" is the default queue.
  std::string queue;
  /// Overrides of the scheduler's RetryPolicy for this job.
  std::optional<int> max_attempts;
  /// The backoff after the first failed attempt; empty: RetryPolicy::initial_backoff.
  std::optional<Seconds> initial_backoff;
  /// The cap on the backoff; empty: RetryPolicy::max_backoff.
  std::optional<Seconds> max_backoff;
  /// A unique key, and what to do when another job holds it (see Unique); empty: none.
  std::optional<Unique> unique;
};

/// A job to add with Scheduler::add_jobs: its payload and its options.
struct NewJob {
  /// The payload.
  Payload data;
  /// Its times and settings, as for Scheduler::add_job.
  JobOptions options;
};

/// The next job's id and how long until it is due (zero when it is already due).
struct JobDelay {
  /// The job's id.
  std::int64_t id = 0;
  /// Seconds until it is due; never negative.
  Seconds delay{};

  /// Equal when id and delay are equal.
  friend bool operator==(const JobDelay& a, const JobDelay& b) noexcept {
    return a.id == b.id && a.delay == b.delay;
  }
  /// Not equal.
  friend bool operator!=(const JobDelay& a, const JobDelay& b) noexcept { return !(a == b); }
};

}  // namespace jobsched
