// SPDX-License-Identifier: MIT
// cli_fixture PATH: a job file with one job in each state the tool cannot make by itself
// (running, failed), and one in every other, for cli_test.py. Prints "STATE ID" lines.

#include <jobsched/jobsched.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: cli_fixture PATH\n";
    return 2;
  }
  using namespace std::chrono_literals;
  auto scheduler = jobsched::Scheduler::open(argv[1]);
  const jobsched::TimePoint now = scheduler.now();

  jobsched::JobOptions failing;
  failing.priority = 10;
  failing.max_attempts = 1;
  failing.queue = "mail";
  const jobsched::Job failed = scheduler.add_job("will fail", failing);
  const auto failed_claim = scheduler.claim_next_job(1h);
  scheduler.fail(failed_claim->claim, "smtp down");

  jobsched::JobOptions running_options;
  running_options.priority = 9;
  running_options.queue = "mail";
  const jobsched::Job running = scheduler.add_job("running", running_options);
  (void)scheduler.claim_next_job(1h);

  const jobsched::Job completed = scheduler.add_job("done");
  scheduler.complete_job(completed.id);
  const jobsched::Job cancelled = scheduler.add_job("cancel me");
  scheduler.cancel_job(cancelled.id, "not wanted");
  jobsched::JobOptions expiring;
  expiring.created_at = now - 2h;
  expiring.expires_at = now - 1h;
  const jobsched::Job expired = scheduler.add_job("too late", expiring);
  jobsched::JobOptions later;
  later.starts_at = now + 1h;
  const jobsched::Job scheduled = scheduler.add_job(jobsched::Payload::blob("\x00\xff", 2), later);
  const jobsched::Job available = scheduler.add_job("due");

  std::cout << "failed " << failed.id << "\nrunning " << running.id << "\ncompleted "
            << completed.id << "\ncancelled " << cancelled.id << "\nexpired " << expired.id
            << "\nscheduled " << scheduled.id << "\navailable " << available.id << '\n';
}
