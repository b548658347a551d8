// SPDX-License-Identifier: MIT
// The work each call does, counted in SQLite VM operations (a figure that does not depend on
// the machine), stays about flat from 1,000 to 20,000 stored jobs in every state a busy table
// is in: many jobs claimed, leases run out, expired long ago, locked, many priority levels
// none due, many queues, a few completed among many. Growing with n would multiply it by 20;
// logarithmic growth stays well under 2.

#include <sqlite3.h>

#include <functional>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_call_work {

namespace {

using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::exec_raw;
using jobsched_test::query_int;
using jobsched_test::TempFile;

constexpr double kStart = 1'700'000'000.0;

jobsched::TimePoint at(double seconds) {
  return jobsched::from_unix_seconds(seconds);
}

/// A scheduler whose clock reads `*now`.
Scheduler open_pinned(const std::string& path, const double* now) {
  jobsched::Options options;
  options.clock = [now] { return at(*now); };
  options.synchronous = jobsched::Synchronous::normal;
  return Scheduler::open(path, options);
}

/// Adds `count` jobs in one transaction; `shape(i, options)` sets each one's options.
void add_many(Scheduler& scheduler, int count,
              const std::function<void(int, jobsched::JobOptions&)>& shape) {
  exec_raw(scheduler.handle(), "BEGIN");
  for (int i = 0; i < count; ++i) {
    jobsched::JobOptions options;
    shape(i, options);
    scheduler.add_job(jobsched::Payload("p"), options);
  }
  exec_raw(scheduler.handle(), "COMMIT");
}

int count_progress(void* counter) {
  ++*static_cast<long*>(counter);
  return 0;  // go on
}

/// The VM operations (in units of 10) that `calls` spends.
long work_of(Scheduler& scheduler, const std::function<void(Scheduler&)>& calls) {
  long counter = 0;
  sqlite3_progress_handler(scheduler.handle(), 10, count_progress, &counter);
  calls(scheduler);
  sqlite3_progress_handler(scheduler.handle(), 0, nullptr, nullptr);
  return counter;
}

/// A table state: `build(scheduler, n, now)` fills a file with n jobs (moving *now on as it
/// likes); `calls` are the calls measured in it.
struct State {
  const char* name;
  std::function<void(Scheduler&, int, double&)> build;
  std::function<void(Scheduler&)> calls;
};

/// 20 claims, each completed, and 20 looks at the next job both ways.
void claim_and_look(Scheduler& scheduler) {
  for (int i = 0; i < 20; ++i) {
    const auto claimed = scheduler.claim_next_job(Seconds{30});
    REQUIRE(claimed);
    REQUIRE(scheduler.complete(claimed->claim));
    REQUIRE(scheduler.next_job());
    REQUIRE(scheduler.seconds_until_next_job());
  }
}

/// The same, when nothing is due: the claims find nothing.
void claim_nothing_and_look(Scheduler& scheduler) {
  for (int i = 0; i < 20; ++i) {
    REQUIRE_FALSE(scheduler.claim_next_job(Seconds{30}));
    REQUIRE(scheduler.next_job());
    REQUIRE(scheduler.seconds_until_next_job());
  }
}

void due_jobs(int, jobsched::JobOptions& options) {
  options.created_at = at(kStart - 100);
}

std::vector<State> states() {
  return {
      {"free and due", [](Scheduler& s, int n, double&) { add_many(s, n, due_jobs); },
       claim_and_look},
      {"a tenth claimed, with live leases",
       [](Scheduler& s, int n, double&) {
         add_many(s, n, due_jobs);
         for (int i = 0; i < n / 10; ++i)
           REQUIRE(s.claim_next_job(Seconds{1e6}));
       },
       claim_and_look},
      {"45 % of leases ran out, attempts left",
       [](Scheduler& s, int n, double& now) {
         add_many(s, n, due_jobs);
         for (int i = 0; i < n * 45 / 100; ++i)
           REQUIRE(s.claim_next_job(Seconds{10}));
         now += 100;  // every lease ran out, and no write has met them since
       },
       claim_and_look},
      {"30 % expired long ago, not deleted",
       [](Scheduler& s, int n, double& now) {
         add_many(s, n * 3 / 10, [](int, jobsched::JobOptions& options) {
           options.created_at = at(kStart - 100);
           options.expires_at = at(kStart + 10);
         });
         now += 1000;  // they expired; the jobs added since moved them on
         add_many(s, n - n * 3 / 10, due_jobs);
       },
       claim_and_look},
      {"90 % locked",
       [](Scheduler& s, int n, double&) {
         add_many(s, n, due_jobs);
         for (int i = 0; i < n * 9 / 10; ++i)
           REQUIRE(s.lock_next_job());
       },
       claim_and_look},
      {"1,000 priority levels, none due",
       [](Scheduler& s, int n, double&) {
         add_many(s, n, [](int i, jobsched::JobOptions& options) {
           options.created_at = at(kStart);
           options.starts_at = at(kStart + 3600 + i);
           options.priority = i % 1000;
         });
       },
       claim_nothing_and_look},
      {"a queue for every other job, no queue named",
       [](Scheduler& s, int n, double&) {
         add_many(s, n, [](int i, jobsched::JobOptions& options) {
           options.created_at = at(kStart - 100);
           options.queue = "queue " + std::to_string(i / 2);
         });
       },
       claim_and_look},
  };
}

}  // namespace

TEST_CASE("every call does about as much work at 20,000 stored jobs as at 1,000, in every state",
          "[performance]") {
  for (const State& state : states()) {
    long work[2] = {0, 0};
    const int sizes[2] = {1000, 20'000};
    for (int size = 0; size < 2; ++size) {
      TempFile file("call-work");
      double now = kStart;
      Scheduler scheduler = open_pinned(file.path(), &now);
      state.build(scheduler, sizes[size], now);
      exec_raw(scheduler.handle(), "ANALYZE");
      work[size] = work_of(scheduler, state.calls);
    }
    INFO(state.name << ": VM operations / 10 for the calls: " << work[0] << " at 1,000 jobs, "
                    << work[1] << " at 20,000 jobs");
    CHECK(work[0] > 0);
    CHECK(work[1] <= 2 * work[0]);
  }
}

TEST_CASE("deleting the completed jobs does work in proportion to them, not to the jobs stored",
          "[performance]") {
  long work[2] = {0, 0};
  const int sizes[2] = {1000, 20'000};
  for (int size = 0; size < 2; ++size) {
    TempFile file("call-work-completed");
    double now = kStart;
    Scheduler scheduler = open_pinned(file.path(), &now);
    add_many(scheduler, sizes[size], due_jobs);
    for (int i = 0; i < 100; ++i) {
      const auto claimed = scheduler.claim_next_job(Seconds{30});
      REQUIRE(claimed);
      REQUIRE(scheduler.complete(claimed->claim));
    }
    exec_raw(scheduler.handle(), "ANALYZE");
    work[size] = work_of(scheduler, [](Scheduler& s) { CHECK(s.delete_completed_jobs() == 100); });
    CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == sizes[size] - 100);
  }
  INFO("VM operations / 10: " << work[0] << " at 1,000 jobs, " << work[1] << " at 20,000 jobs");
  CHECK(work[0] > 0);
  CHECK(work[1] <= 2 * work[0]);
}

}  // namespace test_call_work
