// SPDX-License-Identifier: MIT
// The schedule on a PostgreSQL server, for workers on many hosts: the same calls as on
// SQLite, with a connection string instead of a file. Run it with a connection string
// (default "dbname=postgres") and, optionally, the schema to keep the jobs in.

#include <cmath>
#include <iostream>
#include <string>

#include <jobsched/postgres.hpp>

int main(int argc, char** argv) {
  jobsched::PgOptions options;
  options.schema = argc > 2 ? argv[2] : "jobsched";  // created, with its tables, if missing
  auto scheduler = jobsched::PgScheduler::open(argc > 1 ? argv[1] : "dbname=postgres", options);

  scheduler.add_job("send the welcome mail");
  scheduler.add_job_from_now("send the reminder", jobsched::Seconds{3600});

  // Any number of processes, on any hosts, may run this loop on one schema: each claim
  // leases a different job (FOR UPDATE SKIP LOCKED), and a claim that ran out goes stale.
  while (auto claimed = scheduler.claim_next_job(jobsched::Seconds{30})) {
    std::cout << "running job #" << claimed->job.id << ": " << claimed->job.data.bytes() << "\n";
    scheduler.complete(claimed->claim);
  }
  if (auto next = scheduler.seconds_until_next_job())
    std::cout << "next job #" << next->id << " in " << std::lround(next->delay.count() / 60) << " min\n";
}
