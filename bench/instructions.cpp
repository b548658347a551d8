// SPDX-License-Identifier: MIT
// Instructions per operation, a figure that machine noise does not move: runs one
// operation of bench/operations.hpp with callgrind collecting only around the measured
// calls. Run it under valgrind (bench/run does):
//   valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file=OUT \
//     bench_instructions WORK IMPLEMENTATION JOBS [CALLS=200]
// and divide the total in OUT by CALLS. Outside valgrind it just runs the calls.

#include <valgrind/callgrind.h>
#include "operations.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_instructions WORK IMPLEMENTATION JOBS [CALLS=200]\n");
    return 2;
  }
  const std::string name = argv[1], implementation = argv[2];
  const long n = std::stol(argv[3]);
  const int calls = argc > 4 ? std::atoi(argv[4]) : 200;
  try {
    for (const bench::Work& work : bench::all_work()) {
      if (name != work.name || implementation != work.implementation)
        continue;
      const bench::Operation operation = work.make(n);
      operation();  // warm: statements prepared, pages cached
      CALLGRIND_TOGGLE_COLLECT;
      for (int i = 0; i < calls; ++i)
        operation();
      CALLGRIND_TOGGLE_COLLECT;
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
