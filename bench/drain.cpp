// SPDX-License-Identifier: MIT
// Drain throughput: P worker processes with T threads each empty a file of N due jobs.
// Usage: bench_drain [processes=1] [threads=4] [jobs=20000] [synchronous=normal|full]

#include <sys/wait.h>
#include <unistd.h>
#include <jobsched/jobsched.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  const int processes = argc > 1 ? std::atoi(argv[1]) : 1;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  const int jobs = argc > 3 ? std::atoi(argv[3]) : 20000;
  const bool full = argc > 4 && std::string(argv[4]) == "full";
  const std::string path = "bench-drain-" + std::to_string(::getpid()) + ".db";

  jobsched::Options options;
  options.synchronous = full ? jobsched::Synchronous::full : jobsched::Synchronous::normal;
  {
    auto scheduler = jobsched::Scheduler::open(path, options);
    sqlite3_exec(scheduler.handle(), "BEGIN", nullptr, nullptr, nullptr);
    for (int i = 0; i < jobs; ++i)
      scheduler.add_job(std::to_string(i));
    sqlite3_exec(scheduler.handle(), "COMMIT", nullptr, nullptr, nullptr);
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      jobsched::WorkerOptions worker_options;
      worker_options.threads = threads;
      worker_options.scheduler = options;
      jobsched::Worker worker(
          path, [](const jobsched::Job&) {}, worker_options);
      auto scheduler = jobsched::Scheduler::open(path, options);
      while (scheduler.count_pending_jobs() > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      worker.stop();
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children)
    ::waitpid(pid, nullptr, 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto scheduler = jobsched::Scheduler::open(path, options);
  const auto left = scheduler.count_pending_jobs();
  std::printf(
      "drain: %d process(es) x %d thread(s), %d jobs, synchronous=%s: %.2f s, %.0f jobs/s"
      " (%lld left)\n",
      processes, threads, jobs, full ? "full" : "normal", seconds, jobs / seconds,
      static_cast<long long>(left));
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
  return left == 0 ? 0 : 1;
}
