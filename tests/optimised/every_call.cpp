// SPDX-License-Identifier: MIT
// A user's program that calls every public function of jobsched, for the optimised builds
// (tests/optimised/CMakeLists.txt): g++ and clang++ at -O1, -O2, -Os and -O3 with -Werror,
// the library's headers on -I, so a warning that only inlining into a caller brings out
// (g++'s -Wmaybe-uninitialized, say) fails the build. It also runs, and checks what each
// call answered: an optimiser that changed the meaning would fail it. Exit status 0: all
// answers as expected.

#include <jobsched/jobsched.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

int failures = 0;

void expect(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "every_call: %s\n", what);
    ++failures;
  }
}

jobsched::TimePoint at(double seconds) { return jobsched::from_unix_seconds(seconds); }

void every_scheduler_call(jobsched::Scheduler& s) {
  using jobsched::Seconds;
  constexpr double t = 1'700'000'000.0;
  jobsched::JobOptions options;
  options.created_at = at(t - 100);
  options.starts_at = at(t - 10);
  options.queue = "mail";
  options.priority = 2;
  options.max_attempts = 2;
  const jobsched::Job first = s.add_job("first", options);
  const jobsched::Job later = s.add_job_from_now(jobsched::Payload::text("later"), Seconds{60},
                                                 Seconds{600}, at(t));
  expect(s.get_job(first.id, at(t)) == first, "get_job returns the job as added");
  expect(s.next_job(at(t))->id == first.id, "next_job");
  expect(s.seconds_until_next_job(at(t))->id == first.id, "seconds_until_next_job");
  expect(s.seconds_until_next_job({"mail"}, at(t))->delay == Seconds{0},
         "seconds_until_next_job(queues)");
  expect(s.count_pending_jobs(at(t)) == 2, "count_pending_jobs");

  auto claimed = s.claim_next_job(Seconds{30}, at(t));
  expect(claimed && claimed->job.id == first.id, "claim_next_job");
  if (claimed) {
    jobsched::Claim claim = claimed->claim;
    expect(s.extend(claim, Seconds{60}, at(t + 1)), "extend");
    expect(claim.lease_until == at(t + 61), "extend moves the lease");
    expect(s.fail(claim, "first attempt", at(t + 2)), "fail");
  }
  claimed = s.claim_next_job(Seconds{30}, {"mail", ""}, at(t + 1000));
  expect(claimed && claimed->job.attempts == 2, "claim_next_job(queues)");
  if (claimed) {
    expect(s.release(claimed->claim, at(t + 1001)), "release");
    claimed = s.claim_next_job(Seconds{30}, at(t + 1002));
    expect(claimed.has_value() && s.fail(claimed->claim, "last attempt", at(t + 1003)),
           "fail on the last attempt");
  }
  expect(s.failed_jobs(at(t + 1004)).size() == 1, "failed_jobs");
  expect(s.retry_job(first.id, at(t + 1005)), "retry_job");
  expect(s.lock_job(first.id, at(t + 1006)), "lock_job");
  expect(s.unlock_job(first.id, at(t + 1007)), "unlock_job");
  const auto locked = s.lock_next_job(at(t + 1008));
  expect(locked && locked->id == first.id, "lock_next_job");
  expect(s.complete_job(first.id, at(t + 1009)), "complete_job");
  expect(s.delete_completed_jobs() == 1, "delete_completed_jobs");
  expect(s.delete_expired_jobs(at(t + 10'000)) == 1, "delete_expired_jobs");
  expect(!s.delete_job(later.id), "delete_job of a job already deleted");
  const jobsched::Job failing = s.add_job("fails", options);
  const auto lapsed = s.claim_next_job(Seconds{1}, at(t));
  claimed = s.claim_next_job(Seconds{1}, at(t + 5));
  expect(lapsed && claimed && claimed->job.attempts == 2, "a lapsed lease is claimed again");
  expect(lapsed && !s.complete(lapsed->claim, at(t + 5.5)), "a stale claim is refused");
  expect(claimed && s.complete(claimed->claim, at(t + 5.5)), "complete");
  expect(s.get_job(failing.id, at(t + 6))->is_completed(), "completed");
  expect(s.delete_failed_jobs(at(t + 6)) == 0, "delete_failed_jobs");
  // Batches.
  std::vector<jobsched::NewJob> batch;
  for (int i = 0; i < 3; ++i) {
    jobsched::JobOptions due;
    due.created_at = at(t - 50 + i);
    batch.push_back(jobsched::NewJob{jobsched::Payload("batch " + std::to_string(i)), due});
  }
  const std::vector<jobsched::Job> added = s.add_jobs(batch);
  expect(added.size() == 3 && added[2].data == jobsched::Payload("batch 2"), "add_jobs");
  const std::vector<jobsched::ClaimedJob> claims = s.claim_jobs(3, Seconds{30}, at(t + 7));
  expect(claims.size() == 3 && claims[0].job.id == added[0].id, "claim_jobs");
  if (claims.size() == 3) {
    expect(s.complete_all({claims[0].claim}, at(t + 8)) == std::vector<bool>{true},
           "complete_all");
    expect(s.fail_all({jobsched::ClaimFailure{claims[1].claim, "no"}}, at(t + 8)) ==
               std::vector<bool>{true},
           "fail_all");
    expect(s.release_all({claims[2].claim, claims[0].claim}, at(t + 8)) ==
               std::vector<bool>{true, false},
           "release_all");
  }
  // The released job, and the failed one back after its backoff (at most 1 s).
  const std::vector<jobsched::ClaimedJob> again = s.claim_jobs(5, Seconds{30}, {""}, at(t + 9));
  expect(again.size() == 2, "claim_jobs(queues)");
  for (const jobsched::ClaimedJob& job : again)
    expect(s.complete(job.claim, at(t + 9)), "complete after claim_jobs");
  // Schedules: declared, fired by a claim, listed, paused, resumed, deleted.
  {
    jobsched::ScheduleOptions schedule;
    schedule.data = jobsched::Payload("tick");
    schedule.misfire = jobsched::Misfire::catch_up;
    const jobsched::Schedule made =
        s.put_schedule("tick", jobsched::Rule::every(Seconds{10}, at(t)), schedule, at(t + 9));
    expect(made.next_fire == at(t + 10), "put_schedule");
    const std::vector<jobsched::ClaimedJob> fired = s.claim_jobs(5, Seconds{30}, at(t + 10));
    expect(fired.size() == 1 && fired[0].job.firing &&
               fired[0].job.firing->at == at(t + 10) && fired[0].job.firing->schedule == "tick",
           "a firing claimed");
    expect(fired.size() == 1 && s.complete(fired[0].claim, at(t + 10)), "a firing completed");
    expect(s.get_schedule("tick")->last_fire == at(t + 10) && s.schedules().size() == 1,
           "get_schedule and schedules");
    expect(s.pause_schedule("tick", at(t + 11)) && s.get_schedule("tick")->paused,
           "pause_schedule");
    expect(s.resume_schedule("tick", at(t + 11)) &&
               s.get_schedule("tick")->next_fire == at(t + 20),
           "resume_schedule");
    expect(s.delete_schedule("tick", at(t + 11)) && s.schedules().empty(), "delete_schedule");
    const jobsched::Rule cron = jobsched::Rule::cron("*/15 9-17 * * MON-FRI");
    expect(jobsched::Rule::parse(cron.to_string()) == cron && cron.is_cron() &&
               cron.next_after(at(t)).has_value(),
           "Rule");
    expect(jobsched::TimeZone::parse("+05:30") == jobsched::TimeZone::fixed(std::chrono::minutes(330)),
           "TimeZone");
  }
  // Job control: a transaction, a result, a snooze, a cancel.
  {
    jobsched::JobOptions control;
    control.created_at = at(t + 12);
    control.starts_at = at(t + 12);
    jobsched::Transaction tx = s.transaction();
    const jobsched::Job controlled = s.add_job("control", control);
    tx.commit();
    expect(!tx.active(), "transaction");
    const std::optional<jobsched::ClaimedJob> taken = s.claim_next_job(Seconds{30}, at(t + 12));
    expect(taken && taken->job.id == controlled.id, "claim in control");
    expect(taken && s.snooze(taken->claim, Seconds{1}, at(t + 12)), "snooze");
    const std::optional<jobsched::ClaimedJob> snoozed = s.claim_next_job(Seconds{30}, at(t + 13));
    expect(snoozed && s.complete(snoozed->claim, jobsched::Payload("done"), at(t + 13)) &&
               s.get_job(controlled.id)->result == jobsched::Payload("done"),
           "complete with a result");
    control.starts_at = at(t + 14);
    const jobsched::Job to_cancel = s.add_job("cancel me", control);
    expect(s.cancel_job(to_cancel.id, "no", at(t + 13)) && s.get_job(to_cancel.id)->is_cancelled(),
           "cancel_job");
  }
  expect(s.data_version() > 0, "data_version");
  expect(s.schema_version() == jobsched::current_schema_version && !s.needs_upgrade(),
         "schema_version");
  expect(!s.read_only() && s.handle() != nullptr, "read_only and handle");
  (void)s.now();
  (void)s.migrated_from();
}

void worker_runs_a_job(const std::string& path) {
  jobsched::WorkerOptions options;
  options.threads = 2;
  options.lease = jobsched::Seconds{5};
  std::atomic<int> runs{0};
  jobsched::Worker worker(path, [&](const jobsched::Job&) { ++runs; }, options);
  {
    auto producer = jobsched::Scheduler::open(path);
    producer.add_job("for the worker");
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (worker.completed() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  worker.stop();
  expect(worker.completed() == 1 && runs == 1 && worker.failed() == 0 && worker.stale() == 0 &&
             worker.stop_requested(),
         "the Worker ran and completed the job");
  // A handler with a JobContext stores a result.
  std::atomic<std::int64_t> id{0};
  jobsched::Worker with_context(
      path,
      [&](const jobsched::Job& job, jobsched::JobContext& context) {
        id = job.id;
        context.set_result(jobsched::Payload("result"));
        (void)context.cancelled();
        (void)context.claim();
      },
      options);
  {
    auto producer = jobsched::Scheduler::open(path);
    producer.add_job("for the context");
  }
  const auto later = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (with_context.completed() < 1 && std::chrono::steady_clock::now() < later)
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  with_context.stop();
  auto reader = jobsched::Scheduler::open(path);
  expect(with_context.completed() == 1 && reader.get_job(id)->result == jobsched::Payload("result"),
         "a JobContext handler's result");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path = (argc > 1 ? std::string(argv[1]) : std::string("every_call")) + ".db";
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
  try {
    {
      auto memory = jobsched::Scheduler::open(":memory:");
      every_scheduler_call(memory);
    }
    {
      jobsched::Options options;
      options.synchronous = jobsched::Synchronous::normal;
      auto file = jobsched::Scheduler::open(path, options);
      every_scheduler_call(file);
      expect(!file.file().empty(), "file");
      jobsched::Options reading;
      reading.read_only = true;
      auto reader = jobsched::Scheduler::open(path, reading);
      expect(reader.read_only() && reader.count_pending_jobs() == 0, "read_only");
    }
    worker_runs_a_job(path);
    {
      jobsched::Adder adder(path);
      const jobsched::Job job = adder.add("through the adder");
      expect(job.id > 0 && adder.commits() == 1, "Adder::add");
    }
  } catch (const jobsched::Error& error) {
    std::fprintf(stderr, "every_call: %s\n", error.what());
    return 1;
  }
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
  return failures == 0 ? 0 : 1;
}
