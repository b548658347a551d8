// SPDX-License-Identifier: MIT
// Four processes of four worker threads each drain one file: every job runs exactly once.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_drain {

using jobsched::Job;
using jobsched::Scheduler;
using jobsched::Worker;
using jobsched::WorkerOptions;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

namespace {

// A child: serve the file until no job is pending, writing each handled id to `out`.
[[noreturn]] void drain_in_child(const std::string& path, int out) {
  int status = 0;
  try {
    WorkerOptions options;
    options.threads = 4;
    options.scheduler.synchronous = jobsched::Synchronous::normal;
    {
      Worker worker(
          path,
          [out](const Job& job) {
            const std::int64_t id = job.id;
            if (::write(out, &id, sizeof id) != static_cast<ssize_t>(sizeof id)) {
              throw std::runtime_error("write to the pipe failed");
            }
          },
          options);
      auto scheduler = Scheduler::open(path, options.scheduler);
      const jobsched_test::Deadline drained(60s, "the workers to drain the file");
      if (!jobsched_test::wait_until(drained,
                                     [&] { return scheduler.count_pending_jobs() == 0; })) {
        status = 4;
      }
      worker.stop();
      if (worker.failed() != 0 || worker.stale() != 0) {
        status = 3;
      }
    }
  } catch (...) {
    status = 2;
  }
  ::close(out);
  ::_exit(status);
}

}  // namespace

TEST_CASE("four processes of four worker threads drain 20000 jobs, each exactly once") {
  TempFile file("drain");
  constexpr int jobs = 20000;
  constexpr int processes = 4;
  {
    jobsched::Options options;
    options.synchronous = jobsched::Synchronous::normal;
    auto scheduler = Scheduler::open(file.path(), options);
    jobsched_test::exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 0; i < jobs; ++i) {
      scheduler.add_job(std::to_string(i));
    }
    jobsched_test::exec_raw(scheduler.handle(), "COMMIT");
  }
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(pipe_fds[0]);
      drain_in_child(file.path(), pipe_fds[1]);
    }
    children.push_back(pid);
  }
  ::close(pipe_fds[1]);

  // Read every id until all children closed the pipe, within a generous deadline.
  std::vector<int> times_handled(jobs + 1, 0);
  std::int64_t unexpected = 0;
  int torn_reads = 0;
  std::int64_t total = 0;
  const jobsched_test::Deadline deadline(90s, "four processes to drain 20000 jobs");
  bool timed_out = false;
  for (;;) {
    if (!jobsched_test::wait_readable(pipe_fds[0], deadline)) {
      timed_out = true;
      break;
    }
    std::int64_t ids[512];
    const ssize_t got = ::read(pipe_fds[0], ids, sizeof ids);
    if (got <= 0) {
      break;
    }
    if (got % static_cast<ssize_t>(sizeof(std::int64_t)) != 0) {
      ++torn_reads;
    }
    for (ssize_t i = 0; i < got / static_cast<ssize_t>(sizeof(std::int64_t)); ++i) {
      const std::int64_t id = ids[i];
      ++total;
      if (id >= 1 && id <= jobs) {
        ++times_handled[static_cast<std::size_t>(id)];
      } else {
        ++unexpected;
      }
    }
  }
  ::close(pipe_fds[0]);
  if (timed_out) {
    for (const pid_t pid : children) {
      ::kill(pid, SIGKILL);
    }
  }
  // Each child closes the pipe as it exits.
  const jobsched_test::Deadline exited(30s, "the children to exit once their pipe closed");
  for (const pid_t pid : children) {
    const jobsched_test::ChildEnd end = jobsched_test::wait_for_child(pid, exited);
    INFO("a child " << end.describe() << " (4: jobs still pending after 60 s)");
    CHECK(end.exited);
    CHECK(end.exit_code == 0);
  }
  if (timed_out)
    FAIL(deadline.failure());

  CHECK(torn_reads == 0);
  CHECK(unexpected == 0);
  CHECK(total == jobs);
  CHECK(std::all_of(times_handled.begin() + 1, times_handled.end(),
                    [](int times) { return times == 1; }));
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK(jobsched_test::query_int(
            scheduler.handle(), "SELECT count(*) FROM job WHERE completed_at IS NOT NULL") == jobs);
  CHECK(jobsched_test::query_int(scheduler.handle(), "SELECT count(*) FROM job") == jobs);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(scheduler.handle(), "PRAGMA integrity_check", -1, &stmt, nullptr) ==
          SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const std::string integrity = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  CHECK(integrity == "ok");
}

}  // namespace test_drain
