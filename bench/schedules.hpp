// SPDX-License-Identifier: MIT
#pragma once

// What a recurring schedule's firing costs, and what schedules cost the calls that do not
// fire (issue 11: a firing's cost must not grow with the schedules or jobs stored).
//
// The files: N ordinary jobs, all due (they started in the hour before `now`, none
// expires), and S schedules put through the library at `now`: schedule i fires every S
// seconds from now + i, so that exactly one schedule fires at each whole second after
// `now`. Their jobs run at priority 1, so a claim at a firing takes the firing's job.
//
// The work, each measured on a file of S schedules and N jobs:
//   firing         one firing falls due and is run: at now + k (k = 1, 2, ...) claim_next_job,
//                  which makes the schedule's next firing in its own transaction (it reads
//                  the due schedule, parses its rule, inserts the next job and its payload,
//                  updates the schedule's row) and claims the due one, then complete.
//   claim          the baseline: the same claim and complete of an ordinary due job on the
//                  same file at now + 0.5 s, when no schedule is due.
//   next_job, seconds_until
//                  the reads at now + 0.5 s (nothing to make).
// A firing's own cost is firing minus claim on the same file; what schedules add to the
// calls that do not fire is claim, next_job and seconds_until at 10,000 schedules against
// the same at 0.

#include "fixtures.hpp"
#include "operations.hpp"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace bench {

inline std::string schedule_name(long i) {
  char name[32];
  std::snprintf(name, sizeof name, "schedule-%05ld", i);
  return name;
}

// Fills a file of the current schema with n due jobs in their stored form (state 1,
// available), payloads in job_payload, in one transaction through the C API.
inline void fill_due_jobs(const Db& db, long n) {
  db.exec("BEGIN");
  const Stmt insert(db,
                    "INSERT INTO job (created_at, starts_at, state) VALUES (?1, ?2, 1)");
  const Stmt payload(db, "INSERT INTO job_payload (job_id, data) VALUES (?1, ?2)");
  const std::string data(32, 'x');
  for (long i = 0; i < n; ++i) {
    // Over the hour before now, not in id order (as stored_jobs).
    const double offset = 3600.0 * static_cast<double>((i * 7919) % n) / static_cast<double>(n);
    sqlite3_bind_double(insert.get(), 1, now_seconds - 86400.0);
    sqlite3_bind_double(insert.get(), 2, now_seconds - 3600.0 + offset);
    insert.step();
    insert.reset();
    sqlite3_bind_int64(payload.get(), 1, sqlite3_last_insert_rowid(db.get()));
    sqlite3_bind_blob(payload.get(), 2, data.data(), static_cast<int>(data.size()), SQLITE_STATIC);
    payload.step();
    payload.reset();
  }
  db.exec("COMMIT");
}

// The kept file of `schedules` schedules and `jobs` due jobs, built on first use: the file
// of 0 schedules first, then a copy of it with the schedules put. Named by the schema
// version this build writes (as stored_jobs).
inline std::filesystem::path stored_schedules(long schedules, long jobs) {
  const std::filesystem::path path =
      data_dir() / ("schedules-v" + std::to_string(jobsched::current_schema_version) + "-" +
                    std::to_string(schedules) + "-" + std::to_string(jobs) + ".db");
  if (std::filesystem::exists(path))
    return path;
  const std::filesystem::path partial = path.string() + ".partial";
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(partial.string() + suffix);
  if (schedules == 0) {
    jobsched::Scheduler::open(partial.string());  // creates the current schema
    const Db db(partial);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = OFF");
    fill_due_jobs(db, jobs);
  } else {
    std::filesystem::copy_file(stored_schedules(0, jobs), partial);
    auto scheduler = jobsched::Scheduler::open(partial.string(), scheduler_options(false));
    jobsched::ScheduleOptions options;
    options.priority = 1;
    options.data = jobsched::Payload(std::string(32, 's'));
    for (long i = 0; i < schedules; ++i) {
      scheduler.put_schedule(
          schedule_name(i),
          jobsched::Rule::every(jobsched::Seconds{static_cast<double>(schedules)},
                                jobsched::from_unix_seconds(now_seconds + static_cast<double>(i))),
          options, now);
    }
  }
  Db(partial).exec("PRAGMA wal_checkpoint(TRUNCATE)");
  std::filesystem::remove(partial.string() + "-wal");
  std::filesystem::remove(partial.string() + "-shm");
  std::filesystem::rename(partial, path);
  return path;
}

// A scheduler on the kept file (reads) or on a private copy of it (writes), synchronous
// NORMAL as claim_complete in operations.hpp.
struct OnSchedules {
  OnSchedules(long schedules, long jobs, bool writes)
      : path(stored_schedules(schedules, jobs)),
        copy(writes ? std::make_unique<CopyOf>(path) : nullptr),
        scheduler(jobsched::Scheduler::open((copy ? copy->path : path).string(),
                                            scheduler_options(false))) {}
  // A copy of a kept file, deleted on scope exit.
  struct CopyOf {
    explicit CopyOf(const std::filesystem::path& from)
        : path(data_dir() / ("work-" + from.stem().string() + "-" +
                             std::to_string(::getpid()) + ".db")) {
      remove_all();
      std::filesystem::copy_file(from, path);
    }
    CopyOf(const CopyOf&) = delete;
    CopyOf& operator=(const CopyOf&) = delete;
    ~CopyOf() { remove_all(); }
    void remove_all() const noexcept {
      std::error_code ignored;
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix, ignored);
    }
    std::filesystem::path path;
  };
  std::filesystem::path path;
  std::unique_ptr<CopyOf> copy;
  jobsched::Scheduler scheduler;
};

// Half a second after now: the first firing is at now + 1 s, so none is due.
inline const jobsched::TimePoint between_firings = now + jobsched::Seconds{0.5};

// One firing due and run per call, at now + 1 s, + 2 s, ...
inline Operation firing(long schedules, long jobs) {
  struct State : OnSchedules {
    State(long s, long n) : OnSchedules(s, n, true) {}
    long second = 0;
  };
  auto state = std::make_shared<State>(schedules, jobs);
  return [state] {
    const jobsched::TimePoint at = now + jobsched::Seconds{static_cast<double>(++state->second)};
    jobsched::Scheduler& scheduler = state->scheduler;
    auto claimed = scheduler.claim_next_job(jobsched::Seconds{60}, at);
    expect(claimed && claimed->job.firing && claimed->job.firing->at == at,
           "the due firing was not claimed");
    expect(scheduler.complete(claimed->claim, at), "the firing's job was not completed");
  };
}

// The baseline: an ordinary due job claimed and completed, no schedule due.
inline Operation claim_between_firings(long schedules, long jobs) {
  auto state = std::make_shared<OnSchedules>(schedules, jobs, true);
  return [state] {
    jobsched::Scheduler& scheduler = state->scheduler;
    auto claimed = scheduler.claim_next_job(jobsched::Seconds{60}, between_firings);
    expect(claimed && !claimed->job.firing, "no ordinary job claimed");
    expect(scheduler.complete(claimed->claim, between_firings), "the job was not completed");
  };
}

inline Operation next_job_between_firings(long schedules, long jobs) {
  auto state = std::make_shared<OnSchedules>(schedules, jobs, false);
  return [state] {
    const auto next = state->scheduler.next_job(between_firings);
    expect(next && !next->firing, "no ordinary next job");
  };
}

inline Operation seconds_until_between_firings(long schedules, long jobs) {
  auto state = std::make_shared<OnSchedules>(schedules, jobs, false);
  return [state] {
    const auto delay = state->scheduler.seconds_until_next_job(between_firings);
    expect(delay && delay->delay.count() == 0, "no due job");
  };
}

struct ScheduleWork {
  const char* name;  // WORK in WORK/SCHEDULES/JOBS
  bool writes;       // runs a fixed number of times on its own copy
  std::vector<long> schedules;
  std::function<Operation(long schedules, long jobs)> make;
};

inline std::vector<ScheduleWork> schedule_work() {
  return {
      {"firing", true, {1, 100, 10000}, firing},
      {"claim", true, {0, 1, 100, 10000}, claim_between_firings},
      {"next_job", false, {0, 10000}, next_job_between_firings},
      {"seconds_until", false, {0, 10000}, seconds_until_between_firings},
  };
}

}  // namespace bench
