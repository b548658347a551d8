// SPDX-License-Identifier: MIT
// Paused queues: stored in the file, so that claims, reads and Workers in every process pass
// over a paused queue's jobs until it is resumed, while its running jobs finish.

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_paused_queues {

namespace {

using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::database;
using jobsched_test::seconds;
using jobsched_test::TempFile;

constexpr double kT = 1'700'000'000.0;

jobsched::JobOptions in_queue(const std::string& queue, double starts, int priority = 0) {
  jobsched::JobOptions options;
  options.created_at = at(kT - 1000);
  options.starts_at = at(starts);
  options.queue = queue;
  options.priority = priority;
  return options;
}

std::vector<std::string> queues_of(const std::vector<ClaimedJob>& claimed) {
  std::vector<std::string> queues;
  for (const ClaimedJob& job : claimed)
    queues.push_back(job.job.queue);
  return queues;
}

}  // namespace

TEST_CASE("a paused queue's jobs are passed over by claims, locks and next_job until resumed",
          "[paused-queues]") {
  const bool on_file = GENERATE(true, false);
  TempFile file("paused-queue");
  auto scheduler = Scheduler::open(database(file, on_file));
  // The paused queue holds the job every order would take first.
  const Job urgent = scheduler.add_job("urgent", in_queue("mail", kT - 50, 9));
  const Job other = scheduler.add_job("other", in_queue("", kT - 10));
  const Job later = scheduler.add_job("later", in_queue("mail", kT + 60, 9));

  CHECK(scheduler.pause_queue("mail", at(kT)));
  CHECK_FALSE(scheduler.pause_queue("mail", at(kT + 1)));  // paused already
  CHECK(scheduler.paused_queues() == std::vector<std::string>{"mail"});

  CHECK(scheduler.next_job(at(kT))->id == other.id);
  CHECK(scheduler.seconds_until_next_job(at(kT))->id == other.id);
  CHECK_FALSE(scheduler.seconds_until_next_job({"mail"}, at(kT + 100)));
  CHECK(scheduler.count_pending_jobs(at(kT)) == 3);  // paused jobs are still pending
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, {"mail"}, at(kT)));
  CHECK(queues_of(scheduler.claim_jobs(10, Seconds{1000}, {"mail", ""}, at(kT))) ==
        std::vector<std::string>{""});
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, at(kT)));
  CHECK_FALSE(scheduler.lock_next_job(at(kT)));
  CHECK(scheduler.get_job(urgent.id, at(kT))->attempts == 0);

  // Time moves on: the scheduled job came due in the paused queue (a stored state that lags).
  CHECK(scheduler.claim_jobs(10, Seconds{30}, at(kT + 100)).empty());
  CHECK_FALSE(scheduler.next_job(at(kT + 100)));

  CHECK(scheduler.resume_queue("mail"));
  CHECK_FALSE(scheduler.resume_queue("mail"));
  CHECK(scheduler.paused_queues().empty());
  CHECK(scheduler.next_job(at(kT + 100))->id == urgent.id);
  const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(10, Seconds{30}, at(kT + 100));
  REQUIRE(claimed.size() == 2);
  CHECK(claimed[0].job.id == urgent.id);
  CHECK(claimed[1].job.id == later.id);
}

TEST_CASE("pausing a queue lets its running jobs finish, and other queues run on",
          "[paused-queues]") {
  const bool on_file = GENERATE(true, false);
  TempFile file("paused-running");
  auto scheduler = Scheduler::open(database(file, on_file));
  scheduler.add_job("first", in_queue("q", kT - 10));
  const Job second = scheduler.add_job("second", in_queue("q", kT - 5));
  const Job elsewhere = scheduler.add_job("elsewhere", in_queue("r", kT - 1));
  std::optional<ClaimedJob> running = scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(running);
  scheduler.pause_queue("q", at(kT + 1));
  CHECK(scheduler.extend(running->claim, Seconds{60}, at(kT + 2)));
  CHECK(scheduler.complete(running->claim, at(kT + 3)));
  CHECK(scheduler.get_job(running->job.id, at(kT + 3))->is_completed());
  const std::optional<ClaimedJob> next = scheduler.claim_next_job(Seconds{30}, at(kT + 4));
  REQUIRE(next);
  CHECK(next->job.id == elsewhere.id);
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, at(kT + 5)));
  CHECK(scheduler.get_job(second.id, at(kT + 5))->attempts == 0);
}

TEST_CASE("a queue with no jobs may be paused, and its jobs added later wait",
          "[paused-queues]") {
  TempFile file("paused-empty");
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.pause_queue("", at(kT)));  // the default queue
  const Job job = scheduler.add_job("waits", in_queue("", kT));
  CHECK_FALSE(scheduler.claim_next_job(Seconds{30}, at(kT + 1)));
  CHECK_FALSE(scheduler.next_job(at(kT + 1)));
  CHECK(scheduler.paused_queues() == std::vector<std::string>{""});
  // The pause is in the file: another connection sees it.
  {
    auto other = Scheduler::open(file.path());
    CHECK(other.paused_queues() == std::vector<std::string>{""});
    CHECK_FALSE(other.claim_next_job(Seconds{30}, at(kT + 1)));
    CHECK(other.resume_queue(""));
  }
  CHECK(scheduler.claim_next_job(Seconds{30}, at(kT + 2))->job.id == job.id);
}

TEST_CASE("a read-only scheduler sees the paused queues and writes none", "[paused-queues]") {
  TempFile file("paused-read-only");
  {
    auto scheduler = Scheduler::open(file.path());
    scheduler.add_job("a", in_queue("a", kT));
    scheduler.add_job("b", in_queue("b", kT + 1));
    scheduler.pause_queue("a", at(kT));
  }
  jobsched::Options options;
  options.read_only = true;
  auto reader = Scheduler::open(file.path(), options);
  CHECK(reader.paused_queues() == std::vector<std::string>{"a"});
  CHECK(reader.next_job(at(kT + 2))->queue == "b");
  CHECK_THROWS_AS(reader.pause_queue("b"), jobsched::ReadOnlyError);
  CHECK_THROWS_AS(reader.resume_queue("a"), jobsched::ReadOnlyError);
}

TEST_CASE("a queue paused in one process stops the Workers of another until it is resumed",
          "[paused-queues][processes]") {
  using namespace std::chrono_literals;
  TempFile file("paused-processes");
  std::vector<std::int64_t> held_back;
  std::vector<std::int64_t> free_ones;
  {
    auto scheduler = Scheduler::open(file.path());
    scheduler.pause_queue("held");
    for (int i = 0; i < 5; ++i) {
      held_back.push_back(scheduler.add_job("held " + std::to_string(i), in_queue("held", kT)).id);
      free_ones.push_back(scheduler.add_job("free " + std::to_string(i), in_queue("free", kT)).id);
    }
  }
  // Two processes, each with a Worker serving every queue, until every job is completed.
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      jobsched_test::die_with_parent();
      int status = 1;
      try {
        jobsched::WorkerOptions options;
        options.poll_interval = 20ms;
        jobsched::Worker worker(file.path(), [](const Job&) {}, options);
        auto look = Scheduler::open(file.path());
        const jobsched_test::Deadline deadline(30s, "every job to be completed");
        while (!deadline.passed() && look.count_pending_jobs() > 0)
          std::this_thread::sleep_for(10ms);
        status = look.count_pending_jobs() == 0 ? 0 : 2;
      } catch (...) {
        status = 3;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  auto scheduler = Scheduler::open(file.path());
  auto completed = [&](const std::vector<std::int64_t>& ids) {
    int done = 0;
    for (const std::int64_t id : ids)
      done += scheduler.get_job(id)->is_completed() ? 1 : 0;
    return done;
  };
  const jobsched_test::Deadline free_done(30s, "the free queue's jobs to be completed");
  while (!free_done.passed() && completed(free_ones) < 5)
    std::this_thread::sleep_for(10ms);
  REQUIRE(completed(free_ones) == 5);
  // Many polls later, the paused queue's jobs are still untouched.
  std::this_thread::sleep_for(300ms);
  for (const std::int64_t id : held_back) {
    const Job job = *scheduler.get_job(id);
    CHECK(job.attempts == 0);
    CHECK_FALSE(job.is_completed());
  }
  const double resumed_at = seconds(scheduler.now());
  CHECK(scheduler.resume_queue("held"));
  for (const pid_t pid : children) {
    const jobsched_test::ChildEnd end =
        jobsched_test::wait_for_child(pid, jobsched_test::Deadline(40s, "a worker process to end"));
    INFO("a worker process " << end.describe());
    CHECK(end.exited);
    CHECK(end.exit_code == 0);
  }
  for (const std::int64_t id : held_back) {
    const Job job = *scheduler.get_job(id);
    CHECK(job.is_completed());
    CHECK(seconds(*job.completed_at) >= resumed_at);
  }
}

TEST_CASE("stats give each queue its own lateness while a queue is paused, paused ones too",
          "[paused-queues]") {
  const bool on_file = GENERATE(true, false);
  TempFile file("paused-stats");
  auto scheduler = Scheduler::open(database(file, on_file));
  scheduler.add_job("a", in_queue("a", kT - 30));
  scheduler.add_job("b", in_queue("b", kT - 120));
  scheduler.add_job("c", in_queue("c", kT - 10));
  auto lateness = [&](const std::string& name) {
    for (const jobsched::QueueStats& queue : scheduler.stats(at(kT)).queues) {
      if (queue.queue == name)
        return queue.oldest_due ? queue.oldest_due->count() : -1.0;
    }
    return -2.0;
  };
  CHECK(lateness("a") == 30.0);
  CHECK(lateness("b") == 120.0);
  scheduler.pause_queue("c", at(kT));
  scheduler.pause_queue("b", at(kT));
  CHECK(lateness("a") == 30.0);
  CHECK(lateness("b") == 120.0);
  CHECK(lateness("c") == 10.0);
  CHECK(scheduler.stats(at(kT)).oldest_due == Seconds{120});
  // A claim passes over the paused queues' older jobs all the same.
  CHECK(scheduler.claim_next_job(Seconds{30}, at(kT))->job.queue == "a");
}

TEST_CASE("claims from every queue pass over a paused queue's jobs, few or many, in claim order",
          "[paused-queues]") {
  const bool on_file = GENERATE(true, false);
  // Few: the index of available jobs is read past them. Many (more than a claim passes over
  // there): each served queue is read instead. Either way, the same jobs in the same order.
  const int paused_jobs = GENERATE(3, 200);
  TempFile file("paused-pass-over");
  auto scheduler = Scheduler::open(database(file, on_file));
  std::vector<jobsched::NewJob> jobs;
  // One job comes before the paused ones: a batch finds it, then the paused jobs.
  jobs.push_back({jobsched::Payload::text("first"), in_queue("a", kT - 600, 9)});
  for (int i = 0; i < paused_jobs; ++i)
    jobs.push_back({jobsched::Payload::text("held"), in_queue("held", kT - 500 + i, 5)});
  for (int i = 0; i < 12; ++i) {
    jobs.push_back({jobsched::Payload::text("a"), in_queue("a", kT - 100 + i, i % 3)});
    jobs.push_back({jobsched::Payload::text("b"), in_queue("b", kT - 99 + i, i % 3)});
  }
  scheduler.add_jobs(jobs);
  scheduler.pause_queue("held", at(kT));
  // The order a claim must follow: priority, then start, then id, among queues a and b.
  std::vector<std::int64_t> expected;
  {
    jobsched::JobQuery query;
    query.state = jobsched::JobState::available;
    query.limit = 1000;
    std::vector<Job> open = scheduler.list_jobs(query, at(kT)).jobs;
    open.erase(std::remove_if(open.begin(), open.end(),
                              [](const Job& job) { return job.queue == "held"; }),
               open.end());
    std::sort(open.begin(), open.end(), [](const Job& x, const Job& y) {
      if (x.priority != y.priority)
        return x.priority > y.priority;
      if (x.starts_at != y.starts_at)
        return x.starts_at < y.starts_at;
      return x.id < y.id;
    });
    for (const Job& job : open)
      expected.push_back(job.id);
  }
  REQUIRE(expected.size() == 25);
  std::vector<std::int64_t> claimed;
  const std::vector<ClaimedJob> batch = scheduler.claim_jobs(7, Seconds{1000}, at(kT));
  CHECK(batch.size() == 7);
  for (const ClaimedJob& job : batch)
    claimed.push_back(job.job.id);
  const auto one = scheduler.claim_next_job(Seconds{1000}, at(kT));
  REQUIRE(one);
  claimed.push_back(one->job.id);
  while (const auto next = scheduler.claim_next_job(Seconds{1000}, at(kT)))
    claimed.push_back(next->job.id);
  CHECK(claimed == expected);
  CHECK(scheduler.count_pending_jobs(at(kT)) == paused_jobs + 25);
}

}  // namespace test_paused_queues
