// SPDX-License-Identifier: MIT
// Durable adds from many threads (synchronous=FULL): each thread adding through its own
// scheduler, one commit (one fdatasync) per add, against every thread adding through one
// Adder, whose adds waiting together share a commit. Each add returns once its job is on
// disk in both. And the most any group commit of that many threads can do on this disk:
// one thread whose every commit carries `threads` adds (add_jobs), with no thread to wait
// for.
// Usage: bench_group_commit [threads=8] [adds per thread=200]

#include <jobsched/jobsched.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

double run_threads(int threads, const std::function<void(int)>& body) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t)
    running.emplace_back(body, t);
  for (std::thread& thread : running)
    thread.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void remove_file(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 8;
  const int each = argc > 2 ? std::atoi(argv[2]) : 200;
  const std::string path = "bench-group-commit-" + std::to_string(::getpid()) + ".db";
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::full;
  options.busy_timeout = std::chrono::milliseconds(60'000);
  const double total = static_cast<double>(threads) * each;

  remove_file(path);
  { jobsched::Scheduler::open(path, options); }
  const double alone = run_threads(threads, [&](int) {
    auto scheduler = jobsched::Scheduler::open(path, options);
    for (int i = 0; i < each; ++i)
      scheduler.add_job("x");
  });
  remove_file(path);

  std::int64_t commits = 0;
  double shared = 0;
  {
    jobsched::Adder adder(path, options);
    shared = run_threads(threads, [&](int) {
      for (int i = 0; i < each; ++i)
        adder.add("x");
    });
    commits = adder.commits();
  }
  remove_file(path);

  double batched = 0;
  {
    auto scheduler = jobsched::Scheduler::open(path, options);
    batched = run_threads(1, [&](int) {
      for (int i = 0; i < each; ++i) {
        std::vector<jobsched::NewJob> jobs(static_cast<std::size_t>(threads),
                                           jobsched::NewJob{jobsched::Payload("x"), {}});
        scheduler.add_jobs(std::move(jobs));
      }
    });
  }
  remove_file(path);

  std::printf("group commit, %d threads x %d adds, synchronous=full: one commit per add %.0f"
              " adds/s; one Adder %.0f adds/s (%lld commits); %.1fx\n",
              threads, each, total / alone, total / shared, static_cast<long long>(commits),
              alone / shared);
  std::printf("the ceiling: one thread, add_jobs of %d per commit, %d commits: %.0f adds/s; %.1fx"
              " one commit per add\n",
              threads, each, total / batched, alone / batched);
  return 0;
}
