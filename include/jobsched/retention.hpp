// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "time.hpp"

namespace jobsched {

/// How long Scheduler::prune keeps finished jobs, by kind; an empty age keeps that kind.
struct PruneAges {
  /// Completed jobs go once completed longer ago than this.
  std::optional<Seconds> completed;
  /// Failed jobs (not cancelled) go once failed longer ago; a job whose lease ran out on its
  /// last attempt failed at that lease's end.
  std::optional<Seconds> failed;
  /// Cancelled jobs go once cancelled longer ago.
  std::optional<Seconds> cancelled;
};

/// How many jobs one Scheduler::prune deleted, by kind.
struct PruneResult {
  /// Completed jobs deleted.
  std::int64_t completed = 0;
  /// Failed (not cancelled) jobs deleted.
  std::int64_t failed = 0;
  /// Cancelled jobs deleted.
  std::int64_t cancelled = 0;

  /// Every job deleted.
  std::int64_t total() const noexcept { return completed + failed + cancelled; }
};

/// A prune a Worker runs every `interval`, on its own connection (WorkerOptions::prune).
struct PeriodicPrune {
  /// How long each kind of finished job is kept.
  PruneAges ages;
  /// Time between prunes, from the Worker's start (it prunes at start too); default 1 min.
  std::chrono::milliseconds interval{std::chrono::minutes(1)};
};

}  // namespace jobsched
