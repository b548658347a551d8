// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "job.hpp"
#include "job_state.hpp"
#include "time.hpp"

namespace jobsched {

/// The direction of a listing, in the order of the time its state is about.
enum class ListOrder { oldest_first, newest_first };

/// How many jobs a page holds when JobQuery::limit is not set, and at most.
inline constexpr std::size_t default_page_size = 50;
inline constexpr std::size_t max_page_size = 1000;

/// Which jobs Scheduler::list_jobs lists, in which order, from where.
struct JobQuery {
  /// Only jobs in this state at `now`; empty: every job, by id.
  std::optional<JobState> state;
  /// Only jobs of this queue ("" is the default queue); empty: every queue.
  std::optional<std::string> queue;
  /// Oldest first (the default) or newest first, by the state's time.
  ListOrder order = ListOrder::oldest_first;
  /// Continue after this job (JobPage::next_after of the page before); empty: from the start.
  std::optional<std::int64_t> after;
  /// At most this many jobs: 1 to max_page_size.
  std::size_t limit = default_page_size;
};

/// One page of a listing.
struct JobPage {
  /// The jobs, as get_job(id, at) returns them.
  std::vector<Job> jobs;
  /// The JobQuery::after of the next page; empty when this page is the last.
  std::optional<std::int64_t> next_after;
  /// The moment the states were read at (state_of(job, at) is each job's state).
  TimePoint at{};

  /// True when another page follows (next_after is set).
  bool has_more() const noexcept { return next_after.has_value(); }
};

}  // namespace jobsched
