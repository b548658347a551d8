// SPDX-License-Identifier: MIT
// Peak memory against jobs stored: for each size, a fresh process opens a file of that many
// jobs, reads the next job, the time until it and the count, and claims and completes
// jobs; it reports its peak resident set and SQLite's own peak allocation.
// Usage: bench_memory [sizes=1000,10000,100000,1000000]

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fixtures.hpp"

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace {

int measure(long n) {
  const bench::WorkCopy copy(bench::Schema::jobsched, n);
  auto scheduler = jobsched::Scheduler::open(copy.path().string());
  long checks = 0;
  for (int i = 0; i < 1000; ++i) {
    checks += scheduler.next_job(bench::now).has_value();
    checks += scheduler.seconds_until_next_job(bench::now).has_value();
  }
  for (int i = 0; i < 3; ++i)
    checks += scheduler.count_pending_jobs(bench::now) == n;
  for (int i = 0; i < 200; ++i) {
    auto claimed = scheduler.claim_next_job(jobsched::Seconds{60}, bench::now);
    checks += claimed && scheduler.complete(claimed->claim, bench::now);
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  std::printf("memory: %ld jobs: peak RSS %ld KiB, SQLite peak %lld KiB\n", n, usage.ru_maxrss,
              static_cast<long long>(sqlite3_memory_highwater(0) / 1024));
  std::fflush(stdout);
  return checks == 2000 + 3 + 200 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::istringstream list(argc > 1 ? argv[1] : "1000,10000,100000,1000000");
  int status = 0;
  for (std::string item; std::getline(list, item, ',');) {
    const long n = std::stol(item);
    bench::stored_jobs(bench::Schema::jobsched, n);  // built in this process, not measured
    const pid_t pid = ::fork();
    if (pid == 0)
      ::_exit(measure(n));
    int child = 0;
    ::waitpid(pid, &child, 0);
    if (!WIFEXITED(child) || WEXITSTATUS(child) != 0) {
      std::fprintf(stderr, "memory: the run with %ld jobs failed\n", n);
      status = 1;
    }
  }
  return status;
}
