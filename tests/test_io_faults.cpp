// SPDX-License-Identifier: MIT
// I/O faults: a VFS shim (support/fault_vfs.hpp) fails the Nth write, sync or truncate of
// an operation, for every N until the operation finishes without reaching it. For each N:
// the call succeeds or throws jobsched::IoError (SQLITE_IOERR or SQLITE_FULL), never another
// type; another connection then sees the file exactly as before the call or exactly as
// after it; the file passes `PRAGMA integrity_check`; no transaction is left open; and the
// scheduler that saw the fault keeps working once the faults stop.
//
// Set JOBSCHED_FAULTS_VERBOSE=1 to print one line per sweep.

#include <sqlite3.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/fault_vfs.hpp"
#include "support/temp_file.hpp"

namespace test_io_faults {

namespace {

namespace fv = jobsched_test::faults;
using jobsched::Scheduler;
using jobsched::Synchronous;
using jobsched_test::at;
using jobsched_test::job_times;
using jobsched_test::TempFile;

// No operation here does anywhere near this many writes; reaching it means the sweep never
// ended.
constexpr long kMaxN = 400;

bool verbose() {
  const char* value = std::getenv("JOBSCHED_FAULTS_VERBOSE");
  return value != nullptr && *value != '\0' && *value != '0';
}

/// One operation under test. `prepare` runs with faults off; `run` runs with them on and
/// returns a description of its result, compared with a fault-free run when it succeeds.
struct Operation {
  std::string name;
  std::function<void(Scheduler&)> prepare;
  std::function<std::string(std::optional<Scheduler>&)> run;
  /// False when the operation leaves the data as it was (closing).
  bool changes = true;
};

struct Fixture {
  std::string bytes;
  fv::FixtureIds ids;
};

const Fixture& fixture() {
  static const Fixture built = [] {
    fv::install();
    TempFile file("faults-fixture");
    Fixture result;
    result.ids = fv::write_fixture(file.path());
    result.bytes = jobsched_test::read_bytes(file.path());
    return result;
  }();
  return built;
}

const std::string& v2_fixture() {
  static const std::string bytes = [] {
    TempFile file("faults-v2-fixture");
    fv::write_v2_fixture(file.path());
    return jobsched_test::read_bytes(file.path());
  }();
  return bytes;
}

/// What one sweep saw, for the verbose report.
struct Stats {
  long calls = 0;             // N values tried, the last (fault-free) one included
  long threw = 0;             // calls that threw
  long faulted_but_ok = 0;    // calls that succeeded although a fault was injected
  long threw_but_after = 0;   // calls that threw although the change reached the file
  long reuse_failed = 0;      // the faulty scheduler failed once faults stopped
  std::map<int, long> codes;  // extended codes thrown
  std::set<std::string> reuse_errors;

  std::string summary() const {
    std::ostringstream out;
    out << "N=1.." << calls << " threw=" << threw << " ok_despite_fault=" << faulted_but_ok
        << " threw_but_committed=" << threw_but_after << " reuse_failed=" << reuse_failed
        << " codes={";
    for (const auto& [code, count] : codes)
      out << code << ":" << count << " ";
    out << "}";
    for (const std::string& error : reuse_errors)
      out << "\n      reuse error: " << error;
    return out.str();
  }
};

/// Runs `call`, checks that it throws nothing but an IoError with code SQLITE_IOERR or
/// SQLITE_FULL; returns whether it threw, and its result otherwise.
template <class Call>
bool run_checked(Call&& call, Stats& stats, std::string& result) {
  try {
    result = call();
    return false;
  } catch (const jobsched::IoError& error) {
    INFO("IoError: " << error.what());
    CHECK((error.code() == SQLITE_IOERR || error.code() == SQLITE_FULL));
    CHECK((error.extended_code() & 0xff) == error.code());
    ++stats.codes[error.extended_code()];
  } catch (const jobsched::Error& error) {
    FAIL_CHECK("a jobsched::Error that is not an IoError: " << error.what() << " (code "
                                                            << error.code() << ")");
  } catch (const std::exception& error) {
    FAIL_CHECK("an exception that is not a jobsched::Error: " << error.what());
  }
  ++stats.threw;
  return true;
}

/// Uses a scheduler that saw a fault: its view matches the file's, it counts, adds a job
/// that another connection sees. Returns the error text when something failed.
std::optional<std::string> try_reuse(Scheduler& scheduler, const std::string& path,
                                     const std::string& file_state,
                                     const jobsched::Options& options) {
  try {
    CHECK(sqlite3_get_autocommit(scheduler.handle()) != 0);
    CHECK(fv::dump(scheduler.handle()) == file_state);
    scheduler.count_pending_jobs();
    const jobsched::Job job =
        scheduler.add_job(fv::fixture_payload(777), job_times(at(fv::kNow), at(fv::kNow + 1)));
    CHECK(scheduler.get_job(job.id) == job);
    Scheduler other = Scheduler::open(path, options);
    CHECK(other.get_job(job.id) == job);
    return std::nullopt;
  } catch (const std::exception& error) {
    return std::string(error.what());
  }
}

void report(const std::string& what, const fv::Plan& plan, Synchronous synchronous,
            const Stats& stats) {
  if (!verbose())
    return;
  fv::Plan shown = plan;
  shown.n = 0;
  std::cout << "  [faults] " << what << " | " << fv::describe(shown)
            << (shown.persistent ? " (persistent)" : " (once)")
            << (synchronous == Synchronous::full ? " sync=FULL" : " sync=NORMAL") << " | "
            << stats.summary() << "\n";
}

// ---- The sweep over an operation on an open scheduler ----------------------------------------

Stats sweep(const Operation& op, fv::Plan plan, Synchronous synchronous) {
  const jobsched::Options options = fv::pinned_options(synchronous);
  const std::string& bytes = fixture().bytes;

  // The fault-free run: the states before and after, and the result.
  std::string before;
  std::string after;
  std::string expected_result;
  {
    TempFile file("faults-reference");
    jobsched_test::write_bytes(file.path(), bytes);
    std::optional<Scheduler> scheduler(Scheduler::open(fv::uri(file.path()), options));
    if (op.prepare)
      op.prepare(*scheduler);
    before = fv::dump(scheduler->handle());
    expected_result = op.run(scheduler);
    Scheduler check = Scheduler::open(file.path(), options);
    after = fv::dump(check.handle());
  }
  CHECK((before != after) == op.changes);

  Stats stats;
  for (long n = 1; n <= kMaxN; ++n) {
    plan.n = n;
    INFO(op.name << ": " << fv::describe(plan)
                 << (synchronous == Synchronous::full ? " sync=FULL" : " sync=NORMAL"));
    ++stats.calls;
    TempFile file("faults");
    jobsched_test::write_bytes(file.path(), bytes);
    bool done = false;
    {
      std::optional<Scheduler> scheduler(Scheduler::open(fv::uri(file.path()), options));
      if (op.prepare)
        op.prepare(*scheduler);
      fv::Disarm guard;
      fv::arm(plan);
      std::string result;
      const bool threw = run_checked([&] { return op.run(scheduler); }, stats, result);
      fv::disarm();
      const bool reached = fv::seen() >= n;
      if (!reached) {
        CHECK_FALSE(threw);
        done = true;
      } else if (!threw) {
        ++stats.faulted_but_ok;
      }
      if (!threw)
        CHECK(result == expected_result);

      // The file, as another (normal) scheduler sees it.
      std::string state;
      {
        Scheduler check = Scheduler::open(file.path(), options);
        state = fv::dump(check.handle());
      }
      CHECK((state == before || state == after));
      if (!threw)
        CHECK(state == after);
      if (threw && state == after && before != after)
        ++stats.threw_but_after;

      // The scheduler that saw the fault keeps working.
      if (scheduler) {
        const std::optional<std::string> error = try_reuse(*scheduler, file.path(), state, options);
        if (error) {
          ++stats.reuse_failed;
          stats.reuse_errors.insert(*error);
          // SQLITE_FULL is an ordinary condition: the connection must survive it.
          if (plan.code == SQLITE_FULL)
            FAIL_CHECK("the scheduler failed after SQLITE_FULL: " << *error);
        }
      }
    }
    // All closed (the last close checkpoints, faults off): the file is sound.
    {
      auto raw = jobsched_test::open_raw(file.path());
      CHECK(fv::integrity(raw.get()) == "ok");
    }
    if (done)
      break;
  }
  CHECK(stats.calls < kMaxN);
  report(op.name, plan, synchronous, stats);
  return stats;
}

// ---- The sweep over opening (and migrating) a file ----------------------------------------

/// `bytes` is the file before (empty: no file at all).
Stats sweep_open(const std::string& what, const std::string& bytes, fv::Plan plan,
                 Synchronous synchronous) {
  const jobsched::Options options = fv::pinned_options(synchronous);
  auto raw_dump = [](const std::string& path) {
    auto raw = jobsched_test::open_raw(path);
    return fv::dump(raw.get());
  };

  std::string before;
  std::string after;
  {
    TempFile file("faults-open-reference");
    if (!bytes.empty())
      jobsched_test::write_bytes(file.path(), bytes);
    before = raw_dump(file.path());
  }
  {
    TempFile file("faults-open-reference");
    if (!bytes.empty())
      jobsched_test::write_bytes(file.path(), bytes);
    {
      Scheduler scheduler = Scheduler::open(fv::uri(file.path()), options);
      REQUIRE(scheduler.migrated_from().has_value());
    }
    after = raw_dump(file.path());
  }
  REQUIRE(before != after);

  Stats stats;
  for (long n = 1; n <= kMaxN; ++n) {
    plan.n = n;
    INFO(what << ": " << fv::describe(plan)
              << (synchronous == Synchronous::full ? " sync=FULL" : " sync=NORMAL"));
    ++stats.calls;
    TempFile file("faults-open");
    if (!bytes.empty())
      jobsched_test::write_bytes(file.path(), bytes);
    bool done = false;
    {
      std::optional<Scheduler> scheduler;
      fv::Disarm guard;
      fv::arm(plan);
      std::string result;
      const bool threw = run_checked(
          [&] {
            scheduler.emplace(Scheduler::open(fv::uri(file.path()), options));
            return std::string();
          },
          stats, result);
      fv::disarm();
      const bool reached = fv::seen() >= n;
      if (!reached) {
        CHECK_FALSE(threw);
        done = true;
      } else if (!threw) {
        ++stats.faulted_but_ok;
      }
      CHECK(threw != scheduler.has_value());

      // The file as a raw connection sees it (a scheduler would migrate it).
      const std::string state = raw_dump(file.path());
      CHECK((state == before || state == after));
      if (!threw)
        CHECK(state == after);
      if (threw && state == after)
        ++stats.threw_but_after;

      if (scheduler) {
        const std::optional<std::string> error = try_reuse(*scheduler, file.path(), state, options);
        if (error) {
          ++stats.reuse_failed;
          stats.reuse_errors.insert(*error);
          if (plan.code == SQLITE_FULL)
            FAIL_CHECK("the scheduler failed after SQLITE_FULL: " << *error);
        }
      }
    }
    {
      auto raw = jobsched_test::open_raw(file.path());
      CHECK(fv::integrity(raw.get()) == "ok");
    }
    if (!done) {
      // Faults off: opening again (on the shim) works and migrates what is left to migrate.
      Scheduler again = Scheduler::open(fv::uri(file.path()), options);
      CHECK(fv::dump(again.handle()) == after);
      const jobsched::Job job = again.add_job(jobsched::Payload::text("after"));
      CHECK(again.get_job(job.id) == job);
    }
    if (done)
      break;
  }
  CHECK(stats.calls < kMaxN);
  report(what, plan, synchronous, stats);
  return stats;
}

// ---- The plans every operation is swept with -----------------------------------------------

struct PlanCase {
  fv::Plan plan;
  Synchronous synchronous;
};

std::vector<PlanCase> plans() {
  return {
      {{fv::write, 0, false, 0}, Synchronous::normal},
      {{fv::write, 0, true, 0}, Synchronous::normal},
      {{fv::write, 0, false, SQLITE_FULL}, Synchronous::normal},
      {{fv::write, 0, true, SQLITE_FULL}, Synchronous::normal},
      {{fv::sync, 0, false, 0}, Synchronous::full},
      {{fv::sync, 0, true, 0}, Synchronous::full},
      {{fv::truncate, 0, false, 0}, Synchronous::full},
      {{fv::truncate, 0, true, 0}, Synchronous::full},
      {{fv::any, 0, false, 0}, Synchronous::full},
      {{fv::any, 0, true, 0}, Synchronous::full},
  };
}

void sweep_all(const Operation& op) {
  fixture();
  for (const PlanCase& c : plans())
    sweep(op, c.plan, c.synchronous);
}

std::string describe_claim(const std::optional<jobsched::ClaimedJob>& claimed) {
  if (!claimed)
    return "none";
  return "job " + std::to_string(claimed->job.id) + " attempt " +
         std::to_string(claimed->job.attempts) + " lease " +
         std::to_string(jobsched::to_unix_seconds(claimed->claim.lease_until));
}

}  // namespace

TEST_CASE("I/O faults while a new file is opened and migrated", "[faults]") {
  fv::install();
  for (const PlanCase& c : plans())
    sweep_open("open+migrate (new file)", std::string(), c.plan, c.synchronous);
}

TEST_CASE("I/O faults while a version 2 file is opened and migrated", "[faults]") {
  fv::install();
  const std::string& bytes = v2_fixture();
  for (const PlanCase& c : plans())
    sweep_open("open+migrate (version 2 file)", bytes, c.plan, c.synchronous);
}

TEST_CASE("I/O faults during add_job", "[faults]") {
  sweep_all({"add_job", nullptr, [](std::optional<Scheduler>& s) {
               const jobsched::Job job = s->add_job(fv::fixture_payload(500, 3000),
                                                    job_times(at(fv::kNow), at(fv::kNow + 5)));
               return std::to_string(job.id);
             }});
}

TEST_CASE("I/O faults during claim_next_job", "[faults]") {
  sweep_all({"claim_next_job", nullptr, [](std::optional<Scheduler>& s) {
               return describe_claim(s->claim_next_job(jobsched::Seconds{60.0}, at(fv::kNow)));
             }});
}

TEST_CASE("I/O faults during complete(claim)", "[faults]") {
  sweep_all({"complete(claim)", nullptr, [](std::optional<Scheduler>& s) {
               return std::to_string(s->complete(fixture().ids.claim, at(fv::kNow + 1)));
             }});
}

TEST_CASE("I/O faults during fail(claim)", "[faults]") {
  sweep_all({"fail(claim)", nullptr, [](std::optional<Scheduler>& s) {
               return std::to_string(s->fail(fixture().ids.claim, "boom", at(fv::kNow + 1)));
             }});
}

TEST_CASE("I/O faults during delete_job", "[faults]") {
  sweep_all({"delete_job", nullptr, [](std::optional<Scheduler>& s) {
               return std::to_string(s->delete_job(fixture().ids.future_id));
             }});
}

TEST_CASE("I/O faults during delete_completed_jobs and delete_expired_jobs", "[faults]") {
  sweep_all({"delete_completed_jobs", nullptr, [](std::optional<Scheduler>& s) {
               return std::to_string(s->delete_completed_jobs());
             }});
  sweep_all({"delete_expired_jobs", nullptr, [](std::optional<Scheduler>& s) {
               return std::to_string(s->delete_expired_jobs(at(fv::kNow)));
             }});
}

TEST_CASE("I/O faults while the last scheduler closes and checkpoints", "[faults]") {
  // The WAL holds a committed job; closing checkpoints it into the file (writes, syncs and
  // truncates the file) and deletes the WAL. A failed checkpoint must lose nothing.
  sweep_all({"close (checkpoint)",
             [](Scheduler& s) {
               s.add_job(fv::fixture_payload(600, 3000), job_times(at(fv::kNow), at(fv::kNow)));
             },
             [](std::optional<Scheduler>& s) {
               s.reset();
               return std::string();
             },
             false});
}

TEST_CASE("The fault VFS fails exactly the planned operations", "[faults]") {
  fv::install();
  TempFile file("faults-self");
  const jobsched::Options options = fv::pinned_options(Synchronous::full);
  Scheduler scheduler = Scheduler::open(fv::uri(file.path()), options);
  fv::Disarm guard;

  // Count the writes of one add_job.
  fv::arm({fv::write, 1'000'000, false, 0});
  scheduler.add_job(jobsched::Payload::text("count"));
  const long writes = fv::seen();
  CHECK(writes >= 1);
  CHECK(fv::injected() == 0);

  // The first write fails once: add_job throws IoError with SQLITE_IOERR_WRITE.
  fv::arm({fv::write, 1, false, 0});
  try {
    scheduler.add_job(jobsched::Payload::text("x"));
    FAIL("add_job succeeded although its first write failed");
  } catch (const jobsched::IoError& error) {
    CHECK(error.code() == SQLITE_IOERR);
    CHECK(error.extended_code() == SQLITE_IOERR_WRITE);
  }
  CHECK(fv::injected() == 1);

  // SQLITE_FULL on a sync.
  fv::arm({fv::sync, 1, false, SQLITE_FULL});
  try {
    scheduler.add_job(jobsched::Payload::text("y"));
    FAIL("add_job succeeded although its sync failed");
  } catch (const jobsched::IoError& error) {
    CHECK(error.code() == SQLITE_FULL);
  }
  fv::disarm();
  CHECK(scheduler.count_pending_jobs() == 1);
}

}  // namespace test_io_faults
