// SPDX-License-Identifier: MIT
#include <jobsched/jobsched.hpp>
int main() {
  auto s = jobsched::Scheduler::open(":memory:");
  s.add_job("hello");
  return s.count_pending_jobs() == 1 ? 0 : 1;
}
