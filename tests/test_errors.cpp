// SPDX-License-Identifier: MIT
// Errors: one base type with codes and SQL, distinct subtypes for busy and I/O failures, and
// a failed call never leaves a half-done change.

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/temp_file.hpp"

namespace test_errors {

namespace {

using jobsched::Scheduler;
using jobsched_test::at;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using Clock = std::chrono::steady_clock;

long long job_count(sqlite3* db) {
  return query_int(db, "SELECT count(*) FROM job");
}

jobsched::Options with_busy_timeout(std::chrono::milliseconds timeout) {
  jobsched::Options options;
  options.busy_timeout = timeout;
  return options;
}

double elapsed_ms(Clock::time_point since) {
  return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("Error derives from std::runtime_error and carries the codes and the SQL", "[errors]") {
  static_assert(std::is_base_of<std::runtime_error, jobsched::Error>::value, "");
  static_assert(std::is_base_of<jobsched::Error, jobsched::InvalidArgumentError>::value, "");
  static_assert(std::is_base_of<jobsched::Error, jobsched::BusyError>::value, "");
  static_assert(std::is_base_of<jobsched::Error, jobsched::SchemaError>::value, "");
  static_assert(std::is_base_of<jobsched::Error, jobsched::IoError>::value, "");
  static_assert(std::is_base_of<jobsched::Error, jobsched::ConstraintError>::value, "");

  const jobsched::Error error("something failed", SQLITE_IOERR, SQLITE_IOERR_FSYNC, "SELECT 1");
  CHECK(std::string(error.what()) == "something failed");
  CHECK(error.code() == SQLITE_IOERR);
  CHECK(error.extended_code() == SQLITE_IOERR_FSYNC);
  CHECK(error.sql() == "SELECT 1");

  const jobsched::Error without_sql("no statement", SQLITE_ERROR, SQLITE_ERROR);
  CHECK(without_sql.sql().empty());

  // Caught as std::runtime_error, it is still the same object.
  bool caught = false;
  try {
    throw jobsched::BusyError("busy", SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, "COMMIT");
  } catch (const std::runtime_error& base) {
    caught = true;
    const auto* busy = dynamic_cast<const jobsched::BusyError*>(&base);
    REQUIRE(busy != nullptr);
    CHECK(busy->code() == SQLITE_BUSY);
    CHECK(busy->extended_code() == SQLITE_BUSY_SNAPSHOT);
    CHECK(busy->sql() == "COMMIT");
  }
  CHECK(caught);

  const jobsched::InvalidArgumentError invalid("bad");
  CHECK(invalid.code() == SQLITE_MISUSE);
  CHECK(invalid.extended_code() == SQLITE_MISUSE);
  CHECK(invalid.sql().empty());
}

TEST_CASE("A write blocked past the busy timeout throws BusyError and changes nothing",
          "[errors][busy]") {
  TempFile file("errors-busy");
  Scheduler scheduler =
      Scheduler::open(file.path(), with_busy_timeout(std::chrono::milliseconds(100)));
  const auto existing = scheduler.add_job("existing", jobsched_test::job_times(at(10), at(20)));
  REQUIRE(existing.id == 1);

  auto other = open_raw(file.path());
  exec_raw(other.get(), "BEGIN IMMEDIATE");
  exec_raw(other.get(),
           "INSERT INTO job (data, created_at, starts_at) VALUES (X'6F74686572', 1, 2)");

  struct Blocked {
    const char* call;
    std::function<void()> run;
  };
  const Blocked calls[] = {
      {"add_job", [&] { scheduler.add_job("blocked", jobsched_test::job_times(at(10), at(20))); }},
      {"complete_job", [&] { scheduler.complete_job(existing.id, at(30)); }},
      {"lock_next_job", [&] { scheduler.lock_next_job(at(30)); }},
      {"lock_job", [&] { scheduler.lock_job(existing.id, at(30)); }},
      {"delete_job", [&] { scheduler.delete_job(existing.id); }},
  };
  for (const Blocked& blocked : calls) {
    INFO("call: " << blocked.call);
    const auto started = Clock::now();
    bool thrown = false;
    try {
      blocked.run();
    } catch (const jobsched::BusyError& error) {
      thrown = true;
      const double waited = elapsed_ms(started);
      INFO("waited " << waited << " ms; message: " << error.what());
      CHECK(waited >= 80.0);
      CHECK(error.code() == SQLITE_BUSY);
      CHECK((error.extended_code() & 0xff) == SQLITE_BUSY);
      CHECK_FALSE(error.sql().empty());
      CHECK_FALSE(contains(error.what(), error.sql()));  // ours, in sql() only
    }
    CHECK(thrown);
    CHECK(sqlite3_get_autocommit(scheduler.handle()) != 0);
  }

  // Readers are not blocked by the writer (WAL): the scheduler still reads, and sees neither
  // the other connection's uncommitted job nor any of its own refused changes.
  CHECK(job_count(scheduler.handle()) == 1);
  const auto unchanged = scheduler.get_job(existing.id);
  REQUIRE(unchanged.has_value());
  CHECK(*unchanged == existing);
  CHECK(scheduler.count_pending_jobs(at(30)) == 1);

  exec_raw(other.get(), "COMMIT");

  // Once the other writer is gone the same scheduler works, and nothing half-done remains:
  // the blocked job took no id, the existing job is neither completed, locked nor deleted.
  const auto added = scheduler.add_job("after", jobsched_test::job_times(at(10), at(20)));
  CHECK(added.id == 3);
  CHECK(job_count(scheduler.handle()) == 3);
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM job_payload WHERE data = X'626C6F636B6564'") ==
        0);  // "blocked"
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job_payload") == 2);
  const auto after = scheduler.get_job(existing.id);
  REQUIRE(after.has_value());
  CHECK(*after == existing);
  const auto others = scheduler.get_job(2);
  REQUIRE(others.has_value());
  CHECK(others->data == jobsched::Payload("other"));
  CHECK(scheduler.complete_job(existing.id, at(30)));
  CHECK(scheduler.get_job(existing.id)->completed_at == at(30));
}

TEST_CASE("A writer that lets go within the busy timeout is waited for", "[errors][busy]") {
  TempFile file("errors-busy-wait");
  Scheduler scheduler = Scheduler::open(file.path(), with_busy_timeout(std::chrono::seconds(10)));

  std::promise<void> locked;
  std::future<void> lock_taken = locked.get_future();
  jobsched_test::BoundedThread holder([&file, &locked] {
    auto other = open_raw(file.path());
    exec_raw(other.get(), "BEGIN IMMEDIATE");
    exec_raw(other.get(),
             "INSERT INTO job (data, created_at, starts_at) VALUES (X'6F74686572', 1, 2)");
    locked.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    exec_raw(other.get(), "COMMIT");
  });
  const jobsched_test::Deadline taken(std::chrono::seconds(10),
                                      "the other connection to take the write lock");
  if (lock_taken.wait_for(taken.remaining()) != std::future_status::ready)
    FAIL(taken.failure());

  const auto started = Clock::now();
  const jobsched::Job job = scheduler.add_job("waited", jobsched_test::job_times(at(10), at(20)));
  const double waited = elapsed_ms(started);
  holder.join(jobsched_test::Deadline(std::chrono::seconds(10), "the other connection to commit"));

  INFO("waited " << waited << " ms");
  CHECK(waited >= 100.0);
  CHECK(job.id == 2);
  CHECK(job_count(scheduler.handle()) == 2);
  const auto stored = scheduler.get_job(job.id);
  REQUIRE(stored.has_value());
  CHECK(stored->data == jobsched::Payload("waited"));
}

TEST_CASE("A full database throws IoError with SQLITE_FULL and keeps the job count",
          "[errors][full]") {
  TempFile file("errors-full");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    Scheduler scheduler = Scheduler::open(path);
    const auto first = scheduler.add_job("small", jobsched_test::job_times(at(1), at(2)));
    const long long pages = query_int(scheduler.handle(), "PRAGMA page_count");
    REQUIRE(pages > 0);
    exec_raw(scheduler.handle(), "PRAGMA max_page_count = " + std::to_string(pages + 2));

    const std::string large(1024 * 1024, 'x');
    bool thrown = false;
    try {
      scheduler.add_job(large, jobsched_test::job_times(at(1), at(2)));
    } catch (const jobsched::IoError& error) {
      thrown = true;
      INFO("message: " << error.what());
      CHECK(error.code() == SQLITE_FULL);
      CHECK(error.extended_code() == SQLITE_FULL);
      // The payload's insert, where the megabyte goes.
      CHECK(contains(error.sql(), "INTO job_payload"));
      CHECK_FALSE(contains(error.what(), "INTO job"));
    }
    REQUIRE(thrown);
    CHECK(sqlite3_get_autocommit(scheduler.handle()) != 0);
    CHECK(job_count(scheduler.handle()) == 1);
    CHECK(scheduler.count_pending_jobs(at(3)) == 1);
    CHECK(query_int(scheduler.handle(), "SELECT seq FROM sqlite_sequence WHERE name = 'job'") ==
          first.id);

    exec_raw(scheduler.handle(), "PRAGMA max_page_count = 1000000");
    const auto added = scheduler.add_job(large, jobsched_test::job_times(at(1), at(2)));
    CHECK(added.id == first.id + 1);
    CHECK(job_count(scheduler.handle()) == 2);
    const auto stored = scheduler.get_job(added.id);
    REQUIRE(stored.has_value());
    CHECK(stored->data.bytes().size() == large.size());
    CHECK(bool(stored->data.bytes() == large));
  }
}

TEST_CASE("Opening a path in a missing directory throws IoError naming the path",
          "[errors][open]") {
  TempFile file("errors-missing-dir");
  const std::string path = file.path() + "-no-such-directory/job.db";
  bool thrown = false;
  try {
    Scheduler::open(path);
  } catch (const jobsched::IoError& error) {
    thrown = true;
    INFO("message: " << error.what());
    CHECK(error.code() == SQLITE_CANTOPEN);
    CHECK((error.extended_code() & 0xff) == SQLITE_CANTOPEN);
    CHECK(contains(error.what(), path));
  }
  CHECK(thrown);
  CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("Opening a directory as the database throws a jobsched Error", "[errors][open]") {
  TempFile file("errors-directory");
  const std::string path = file.path() + "-dir";
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  bool thrown = false;
  try {
    Scheduler::open(path);
  } catch (const jobsched::Error& error) {
    thrown = true;
    INFO("message: " << error.what());
    CHECK(error.code() != SQLITE_OK);
    CHECK(contains(error.what(), path));
  }
  CHECK(thrown);
  // Nothing was created inside or beside it.
  CHECK(::access((path + "-wal").c_str(), F_OK) != 0);
  CHECK(::rmdir(path.c_str()) == 0);
}

TEST_CASE("The error for a failing statement carries its SQL text in sql(), not in the message",
          "[errors]") {
  TempFile file("errors-sql-text");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    Scheduler scheduler = Scheduler::open(path);
    const auto job = scheduler.add_job("kept", jobsched_test::job_times(at(1), at(2)));

    // A constraint a host trigger raises is a ConstraintError carrying the INSERT.
    exec_raw(scheduler.handle(),
             "CREATE TRIGGER refuse_insert BEFORE INSERT ON job"
             " BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END");
    bool thrown = false;
    try {
      scheduler.add_job("refused", jobsched_test::job_times(at(1), at(2)));
    } catch (const jobsched::ConstraintError& error) {
      thrown = true;
      INFO("message: " << error.what());
      CHECK(error.code() == SQLITE_CONSTRAINT);
      CHECK(error.extended_code() == SQLITE_CONSTRAINT_TRIGGER);
      CHECK(error.sql() == std::string(jobsched::detail::sql::insert_job));
      CHECK(contains(error.what(), "refused by trigger"));
      CHECK_FALSE(contains(error.what(), error.sql()));
      CHECK_FALSE(contains(error.what(), "INSERT"));
      CHECK(jobsched_test::count_of(error.what(), "jobsched:") == 1);
    }
    CHECK(thrown);
    CHECK(job_count(scheduler.handle()) == 1);
    exec_raw(scheduler.handle(), "DROP TRIGGER refuse_insert");

    // A statement whose table is gone is an Error carrying its SELECT.
    exec_raw(scheduler.handle(), "ALTER TABLE job RENAME TO job_elsewhere");
    thrown = false;
    try {
      scheduler.get_job(job.id);
    } catch (const jobsched::Error& error) {
      thrown = true;
      INFO("message: " << error.what());
      CHECK(error.code() == SQLITE_ERROR);
      CHECK(contains(error.sql(), "FROM job WHERE id = ?2"));
      CHECK(contains(error.what(), "no such table: job"));
      CHECK_FALSE(contains(error.what(), "SELECT"));
      CHECK(jobsched_test::count_of(error.what(), "jobsched:") == 1);
    }
    CHECK(thrown);

    // With the table back, the same scheduler works again.
    exec_raw(scheduler.handle(), "ALTER TABLE job_elsewhere RENAME TO job");
    const auto back = scheduler.get_job(job.id);
    REQUIRE(back.has_value());
    CHECK(*back == job);
    CHECK(scheduler.add_job("accepted", jobsched_test::job_times(at(1), at(2))).id == job.id + 1);
  }
}

}  // namespace test_errors
