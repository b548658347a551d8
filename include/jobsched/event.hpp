// SPDX-License-Identifier: MIT
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "job.hpp"
#include "time.hpp"

namespace jobsched {

/// What happened to a job (see Event).
enum class EventKind {
  added,       ///< added (a job a unique key found already is not added again)
  claimed,     ///< claimed, with a lease
  completed,   ///< completed by its claim
  retrying,    ///< an attempt failed; the job runs again after its backoff
  failed,      ///< an attempt failed, and the job is failed for good
  snoozed,     ///< given back by its claim to run again later, the attempt not counted
  released,    ///< given back by its claim at once, the attempt not counted
  lease_lost,  ///< a claim's settle or extend was refused: its lease ran out, or the job was
               ///< cancelled, deleted or claimed again
  cancelled,   ///< cancelled (cancel_job)
  retried,     ///< a failed or cancelled job brought back by retry_job
};

/// The event's name: "added", "claimed", "completed", ...
inline const char* to_string(EventKind kind) noexcept {
  switch (kind) {
    case EventKind::added:
      return "added";
    case EventKind::claimed:
      return "claimed";
    case EventKind::completed:
      return "completed";
    case EventKind::retrying:
      return "retrying";
    case EventKind::failed:
      return "failed";
    case EventKind::snoozed:
      return "snoozed";
    case EventKind::released:
      return "released";
    case EventKind::lease_lost:
      return "lease_lost";
    case EventKind::cancelled:
      return "cancelled";
    case EventKind::retried:
      return "retried";
  }
  return "unknown";
}

/// One change to one job, delivered to Options::on_event once it is committed.
struct Event {
  /// What happened to the job.
  EventKind kind = EventKind::added;
  /// The job as the change left it; for lease_lost, as it is now (its id alone when it was
  /// deleted).
  Job job;
  /// When it happened, by the scheduler's clock.
  TimePoint at{};
  /// For claimed: how late the claim came (at - starts_at, zero when not late).
  std::optional<Seconds> waited;
  /// For completed, retrying, failed, snoozed and released: how long the claim held the
  /// job (from its claim to `at`).
  std::optional<Seconds> ran;
  /// For retrying and failed: the attempt's error; for cancelled: the reason.
  std::string error;
};

/// Called with each event after its transaction commits, on the thread of the scheduler
/// call that committed it (for a host's own transaction: the next call after its commit).
/// It must not call the same Scheduler; what it throws is dropped.
using EventHook = std::function<void(const Event&)>;

}  // namespace jobsched
