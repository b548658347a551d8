// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos, shared by tests/test_crash_chaos.cpp (a short run in the unit suite) and
// tools/chaos.cpp (long runs): worker processes drain a file of jobs with short leases while
// the parent SIGKILLs one of them at random moments and forks a replacement, until no job is
// pending. Every worker reports each claim ("start") before it does the work and each
// complete ("done", accepted or refused) through its own pipe; the parent stamps each record
// with its receive time. From those records and the final file, run_chaos counts the broken
// promises of DESIGN.md ("Concurrency and delivery"): jobs lost, jobs leased twice at once,
// stale completions accepted, a damaged file.
//
// Times: every record carries wall-clock times (CLOCK_REALTIME, the clock the scheduler uses,
// shared by all processes) taken by the worker just before a call and just after it
// returned, and, for a claim, the claim's own time (`at`, the `now` the claim compared leases
// with, as stored in locked_at) and its lease_until. A call's commit happened somewhere
// between its `before` and `after`, so two events are ordered only when those windows say so;
// ambiguous pairs are never counted as violations.
//
// No dependency on a test framework: children must never return into one.

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

namespace jobsched_chaos {

struct Config {
  int processes = 4;
  int jobs = 3000;
  /// The parent kills one random worker every interval (jittered by +-50%).
  std::chrono::milliseconds kill_interval{150};
  jobsched::Seconds lease{1.0};
  /// Each job "works" for a random time up to this.
  std::chrono::microseconds max_work{2000};
  /// Of every 1000 jobs, about this many work for lease + 100 ms instead, so that their
  /// lease runs out while the worker is alive and their completion may be stale (most such
  /// workers are killed before they get there).
  int slow_per_mille = 10;
  /// For the harness's own test only: odd-numbered workers claim with a clock this far
  /// ahead, so they take jobs whose leases are live for everyone else.
  jobsched::Seconds claim_skew{0.0};
  /// Give up (and report timed_out) after this long.
  std::chrono::seconds time_limit{55};
  jobsched::Synchronous synchronous = jobsched::Synchronous::full;
  /// 0: a random seed.
  std::uint64_t seed = 0;
};

struct Result {
  // The run.
  int jobs = 0;
  int kills = 0;
  int workers_started = 0;
  int unexpected_exits = 0;  // workers that ended without being killed
  bool timed_out = false;
  double seconds = 0;
  std::uint64_t seed = 0;
  // What the workers reported.
  std::int64_t starts = 0;
  std::int64_t completes_accepted = 0;
  std::int64_t completes_refused = 0;  // stale claims, correctly refused
  std::int64_t worker_errors = 0;      // exceptions caught by workers (should be none)
  std::string first_worker_error;
  std::int64_t late_claims = 0;        // claims that returned after their own lease_until
  std::int64_t unreported_claims = 0;  // claims in the file (attempts) never reported (killed)
  std::int64_t jobs_run_more_than_once = 0;
  std::int64_t max_runs_of_one_job = 0;
  // Broken promises: all must be 0 (and integrity "ok").
  std::int64_t lost = 0;                        // not completed in the file at the end
  std::int64_t accepted_not_completed = 0;      // complete() returned true, file disagrees
  std::int64_t completed_without_start = 0;     // harness check: a completion nobody claimed
  std::int64_t double_leased = 0;               // jobs claimed while another lease was live
  std::int64_t reclaimed_after_completion = 0;  // claims of a job after its accepted complete
  std::int64_t stale_accepted = 0;              // accepted completes of a stale claim
  std::string integrity;
  std::vector<std::string> violations;  // the first few, described

  bool ok() const {
    return !timed_out && lost == 0 && accepted_not_completed == 0 &&
           completed_without_start == 0 && double_leased == 0 &&
           reclaimed_after_completion == 0 && stale_accepted == 0 && integrity == "ok";
  }

  std::string summary() const {
    char line[1024];
    std::snprintf(
        line, sizeof line,
        "jobs=%d seconds=%.1f kills=%d workers=%d unexpected_exits=%d timed_out=%d starts=%lld "
        "accepted=%lld refused=%lld worker_errors=%lld late_claims=%lld unreported_claims=%lld "
        "run_more_than_once=%lld max_runs=%lld | lost=%lld accepted_not_completed=%lld "
        "completed_without_start=%lld double_leased=%lld reclaimed_after_completion=%lld "
        "stale_accepted=%lld integrity=%s seed=%llu",
        jobs, seconds, kills, workers_started, unexpected_exits, timed_out ? 1 : 0,
        static_cast<long long>(starts), static_cast<long long>(completes_accepted),
        static_cast<long long>(completes_refused), static_cast<long long>(worker_errors),
        static_cast<long long>(late_claims), static_cast<long long>(unreported_claims),
        static_cast<long long>(jobs_run_more_than_once),
        static_cast<long long>(max_runs_of_one_job), static_cast<long long>(lost),
        static_cast<long long>(accepted_not_completed),
        static_cast<long long>(completed_without_start), static_cast<long long>(double_leased),
        static_cast<long long>(reclaimed_after_completion),
        static_cast<long long>(stale_accepted), integrity.c_str(),
        static_cast<unsigned long long>(seed));
    std::string text = line;
    for (const std::string& violation : violations)
      text += "\n  " + violation;
    if (!first_worker_error.empty())
      text += "\n  first worker error: " + first_worker_error;
    return text;
  }
};

namespace detail {

enum Kind : std::int32_t { kStart = 1, kDone = 2, kError = 3 };

/// One fixed-size record, written whole (far below PIPE_BUF, so atomic).
struct Record {
  std::int32_t kind = 0;
  std::int32_t value = 0;  // done: 1 accepted, 0 refused; error: extended code
  std::int64_t job_id = 0;
  std::int64_t token = 0;
  double at = 0;           // start: the claim's time; done: the time passed to complete
  double lease_until = 0;  // start
  double before = 0;       // wall time just before the call
  double after = 0;        // wall time just after it returned
  char message[128] = {};  // error: what()
};

/// A record as the parent logged it.
struct Logged {
  Record record;
  double received = 0;
  int worker = 0;  // the number of the worker process, in start order
};

inline double wall_now() { return jobsched::to_unix_seconds(jobsched::system_now()); }

inline jobsched::Options scheduler_options(const Config& config) {
  jobsched::Options options;
  options.synchronous = config.synchronous;
  options.busy_timeout = std::chrono::milliseconds{5000};
  // Leases lost to kills count as attempts; never let a job fail for good here.
  options.retry.max_attempts = 1'000'000;
  return options;
}

inline bool send(int fd, const Record& record) {
  return ::write(fd, &record, sizeof record) == static_cast<ssize_t>(sizeof record);
}

/// A worker process: claim, report, work, complete, report; forever, until killed.
[[noreturn]] inline void worker_main(const std::string& path, const Config& config, int out,
                                     std::uint64_t seed, bool skewed) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<long> work_us(0, static_cast<long>(config.max_work.count()));
  std::uniform_int_distribution<int> per_mille(0, 999);
  auto report_error = [out](int code, const char* what) {
    Record error;
    error.kind = kError;
    error.value = code;
    std::snprintf(error.message, sizeof error.message, "%s", what);
    send(out, error);
  };
  std::optional<jobsched::Scheduler> scheduler;
  for (;;) {
    try {
      if (!scheduler)
        scheduler.emplace(jobsched::Scheduler::open(path, scheduler_options(config)));
      Record start;
      start.kind = kStart;
      start.before = wall_now();
      const std::optional<jobsched::ClaimedJob> claimed =
          skewed ? scheduler->claim_next_job(config.lease, jobsched::system_now() + config.claim_skew)
                 : scheduler->claim_next_job(config.lease);
      start.after = wall_now();
      if (!claimed) {
        ::usleep(2000);
        continue;
      }
      start.job_id = claimed->claim.job_id;
      start.token = claimed->claim.token;
      start.at = jobsched::to_unix_seconds(claimed->job.locked_at.value_or(jobsched::TimePoint{}));
      start.lease_until = jobsched::to_unix_seconds(claimed->claim.lease_until);
      if (!send(out, start))
        ::_exit(3);  // the parent is gone

      if (config.slow_per_mille > 0 && per_mille(random) < config.slow_per_mille) {
        std::this_thread::sleep_for(config.lease + std::chrono::milliseconds{100});
      } else {
        ::usleep(static_cast<useconds_t>(work_us(random)));
      }

      Record done;
      done.kind = kDone;
      done.job_id = start.job_id;
      done.token = start.token;
      done.before = wall_now();
      done.at = done.before;
      done.value = scheduler->complete(claimed->claim, jobsched::from_unix_seconds(done.at)) ? 1 : 0;
      done.after = wall_now();
      if (!send(out, done))
        ::_exit(3);
    } catch (const jobsched::Error& e) {
      report_error(e.extended_code(), e.what());
      ::usleep(5000);
    } catch (const std::exception& e) {
      report_error(-1, e.what());
      ::usleep(5000);
    }
  }
}

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  int number = 0;
  std::string buffer;
};

/// Moves the complete records in `worker.buffer` to `log`.
inline void take_records(Worker& worker, std::vector<Logged>& log) {
  const double received = wall_now();
  std::size_t used = 0;
  while (worker.buffer.size() - used >= sizeof(Record)) {
    Logged logged;
    std::memcpy(&logged.record, worker.buffer.data() + used, sizeof(Record));
    logged.received = received;
    logged.worker = worker.number;
    log.push_back(logged);
    used += sizeof(Record);
  }
  worker.buffer.erase(0, used);
}

/// Reads what is there; false at end of file.
inline bool read_some(Worker& worker, std::vector<Logged>& log) {
  char bytes[8192];
  for (;;) {
    const ssize_t got = ::read(worker.fd, bytes, sizeof bytes);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    worker.buffer.append(bytes, static_cast<std::size_t>(got));
    take_records(worker, log);
    return true;
  }
}

/// After the worker died: reads to the end of its pipe and closes it.
inline void drain(Worker& worker, std::vector<Logged>& log) {
  while (read_some(worker, log)) {
  }
  ::close(worker.fd);
  worker.fd = -1;
}

inline std::string integrity_check(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK)
    return std::string("cannot prepare integrity_check: ") + sqlite3_errmsg(db);
  std::string result;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    if (!result.empty())
      result += "; ";
    result += text != nullptr ? reinterpret_cast<const char*>(text) : "?";
  }
  sqlite3_finalize(stmt);
  return result;
}

struct Start {
  std::int64_t token;
  double at, lease_until, before, after;
  int worker;
};
struct Done {
  std::int64_t token;
  bool accepted;
  double before, after;
  int worker;
};

inline std::string describe(const char* what, std::int64_t job, const Start& a, const Start* b) {
  char text[512];
  if (b != nullptr) {
    std::snprintf(text, sizeof text,
                  "%s: job %lld claimed by worker %d (token %lld, at %.6f, lease until %.6f) and "
                  "by worker %d (token %lld, at %.6f, lease until %.6f)",
                  what, static_cast<long long>(job), a.worker, static_cast<long long>(a.token),
                  a.at, a.lease_until, b->worker, static_cast<long long>(b->token), b->at,
                  b->lease_until);
  } else {
    std::snprintf(text, sizeof text, "%s: job %lld, claim by worker %d token %lld at %.6f", what,
                  static_cast<long long>(job), a.worker, static_cast<long long>(a.token), a.at);
  }
  return text;
}

inline void note(Result& result, std::string text) {
  if (result.violations.size() < 10)
    result.violations.push_back(std::move(text));
}

/// Counts the broken promises in the log and the final file.
inline void analyse(const std::vector<Logged>& log, sqlite3* db, Result& result) {
  std::map<std::int64_t, std::vector<Start>> starts;
  std::map<std::int64_t, std::vector<Done>> dones;
  for (const Logged& logged : log) {
    const Record& r = logged.record;
    if (r.kind == kStart) {
      ++result.starts;
      if (r.after >= r.lease_until)
        ++result.late_claims;
      starts[r.job_id].push_back(Start{r.token, r.at, r.lease_until, r.before, r.after,
                                       logged.worker});
    } else if (r.kind == kDone) {
      (r.value != 0 ? result.completes_accepted : result.completes_refused) += 1;
      dones[r.job_id].push_back(Done{r.token, r.value != 0, r.before, r.after, logged.worker});
    } else if (r.kind == kError) {
      if (result.worker_errors++ == 0) {
        result.first_worker_error = std::string(r.message, strnlen(r.message, sizeof r.message));
      }
    }
  }

  for (auto& [job, claims] : starts) {
    std::sort(claims.begin(), claims.end(),
              [](const Start& a, const Start& b) { return a.at < b.at; });
    const auto runs = static_cast<std::int64_t>(claims.size());
    if (runs > 1)
      ++result.jobs_run_more_than_once;
    result.max_runs_of_one_job = std::max(result.max_runs_of_one_job, runs);

    std::vector<Done> accepted;
    for (const Done& done : dones[job]) {
      if (done.accepted)
        accepted.push_back(done);
    }
    if (accepted.size() > 1) {
      result.stale_accepted += static_cast<std::int64_t>(accepted.size()) - 1;
      note(result, describe("two accepted completes", job, claims.front(), nullptr));
    }
    // The claim each accepted complete ended, and when that complete had returned.
    std::map<std::int64_t, double> ended_at;  // token -> the complete's `after`
    bool reclaimed = false;
    for (const Done& done : accepted) {
      auto own = std::find_if(claims.begin(), claims.end(),
                              [&](const Start& s) { return s.token == done.token; });
      if (own == claims.end()) {
        ++result.stale_accepted;
        note(result, "accepted complete of job " + std::to_string(job) + " with token " +
                         std::to_string(done.token) + " that no claim reported");
        continue;
      }
      ended_at[own->token] = done.after;
      for (const Start& other : claims) {
        if (other.token == own->token)
          continue;
        // Another claim, made after this one returned and done before the complete began:
        // the complete's token was no longer the job's, yet it was accepted.
        if (other.before >= own->after && other.after <= done.before) {
          ++result.stale_accepted;
          note(result, describe("stale complete accepted", job, *own, &other));
          break;
        }
      }
      for (const Start& other : claims) {
        // A claim begun after the accepted complete returned: a completed job ran again.
        if (other.token != own->token && other.before >= done.after && !reclaimed) {
          reclaimed = true;
          ++result.reclaimed_after_completion;
          note(result, describe("claimed after its accepted completion", job, *own, &other));
        }
      }
    }
    // `second` was claimed while `first` held a live lease: it committed before first's
    // lease_until, by the claim's own time (`at`, what the library compares leases with) or
    // by the wall clock (`after`: the commit came before the call returned), and `first` had
    // not been completed before `second` was asked for.
    auto live_lease_taken = [&](const Start& first, const Start& second) {
      if (!(std::min(second.at, second.after) < first.lease_until))
        return false;
      const auto end = ended_at.find(first.token);
      return end == ended_at.end() || end->second > second.before;
    };
    bool overlapped = false;
    for (std::size_t i = 0; i < claims.size() && !overlapped; ++i) {
      for (std::size_t j = i + 1; j < claims.size() && !overlapped; ++j) {
        const Start& a = claims[i];
        const Start& b = claims[j];
        // The order of the two commits, when the call windows tell it; otherwise either.
        const bool a_first = a.after <= b.before;
        const bool b_first = b.after <= a.before;
        const bool taken = a_first   ? live_lease_taken(a, b)
                           : b_first ? live_lease_taken(b, a)
                                     : live_lease_taken(a, b) && live_lease_taken(b, a);
        if (taken) {
          overlapped = true;
          ++result.double_leased;
          note(result, describe("two live leases", job, a, &b));
        }
      }
    }
  }

  // The file.
  sqlite3_stmt* stmt = nullptr;
  std::int64_t attempts = 0;
  if (sqlite3_prepare_v2(db, "SELECT id, completed_at IS NOT NULL, attempts FROM job", -1, &stmt,
                         nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const std::int64_t id = sqlite3_column_int64(stmt, 0);
      const bool completed = sqlite3_column_int(stmt, 1) != 0;
      attempts += sqlite3_column_int64(stmt, 2);
      const auto done = dones.find(id);
      const bool reported_accepted =
          done != dones.end() && std::any_of(done->second.begin(), done->second.end(),
                                             [](const Done& d) { return d.accepted; });
      if (!completed) {
        ++result.lost;
        if (result.lost <= 3)
          note(result, "job " + std::to_string(id) + " not completed at the end");
        if (reported_accepted) {
          ++result.accepted_not_completed;
          note(result, "job " + std::to_string(id) + ": complete() returned true, not completed");
        }
      } else if (starts.find(id) == starts.end()) {
        ++result.completed_without_start;
      }
    }
  } else {
    note(result, std::string("cannot read the job table: ") + sqlite3_errmsg(db));
    result.lost = result.jobs;
  }
  sqlite3_finalize(stmt);
  result.unreported_claims = attempts - result.starts;
  result.integrity = integrity_check(db);
}

}  // namespace detail

/// Runs one chaos round on a new file at `path` (which must not exist yet).
inline Result run_chaos(const std::string& path, const Config& config) {
  using namespace detail;
  using Clock = std::chrono::steady_clock;
  Result result;
  result.jobs = config.jobs;
  result.seed = config.seed != 0 ? config.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  std::mt19937_64 random(result.seed);
  const jobsched::Options options = scheduler_options(config);

  // The jobs, in one transaction. No connection stays open in the parent across a fork.
  {
    auto scheduler = jobsched::Scheduler::open(path, options);
    sqlite3_exec(scheduler.handle(), "BEGIN", nullptr, nullptr, nullptr);
    for (int i = 0; i < config.jobs; ++i)
      scheduler.add_job(jobsched::Payload::integer(i));
    sqlite3_exec(scheduler.handle(), "COMMIT", nullptr, nullptr, nullptr);
  }

  const Clock::time_point began = Clock::now();
  std::vector<Worker> workers(static_cast<std::size_t>(config.processes));
  std::vector<Logged> log;
  log.reserve(static_cast<std::size_t>(config.jobs) * 2 + 1024);

  auto spawn = [&](std::size_t slot) {
    int fds[2];
    if (::pipe(fds) != 0) {
      std::perror("pipe");
      std::abort();
    }
    const int number = result.workers_started++;
    const std::uint64_t seed = random();
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("fork");
      std::abort();
    }
    if (pid == 0) {
      ::close(fds[0]);
      for (const Worker& other : workers) {
        if (other.fd >= 0)
          ::close(other.fd);
      }
      worker_main(path, config, fds[1], seed, config.claim_skew.count() != 0 && number % 2 == 1);
    }
    ::close(fds[1]);
    workers[slot] = Worker{pid, fds[0], number, {}};
  };
  for (std::size_t i = 0; i < workers.size(); ++i)
    spawn(i);

  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto next_interval = [&] {
    return std::chrono::duration_cast<Clock::duration>(config.kill_interval * jitter(random));
  };
  Clock::time_point next_kill = Clock::now() + next_interval();
  Clock::time_point next_look = Clock::now();
  std::vector<pollfd> polled(workers.size());
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (now - began > config.time_limit) {
      result.timed_out = true;
      break;
    }
    if (now >= next_look) {
      // Done when nothing is pending: every job completed (or, wrongly, failed or gone).
      std::int64_t pending = -1;
      try {
        auto scheduler = jobsched::Scheduler::open(path, options);
        pending = scheduler.count_pending_jobs();
      } catch (const std::exception&) {
        // Busy or the like: look again later.
      }
      if (pending == 0)
        break;
      next_look = Clock::now() + std::chrono::milliseconds{50};
    }
    if (now >= next_kill) {
      std::uniform_int_distribution<std::size_t> pick(0, workers.size() - 1);
      Worker& victim = workers[pick(random)];
      ::kill(victim.pid, SIGKILL);
      int status = 0;
      ::waitpid(victim.pid, &status, 0);
      ++result.kills;
      drain(victim, log);
      spawn(static_cast<std::size_t>(&victim - workers.data()));
      next_kill = Clock::now() + next_interval();
    }
    for (std::size_t i = 0; i < workers.size(); ++i)
      polled[i] = pollfd{workers[i].fd, POLLIN, 0};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(next_kill, next_look) - Clock::now());
    const int ready = ::poll(polled.data(), polled.size(),
                             static_cast<int>(std::clamp<long long>(wait.count(), 0, 20)));
    if (ready <= 0)
      continue;
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if ((polled[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      if (!read_some(workers[i], log)) {
        // The worker ended on its own: it must not. Replace it.
        int status = 0;
        ::waitpid(workers[i].pid, &status, 0);
        ++result.unexpected_exits;
        drain(workers[i], log);
        spawn(i);
      }
    }
  }
  for (Worker& worker : workers) {
    ::kill(worker.pid, SIGKILL);
    int status = 0;
    ::waitpid(worker.pid, &status, 0);
    drain(worker, log);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - began).count();

  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    analyse(log, db, result);
  } else {
    result.integrity = "cannot open the file";
    result.lost = result.jobs;
  }
  sqlite3_close_v2(db);
  return result;
}

}  // namespace jobsched_chaos
