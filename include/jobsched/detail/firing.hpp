// SPDX-License-Identifier: MIT
#pragma once

// Recurring schedules in the file. Each schedule's next firing is made ahead, as a job that
// starts at the fire time, so that next_job and seconds_until_next_job show it and workers
// claim it like any job. Once that firing is due, the schedule is due: the next write (a
// claim, an add) or next_job that meets it makes the firing after it, in one transaction
// with its own work, whatever process it runs in. Fire times only grow: a firing is made
// only after every firing made before it (made_through, then ahead_at), and the unique
// index on (schedule, fire_at) refuses a second job for one firing.

#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../error.hpp"
#include "../rule.hpp"
#include "../schedule.hpp"
#include "job_row.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "statements.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// The statements on schedules, prepared on first use. `writable`: with those that write.
struct ScheduleStatements {
  ScheduleStatements(sqlite3* db, bool writable)
      : select_schedule(db, sql::select_schedule), select_schedules(db, sql::select_schedules) {
    if (writable) {
      due_schedules = Statement(db, sql::due_schedules);
      insert_schedule = Statement(db, sql::insert_schedule);
      update_schedule = Statement(db, sql::update_schedule);
      set_firings = Statement(db, sql::set_schedule_firings);
      set_paused = Statement(db, sql::set_schedule_paused);
      set_error = Statement(db, sql::set_schedule_error);
      delete_schedule = Statement(db, sql::delete_schedule);
      insert_firing = Statement(db, sql::insert_firing);
      select_firing = Statement(db, sql::select_firing);
      withdraw_firing = Statement(db, sql::withdraw_firing);
    }
  }
  Statement select_schedule, select_schedules;
  // The rules read on this connection, by their stored text: parsing one costs more than
  // the rest of reading its schedule.
  std::unordered_map<std::string, Rule> rules;
  Statement due_schedules, insert_schedule, update_schedule, set_firings, set_paused,
      set_error, delete_schedule, insert_firing, select_firing, withdraw_firing;
};

// A schedule's row. `rule` is empty when the stored text is not a rule this build reads
// (`rule_error` says why).
struct StoredSchedule {
  std::string name;
  std::optional<Rule> rule;
  std::string rule_text;
  std::string rule_error;
  ScheduleOptions options;
  bool paused = false;
  std::optional<double> made_through;
  std::optional<double> ahead_at;
  std::optional<std::int64_t> ahead_job;

  // As the public Schedule; SchemaError when the stored rule cannot be read.
  Schedule to_schedule() const {
    if (!rule) {
      throw SchemaError(std::string(message_prefix) + "schedule '" + name +
                            "' has a rule this build cannot read ('" + rule_text +
                            "'): " + rule_error,
                        SQLITE_ERROR, SQLITE_ERROR, sql::select_schedule);
    }
    auto time = [](const std::optional<double>& seconds) -> std::optional<TimePoint> {
      if (!seconds)
        return std::nullopt;
      return from_unix_seconds(*seconds);
    };
    return Schedule{name, *rule, options, paused, time(ahead_at), time(made_through)};
  }
};

inline std::optional<double> column_optional_double(const Run& run, int column) {
  if (run.column_type(column) == SQLITE_NULL)
    return std::nullopt;
  return run.column_double(column);
}

// Reads the columns of JOBSCHED_SCHEDULE_COLUMNS (detail/sql.hpp), its rule through
// `rules` (see ScheduleStatements).
inline StoredSchedule read_schedule(const Run& run, std::unordered_map<std::string, Rule>& rules) {
  StoredSchedule stored;
  stored.name = std::string(run.column_text(0));
  stored.rule_text = std::string(run.column_text(1));
  const auto known = rules.find(stored.rule_text);
  if (known != rules.end()) {
    stored.rule = known->second;
  } else {
    try {
      stored.rule = Rule::parse(stored.rule_text);
      if (rules.size() >= 1024)
        rules.clear();
      rules.emplace(stored.rule_text, *stored.rule);
    } catch (const Error& error) {
      stored.rule_error = error.what();
    }
  }
  const std::int64_t misfire = run.column_int64(2);
  if (misfire < 0 || misfire > 2) {
    stored.rule.reset();
    stored.rule_error = "its misfire policy " + std::to_string(misfire) + " is unknown";
  }
  ScheduleOptions& options = stored.options;
  options.misfire = static_cast<Misfire>(std::clamp<std::int64_t>(misfire, 0, 2));
  options.catch_up_limit = static_cast<int>(run.column_int64(3));
  options.data = read_payload(run, 4);
  options.queue = std::string(run.column_text(5));
  options.priority = static_cast<int>(run.column_int64(6));
  if (run.column_type(7) != SQLITE_NULL)
    options.expires_after = Seconds{run.column_double(7)};
  if (run.column_type(8) != SQLITE_NULL)
    options.max_attempts = static_cast<int>(run.column_int64(8));
  if (run.column_type(9) != SQLITE_NULL)
    options.initial_backoff = Seconds{run.column_double(9)};
  if (run.column_type(10) != SQLITE_NULL)
    options.max_backoff = Seconds{run.column_double(10)};
  stored.paused = run.column_int64(11) != 0;
  stored.made_through = column_optional_double(run, 12);
  stored.ahead_at = column_optional_double(run, 13);
  if (run.column_type(14) != SQLITE_NULL)
    stored.ahead_job = run.column_int64(14);
  return stored;
}

inline bool same_options(const ScheduleOptions& a, const ScheduleOptions& b) noexcept {
  return a.data == b.data && a.priority == b.priority && a.queue == b.queue &&
         a.expires_after == b.expires_after && a.max_attempts == b.max_attempts &&
         a.initial_backoff == b.initial_backoff && a.max_backoff == b.max_backoff &&
         a.misfire == b.misfire && a.catch_up_limit == b.catch_up_limit;
}

inline void check_schedule_name(const std::string& name) {
  if (name.empty())
    throw_invalid("a schedule's name must not be empty");
  if (name.find('\0') != std::string::npos)
    throw_invalid("a schedule's name must not contain a NUL byte");
}

inline void check_schedule_options(const ScheduleOptions& options) {
  auto positive = [](const char* what, const std::optional<Seconds>& value, bool zero_ok) {
    if (!value)
      return;
    const double seconds = value->count();
    if (!std::isfinite(seconds) || seconds < 0 || (!zero_ok && seconds == 0)) {
      throw_invalid(std::string("ScheduleOptions::") + what + " must be a finite, " +
                    (zero_ok ? "non-negative" : "positive") + " duration, got " +
                    format_seconds(seconds) + " s");
    }
  };
  positive("expires_after", options.expires_after, false);
  positive("initial_backoff", options.initial_backoff, true);
  positive("max_backoff", options.max_backoff, true);
  if (options.max_attempts && *options.max_attempts < 1) {
    throw_invalid("ScheduleOptions::max_attempts must be at least 1, got " +
                  std::to_string(*options.max_attempts));
  }
  const auto misfire = static_cast<int>(options.misfire);
  if (misfire < 0 || misfire > 2)
    throw_invalid("ScheduleOptions::misfire is not a Misfire, got " + std::to_string(misfire));
  if (options.catch_up_limit < 1) {
    throw_invalid("ScheduleOptions::catch_up_limit must be at least 1, got " +
                  std::to_string(options.catch_up_limit));
  }
}

// The schedule named `name`, if any.
inline std::optional<StoredSchedule> find_schedule(ScheduleStatements& statements,
                                                   const std::string& name) {
  Run run(statements.select_schedule);
  run.bind_text(2, name);
  if (!run.step())
    return std::nullopt;
  return read_schedule(run, statements.rules);
}

// Every schedule, by name.
inline std::vector<Schedule> all_schedules(ScheduleStatements& statements) {
  std::vector<StoredSchedule> stored;
  {
    Run run(statements.select_schedules);
    while (run.step())
      stored.push_back(read_schedule(run, statements.rules));
  }
  std::vector<Schedule> schedules;
  schedules.reserve(stored.size());
  for (const StoredSchedule& schedule : stored)
    schedules.push_back(schedule.to_schedule());
  return schedules;
}

// Makes and keeps the firings of the schedules in one file, inside the caller's write
// transaction (for writes) or alone (for reads).
class Firings {
 public:
  Firings(sqlite3* db, ScheduleStatements& statements, WriteStatements& jobs)
      : db_(db), statements_(statements), jobs_(jobs) {}

  // Makes the firings after those due at `at`, for up to `limit` due schedules.
  void make_due(double at, std::size_t limit) {
    std::vector<StoredSchedule> due;
    {
      Run run(statements_.due_schedules);
      run.bind(1, at).bind(2, static_cast<std::int64_t>(std::max<std::size_t>(limit, 1)));
      while (run.step())
        due.push_back(read_schedule(run, statements_.rules));
    }
    for (const StoredSchedule& schedule : due)
      advance(schedule, at);
  }

  // A new schedule, with its first firing made ahead.
  void create(const std::string& name, const Rule& rule, const ScheduleOptions& options,
              double at) {
    const std::string text = rule.to_string();
    Run run(statements_.insert_schedule);
    run.bind(1, at);
    bind_definition(run, name, text, options);
    run.execute();
    StoredSchedule stored;
    stored.name = name;
    stored.rule = rule;
    stored.options = options;
    make_ahead(stored, std::nullopt, at);
  }

  // A new rule or new options for a schedule: its firing made ahead (not yet due and not
  // claimed) is taken back, and the next firing of the new definition made instead.
  void redefine(const StoredSchedule& stored_before, const Rule& rule,
                const ScheduleOptions& options, double at) {
    // Firings already due are made by the definition they fell due under.
    const StoredSchedule old = caught_up(stored_before, at);
    {
      const std::string text = rule.to_string();
      Run run(statements_.update_schedule);
      run.bind(1, at);
      bind_definition(run, old.name, text, options);
      run.execute();
    }
    if (old.paused)
      return;
    const std::optional<double> made = withdraw(old, at);
    StoredSchedule stored = old;
    stored.rule = rule;
    stored.options = options;
    make_ahead(stored, made, at);
  }

  void pause(const StoredSchedule& stored_before, double at) {
    // Firings due before the pause are made as if it came later.
    const StoredSchedule schedule = caught_up(stored_before, at);
    set_firings(schedule.name, withdraw(schedule, at), std::nullopt, std::nullopt);
    set_paused(schedule.name, true, at);
  }

  // Firings that fell due while paused are not made: the next one is after `at`.
  void resume(const StoredSchedule& schedule, double at) {
    set_paused(schedule.name, false, at);
    if (schedule.rule)
      make_ahead(schedule, schedule.made_through, at);
  }

  void remove(const StoredSchedule& schedule, double at) {
    withdraw(schedule, at);
    Run run(statements_.delete_schedule);
    run.bind_text(2, schedule.name);
    run.execute();
  }

 private:
  // `rule` is the rule's text, which must outlive the run (bound without a copy).
  static void bind_definition(Run& run, const std::string& name, const std::string& rule,
                              const ScheduleOptions& options) {
    run.bind_text(2, name).bind_text(3, rule);
    run.bind(4, std::int64_t{static_cast<int>(options.misfire)});
    run.bind(5, std::int64_t{options.catch_up_limit});
    bind_payload(run, 6, options.data);
    run.bind_text(7, options.queue).bind(8, std::int64_t{options.priority});
    bind_optional(run, 9, options.expires_after);
    bind_optional(run, 10, options.max_attempts);
    bind_optional(run, 11, options.initial_backoff);
    bind_optional(run, 12, options.max_backoff);
  }

  // The schedule after making the firings due at `at` (when its firing ahead is due).
  StoredSchedule caught_up(const StoredSchedule& schedule, double at) {
    if (schedule.paused || !schedule.rule || !schedule.ahead_at || *schedule.ahead_at > at)
      return schedule;
    advance(schedule, at);
    return *find_schedule(statements_, schedule.name);
  }

  // The firing made ahead is due: it counts as made, and the ones after it are made as the
  // misfire policy says, then the next one ahead.
  void advance(const StoredSchedule& schedule, double at) {
    if (!schedule.rule) {
      // Stopped, and said why; its jobs stay. Putting the schedule again starts it.
      Run run(statements_.set_error);
      run.bind(1, at).bind_text(2, schedule.name).bind_text(3, schedule.rule_error);
      run.execute();
      set_firings(schedule.name, schedule.ahead_at, std::nullopt, std::nullopt);
      return;
    }
    const Rule& rule = *schedule.rule;
    std::optional<double> made = schedule.ahead_at;
    if (schedule.options.misfire == Misfire::catch_up) {
      std::optional<TimePoint> fire = rule.next_after(from_unix_seconds(*made));
      for (int count = 0; fire && to_unix_seconds(*fire) <= at &&
                          count < schedule.options.catch_up_limit;
           ++count) {
        make_firing(schedule, to_unix_seconds(*fire), at);
        made = to_unix_seconds(*fire);
        fire = rule.next_after(*fire);
      }
    }
    make_ahead(schedule, made, at);
  }

  // Makes the first firing after both `at` and `made` (the latest made), and records it.
  void make_ahead(const StoredSchedule& schedule, std::optional<double> made, double at) {
    const double after = made ? std::max(at, *made) : at;
    const std::optional<TimePoint> next = schedule.rule->next_after(from_unix_seconds(after));
    std::optional<double> ahead;
    std::optional<std::int64_t> job;
    if (next) {
      ahead = to_unix_seconds(*next);
      job = make_firing(schedule, *ahead, at);
    }
    set_firings(schedule.name, made, ahead, job);
  }

  // The job of the firing at `fire`, made at `at`: it starts at the fire time, or now for a
  // firing made late; none when it would expire before it starts. Returns its id.
  std::optional<std::int64_t> make_firing(const StoredSchedule& schedule, double fire,
                                          double at) {
    const ScheduleOptions& options = schedule.options;
    const double starts = std::max(fire, at);
    std::optional<double> expires;
    if (options.expires_after)
      expires = fire + options.expires_after->count();
    if (options.misfire == Misfire::skip) {
      // Dropped once the next firing is due.
      const std::optional<TimePoint> next = schedule.rule->next_after(from_unix_seconds(fire));
      if (next)
        expires = std::min(expires.value_or(latest_time), to_unix_seconds(*next));
    }
    if (expires) {
      expires = std::min(*expires, latest_time);
      if (*expires <= starts)
        return std::nullopt;
    }
    {
      Run run(statements_.insert_firing);
      run.bind(1, at).bind_text(2, schedule.name).bind(3, fire).bind(4, starts);
      bind_optional(run, 5, expires);
      run.bind(6, std::int64_t{options.priority}).bind_text(7, options.queue);
      bind_optional(run, 8, options.max_attempts);
      bind_optional(run, 9, options.initial_backoff);
      bind_optional(run, 10, options.max_backoff);
      if (run.execute() == 0) {
        // A job for this firing exists already: it stays the only one.
        Run existing(statements_.select_firing);
        existing.bind_text(2, schedule.name).bind(3, fire);
        if (existing.step())
          return existing.column_int64(0);
        return std::nullopt;
      }
    }
    const std::int64_t id = sqlite3_last_insert_rowid(db_);
    Run run(jobs_.insert_payload);
    run.bind(2, id);
    bind_payload(run, 3, options.data);
    run.execute();
    return id;
  }

  // Takes back the firing made ahead when it is not due yet and nobody has taken it;
  // returns the latest firing that stays made.
  std::optional<double> withdraw(const StoredSchedule& schedule, double at) {
    if (!schedule.ahead_at)
      return schedule.made_through;
    if (*schedule.ahead_at > at && schedule.ahead_job) {
      Run run(statements_.withdraw_firing);
      run.bind(2, *schedule.ahead_job).bind_text(3, schedule.name);
      if (run.execute() > 0) {
        Run payload(jobs_.delete_payload);
        payload.bind(2, *schedule.ahead_job);
        payload.execute();
        return schedule.made_through;
      }
    }
    return schedule.made_through ? std::max(*schedule.made_through, *schedule.ahead_at)
                                 : *schedule.ahead_at;
  }

  void set_firings(const std::string& name, std::optional<double> made,
                   std::optional<double> ahead, std::optional<std::int64_t> job) {
    Run run(statements_.set_firings);
    run.bind_text(2, name);
    bind_optional(run, 3, made);
    bind_optional(run, 4, ahead);
    if (job) {
      run.bind(5, *job);
    } else {
      run.bind_null(5);
    }
    run.execute();
  }

  void set_paused(const std::string& name, bool paused, double at) {
    Run run(statements_.set_paused);
    run.bind(1, at).bind_text(2, name).bind(3, std::int64_t{paused ? 1 : 0});
    run.execute();
  }

  sqlite3* db_;
  ScheduleStatements& statements_;
  WriteStatements& jobs_;
};

}  // namespace jobsched::detail
