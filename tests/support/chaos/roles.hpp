// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the body of each child process (producer, rogue, plain worker threads, a
// jobsched::Worker), from the fork to its _exit().

#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "config.hpp"
#include "records.hpp"

namespace jobsched_chaos {

namespace detail {

/// The first thing every child does: die (SIGALRM) soon after the parent's time limit,
/// whatever happens.
inline void start_child(const Config& config) {
  ::alarm(static_cast<unsigned>(std::max<long long>(1, config.time_limit.count()) + 30));
}

inline void exit_if_orphaned(pid_t parent) {
  if (::getppid() != parent)
    ::_exit(4);
}

inline void pause_for(std::chrono::microseconds duration) {
  std::this_thread::sleep_for(duration);
}

/// The producer: adds jobs until the file holds Config::jobs ids, reporting each one after
/// add_job returned, then reports done and exits 0. Only one producer runs at a time and it
/// is the only writer of new rows, so ids are consecutive (AUTOINCREMENT, never reused).
[[noreturn]] inline void producer_main(const std::string& path, const Config& config, int out,
                                       std::uint64_t seed, pid_t parent) {
  start_child(config);
  std::mt19937_64 random(seed);
  try {
    auto scheduler = jobsched::Scheduler::open(path, scheduler_options(config));
    std::int64_t last = 0;
    {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(scheduler.handle(),
                             "SELECT seq FROM sqlite_sequence WHERE name = 'job'", -1, &stmt,
                             nullptr) != SQLITE_OK) {
        report_error(out, 0, -1, "producer: cannot read sqlite_sequence");
        ::_exit(1);
      }
      if (sqlite3_step(stmt) == SQLITE_ROW)
        last = sqlite3_column_int64(stmt, 0);
      sqlite3_finalize(stmt);
    }
    Record hello;
    hello.kind = kHello;
    hello.job_id = last;
    send_or_exit(out, hello);
    while (last < config.jobs) {
      exit_if_orphaned(parent);
      Record added;
      added.kind = kAdded;
      added.before = wall_now();
      const jobsched::Job job =
          scheduler.add_job(jobsched::Payload::integer(last + 1), new_job_options(random, config));
      added.after = wall_now();
      added.job_id = job.id;
      send_or_exit(out, added);
      if (job.id != last + 1) {
        report_error(out, 0, -1, "producer: ids are not consecutive");
        ::_exit(1);
      }
      last = job.id;
      pause_for(config.add_interval);
    }
    Record done;
    done.kind = kProducerDone;
    done.job_id = last;
    send_or_exit(out, done);
    ::_exit(0);
  } catch (const jobsched::Error& e) {
    report_error(out, 0, e.extended_code(), e.what());
  } catch (const std::exception& e) {
    report_error(out, 0, -1, e.what());
  }
  ::_exit(1);
}

/// The rogue (the harness's own test): deletes `deletes` random rows at random moments,
/// reporting each id, then exits 0.
[[noreturn]] inline void rogue_main(const std::string& path, const Config& config, int out,
                                    std::uint64_t seed, pid_t parent, int deletes) {
  start_child(config);
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> wait_ms(100, 500);
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    report_error(out, 0, -1, "rogue: cannot open the file");
    ::_exit(1);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "DELETE FROM job WHERE id = (SELECT id FROM job ORDER BY random() "
                         "LIMIT 1) RETURNING id",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    report_error(out, 0, sqlite3_extended_errcode(db), sqlite3_errmsg(db));
    ::_exit(1);
  }
  for (int done = 0; done < deletes;) {  // until killed by alarm() at the latest
    exit_if_orphaned(parent);
    std::this_thread::sleep_for(std::chrono::milliseconds{wait_ms(random)});
    Record deleted;
    deleted.kind = kDeleted;
    deleted.before = wall_now();
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      deleted.job_id = sqlite3_column_int64(stmt, 0);
      rc = sqlite3_step(stmt);
    }
    sqlite3_reset(stmt);
    deleted.after = wall_now();
    if (rc != SQLITE_DONE) {
      report_error(out, 0, sqlite3_extended_errcode(db), sqlite3_errmsg(db));
      ::_exit(1);
    }
    if (deleted.job_id != 0) {  // else the table was empty: try again
      send_or_exit(out, deleted);
      ++done;
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close_v2(db);
  ::_exit(0);
}

/// One thread of a plain worker process: claim, report, act on the claim, report; forever.
inline void plain_thread(const std::string& path, const Config& config, int out, std::uint64_t seed,
                         bool skewed, int thread, pid_t parent) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<long> work_us(0, static_cast<long>(config.max_work.count()));
  std::uniform_int_distribution<int> per_mille(0, 999);
  std::uniform_int_distribution<long> overshoot_us(0, 1000);
  const std::vector<std::string> queues{"", "mail"};
  const auto lease_part = [&](double share) {
    return std::chrono::duration_cast<std::chrono::microseconds>(config.lease * share);
  };
  std::optional<jobsched::Scheduler> scheduler;
  for (;;) {
    exit_if_orphaned(parent);
    try {
      if (!scheduler)
        scheduler.emplace(jobsched::Scheduler::open(path, scheduler_options(config)));
      Record claim;
      claim.kind = kClaim;
      claim.thread = thread;
      const std::optional<jobsched::TimePoint> now =
          skewed ? std::optional<jobsched::TimePoint>(jobsched::system_now() + config.claim_skew)
                 : std::nullopt;
      claim.before = wall_now();
      std::optional<jobsched::ClaimedJob> claimed =
          thread % 2 == 0 ? scheduler->claim_next_job(config.lease, now)
                          : scheduler->claim_next_job(config.lease, queues, now);
      claim.after = wall_now();
      if (!claimed) {
        pause_for(config.idle_pause);
        continue;
      }
      jobsched::Claim& held = claimed->claim;
      claim.job_id = held.job_id;
      claim.token = held.token;
      claim.at = jobsched::to_unix_seconds(claimed->job.locked_at.value_or(jobsched::TimePoint{}));
      claim.lease_until = jobsched::to_unix_seconds(held.lease_until);
      claim.attempt = claimed->job.attempts;
      claim.max_attempts = claimed->job.max_attempts.value_or(config.max_attempts);
      send_or_exit(out, claim);

      // Reports the intent, makes the call with `now` = its `before`, reports the result;
      // false when it threw (the claim is then left to its lease).
      auto call = [&](Action action, auto body) {
        Record record;
        record.kind = kIntent;
        record.action = action;
        record.thread = thread;
        record.job_id = held.job_id;
        record.token = held.token;
        record.before = wall_now();
        record.at = record.before;
        send_or_exit(out, record);
        record.kind = kResult;
        try {
          record.accepted = body(jobsched::from_unix_seconds(record.at)) ? 1 : 0;
        } catch (const jobsched::Error& e) {
          record.accepted = -1;
          record.after = wall_now();
          send_or_exit(out, record);
          report_error(out, thread, e.extended_code(), e.what());
          return false;
        }
        record.after = wall_now();
        record.lease_until = jobsched::to_unix_seconds(held.lease_until);
        send_or_exit(out, record);
        return true;
      };
      auto complete = [&] {
        return call(kComplete,
                    [&](jobsched::TimePoint at) { return scheduler->complete(held, at); });
      };
      auto extend = [&](jobsched::Seconds lease) {
        return call(kExtend,
                    [&](jobsched::TimePoint at) { return scheduler->extend(held, lease, at); });
      };

      // On a last attempt, go slow more often: a late call must be refused there.
      const bool last_attempt = claim.attempt >= claim.max_attempts;
      const int choice =
          last_attempt && per_mille(random) < config.slow_last_attempt_per_mille
              ? config.fail_per_mille + config.release_per_mille + config.heartbeat_per_mille
              : per_mille(random);
      int bound = config.fail_per_mille;
      if (choice < bound) {
        pause_for(std::chrono::microseconds{work_us(random)});
        const std::string error = "chaos: attempt " + std::to_string(claim.attempt) + " failed";
        call(kFail, [&](jobsched::TimePoint at) { return scheduler->fail(held, error, at); });
      } else if (choice < (bound += config.release_per_mille)) {
        pause_for(std::chrono::microseconds{work_us(random)});
        call(kRelease, [&](jobsched::TimePoint) { return scheduler->release(held); });
      } else if (choice < (bound += config.heartbeat_per_mille)) {
        pause_for(lease_part(0.4));
        if (extend(per_mille(random) < 500 ? config.lease / 4.0 : config.lease)) {
          pause_for(lease_part(0.4));
          if (extend(config.lease)) {
            pause_for(lease_part(0.4));
            complete();
          }
        }
      } else if (choice < (bound += config.slow_per_mille)) {
        // Just past the lease end, before another claim is likely to notice it; then any
        // call: stale if the job was claimed again, refused on the last attempt.
        std::this_thread::sleep_until(held.lease_until +
                                      std::chrono::microseconds{overshoot_us(random)});
        const std::string error = "chaos: late attempt " + std::to_string(claim.attempt);
        switch (per_mille(random) % 4) {
          case 0:
            if (extend(config.lease))
              complete();
            break;
          case 1:
            complete();
            break;
          case 2:
            call(kFail, [&](jobsched::TimePoint at) { return scheduler->fail(held, error, at); });
            break;
          default:
            call(kRelease, [&](jobsched::TimePoint) { return scheduler->release(held); });
        }
      } else {
        pause_for(std::chrono::microseconds{work_us(random)});
        complete();
      }
    } catch (const jobsched::Error& e) {
      report_error(out, thread, e.extended_code(), e.what());
      pause_for(std::chrono::microseconds{5000});
    } catch (const std::exception& e) {
      report_error(out, thread, -1, e.what());
      pause_for(std::chrono::microseconds{5000});
    }
  }
}

/// A plain worker process: `threads` threads, each opening its own Scheduler (after the
/// fork, in the thread), until killed.
[[noreturn]] inline void plain_main(const std::string& path, const Config& config, int out,
                                    std::uint64_t seed, bool skewed, pid_t parent) {
  start_child(config);
  std::vector<std::thread> threads;
  try {
    for (int t = 0; t < config.threads; ++t) {
      threads.emplace_back(plain_thread, std::cref(path), std::cref(config), out,
                           seed + static_cast<std::uint64_t>(t) * 0x9E3779B97F4A7C15ull, skewed, t,
                           parent);
    }
  } catch (const std::exception& e) {
    report_error(out, -1, -1, e.what());
    ::_exit(1);
  }
  for (;;) {
    exit_if_orphaned(parent);
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
}

/// A process running a jobsched::Worker, until killed. The handler reports each start and
/// whether it will return (the Worker completes) or throw (the Worker fails the attempt).
[[noreturn]] inline void worker_main(const std::string& path, const Config& config, int out,
                                     std::uint64_t seed, pid_t parent) {
  start_child(config);
  std::atomic<int> threads_seen{0};
  auto handler = [&config, out, seed, &threads_seen](const jobsched::Job& job) {
    thread_local const int thread = threads_seen.fetch_add(1);
    thread_local std::mt19937_64 random(seed ^ (static_cast<std::uint64_t>(thread) << 32));
    std::uniform_int_distribution<long> work_us(0, static_cast<long>(config.max_work.count()));
    std::uniform_int_distribution<int> per_mille(0, 999);
    Record start;
    start.kind = kHandlerStart;
    start.thread = thread;
    start.job_id = job.id;
    start.at = jobsched::to_unix_seconds(job.locked_at.value_or(jobsched::TimePoint{}));
    start.lease_until = jobsched::to_unix_seconds(job.lease_until.value_or(jobsched::TimePoint{}));
    start.attempt = job.attempts;
    start.max_attempts = job.max_attempts.value_or(config.max_attempts);
    start.before = start.at;
    start.after = wall_now();
    send_or_exit(out, start);
    const int choice = per_mille(random);
    const bool will_throw = choice < config.handler_fail_per_mille;
    if (!will_throw && choice < config.handler_fail_per_mille + config.handler_slow_per_mille) {
      std::this_thread::sleep_for(
          std::chrono::duration_cast<std::chrono::microseconds>(config.lease * 1.3));
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds{work_us(random)});
    }
    Record end;
    end.kind = kHandlerEnd;
    end.thread = thread;
    end.job_id = job.id;
    end.accepted = will_throw ? 0 : 1;
    end.before = wall_now();
    send_or_exit(out, end);
    if (will_throw)
      throw std::runtime_error("chaos: the handler threw");
  };
  try {
    jobsched::WorkerOptions options;
    options.threads = config.worker_threads;
    options.lease = config.lease;
    options.poll_interval = std::chrono::milliseconds{20};
    options.grace = std::chrono::milliseconds{0};
    options.scheduler = scheduler_options(config);
    jobsched::Worker worker(path, handler, options);
    for (;;) {
      exit_if_orphaned(parent);
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
  } catch (const jobsched::Error& e) {
    report_error(out, -1, e.extended_code(), e.what());
  } catch (const std::exception& e) {
    report_error(out, -1, -1, e.what());
  }
  ::_exit(1);
}

}  // namespace detail

}  // namespace jobsched_chaos
