// SPDX-License-Identifier: MIT
// Read-only files. A file or directory the process may not write is refused at open with a
// ReadOnlyError that names the path, before anything is read, so nothing is left beside it;
// and Options::read_only opens a file for inspection: it never creates, migrates or writes,
// reads a file of any older version as if upgraded, and refuses every write call.
//
// Permissions do not bind root, and CI runs as root: the cases that need them run in a child
// process that gives up root first (to the user `nobody`'s ids) in a directory of its own
// under /tmp that it may enter.

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/processes.hpp"
#include "support/python_files.hpp"
#include "support/temp_file.hpp"

namespace test_read_only {

using jobsched::Job;
using jobsched::Options;
using jobsched::ReadOnlyError;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::ChildReport;
using jobsched_test::contains;
using jobsched_test::count_of;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::query_int;
using jobsched_test::read_bytes;
using jobsched_test::TempFile;
using jobsched_test::thrown;

namespace {

constexpr double kT = 1'700'000'000.0;

Options read_only() {
  Options options;
  options.read_only = true;
  options.clock = [] { return at(kT); };
  return options;
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

/// A directory under /tmp that any user may enter, removed with what is in it.
class OpenDirectory {
 public:
  OpenDirectory() {
    char name[] = "/tmp/jobsched-read-only-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path_ = name;
    REQUIRE(::chmod(path_.c_str(), 0777) == 0);
  }
  OpenDirectory(const OpenDirectory&) = delete;
  OpenDirectory& operator=(const OpenDirectory&) = delete;
  ~OpenDirectory() {
    ::chmod(path_.c_str(), 0777);
    const std::string command = "rm -rf '" + path_ + "'";
    (void)std::system(command.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A current job file with a pending job, closed (no -wal or -shm beside it).
void write_current_file(const std::string& path) {
  auto scheduler = Scheduler::open(path);
  jobsched::JobOptions options;
  options.created_at = at(kT - 10);
  scheduler.add_job("kept", options);
}

/// What opening `path` to write threw, as seen by an unprivileged child: the line "TYPE
/// MESSAGE" (TYPE is read-only, io, schema, error or none).
std::string open_unprivileged(const std::string& path, bool read_only_option) {
  const auto lines = jobsched_test::run_case_in_child(
      "open " + path + " unprivileged", Seconds{30}, [&](ChildReport& report) {
        if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
          report.fail("cannot give up root");
          return;
        }
        Options options;
        options.read_only = read_only_option;
        try {
          auto scheduler = Scheduler::open(path, options);
          report.line("none " + std::to_string(scheduler.count_pending_jobs()));
        } catch (const ReadOnlyError& error) {
          report.line(std::string("read-only ") + error.what());
        } catch (const jobsched::IoError& error) {
          report.line(std::string("io ") + error.what());
        } catch (const jobsched::SchemaError& error) {
          report.line(std::string("schema ") + error.what());
        } catch (const jobsched::Error& error) {
          report.line(std::string("error ") + error.what());
        }
      });
  REQUIRE(lines.size() == 1);
  return lines[0];
}

/// Every write call, by name.
std::vector<std::pair<std::string, std::function<void(Scheduler&)>>> write_calls() {
  const jobsched::Claim claim{1, 2, at(kT + 30)};
  return {
      {"add_job", [](Scheduler& s) { s.add_job("x"); }},
      {"add_job_from_now", [](Scheduler& s) { s.add_job_from_now("x", Seconds{1}); }},
      {"complete_job", [](Scheduler& s) { s.complete_job(1); }},
      {"delete_job", [](Scheduler& s) { s.delete_job(1); }},
      {"delete_completed_jobs", [](Scheduler& s) { s.delete_completed_jobs(); }},
      {"delete_expired_jobs", [](Scheduler& s) { s.delete_expired_jobs(); }},
      {"lock_job", [](Scheduler& s) { s.lock_job(1); }},
      {"unlock_job", [](Scheduler& s) { s.unlock_job(1); }},
      {"lock_next_job", [](Scheduler& s) { s.lock_next_job(); }},
      {"claim_next_job", [](Scheduler& s) { s.claim_next_job(Seconds{30}); }},
      {"claim_next_job(queues)", [](Scheduler& s) { s.claim_next_job(Seconds{30}, {""}); }},
      {"complete", [claim](Scheduler& s) { s.complete(claim); }},
      {"fail", [claim](Scheduler& s) { s.fail(claim, "e"); }},
      {"extend",
       [claim](Scheduler& s) {
         jobsched::Claim copy = claim;
         s.extend(copy, Seconds{30});
       }},
      {"release", [claim](Scheduler& s) { s.release(claim); }},
      {"retry_job", [](Scheduler& s) { s.retry_job(1); }},
      {"delete_failed_jobs", [](Scheduler& s) { s.delete_failed_jobs(); }},
  };
}

}  // namespace

// ---- Refused at open -------------------------------------------------------------------------

TEST_CASE(
    "a read-only file is refused at open with ReadOnlyError naming it, nothing is left "
    "beside it") {
  OpenDirectory directory;
  const std::string path = directory.file("jobs.db");
  const int version = GENERATE(2, jobsched::current_schema_version);
  INFO("a file at version " << version);
  if (version == 2) {
    auto raw = open_raw(path);
    jobsched_test::write_python_schema(raw.get(), 2);
    exec_raw(raw.get(), "INSERT INTO job (data, created_at, starts_at) VALUES ('old', 1, 2)");
  } else {
    write_current_file(path);
  }
  REQUIRE(::chmod(path.c_str(), 0444) == 0);
  const std::string before = read_bytes(path);

  const std::string outcome = open_unprivileged(path, false);
  INFO("outcome: " << outcome);
  CHECK(outcome.rfind("read-only ", 0) == 0);
  CHECK(contains(outcome, "'" + path + "'"));
  CHECK(contains(outcome, "Options::read_only"));
  CHECK(count_of(outcome, "jobsched:") == 1);
  CHECK(read_bytes(path) == before);
  for (const char* suffix : {"-wal", "-shm", "-journal"})
    CHECK_FALSE(exists(path + suffix));
}

TEST_CASE("a file in a read-only directory is refused at open with ReadOnlyError naming it") {
  OpenDirectory directory;
  const std::string path = directory.file("jobs.db");
  const std::string kind = GENERATE(as<std::string>{}, "current", "version 0", "new");
  INFO(kind);
  if (kind == "current") {
    write_current_file(path);
  } else if (kind == "version 0") {
    auto raw = open_raw(path);
    exec_raw(raw.get(), jobsched_test::kV0Schema);
  }
  if (exists(path))
    REQUIRE(::chmod(path.c_str(), 0666) == 0);
  const std::string before = exists(path) ? read_bytes(path) : std::string();
  REQUIRE(::chmod(directory.path().c_str(), 0555) == 0);

  const std::string outcome = open_unprivileged(path, false);
  INFO("outcome: " << outcome);
  CHECK(outcome.rfind("read-only ", 0) == 0);
  CHECK(contains(outcome, "'" + path + "'"));
  CHECK(contains(outcome, "directory is read-only"));
  CHECK(count_of(outcome, "jobsched:") == 1);
  REQUIRE(::chmod(directory.path().c_str(), 0777) == 0);
  CHECK(exists(path) == (kind != "new"));
  if (kind != "new")
    CHECK(read_bytes(path) == before);
  for (const char* suffix : {"-wal", "-shm", "-journal"})
    CHECK_FALSE(exists(path + suffix));
}

TEST_CASE("a read-only file opens with Options::read_only and reads, for an unprivileged user") {
  OpenDirectory directory;
  const std::string path = directory.file("jobs.db");
  write_current_file(path);
  REQUIRE(::chmod(path.c_str(), 0444) == 0);
  const std::string before = read_bytes(path);
  CHECK(open_unprivileged(path, true) == "none 1");
  CHECK(read_bytes(path) == before);
}

TEST_CASE("a read-only URI (?mode=ro) without Options::read_only is refused with ReadOnlyError") {
  TempFile file("read-only-uri");
  write_current_file(file.path());
  const std::string before = read_bytes(file.path());
  const std::string uri = "file:" + file.path() + "?mode=ro";
  const auto error = thrown<ReadOnlyError>([&] { Scheduler::open(uri); });
  REQUIRE(error.has_value());
  CHECK(contains(*error, "'" + uri + "'"));
  CHECK(read_bytes(file.path()) == before);
  CHECK_FALSE(exists(file.path() + "-wal"));

  auto scheduler = Scheduler::open(uri, read_only());
  CHECK(scheduler.read_only());
  CHECK(scheduler.count_pending_jobs() == 1);
}

// ---- Options::read_only ------------------------------------------------------------------------

TEST_CASE("Options::read_only reads a current file as a writer would, and refuses every write") {
  TempFile file("read-only-current");
  std::vector<Job> jobs;
  {
    Options options;
    options.clock = [] { return at(kT); };
    auto writer = Scheduler::open(file.path(), options);
    for (int i = 0; i < 5; ++i)
      jobs.push_back(writer.add_job("job " + std::to_string(i),
                                    jobsched_test::job_times(at(kT - 100), at(kT - 50 + i * 20))));
    writer.complete_job(jobs[0].id, at(kT - 1));
    REQUIRE(writer.claim_next_job(Seconds{30}, at(kT)).has_value());
  }
  const std::string before = read_bytes(file.path());
  auto reader = Scheduler::open(file.path(), read_only());
  CHECK(reader.read_only());
  CHECK(reader.schema_version() == jobsched::current_schema_version);
  CHECK_FALSE(reader.needs_upgrade());
  CHECK_FALSE(reader.migrated_from().has_value());

  CHECK(reader.get_job(jobs[0].id)->is_completed());
  CHECK(reader.get_job(jobs[1].id)->attempts == 1);  // claimed
  CHECK(reader.count_pending_jobs() == 4);
  CHECK(reader.next_job()->id == jobs[2].id);
  CHECK(reader.seconds_until_next_job() == (jobsched::JobDelay{jobs[2].id, Seconds{0}}));
  CHECK(reader.seconds_until_next_job({""}) == reader.seconds_until_next_job());
  CHECK(reader.failed_jobs(at(kT + 3600)).empty());  // ten attempts allowed by default

  const std::int64_t changes = sqlite3_total_changes64(reader.handle());
  for (const auto& named : write_calls()) {
    const auto& call = named.second;
    INFO(named.first);
    const auto error = thrown<ReadOnlyError>([&] { call(reader); });
    REQUIRE(error.has_value());
    CHECK(contains(*error, "read-only"));
    CHECK(contains(*error, file.path()));
  }
  CHECK(sqlite3_total_changes64(reader.handle()) == changes);
  CHECK(read_bytes(file.path()) == before);
}

TEST_CASE(
    "Options::read_only reads a file of every older version as if upgraded, writing "
    "nothing") {
  TempFile file("read-only-old");
  const int version = GENERATE(-1, 0, 1, 2, 3);
  INFO("a file at version " << version);
  std::int64_t locked = 0;
  {
    auto raw = open_raw(file.path());
    if (version < 0) {
      exec_raw(raw.get(), "CREATE TABLE unrelated (x)");
    } else {
      jobsched_test::write_python_schema(raw.get(), std::min(version, 2));
      exec_raw(raw.get(),
               "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at) VALUES"
               " ('a', 1, 10, NULL, NULL), (X'00ff', 1, 5, NULL, NULL), (42, 1, 20, 30, NULL),"
               " ('gone', 1, 2, 3, NULL), (NULL, 1, 1, NULL, 4), (2.5, 1, 7, NULL, NULL)");
    }
    if (version >= 2) {
      exec_raw(raw.get(), "UPDATE job SET locked_at = 6 WHERE id = 6");
      locked = 6;
    }
    if (version == 3) {
      exec_raw(raw.get(), std::string("BEGIN;") + jobsched::detail::migrations[3].script +
                              "UPDATE job_schema SET value = 3 WHERE key = 'version'; COMMIT;");
    }
  }
  const std::string before = read_bytes(file.path());

  // What a writer would read once it upgraded a copy.
  TempFile copy("read-only-old-copy");
  jobsched_test::write_bytes(copy.path(), before);
  Options options = read_only();
  options.read_only = false;
  auto writer = Scheduler::open(copy.path(), options);
  REQUIRE(writer.migrated_from() == std::optional<int>(version));

  auto reader = Scheduler::open(file.path(), read_only());
  CHECK(reader.schema_version() == version);
  CHECK(reader.needs_upgrade());
  CHECK_FALSE(reader.migrated_from().has_value());
  CHECK(reader.count_pending_jobs() == writer.count_pending_jobs());
  CHECK(reader.next_job() == writer.next_job());
  CHECK(reader.seconds_until_next_job() == writer.seconds_until_next_job());
  CHECK(reader.seconds_until_next_job({""}) == writer.seconds_until_next_job({""}));
  CHECK(reader.failed_jobs() == writer.failed_jobs());
  const long long last = query_int(writer.handle(), "SELECT coalesce(max(id), 0) FROM job");
  for (std::int64_t id = 1; id <= last; ++id) {
    INFO("job " << id);
    CHECK(reader.get_job(id) == writer.get_job(id));
  }
  if (locked != 0) {
    CHECK(reader.get_job(locked)->locked_at.has_value());
    CHECK(reader.next_job()->id != locked);
  }
  CHECK(thrown<ReadOnlyError>([&] { reader.add_job("x"); }).has_value());
  CHECK(read_bytes(file.path()) == before);
  auto raw = open_raw(file.path());
  CHECK(query_int(raw.get(), "SELECT count(*) FROM sqlite_master WHERE name = 'job_schema'") ==
        (version >= 1 ? 1 : 0));
}

TEST_CASE(
    "Options::read_only refuses a missing file, a newer version and a non-database, "
    "creating nothing") {
  TempFile file("read-only-refused");
  SECTION("a missing file is an IoError naming it, and is not created") {
    const auto error =
        thrown<jobsched::IoError>([&] { Scheduler::open(file.path(), read_only()); });
    REQUIRE(error.has_value());
    CHECK(contains(*error, "'" + file.path() + "'"));
    CHECK(contains(*error, "No such file"));
    CHECK_FALSE(exists(file.path()));
  }
  SECTION("a newer version is a SchemaError") {
    write_current_file(file.path());
    {
      auto raw = open_raw(file.path());
      exec_raw(raw.get(), "UPDATE job_schema SET value = 99 WHERE key = 'version'");
    }
    const auto error =
        thrown<jobsched::SchemaError>([&] { Scheduler::open(file.path(), read_only()); });
    REQUIRE(error.has_value());
    CHECK(contains(*error, "99"));
  }
  SECTION("a file that is not a database is a SchemaError") {
    jobsched_test::write_bytes(file.path(), std::string(4096, 'x'));
    CHECK(thrown<jobsched::SchemaError>([&] {
            Scheduler::open(file.path(), read_only());
          }).has_value());
    CHECK(read_bytes(file.path()) == std::string(4096, 'x'));
  }
}

TEST_CASE("adopting a read-only handle needs Options::read_only") {
  TempFile file("read-only-adopt");
  write_current_file(file.path());
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(file.path().c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  const auto refused =
      thrown<ReadOnlyError>([&] { Scheduler::adopt(db, jobsched::Ownership::borrowed); });
  REQUIRE(refused.has_value());
  CHECK(contains(*refused, file.path()));
  {
    auto reader = Scheduler::adopt(db, jobsched::Ownership::borrowed, read_only());
    CHECK(reader.count_pending_jobs() == 1);
  }
  CHECK(sqlite3_close(db) == SQLITE_OK);
}

TEST_CASE("a Worker refuses Options::read_only") {
  TempFile file("read-only-worker");
  write_current_file(file.path());
  jobsched::WorkerOptions options;
  options.scheduler.read_only = true;
  const auto error = thrown<jobsched::InvalidArgumentError>([&] {
    jobsched::Worker worker(
        file.path(), [](const Job&) {}, options);
  });
  REQUIRE(error.has_value());
  CHECK(contains(*error, "read_only"));
}

}  // namespace test_read_only
