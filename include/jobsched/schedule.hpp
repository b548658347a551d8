// SPDX-License-Identifier: MIT
#pragma once

#include <optional>
#include <string>

#include "payload.hpp"
#include "rule.hpp"
#include "time.hpp"

namespace jobsched {

/// What a schedule does about firings that fell due while no scheduler met them (the
/// program was down, or the schedule's jobs waited behind others).
enum class Misfire {
  /// A firing not started by the time of the next one is dropped: its job expires then.
  skip,
  /// The firing made before the downtime runs once, late; the rest are not made.
  once,
  /// Each missed firing runs, oldest first, up to `catch_up_limit` of them, then the
  /// schedule goes on from now.
  catch_up,
};

/// The job each firing of a schedule makes, and what to do about missed firings.
struct ScheduleOptions {
  /// Each firing's job payload; default NULL.
  Payload data;
  /// Higher runs first among due jobs.
  int priority = 0;
  /// The queue; "" is the default queue.
  std::string queue;
  /// Each job expires this long after its firing; empty: it never expires.
  std::optional<Seconds> expires_after;
  /// Overrides of the scheduler's RetryPolicy for each job.
  std::optional<int> max_attempts;
  /// The backoff after a job's first failed attempt; empty: RetryPolicy::initial_backoff.
  std::optional<Seconds> initial_backoff;
  /// The cap on the backoff; empty: RetryPolicy::max_backoff.
  std::optional<Seconds> max_backoff;
  /// What to do about firings missed while nothing ran (downtime); default skip.
  Misfire misfire = Misfire::skip;
  /// With Misfire::catch_up, at most this many missed firings are made (at least 1).
  int catch_up_limit = 100;
};

/// A schedule as stored: its rule and options, and where its firings are.
struct Schedule {
  /// The schedule's name, unique in its file.
  std::string name;
  /// When it fires.
  Rule rule;
  /// The job each firing makes, and the misfire policy.
  ScheduleOptions options;
  /// Paused schedules make no firings (pause_schedule, resume_schedule).
  bool paused = false;
  /// The next firing, already made as a job that starts then; empty while paused, or when
  /// the rule fires no more.
  std::optional<TimePoint> next_fire;
  /// The latest firing made before the next one; empty when none was.
  std::optional<TimePoint> last_fire;
};

}  // namespace jobsched
