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

// Adds `samples` jobs, 120 ms apart, each carrying the time it was added.
void add_samples(const std::string& path, const jobsched::Options& options, int samples) {
  auto scheduler = jobsched::Scheduler::open(path, options);
  for (int i = 0; i < samples; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    scheduler.add_job(std::to_string(monotonic_ns()));
  }
}

std::vector<double> measure(const std::string& path, int samples, bool other_process) {
  jobsched::WorkerOptions options;
  options.scheduler.synchronous = jobsched::Synchronous::normal;
  // The other process is forked before the worker's threads start: a child forked while
  // threads run can inherit a lock one of them held, and wait for it forever (it did).
  int go[2] = {-1, -1};
  pid_t pid = -1;
  if (other_process) {
    if (::pipe(go) != 0 || (pid = ::fork()) < 0) {
      std::perror("bench_wake_latency: pipe or fork");
      std::exit(1);
    }
    if (pid == 0) {
      ::close(go[1]);
      char byte = 0;
      if (::read(go[0], &byte, 1) == 1)  // the worker runs
        add_samples(path, options.scheduler, samples);
      ::_exit(0);
    }
    ::close(go[0]);
  }

  std::mutex mutex;
  std::vector<double> micros;
  std::atomic<int> seen{0};
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
    const char byte = 'g';
    if (::write(go[1], &byte, 1) != 1)
      std::perror("bench_wake_latency: write");
    ::close(go[1]);
    ::waitpid(pid, nullptr, 0);
  } else {
    add_samples(path, options.scheduler, samples);
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
  report("another process (inotify on Linux; poll_interval 50 ms elsewhere)",
         measure(path, samples, true));
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
}
