// SPDX-License-Identifier: MIT
// Kept counts (Scheduler::keep_counts): what stats costs with them and without, at N jobs
// (90 % completed, the rest due, in 10 queues), and what they add to the writes: claim and
// complete, and add_job, one transaction each (synchronous=NORMAL), counts off and on, in
// one run. Usage: bench_counts [jobs=1000000] [writes=2000]

#include <jobsched/jobsched.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_of(const std::function<void()>& work) {
  const auto start = Clock::now();
  work();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void remove_file(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
}

// A file of `jobs` jobs, 90 % of them completed, in 10 queues.
void fill(jobsched::Scheduler& scheduler, long jobs) {
  std::vector<jobsched::NewJob> batch;
  for (long i = 0; i < jobs; ++i) {
    jobsched::JobOptions options;
    options.queue = "q" + std::to_string(i % 10);
    batch.push_back(jobsched::NewJob{jobsched::Payload::text("x"), options});
    if (batch.size() == 10000 || i + 1 == jobs) {
      scheduler.add_jobs(batch);
      batch.clear();
    }
  }
  sqlite3_exec(scheduler.handle(),
               "UPDATE job SET state = 6, completed_at = created_at WHERE id % 10 <> 0", nullptr,
               nullptr, nullptr);
}

// Seconds per write: `writes` claim-and-completes, or adds, on a file of 2 × writes jobs.
double per_write(bool counts, bool adds, int writes) {
  const std::string path = "bench_counts_writes.db";
  remove_file(path);
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::normal;
  auto scheduler = jobsched::Scheduler::open(path, options);
  scheduler.keep_counts(counts);
  fill(scheduler, 2L * writes);
  sqlite3_exec(scheduler.handle(), "UPDATE job SET state = 1, completed_at = NULL", nullptr,
               nullptr, nullptr);
  const double total = seconds_of([&] {
    for (int i = 0; i < writes; ++i) {
      if (adds) {
        scheduler.add_job(jobsched::Payload::text("x"));
      } else if (auto claimed = scheduler.claim_next_job(jobsched::Seconds{30})) {
        scheduler.complete(claimed->claim);
      }
    }
  });
  remove_file(path);
  return total / writes;
}

}  // namespace

int main(int argc, char** argv) {
  const long jobs = argc > 1 ? std::atol(argv[1]) : 1000000;
  const int writes = argc > 2 ? std::atoi(argv[2]) : 2000;
  const std::string path = "bench_counts.db";
  remove_file(path);
  auto scheduler = jobsched::Scheduler::open(path);
  fill(scheduler, jobs);
  auto stats_time = [&] {
    scheduler.stats();
    constexpr int rounds = 5;
    return seconds_of([&] {
             for (int i = 0; i < rounds; ++i)
               scheduler.stats();
           }) /
           rounds;
  };
  const double walked = stats_time();
  const double turn_on = seconds_of([&] { scheduler.keep_counts(true); });
  const double kept = stats_time();
  std::printf("stats at %ld jobs (90%% completed, 10 queues): walked %.3f ms, from kept counts "
              "%.3f ms; keep_counts(true) counted them in %.0f ms\n",
              jobs, walked * 1e3, kept * 1e3, turn_on * 1e3);
  remove_file(path);
  for (const bool adds : {false, true}) {
    const double off = per_write(false, adds, writes);
    const double on = per_write(true, adds, writes);
    std::printf("%s, one transaction each, NORMAL: %.1f us without kept counts, %.1f us with "
                "them (%.2fx)\n",
                adds ? "add_job" : "claim and complete", off * 1e6, on * 1e6, on / off);
  }
  return 0;
}
