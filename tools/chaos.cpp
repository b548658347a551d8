// SPDX-License-Identifier: MIT
// jobsched_chaos: the crash chaos of tests/test_crash_chaos.cpp, for as long as you like.
// Runs rounds of tests/support/chaos.hpp, each on a new file, until SECONDS have passed;
// prints each round's counts and the totals. See usage() for the options and exit codes.

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "support/chaos.hpp"

namespace {

void usage(FILE* out, const char* program) {
  const jobsched_chaos::Config d;
  std::fprintf(
      out,
      "usage: %s [options] [SECONDS]\n"
      "\n"
      "Runs crash-chaos rounds for SECONDS (default 60; 0: one round). Each round, on a new\n"
      "file in DIRECTORY: a producer adds the jobs while plain worker processes (several\n"
      "threads, each its own Scheduler) claim them and complete, fail, release or extend\n"
      "them, and processes running a jobsched::Worker do the same through its handler;\n"
      "one process (producer included) is SIGKILLed about every KILL_INTERVAL ms and\n"
      "replaced. Then every added job must be completed (one accepted completion) or\n"
      "failed (all attempts used, at its lease end or its fail), no job leased twice at\n"
      "once, no stale or late call accepted, the file intact.\n"
      "\n"
      "options (default):\n"
      "  --processes N         plain worker processes (%d)\n"
      "  --threads N           threads per plain worker process (%d)\n"
      "  --worker-processes N  processes running a jobsched::Worker (%d)\n"
      "  --worker-threads N    handler threads per Worker (%d)\n"
      "  --jobs N              jobs per round (%d)\n"
      "  --initial-jobs N      of those, added before the workers start (%d)\n"
      "  --kill-interval MS    mean time between kills (%lld)\n"
      "  --lease MS            every claim's lease (%.0f)\n"
      "  --max-attempts N      RetryPolicy::max_attempts; jobs use N-1, N or N+1 (%d)\n"
      "  --fail N, --release N, --heartbeat N, --slow N\n"
      "                        per mille of a plain worker's claims that it fails,\n"
      "                        releases, extends while working 1.2 leases, or leaves\n"
      "                        until just past their lease end (%d, %d, %d, %d)\n"
      "  --handler-fail N, --handler-slow N\n"
      "                        per mille of a Worker's jobs whose handler throws, or\n"
      "                        works 1.3 leases (%d, %d)\n"
      "  --normal              synchronous=NORMAL instead of FULL\n"
      "  --seed N              the first round's seed (default: random)\n"
      "  --directory DIR       where the files go (default: $TMPDIR or /tmp)\n"
      "  --skew MS             the harness's own test: odd-numbered plain workers claim\n"
      "                        with a clock MS ahead; every round must then FAIL\n"
      "                        (double leases)\n"
      "  --rogue-deletes N     the harness's own test: a rogue process deletes N random\n"
      "                        rows; every round must then FAIL (lost jobs)\n"
      "  -h, --help            this text\n"
      "\n"
      "exit status: 0 every round kept every promise; 1 a round broke one (its file is\n"
      "kept and named); 2 bad usage.\n"
      "e.g. %s --processes 4 --jobs 3000 60\n",
      program, d.processes, d.threads, d.worker_processes, d.worker_threads, d.jobs, d.initial_jobs,
      static_cast<long long>(d.kill_interval.count()), d.lease.count() * 1000, d.max_attempts,
      d.fail_per_mille, d.release_per_mille, d.heartbeat_per_mille, d.slow_per_mille,
      d.handler_fail_per_mille, d.handler_slow_per_mille, program);
}

bool parse(const char* text, long long low, long long high, long long& value) {
  char* end = nullptr;
  errno = 0;
  value = std::strtoll(text, &end, 10);
  return errno == 0 && end != text && *end == '\0' && value >= low && value <= high;
}

void remove_database(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::remove((path + suffix).c_str());
}

/// Adds every count of `round` to `total`.
void accumulate(jobsched_chaos::Result& total, const jobsched_chaos::Result& round) {
  using R = jobsched_chaos::Result;
  for (int R::*field :
       {&R::jobs, &R::kills, &R::kills_of_producer, &R::kills_of_worker_processes,
        &R::processes_started, &R::producers_started, &R::unexpected_exits, &R::harness_errors})
    total.*field += round.*field;
  for (std::int64_t R::*field : {&R::added_reported,
                                 &R::added_unreported,
                                 &R::deleted_by_rogue,
                                 &R::claims,
                                 &R::handler_starts,
                                 &R::handler_throws,
                                 &R::completes_accepted,
                                 &R::completes_refused,
                                 &R::fails_accepted,
                                 &R::fails_refused,
                                 &R::releases_accepted,
                                 &R::releases_refused,
                                 &R::extends_accepted,
                                 &R::extends_refused,
                                 &R::calls_thrown,
                                 &R::worker_errors,
                                 &R::late_claims,
                                 &R::unreported_claims,
                                 &R::jobs_run_more_than_once,
                                 &R::completed,
                                 &R::completed_by_worker_processes,
                                 &R::completed_unreported,
                                 &R::failed,
                                 &R::failed_by_lease,
                                 &R::failed_unmarked_at_end,
                                 &R::missing,
                                 &R::unfinished,
                                 &R::lost,
                                 &R::unexplained_rows,
                                 &R::accepted_not_completed,
                                 &R::completed_unexplained,
                                 &R::completed_and_failed,
                                 &R::double_leased,
                                 &R::stale_accepted,
                                 &R::reclaimed_after_completion,
                                 &R::claimed_after_failure,
                                 &R::claims_beyond_last_attempt,
                                 &R::failed_early,
                                 &R::late_last_attempt_accepted,
                                 &R::failed_at_not_lease_end,
                                 &R::lease_moved_earlier,
                                 &R::state_mismatch,
                                 &R::pending_at_end})
    total.*field += round.*field;
  total.max_runs_of_one_job = std::max(total.max_runs_of_one_job, round.max_runs_of_one_job);
  total.seconds += round.seconds;
  total.timed_out = total.timed_out || round.timed_out;
}

}  // namespace

int main(int argc, char** argv) {
  jobsched_chaos::Config config;
  std::string directory;
  long long seconds = 60;
  bool have_seconds = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout, argv[0]);
      return 0;
    }
    if (arg == "--normal") {
      config.synchronous = jobsched::Synchronous::normal;
      continue;
    }
    long long value = 0;
    auto number = [&](long long low, long long high) {
      if (i + 1 >= argc || !parse(argv[i + 1], low, high, value)) {
        std::fprintf(stderr, "%s: %s needs a number from %lld to %lld\n", argv[0], arg.c_str(), low,
                     high);
        std::exit(2);
      }
      ++i;
      return static_cast<int>(std::min<long long>(value, 2'000'000'000));
    };
    if (arg == "--processes") {
      config.processes = number(0, 256);
    } else if (arg == "--threads") {
      config.threads = number(1, 64);
    } else if (arg == "--worker-processes") {
      config.worker_processes = number(0, 256);
    } else if (arg == "--worker-threads") {
      config.worker_threads = number(1, 64);
    } else if (arg == "--jobs") {
      config.jobs = number(1, 100'000'000);
    } else if (arg == "--initial-jobs") {
      config.initial_jobs = number(0, 100'000'000);
    } else if (arg == "--kill-interval") {
      config.kill_interval = std::chrono::milliseconds{number(1, 3'600'000)};
    } else if (arg == "--lease") {
      config.lease = jobsched::Seconds{number(10, 3'600'000) / 1000.0};
    } else if (arg == "--max-attempts") {
      config.max_attempts = number(1, 1'000'000);
    } else if (arg == "--fail") {
      config.fail_per_mille = number(0, 1000);
    } else if (arg == "--release") {
      config.release_per_mille = number(0, 1000);
    } else if (arg == "--heartbeat") {
      config.heartbeat_per_mille = number(0, 1000);
    } else if (arg == "--slow") {
      config.slow_per_mille = number(0, 1000);
    } else if (arg == "--handler-fail") {
      config.handler_fail_per_mille = number(0, 1000);
    } else if (arg == "--handler-slow") {
      config.handler_slow_per_mille = number(0, 1000);
    } else if (arg == "--skew") {
      config.claim_skew = jobsched::Seconds{number(0, 3'600'000) / 1000.0};
    } else if (arg == "--rogue-deletes") {
      config.rogue_deletes = number(0, 1'000'000);
    } else if (arg == "--seed") {
      char* end = nullptr;
      errno = 0;
      config.seed = i + 1 < argc ? std::strtoull(argv[i + 1], &end, 10) : 0;
      if (i + 1 >= argc || errno != 0 || end == argv[i + 1] || *end != '\0' || config.seed == 0) {
        std::fprintf(stderr, "%s: --seed needs a number from 1 to 2^64-1\n", argv[0]);
        return 2;
      }
      ++i;
    } else if (arg == "--directory") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: --directory needs a directory\n", argv[0]);
        return 2;
      }
      directory = argv[++i];
    } else if (!have_seconds && !arg.empty() && arg[0] != '-' &&
               parse(argv[i], 0, 30LL * 24 * 3600, seconds)) {
      have_seconds = true;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], arg.c_str());
      usage(stderr, argv[0]);
      return 2;
    }
  }
  if (config.processes + config.worker_processes == 0) {
    std::fprintf(stderr, "%s: no worker processes: nothing would drain the jobs\n", argv[0]);
    return 2;
  }
  if (config.fail_per_mille + config.release_per_mille + config.heartbeat_per_mille +
          config.slow_per_mille >
      1000) {
    std::fprintf(stderr,
                 "%s: --fail, --release, --heartbeat and --slow add up to more than "
                 "1000 per mille\n",
                 argv[0]);
    return 2;
  }
  if (directory.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    directory = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  // A round may take a while with many jobs; it is only a safety net.
  config.time_limit = std::chrono::seconds{std::max<long long>(120, config.jobs / 50 + 60)};

  using Clock = std::chrono::steady_clock;
  const Clock::time_point began = Clock::now();
  long long rounds = 0, failed_rounds = 0;
  jobsched_chaos::Result total;
  const std::uint64_t first_seed = config.seed;
  do {
    ++rounds;
    const std::string path = directory + "/jobsched-chaos-" + std::to_string(::getpid()) + "-" +
                             std::to_string(rounds) + ".db";
    remove_database(path);
    if (first_seed != 0)
      config.seed = first_seed + static_cast<std::uint64_t>(rounds - 1);
    const jobsched_chaos::Result result = jobsched_chaos::run_chaos(path, config);
    std::printf("round %lld: %s\n", rounds, result.summary().c_str());
    std::fflush(stdout);
    accumulate(total, result);
    if (result.integrity != "ok")
      total.integrity = result.integrity;
    if (result.ok()) {
      remove_database(path);
    } else {
      ++failed_rounds;
      std::printf("round %lld FAILED; its file is kept: %s\n", rounds, path.c_str());
    }
  } while (Clock::now() - began < std::chrono::seconds{seconds});

  if (total.integrity.empty())
    total.integrity = "ok";
  std::string totals = total.summary();
  // The totals have no single seed.
  const std::size_t seed_at = totals.find(" seed=");
  const std::size_t line_end = totals.find('\n');
  if (seed_at != std::string::npos && line_end != std::string::npos && seed_at < line_end)
    totals.erase(seed_at, line_end - seed_at);
  std::printf("total: rounds=%lld failed_rounds=%lld wall_seconds=%.0f\n%s\n", rounds,
              failed_rounds, std::chrono::duration<double>(Clock::now() - began).count(),
              totals.c_str());
  return failed_rounds == 0 ? 0 : 1;
}
