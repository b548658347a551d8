// SPDX-License-Identifier: MIT
#pragma once

// Scheduler::stats: counts by queue and stored state (the file's kept counts, detail/
// counts.hpp, when it keeps them; else a walk of the indexes), corrected for the states that
// lag as count_pending_jobs corrects them (detail/sql.hpp, "Listing and stats"), and each
// queue's oldest due job, from the schedule's start order (detail/job_order.hpp), in one read
// transaction.

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "../job_state.hpp"
#include "../stats.hpp"
#include "counts.hpp"
#include "job_order.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "statements.hpp"

namespace jobsched::detail {

// The statements of stats, prepared on first use. `views`: the job table is a view.
struct StatsStatements {
  StatsStatements(sqlite3* db, bool views)
      : count_open_jobs(db, prepared(sql::count_open_jobs, views)),
        count_lagging_jobs(db, prepared(sql::count_lagging_jobs, views)),
        count_completed_jobs(db, prepared(sql::count_completed_jobs, views)),
        count_failed_jobs(db, prepared(sql::count_failed_jobs, views)),
        count_schedules(db, prepared(sql::count_schedules, views)),
        counts_kept(db, sql::counts_kept),
        db_(db) {}

  // The kept counts' statement, prepared on first use (there is no job_count table before).
  const Statement& read_kept_counts() {
    if (!read_kept_counts_)
      read_kept_counts_.emplace(db_, sql::read_kept_counts);
    return *read_kept_counts_;
  }

  Statement count_open_jobs, count_lagging_jobs, count_completed_jobs, count_failed_jobs,
      count_schedules, counts_kept;

 private:
  sqlite3* db_;
  std::optional<Statement> read_kept_counts_;
};

inline StatsStatements& stats_statements(std::optional<StatsStatements>& slot, sqlite3* db,
                                         bool views) {
  if (!slot)
    slot.emplace(db, views);
  return *slot;
}

// The state a job in stored state 0 to 5 is in when its state does not lag.
inline JobState state_when_stored(std::int64_t stored) noexcept {
  switch (stored) {
    case 0:
      return JobState::scheduled;
    case 1:
      return JobState::available;
    case 5:
      return JobState::expired;
    default:
      return JobState::running;
  }
}

inline JobState job_state_number(std::int64_t number) {
  if (number < 0 || number >= static_cast<std::int64_t>(all_job_states.size()))
    throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a job's state is not one of ours");
  return all_job_states[static_cast<std::size_t>(number)];
}

inline std::string queue_text(const Run& run, int column) {
  if (run.column_type(column) != SQLITE_TEXT)
    throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a job's queue is not text");
  return std::string(run.column_text(column));
}

// The stats at `at`, inside the caller's read transaction.
inline Stats read_stats(StatsStatements& statements, ReadStatements& reads, double at,
                        int default_max_attempts, int schema_version) {
  std::map<std::string, JobCounts> counts;
  auto bind = [&](Run& run) {
    if (run.parameter_count() >= 1)
      run.bind(1, at);
    if (run.parameter_count() >= sql::default_max_attempts)
      run.bind(sql::default_max_attempts, std::int64_t{default_max_attempts});
  };
  // The jobs by queue and stored state: kept by the file, or counted here.
  const bool kept = counts_kept(statements.counts_kept);
  if (kept) {
    Run run(statements.read_kept_counts());
    while (run.step()) {
      JobCounts& queue = counts[queue_text(run, 0)];
      const std::int64_t kind = run.column_int64(1);
      const std::int64_t jobs = run.column_int64(2);
      if (kind == 6) {
        queue.completed += jobs;
      } else if (kind == 7) {
        queue.failed += jobs;
      } else if (kind == 8) {
        queue.cancelled += jobs;
      } else if (kind >= 0 && kind <= 5) {
        queue[state_when_stored(kind)] += jobs;
      } else {
        throw_code(SQLITE_CORRUPT, std::string(message_prefix) + "a kept count's kind is not one of ours");
      }
    }
  } else {
    Run run(statements.count_open_jobs);
    while (run.step())
      counts[queue_text(run, 0)][state_when_stored(run.column_int64(1))] += run.column_int64(2);
  }
  {
    Run run(statements.count_lagging_jobs);
    bind(run);
    while (run.step()) {
      JobCounts& queue = counts[queue_text(run, 0)];
      const std::int64_t jobs = run.column_int64(3);
      queue[state_when_stored(run.column_int64(1))] -= jobs;
      queue[job_state_number(run.column_int64(2))] += jobs;
    }
  }
  if (!kept) {
    Run run(statements.count_completed_jobs);
    while (run.step())
      counts[queue_text(run, 0)].completed += run.column_int64(1);
  }
  if (!kept) {
    Run run(statements.count_failed_jobs);
    while (run.step()) {
      JobCounts& queue = counts[queue_text(run, 0)];
      (run.column_int64(1) != 0 ? queue.cancelled : queue.failed) += run.column_int64(2);
    }
  }
  Stats stats;
  stats.at = from_unix_seconds(at);
  stats.schema_version = schema_version;
  {
    Run run(statements.count_schedules);
    if (run.step())
      stats.schedules = run.column_int64(0);
  }
  // The oldest due job: the first free job in start order, when it is due, whether or not
  // its queue is paused (a paused queue's jobs grow late too).
  Lag lag = LagTimes::read(reads.lagging_for_reads, false).at(at);
  lag.queues_paused = false;
  JobOrder order(reads, at, default_max_attempts, lag);
  auto oldest_due = [&](const std::vector<std::string>* queues) -> std::optional<Seconds> {
    const std::optional<Candidate> first = order.first_in_start_order(queues);
    if (!first || first->at > at)
      return std::nullopt;
    return Seconds{at - first->at};
  };
  stats.oldest_due = oldest_due(nullptr);
  for (const auto& [name, jobs] : counts) {
    QueueStats queue{name, jobs, std::nullopt};
    if (jobs.available > 0) {
      const std::vector<std::string> one{name};
      queue.oldest_due = oldest_due(&one);
    }
    for (const JobState state : all_job_states)
      stats.totals[state] += jobs[state];
    stats.queues.push_back(std::move(queue));
  }
  return stats;
}

}  // namespace jobsched::detail
