// SPDX-License-Identifier: MIT
#pragma once

// Power loss for the tests, the checker and the sweep (the VFS is power_loss_vfs.hpp). A
// Scenario is a start file and a script of calls, each recorded in Steps once it returned.
// sweep() runs it once without a cut to learn its calls and its count of writes and syncs,
// then again with the power cut at each of them; each disk image the cut can leave is put on
// the real files and check_after_power_loss() reopens it: sound, the untouched part old or
// fully migrated, the surviving changes a prefix of the calls. The Figures of a sweep count
// what it found; check_promises() holds them to what every sweep must keep.
//
// Set JOBSCHED_POWERLOSS_VERBOSE=1 to print one line of figures per sweep.

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "../catch.hpp"
#include "deadline.hpp"
#include "fault_vfs.hpp"
#include "power_loss_vfs.hpp"
#include "temp_file.hpp"

namespace jobsched_test::powerloss_check {

// No scenario of test_power_loss.cpp comes near this many writes and syncs; more means a
// runaway script.
inline constexpr long kMaxOperations = 1500;
// Each sweep fails, rather than hangs, past this (stretched in sanitizer builds), so that
// both sweeps of a case end within the time limit of each test case (test_time_limits.cpp).
inline constexpr std::chrono::seconds kSweepLimit{50};

inline bool verbose() {
  const char* value = std::getenv("JOBSCHED_POWERLOSS_VERBOSE");
  return value != nullptr && *value != '\0' && *value != '0';
}

inline bool sanitized() {
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
inline long default_stride() {
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

// ---- The checker -----------------------------------------------------------------------------

/// The part of a file no call changes, except a migration: the schema, job_schema and the
/// start file's jobs (claim tokens only as set or not).
inline std::string untouched_part(sqlite3* db, std::int64_t untouched_up_to) {
  std::string out = "[schema]\n" + faults::dump_rows(db,
                                                     "SELECT type, name, tbl_name, sql FROM"
                                                     " sqlite_master ORDER BY type, name");
  if (faults::has_table(db, "job")) {
    out +=
        "[job]\n" +
        faults::dump_rows(
            db, "SELECT * FROM job WHERE id <= " + std::to_string(untouched_up_to) + " ORDER BY id",
            {"claim_token"});
  }
  if (faults::has_table(db, "job_schema"))
    out += "[job_schema]\n" + faults::dump_rows(db, "SELECT * FROM job_schema ORDER BY key");
  return out;
}

/// -1 without a job table, 0 without job_schema, else the version row.
inline long long schema_version(sqlite3* db) {
  if (!faults::has_table(db, "job"))
    return -1;
  if (!faults::has_table(db, "job_schema"))
    return 0;
  return jobsched_test::query_int(db, "SELECT value FROM job_schema WHERE key = 'version'");
}

inline bool is_present(sqlite3* db, long long version, const Event& event) {
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
inline bool read_state(sqlite3* db, const Expectation& expected, Verdict& verdict,
                       std::vector<bool>& present) {
  try {
    const std::string integrity = faults::integrity(db);
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
inline std::string try_work(jobsched::Scheduler& scheduler) {
  const jobsched::Job job =
      scheduler.add_job("after the power came back", job_times(at(faults::kNow), at(faults::kNow)));
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

inline Verdict check_after_power_loss(const std::string& path, const Expectation& expected) {
  Verdict verdict;
  const std::vector<Event>& events = *expected.events;
  std::vector<bool> present(events.size(), false);
  try {
    // The checker's own writes (WAL recovery, checkpoints) need no durability, only time.
    const char* no_sync = "PRAGMA synchronous = OFF";
    if (*expected.old_part == *expected.new_part) {
      // No migration to look behind: the scheduler reopens the file as an application
      // would after the reboot, WAL recovery included, and the checks read through it.
      jobsched::Scheduler scheduler = jobsched::Scheduler::open(path, expected.options);
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
      jobsched::Scheduler scheduler = jobsched::Scheduler::open(path, expected.options);
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
  jobsched::Synchronous mode = jobsched::Synchronous::full;
  bool syncs_ignored = false;
  std::vector<powerloss::Policy> policies{std::begin(powerloss::kPolicies),
                                          std::end(powerloss::kPolicies)};
  long stride = default_stride();  // every Nth cut point only
};

inline SweepSettings settings_for(jobsched::Synchronous mode) {
  SweepSettings settings;
  settings.mode = mode;
  return settings;
}

inline void put_start(const std::string& path, const std::optional<std::string>& start) {
  if (start)
    jobsched_test::write_bytes(path, *start);
}

/// What one run of a script did: its calls, and the error that stopped it if that was
/// anything but an IoError after the power failed.
struct Run {
  Steps steps;
  std::string unexpected;
};

inline Run run_script(const Scenario& scenario, const std::string& path,
                      const jobsched::Options& options) {
  Run run;
  try {
    scenario.script(powerloss::uri(path), options, run.steps);
  } catch (const jobsched::IoError& error) {
    if (!powerloss::cut())
      run.unexpected = std::string("IoError without a power cut: ") + error.what();
  } catch (const std::exception& error) {
    run.unexpected = error.what();
  }
  return run;
}

/// untouched_part() of a start file.
inline std::string untouched_part_of(const std::optional<std::string>& start,
                                     std::int64_t untouched_up_to) {
  TempFile file("powerloss-start-part");
  put_start(file.path(), start);
  auto owner = jobsched_test::open_raw(file.path());
  return untouched_part(owner.get(), untouched_up_to);
}

/// A hash of the images and of the calls made, without copying the images.
inline std::size_t fingerprint(const powerloss::Images& images, const Expectation& expected) {
  std::size_t hash = expected.started * 1'000'003u + expected.returned;
  for (const auto& [file_name, image] : images) {
    const std::size_t one = image ? std::hash<std::string_view>{}(*image) : 0x9e3779b9u;
    hash = (hash ^ std::hash<std::string>{}(file_name)) * 0x100000001b3u ^ one;
  }
  return hash;
}

inline Figures sweep(const Scenario& scenario, const SweepSettings& settings) {
  const auto started_at = std::chrono::steady_clock::now();
  const jobsched_test::Deadline deadline(kSweepLimit,
                                         "the power-loss sweep of " + scenario.name + " to finish");
  const jobsched::Options options = faults::pinned_options(settings.mode);
  Figures figures;

  // The fault-free run: every call's change, the number of writes and syncs, and the
  // untouched part of the file before and after.
  std::vector<Event> events;
  const std::string old_part = untouched_part_of(scenario.start, scenario.untouched_up_to);
  std::string new_part;
  {
    TempFile file("powerloss-" + scenario.name + "-reference");
    put_start(file.path(), scenario.start);
    powerloss::begin(file.path(), powerloss::Plan{});
    const Run run = run_script(scenario, file.path(), options);
    figures.operations = powerloss::counted();
    powerloss::end();
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
    powerloss::begin(file.path(), powerloss::Plan{n, settings.syncs_ignored});
    const Run run = run_script(scenario, file.path(), options);
    const Steps& steps = run.steps;
    const bool was_cut = powerloss::cut();
    const powerloss::Disk disk = powerloss::end();
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
      const powerloss::Policy policy = settings.policies[p];
      const std::uint64_t seed = static_cast<std::uint64_t>(n) * 8u + p;
      const powerloss::Images images = powerloss::disk_after(disk, policy, seed);
      ++figures.images;
      // An image already checked with the same calls made gives the same verdict.
      if (!seen.insert(fingerprint(images, expected)).second)
        continue;
      ++figures.checked;
      powerloss::restore(images, file.path());
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
                          (settings.mode == jobsched::Synchronous::full && verdict.lost > 0);
      if (broken && figures.first_failure.empty()) {
        std::ostringstream out;
        out << scenario.name << ": cut at #" << n << ", policy " << powerloss::name(policy)
            << ", seed " << seed << ", " << expected.started << " calls began, "
            << expected.returned << " returned: " << verdict.describe();
        figures.first_failure = out.str();
      }
    }
  }
  figures.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
  if (verbose()) {
    std::cout << "  [powerloss] " << scenario.name
              << (settings.mode == jobsched::Synchronous::full ? " FULL" : " NORMAL")
              << (settings.syncs_ignored ? " (syncs ignored)" : "") << ": " << figures.summary()
              << "\n";
  }
  return figures;
}

/// The promises every sweep keeps: never corrupt, migrations all or nothing, survivors a
/// prefix of the calls; at FULL nothing that returned is lost.
inline void check_promises(const Figures& figures, jobsched::Synchronous mode) {
  INFO(figures.summary());
  INFO("first failure: " << figures.first_failure);
  CHECK(figures.cuts == figures.cut_points);
  CHECK(figures.unexpected_errors == 0);
  CHECK(figures.corrupt == 0);
  CHECK(figures.mixed_migrations == 0);
  CHECK(figures.gaps == 0);
  CHECK(figures.phantoms == 0);
  if (mode == jobsched::Synchronous::full)
    CHECK(figures.lost == 0);
}

}  // namespace jobsched_test::powerloss_check
