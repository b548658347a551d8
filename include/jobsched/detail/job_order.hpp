// SPDX-License-Identifier: MIT
#pragma once

// The two orders of the schedule at one moment: which due job a claim takes first, and which
// job can be claimed first (seconds_until_next_job). Both walk the claim index (queue,
// priority DESC, starts_at) by a skip-scan done by hand, each queue, then each priority level
// from the highest, a probe each; the held jobs come from the lease index in order of their
// lease end.

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../job.hpp"
#include "sql.hpp"
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

// The schedule's orders at `now`. Reads only; used by one call, on its own connection.
class JobOrder {
 public:
  JobOrder(ReadStatements& statements, double now, int default_max_attempts) noexcept
      : statements_(statements), now_(now), default_max_attempts_(default_max_attempts) {}

  // The due, free job a claim takes: in claim order, from `queues`, or from every queue
  // when null.
  std::optional<Candidate> first_claimable(const std::vector<std::string>* queues) {
    std::optional<Candidate> best;
    auto consider = [&](const std::string& queue, std::int64_t top) {
      std::optional<Candidate> found = first_due_in_queue(queue, top);
      if (found && (!best || claimed_before(*found, *best)))
        best = found;
    };
    if (queues != nullptr) {
      for (const std::string& queue : *queues)
        consider(queue, no_level);
    } else {
      for_each_queue([&](const std::string& queue, int top) { consider(queue, top); });
    }
    return best;
  }

  // The job that can be claimed first, in due order: next_job's job when one is due, else
  // the first to become free, at its start or at the end of the lease that holds it; from
  // `queues`, or from every queue when null.
  std::optional<Candidate> first_due(const std::vector<std::string>* queues) {
    std::optional<Candidate> next;
    if (queues == nullptr) {
      Run run(statements_.select_next_start);
      bind_now(run);
      if (run.step())
        next = Candidate{run.column_int64(0), 0, run.column_double(1)};
      keep_earliest(next, first_freed_by_lease(nullptr));
      return next;
    }
    for (const std::string& queue : *queues) {
      for_each_priority(queue, [&](int priority) {
        Run run(statements_.first_free_in_level);
        bind_now(run);
        run.bind_text(2, queue).bind(3, std::int64_t{priority});
        if (run.step())
          keep_earliest(next, Candidate{run.column_int64(0), 0, run.column_double(1)});
        return false;
      });
      keep_earliest(next, first_freed_by_lease(&queue));
    }
    return next;
  }

 private:
  // Not a priority level: an int64 outside int's range.
  static constexpr std::int64_t no_level = std::numeric_limits<std::int64_t>::max();

  void bind_now(Run& run) const {
    run.bind(1, now_).bind(sql::default_max_attempts, std::int64_t{default_max_attempts_});
  }

  // The first due free job of `queue` in claim order: the first level that has one.
  std::optional<Candidate> first_due_in_queue(const std::string& queue, std::int64_t top) {
    std::optional<Candidate> found;
    for_each_priority(
        queue,
        [&](int priority) {
          Run run(statements_.first_due_in_level);
          bind_now(run);
          run.bind_text(2, queue).bind(3, std::int64_t{priority});
          if (run.step())
            found = Candidate{run.column_int64(0), priority, run.column_double(1)};
          return found.has_value();
        },
        top);
    return found;
  }

  // The held job (in `queue`, or in any queue when null) that its lease frees first, dated
  // by the later of its lease end and its start. Leases come in order of their end, so the
  // walk stops at the first lease that ends after the best date found: one row, unless
  // leases were moved back before their job's start.
  std::optional<Candidate> first_freed_by_lease(const std::string* queue) {
    Run run(statements_.live_leases);
    bind_now(run);
    if (queue != nullptr) {
      run.bind_text(2, *queue);
    } else {
      run.bind_null(2);
    }
    std::optional<Candidate> best;
    while (run.step()) {
      const double lease_until = run.column_double(2);
      if (best && lease_until > best->at)
        break;
      keep_earliest(best,
                    Candidate{run.column_int64(0), 0, std::max(run.column_double(1), lease_until)});
    }
    return best;
  }

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
  double now_;
  int default_max_attempts_;
};

}  // namespace jobsched::detail
