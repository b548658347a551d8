// SPDX-License-Identifier: MIT
// Quick start: schedule a few jobs in jobs.db and run each when it falls due.
// Jobs left over from an interrupted run are picked up too: they live in the file.

#include <jobsched/jobsched.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

int main() {
  using namespace std::chrono_literals;
  auto scheduler = jobsched::Scheduler::open("jobs.db");
  const jobsched::TimePoint start = scheduler.now();
  auto elapsed = [&] { return std::to_string((scheduler.now() - start).count()).substr(0, 4); };

  scheduler.add_job_from_now("say hello", 1s);
  scheduler.add_job_from_now("water the plants", 1.2s);
  // Due in 1.5 s but only good until 2 s: the plants take a second, so it expires unrun.
  const auto too_late = scheduler.add_job_from_now("catch the 2 o'clock bus", 1.5s, 2s);
  scheduler.add_job_from_now("write the report", 3s, 60s);
  std::cout << "[" << elapsed() << " s] scheduled " << scheduler.count_pending_jobs()
            << " jobs in jobs.db\n";

  // The event loop any host has: wait for the next job, check it is still due, run it.
  while (const auto next = scheduler.seconds_until_next_job()) {
    std::this_thread::sleep_for(next->delay);
    const auto job = scheduler.get_job(next->id);
    if (!job || !job->is_pending(scheduler.now()))
      continue;  // expired or done meanwhile
    std::cout << "[" << elapsed() << " s] running job #" << job->id << ": " << job->data.bytes()
              << '\n';
    if (job->data.bytes() == "water the plants")
      std::this_thread::sleep_for(1s);
    scheduler.complete_job(job->id);
  }

  if (scheduler.get_job(too_late.id)->is_expired(scheduler.now())) {
    std::cout << "[" << elapsed() << " s] job #" << too_late.id << " (" << too_late.data.bytes()
              << ") expired before it could run\n";
  }
  const auto completed = scheduler.delete_completed_jobs();
  const auto expired = scheduler.delete_expired_jobs();
  std::cout << "[" << elapsed() << " s] nothing left to do; cleaned up " << completed
            << " completed and " << expired << " expired jobs\n";
}
