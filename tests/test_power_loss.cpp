// SPDX-License-Identifier: MIT
// Power loss: a VFS shim (support/power_loss_vfs.hpp) cuts the power at the Nth write or sync
// of a scenario, for every N, and computes what the disk holds afterwards under four
// policies (none of the unsynced writes, a torn prefix of them, a random subset of their
// sectors, all of them). Each distinct result is put on the real files and reopened with the
// normal VFS. Whatever the cut and the policy: `PRAGMA integrity_check` is "ok", a scheduler
// opens the file and adds, claims and completes; an old file is either at its old version
// with all its jobs or fully migrated with all its jobs; the changes that survive are a
// prefix of the calls made (never a later one without an earlier one). At Synchronous::full
// every call that returned before the cut survives; at Synchronous::normal the newest may
// be lost (DESIGN.md, "Concurrency and delivery"). The last two tests prove the checks can
// fail: on a disk that ignores syncs they must find lost commits, and on files changed by
// hand each kind of broken promise.
//
// Set JOBSCHED_POWERLOSS_VERBOSE=1 to print one line of figures per sweep.
//
// The checker and the sweep are support/power_loss_check.hpp; here are the scenarios: their
// start files, their scripts of calls, and the test cases.

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/fault_vfs.hpp"
#include "support/power_loss_check.hpp"
#include "support/power_loss_vfs.hpp"
#include "support/python_files.hpp"
#include "support/temp_file.hpp"

namespace test_power_loss {

namespace {

namespace pl = jobsched_test::powerloss;
namespace plc = jobsched_test::powerloss_check;
namespace fv = jobsched_test::faults;
using jobsched::Scheduler;
using jobsched::Synchronous;
using jobsched_test::at;
using jobsched_test::job_times;
using jobsched_test::TempFile;
using plc::Change;
using plc::check_after_power_loss;
using plc::check_promises;
using plc::Event;
using plc::Expectation;
using plc::Figures;
using plc::Scenario;
using plc::Script;
using plc::settings_for;
using plc::Steps;
using plc::sweep;
using plc::SweepSettings;
using plc::untouched_part;
using plc::Verdict;

// ---- Scripts: what a scenario does, call by call ---------------------------------------------

void open_step(std::optional<Scheduler>& scheduler, const std::string& uri,
               const jobsched::Options& options, Steps& steps, int autocheckpoint = 0) {
  steps.run([&] {
    scheduler.emplace(Scheduler::open(uri, options));
    if (autocheckpoint > 0) {
      jobsched_test::exec_raw(scheduler->handle(),
                              "PRAGMA wal_autocheckpoint = " + std::to_string(autocheckpoint));
    }
    return Event{Change::opened, 0};
  });
}

void add_steps(Scheduler& scheduler, Steps& steps, int count, std::size_t payload_size) {
  for (int i = 0; i < count; ++i) {
    steps.run([&] {
      const jobsched::Job job = scheduler.add_job(
          fv::fixture_payload(i, payload_size), job_times(at(fv::kNow - 60 + i), at(fv::kNow + i)));
      return Event{Change::added, job.id};
    });
  }
}

/// Opens, adds `count` jobs one call each, closes (the last connection checkpoints).
Script adds(int count, std::size_t payload_size = 100, int autocheckpoint = 0) {
  return [=](const std::string& uri, const jobsched::Options& options, Steps& steps) {
    std::optional<Scheduler> scheduler;
    open_step(scheduler, uri, options, steps, autocheckpoint);
    add_steps(*scheduler, steps, count, payload_size);
  };
}

/// Opens, then claims the next job and completes it, `count` times, and closes.
Script claims_and_completes(int count) {
  return [=](const std::string& uri, const jobsched::Options& options, Steps& steps) {
    std::optional<Scheduler> scheduler;
    open_step(scheduler, uri, options, steps);
    for (int i = 0; i < count; ++i) {
      std::optional<jobsched::ClaimedJob> claimed;
      steps.run([&] {
        claimed = scheduler->claim_next_job(jobsched::Seconds{600});
        if (!claimed)
          throw std::logic_error("nothing to claim");
        return Event{Change::claimed, claimed->job.id};
      });
      steps.run([&] {
        if (!scheduler->complete(claimed->claim))
          throw std::logic_error("complete refused a live claim");
        return Event{Change::completed, claimed->job.id};
      });
    }
  };
}

// ---- Start files -------------------------------------------------------------------------

std::string file_bytes(const std::function<void(const std::string&)>& write) {
  TempFile file("powerloss-start");
  write(file.path());
  return jobsched_test::read_bytes(file.path());
}

/// A current-version file, closed, with `future` jobs not due for an hour, then `due` jobs.
std::string current_file(int future, int due) {
  return file_bytes([&](const std::string& path) {
    Scheduler scheduler = Scheduler::open(path, fv::pinned_options(Synchronous::full));
    for (int i = 0; i < future; ++i)
      scheduler.add_job(fv::fixture_payload(i), job_times(at(fv::kNow), at(fv::kNow + 3600)));
    for (int i = 0; i < due; ++i)
      scheduler.add_job(fv::fixture_payload(100 + i),
                        job_times(at(fv::kNow - 100 + i), at(fv::kNow - 100 + i)));
  });
}

/// A version-0 file as the seed's first form wrote it: a rollback journal (no WAL), jobs of
/// every storage class, some completed, some expiring.
std::string v0_rollback_file() {
  return file_bytes([](const std::string& path) {
    auto owner = jobsched_test::open_raw(path);
    jobsched_test::write_python_schema(owner.get(), 0);
    jobsched_test::exec_raw(
        owner.get(),
        "BEGIN;"
        "INSERT INTO job (data, created_at, starts_at) VALUES ('text', 0, 0);"
        "INSERT INTO job (data, created_at, starts_at, completed_at)"
        " VALUES (x'00ff', 1699999000.5, 1699999100.25, 1699999200.125);"
        "INSERT INTO job (data, created_at, starts_at, expires_at)"
        " VALUES (7, 1699999000, 1699999050, 1699999990);"
        "INSERT INTO job (data, created_at, starts_at) VALUES (NULL, 1699999990, 1699999995);"
        "INSERT INTO job (data, created_at, starts_at) VALUES (3.25, 1699999999, 1700000120);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 24)"
        " INSERT INTO job (data, created_at, starts_at) SELECT zeroblob(300) || i,"
        " 1699999000 + i, 1699999500 + i FROM n;"
        "COMMIT;");
  });
}

std::int64_t job_sequence(const std::string& bytes) {
  TempFile file("powerloss-sequence");
  jobsched_test::write_bytes(file.path(), bytes);
  auto owner = jobsched_test::open_raw(file.path());
  return jobsched_test::query_int(owner.get(),
                                  "SELECT seq FROM sqlite_sequence WHERE name = 'job'");
}

Synchronous mode_named(const char* mode_name) {
  return std::string(mode_name) == "full" ? Synchronous::full : Synchronous::normal;
}

}  // namespace

TEST_CASE("a power cut while a new file is created leaves an empty or a usable file",
          "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  const Scenario scenario{"create", std::nullopt, 0, adds(2)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE(
    "a power cut while a version-2 file is migrated leaves it at version 2 or migrated"
    " with all its jobs",
    "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  static const std::string start = file_bytes(&fv::write_v2_fixture);
  const Scenario scenario{"migrate-v2", start, job_sequence(start), adds(2)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE(
    "a power cut while a version-0 rollback-journal file is migrated and switched to WAL"
    " leaves it old or migrated with all its jobs",
    "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  static const std::string start = v0_rollback_file();
  const Scenario scenario{"migrate-v0-journal", start, job_sequence(start), adds(2)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE(
    "a power cut among add_job calls loses no returned add at FULL and only the newest at"
    " NORMAL",
    "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  static const std::string start = current_file(0, 0);
  const Scenario scenario{"adds", start, 0, adds(10)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE("a power cut among claims and completes loses none that returned at FULL",
          "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  static const std::string start = current_file(4, 5);
  const Scenario scenario{"claims", start, 4, claims_and_completes(5)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE("a power cut during checkpoints loses no returned add at FULL", "[powerloss]") {
  const char* mode_name = GENERATE("full", "normal");
  CAPTURE(mode_name);
  const Synchronous mode = mode_named(mode_name);
  static const std::string start = current_file(0, 0);
  // Pages of 4 KiB: a 1,500-byte payload fills a third of one; checkpoint every 2 pages.
  const Scenario scenario{"checkpoints", start, 0, adds(6, 1500, 2)};
  const Figures figures = sweep(scenario, settings_for(mode));
  check_promises(figures, mode);
}

TEST_CASE("the power-loss checker reports lost commits when the disk ignores syncs",
          "[powerloss]") {
  static const std::string start = current_file(0, 0);
  const Scenario scenario{"adds-syncs-ignored", start, 0, adds(6)};
  SweepSettings settings;
  settings.mode = Synchronous::full;
  settings.syncs_ignored = true;
  settings.policies = {pl::Policy::none};
  const Figures figures = sweep(scenario, settings);
  INFO(figures.summary());
  // FULL's promise is broken, and the checker says so: the changes of returned calls are gone.
  REQUIRE(figures.lossy_images > 0);
  REQUIRE(figures.lost > 0);
  // What it still keeps: a lying disk loses a suffix of whole commits, and the file is sound.
  CHECK(figures.corrupt == 0);
  CHECK(figures.gaps == 0);
}

TEST_CASE("the power-loss checker can report each broken promise it looks for", "[powerloss]") {
  // A file whose calls all returned, then changed behind the scheduler's back the way a
  // broken disk could change it.
  const jobsched::Options options = fv::pinned_options(Synchronous::normal);
  TempFile file("powerloss-checker");
  std::vector<Event> events{{Change::opened, 0}};
  {
    Scheduler scheduler = Scheduler::open(file.path(), options);
    for (int i = 0; i < 4; ++i)
      events.push_back({Change::added, scheduler.add_job(fv::fixture_payload(i)).id});
  }
  std::string part;
  {
    auto owner = jobsched_test::open_raw(file.path());
    part = untouched_part(owner.get(), 0);
  }
  Expectation expected;
  expected.events = &events;
  expected.started = events.size();
  expected.returned = events.size();
  expected.old_part = &part;
  expected.new_part = &part;
  expected.options = options;
  const std::string sound = jobsched_test::read_bytes(file.path());

  SECTION("an early change missing while later ones survive is a gap") {
    jobsched_test::exec_raw(jobsched_test::open_raw(file.path()).get(),
                            "DELETE FROM job WHERE id = " + std::to_string(events[2].id));
    const Verdict verdict = check_after_power_loss(file.path(), expected);
    INFO(verdict.describe());
    CHECK(verdict.corruption.empty());
    CHECK(verdict.lost == 1);
    CHECK(verdict.gaps == 2);
  }
  SECTION("a change from a call never made is a phantom") {
    expected.started = 3;
    expected.returned = 2;
    const Verdict verdict = check_after_power_loss(file.path(), expected);
    INFO(verdict.describe());
    CHECK(verdict.phantoms == 2);
    CHECK(verdict.in_flight_survived);
  }
  SECTION("a schema that is neither the old one nor the migrated one is a mixed migration") {
    const std::string old_part = "[schema]\n";
    expected.old_part = &old_part;
    jobsched_test::exec_raw(jobsched_test::open_raw(file.path()).get(), "DROP INDEX ix_job_failed");
    const Verdict verdict = check_after_power_loss(file.path(), expected);
    INFO(verdict.describe());
    CHECK(verdict.mixed_migration);
  }
  SECTION("a page overwritten with garbage is corruption") {
    constexpr std::size_t page = 4096;
    std::string bytes = sound;
    REQUIRE(bytes.size() > 3 * page);
    for (std::size_t i = page + 100; i < 2 * page; ++i)  // page 2, past its header
      bytes[i] = static_cast<char>(i * 37u);
    jobsched_test::write_bytes(file.path(), bytes);
    const Verdict verdict = check_after_power_loss(file.path(), expected);
    INFO(verdict.describe());
    CHECK_FALSE(verdict.corruption.empty());
  }
}

}  // namespace test_power_loss
