// SPDX-License-Identifier: MIT
#pragma once

// The order in which jobs are claimed and become due, and the hand-made skip-scan of the
// claim index (queue, priority DESC, starts_at) that walks it: each queue, then each
// priority level from the highest, a probe each.

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "../job.hpp"
#include "sqlite.hpp"
#include "statements.hpp"

namespace jobsched::detail {

// A job as the orders below see it. `at` is its start in claim order, and in due order the
// time it can be claimed (its start, or the end of the lease that holds it).
struct Candidate {
  std::int64_t id = 0;
  int priority = 0;
  double at = 0.0;
};

// Claim order: higher priority, then earlier start, then lower id.
inline bool claimed_before(const Candidate& a, const Candidate& b) noexcept {
  if (a.priority != b.priority)
    return a.priority > b.priority;
  if (a.at != b.at)
    return a.at < b.at;
  return a.id < b.id;
}

// Due order, as next_job's: earlier time, then lower id. Keeps in `earliest` whichever of
// the two comes first.
inline void keep_earliest(std::optional<Candidate>& earliest,
                          const std::optional<Candidate>& other) {
  if (other && (!earliest || other->at < earliest->at ||
                (other->at == earliest->at && other->id < earliest->id))) {
    earliest = other;
  }
}

inline std::optional<JobDelay> delay_until(const std::optional<Candidate>& next, double now) {
  if (!next)
    return std::nullopt;
  return JobDelay{next->id, Seconds{std::max(0.0, next->at - now)}};
}

// The skip-scan over the claim index. Holds no state between calls.
class ClaimOrderScan {
 public:
  explicit ClaimOrderScan(ReadStatements& statements) noexcept : statements_(statements) {}

  // Calls `visit(queue, top)` with each queue that has open jobs, in order, and its highest
  // priority level: one probe per queue.
  template <class Visit>
  void for_each_queue(Visit visit) {
    std::string from;
    for (;;) {
      std::string queue;
      int top = 0;
      {
        Run run(statements_.next_queue);
        run.bind_text(2, from);
        if (!run.step())
          return;
        // Only TEXT moves the scan forward; a BLOB sorts after every text and would repeat.
        if (run.column_type(0) != SQLITE_TEXT)
          throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a job's queue is not text");
        queue = std::string(run.column_text(0));
        top = checked_priority(run, 1, std::numeric_limits<int>::max());
      }
      visit(queue, top);
      from = queue + '\0';  // the smallest string after `queue`
    }
  }

  // Calls `visit(priority)` with each priority level that has open jobs in `queue`, highest
  // first, until it returns true. `top`, when not no_level, is the highest (saves a probe).
  template <class Visit>
  void for_each_priority(const std::string& queue, Visit visit, std::int64_t top = no_level) {
    std::int64_t at_most = std::numeric_limits<int>::max();
    for (;;) {
      int priority = 0;
      if (top != no_level) {
        priority = static_cast<int>(top);
        top = no_level;
      } else {
        Run run(statements_.next_priority);
        run.bind_text(2, queue).bind(3, at_most);
        if (!run.step())
          return;
        priority = checked_priority(run, 0, at_most);
      }
      if (visit(priority))
        return;
      at_most = std::int64_t{priority} - 1;
    }
  }

  // Not a priority level: an int64 outside int's range.
  static constexpr std::int64_t no_level = std::numeric_limits<std::int64_t>::max();

 private:
  // A priority level read from the claim index: each level must be below the last, or the
  // skip-scan would repeat (a file written by something else may hold any value).
  static int checked_priority(Run& run, int column, std::int64_t at_most) {
    const std::int64_t stored = run.column_int64(column);
    if (run.column_type(column) != SQLITE_INTEGER || stored > at_most ||
        stored < std::numeric_limits<int>::min()) {
      throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a job's priority is not an int: " +
                                     std::string(run.column_text(column)));
    }
    return static_cast<int>(stored);
  }

  ReadStatements& statements_;
};

}  // namespace jobsched::detail
