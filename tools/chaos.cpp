// SPDX-License-Identifier: MIT
// jobsched_chaos: the crash chaos of tests/test_crash_chaos.cpp, for as long as you like.
//
//   jobsched_chaos PROCESSES JOBS KILL_INTERVAL_MS SECONDS [DIRECTORY]
//
// Runs rounds until SECONDS have passed: each round, PROCESSES worker processes drain JOBS
// jobs from a new file in DIRECTORY (default: $TMPDIR or /tmp) under one-second leases while
// one of them is SIGKILLed at random about every KILL_INTERVAL_MS and replaced. Prints each
// round's counts and the totals; exits 1 if any round lost a job, leased one twice at once,
// accepted a stale completion or damaged its file (that round's file is kept).

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/chaos.hpp"

namespace {

bool parse(const char* text, long long low, long long high, long long& value) {
  char* end = nullptr;
  value = std::strtoll(text, &end, 10);
  return end != text && *end == '\0' && value >= low && value <= high;
}

void remove_database(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::remove((path + suffix).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  long long processes = 0, jobs = 0, kill_ms = 0, seconds = 0;
  if ((argc != 5 && argc != 6) || !parse(argv[1], 1, 256, processes) ||
      !parse(argv[2], 1, 100'000'000, jobs) || !parse(argv[3], 1, 3'600'000, kill_ms) ||
      !parse(argv[4], 0, 30LL * 24 * 3600, seconds)) {
    std::fprintf(stderr,
                 "usage: %s PROCESSES JOBS KILL_INTERVAL_MS SECONDS [DIRECTORY]\n"
                 "  e.g. %s 4 3000 150 600\n",
                 argv[0], argv[0]);
    return 2;
  }
  std::string directory = argc == 6 ? argv[5] : "";
  if (directory.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    directory = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }

  jobsched_chaos::Config config;
  config.processes = static_cast<int>(processes);
  config.jobs = static_cast<int>(jobs);
  config.kill_interval = std::chrono::milliseconds{kill_ms};
  // A round may take a while with many jobs; it is only a safety net.
  config.time_limit = std::chrono::seconds{std::max<long long>(120, jobs / 50 + 60)};

  using Clock = std::chrono::steady_clock;
  const Clock::time_point began = Clock::now();
  long long rounds = 0, failed_rounds = 0;
  long long kills = 0, starts = 0, refused = 0, rerun = 0, lost = 0, double_leased = 0,
            reclaimed = 0, stale_accepted = 0, bad_integrity = 0, worker_errors = 0,
            timed_out = 0, total_jobs = 0;
  do {
    ++rounds;
    const std::string path = directory + "/jobsched-chaos-" + std::to_string(::getpid()) + "-" +
                             std::to_string(rounds) + ".db";
    remove_database(path);
    const jobsched_chaos::Result result = jobsched_chaos::run_chaos(path, config);
    std::printf("round %lld: %s\n", rounds, result.summary().c_str());
    std::fflush(stdout);
    total_jobs += result.jobs;
    kills += result.kills;
    starts += result.starts;
    refused += result.completes_refused;
    rerun += result.jobs_run_more_than_once;
    lost += result.lost;
    double_leased += result.double_leased;
    reclaimed += result.reclaimed_after_completion;
    stale_accepted += result.stale_accepted;
    bad_integrity += result.integrity == "ok" ? 0 : 1;
    worker_errors += result.worker_errors;
    timed_out += result.timed_out ? 1 : 0;
    if (result.ok()) {
      remove_database(path);
    } else {
      ++failed_rounds;
      std::printf("round %lld FAILED; its file is kept: %s\n", rounds, path.c_str());
    }
  } while (Clock::now() - began < std::chrono::seconds{seconds});

  std::printf(
      "total: rounds=%lld failed_rounds=%lld jobs=%lld seconds=%.0f kills=%lld starts=%lld "
      "jobs_run_more_than_once=%lld completes_refused=%lld worker_errors=%lld timed_out=%lld | "
      "lost=%lld double_leased=%lld reclaimed_after_completion=%lld stale_accepted=%lld "
      "integrity_failures=%lld\n",
      rounds, failed_rounds, total_jobs,
      std::chrono::duration<double>(Clock::now() - began).count(), kills, starts, rerun, refused,
      worker_errors, timed_out, lost, double_leased, reclaimed, stale_accepted, bad_integrity);
  return failed_rounds == 0 ? 0 : 1;
}
