// SPDX-License-Identifier: MIT
// Instructions per operation, a figure that machine noise does not move: runs one
// operation of bench/operations.hpp or bench/schedules.hpp with callgrind collecting only
// around the measured calls. Run it under valgrind (bench/run does):
//   valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=OUT
//     bench_instructions WORK IMPLEMENTATION JOBS [CALLS=200]
//   valgrind ... bench_instructions schedules WORK SCHEDULES JOBS [CALLS=200]
// and divide the total in OUT by CALLS. Outside valgrind it just runs the calls. The kept
// files are best built first, outside valgrind (bench_ops and bench_schedules build them).

#include <valgrind/callgrind.h>
#include "operations.hpp"
#include "schedules.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace {

void count(const bench::Operation& operation, int calls) {
  operation();  // warm: statements prepared, pages cached
  CALLGRIND_TOGGLE_COLLECT;
  for (int i = 0; i < calls; ++i)
    operation();
  CALLGRIND_TOGGLE_COLLECT;
}

// bench_instructions schedules WORK SCHEDULES JOBS [CALLS]
int count_schedule_work(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: bench_instructions schedules WORK SCHEDULES JOBS [CALLS=200]\n");
    return 2;
  }
  const std::string name = argv[2];
  const long schedules = std::stol(argv[3]), jobs = std::stol(argv[4]);
  const int calls = argc > 5 ? std::atoi(argv[5]) : 200;
  try {
    for (const bench::ScheduleWork& work : bench::schedule_work()) {
      if (name == work.name) {
        count(work.make(schedules, jobs), calls);
        return 0;
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_instructions: schedules %s/%ld/%ld: %s\n", name.c_str(),
                 schedules, jobs, error.what());
    return 1;
  }
  std::fprintf(stderr, "bench_instructions: no schedule work %s\n", name.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "schedules")
    return count_schedule_work(argc, argv);
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_instructions WORK IMPLEMENTATION JOBS [CALLS=200]\n"
                         "       bench_instructions schedules WORK SCHEDULES JOBS [CALLS=200]\n");
    return 2;
  }
  const std::string name = argv[1], implementation = argv[2];
  const long n = std::stol(argv[3]);
  const int calls = argc > 4 ? std::atoi(argv[4]) : 200;
  try {
    for (const bench::Work& work : bench::all_work()) {
      if (name != work.name || implementation != work.implementation)
        continue;
      count(work.make(n), calls);
      return 0;
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_instructions: %s/%s/%ld: %s\n", name.c_str(),
                 implementation.c_str(), n, error.what());
    return 1;
  }
  std::fprintf(stderr, "bench_instructions: no work %s/%s\n", name.c_str(), implementation.c_str());
  return 2;
}
