// SPDX-License-Identifier: MIT
// Wake latency: how long after a job is added does a sleeping worker start it, when the job
// is added by the same process and by another process.
// Usage: bench_wake_latency [samples=50]

#include <sys/wait.h>
#include <unistd.h>
#include <jobsched/jobsched.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// CLOCK_MONOTONIC, shared by every process on the machine.
std::int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void report(const char* what, std::vector<double> micros) {
  std::sort(micros.begin(), micros.end());
  const auto at = [&](double share) {
    return micros[static_cast<std::size_t>(share * static_cast<double>(micros.size() - 1))];
  };
  std::printf("wake latency, %s: median %.0f us, p90 %.0f us, max %.0f us (%zu samples)\n", what,
              at(0.5), at(0.9), micros.back(), micros.size());
}

std::vector<double> measure(const std::string& path, int samples, bool other_process) {
  std::mutex mutex;
  std::vector<double> micros;
  std::atomic<int> seen{0};
  jobsched::WorkerOptions options;
  options.scheduler.synchronous = jobsched::Synchronous::normal;
  jobsched::Worker worker(
      path,
      [&](const jobsched::Job& job) {
        const double latency =
            static_cast<double>(monotonic_ns() - std::stoll(std::string(job.data.bytes()))) / 1e3;
        const std::lock_guard<std::mutex> lock(mutex);
        micros.push_back(latency);
        ++seen;
      },
      options);

  if (other_process) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto scheduler = jobsched::Scheduler::open(path, options.scheduler);
      for (int i = 0; i < samples; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(120));
        scheduler.add_job(std::to_string(monotonic_ns()));
      }
      ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
  } else {
    auto scheduler = jobsched::Scheduler::open(path, options.scheduler);
    for (int i = 0; i < samples; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(120));
      scheduler.add_job(std::to_string(monotonic_ns()));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (seen < samples && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  worker.stop();
  return micros;
}

}  // namespace

int main(int argc, char** argv) {
  const int samples = argc > 1 ? std::atoi(argv[1]) : 50;
  const std::string path = "bench-wake-" + std::to_string(::getpid()) + ".db";
  report("same process", measure(path, samples, false));
  report("another process (poll_interval 50 ms)", measure(path, samples, true));
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
}
