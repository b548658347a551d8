// SPDX-License-Identifier: MIT
// Times a recurring schedule's firing (claim and complete, with the next firing made in the
// claim's transaction) against the same claim of an ordinary job when no schedule is due,
// at each number of schedules and jobs stored; and the calls that do not fire, with 10,000
// schedules and without (bench/schedules.hpp). Benchmarks are named WORK/SCHEDULES/JOBS;
// bench/report.py pairs them.
//
// Usage: bench_schedules [Google Benchmark flags]
// Environment: JOBSCHED_BENCH_SIZES (jobs stored, default 1000,1000000),
//   JOBSCHED_BENCH_SMOKE=1 (3 iterations of each, to check that it all runs),
//   JOBSCHED_BENCH_DIR (where the files are kept, default ./bench-data).

#include <benchmark/benchmark.h>
#include "schedules.hpp"

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

namespace {

bool smoke() {
  const char* value = std::getenv("JOBSCHED_BENCH_SMOKE");
  return value != nullptr && std::string(value) == "1";
}

std::vector<long> sizes() {
  const char* value = std::getenv("JOBSCHED_BENCH_SIZES");
  std::istringstream list(value != nullptr ? value : "1000,1000000");
  std::vector<long> result;
  for (std::string item; std::getline(list, item, ',');)
    result.push_back(std::stol(item));
  return result;
}

void run(benchmark::State& state, const bench::ScheduleWork& work, long schedules, long jobs) {
  try {
    const bench::Operation operation = work.make(schedules, jobs);
    for (auto _ : state)
      operation();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  // Build the files first, outside any timing.
  for (const long jobs : sizes()) {
    for (const long schedules : {0L, 1L, 100L, 10000L})
      bench::stored_schedules(schedules, jobs);
  }
  for (const long jobs : sizes()) {
    for (const bench::ScheduleWork& work : bench::schedule_work()) {
      for (const long schedules : work.schedules) {
        auto* registered = benchmark::RegisterBenchmark(
            (std::string(work.name) + "/" + std::to_string(schedules) + "/" +
             std::to_string(jobs))
                .c_str(),
            [work, schedules, jobs](benchmark::State& state) {
              run(state, work, schedules, jobs);
            });
        registered->Unit(benchmark::kMicrosecond)->UseRealTime();
        if (smoke()) {
          registered->Iterations(3);
        } else if (work.writes) {
          // The same number of firings as of ordinary claims, never more than the due jobs.
          registered->Iterations(std::min<long>(2000, jobs / 2));
        } else {
          registered->MinTime(0.3);
        }
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
