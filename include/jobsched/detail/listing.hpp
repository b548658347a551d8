// SPDX-License-Identifier: MIT
#pragma once

// Scheduler::list_jobs. A state's jobs come from the stored states that may hold them at
// `now` (detail/sql.hpp, "Listing and stats"), each source read in its index's order past
// the cursor, at most one page and one job from each; the page is the first of their merge.

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../job.hpp"
#include "../job_state.hpp"
#include "../listing.hpp"
#include "job_row.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "statements.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// A place in a listing's order: the group (running jobs: leases, then locks), the time, the
// id.
struct ListPosition {
  int group = 0;
  double key = 0.0;
  std::int64_t id = 0;
};

inline bool listed_before(const ListPosition& a, const ListPosition& b) noexcept {
  if (a.group != b.group)
    return a.group < b.group;
  if (a.key != b.key)
    return a.key < b.key;
  return a.id < b.id;
}

// One source of a state's jobs: its statements (an index into listing_sources), its group,
// and how its time is bounded by now: -1 at or before, +1 after, 0 not.
struct ListSource {
  std::size_t keyset;
  int group;
  int bound = 0;
};

inline constexpr const sql::Keyset* listing_sources[] = {
    &sql::list_available,          &sql::list_came_due,
    &sql::list_due_lease_ran_out,  &sql::list_due_moved_out,
    &sql::list_scheduled,          &sql::list_set_back,
    &sql::list_scheduled_lease_ran_out, &sql::list_scheduled_moved_out,
    &sql::list_leased,             &sql::list_leased_last,
    &sql::list_leased_scheduled,   &sql::list_leased_available,
    &sql::list_leased_moved_out,   &sql::list_locked,
    &sql::list_completed,          &sql::list_failed,
    &sql::list_abandoned,          &sql::list_cancelled,
    &sql::list_expired,            &sql::list_expired_in_place,
    &sql::list_all,
};
inline constexpr std::size_t listing_source_count =
    sizeof listing_sources / sizeof listing_sources[0];

// The sources of a state's jobs (every job when empty).
inline std::vector<ListSource> sources_of(const std::optional<JobState>& state) {
  if (!state)
    return {{20, 0}};
  switch (*state) {
    case JobState::available:
      return {{0, 0, -1}, {1, 0, -1}, {2, 0, -1}, {3, 0, -1}};
    case JobState::scheduled:
      return {{4, 0, 1}, {5, 0, 1}, {6, 0, 1}, {7, 0, 1}};
    case JobState::running:
      return {{8, 0, 1}, {9, 0, 1}, {10, 0, 1}, {11, 0, 1}, {12, 0, 1}, {13, 1}};
    case JobState::completed:
      return {{14, 0}};
    case JobState::failed:
      return {{15, 0}, {16, 0, -1}};
    case JobState::cancelled:
      return {{17, 0}};
    case JobState::expired:
      // Moved out: from the top, since one that may not reopen stays expired beyond now.
      return {{18, 0}, {19, 0, -1}};
  }
  return {};
}

// The listing's statements, each prepared on first use (a Scheduler that never lists
// prepares none but the cursor's). `views`: the job table is a view (see show_as_current).
struct ListingStatements {
  ListingStatements(sqlite3* db_, bool views_)
      : db(db_), views(views_), cursor(db_, prepared(sql::select_list_cursor, views_)) {}

  // 0 ties and 1 after, ascending; 2 and 3 descending.
  const Statement& get(std::size_t keyset, std::size_t variant) {
    std::optional<Statement>& slot = statements[keyset][variant];
    if (!slot) {
      const sql::Keyset& sql = *listing_sources[keyset];
      const char* text[] = {sql.ties_ascending, sql.after_ascending, sql.ties_descending,
                            sql.after_descending};
      slot.emplace(db, prepared(text[variant], views));
    }
    return *slot;
  }

  sqlite3* db;
  bool views;
  Statement cursor;
  std::array<std::array<std::optional<Statement>, 4>, listing_source_count> statements;
};

inline ListingStatements& listing_statements(std::optional<ListingStatements>& slot,
                                             sqlite3* db, bool views) {
  if (!slot)
    slot.emplace(db, views);
  return *slot;
}

inline std::string listed_state_name(const std::optional<JobState>& state) {
  return state ? std::string(to_string(*state)) + " jobs" : std::string("jobs");
}

// The cursor job's place in the order of `state`'s listing. InvalidArgumentError when there
// is no such job, or it has none (it left the state: the caller lists from the start).
inline ListPosition cursor_position(ListingStatements& statements,
                                    const std::optional<JobState>& state, std::int64_t id) {
  Run run(statements.cursor);
  run.bind(2, id);
  if (!run.step())
    throw_invalid("JobQuery::after names job " + std::to_string(id) + ", which does not exist");
  auto time = [&](int column) -> std::optional<double> {
    if (run.column_type(column) == SQLITE_NULL)
      return std::nullopt;
    return run.column_double(column);
  };
  const std::int64_t stored_state = run.column_int64(0);
  std::optional<double> key;
  int group = 0;
  if (!state) {
    return ListPosition{0, static_cast<double>(id), id};
  }
  switch (*state) {
    case JobState::scheduled:
    case JobState::available:
      key = time(1);
      break;
    case JobState::running:
      key = time(4);
      if (!key && time(5)) {
        key = time(1);
        group = 1;
      }
      break;
    case JobState::completed:
      key = time(2);
      break;
    case JobState::failed:
    case JobState::cancelled:
      key = time(3);
      if (!key && stored_state == 3)
        key = time(4);
      break;
    case JobState::expired:
      key = time(6);
      break;
  }
  if (!key) {
    throw_invalid("JobQuery::after names job " + std::to_string(id) +
                  ", which has no place among " + listed_state_name(state) +
                  " any more; list them again from the start");
  }
  return ListPosition{group, *key, id};
}

// Up to `wanted` jobs of `source` after `cursor` (from the start when empty), in order.
inline void read_source(ListingStatements& statements, const ListSource& source,
                        const JobQuery& query, double at, int default_max_attempts,
                        const std::optional<ListPosition>& cursor, std::int64_t wanted,
                        std::vector<ListPosition>& found) {
  const bool descending = query.order == ListOrder::newest_first;
  const double infinity = std::numeric_limits<double>::infinity();
  std::optional<ListPosition> from = cursor;
  if (from && from->group != source.group) {
    // A cursor in a group before this source's (in the listing's direction) starts it at its
    // beginning; one after it leaves nothing.
    if ((from->group < source.group) != descending)
      from.reset();
    else
      return;
  }
  // Where now bounds the time on the cursor's side, the index is read from the nearer of the
  // two (the statement filters by now there): from now when the cursor is beyond it (every
  // job of the cursor's time is then beyond it too).
  std::optional<double> from_now;
  if (!descending && source.bound > 0 && (!from || from->key < at)) {
    from_now = at;
  } else if (descending && source.bound < 0 && (!from || from->key > at)) {
    from_now = std::nextafter(at, infinity);
  }
  if (from_now)
    from.reset();
  auto read = [&](std::size_t variant, bool ties) {
    Run run(statements.get(source.keyset, variant + (descending ? 2 : 0)));
    run.bind(1, at);
    if (run.parameter_count() >= sql::default_max_attempts)
      run.bind(sql::default_max_attempts, std::int64_t{default_max_attempts});
    if (query.queue) {
      run.bind_text(2, *query.queue);
    } else {
      run.bind_null(2);
    }
    if (from_now) {
      run.bind(3, *from_now);
    } else if (from) {
      run.bind(3, from->key);
    } else {
      run.bind(3, descending ? infinity : -infinity);
    }
    if (ties)
      run.bind(4, from->id);
    run.bind(5, wanted - static_cast<std::int64_t>(found.size()));
    while (run.step())
      found.push_back(ListPosition{source.group, run.column_double(1), run.column_int64(0)});
  };
  if (from)
    read(0, true);
  if (static_cast<std::int64_t>(found.size()) < wanted)
    read(1, false);
}

inline std::size_t checked_page_size(std::size_t limit) {
  if (limit < 1 || limit > max_page_size) {
    throw_invalid("JobQuery::limit must be 1 to " + std::to_string(max_page_size) + ", got " +
                  std::to_string(limit));
  }
  return limit;
}

// One page of the listing, inside the caller's read transaction.
inline JobPage list_jobs(ListingStatements& statements, ReadStatements& reads,
                         const JobQuery& query, double at, int default_max_attempts) {
  const std::size_t limit = checked_page_size(query.limit);
  std::optional<ListPosition> cursor;
  if (query.after)
    cursor = cursor_position(statements, query.state, *query.after);
  const auto wanted = static_cast<std::int64_t>(limit) + 1;
  std::vector<ListPosition> positions;
  for (const ListSource& source : sources_of(query.state)) {
    std::vector<ListPosition> found;
    read_source(statements, source, query, at, default_max_attempts, cursor, wanted, found);
    positions.insert(positions.end(), found.begin(), found.end());
  }
  const bool descending = query.order == ListOrder::newest_first;
  std::sort(positions.begin(), positions.end(),
            [descending](const ListPosition& a, const ListPosition& b) {
              return descending ? listed_before(b, a) : listed_before(a, b);
            });
  JobPage page;
  page.at = from_unix_seconds(at);
  if (positions.size() > limit) {
    positions.resize(limit);
    page.next_after = positions.back().id;
  }
  page.jobs.reserve(positions.size());
  for (const ListPosition& position : positions) {
    Run run(reads.select_job);
    run.bind(1, at);
    if (run.parameter_count() >= sql::default_max_attempts)
      run.bind(sql::default_max_attempts, std::int64_t{default_max_attempts});
    run.bind(2, position.id);
    if (run.step())
      page.jobs.push_back(read_job(run));
  }
  return page;
}

}  // namespace jobsched::detail
