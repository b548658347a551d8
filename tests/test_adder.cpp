// SPDX-License-Identifier: MIT
// Group commit: many threads adding through one Adder, each add returning once its job is
// committed, the adds waiting together sharing commits; a bad job refused alone; every add
// that returned survives the process being SIGKILLed right after.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/fault_vfs.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_adder {

namespace {

using jobsched::Adder;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::Scheduler;
using jobsched_test::contains;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using jobsched_test::thrown;

}  // namespace

TEST_CASE("eight threads adding through an Adder: every job once, as returned, sharing commits") {
  TempFile file("adder-threads");
  constexpr int kThreads = 8;
  constexpr int kEach = 150;
  std::vector<std::vector<Job>> returned(kThreads);
  std::int64_t commits = 0;
  {
    jobsched::Options options;
    options.synchronous = jobsched::Synchronous::full;
    Adder adder(file.path(), options);
    std::vector<jobsched_test::BoundedThread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          JobOptions job;
          job.priority = t;
          returned[static_cast<std::size_t>(t)].push_back(
              adder.add(jobsched::Payload(std::to_string(t) + "/" + std::to_string(i)), job));
        }
      });
    }
    for (auto& thread : threads)
      thread.join(jobsched_test::Deadline(std::chrono::seconds(60), "the adding threads"));
    commits = adder.commits();
  }
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == kThreads * kEach);
  std::set<std::int64_t> ids;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const Job& job = returned[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
      CHECK(job.data == jobsched::Payload(std::to_string(t) + "/" + std::to_string(i)));
      const auto stored = scheduler.get_job(job.id);
      REQUIRE(stored);
      CHECK(*stored == job);
      ids.insert(job.id);
    }
  }
  CHECK(ids.size() == static_cast<std::size_t>(kThreads * kEach));
  INFO(commits << " commits for " << kThreads * kEach << " adds");
  CHECK(commits >= 1);
  CHECK(commits < kThreads * kEach);
}

TEST_CASE("an Adder refuses a bad job alone, naming it, and goes on") {
  TempFile file("adder-bad");
  Adder adder(file.path());
  JobOptions bad;
  bad.created_at = jobsched::from_unix_seconds(100);
  bad.starts_at = jobsched::from_unix_seconds(50);
  const auto refused = thrown<jobsched::InvalidArgumentError>([&] { adder.add("bad", bad); });
  REQUIRE(refused);
  CHECK(contains(*refused, "starts_at"));
  const Job good = adder.add("good");
  CHECK(good.id == 1);
  auto scheduler = Scheduler::open(file.path());
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 1);
  // In memory, each connection has a database of its own: refused.
  CHECK(thrown<jobsched::InvalidArgumentError>([] { Adder in_memory(":memory:"); }));
}

TEST_CASE("a commit an Adder cannot make fails every add it carried, and adds none of them",
          "[faults]") {
  namespace fv = jobsched_test::faults;
  fv::install();
  TempFile file("adder-commit-fails");
  const jobsched::Options options = fv::pinned_options(jobsched::Synchronous::full);
  Adder adder(fv::uri(file.path()), options);
  fv::Disarm guard;
  const Job first = adder.add("first");

  // Another connection holds the write lock, so that the four adds below wait together for
  // one transaction; the sync of its commit fails.
  auto holder = Scheduler::open(file.path(), options);
  jobsched::Transaction held = holder.transaction();
  constexpr int kThreads = 4;
  std::vector<std::string> outcome(kThreads);
  std::vector<jobsched_test::BoundedThread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        adder.add("lost " + std::to_string(t));
        outcome[static_cast<std::size_t>(t)] = "added";
      } catch (const jobsched::IoError& error) {
        outcome[static_cast<std::size_t>(t)] = error.extended_code() == SQLITE_IOERR_FSYNC
                                                   ? "IoError (fsync)"
                                                   : "IoError " + std::to_string(error.extended_code());
      } catch (const std::exception& error) {
        outcome[static_cast<std::size_t>(t)] = std::string("other: ") + error.what();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  fv::arm({fv::sync, 1, false, 0});
  held.rollback();
  for (auto& thread : threads)
    thread.join(jobsched_test::Deadline(std::chrono::seconds(30), "the four adds"));
  fv::disarm();
  CHECK(fv::injected() == 1);
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(outcome[static_cast<std::size_t>(t)] == "IoError (fsync)");
  }
  CHECK(adder.commits() == 1);

  // Nothing of them is in the file, and the Adder goes on.
  const Job after = adder.add("after");
  CHECK(after.data == jobsched::Payload("after"));
  CHECK(adder.commits() == 2);
  CHECK(query_int(holder.handle(), "SELECT count(*) FROM job") == 2);
  CHECK(holder.get_job(first.id).has_value());
  CHECK(holder.get_job(after.id).has_value());
}

TEST_CASE("every add an Adder returned survives its process being SIGKILLed", "[processes]") {
  TempFile file("adder-kill");
  { Scheduler::open(file.path()); }  // the schema, before the child starts
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    jobsched_test::die_with_parent();
    ::close(fds[0]);
    try {
      jobsched::Options options;
      options.synchronous = jobsched::Synchronous::normal;  // survives a process crash
      Adder adder(file.path(), options);
      std::vector<std::thread> threads;
      std::atomic<bool> failed{false};
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
          for (;;) {
            const std::string line = std::to_string(adder.add("x").id) + "\n";
            if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
              failed = true;
              return;
            }
          }
        });
      }
      for (auto& thread : threads)
        thread.join();
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  // Read what the child reports until it has reported 400 adds, then kill it mid-flight.
  std::string output;
  const jobsched_test::Deadline deadline(std::chrono::seconds(60), "400 adds reported");
  std::size_t lines = 0;
  while (lines < 400 && jobsched_test::wait_readable(fds[0], deadline)) {
    char buffer[4096];
    const ssize_t got = ::read(fds[0], buffer, sizeof buffer);
    if (got <= 0)
      break;
    output.append(buffer, static_cast<std::size_t>(got));
    lines = static_cast<std::size_t>(std::count(output.begin(), output.end(), '\n'));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(fds[0]);
  REQUIRE(lines >= 400);

  auto scheduler = Scheduler::open(file.path());
  std::istringstream reported(output.substr(0, output.rfind('\n')));
  std::size_t checked = 0;
  for (std::string id; std::getline(reported, id);) {
    CAPTURE(id);
    CHECK(scheduler.get_job(std::stoll(id)).has_value());
    ++checked;
  }
  CHECK(checked >= 400);
}

}  // namespace test_adder
