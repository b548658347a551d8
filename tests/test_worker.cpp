// SPDX-License-Identifier: MIT
// The Worker: handler threads that claim, run and complete jobs, a heartbeat, and stop().

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_worker {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::Worker;
using jobsched::WorkerOptions;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

namespace {

/// Polls `condition` every few milliseconds until it holds or `timeout` (stretched in
/// sanitizer builds) passes.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = 30s) {
  return jobsched_test::wait_until(jobsched_test::Deadline(timeout, "a condition"), condition);
}

/// Job ids seen by a handler, from any thread.
struct Seen {
  std::mutex mutex;
  std::map<std::int64_t, int> times;
  std::vector<jobsched::TimePoint> handled_at;

  void record(const Job& job) {
    const std::lock_guard<std::mutex> lock(mutex);
    ++times[job.id];
    handled_at.push_back(jobsched::system_now());
  }
  int count(std::int64_t id) {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto found = times.find(id);
    return found == times.end() ? 0 : found->second;
  }
  std::size_t size() {
    const std::lock_guard<std::mutex> lock(mutex);
    return times.size();
  }
};

JobOptions in_queue(const std::string& queue) {
  JobOptions options;
  options.queue = queue;
  return options;
}

WorkerOptions fast_options() {
  WorkerOptions options;
  options.scheduler.synchronous = jobsched::Synchronous::normal;
  return options;
}

template <class Make>
std::string invalid_argument_message(Make make) {
  try {
    make();
  } catch (const jobsched::InvalidArgumentError& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

bool mentions(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) {
    return true;
  }
  UNSCOPED_INFO("'" << text << "' does not mention " << part);
  return false;
}

}  // namespace

TEST_CASE("a worker runs due jobs and completes each once") {
  TempFile file("worker-runs");
  constexpr int jobs = 60;
  auto scheduler = Scheduler::open(file.path());
  std::vector<std::int64_t> ids;
  ids.reserve(jobs);
  for (int i = 0; i < jobs; ++i) {
    ids.push_back(scheduler.add_job(std::to_string(i)).id);
  }

  auto seen = std::make_shared<Seen>();
  WorkerOptions options = fast_options();
  options.threads = 3;
  Worker worker(
      file.path(), [seen](const Job& job) { seen->record(job); }, options);
  REQUIRE(eventually([&] { return worker.completed() == jobs; }));
  worker.stop();

  CHECK(worker.completed() == jobs);
  CHECK(worker.failed() == 0);
  CHECK(worker.stale() == 0);
  CHECK(seen->size() == static_cast<std::size_t>(jobs));
  for (const std::int64_t id : ids) {
    CHECK(seen->count(id) == 1);
    const auto job = scheduler.get_job(id);
    REQUIRE(job.has_value());
    CHECK(job->is_completed());
    CHECK(job->attempts == 1);
  }
  CHECK(scheduler.count_pending_jobs() == 0);
}

TEST_CASE("a job added in the same process wakes a sleeping worker at once") {
  TempFile file("worker-wake");
  auto seen = std::make_shared<Seen>();
  WorkerOptions options;
  options.poll_interval = 10s;  // far longer than the wait below: only the wake-up can do it
  Worker worker(
      file.path(), [seen](const Job& job) { seen->record(job); }, options);
  std::this_thread::sleep_for(200ms);  // let it find nothing and go to sleep

  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job("wake up");
  CHECK(eventually([&] { return seen->count(job.id) == 1; }, 5s));
  CHECK(eventually([&] { return worker.completed() == 1; }, 5s));
}

namespace {

/// A worker polling every `poll_interval`; another process adds a job: the worker must
/// run it within `within`.
void check_woken_by_other_process(std::chrono::milliseconds poll_interval,
                                  std::chrono::seconds within) {
  TempFile file("worker-process");
  { Scheduler::open(file.path()); }
  // Fork before any thread starts; the child adds its job when told to.
  int go[2];
  REQUIRE(::pipe(go) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    jobsched_test::die_with_parent();
    ::close(go[1]);
    char byte = 0;
    int status = 1;
    if (jobsched_test::wait_readable(go[0], jobsched_test::Deadline(30s, "the word to add")) &&
        ::read(go[0], &byte, 1) == 1) {
      try {
        auto scheduler = Scheduler::open(file.path());
        scheduler.add_job("from another process");
        status = 0;
      } catch (...) {
        status = 2;
      }
    }
    ::_exit(status);
  }
  ::close(go[0]);

  auto seen = std::make_shared<Seen>();
  WorkerOptions options;
  options.poll_interval = poll_interval;
  Worker worker(
      file.path(), [seen](const Job& job) { seen->record(job); }, options);
  std::this_thread::sleep_for(200ms);
  const char byte = 1;
  REQUIRE(::write(go[1], &byte, 1) == 1);
  ::close(go[1]);
  const jobsched_test::ChildEnd end =
      jobsched_test::wait_for_child(child, jobsched_test::Deadline(30s, "the adding child to end"));
  INFO("the child " << end.describe());
  REQUIRE(end.exited);
  REQUIRE(end.exit_code == 0);
  CHECK(eventually([&] { return worker.completed() == 1; }, within));
  CHECK(seen->size() == 1);
}

}  // namespace

TEST_CASE("a job added by another process wakes the worker at its next poll") {
  check_woken_by_other_process(50ms, 5s);
}

#if JOBSCHED_HAS_FILE_WATCH
TEST_CASE("on Linux a job added by another process wakes the worker without waiting for a poll") {
  // Polling once an hour: only the watch on the -wal file can wake it in time.
  check_woken_by_other_process(std::chrono::hours(1), 5s);
}
#endif

TEST_CASE("a job due later runs after its start time, not before") {
  TempFile file("worker-later");
  auto seen = std::make_shared<Seen>();
  Worker worker(file.path(), [seen](const Job& job) { seen->record(job); });
  std::this_thread::sleep_for(100ms);

  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job_from_now("later", Seconds{0.3});
  REQUIRE(eventually([&] { return worker.completed() == 1; }, 10s));
  const std::lock_guard<std::mutex> lock(seen->mutex);
  REQUIRE(seen->handled_at.size() == 1);
  CHECK(seen->handled_at[0] >= job.starts_at);
  CHECK(scheduler.get_job(job.id)->is_completed());
}

TEST_CASE("a throwing handler fails the job with its message, and it is retried") {
  TempFile file("worker-throws");
  WorkerOptions options = fast_options();
  options.scheduler.retry.max_attempts = 2;
  options.scheduler.retry.initial_backoff = Seconds{0.05};
  options.scheduler.retry.jitter = 0.0;
  auto scheduler = Scheduler::open(file.path(), options.scheduler);
  const Job standard = scheduler.add_job("standard");
  const Job other = scheduler.add_job("other");

  auto calls = std::make_shared<std::atomic<int>>(0);
  Worker worker(
      file.path(),
      [calls](const Job& job) {
        ++*calls;
        if (job.data.bytes() == "standard") {
          throw std::runtime_error("boom " + std::to_string(job.id));
        }
        throw 42;
      },
      options);
  REQUIRE(eventually([&] { return scheduler.failed_jobs().size() == 2; }, 10s));
  worker.stop();

  const Job failed_standard = *scheduler.get_job(standard.id);
  CHECK(failed_standard.is_failed());
  CHECK(failed_standard.attempts == 2);
  CHECK(failed_standard.last_error == "boom " + std::to_string(standard.id));
  const Job failed_other = *scheduler.get_job(other.id);
  CHECK(failed_other.is_failed());
  CHECK(failed_other.attempts == 2);
  CHECK(failed_other.last_error == "unknown exception");
  CHECK(worker.failed() == 4);
  CHECK(calls->load() == 4);
  CHECK(worker.completed() == 0);
  CHECK(worker.stale() == 0);
}

TEST_CASE("a job its handler failed or snoozed runs again after the delay, not the lease") {
  // One worker alone on the file, with a long lease: nothing but its own commit of the
  // failure (then of the snooze) tells its claiming thread that the job is due again soon.
  TempFile file("worker-retry-soon");
  WorkerOptions options = fast_options();
  options.lease = Seconds{60};
  options.scheduler.retry.max_attempts = 3;
  options.scheduler.retry.initial_backoff = Seconds{0.05};
  options.scheduler.retry.jitter = 0.0;
  auto scheduler = Scheduler::open(file.path(), options.scheduler);
  const Job job = scheduler.add_job("again");

  auto calls = std::make_shared<std::atomic<int>>(0);
  const auto start = std::chrono::steady_clock::now();
  Worker worker(
      file.path(),
      [calls](const Job&, jobsched::JobContext& context) {
        const int call = ++*calls;
        if (call == 1)
          throw std::runtime_error("first try fails");
        if (call == 2)
          context.snooze(Seconds{0.05});
      },
      options);
  REQUIRE(eventually([&] { return worker.completed() == 1; }, 10s));
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  worker.stop();
  CHECK(calls->load() == 3);
  CHECK(worker.failed() == 1);
  CHECK(worker.snoozed() == 1);
  CHECK(scheduler.get_job(job.id)->is_completed());
  // The lease is 60 s: without a wake-up the second run would wait for it to end.
  CHECK(took < 5.0 * jobsched_test::time_scale());
}

TEST_CASE("a long handler keeps its lease alive with the heartbeat") {
  TempFile file("worker-heartbeat");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job("long");

  // The heartbeat beats every lease/3, so a beat may come up to 2/3 of a lease late before
  // the lease runs out: 0.6 s of a 0.9 s lease (three times that under sanitizers) is room
  // for a crowded 2-core machine, and the handler outlives four leases.
  const Seconds lease{0.9 * jobsched_test::time_scale()};
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  WorkerOptions options;
  options.lease = lease;
  Worker worker(
      file.path(),
      [started, finished, lease](const Job&) {
        *started = true;
        std::this_thread::sleep_for(lease * 4);
        *finished = true;
      },
      options);
  REQUIRE(eventually([&] { return started->load(); }, 10s));
  int tries = 0;
  const jobsched_test::Deadline handler_done(20s, "the handler of four leases to finish");
  while (!finished->load()) {
    if (handler_done.passed())
      FAIL(handler_done.failure());
    CHECK_FALSE(scheduler.claim_next_job(lease).has_value());
    ++tries;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(tries > 5);
  REQUIRE(eventually([&] { return worker.completed() == 1; }, 10s));
  const Job done = *scheduler.get_job(job.id);
  CHECK(done.is_completed());
  CHECK(done.attempts == 1);
  CHECK(worker.stale() == 0);
}

TEST_CASE("stop lets a running handler finish within the grace period") {
  TempFile file("worker-grace");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job("short");
  auto started = std::make_shared<std::atomic<bool>>(false);
  Worker worker(file.path(), [started](const Job&) {
    *started = true;
    std::this_thread::sleep_for(300ms);
  });
  REQUIRE(eventually([&] { return started->load(); }, 10s));
  worker.stop();
  CHECK(worker.stop_requested());
  CHECK(worker.completed() == 1);
  CHECK(scheduler.get_job(job.id)->is_completed());
  worker.stop();  // idempotent
}

TEST_CASE("stop releases the claim of a handler stuck past the grace period") {
  TempFile file("worker-stuck");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job("stuck");
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto let_go = std::make_shared<std::atomic<bool>>(false);
  auto returned = std::make_shared<std::atomic<bool>>(false);
  WorkerOptions options;
  options.threads = 2;
  options.grace = 200ms;
  {
    Worker worker(
        file.path(),
        [started, let_go, returned](const Job&) {
          *started = true;
          // Bounded, should the test fail before it lets go: a thread must not spin forever.
          const jobsched_test::Deadline let_go_in_time(30s, "the test to let the handler go");
          while (!let_go->load() && !let_go_in_time.passed()) {
            std::this_thread::sleep_for(5ms);
          }
          *returned = true;
        },
        options);
    REQUIRE(eventually([&] { return started->load(); }, 10s));
    const auto before = std::chrono::steady_clock::now();
    worker.stop();
    const auto took = std::chrono::steady_clock::now() - before;
    CHECK(took >= 200ms);
    CHECK(took < 10s);
    CHECK_FALSE(returned->load());

    const Job released = *scheduler.get_job(job.id);
    CHECK_FALSE(released.locked_at.has_value());
    CHECK(released.attempts == 0);
    const auto claimed = scheduler.claim_next_job(Seconds{30});
    REQUIRE(claimed.has_value());
    CHECK(claimed->job.id == job.id);
    CHECK(claimed->job.attempts == 1);

    *let_go = true;
    CHECK(eventually([&] { return worker.stale() == 1; }, 10s));
    CHECK(worker.completed() == 0);
    CHECK_FALSE(scheduler.get_job(job.id)->is_completed());
    CHECK(scheduler.complete(claimed->claim));
  }
  CHECK(returned->load());
}

TEST_CASE("destroying a running worker stops it") {
  TempFile file("worker-destroy");
  auto scheduler = Scheduler::open(file.path());
  const Job job = scheduler.add_job("polls stop");
  scheduler.add_job_from_now("far away", Seconds{3600});
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto self = std::make_shared<std::atomic<Worker*>>(nullptr);
  auto saw_stop = std::make_shared<std::atomic<bool>>(false);
  {
    WorkerOptions options;
    options.threads = 3;
    Worker worker(
        file.path(),
        [started, self, saw_stop](const Job&) {
          *started = true;
          // Bounded, should stop never come (then saw_stop stays false: the test fails).
          const jobsched_test::Deadline stop_in_time(30s, "stop to be requested");
          while (!stop_in_time.passed()) {
            const Worker* running = self->load();
            if (running != nullptr && running->stop_requested()) {
              *saw_stop = true;
              return;
            }
            std::this_thread::sleep_for(5ms);
          }
        },
        options);
    self->store(&worker);
    REQUIRE(eventually([&] { return started->load(); }, 10s));
  }
  // The handler saw stop_requested() and returned within the grace period.
  CHECK(saw_stop->load());
  CHECK(scheduler.get_job(job.id)->is_completed());
}

TEST_CASE("a worker with queues never runs jobs of other queues") {
  TempFile file("worker-queues");
  auto scheduler = Scheduler::open(file.path());
  std::vector<std::int64_t> in_a;
  std::vector<std::int64_t> in_b;
  for (int i = 0; i < 10; ++i) {
    in_a.push_back(scheduler.add_job("a", in_queue("a")).id);
    in_b.push_back(scheduler.add_job("b", in_queue("b")).id);
  }
  auto queues = std::make_shared<Seen>();
  auto wrong = std::make_shared<std::atomic<int>>(0);
  WorkerOptions options = fast_options();
  options.threads = 2;
  options.queues = {"a"};
  Worker worker(
      file.path(),
      [queues, wrong](const Job& job) {
        if (job.queue != "a") {
          ++*wrong;
        }
        queues->record(job);
      },
      options);
  REQUIRE(eventually([&] { return worker.completed() == 10; }, 10s));
  std::this_thread::sleep_for(300ms);
  worker.stop();
  CHECK(wrong->load() == 0);
  CHECK(worker.completed() == 10);
  for (const std::int64_t id : in_a) {
    CHECK(scheduler.get_job(id)->is_completed());
  }
  for (const std::int64_t id : in_b) {
    const Job job = *scheduler.get_job(id);
    CHECK_FALSE(job.is_completed());
    CHECK(job.attempts == 0);
  }
}

TEST_CASE("an idle worker writes nothing to the file") {
  TempFile file("worker-idle");
  auto scheduler = Scheduler::open(file.path());
  scheduler.add_job_from_now("tomorrow", Seconds{86400});
  WorkerOptions options;
  options.threads = 2;
  options.poll_interval = 10ms;
  Worker worker(
      file.path(), [](const Job&) {}, options);
  std::this_thread::sleep_for(300ms);  // every thread has looked once and sleeps
  const std::int64_t before = scheduler.data_version();
  std::this_thread::sleep_for(500ms);  // some 50 poll ticks per thread
  CHECK(scheduler.data_version() == before);
  CHECK(worker.completed() == 0);
}

TEST_CASE("a worker survives a locked database and carries on") {
  TempFile file("worker-busy");
  auto scheduler = Scheduler::open(file.path());
  auto raw = jobsched_test::open_raw(file.path());
  jobsched_test::exec_raw(raw.get(), "BEGIN IMMEDIATE");
  WorkerOptions options;
  options.scheduler.busy_timeout = 20ms;
  options.poll_interval = 10ms;
  Worker worker(
      file.path(), [](const Job&) {}, options);
  std::this_thread::sleep_for(300ms);  // its claims meet BusyError meanwhile
  jobsched_test::exec_raw(raw.get(),
                          "INSERT INTO job (data, created_at, starts_at) VALUES ('x', 0, 0)");
  jobsched_test::exec_raw(raw.get(), "COMMIT");
  CHECK(eventually([&] { return worker.completed() == 1; }, 10s));
  CHECK(scheduler.count_pending_jobs() == 0);
}

TEST_CASE("bad worker options and paths throw from the constructor") {
  TempFile file("worker-options");
  const auto handler = [](const Job&) {};
  auto make = [&](const WorkerOptions& options) {
    return [&file, handler, options] { Worker worker(file.path(), handler, options); };
  };
  WorkerOptions options;
  options.threads = 0;
  CHECK(mentions(invalid_argument_message(make(options)), "threads"));
  options = {};
  options.lease = Seconds{0};
  CHECK(mentions(invalid_argument_message(make(options)), "lease"));
  options.lease = Seconds{std::numeric_limits<double>::infinity()};
  CHECK(mentions(invalid_argument_message(make(options)), "lease"));
  options.lease = Seconds{std::numeric_limits<double>::quiet_NaN()};
  CHECK(mentions(invalid_argument_message(make(options)), "lease"));
  options = {};
  options.poll_interval = 0ms;
  CHECK(mentions(invalid_argument_message(make(options)), "poll_interval"));
  options = {};
  options.grace = -1ms;
  CHECK(mentions(invalid_argument_message(make(options)), "grace"));
  options = {};
  options.scheduler.busy_timeout = -1ms;
  CHECK(mentions(invalid_argument_message(make(options)), "busy_timeout"));
  CHECK_THROWS_AS(Worker(file.path(), Worker::Handler{}), jobsched::InvalidArgumentError);
  CHECK_THROWS_AS(Worker(":memory:", handler), jobsched::InvalidArgumentError);

  CHECK_THROWS_AS(Worker(std::string(JOBSCHED_TEST_TMPDIR) + "/no-such-directory/jobs.db", handler),
                  jobsched::IoError);
}

TEST_CASE("a sleeping worker notices the clock stepping forward and runs the job now due",
          "[worker][clock]") {
  TempFile file("worker-clock-step");
  auto offset = std::make_shared<std::atomic<double>>(0.0);
  jobsched::Options clock;
  clock.clock = [offset] { return jobsched::system_now() + Seconds{offset->load()}; };
  auto scheduler = Scheduler::open(file.path(), clock);
  JobOptions in_an_hour;
  in_an_hour.starts_at = scheduler.now() + Seconds{3600};
  scheduler.add_job(jobsched::Payload("later"), in_an_hour);
  std::atomic<int> runs{0};
  WorkerOptions options;
  options.scheduler = clock;
  Worker worker(file.path(), [&](const Job&) { ++runs; }, options);
  std::this_thread::sleep_for(200ms);
  CHECK(runs == 0);
  // The wall clock jumps an hour ahead (NTP, a resume from suspend): the job is due now, and
  // the worker, asleep on the steady clock for an hour, must look again.
  offset->store(3600.0);
  CHECK(eventually([&] { return runs == 1; }, 5s));
  worker.stop();
}

}  // namespace test_worker
