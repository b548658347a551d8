// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "job_state.hpp"
#include "time.hpp"

namespace jobsched {

/// How many jobs are in each state.
struct JobCounts {
  /// Free, not due yet (JobState::scheduled).
  std::int64_t scheduled = 0;
  /// Free and due.
  std::int64_t available = 0;
  /// Claimed with a live lease, or locked.
  std::int64_t running = 0;
  /// Completed.
  std::int64_t completed = 0;
  /// Failed for good, cancelled ones not included.
  std::int64_t failed = 0;
  /// Cancelled.
  std::int64_t cancelled = 0;
  /// Expired unrun.
  std::int64_t expired = 0;

  /// The count of `state`.
  std::int64_t& operator[](JobState state) noexcept {
    switch (state) {
      case JobState::scheduled:
        return scheduled;
      case JobState::available:
        return available;
      case JobState::running:
        return running;
      case JobState::completed:
        return completed;
      case JobState::failed:
        return failed;
      case JobState::cancelled:
        return cancelled;
      case JobState::expired:
        break;
    }
    return expired;
  }
  /// The count of `state`.
  std::int64_t operator[](JobState state) const noexcept {
    return (*const_cast<JobCounts*>(this))[state];
  }
  /// Scheduled, available and running: what count_pending_jobs counts.
  std::int64_t pending() const noexcept { return scheduled + available + running; }
  /// Every job, in every state.
  std::int64_t total() const noexcept {
    return pending() + completed + failed + cancelled + expired;
  }

  /// Equal when every state's count is equal.
  friend bool operator==(const JobCounts& a, const JobCounts& b) noexcept {
    for (const JobState state : all_job_states) {
      if (a[state] != b[state])
        return false;
    }
    return true;
  }
  /// Not equal.
  friend bool operator!=(const JobCounts& a, const JobCounts& b) noexcept { return !(a == b); }
};

/// One queue's jobs.
struct QueueStats {
  /// The queue's name; "" is the default queue.
  std::string queue;
  /// Its jobs by state.
  JobCounts jobs;
  /// How late the queue's oldest due job is: now - its starts_at, for the earliest start of
  /// its available jobs; empty when none is available.
  std::optional<Seconds> oldest_due;
};

/// What Scheduler::stats read, in one snapshot of the file.
struct Stats {
  /// The moment the states were read at.
  TimePoint at{};
  /// Every queue that holds a job, by name.
  std::vector<QueueStats> queues;
  /// Every queue's together.
  JobCounts totals;
  /// The latest of the queues' oldest_due.
  std::optional<Seconds> oldest_due;
  /// The schema version the file is read at (Scheduler::schema_version).
  int schema_version = 0;
  /// How many schedules there are (paused ones too).
  std::int64_t schedules = 0;
};

namespace detail {

// A label value in the exposition format: backslash, double quote and line feed escaped.
inline std::string prometheus_label(std::string_view value) {
  std::string text;
  text.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      text += "\\\\";
    } else if (c == '"') {
      text += "\\\"";
    } else if (c == '\n') {
      text += "\\n";
    } else {
      text += c;
    }
  }
  return text;
}

// A sample value: the shortest decimal that reads back as the same double.
inline std::string prometheus_number(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value < 0 ? "-Inf" : "+Inf";
  char buffer[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value)
      break;
  }
  return buffer;
}

}  // namespace detail

/// The stats in Prometheus's text exposition format (version 0.0.4, served as
/// `text/plain; version=0.0.4`): gauges jobsched_jobs{queue,state} for every queue and state,
/// jobsched_oldest_due_seconds{queue} (0 when no job is due), jobsched_schedules and
/// jobsched_schema_version.
inline std::string to_prometheus(const Stats& stats) {
  std::string text =
      "# HELP jobsched_jobs Jobs by queue and state.\n"
      "# TYPE jobsched_jobs gauge\n";
  for (const QueueStats& queue : stats.queues) {
    for (const JobState state : all_job_states) {
      text += "jobsched_jobs{queue=\"" + detail::prometheus_label(queue.queue) + "\",state=\"" +
              to_string(state) + "\"} " + std::to_string(queue.jobs[state]) + "\n";
    }
  }
  text +=
      "# HELP jobsched_oldest_due_seconds How late the oldest due job of the queue is, in "
      "seconds (0 when none is due).\n"
      "# TYPE jobsched_oldest_due_seconds gauge\n";
  for (const QueueStats& queue : stats.queues) {
    text += "jobsched_oldest_due_seconds{queue=\"" + detail::prometheus_label(queue.queue) +
            "\"} " + detail::prometheus_number(queue.oldest_due ? queue.oldest_due->count() : 0.0) +
            "\n";
  }
  text +=
      "# HELP jobsched_schedules Recurring schedules stored.\n"
      "# TYPE jobsched_schedules gauge\n"
      "jobsched_schedules " +
      std::to_string(stats.schedules) +
      "\n"
      "# HELP jobsched_schema_version The job file's schema version.\n"
      "# TYPE jobsched_schema_version gauge\n"
      "jobsched_schema_version " +
      std::to_string(stats.schema_version) + "\n";
  return text;
}

}  // namespace jobsched
