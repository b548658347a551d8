// SPDX-License-Identifier: MIT
// Opening and adopting: how the connection is set up (WAL, synchronous, busy timeout, clock),
// who closes an adopted handle, and the value semantics of Scheduler and Job.

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/temp_file.hpp"

namespace test_open {

namespace {

using jobsched::Ownership;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::PinnedClock;
using jobsched_test::query_int;
using jobsched_test::TempFile;

std::string query_text(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::string value;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    if (text != nullptr)
      value = text;
  }
  sqlite3_finalize(stmt);
  return value;
}

bool file_exists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

jobsched::JobOptions times(double created, double starts) {
  jobsched::JobOptions options;
  options.created_at = at(created);
  options.starts_at = at(starts);
  return options;
}

/// Counts how often SQLite closes a connection it traces.
struct CloseCounter {
  int closed = 0;
  void attach(sqlite3* db) {
    sqlite3_trace_v2(
        db, SQLITE_TRACE_CLOSE,
        [](unsigned, void* context, void*, void*) -> int {
          ++static_cast<CloseCounter*>(context)->closed;
          return 0;
        },
        this);
  }
};

sqlite3* open_plain(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open(path.c_str(), &db);
  if (rc != SQLITE_OK) {
    sqlite3_close(db);
    FAIL("cannot open " << path);
  }
  return db;
}

}  // namespace

TEST_CASE("A file database opens in WAL mode with synchronous FULL by default", "[open]") {
  TempFile file("open-wal");
  {
    Scheduler scheduler = Scheduler::open(file.path());
    CHECK(query_text(scheduler.handle(), "PRAGMA journal_mode") == "wal");
    CHECK(query_int(scheduler.handle(), "PRAGMA synchronous") == 2);
    scheduler.add_job("x", times(1, 2));
    CHECK(file_exists(file.path() + "-wal"));
  }
  // WAL is a property of the file: a plain connection sees it too.
  auto raw = open_raw(file.path());
  CHECK(query_text(raw.get(), "PRAGMA journal_mode") == "wal");
  CHECK(query_int(raw.get(), "SELECT count(*) FROM job") == 1);
}

TEST_CASE("synchronous is NORMAL when the options ask for it, on files and in memory", "[open]") {
  TempFile file("open-synchronous");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    jobsched::Options normal;
    normal.synchronous = jobsched::Synchronous::normal;
    {
      Scheduler scheduler = Scheduler::open(path, normal);
      CHECK(query_int(scheduler.handle(), "PRAGMA synchronous") == 1);
    }
    jobsched::Options full;
    full.synchronous = jobsched::Synchronous::full;
    {
      Scheduler scheduler = Scheduler::open(path, full);
      CHECK(query_int(scheduler.handle(), "PRAGMA synchronous") == 2);
    }
    Scheduler defaulted = Scheduler::open(path);
    CHECK(query_int(defaulted.handle(), "PRAGMA synchronous") == 2);
  }
}

TEST_CASE("An in-memory database works and is private to its scheduler", "[open]") {
  PinnedClock clock;
  Scheduler first = Scheduler::open(":memory:", clock.options());
  Scheduler second = Scheduler::open(":memory:", clock.options());
  CHECK(query_text(first.handle(), "PRAGMA journal_mode") == "memory");
  CHECK(query_int(first.handle(), "SELECT value FROM job_schema WHERE key = 'version'") ==
        jobsched::current_schema_version);
  CHECK(first.migrated_from() == -1);

  const auto job = first.add_job("in memory");
  CHECK(job.id == 1);
  CHECK(first.count_pending_jobs() == 1);
  CHECK(second.count_pending_jobs() == 0);
  CHECK_FALSE(second.get_job(job.id).has_value());
  const auto next = first.next_job();
  REQUIRE(next.has_value());
  CHECK(*next == job);
  CHECK(first.complete_job(job.id));
  CHECK(first.count_pending_jobs() == 0);
  CHECK(first.delete_completed_jobs() == 1);
  CHECK_FALSE(first.get_job(job.id).has_value());
}

TEST_CASE("The busy timeout option is applied to the connection", "[open][busy]") {
  TempFile file("open-busy-timeout");
  { Scheduler::open(file.path()); }

  // With no timeout, a locked database is refused at once.
  {
    jobsched::Options options;
    options.busy_timeout = std::chrono::milliseconds(0);
    Scheduler scheduler = Scheduler::open(file.path(), options);
    auto other = open_raw(file.path());
    exec_raw(other.get(), "BEGIN IMMEDIATE");
    CHECK_THROWS_AS(scheduler.add_job("blocked", times(1, 2)), jobsched::BusyError);
    exec_raw(other.get(), "ROLLBACK");
    CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") == 0);
  }

  // And it is what the scheduler waits before giving up on a locked database.
  jobsched::Options options;
  options.busy_timeout = std::chrono::milliseconds(250);
  Scheduler scheduler = Scheduler::open(file.path(), options);
  auto other = open_raw(file.path());
  exec_raw(other.get(), "BEGIN IMMEDIATE");
  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(scheduler.add_job("blocked", times(1, 2)), jobsched::BusyError);
  const double waited =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  INFO("waited " << waited << " ms");
  CHECK(waited >= 225.0);
  exec_raw(other.get(), "ROLLBACK");
  CHECK(scheduler.add_job("free", times(1, 2)).id == 1);
}

TEST_CASE("A pinned clock supplies every default time", "[open][clock]") {
  TempFile file("open-clock");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    PinnedClock clock;
    clock.set(1'234'567'890.5);
    Scheduler scheduler = Scheduler::open(path, clock.options());
    CHECK(scheduler.now() == at(1'234'567'890.5));

    const auto job = scheduler.add_job("now");
    CHECK(job.created_at == at(1'234'567'890.5));
    CHECK(job.starts_at == at(1'234'567'890.5));
    CHECK_FALSE(job.expires_at.has_value());
    const auto stored = scheduler.get_job(job.id);
    REQUIRE(stored.has_value());
    CHECK(stored->created_at == at(1'234'567'890.5));

    clock.advance(10);
    CHECK(scheduler.now() == at(1'234'567'900.5));
    const auto later = scheduler.add_job_from_now("later", Seconds{20}, Seconds{30});
    CHECK(later.created_at == at(1'234'567'900.5));
    CHECK(later.starts_at == at(1'234'567'920.5));
    CHECK(later.expires_at == at(1'234'567'930.5));

    // Calls without a time read the clock too.
    CHECK(scheduler.complete_job(job.id));
    CHECK(scheduler.get_job(job.id)->completed_at == at(1'234'567'900.5));
    const auto delay = scheduler.seconds_until_next_job();
    REQUIRE(delay.has_value());
    CHECK(delay->id == later.id);
    CHECK(delay->delay == Seconds{20});
    CHECK(scheduler.count_pending_jobs() == 1);
    const auto locked = scheduler.lock_next_job();
    REQUIRE(locked.has_value());
    CHECK(locked->id == later.id);
    CHECK(locked->locked_at == at(1'234'567'900.5));
    CHECK(scheduler.get_job(later.id)->locked_at == at(1'234'567'900.5));
    CHECK(scheduler.unlock_job(later.id));
    clock.advance(30);  // now == later's expiry
    CHECK(scheduler.count_pending_jobs() == 0);
    CHECK_FALSE(scheduler.next_job().has_value());
    CHECK(scheduler.delete_expired_jobs() == 1);
  }
}

TEST_CASE("Without a clock option, now() is the system time", "[open][clock]") {
  Scheduler scheduler = Scheduler::open(":memory:");
  const auto before = jobsched::system_now();
  const auto now = scheduler.now();
  const auto job = scheduler.add_job("system");
  const auto after = jobsched::system_now();
  CHECK(before <= now);
  CHECK(now <= job.created_at);
  CHECK(job.created_at <= after);
}

TEST_CASE("A negative busy timeout is refused with InvalidArgumentError", "[open]") {
  jobsched::Options options;
  options.busy_timeout = std::chrono::milliseconds(-1);

  TempFile file("open-negative-timeout");
  { Scheduler::open(file.path()).add_job("x", times(1, 2)); }
  const std::string bytes_before = jobsched_test::read_bytes(file.path());

  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    bool thrown = false;
    try {
      Scheduler::open(path, options);
    } catch (const jobsched::InvalidArgumentError& error) {
      thrown = true;
      INFO("message: " << error.what());
      CHECK(error.code() == SQLITE_MISUSE);
      CHECK(std::string(error.what()).find("busy_timeout") != std::string::npos);
      CHECK(std::string(error.what()).find("-1") != std::string::npos);
    }
    CHECK(thrown);
  }
  CHECK(jobsched_test::read_bytes(file.path()) == bytes_before);

  // A new path is not even created.
  TempFile fresh("open-negative-timeout-new");
  CHECK_THROWS_AS(Scheduler::open(fresh.path(), options), jobsched::InvalidArgumentError);
  CHECK(::access(fresh.path().c_str(), F_OK) != 0);

  // Adopting with a negative timeout is refused too, and a borrowed handle stays usable.
  auto host = open_raw(file.path());
  CHECK_THROWS_AS(Scheduler::adopt(host.get(), Ownership::borrowed, options),
                  jobsched::InvalidArgumentError);
  CHECK(query_int(host.get(), "SELECT count(*) FROM job") == 1);
}

TEST_CASE("adopt with Ownership::borrowed leaves the handle open and usable", "[open][adopt]") {
  TempFile file("open-borrowed");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    const bool is_file = path != ":memory:";
    CloseCounter closes;  // declared first: it must outlive the handle whose close it counts
    auto host = open_raw(path);
    closes.attach(host.get());
    std::int64_t id = 0;
    {
      Scheduler scheduler = Scheduler::adopt(host.get(), Ownership::borrowed);
      CHECK(scheduler.handle() == host.get());
      id = scheduler.add_job("borrowed", times(1, 2)).id;
    }
    CHECK(closes.closed == 0);
    // The scheduler's busy handler is gone with it; SQLite's own waits as long.
    CHECK(query_int(host.get(), "PRAGMA busy_timeout") == 5000);
    // The host's handle still works, with the scheduler's job and schema.
    CHECK(query_int(host.get(), "SELECT count(*) FROM job") == 1);
    exec_raw(host.get(), "INSERT INTO job (data, created_at, starts_at) VALUES (NULL, 3, 4)");
    CHECK(query_int(host.get(), "SELECT count(*) FROM job") == 2);
    if (is_file) {
      CHECK(query_text(host.get(), "PRAGMA journal_mode") == "wal");
      CHECK(file_exists(path + "-wal"));  // the connection is still open
    }
    // A second scheduler on the same handle finds the schema current and the jobs there.
    Scheduler again = Scheduler::adopt(host.get(), Ownership::borrowed);
    CHECK_FALSE(again.migrated_from().has_value());
    const auto job = again.get_job(id);
    REQUIRE(job.has_value());
    CHECK(job->data == jobsched::Payload("borrowed"));
  }
}

TEST_CASE("adopt with Ownership::owned closes the handle when the scheduler dies",
          "[open][adopt]") {
  TempFile file("open-owned");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    const bool is_file = path != ":memory:";
    sqlite3* host = open_plain(path);
    CloseCounter closes;
    closes.attach(host);
    {
      Scheduler scheduler = Scheduler::adopt(host, Ownership::owned);
      CHECK(scheduler.handle() == host);
      CHECK(scheduler.add_job("owned", times(1, 2)).id == 1);
      CHECK(closes.closed == 0);
    }
    CHECK(closes.closed == 1);
    if (is_file) {
      // The last connection closed, so SQLite checkpointed and removed the WAL file.
      CHECK_FALSE(file_exists(path + "-wal"));
      auto raw = open_raw(path);
      CHECK(query_int(raw.get(), "SELECT count(*) FROM job") == 1);
    }
  }
}

TEST_CASE("adopt refuses a null handle with InvalidArgumentError", "[open][adopt]") {
  for (const Ownership ownership : {Ownership::owned, Ownership::borrowed}) {
    bool thrown = false;
    try {
      Scheduler::adopt(nullptr, ownership);
    } catch (const jobsched::InvalidArgumentError& error) {
      thrown = true;
      CHECK(error.code() == SQLITE_MISUSE);
      CHECK(std::string(error.what()).find("null") != std::string::npos);
    }
    CHECK(thrown);
  }
}

TEST_CASE("A Scheduler can be move-constructed and move-assigned and keeps working",
          "[open][move]") {
  static_assert(std::is_nothrow_move_constructible<Scheduler>::value, "");
  static_assert(std::is_nothrow_move_assignable<Scheduler>::value, "");
  static_assert(!std::is_copy_constructible<Scheduler>::value, "");
  static_assert(!std::is_copy_assignable<Scheduler>::value, "");

  TempFile file("open-move");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    TempFile other_file("open-move-other");
    PinnedClock clock;
    Scheduler original = Scheduler::open(path, clock.options());
    sqlite3* const handle = original.handle();
    const auto first = original.add_job("first");

    Scheduler moved(std::move(original));
    CHECK(moved.handle() == handle);
    CHECK(original.handle() == nullptr);  // NOLINT(bugprone-use-after-move)
    CHECK(moved.now() == clock.now());
    const auto second = moved.add_job("second", times(1, 2));
    CHECK(second.id == first.id + 1);
    CHECK(moved.get_job(first.id) == first);

    sqlite3* other_handle = open_plain(other_file.path());
    CloseCounter closes;
    closes.attach(other_handle);
    Scheduler assigned = Scheduler::adopt(other_handle, Ownership::owned);
    assigned.add_job("in the other file", times(1, 2));
    assigned = std::move(moved);
    CHECK(closes.closed == 1);  // the connection it held before was closed
    CHECK(assigned.handle() == handle);
    CHECK(assigned.now() == clock.now());
    CHECK(assigned.get_job(first.id) == first);
    CHECK(assigned.get_job(second.id) == second);
    const auto third = assigned.add_job("third", times(1, 2));
    CHECK(third.id == second.id + 1);
    CHECK(assigned.count_pending_jobs(at(5)) == 3);
    const auto locked = assigned.lock_next_job(at(5));
    REQUIRE(locked.has_value());
    CHECK(locked->id == second.id);

    // A moved-from scheduler can be assigned to and used again.
    original = Scheduler::open(":memory:");
    CHECK(original.add_job("revived", times(1, 2)).id == 1);

    // The other file kept its own job.
    auto raw = open_raw(other_file.path());
    CHECK(query_int(raw.get(), "SELECT count(*) FROM job") == 1);
  }
}

TEST_CASE("Job is a copyable value compared field by field", "[open][job]") {
  static_assert(std::is_copy_constructible<jobsched::Job>::value, "");
  static_assert(std::is_copy_assignable<jobsched::Job>::value, "");

  Scheduler scheduler = Scheduler::open(":memory:");
  jobsched::JobOptions options = times(1, 2);
  options.expires_at = at(3);
  const jobsched::Job job = scheduler.add_job("value", options);

  jobsched::Job copy = job;
  CHECK(copy == job);
  CHECK_FALSE(copy != job);
  jobsched::Job assigned;
  CHECK(assigned != job);
  assigned = job;
  CHECK(assigned == job);
  CHECK(scheduler.get_job(job.id) == job);

  // Every field takes part in ==.
  const auto differs = [&job](void (*change)(jobsched::Job&)) {
    jobsched::Job changed = job;
    change(changed);
    return changed != job && !(changed == job);
  };
  CHECK(differs([](jobsched::Job& j) { j.id += 1; }));
  CHECK(differs([](jobsched::Job& j) { j.data = jobsched::Payload::text("value"); }));
  CHECK(differs([](jobsched::Job& j) { j.created_at = at(0); }));
  CHECK(differs([](jobsched::Job& j) { j.starts_at = at(2.5); }));
  CHECK(differs([](jobsched::Job& j) { j.expires_at.reset(); }));
  CHECK(differs([](jobsched::Job& j) { j.completed_at = at(4); }));
  CHECK(differs([](jobsched::Job& j) { j.locked_at = at(4); }));

  // A copy is independent of the scheduler and of later changes to the stored job.
  REQUIRE(scheduler.complete_job(job.id, at(2.5)));
  CHECK(copy == job);
  CHECK_FALSE(copy.is_completed());
  const auto completed = scheduler.get_job(job.id);
  REQUIRE(completed.has_value());
  CHECK(*completed != copy);
  CHECK(completed->is_completed());

  const jobsched::JobDelay a{1, Seconds{2}};
  const jobsched::JobDelay b = a;
  CHECK(a == b);
  CHECK(a != jobsched::JobDelay{1, Seconds{3}});
  CHECK(a != jobsched::JobDelay{2, Seconds{2}});
}

// ---- What opening refuses, and how it says so ------------------------------------------------

TEST_CASE("An empty path, or one with a NUL byte, is refused before anything is created",
          "[open]") {
  // SQLite would take "" for a private temporary database whose jobs vanish on close.
  TempFile file("open-nul");
  const std::string with_nul = file.path() + std::string(1, '\0') + "tail";
  for (const std::string& path : {std::string(), with_nul}) {
    INFO("path of " << path.size() << " bytes");
    bool thrown = false;
    try {
      Scheduler::open(path);
    } catch (const jobsched::InvalidArgumentError& error) {
      thrown = true;
      INFO("message: " << error.what());
      CHECK(std::string(error.what()).find(path.empty() ? "path is empty" : "NUL byte") !=
            std::string::npos);
    }
    CHECK(thrown);
  }
  CHECK_FALSE(file_exists(file.path()));
}

TEST_CASE("Every error from opening names the path once, says jobsched: once, and shows no SQL",
          "[open][errors]") {
  TempFile file("open-errors");
  const std::string path = file.path();
  struct Case {
    const char* name;
    const char* sql;  // run on a raw connection first; empty: the file is left alone
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"not a database", "", std::string(8192, 'x')},
      {"a newer version",
       "CREATE TABLE job (id INTEGER PRIMARY KEY); CREATE TABLE job_schema (key TEXT PRIMARY KEY,"
       " value) WITHOUT ROWID; INSERT INTO job_schema VALUES ('version', 99)",
       ""},
      {"no version row",
       "CREATE TABLE job (id INTEGER PRIMARY KEY); CREATE TABLE job_schema (key TEXT PRIMARY KEY,"
       " value) WITHOUT ROWID",
       ""},
      {"a version that is not a number",
       "CREATE TABLE job (id INTEGER PRIMARY KEY); CREATE TABLE job_schema (key TEXT PRIMARY KEY,"
       " value) WITHOUT ROWID; INSERT INTO job_schema VALUES ('version', 'four')",
       ""},
      {"a job table that is not a job table", "CREATE TABLE job (name TEXT, size INTEGER)", ""},
      {"a current version with a foreign job table",
       "CREATE TABLE job (name TEXT); CREATE TABLE job_schema (key TEXT PRIMARY KEY, value)"
       " WITHOUT ROWID; INSERT INTO job_schema VALUES ('version', 4)",
       ""},
      {"a directory", "", ""},
  };
  for (const Case& hostile : cases) {
    INFO(hostile.name);
    std::remove(path.c_str());
    ::rmdir(path.c_str());
    if (std::string(hostile.name) == "a directory") {
      REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    } else if (!hostile.bytes.empty()) {
      jobsched_test::write_bytes(path, hostile.bytes);
    } else {
      exec_raw(open_raw(path).get(), hostile.sql);
    }
    bool thrown = false;
    try {
      Scheduler::open(path);
    } catch (const jobsched::Error& error) {
      thrown = true;
      const std::string message = error.what();
      INFO("message: " << message);
      CHECK(jobsched_test::count_of(message, "'" + path + "'") == 1);
      CHECK(jobsched_test::count_of(message, "jobsched:") == 1);
      for (const char* keyword : {"SELECT", "INSERT", "CREATE", "UPDATE", "ALTER", "PRAGMA"})
        CHECK(message.find(keyword) == std::string::npos);
    }
    CHECK(thrown);
  }
  ::rmdir(path.c_str());
}

TEST_CASE("An SQLite library older than 3.37.0 is refused, naming both versions", "[open]") {
  CHECK_NOTHROW(jobsched::detail::check_sqlite_version(sqlite3_libversion_number()));
  CHECK_NOTHROW(jobsched::detail::check_sqlite_version(3037000));
  bool thrown = false;
  try {
    jobsched::detail::check_sqlite_version(3036002);
  } catch (const jobsched::Error& error) {
    thrown = true;
    CHECK(std::string(error.what()) ==
          "jobsched: needs SQLite 3.37.0 or newer; this program runs with SQLite 3.36.2");
  }
  CHECK(thrown);
}

}  // namespace test_open
