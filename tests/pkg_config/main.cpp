// SPDX-License-Identifier: MIT
// Built with nothing but `pkg-config --cflags --libs jobsched` against an installed tree.
#include <jobsched/jobsched.hpp>

#include <iostream>

int main() {
  auto scheduler = jobsched::Scheduler::open(":memory:");
  scheduler.add_job("hello");
  std::cout << "pkg-config consumer: " << scheduler.count_pending_jobs() << " pending job\n";
  return scheduler.count_pending_jobs() == 1 ? 0 : 1;
}
