// SPDX-License-Identifier: MIT
// A pool of Workers in several processes sharing one job file: the parent adds the jobs,
// forks, and each child runs a Worker until nothing is left. Every job runs exactly once,
// whichever process claims it, because a claim is a lease taken in one write transaction.
// POSIX only (fork, pipe, waitpid).

#include <jobsched/jobsched.hpp>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int process_count = 3;
constexpr int jobs_to_add = 300;
const std::string path = "worker_pool.db";

// A child process: its own Worker (two handler threads) on the shared file, until every
// job is completed. Returns how many jobs this process completed.
std::int64_t run_worker_process() {
  using namespace std::chrono_literals;
  jobsched::WorkerOptions options;
  options.threads = 2;
  // A Worker claims jobs ahead of its free threads (up to 256 by default) to keep them
  // busy; a few is enough here, and lets the three processes share the work visibly.
  options.max_claimed_ahead = 2;
  jobsched::Worker worker(
      path, [](const jobsched::Job&) { std::this_thread::sleep_for(2ms); },  // the work
      options);
  // Any connection may ask: a job claimed by another process still counts as pending
  // until that process completes it, so 0 means every job is done.
  auto scheduler = jobsched::Scheduler::open(path);
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  while (scheduler.count_pending_jobs() > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(10ms);
  worker.stop();  // commits what it finished; returns once its handlers have returned
  return worker.completed();
}

}  // namespace

int main() {
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(path + suffix);  // a fresh file for every run

  // 1. Add the jobs in one transaction, then close the connection: an SQLite connection
  //    must never be used on both sides of a fork, and a Worker starts threads, so every
  //    Scheduler and Worker is made after the fork, in the process that uses it.
  std::vector<std::int64_t> ids;
  {
    auto scheduler = jobsched::Scheduler::open(path);
    std::vector<jobsched::NewJob> jobs;
    for (int i = 0; i < jobs_to_add; ++i)
      jobs.push_back({"job " + std::to_string(i), {}});
    for (const jobsched::Job& job : scheduler.add_jobs(std::move(jobs)))
      ids.push_back(job.id);
  }
  // Flushed before forking, or each child would carry a copy of the unwritten line.
  std::cout << "added " << ids.size() << " jobs to " << path << std::endl;

  // 2. Fork the pool. Each child reports its count on a pipe and leaves with _exit, so it
  //    runs none of the parent's cleanup.
  std::vector<pid_t> children;
  std::vector<int> reports;
  for (int p = 0; p < process_count; ++p) {
    int fds[2];
    if (pipe(fds) != 0) {
      std::perror("pipe");
      return 1;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 1;
    }
    if (pid == 0) {
      close(fds[0]);
      std::int64_t completed = -1;
      try {
        completed = run_worker_process();
      } catch (const std::exception& e) {
        std::cerr << "worker process: " << e.what() << '\n';
      }
      const bool sent =
          write(fds[1], &completed, sizeof completed) == static_cast<ssize_t>(sizeof completed);
      _exit(sent && completed >= 0 ? 0 : 1);
    }
    close(fds[1]);
    children.push_back(pid);
    reports.push_back(fds[0]);
  }

  // 3. Collect what each process ran.
  std::int64_t total = 0;
  bool children_ok = true;
  for (int p = 0; p < process_count; ++p) {
    std::int64_t completed = -1;
    const bool received = read(reports[static_cast<std::size_t>(p)], &completed,
                               sizeof completed) == static_cast<ssize_t>(sizeof completed);
    close(reports[static_cast<std::size_t>(p)]);
    int status = 0;
    waitpid(children[static_cast<std::size_t>(p)], &status, 0);
    children_ok = children_ok && received && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::cout << "worker process " << p + 1 << " ran " << completed << " jobs\n";
    total += completed;
  }

  // 4. Check the file: every job completed, each claimed once (one attempt).
  auto scheduler = jobsched::Scheduler::open(path);
  int run_once = 0;
  for (const std::int64_t id : ids) {
    const auto job = scheduler.get_job(id);
    if (job && job->is_completed() && job->attempts == 1)
      ++run_once;
  }
  const bool exact = children_ok && total == jobs_to_add && run_once == jobs_to_add;
  std::cout << "total: " << total << " of " << jobs_to_add << " jobs, " << run_once
            << " completed after exactly one attempt: " << (exact ? "exact" : "NOT EXACT") << '\n';
  return exact ? 0 : 1;
}
