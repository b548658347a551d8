// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstdint>

#include "event.hpp"
#include "retry.hpp"
#include "time.hpp"

namespace jobsched {

/// How hard each commit waits for the disk (SQLite's `PRAGMA synchronous`, in WAL mode).
enum class Synchronous {
  /// A commit that returned survives power loss. The default.
  full,
  /// A commit that returned survives a crash of the process, but the newest commits may be
  /// lost if the machine loses power. Several times faster for one job per transaction.
  normal,
};

/// Whether a scheduler closes the SQLite handle it was given when it is destroyed.
enum class Ownership { owned, borrowed };

/// How a scheduler sets up its connection.
struct Options {
  /// The source of "now" for every call that takes an optional time. Empty: system clock.
  Clock clock;
  /// How durable each commit is: full (the default) or normal.
  Synchronous synchronous = Synchronous::full;
  /// How long a call waits for another connection's write lock before throwing BusyError.
  std::chrono::milliseconds busy_timeout{5000};
  /// Retries and backoff for failed claims, unless a job overrides them.
  RetryPolicy retry;
  /// Open only to read, for inspection: never creates, migrates or writes the file (every
  /// write call throws ReadOnlyError). A file at an older version is read as if upgraded
  /// (see Scheduler::needs_upgrade).
  bool read_only = false;
  /// The -wal file's size, in bytes, that a checkpoint cuts it back to. It grows while a
  /// reader holds an old snapshot; once the log is checkpointed, the next write cuts it to
  /// this (SQLite's journal_size_limit), and Scheduler::prune truncates it when no reader or
  /// writer is in the way. 0 cuts it at every restart of the log; negative is refused.
  std::int64_t wal_size_limit = 8 * 1024 * 1024;
  /// Called with each change to a job (added, claimed, completed, failed, ...) once it is
  /// committed; see Event. Empty: no events, and nothing read for them.
  EventHook on_event;
};

}  // namespace jobsched
