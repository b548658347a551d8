// SPDX-License-Identifier: MIT
// Times jobsched against hand-written SQLite C API code doing the same work on the same
// file, and the Python original's schema replayed through the C API, at each number of
// stored jobs (bench/operations.hpp). Benchmarks are named WORK/IMPLEMENTATION/JOBS;
// bench/report.py pairs them.
//
// Usage: bench_ops [Google Benchmark flags]
// Environment: JOBSCHED_BENCH_SIZES (default 1000,10000,100000,1000000),
//   JOBSCHED_BENCH_SMOKE=1 (3 iterations of each, to check that it all runs),
//   JOBSCHED_BENCH_DIR (where the job files are kept, default ./bench-data).

#include <benchmark/benchmark.h>
#include "operations.hpp"

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
  std::istringstream list(value != nullptr ? value : "1000,10000,100000,1000000");
  std::vector<long> result;
  for (std::string item; std::getline(list, item, ',');)
    result.push_back(std::stol(item));
  return result;
}

// Work that writes runs a fixed number of times on its own copy of the file.
benchmark::IterationCount iterations(const std::string& work, long n) {
  if (work == "add_normal")
    return 3000;
  if (work == "add_full")
    return 300;
  if (work == "add_batch")
    return 100;
  return std::min<long>(2000, n / 2 - 1);  // claims: half the stored jobs are due
}

void run(benchmark::State& state, const bench::Work& work, long n) {
  try {
    const bench::Operation operation = work.make(n);
    for (auto _ : state)
      operation();
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
  }
  if (std::string(work.name) == "add_batch")
    state.SetItemsProcessed(state.iterations() * bench::batch_size);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  // Build the job files first, outside any timing.
  for (const long n : sizes()) {
    bench::stored_jobs(bench::Schema::jobsched, n);
    bench::stored_jobs(bench::Schema::handwritten, n);
    bench::stored_jobs(bench::Schema::original, n);
  }
  for (const long n : sizes()) {
    for (const bench::Work& work : bench::all_work()) {
      auto* registered = benchmark::RegisterBenchmark(
          (std::string(work.name) + "/" + work.implementation + "/" + std::to_string(n)).c_str(),
          [work, n](benchmark::State& state) { run(state, work, n); });
      registered->Unit(benchmark::kMicrosecond)->UseRealTime();
      if (smoke()) {
        registered->Iterations(3);
      } else if (work.writes) {
        registered->Iterations(iterations(work.name, n));
      } else {
        registered->MinTime(0.3);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
