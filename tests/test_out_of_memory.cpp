// SPDX-License-Identifier: MIT
// Out of memory: SQLite's allocator fails the Nth allocation (once, or every one from the Nth
// on) of an operation, for every N until the operation finishes without reaching it. For each
// N: the call succeeds or throws a jobsched::Error (SQLITE_NOMEM); another connection then
// sees the file exactly as before or exactly as after the call; the file passes
// `PRAGMA integrity_check`; no transaction is left open; the scheduler works once allocations
// succeed again; and SQLite's memory in use returns to where it was (nothing leaked).
//
// sqlite3_config(SQLITE_CONFIG_MALLOC) only works before sqlite3_initialize, so each sweep
// runs in a forked child that shuts SQLite down, installs the failing allocator (and turns
// lookaside off, so that every allocation reaches it), and reports through a pipe.
//
// Set JOBSCHED_FAULTS_VERBOSE=1 to print one line per sweep. With JOBSCHED_FAULTS_FULL=1
// also set JOBSCHED_TEST_CASE_LIMIT=0: full sweeps outlast each test case's time limit.

#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/fault_vfs.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_out_of_memory {

namespace {

namespace fv = jobsched_test::faults;
using jobsched::Scheduler;
using jobsched::Synchronous;
using jobsched_test::at;
using jobsched_test::job_times;
using jobsched_test::TempFile;

constexpr long kMaxN = 20000;

/// JOBSCHED_FAULTS_FULL=1: every N of the long sweeps (opening makes about 8,500
/// allocations, some minutes of sweeping); otherwise every N of the first kDense and of the
/// last few, and an even sample between.
bool full_sweeps() {
  const char* value = std::getenv("JOBSCHED_FAULTS_FULL");
  return value != nullptr && *value != '\0' && *value != '0';
}

constexpr long kDense = 50;
constexpr long kSamples = 100;

bool verbose() {
  const char* value = std::getenv("JOBSCHED_FAULTS_VERBOSE");
  return value != nullptr && *value != '\0' && *value != '0';
}

// ---- The failing allocator (in the child only) ---------------------------------------------

namespace oom {

sqlite3_mem_methods original;
bool armed = false;
bool persistent = false;
long fail_at = 0;
long seen = 0;
long injected = 0;

bool should_fail() {
  if (!armed)
    return false;
  const long n = ++seen;
  if (n == fail_at || (persistent && n > fail_at)) {
    ++injected;
    return true;
  }
  return false;
}

void* x_malloc(int size) {
  return should_fail() ? nullptr : original.xMalloc(size);
}
void* x_realloc(void* p, int size) {
  return should_fail() ? nullptr : original.xRealloc(p, size);
}

void arm(long n, bool from_n_on) {
  armed = false;
  fail_at = n;
  persistent = from_n_on;
  seen = 0;
  injected = 0;
  armed = true;
}

void disarm() {
  armed = false;
}

/// Shuts SQLite down and brings it up again with the failing allocator; "" or the error.
std::string install() {
  int rc = sqlite3_shutdown();
  if (rc != SQLITE_OK)
    return "sqlite3_shutdown: " + std::to_string(rc);
  rc = sqlite3_config(SQLITE_CONFIG_GETMALLOC, &original);
  if (rc != SQLITE_OK)
    return "SQLITE_CONFIG_GETMALLOC: " + std::to_string(rc);
  sqlite3_mem_methods failing = original;
  failing.xMalloc = &x_malloc;
  failing.xRealloc = &x_realloc;
  rc = sqlite3_config(SQLITE_CONFIG_MALLOC, &failing);
  if (rc != SQLITE_OK)
    return "SQLITE_CONFIG_MALLOC: " + std::to_string(rc);
  rc = sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
  if (rc != SQLITE_OK)
    return "SQLITE_CONFIG_LOOKASIDE: " + std::to_string(rc);
  rc = sqlite3_initialize();
  if (rc != SQLITE_OK)
    return "sqlite3_initialize: " + std::to_string(rc);
  return "";
}

}  // namespace oom

// ---- The child's side: sweeps that record failures as text -----------------------------------

/// Collects what a child saw; sent to the parent line by line.
class Report {
 public:
  explicit Report(int fd) : fd_(fd) {}

  void line(const std::string& text) {
    std::string out = text + "\n";
    const char* data = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t written = ::write(fd_, data, left);
      if (written < 0) {
        if (errno == EINTR)
          continue;
        return;
      }
      data += written;
      left -= static_cast<std::size_t>(written);
    }
  }

  /// Records a failure (the first few of each sweep in full).
  void check(bool ok, const std::string& context, const std::string& what) {
    if (ok)
      return;
    ++failures_;
    if (failures_ <= 20)
      line("FAIL " + context + ": " + what);
  }

  long failures() const { return failures_; }

 private:
  int fd_;
  long failures_ = 0;
};

struct Operation {
  std::string name;
  std::function<void(Scheduler&)> prepare;
  std::function<std::string(std::optional<Scheduler>&)> run;
  /// Opening: the file before is `open_bytes` (empty: no file) and `run` opens it.
  bool is_open = false;
  std::string open_bytes;
};

struct Stats {
  long calls = 0;
  long threw = 0;
  long faulted_but_ok = 0;
  long threw_but_after = 0;
  long reuse_failed = 0;
  long bad_alloc = 0;
  long left_open = 0;    // calls that left a transaction open (the known bug)
  long allocations = 0;  // allocations of the fault-free call
  std::map<int, long> codes;
};

/// The scheduler that saw the fault: its view is the file's, and it adds a job another
/// connection sees. "" or the error.
std::string reuse(Scheduler& scheduler, const std::string& path, const std::string& state,
                  const jobsched::Options& options) {
  try {
    if (sqlite3_get_autocommit(scheduler.handle()) == 0)
      return "a transaction is still open on the scheduler's connection";
    if (fv::dump(scheduler.handle()) != state)
      return "the scheduler's own view differs from the file's";
    scheduler.count_pending_jobs();
    const jobsched::Job job =
        scheduler.add_job(fv::fixture_payload(777), job_times(at(fv::kNow), at(fv::kNow + 1)));
    if (scheduler.get_job(job.id) != job)
      return "the scheduler does not read back the job it added";
    Scheduler other = Scheduler::open(path, options);
    if (other.get_job(job.id) != job)
      return "another connection does not see the job the scheduler added";
    return "";
  } catch (const std::exception& error) {
    return std::string("threw: ") + error.what();
  }
}

std::string raw_dump(const std::string& path) {
  auto raw = jobsched_test::open_raw(path);
  return fv::dump(raw.get());
}

std::string raw_integrity(const std::string& path) {
  auto raw = jobsched_test::open_raw(path);
  return fv::integrity(raw.get());
}

void sweep(Report& report, const Operation& op, const std::string& fixture_bytes, bool persistent) {
  const jobsched::Options options = fv::pinned_options(Synchronous::normal);
  const std::string& bytes = op.is_open ? op.open_bytes : fixture_bytes;
  const std::string mode = persistent ? "persistent" : "once";

  // The fault-free run.
  std::string before;
  std::string after;
  std::string expected;
  long allocations = 0;
  {
    TempFile file("oom-reference");
    if (!bytes.empty())
      jobsched_test::write_bytes(file.path(), bytes);
    std::optional<Scheduler> scheduler;
    if (op.is_open) {
      before = raw_dump(file.path());
      oom::arm(std::numeric_limits<long>::max(), false);
      scheduler.emplace(Scheduler::open(file.path(), options));
    } else {
      scheduler.emplace(Scheduler::open(file.path(), options));
      if (op.prepare)
        op.prepare(*scheduler);
      before = fv::dump(scheduler->handle());
      oom::arm(std::numeric_limits<long>::max(), false);
      expected = op.run(scheduler);
    }
    oom::disarm();
    allocations = oom::seen;
    after = raw_dump(file.path());
  }
  report.check(before != after, op.name, "the operation changes nothing");

  Stats stats;
  stats.allocations = allocations;
  // Every N, or every N near both ends and a sample between.
  const long step = full_sweeps() || allocations <= kDense + kSamples
                        ? 1
                        : ((allocations - kDense) / kSamples) | 1;
  auto next = [&](long n) {
    if (step == 1 || n < kDense || n >= allocations - 10)
      return n + 1;
    return std::min(n + step, allocations - 10);
  };
  bool finished = false;
  for (long n = 1; n <= kMaxN && !finished; n = next(n)) {
    const std::string context = op.name + " " + mode + " N=" + std::to_string(n);
    ++stats.calls;
    const sqlite3_int64 memory_before = sqlite3_memory_used();
    {
      TempFile file("oom");
      if (!bytes.empty())
        jobsched_test::write_bytes(file.path(), bytes);
      std::optional<Scheduler> scheduler;
      if (!op.is_open) {
        scheduler.emplace(Scheduler::open(file.path(), options));
        if (op.prepare)
          op.prepare(*scheduler);
      }
      oom::arm(n, persistent);
      bool threw = true;
      std::string result;
      try {
        if (op.is_open) {
          scheduler.emplace(Scheduler::open(file.path(), options));
        } else {
          result = op.run(scheduler);
        }
        threw = false;
      } catch (const jobsched::Error& error) {
        ++stats.codes[error.extended_code()];
        report.check(error.code() == SQLITE_NOMEM, context,
                     "threw code " + std::to_string(error.code()) + " (extended " +
                         std::to_string(error.extended_code()) +
                         "), not SQLITE_NOMEM: " + error.what());
      } catch (const std::bad_alloc&) {
        ++stats.bad_alloc;
      } catch (const std::exception& error) {
        report.check(false, context,
                     std::string("threw a non-jobsched exception: ") + error.what());
      }
      oom::disarm();
      const bool reached = oom::seen >= n;
      if (threw)
        ++stats.threw;
      if (!reached) {
        report.check(!threw, context, "threw without an injected failure");
        finished = true;
      } else if (!threw) {
        ++stats.faulted_but_ok;
      }
      if (!threw && !op.is_open)
        report.check(result == expected, context,
                     "result '" + result + "', fault-free '" + expected + "'");
      if (op.is_open)
        report.check(threw != scheduler.has_value(), context, "open threw, yet a scheduler exists");
      // A call that fails with allocations still failing must not leave its transaction
      // open (a rollback that needed memory did, before transactions were prepared once);
      // if it does, it is a failure, rolled back by hand so the rest of the checks go on.
      const bool left_open = scheduler && sqlite3_get_autocommit(scheduler->handle()) == 0;
      if (left_open) {
        ++stats.left_open;
        report.check(false, context, "the call threw and left its transaction open");
      }

      // The file as another connection sees it (raw: a scheduler would migrate it).
      std::string state;
      try {
        state = raw_dump(file.path());
      } catch (const std::exception& error) {
        report.check(false, context, std::string("dump failed: ") + error.what());
      }
      report.check(state == before || state == after, context,
                   "the file is neither as before nor as after the call");
      if (!threw)
        report.check(state == after, context, "the call succeeded, but the file is as before");
      if (threw && state == after)
        ++stats.threw_but_after;

      if (left_open)
        sqlite3_exec(scheduler->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
      if (scheduler) {
        const std::string error = reuse(*scheduler, file.path(), state, options);
        if (!error.empty()) {
          ++stats.reuse_failed;
          report.check(false, context, "the scheduler failed once allocations worked: " + error);
        }
      } else {
        // Opening again works, and migrates what was left.
        try {
          Scheduler again = Scheduler::open(file.path(), options);
          report.check(fv::dump(again.handle()) == after, context,
                       "opening again gives another state than a fault-free open");
        } catch (const std::exception& error) {
          report.check(false, context, std::string("opening again failed: ") + error.what());
        }
      }
      scheduler.reset();
      report.check(raw_integrity(file.path()) == "ok", context, "integrity_check failed");
    }
    const sqlite3_int64 memory_after = sqlite3_memory_used();
    report.check(memory_after == memory_before, context,
                 "SQLite memory in use went from " + std::to_string(memory_before) + " to " +
                     std::to_string(memory_after) + " bytes (a leak)");
  }
  report.check(finished, op.name + " " + mode, "the sweep never finished");

  std::ostringstream line;
  line << "SWEEP " << op.name << " | " << mode << " | " << stats.calls << " N of "
       << stats.allocations + 1 << (step == 1 ? " (all)" : " (sampled)") << " threw=" << stats.threw
       << " ok_despite_fault=" << stats.faulted_but_ok
       << " threw_but_committed=" << stats.threw_but_after << " reuse_failed=" << stats.reuse_failed
       << " bad_alloc=" << stats.bad_alloc << " left_transaction_open=" << stats.left_open
       << " codes={";
  for (const auto& [code, count] : stats.codes)
    line << code << ":" << count << " ";
  line << "}";
  report.line(line.str());
}

std::string describe_claim(const std::optional<jobsched::ClaimedJob>& claimed) {
  if (!claimed)
    return "none";
  return "job " + std::to_string(claimed->job.id) + " attempt " +
         std::to_string(claimed->job.attempts);
}

/// The operations swept in the child, selected by name.
Operation on_scheduler(std::string name,
                       std::function<std::string(std::optional<Scheduler>&)> run) {
  Operation op;
  op.name = std::move(name);
  op.run = std::move(run);
  return op;
}

std::vector<Operation> operations(const fv::FixtureIds& ids, const std::string& v2_bytes) {
  std::vector<Operation> ops;
  ops.push_back({"open+migrate (new file)", nullptr, nullptr, true, std::string()});
  ops.push_back({"open+migrate (version 2 file)", nullptr, nullptr, true, v2_bytes});
  ops.push_back(on_scheduler("add_job", [](std::optional<Scheduler>& s) {
    return std::to_string(
        s->add_job(fv::fixture_payload(500, 3000), job_times(at(fv::kNow), at(fv::kNow + 5))).id);
  }));
  ops.push_back(on_scheduler("claim_next_job", [](std::optional<Scheduler>& s) {
    return describe_claim(s->claim_next_job(jobsched::Seconds{60.0}, at(fv::kNow)));
  }));
  ops.push_back(on_scheduler("complete(claim)", [ids](std::optional<Scheduler>& s) {
    return std::to_string(s->complete(ids.claim, at(fv::kNow + 1)));
  }));
  ops.push_back(on_scheduler("fail(claim)", [ids](std::optional<Scheduler>& s) {
    return std::to_string(s->fail(ids.claim, "boom", at(fv::kNow + 1)));
  }));
  ops.push_back(on_scheduler("delete_job", [ids](std::optional<Scheduler>& s) {
    return std::to_string(s->delete_job(ids.future_id));
  }));
  ops.push_back(on_scheduler("delete_completed_jobs", [](std::optional<Scheduler>& s) {
    return std::to_string(s->delete_completed_jobs());
  }));
  ops.push_back(on_scheduler("delete_expired_jobs", [](std::optional<Scheduler>& s) {
    return std::to_string(s->delete_expired_jobs(at(fv::kNow)));
  }));
  return ops;
}

struct Fixtures {
  fv::FixtureIds ids;
  std::string bytes;
  std::string v2_bytes;
};

Fixtures build_fixtures() {
  Fixtures fixtures;
  {
    TempFile file("oom-fixture");
    fixtures.ids = fv::write_fixture(file.path());
    fixtures.bytes = jobsched_test::read_bytes(file.path());
  }
  {
    TempFile file("oom-v2-fixture");
    fv::write_v2_fixture(file.path());
    fixtures.v2_bytes = jobsched_test::read_bytes(file.path());
  }
  return fixtures;
}

/// In the child: sweeps the named operations.
void sweep_child(Report& report, const std::vector<std::string>& names, bool persistent) {
  const Fixtures fixtures = build_fixtures();
  for (const Operation& op : operations(fixtures.ids, fixtures.v2_bytes)) {
    for (const std::string& name : names) {
      if (name == op.name)
        sweep(report, op, fixtures.bytes, persistent);
    }
  }
}

/// In the child: finds the first N at which `op`, with every allocation from the Nth on
/// failing, throws and leaves its transaction open; then shows what that does once
/// allocations work again. Reports LEFT_OPEN and EVIDENCE lines, or NOT_LEFT_OPEN.
void left_open_child(Report& report, const std::string& name) {
  const Fixtures fixtures = build_fixtures();
  const jobsched::Options options = fv::pinned_options(Synchronous::normal);
  for (const Operation& op : operations(fixtures.ids, fixtures.v2_bytes)) {
    if (op.name != name)
      continue;
    for (long n = 1; n <= 1000; ++n) {
      TempFile file("oom-left-open");
      jobsched_test::write_bytes(file.path(), fixtures.bytes);
      std::optional<Scheduler> scheduler(Scheduler::open(file.path(), options));
      std::string what = "nothing";
      oom::arm(n, true);
      try {
        op.run(scheduler);
      } catch (const std::exception& error) {
        what = error.what();
      }
      oom::disarm();
      if (oom::seen < n)
        break;
      if (sqlite3_get_autocommit(scheduler->handle()) != 0)
        continue;
      report.line("LEFT_OPEN " + name + ": with every allocation from #" + std::to_string(n) +
                  " failing, the call threw '" + what +
                  "' and sqlite3_get_autocommit() is 0 once allocations work again");
      // Another scheduler on the file cannot write: the write lock is still held.
      {
        jobsched::Options short_wait = options;
        short_wait.busy_timeout = std::chrono::milliseconds{200};
        Scheduler other = Scheduler::open(file.path(), short_wait);
        try {
          other.add_job(jobsched::Payload::text("other"));
          report.line("EVIDENCE another scheduler could add a job");
        } catch (const jobsched::BusyError& error) {
          report.line(std::string("EVIDENCE another scheduler's add_job threw BusyError: ") +
                      error.what());
        }
      }
      // The scheduler's own writes "succeed" but never commit: closing loses them.
      const jobsched::Job job = scheduler->add_job(jobsched::Payload::text("lost?"));
      const bool visible = scheduler->get_job(job.id).has_value();
      scheduler.reset();
      Scheduler again = Scheduler::open(file.path(), options);
      report.line("EVIDENCE the scheduler's next add_job returned job " + std::to_string(job.id) +
                  (visible ? " (visible to it)" : " (not even visible to it)") +
                  "; after it closed the job is " +
                  (again.get_job(job.id) ? "in the file" : "gone (rolled back)"));
      return;
    }
    report.line("NOT_LEFT_OPEN " + name);
    return;
  }
  report.line("FAIL no operation named " + name);
}

/// Forks a child that installs the failing allocator and runs `body`; returns its report
/// after checking that it exited normally.
std::string in_child(const std::function<void(Report&)>& body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    jobsched_test::die_with_parent();
    ::close(fds[0]);
    {
      Report report(fds[1]);
      const std::string error = oom::install();
      if (!error.empty()) {
        report.line("FAIL install: " + error);
      } else {
        try {
          body(report);
        } catch (const std::exception& e) {
          report.line(std::string("FAIL the child threw: ") + e.what());
        }
      }
      report.line("DONE");
    }
    ::close(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  // The sampled sweeps take seconds; JOBSCHED_FAULTS_FULL's take minutes.
  const jobsched_test::Deadline deadline(std::chrono::seconds(full_sweeps() ? 3600 : 60),
                                         "the out-of-memory sweep in a child process to end");
  std::string output;
  const bool ended = jobsched_test::read_to_end(fds[0], output, deadline);
  ::close(fds[0]);
  const jobsched_test::ChildEnd end = jobsched_test::wait_for_child(pid, deadline);
  INFO("child report:\n" << output);
  if (!ended || end.hung)
    FAIL_CHECK(deadline.failure() << ": the child was SIGKILLed");
  CHECK(end.exited);
  if (end.exited)
    CHECK(end.exit_code == 0);
  if (end.signal != 0 && !end.hung)
    FAIL_CHECK("the child " << end.describe());
  CHECK(output.find("DONE\n") != std::string::npos);
  return output;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

bool starts_with(const std::string& text, const char* prefix) {
  return text.rfind(prefix, 0) == 0;
}

/// Sweeps `names` in a child; checks its report.
void run_in_child(const std::vector<std::string>& names, bool persistent) {
  const std::string output =
      in_child([&](Report& report) { sweep_child(report, names, persistent); });
  INFO("child report:\n" << output);
  long sweeps = 0;
  for (const std::string& line : lines_of(output)) {
    if (starts_with(line, "FAIL"))
      FAIL_CHECK(line);
    if (starts_with(line, "SWEEP"))
      ++sweeps;
    if (verbose() && (starts_with(line, "SWEEP") || starts_with(line, "KNOWN")))
      std::cout << "  [oom] " << line << "\n";
  }
  CHECK(sweeps == static_cast<long>(names.size()));
}

}  // namespace

TEST_CASE("Out of memory while a file is opened and migrated", "[oom][faults]") {
  const std::vector<std::string> names = {"open+migrate (new file)",
                                          "open+migrate (version 2 file)"};
  SECTION("the Nth allocation fails") {
    run_in_child(names, false);
  }
  SECTION("every allocation from the Nth fails") {
    run_in_child(names, true);
  }
}

TEST_CASE("Out of memory while jobs are added, claimed, completed, failed and deleted",
          "[oom][faults]") {
  const std::vector<std::string> names = {
      "add_job",    "claim_next_job",        "complete(claim)",    "fail(claim)",
      "delete_job", "delete_completed_jobs", "delete_expired_jobs"};
  SECTION("the Nth allocation fails") {
    run_in_child(names, false);
  }
  SECTION("every allocation from the Nth fails") {
    run_in_child(names, true);
  }
}

// Found by the sweep above: when a call that runs in detail::WriteTransaction failed while
// allocations kept failing, its rollback (parsed with sqlite3_exec) failed too and the
// connection stayed inside BEGIN IMMEDIATE for good, holding the write lock; its later
// writes were lost when it closed. Transactions now use statements prepared at open.
TEST_CASE("Out of memory never leaves a transaction open", "[oom][faults]") {
  for (const char* name : {"claim_next_job", "fail(claim)"}) {
    INFO(name);
    const std::string output = in_child([&](Report& report) { left_open_child(report, name); });
    INFO("child report:\n" << output);
    bool left_open = false;
    for (const std::string& line : lines_of(output)) {
      CHECK_FALSE(starts_with(line, "FAIL"));
      left_open = left_open || starts_with(line, "LEFT_OPEN");
      if (verbose() && (starts_with(line, "LEFT_OPEN") || starts_with(line, "EVIDENCE")))
        std::cout << "  [oom] " << line << "\n";
    }
    CHECK_FALSE(left_open);
  }
}

}  // namespace test_out_of_memory
