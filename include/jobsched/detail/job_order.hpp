// SPDX-License-Identifier: MIT
#pragma once

// The two orders of the schedule at one moment: which due job a claim takes first, and which
// job can be claimed first (next_job, seconds_until_next_job). Jobs sit in indexes by their
// stored state (detail/sql.hpp): due free jobs in claim order, free jobs in start order, held
// jobs by their lease end. Most calls read the first entry of one index. Where the stored
// states lag behind `now` (jobs came due, leases ran out, the clock was set back), the orders
// also walk the lagging jobs, each queue and each priority level a probe, as the claims move
// them on.

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

// Where the stored states lag behind `now`: a scheduled job due, a lease run out (with
// attempts left, and on a last attempt), a job in states 0 to 4 expired; and, when the clock
// was set back, a job moved out as expired that is not expired at `now`, a job moved on from
// a lease that has not run out at `now`.
struct Lag {
  bool due_scheduled = false;
  bool ran_out_lease = false;
  bool ran_out_last_lease = false;
  bool expired = false;
  bool unexpired_moved_out = false;
  bool live_lease_moved_on = false;
  bool schedule_due = false;
  // Not a lag: some queue is paused, and the orders serve only the others.
  bool queues_paused = false;
};

// The times that say where the stored states lag, as a write or a read needs them (see
// sql::lagging_for_writes and sql::lagging_for_reads); empty where no job has one.
struct LagTimes {
  bool for_writes = false;
  std::optional<double> times[6];
  bool queues_paused = false;

  static LagTimes read(const Statement& statement, bool for_writes) {
    Run run(statement);
    run.step();
    LagTimes lag;
    lag.for_writes = for_writes;
    for (int column = 0; column < 6; ++column) {
      if (run.column_type(column) != SQLITE_NULL)
        lag.times[column] = run.column_double(column);
    }
    lag.queues_paused = run.column_type(6) != SQLITE_NULL;
    return lag;
  }

  Lag at(double now) const {
    auto at_or_before = [&](int column) { return times[column] && *times[column] <= now; };
    auto after = [&](int column) { return times[column] && *times[column] > now; };
    Lag lag;
    lag.schedule_due = at_or_before(5);
    lag.queues_paused = queues_paused;
    if (for_writes) {
      lag.due_scheduled = at_or_before(0);
      lag.ran_out_lease = at_or_before(1);
      lag.ran_out_last_lease = at_or_before(2);
      lag.expired = at_or_before(3);
      lag.unexpired_moved_out = after(4);
    } else {
      lag.ran_out_lease = at_or_before(0);
      lag.unexpired_moved_out = after(1);
      lag.live_lease_moved_on = after(2) || after(3) || after(4);
    }
    return lag;
  }
};

// Stored states, as sql.hpp numbers them.
inline constexpr std::int64_t scheduled_state = 0;
inline constexpr std::int64_t available_state = 1;
inline constexpr std::int64_t leased_state = 2;
inline constexpr std::int64_t expired_state = 5;

// The schedule's orders at `now`, over the queues a call serves: those it names, or every
// queue, less the paused ones. Reads only; used by one call, on its own connection.
class JobOrder {
 public:
  JobOrder(ReadStatements& statements, double now, int default_max_attempts, const Lag& lag) noexcept
      : statements_(statements),
        now_(now),
        default_max_attempts_(default_max_attempts),
        lag_(lag) {}

  // The due, free job a claim takes: in claim order, from `queues`, or from every queue
  // when null.
  std::optional<Candidate> first_claimable(const std::vector<std::string>* queues) {
    std::optional<Candidate> best;
    auto keep = [&](const std::optional<Candidate>& found) {
      if (found && (!best || claimed_before(*found, *best)))
        best = found;
    };
    std::vector<Candidate> unpaused;
    if (queues == nullptr && !lag_.queues_paused) {
      Run run(statements_.first_available);
      bind_now(run);
      if (run.step())
        keep(Candidate{run.column_int64(0), static_cast<int>(run.column_int64(1)),
                       run.column_double(2)});
    } else if (queues == nullptr && available_unpaused(1, unpaused)) {
      if (!unpaused.empty())
        keep(unpaused.front());
    } else {
      for (const std::string& queue : *served(queues)) {
        Run run(statements_.first_available_in_queue);
        bind_now(run);
        run.bind_text(2, queue);
        if (run.step())
          keep(Candidate{run.column_int64(0), static_cast<int>(run.column_int64(1)),
                         run.column_double(2)});
      }
    }
    // Jobs that came due, or whose lease ran out, since the claims last moved them on.
    std::vector<std::int64_t> lagging = lagging_free_states();
    if (lag_.due_scheduled)
      lagging.push_back(scheduled_state);
    if (!lagging.empty() || lag_.unexpired_moved_out)
      queues = served(queues);
    for (const std::int64_t state : lagging) {
      for_each_queue(queues, [&](const std::string& queue) {
        keep(first_due_in_queue(queue, state, best));
      });
    }
    if (lag_.unexpired_moved_out) {
      for_each_unexpired_moved_out(queues, [&](const Candidate& found) {
        if (found.at <= now_)
          keep(found);
      });
    }
    return best;
  }

  // The first `limit` due free jobs in claim order, from `queues` or from every queue, when
  // no state lags (then every one is in the index of available jobs): what successive
  // first_claimable calls would find, claiming each, in one query per queue. Empty when a
  // state lags: the caller asks first_claimable once per job instead.
  std::vector<Candidate> first_claimable_batch(const std::vector<std::string>* queues,
                                               std::size_t limit) {
    std::vector<Candidate> batch;
    if (lag_.due_scheduled || lag_.ran_out_lease || lag_.unexpired_moved_out)
      return batch;
    if (queues == nullptr && lag_.queues_paused) {
      if (available_unpaused(limit, batch))
        return batch;
      batch.clear();
    }
    queues = served(queues);
    auto read = [&](const Statement& statement, const std::string* queue) {
      Run run(statement);
      bind_now(run);
      run.bind(2, static_cast<std::int64_t>(limit));
      if (queue != nullptr)
        run.bind_text(3, *queue);
      while (run.step())
        batch.push_back(Candidate{run.column_int64(0), static_cast<int>(run.column_int64(1)),
                                  run.column_double(2)});
    };
    if (queues == nullptr) {
      read(statements_.available_in_claim_order, nullptr);
      return batch;
    }
    for (const std::string& queue : *queues)
      read(statements_.available_in_queue_in_claim_order, &queue);
    std::sort(batch.begin(), batch.end(), claimed_before);
    // A queue named twice gives its jobs twice.
    batch.erase(std::unique(batch.begin(), batch.end(),
                            [](const Candidate& a, const Candidate& b) { return a.id == b.id; }),
                batch.end());
    if (batch.size() > limit)
      batch.resize(limit);
    return batch;
  }

  // next_job's job: the pending free job with the earliest start (then the lowest id), due
  // or not, from `queues`, or from every queue when null.
  std::optional<Candidate> first_in_start_order(const std::vector<std::string>* queues) {
    queues = served(queues);
    std::optional<Candidate> next;
    std::vector<std::int64_t> states = lagging_free_states();
    states.push_back(scheduled_state);
    states.push_back(available_state);
    for (const std::int64_t state : states) {
      if (queues == nullptr) {
        Run run(statements_.first_in_start_order);
        bind_now(run);
        run.bind(2, state);
        if (run.step())
          keep_earliest(next, Candidate{run.column_int64(0), 0, run.column_double(1)});
        continue;
      }
      for (const std::string& queue : *queues) {
        for_each_priority(queue, state, [&](int priority) {
          Run run(statements_.first_free_in_level);
          bind_now(run);
          run.bind_text(2, queue).bind(3, std::int64_t{priority}).bind(4, state);
          if (run.step())
            keep_earliest(next, Candidate{run.column_int64(0), 0, run.column_double(1)});
          return false;
        });
      }
    }
    if (lag_.unexpired_moved_out) {
      for_each_unexpired_moved_out(queues, [&](const Candidate& found) {
        keep_earliest(next, Candidate{found.id, 0, found.at});
      });
    }
    return next;
  }

  // The job that can be claimed first, in due order: next_job's job when one is due, else
  // the first to become free, at its start or at the end of the lease that holds it; from
  // `queues`, or from every queue when null.
  std::optional<Candidate> first_due(const std::vector<std::string>* queues) {
    queues = served(queues);
    std::optional<Candidate> next = first_in_start_order(queues);
    if (queues == nullptr) {
      keep_first_freed_by_lease(nullptr, next);
    } else {
      for (const std::string& queue : *queues)
        keep_first_freed_by_lease(&queue, next);
    }
    return next;
  }

 private:
  // Not a priority level: an int64 outside int's range.
  static constexpr std::int64_t no_level = std::numeric_limits<std::int64_t>::max();

  // How many due jobs of paused queues a claim from every queue passes over in the index of
  // available jobs before it reads the served queues one by one instead.
  static constexpr std::size_t paused_passed_over = 64;

  // The first `limit` available jobs of queues not paused, in claim order, into `found`,
  // from the index of every queue's: true unless more than paused_passed_over of paused
  // queues came first (then `found` is incomplete, and the caller reads queue by queue).
  bool available_unpaused(std::size_t limit, std::vector<Candidate>& found) {
    const std::vector<std::string>& paused = paused_queues();
    const std::size_t asked = limit + paused_passed_over;
    std::size_t read = 0;
    Run run(statements_.available_with_queue_in_claim_order);
    bind_now(run);
    run.bind(2, static_cast<std::int64_t>(asked));
    while (found.size() < limit && run.step()) {
      ++read;
      if (!std::binary_search(paused.begin(), paused.end(), std::string(run.column_text(3))))
        found.push_back(Candidate{run.column_int64(0), static_cast<int>(run.column_int64(1)),
                                  run.column_double(2)});
    }
    return found.size() == limit || read < asked;
  }

  // The paused queues, by name, read once per order.
  const std::vector<std::string>& paused_queues() {
    if (!paused_known_) {
      Run run(statements_.paused_queues);
      while (run.step())
        paused_.emplace_back(run.column_text(0));
      paused_known_ = true;
    }
    return paused_;
  }

  // The queues a call serves: `queues` (every queue when null) less the paused ones, listed
  // once per list of queues asked for while any queue is paused (every queue with open jobs
  // is then a probe).
  const std::vector<std::string>* served(const std::vector<std::string>* queues) {
    if (!lag_.queues_paused || queues == &served_)
      return queues;
    const bool all = queues == nullptr;
    if (!served_known_ || served_for_all_ != all || (!all && served_for_ != *queues)) {
      served_.clear();
      served_for_all_ = all;
      if (all)
        served_for_.clear();
      else
        served_for_ = *queues;
      const std::vector<std::string>& paused = paused_queues();
      auto serve = [&](const std::string& queue) {
        if (!std::binary_search(paused.begin(), paused.end(), queue))
          served_.push_back(queue);
      };
      if (queues != nullptr) {
        std::for_each(queues->begin(), queues->end(), serve);
      } else {
        for_each_stored_queue(serve);
      }
      served_known_ = true;
    }
    return &served_;
  }

  void bind_now(Run& run) const {
    run.bind(1, now_);
    if (run.parameter_count() >= sql::default_max_attempts)
      run.bind(sql::default_max_attempts, std::int64_t{default_max_attempts_});
  }

  // Leases with attempts left that ran out: their jobs are free at `now` but still where
  // held jobs are.
  std::vector<std::int64_t> lagging_free_states() const {
    std::vector<std::int64_t> states;
    if (lag_.ran_out_lease)
      states.push_back(leased_state);
    return states;
  }

  // Calls `visit(queue)` with each of `queues`, or with every queue that has open jobs.
  template <class Visit>
  void for_each_queue(const std::vector<std::string>* queues, Visit visit) {
    if (queues != nullptr) {
      for (const std::string& queue : *queues)
        visit(queue);
    } else {
      for_each_stored_queue(visit);
    }
  }

  // The first due free job of `queue` in state `state`, in claim order: the first level that
  // has one, stopping at the level of `bound` (a job found already) when that comes first.
  std::optional<Candidate> first_due_in_queue(const std::string& queue, std::int64_t state,
                                              const std::optional<Candidate>& bound) {
    std::optional<Candidate> found;
    for_each_priority(queue, state, [&](int priority) {
      if (bound && priority < bound->priority)
        return true;
      Run run(statements_.first_due_in_level);
      bind_now(run);
      run.bind_text(2, queue).bind(3, std::int64_t{priority}).bind(4, state);
      if (run.step())
        found = Candidate{run.column_int64(0), priority, run.column_double(1)};
      return found.has_value();
    });
    return found;
  }

  // Calls `visit` with each free job moved out as expired but not expired at `now` (the
  // clock was set back), in `queues` or in any queue.
  template <class Visit>
  void for_each_unexpired_moved_out(const std::vector<std::string>* queues, Visit visit) {
    auto scan = [&](const std::string* queue) {
      Run run(statements_.unexpired_moved_out);
      bind_now(run);
      if (queue != nullptr) {
        run.bind_text(2, *queue);
      } else {
        run.bind_null(2);
      }
      while (run.step())
        visit(Candidate{run.column_int64(0), static_cast<int>(run.column_int64(1)),
                        run.column_double(2)});
    };
    if (queues == nullptr) {
      scan(nullptr);
    } else {
      for (const std::string& queue : *queues)
        scan(&queue);
    }
  }

  // Keeps in `best` the held job (in `queue`, or in any queue when null) that its lease
  // frees first, dated by the later of its lease end and its start, if it comes before.
  // Leases come in order of their end, then id, so the walk stops at the first lease that
  // cannot come before `best`: one row, unless leases were moved back before their job's
  // start.
  void keep_first_freed_by_lease(const std::string* queue, std::optional<Candidate>& best) {
    keep_first_freed_by_lease(queue, leased_state, best);
    if (lag_.live_lease_moved_on) {
      for (const std::int64_t state : {scheduled_state, available_state, expired_state})
        keep_first_freed_by_lease(queue, state, best);
    }
  }

  void keep_first_freed_by_lease(const std::string* queue, std::int64_t state,
                                 std::optional<Candidate>& best) {
    Run run(statements_.live_leases);
    bind_now(run);
    if (queue != nullptr) {
      run.bind_text(2, *queue);
    } else {
      run.bind_null(2);
    }
    run.bind(3, state);
    while (run.step()) {
      const std::int64_t id = run.column_int64(0);
      const double lease_until = run.column_double(2);
      if (best && (lease_until > best->at || (lease_until == best->at && id > best->id)))
        break;
      keep_earliest(best, Candidate{id, 0, std::max(run.column_double(1), lease_until)});
    }
  }

  // Calls `visit(queue)` with each queue that has open jobs, in order: one probe per queue.
  template <class Visit>
  void for_each_stored_queue(Visit visit) {
    std::string from;
    for (;;) {
      std::string queue;
      {
        Run run(statements_.next_queue);
        run.bind_text(2, from);
        if (!run.step())
          return;
        // Only TEXT moves the scan forward; a BLOB sorts after every text and would repeat.
        if (run.column_type(0) != SQLITE_TEXT)
          throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a job's queue is not text");
        queue = std::string(run.column_text(0));
      }
      visit(queue);
      from = queue + '\0';  // the smallest string after `queue`
    }
  }

  // Calls `visit(priority)` with each priority level of jobs in `state` in `queue`, highest
  // first, until it returns true.
  template <class Visit>
  void for_each_priority(const std::string& queue, std::int64_t state, Visit visit) {
    std::int64_t at_most = std::numeric_limits<int>::max();
    for (;;) {
      int priority = 0;
      {
        Run run(statements_.next_priority);
        run.bind_text(2, queue).bind(3, at_most).bind(4, state);
        if (!run.step())
          return;
        priority = checked_priority(run, 0, at_most);
      }
      if (visit(priority))
        return;
      at_most = std::int64_t{priority} - 1;
    }
  }

  // A priority level read from an index: each level must be below the last, or the
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
  Lag lag_;
  std::vector<std::string> served_;
  std::vector<std::string> served_for_;  // the queues served_ was made for, unless all
  bool served_for_all_ = false;          // served_ was made for every queue
  bool served_known_ = false;
  std::vector<std::string> paused_;
  bool paused_known_ = false;
};

}  // namespace jobsched::detail
