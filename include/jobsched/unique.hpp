// SPDX-License-Identifier: MIT
#pragma once

#include <string>

#include "time.hpp"

namespace jobsched {

/// What an add does when another job holds its unique key.
enum class OnConflict {
  /// Adds nothing and returns the job holding the key, as stored (unchanged).
  return_existing,
  /// Makes the holder what this add asked for (payload, start, expiry, priority, queue and
  /// retry settings; its id, creation time, attempts and last error stay; a start before
  /// its creation becomes its creation) and returns it,
  /// when the holder is pending and free; UniqueConflictError when it is claimed or locked
  /// (running), or when the holder is a job completed within the period (nothing changed).
  replace,
  /// Adds nothing and throws UniqueConflictError, naming the key and the holder's id.
  fail,
};

/// A job's unique key (JobOptions::unique). At most one job per key is open (pending, or
/// claimed or locked); a job expired, failed (its last lease ran out included), cancelled or
/// completed no longer holds its key. With `completed_within` above zero, a job with the key
/// completed less than that long before the add (completed_at > now - completed_within)
/// holds it too: "at most one per key per hour".
struct Unique {
  /// Not empty, no NUL byte.
  std::string key;
  /// What an add does when the key is held; default: returns the holder.
  OnConflict on_conflict = OnConflict::return_existing;
  /// Zero: only open jobs hold the key. Must be finite and not negative.
  Seconds completed_within{0};
};

}  // namespace jobsched
