// SPDX-License-Identifier: MIT
// A Worker handler with a JobContext: a result stored with the completion, a snooze that
// does not spend the attempt, jobs added with the completion (and only with it), and a
// cancellation the running handler notices.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/temp_file.hpp"

namespace test_job_context {

namespace {

using jobsched::Job;
using jobsched::JobContext;
using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::Worker;
using jobsched::WorkerOptions;
using jobsched_test::contains;
using jobsched_test::Deadline;
using jobsched_test::query_int;
using jobsched_test::require_eventually;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

Deadline within(const char* what) {
  return Deadline(std::chrono::seconds(20), what);
}

}  // namespace

TEST_CASE("a handler's result is stored with the completion", "[worker][context]") {
  TempFile file("context-result");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job(Payload("resize"));
  Worker worker(file.path(), [](const Job& running, JobContext& context) {
    context.set_result(Payload("resized " + std::string(running.data.bytes())));
  });
  require_eventually(within("the job to complete"), [&] { return worker.completed() == 1; });
  worker.stop();
  const Job done = *scheduler.get_job(job.id);
  CHECK(done.is_completed());
  CHECK(done.result == Payload("resized resize"));
}

TEST_CASE("a snoozed job runs again later without spending its attempt",
          "[worker][context]") {
  TempFile file("context-snooze");
  auto scheduler = Scheduler::open(file.path());
  jobsched::JobOptions options;
  options.max_attempts = 1;
  const Job job = scheduler.add_job(Payload("poll"), options);
  std::mutex mutex;
  std::vector<int> attempts;
  std::vector<std::chrono::steady_clock::time_point> runs;
  Worker worker(file.path(), [&](const Job& running, JobContext& context) {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      attempts.push_back(running.attempts);
      runs.push_back(std::chrono::steady_clock::now());
    }
    if (running.attempts == 1 && attempts.size() < 3)
      context.snooze(Seconds{0.2});
  });
  require_eventually(within("the job to complete after two snoozes"),
                     [&] { return worker.completed() == 1; });
  worker.stop();
  CHECK(worker.snoozed() == 2);
  CHECK(worker.failed() == 0);
  const std::lock_guard<std::mutex> lock(mutex);
  // Each run on the first and only attempt; each at least the snooze after the last.
  CHECK(attempts == std::vector<int>{1, 1, 1});
  REQUIRE(runs.size() == 3);
  CHECK(runs[1] - runs[0] >= 190ms);
  CHECK(runs[2] - runs[1] >= 190ms);
  CHECK(scheduler.get_job(job.id)->is_completed());
}

TEST_CASE("jobs a handler adds are added with its completion, and only then",
          "[worker][context]") {
  TempFile file("context-follow-ups");
  auto scheduler = Scheduler::open(file.path());
  scheduler.add_job(Payload("ok"));
  scheduler.add_job(Payload("throws"));
  std::atomic<int> runs{0};
  Worker worker(file.path(), [&](const Job& running, JobContext& context) {
    ++runs;
    const std::string data(running.data.bytes());
    if (data == "ok" || data == "throws") {
      jobsched::JobOptions later;
      later.queue = "follow-ups";
      later.starts_at = jobsched::system_now() + Seconds{3600};
      context.add_job(Payload("after " + data), later);
    }
    if (data == "throws")
      throw std::runtime_error("no follow-up for me");
  });
  require_eventually(within("both jobs to be settled"),
                     [&] { return worker.completed() == 1 && worker.failed() == 1; });
  worker.stop();
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job WHERE queue = 'follow-ups'") ==
        1);
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job_payload p JOIN job j ON"
                                      " j.id = p.job_id WHERE j.queue = 'follow-ups'"
                                      " AND CAST(p.data AS TEXT) = 'after ok'") == 1);
}

TEST_CASE("a bad follow-up or snooze is refused in the handler, which then fails",
          "[worker][context]") {
  TempFile file("context-bad");
  auto scheduler = Scheduler::open(file.path());
  jobsched::JobOptions once;
  once.max_attempts = 1;
  const Job bad_job = scheduler.add_job(Payload("bad job"), once);
  const Job bad_snooze = scheduler.add_job(Payload("bad snooze"), once);
  Worker worker(file.path(), [&](const Job& running, JobContext& context) {
    if (running.id == bad_job.id) {
      jobsched::JobOptions backwards;
      backwards.created_at = jobsched::system_now();
      backwards.starts_at = *backwards.created_at - Seconds{10};
      context.add_job(Payload("x"), backwards);
    } else {
      context.snooze(Seconds{-1});
    }
  });
  require_eventually(within("both to fail"), [&] { return worker.failed() == 2; });
  worker.stop();
  CHECK(contains(scheduler.get_job(bad_job.id)->last_error.value_or(""), "starts"));
  CHECK(contains(scheduler.get_job(bad_snooze.id)->last_error.value_or(""), "got -1 s"));
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 2);
}

TEST_CASE("a running handler notices its job was cancelled", "[worker][context]") {
  TempFile file("context-cancel");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job(Payload("long"));
  std::atomic<bool> started{false};
  std::atomic<bool> noticed{false};
  // A beat every 20 s on its own: the handler's heartbeat() makes it notice within 5 s.
  WorkerOptions options;
  options.lease = Seconds{60};
  Worker worker(
      file.path(),
      [&](const Job&, JobContext& context) {
        started = true;
        context.add_job(Payload("never added: the claim goes stale"));
        const Deadline deadline(std::chrono::seconds(20), "the cancellation to be noticed");
        while (!deadline.passed()) {
          context.heartbeat();
          if (context.wait_cancelled(20ms)) {
            noticed = context.cancelled();
            return;
          }
        }
      },
      options);
  require_eventually(within("the handler to start"), [&] { return started.load(); });
  REQUIRE(scheduler.cancel_job(job.id, "not needed any more"));
  require_eventually(Deadline(std::chrono::seconds(5), "the handler to notice"),
                     [&] { return noticed.load(); });
  require_eventually(within("the stale result to be counted"),
                     [&] { return worker.stale() == 1; });
  worker.stop();
  CHECK(worker.completed() == 0);
  const Job cancelled = *scheduler.get_job(job.id);
  CHECK(cancelled.is_cancelled());
  CHECK_FALSE(cancelled.is_completed());
  CHECK(cancelled.last_error == std::optional<std::string>("not needed any more"));
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 1);
}

}  // namespace test_job_context
