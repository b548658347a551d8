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

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/fault_vfs.hpp"
#include "support/power_loss_vfs.hpp"
#include "support/python_files.hpp"
#include "support/temp_file.hpp"

namespace {

namespace pl = jobsched_test::powerloss;
namespace fv = jobsched_test::faults;
using jobsched::Scheduler;
using jobsched::Synchronous;
using jobsched_test::at;
using jobsched_test::job_times;
using jobsched_test::TempFile;

// No scenario here comes near this many writes and syncs; more means a runaway script.
constexpr long kMaxOperations = 1500;
// Each sweep fails, rather than hangs, past this (stretched in sanitizer builds), so that
// both sweeps of a case end within the time limit of each test case (test_time_limits.cpp).
constexpr std::chrono::seconds kSweepLimit{50};

bool verbose() {
  const char* value = std::getenv("JOBSCHED_POWERLOSS_VERBOSE");
  return value != nullptr && *value != '\0' && *value != '0';
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

// Sanitizer builds run 3x slower and look for memory and thread errors, which every other
// cut point shows as well as every one: they sweep half the cut points.
long default_stride() {
  return sanitized() ? 2 : 1;
}

// ---- What a scenario does, call by call ------------------------------------------------------

/// The change one call makes, as it can be looked for in the file afterwards.
enum class Change { opened, added, claimed, completed };

struct Event {
  Change change = Change::opened;
  std::int64_t id = 0;
  friend bool operator==(const Event& a, const Event& b) {
    return a.change == b.change && a.id == b.id;
  }
};

/// The calls of one run: how many began, and the change of each that returned, recorded
/// only once it returned.
class Steps {
 public:
  template <class Call>
  void run(Call&& call) {
    ++started_;
    returned_.push_back(call());
  }
  std::size_t started() const { return started_; }
  const std::vector<Event>& returned() const { return returned_; }

 private:
  std::size_t started_ = 0;
  std::vector<Event> returned_;
};

using Script = std::function<void(const std::string& uri, const jobsched::Options&, Steps&)>;

struct Scenario {
  std::string name;
  /// The database file before the run; empty when there is none.
  std::optional<std::string> start;
  /// Jobs with ids up to this are in the start file and no call changes them.
  std::int64_t untouched_up_to = 0;
  Script script;
};

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

// ---- The checker -----------------------------------------------------------------------------

/// The part of a file no call changes, except a migration: the schema, job_schema and the
/// start file's jobs (claim tokens only as set or not).
std::string untouched_part(sqlite3* db, std::int64_t untouched_up_to) {
  std::string out = "[schema]\n" + fv::dump_rows(db,
                                                 "SELECT type, name, tbl_name, sql FROM"
                                                 " sqlite_master ORDER BY type, name");
  if (fv::has_table(db, "job")) {
    out +=
        "[job]\n" +
        fv::dump_rows(
            db, "SELECT * FROM job WHERE id <= " + std::to_string(untouched_up_to) + " ORDER BY id",
            {"claim_token"});
  }
  if (fv::has_table(db, "job_schema"))
    out += "[job_schema]\n" + fv::dump_rows(db, "SELECT * FROM job_schema ORDER BY key");
  return out;
}

/// -1 without a job table, 0 without job_schema, else the version row.
long long schema_version(sqlite3* db) {
  if (!fv::has_table(db, "job"))
    return -1;
  if (!fv::has_table(db, "job_schema"))
    return 0;
  return jobsched_test::query_int(db, "SELECT value FROM job_schema WHERE key = 'version'");
}

bool is_present(sqlite3* db, long long version, const Event& event) {
  const std::string id = std::to_string(event.id);
  switch (event.change) {
    case Change::opened:
      return version == jobsched::current_schema_version;
    case Change::added:
      return version >= 0 &&
             jobsched_test::query_int(db, "SELECT 1 FROM job WHERE id = " + id) == 1;
    case Change::claimed:
      return version == jobsched::current_schema_version &&
             jobsched_test::query_int(db,
                                      "SELECT attempts >= 1 OR completed_at IS NOT NULL FROM job"
                                      " WHERE id = " +
                                          id) == 1;
    case Change::completed:
      return version >= 0 &&
             jobsched_test::query_int(
                 db, "SELECT completed_at IS NOT NULL FROM job WHERE id = " + id) == 1;
  }
  return false;
}

/// What a run promised: the calls of the fault-free run, how many of them began and returned
/// before the cut, and the untouched part before and after a migration.
struct Expectation {
  const std::vector<Event>* events = nullptr;
  std::size_t started = 0;
  std::size_t returned = 0;
  std::int64_t untouched_up_to = 0;
  const std::string* old_part = nullptr;
  const std::string* new_part = nullptr;
  jobsched::Options options;
};

/// What the checker found in one file after a power cut.
struct Verdict {
  std::string corruption;  // integrity_check's answer, or why the scheduler failed on the file
  bool mixed_migration = false;  // neither the old file nor the fully migrated one
  long lost = 0;                 // calls that returned and whose change is missing
  long gaps = 0;                 // changes present after a missing one: not a prefix of the calls
  long phantoms = 0;             // changes of calls never made
  bool in_flight_survived = false;

  std::string describe() const {
    std::ostringstream out;
    out << "corruption='" << corruption << "' mixed_migration=" << mixed_migration
        << " lost=" << lost << " gaps=" << gaps << " phantoms=" << phantoms;
    return out.str();
  }
};

/// Reads the file as a power cut left it: sound, its untouched part, which calls' changes
/// are there. False (with the corruption named) when it is not sound.
bool read_state(sqlite3* db, const Expectation& expected, Verdict& verdict,
                std::vector<bool>& present) {
  try {
    const std::string integrity = fv::integrity(db);
    if (integrity != "ok") {
      verdict.corruption = "integrity_check: " + integrity;
      return false;
    }
    const std::string part = untouched_part(db, expected.untouched_up_to);
    verdict.mixed_migration = part != *expected.old_part && part != *expected.new_part;
    const long long version = schema_version(db);
    for (std::size_t i = 0; i < present.size(); ++i)
      present[i] = is_present(db, version, (*expected.events)[i]);
    return true;
  } catch (const std::exception& error) {
    verdict.corruption = std::string("reading the file: ") + error.what();
    return false;
  }
}

/// The file works: the scheduler adds, claims and completes. Names what failed, if anything.
std::string try_work(Scheduler& scheduler) {
  const jobsched::Job job =
      scheduler.add_job("after the power came back", job_times(at(fv::kNow), at(fv::kNow)));
  const std::optional<jobsched::ClaimedJob> claimed =
      scheduler.claim_next_job(jobsched::Seconds{60});
  if (!claimed)
    return "nothing to claim after an add";
  if (!scheduler.complete(claimed->claim))
    return "complete refused a live claim";
  if (!scheduler.get_job(claimed->job.id)->completed_at)
    return "a completed job shows as not completed";
  if (!scheduler.get_job(job.id))
    return "the job just added is missing";
  return "";
}

Verdict check_after_power_loss(const std::string& path, const Expectation& expected) {
  Verdict verdict;
  const std::vector<Event>& events = *expected.events;
  std::vector<bool> present(events.size(), false);
  try {
    // The checker's own writes (WAL recovery, checkpoints) need no durability, only time.
    const char* no_sync = "PRAGMA synchronous = OFF";
    if (*expected.old_part == *expected.new_part) {
      // No migration to look behind: the scheduler reopens the file as an application
      // would after the reboot, WAL recovery included, and the checks read through it.
      Scheduler scheduler = Scheduler::open(path, expected.options);
      jobsched_test::exec_raw(scheduler.handle(), no_sync);
      if (!read_state(scheduler.handle(), expected, verdict, present))
        return verdict;
      verdict.corruption = try_work(scheduler);
    } else {
      // The file may be old: read it before the scheduler migrates it. The raw connection
      // stays open, so the scheduler too finds the WAL as the power cut left it.
      auto owner = jobsched_test::open_raw(path);
      jobsched_test::exec_raw(owner.get(), no_sync);
      if (!read_state(owner.get(), expected, verdict, present))
        return verdict;
      Scheduler scheduler = Scheduler::open(path, expected.options);
      jobsched_test::exec_raw(scheduler.handle(), no_sync);
      verdict.corruption = try_work(scheduler);
    }
  } catch (const std::exception& error) {
    verdict.corruption = std::string("the scheduler failed on the file: ") + error.what();
    return verdict;
  }

  bool missing_seen = false;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i < expected.returned && !present[i])
      ++verdict.lost;
    if (i >= expected.started && present[i])
      ++verdict.phantoms;
    if (missing_seen && present[i])
      ++verdict.gaps;
    missing_seen = missing_seen || !present[i];
  }
  verdict.in_flight_survived = expected.started > expected.returned &&
                               expected.returned < events.size() && present[expected.returned];
  return verdict;
}

// ---- The sweep -----------------------------------------------------------------------------

/// The figures of one sweep over every cut point of a scenario.
struct Figures {
  long operations = 0;  // writes and syncs of the fault-free run
  long cut_points = 0;  // runs meant to cut (N up to `operations`)
  long cuts = 0;        // runs in which the power failed
  long images = 0;      // disk states computed (runs x policies)
  long checked = 0;     // distinct ones checked
  long corrupt = 0;
  long mixed_migrations = 0;
  long lossy_images = 0;  // images missing a change whose call returned
  long lost = 0;          // such changes, summed
  long most_lost = 0;     // the most in one image
  long gaps = 0;
  long phantoms = 0;
  long in_flight_survived = 0;
  long unexpected_errors = 0;  // a call failed with something else than the cut's IoError
  double seconds = 0;
  std::string first_failure;  // the first image that broke a promise, to reproduce it

  std::string summary() const {
    std::ostringstream out;
    out << operations << " writes+syncs, " << cuts << " cuts, " << images << " images, " << checked
        << " distinct checked: corrupt " << corrupt << ", mixed migrations " << mixed_migrations
        << ", gaps " << gaps << ", phantoms " << phantoms << ", returned calls lost " << lost
        << " in " << lossy_images << " images (most " << most_lost << "), in-flight call survived "
        << in_flight_survived << ", unexpected errors " << unexpected_errors << "; " << seconds
        << " s";
    return out.str();
  }
};

struct SweepSettings {
  Synchronous mode = Synchronous::full;
  bool syncs_ignored = false;
  std::vector<pl::Policy> policies{std::begin(pl::kPolicies), std::end(pl::kPolicies)};
  long stride = default_stride();  // every Nth cut point only
};

SweepSettings settings_for(Synchronous mode) {
  SweepSettings settings;
  settings.mode = mode;
  return settings;
}

void put_start(const std::string& path, const std::optional<std::string>& start) {
  if (start)
    jobsched_test::write_bytes(path, *start);
}

/// What one run of a script did: its calls, and the error that stopped it if that was
/// anything but an IoError after the power failed.
struct Run {
  Steps steps;
  std::string unexpected;
};

Run run_script(const Scenario& scenario, const std::string& path,
               const jobsched::Options& options) {
  Run run;
  try {
    scenario.script(pl::uri(path), options, run.steps);
  } catch (const jobsched::IoError& error) {
    if (!pl::cut())
      run.unexpected = std::string("IoError without a power cut: ") + error.what();
  } catch (const std::exception& error) {
    run.unexpected = error.what();
  }
  return run;
}

/// untouched_part() of a start file.
std::string untouched_part_of(const std::optional<std::string>& start,
                              std::int64_t untouched_up_to) {
  TempFile file("powerloss-start-part");
  put_start(file.path(), start);
  auto owner = jobsched_test::open_raw(file.path());
  return untouched_part(owner.get(), untouched_up_to);
}

/// A hash of the images and of the calls made, without copying the images.
std::size_t fingerprint(const pl::Images& images, const Expectation& expected) {
  std::size_t hash = expected.started * 1'000'003u + expected.returned;
  for (const auto& [file_name, image] : images) {
    const std::size_t one = image ? std::hash<std::string_view>{}(*image) : 0x9e3779b9u;
    hash = (hash ^ std::hash<std::string>{}(file_name)) * 0x100000001b3u ^ one;
  }
  return hash;
}

Figures sweep(const Scenario& scenario, const SweepSettings& settings) {
  const auto started_at = std::chrono::steady_clock::now();
  const jobsched_test::Deadline deadline(kSweepLimit,
                                         "the power-loss sweep of " + scenario.name + " to finish");
  const jobsched::Options options = fv::pinned_options(settings.mode);
  Figures figures;

  // The fault-free run: every call's change, the number of writes and syncs, and the
  // untouched part of the file before and after.
  std::vector<Event> events;
  const std::string old_part = untouched_part_of(scenario.start, scenario.untouched_up_to);
  std::string new_part;
  {
    TempFile file("powerloss-" + scenario.name + "-reference");
    put_start(file.path(), scenario.start);
    pl::begin(file.path(), pl::Plan{});
    const Run run = run_script(scenario, file.path(), options);
    figures.operations = pl::counted();
    pl::end();
    REQUIRE(run.unexpected == "");
    REQUIRE(run.steps.started() == run.steps.returned().size());
    REQUIRE(figures.operations < kMaxOperations);
    events = run.steps.returned();
    auto owner = jobsched_test::open_raw(file.path());
    new_part = untouched_part(owner.get(), scenario.untouched_up_to);
  }

  std::unordered_set<std::size_t> seen;
  for (long n = 1; n <= figures.operations + 1; n += settings.stride) {
    if (deadline.passed()) {
      FAIL_CHECK(deadline.failure() << " (stopped before cut point " << n << ")");
      break;
    }
    INFO(scenario.name << ": power cut at write/sync #" << n);
    TempFile file("powerloss-" + scenario.name);
    put_start(file.path(), scenario.start);
    pl::begin(file.path(), pl::Plan{n, settings.syncs_ignored});
    const Run run = run_script(scenario, file.path(), options);
    const Steps& steps = run.steps;
    const bool was_cut = pl::cut();
    const pl::Disk disk = pl::end();
    figures.cut_points += n <= figures.operations ? 1 : 0;
    figures.cuts += was_cut ? 1 : 0;
    if (!run.unexpected.empty()) {
      ++figures.unexpected_errors;
      if (figures.first_failure.empty())
        figures.first_failure = scenario.name + ": cut at #" + std::to_string(n) +
                                ", the script failed: " + run.unexpected;
    }
    // The same script makes the same calls, with the same ids, up to the cut.
    CHECK(steps.returned().size() <= events.size());
    for (std::size_t i = 0; i < steps.returned().size() && i < events.size(); ++i)
      CHECK(steps.returned()[i] == events[i]);

    Expectation expected;
    expected.events = &events;
    expected.started = steps.started();
    expected.returned = steps.returned().size();
    expected.untouched_up_to = scenario.untouched_up_to;
    expected.old_part = &old_part;
    expected.new_part = &new_part;
    expected.options = options;

    for (std::size_t p = 0; p < settings.policies.size(); ++p) {
      const pl::Policy policy = settings.policies[p];
      const std::uint64_t seed = static_cast<std::uint64_t>(n) * 8u + p;
      const pl::Images images = pl::disk_after(disk, policy, seed);
      ++figures.images;
      // An image already checked with the same calls made gives the same verdict.
      if (!seen.insert(fingerprint(images, expected)).second)
        continue;
      ++figures.checked;
      pl::restore(images, file.path());
      const Verdict verdict = check_after_power_loss(file.path(), expected);
      figures.corrupt += verdict.corruption.empty() ? 0 : 1;
      figures.mixed_migrations += verdict.mixed_migration ? 1 : 0;
      figures.lossy_images += verdict.lost > 0 ? 1 : 0;
      figures.lost += verdict.lost;
      figures.most_lost = std::max(figures.most_lost, verdict.lost);
      figures.gaps += verdict.gaps;
      figures.phantoms += verdict.phantoms;
      figures.in_flight_survived += verdict.in_flight_survived ? 1 : 0;
      const bool broken = !verdict.corruption.empty() || verdict.mixed_migration ||
                          verdict.gaps > 0 || verdict.phantoms > 0 ||
                          (settings.mode == Synchronous::full && verdict.lost > 0);
      if (broken && figures.first_failure.empty()) {
        std::ostringstream out;
        out << scenario.name << ": cut at #" << n << ", policy " << pl::name(policy) << ", seed "
            << seed << ", " << expected.started << " calls began, " << expected.returned
            << " returned: " << verdict.describe();
        figures.first_failure = out.str();
      }
    }
  }
  figures.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  if (verbose()) {
    std::cout << "  [powerloss] " << scenario.name
              << (settings.mode == Synchronous::full ? " FULL" : " NORMAL")
              << (settings.syncs_ignored ? " (syncs ignored)" : "") << ": " << figures.summary()
              << "\n";
  }
  return figures;
}

/// The promises every sweep keeps: never corrupt, migrations all or nothing, survivors a
/// prefix of the calls; at FULL nothing that returned is lost.
void check_promises(const Figures& figures, Synchronous mode) {
  INFO(figures.summary());
  INFO("first failure: " << figures.first_failure);
  CHECK(figures.cuts == figures.cut_points);
  CHECK(figures.unexpected_errors == 0);
  CHECK(figures.corrupt == 0);
  CHECK(figures.mixed_migrations == 0);
  CHECK(figures.gaps == 0);
  CHECK(figures.phantoms == 0);
  if (mode == Synchronous::full)
    CHECK(figures.lost == 0);
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
