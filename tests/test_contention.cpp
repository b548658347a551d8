// SPDX-License-Identifier: MIT
// Contention: eight processes add, claim and complete jobs on one file as fast as they can.
// With the default 5 s busy timeout no caller ever sees a BusyError, nor SQLITE_BUSY_SNAPSHOT
// (every read-then-write takes the write lock up front, DESIGN.md "Concurrency and
// delivery"); every job added is completed or still pending at the end, and the file is
// intact. With a busy timeout of 0 the same load does raise BusyError, which shows that the
// counters count; and even then no change is left half-done.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_contention {

using jobsched::Scheduler;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

namespace {

// What each child reports when its time is up.
struct Counts {
  std::int64_t adds = 0;                // add_job returned
  std::int64_t claims = 0;              // claim_next_job returned a job
  std::int64_t completes_accepted = 0;  // complete returned true
  std::int64_t completes_refused = 0;   // complete returned false
  std::int64_t claims_not_completed = 0;  // gave up retrying a busy complete
  std::int64_t reads = 0;               // seconds_until_next_job returned
  std::int64_t busy = 0;                // BusyError caught (any extended code)
  std::int64_t busy_snapshot = 0;       // any Error with extended code SQLITE_BUSY_SNAPSHOT
  std::int64_t other_errors = 0;        // any other exception
  std::int64_t open_busy = 0;           // of `busy`, while opening (before the start)
  double slowest_call_ms = 0;           // the longest add, claim or complete that returned
  char first_error[160] = {};
};

void count_error(Counts& counts, const std::exception& e) {
  const auto* error = dynamic_cast<const jobsched::Error*>(&e);
  const bool busy = dynamic_cast<const jobsched::BusyError*>(&e) != nullptr;
  const bool snapshot = error != nullptr && error->extended_code() == SQLITE_BUSY_SNAPSHOT;
  if (busy)
    ++counts.busy;
  if (snapshot)
    ++counts.busy_snapshot;
  if (!busy && !snapshot)
    ++counts.other_errors;
  if (counts.first_error[0] == '\0')
    std::snprintf(counts.first_error, sizeof counts.first_error, "%s", e.what());
}

template <class Call>
auto timed(Counts& counts, Call call) {
  const auto start = std::chrono::steady_clock::now();
  auto result = call();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  counts.slowest_call_ms = std::max(counts.slowest_call_ms, ms);
  return result;
}

// A child: open, say ready, wait for the start (the go pipe closing), then add, claim and
// complete until `run_for` has passed; report the counts.
[[noreturn]] void hammer(const std::string& path, std::chrono::milliseconds busy_timeout,
                         jobsched::Synchronous synchronous, std::chrono::milliseconds run_for,
                         int ready, int go, int out) {
  Counts counts;
  int status = 0;
  bool said_ready = false;
  auto say_ready = [&] {
    const char byte = 1;
    if (!said_ready && ::write(ready, &byte, 1) != 1)
      ::_exit(4);
    said_ready = true;
  };
  try {
    jobsched::Options options;
    options.busy_timeout = busy_timeout;
    options.synchronous = synchronous;
    // With busy_timeout 0, opening beside seven others opening may be busy too (WAL
    // recovery, the journal mode): try again, counting it, before the start.
    std::optional<Scheduler> opened;
    const auto open_until = std::chrono::steady_clock::now() + 10s;
    while (!opened) {
      try {
        opened.emplace(Scheduler::open(path, options));
      } catch (const jobsched::BusyError& e) {
        count_error(counts, e);
        ++counts.open_busy;
        if (std::chrono::steady_clock::now() > open_until)
          throw;
        std::this_thread::sleep_for(1ms);
      }
    }
    Scheduler& scheduler = *opened;
    say_ready();
    char ignored = 0;
    while (::read(go, &ignored, 1) > 0) {
    }
    const auto until = std::chrono::steady_clock::now() + run_for;
    std::int64_t seq = 0;
    while (std::chrono::steady_clock::now() < until) {
      try {
        timed(counts, [&] { return scheduler.add_job("job " + std::to_string(seq++)); });
        ++counts.adds;
      } catch (const std::exception& e) {
        count_error(counts, e);
      }
      try {
        const auto claimed =
            timed(counts, [&] { return scheduler.claim_next_job(jobsched::Seconds{60}); });
        if (claimed) {
          ++counts.claims;
          // Complete it, however busy the file: retry a busy complete (busy_timeout 0), for
          // a while.
          const auto give_up = std::chrono::steady_clock::now() + 20s;
          for (;;) {
            try {
              const bool accepted = timed(counts, [&] { return scheduler.complete(claimed->claim); });
              ++(accepted ? counts.completes_accepted : counts.completes_refused);
              break;
            } catch (const std::exception& e) {
              count_error(counts, e);
              if (std::chrono::steady_clock::now() > give_up) {
                ++counts.claims_not_completed;
                break;
              }
              std::this_thread::sleep_for(100us);
            }
          }
        }
      } catch (const std::exception& e) {
        count_error(counts, e);
      }
      try {
        scheduler.seconds_until_next_job();
        ++counts.reads;
      } catch (const std::exception& e) {
        count_error(counts, e);
      }
    }
  } catch (const std::exception& e) {
    count_error(counts, e);
    status = 2;
  }
  say_ready();  // never leave the parent waiting
  if (::write(out, &counts, sizeof counts) != static_cast<ssize_t>(sizeof counts))
    status = 3;
  ::_exit(status);
}

std::string integrity(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  std::string value;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return value;
}

struct Outcome {
  Counts total;
  int processes_reported = 0;
  int clean_exits = 0;
  std::string first_error;
  std::int64_t stored = 0, completed = 0, pending = 0;
  std::string integrity;
  double seconds = 0;
};

Outcome run(const std::string& path, int processes, std::chrono::milliseconds busy_timeout,
            std::chrono::milliseconds run_for, jobsched::Synchronous synchronous) {
  { auto scheduler = Scheduler::open(path); }  // create and migrate the file first
  int ready[2], go[2], out[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  REQUIRE(::pipe(out) == 0);
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(ready[0]);
      ::close(go[1]);
      ::close(out[0]);
      hammer(path, busy_timeout, synchronous, run_for, ready[1], go[0], out[1]);
    }
    children.push_back(pid);
  }
  ::close(ready[1]);
  ::close(go[0]);
  ::close(out[1]);
  // Every child says ready once (even one that failed to open), so this ends; the deadline
  // is only a safety net against a harness bug or an open that hangs.
  int ready_count = 0;
  char byte = 0;
  const jobsched_test::Deadline ready_deadline(
      20s, std::to_string(processes) + " children to open the file and say they are ready");
  while (ready_count < processes) {
    if (!jobsched_test::wait_readable(ready[0], ready_deadline) || ::read(ready[0], &byte, 1) != 1)
      break;
    ++ready_count;
  }
  if (ready_count < processes) {
    for (const pid_t pid : children)
      ::kill(pid, SIGKILL);
  }
  INFO(ready_deadline.what() << ": " << ready_count << " did");
  CHECK(ready_count == processes);
  const auto started = std::chrono::steady_clock::now();
  ::close(go[1]);  // go

  Outcome outcome;
  // A child may go on past run_for: a busy complete is retried for up to 20 s.
  const jobsched_test::Deadline deadline(
      run_for + 60s, std::to_string(processes) + " hammering processes to report");
  std::string reported;
  CHECK(jobsched_test::read_to_end(out[0], reported, deadline));
  for (std::size_t at = 0; at + sizeof(Counts) <= reported.size(); at += sizeof(Counts)) {
    Counts counts;
    std::memcpy(&counts, reported.data() + at, sizeof counts);
    ++outcome.processes_reported;
    Counts& t = outcome.total;
    t.adds += counts.adds;
    t.claims += counts.claims;
    t.completes_accepted += counts.completes_accepted;
    t.completes_refused += counts.completes_refused;
    t.claims_not_completed += counts.claims_not_completed;
    t.reads += counts.reads;
    t.busy += counts.busy;
    t.busy_snapshot += counts.busy_snapshot;
    t.other_errors += counts.other_errors;
    t.open_busy += counts.open_busy;
    t.slowest_call_ms = std::max(t.slowest_call_ms, counts.slowest_call_ms);
    if (outcome.first_error.empty() && counts.first_error[0] != '\0')
      outcome.first_error = counts.first_error;
  }
  outcome.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ::close(out[0]);
  ::close(ready[0]);
  for (const pid_t pid : children) {
    const jobsched_test::ChildEnd end = jobsched_test::wait_for_child(pid, deadline);
    if (end.hung)
      FAIL_CHECK(deadline.failure() << ": a child hung");
    if (end.exited && end.exit_code == 0)
      ++outcome.clean_exits;
  }
  auto scheduler = Scheduler::open(path);
  outcome.stored = query_int(scheduler.handle(), "SELECT count(*) FROM job");
  outcome.completed =
      query_int(scheduler.handle(), "SELECT count(*) FROM job WHERE completed_at IS NOT NULL");
  outcome.pending = scheduler.count_pending_jobs();
  outcome.integrity = integrity(scheduler.handle());
  return outcome;
}

std::string describe(const Outcome& o) {
  const Counts& t = o.total;
  char text[1024];
  std::snprintf(text, sizeof text,
                "%.1f s: adds=%lld claims=%lld completes_accepted=%lld completes_refused=%lld "
                "claims_not_completed=%lld reads=%lld busy=%lld (opening: %lld) busy_snapshot=%lld "
                "other_errors=%lld slowest_call=%.0f ms | stored=%lld completed=%lld "
                "pending=%lld integrity=%s reported=%d clean_exits=%d%s%s",
                o.seconds, static_cast<long long>(t.adds), static_cast<long long>(t.claims),
                static_cast<long long>(t.completes_accepted),
                static_cast<long long>(t.completes_refused),
                static_cast<long long>(t.claims_not_completed), static_cast<long long>(t.reads),
                static_cast<long long>(t.busy), static_cast<long long>(t.open_busy),
                static_cast<long long>(t.busy_snapshot),
                static_cast<long long>(t.other_errors), t.slowest_call_ms,
                static_cast<long long>(o.stored), static_cast<long long>(o.completed),
                static_cast<long long>(o.pending), o.integrity.c_str(), o.processes_reported,
                o.clean_exits, o.first_error.empty() ? "" : " first error: ",
                o.first_error.c_str());
  return text;
}

// Nothing half-done, whatever was thrown: the file holds exactly the jobs whose add_job
// returned, exactly those whose complete returned true are completed, the rest pending.
void check_consistent(const Outcome& o, int processes) {
  CHECK(o.processes_reported == processes);
  CHECK(o.clean_exits == processes);
  CHECK(o.stored == o.total.adds);
  CHECK(o.completed == o.total.completes_accepted);
  CHECK(o.completed + o.pending == o.total.adds);
  CHECK(o.total.claims == o.total.completes_accepted);
  CHECK(o.total.completes_refused == 0);
  CHECK(o.total.claims_not_completed == 0);
  CHECK(o.integrity == "ok");
}

}  // namespace

TEST_CASE("eight processes adding and claiming at full speed never see a busy error",
          "[contention]") {
  // FULL (the default): every commit waits for fsync, so the lock is held long. NORMAL:
  // about ten times as many, shorter, write transactions fight for it.
  const jobsched::Synchronous mode =
      GENERATE(jobsched::Synchronous::full, jobsched::Synchronous::normal);
  const char* mode_name = mode == jobsched::Synchronous::full ? "full" : "normal";
  CAPTURE(mode_name);
  TempFile file(std::string("contention-") + mode_name);
  constexpr int processes = 8;
  const Outcome o = run(file.path(), processes, 5000ms, 3000ms, mode);
  INFO(describe(o));
  WARN("contention, busy_timeout 5 s, synchronous " << mode_name << ": " << describe(o));
  CHECK(o.total.busy == 0);
  CHECK(o.total.busy_snapshot == 0);
  CHECK(o.total.other_errors == 0);
  CHECK(o.total.adds > 0);
  CHECK(o.total.claims > 0);
  check_consistent(o, processes);
}

TEST_CASE("with a busy timeout of 0 the same load raises BusyError, and leaves nothing "
          "half-done",
          "[contention]") {
  TempFile file("contention-no-wait");
  constexpr int processes = 8;
  const Outcome o = run(file.path(), processes, 0ms, 1500ms, jobsched::Synchronous::full);
  INFO(describe(o));
  WARN("contention, busy_timeout 0: " << describe(o));
  CHECK(o.total.busy > 0);  // the counter counts
  CHECK(o.total.busy_snapshot == 0);
  CHECK(o.total.other_errors == 0);
  check_consistent(o, processes);
}

}  // namespace test_contention
