// SPDX-License-Identifier: MIT
// The storage lineage: files written by the Python programs (schema versions 0, 1 and 2) are
// upgraded in place to the current version and lose nothing; files this build cannot use
// are refused without a byte written; a failed migration leaves the file as it was; and of
// several processes opening an old file at once, exactly one migrates it.

#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/python_files.hpp"
#include "support/temp_file.hpp"

namespace test_migrations {

namespace {

using jobsched_test::contains;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::query_int;
using jobsched_test::read_bytes;
using jobsched_test::TempFile;
using jobsched_test::thrown;

constexpr double kNow = 1'700'000'000.0;  // the pinned "now" of every check below

// ---- Small raw-SQLite helpers ------------------------------------------------------------

/// Every row of a query, each row's columns as "typeof:value" joined by '|', rows by '\n'.
std::string query_rows(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db) + " in " + sql);
  }
  std::string out;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const int columns = sqlite3_column_count(stmt);
    for (int i = 0; i < columns; ++i) {
      if (i > 0)
        out += '|';
      const unsigned char* text = sqlite3_column_text(stmt, i);
      out += std::to_string(sqlite3_column_type(stmt, i)) + ":" +
             (text != nullptr ? reinterpret_cast<const char*>(text) : "NULL");
    }
    out += '\n';
  }
  sqlite3_finalize(stmt);
  return out;
}

/// The first column of the first row as text ("" when there is no row or it is NULL).
std::string query_text(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db) + " in " + sql);
  }
  std::string value;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return value;
}

bool has_index(sqlite3* db, const std::string& name) {
  return query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '" +
                           name + "'") == 1;
}

bool has_column(sqlite3* db, const std::string& table, const std::string& column) {
  return query_int(db, "SELECT count(*) FROM pragma_table_info('" + table + "') WHERE name = '" +
                           column + "'") == 1;
}

/// The file's version row as "storage class:value", or "" when there is no job_schema/row.
std::string version_row(sqlite3* db) {
  if (query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'job_schema'") != 1) {
    return "";
  }
  return query_text(db,
                    "SELECT typeof(value) || ':' || value FROM job_schema"
                    " WHERE key = 'version'");
}

// ---- Fixtures ------------------------------------------------------------------------------

/// A job as a fixture writes it. `payload` is what the scheduler must read back.
struct FixtureJob {
  jobsched::Payload payload;
  double created_at;
  double starts_at;
  std::optional<double> expires_at;
  std::optional<double> completed_at;
  std::optional<double> locked_at;  // only written at version 2
  bool integer_times = false;       // bind times as INTEGER, as Python did for int arguments
  std::int64_t id = 0;              // filled in by the fixture
};

struct Fixture {
  std::vector<FixtureJob> jobs;  // the surviving jobs, ids ascending
  std::int64_t max_id_ever = 0;  // includes the deleted last job
};

/// The job list every fixture holds. Pending at kNow: time_zero, blob_nul, real, locked
/// (locked at version 2 only), empty_text. Expired: integer, empty_blob (at exactly kNow),
/// zero_expired. Completed: text_nul, null (its expiry passed, but completed never expires).
std::vector<FixtureJob> fixture_jobs(int version) {
  using jobsched::Payload;
  std::vector<FixtureJob> jobs;
  // 1: a time of exactly 0, pending forever, TEXT.
  jobs.push_back(
      {Payload::text("hello, epoch"), 0.0, 0.0, std::nullopt, std::nullopt, std::nullopt, true});
  // 2: TEXT with an embedded NUL, completed.
  jobs.push_back({Payload::text(std::string("a\0b", 3)), kNow - 500.5, kNow - 400.25, std::nullopt,
                  kNow - 100.125, std::nullopt});
  // 3: INTEGER, expired.
  jobs.push_back(
      {Payload::integer(42), kNow - 100, kNow - 50, kNow - 10, std::nullopt, std::nullopt});
  // 4: REAL, pending, starts later, expires later still.
  jobs.push_back(
      {Payload::real(3.25), kNow - 1, kNow + 60, kNow + 3600, std::nullopt, std::nullopt});
  // 5: BLOB with NUL bytes, pending and overdue.
  jobs.push_back({Payload(std::string("\0\x01\xff\0z", 5)), kNow - 10, kNow - 5, std::nullopt,
                  std::nullopt, std::nullopt});
  // 6: empty BLOB, expires at exactly kNow (so expired at kNow).
  jobs.push_back({Payload(std::string()), kNow - 20, kNow - 20, kNow, std::nullopt, std::nullopt});
  // 7: NULL payload, completed (its expiry has passed, but completed jobs never expire).
  jobs.push_back({Payload(), kNow - 30, kNow - 30, kNow - 25, kNow - 29, std::nullopt});
  // 8: the smallest INTEGER, pending, and locked at version 2.
  jobs.push_back({Payload::integer(std::numeric_limits<std::int64_t>::min()), kNow - 2, kNow + 120,
                  std::nullopt, std::nullopt,
                  version >= 2 ? std::optional<double>(kNow - 1.5) : std::nullopt});
  // 9: empty TEXT (not NULL), pending.
  jobs.push_back({Payload::text(""), kNow, kNow + 30, kNow + 30, std::nullopt, std::nullopt});
  // 10: all times exactly 0, expired since the epoch; a negative REAL payload.
  jobs.push_back({Payload::real(-0.5), 0.0, 0.0, 0.0, std::nullopt, std::nullopt, true});
  return jobs;
}

void bind_time(sqlite3_stmt* stmt, int index, std::optional<double> value, bool as_integer) {
  if (!value) {
    sqlite3_bind_null(stmt, index);
  } else if (as_integer) {
    sqlite3_bind_int64(stmt, index, static_cast<sqlite3_int64>(*value));
  } else {
    sqlite3_bind_double(stmt, index, *value);
  }
}

void bind_payload(sqlite3_stmt* stmt, int index, const jobsched::Payload& payload) {
  using jobsched::StorageClass;
  switch (payload.storage_class()) {
    case StorageClass::null:
      sqlite3_bind_null(stmt, index);
      break;
    case StorageClass::integer:
      sqlite3_bind_int64(stmt, index, *payload.as_integer());
      break;
    case StorageClass::real:
      sqlite3_bind_double(stmt, index, *payload.as_real());
      break;
    case StorageClass::text:
      // Explicit length, so an embedded NUL is stored as part of the text.
      sqlite3_bind_text(stmt, index, payload.bytes().data(),
                        static_cast<int>(payload.bytes().size()), SQLITE_TRANSIENT);
      break;
    case StorageClass::blob:
      if (payload.bytes().empty()) {
        sqlite3_bind_zeroblob(stmt, index, 0);
      } else {
        sqlite3_bind_blob(stmt, index, payload.bytes().data(),
                          static_cast<int>(payload.bytes().size()), SQLITE_TRANSIENT);
      }
      break;
  }
}

/// Writes a job.db as the Python programs did at `version` (0, 1 or 2): WAL (as they set it)
/// or the rollback journal, the schema of that version, then the jobs; the last job added
/// is deleted again, so the file's largest id ever is not among its jobs.
Fixture write_fixture(const std::string& path, int version, bool wal = true,
                      const std::string& extra_sql = "") {
  Fixture fixture;
  auto owner = open_raw(path);
  sqlite3* db = owner.get();
  if (wal)
    REQUIRE(query_text(db, "PRAGMA journal_mode = WAL") == "wal");
  jobsched_test::write_python_schema(db, version);

  fixture.jobs = fixture_jobs(version);
  const std::string insert =
      version >= 2 ? "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at,"
                     " locked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                   : "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5)";
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, insert.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  for (FixtureJob& job : fixture.jobs) {
    bind_payload(stmt, 1, job.payload);
    bind_time(stmt, 2, job.created_at, job.integer_times);
    bind_time(stmt, 3, job.starts_at, job.integer_times);
    bind_time(stmt, 4, job.expires_at, job.integer_times);
    bind_time(stmt, 5, job.completed_at, false);
    if (version >= 2)
      bind_time(stmt, 6, job.locked_at, false);
    REQUIRE(sqlite3_step(stmt) == SQLITE_DONE);
    REQUIRE(sqlite3_reset(stmt) == SQLITE_OK);
    job.id = sqlite3_last_insert_rowid(db);
  }
  sqlite3_finalize(stmt);
  // The largest id goes, so only sqlite_sequence remembers it.
  exec_raw(db, "INSERT INTO job (data, created_at, starts_at) VALUES (x'dead', 1, 1);");
  fixture.max_id_ever = sqlite3_last_insert_rowid(db);
  exec_raw(db, "DELETE FROM job WHERE id = " + std::to_string(fixture.max_id_ever));
  REQUIRE(version_row(db) == (version == 0 ? "" : "integer:" + std::to_string(version)));
  REQUIRE(query_text(db, "PRAGMA journal_mode") == (wal ? "wal" : "delete"));
  if (!extra_sql.empty())
    exec_raw(db, extra_sql);
  return fixture;  // the raw connection closes here (and checkpoints a WAL file)
}

jobsched::Options pinned_options() {
  jobsched::Options options;
  options.clock = [] { return jobsched::from_unix_seconds(kNow); };
  return options;
}

std::optional<double> seconds_of(const std::optional<jobsched::TimePoint>& time) {
  if (!time)
    return std::nullopt;
  return jobsched::to_unix_seconds(*time);
}

/// Every fixture job reads back exactly: id, payload (storage class and bytes/value) and
/// every time. Jobs from before version 2 are unlocked.
void check_jobs_survived(jobsched::Scheduler& scheduler, const Fixture& fixture) {
  for (const FixtureJob& expected : fixture.jobs) {
    INFO("job id " << expected.id);
    const std::optional<jobsched::Job> job = scheduler.get_job(expected.id);
    REQUIRE(job.has_value());
    CHECK(job->id == expected.id);
    CHECK(job->data.storage_class() == expected.payload.storage_class());
    CHECK(std::string(job->data.bytes()) == std::string(expected.payload.bytes()));
    CHECK(job->data.bytes().size() == expected.payload.bytes().size());
    CHECK(job->data.as_integer() == expected.payload.as_integer());
    CHECK(job->data.as_real() == expected.payload.as_real());
    CHECK(job->data == expected.payload);
    CHECK(jobsched::to_unix_seconds(job->created_at) == expected.created_at);
    CHECK(jobsched::to_unix_seconds(job->starts_at) == expected.starts_at);
    CHECK(seconds_of(job->expires_at) == expected.expires_at);
    CHECK(seconds_of(job->completed_at) == expected.completed_at);
    CHECK(seconds_of(job->locked_at) == expected.locked_at);
    CHECK(job->is_completed() == expected.completed_at.has_value());
  }
  // Nothing more, nothing less.
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job") ==
        static_cast<long long>(fixture.jobs.size()));
  CHECK_FALSE(scheduler.get_job(fixture.max_id_ever).has_value());
}

/// The schema a current file has, whatever it started as.
void check_current_schema(sqlite3* db) {
  CHECK(version_row(db) == "integer:" + std::to_string(jobsched::current_schema_version));
  CHECK(query_int(db, "SELECT count(*) FROM job_schema") == 1);
  CHECK_FALSE(has_index(db, "ix_job_completed_at_expires_at"));
  CHECK_FALSE(has_index(db, "ix_job_starts_at_expires_at"));
  CHECK_FALSE(has_index(db, "ix_job_pending_starts_at"));
  CHECK_FALSE(has_index(db, "ix_job_pending_expires_at"));
  for (const char* index : {"ix_job_queue_order", "ix_job_claim_order", "ix_job_start_order",
                            "ix_job_leases", "ix_job_expiry",
                            "ix_job_expired", "ix_job_completed", "ix_job_failed",
                            "ix_job_unique", "ix_job_key_completed", "ix_job_cancelled"}) {
    CAPTURE(index);
    CHECK(has_index(db, index));
  }
  CHECK(has_column(db, "job", "locked_at"));
  CHECK(has_column(db, "job", "state"));
  CHECK(has_column(db, "job_payload", "data"));
  // Every payload moved out of the rows a claim rewrites.
  CHECK(query_int(db, "SELECT count(*) FROM job WHERE data IS NOT NULL") == 0);
  CHECK(query_text(db, "PRAGMA integrity_check") == "ok");
}

const FixtureJob& job_at(const Fixture& fixture, std::size_t one_based) {
  return fixture.jobs.at(one_based - 1);
}

/// The migrated file answers as a new one would, for the fixture's jobs at kNow.
void check_works_like_new(jobsched::Scheduler& scheduler, const Fixture& fixture, int version) {
  const auto now = jobsched::from_unix_seconds(kNow);
  const std::int64_t time_zero = job_at(fixture, 1).id;
  const std::int64_t overdue_blob = job_at(fixture, 5).id;
  const std::int64_t empty_text = job_at(fixture, 9).id;
  const std::int64_t real = job_at(fixture, 4).id;
  const std::int64_t locked = job_at(fixture, 8).id;

  // Pending: 1, 4, 5, 8, 9 (locked or not); the expired and completed ones do not count.
  CHECK(scheduler.count_pending_jobs(now) == 5);
  // The next job is the one that started at 0; it is due, so its delay is zero.
  const auto next = scheduler.next_job(now);
  REQUIRE(next.has_value());
  CHECK(next->id == time_zero);
  const auto delay = scheduler.seconds_until_next_job(now);
  REQUIRE(delay.has_value());
  CHECK(delay->id == time_zero);
  CHECK(delay->delay.count() == 0.0);

  // A new job's id is above every id the file ever gave, the deleted largest one included.
  const jobsched::Job added = scheduler.add_job(
      jobsched::Payload("new"), jobsched_test::job_times(now, now + jobsched::Seconds{1000}));
  CHECK(added.id == fixture.max_id_ever + 1);
  CHECK(scheduler.count_pending_jobs(now) == 6);

  // Locks: the next jobs come in (starts_at, id) order and locked ones are skipped.
  std::vector<std::int64_t> order;
  while (auto job = scheduler.lock_next_job(now)) {
    CHECK(job->locked_at.has_value());
    order.push_back(job->id);
    if (order.size() > 10)
      break;
  }
  std::vector<std::int64_t> expected = {time_zero, overdue_blob, empty_text, real};
  if (version < 2)
    expected.push_back(locked);  // not locked by the fixture
  expected.push_back(added.id);
  CHECK(order == expected);
  CHECK_FALSE(scheduler.next_job(now).has_value());
  CHECK(scheduler.count_pending_jobs(now) == 6);  // locked jobs are still pending

  // The fixture's own lock (version 2) ends with unlock_job, as ours do.
  CHECK(scheduler.unlock_job(locked));
  CHECK(scheduler.unlock_job(locked));  // it exists
  const auto after_unlock = scheduler.next_job(now);
  REQUIRE(after_unlock.has_value());
  CHECK(after_unlock->id == locked);
  CHECK(scheduler.lock_job(locked, now));
  CHECK_FALSE(scheduler.lock_job(locked, now));
  CHECK(scheduler.complete_job(time_zero, now));

  // Deleting the expired: 3 (integer), 6 (expiring at exactly kNow), 10 (all times 0).
  CHECK(scheduler.delete_expired_jobs(now) == 3);
  CHECK(scheduler.delete_completed_jobs() == 3);  // 2, 7 and the one completed above
}

/// The whole upgrade check for one fixture.
void check_upgrade(int version, bool wal) {
  TempFile file("migrate-v" + std::to_string(version) + (wal ? "-wal" : "-delete"));
  const Fixture fixture = write_fixture(file.path(), version, wal);
  {
    auto scheduler = jobsched::Scheduler::open(file.path(), pinned_options());
    REQUIRE(scheduler.migrated_from().has_value());
    CHECK(*scheduler.migrated_from() == version);
    check_jobs_survived(scheduler, fixture);
    check_current_schema(scheduler.handle());
    CHECK(query_text(scheduler.handle(), "PRAGMA journal_mode") == "wal");
    CHECK(query_int(scheduler.handle(), "SELECT seq FROM sqlite_sequence WHERE name = 'job'") ==
          fixture.max_id_ever);
    check_works_like_new(scheduler, fixture, version);
  }
  // Seen afresh by a raw connection, and by a second open that has nothing to do.
  {
    auto raw = open_raw(file.path());
    check_current_schema(raw.get());
    CHECK(query_text(raw.get(), "PRAGMA journal_mode") == "wal");
  }
  auto again = jobsched::Scheduler::open(file.path(), pinned_options());
  CHECK_FALSE(again.migrated_from().has_value());
}

// ---- Refusals ------------------------------------------------------------------------------

struct Snapshot {
  std::string bytes;
  std::string schema_rows;
};

Snapshot snapshot(const std::string& path, bool read_rows = true) {
  Snapshot shot;
  shot.bytes = read_bytes(path);
  if (read_rows) {
    auto raw = open_raw(path);
    shot.schema_rows =
        query_rows(raw.get(), "SELECT key, value, typeof(value) FROM job_schema ORDER BY key");
  }
  return shot;
}

/// Opening `path` throws SchemaError naming `needle`, and the file is byte-for-byte as it was.
void check_refused(const std::string& path, const std::string& needle, bool read_rows = true) {
  const Snapshot before = snapshot(path, read_rows);
  REQUIRE(!before.bytes.empty());
  const auto message =
      thrown<jobsched::SchemaError>([&] { (void)jobsched::Scheduler::open(path); });
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(contains(*message, needle));
  const Snapshot after = snapshot(path, read_rows);
  CHECK(after.bytes.size() == before.bytes.size());
  CHECK((after.bytes == before.bytes));
  CHECK(after.schema_rows == before.schema_rows);
}

// ---- Processes -----------------------------------------------------------------------------

constexpr int kNothingToMigrate = -100;
constexpr int kFailed = 99;

/// Forks `count` processes that wait on a shared start signal, then each open `path` at once
/// and report migrated_from() (kNothingToMigrate when empty, kFailed on an exception).
std::vector<int> open_in_processes(const std::string& path, int count) {
  int start[2];
  int results[2];
  REQUIRE(::pipe(start) == 0);
  REQUIRE(::pipe(results) == 0);
  std::vector<pid_t> children;
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(start[1]);
      ::close(results[0]);
      char byte = 0;
      while (::read(start[0], &byte, 1) > 0) {
      }  // EOF: the parent closed the start pipe, everyone goes
      std::int32_t value = kFailed;
      try {
        auto scheduler = jobsched::Scheduler::open(path);
        value = scheduler.migrated_from() ? *scheduler.migrated_from() : kNothingToMigrate;
      } catch (const std::exception& error) {
        const std::string line = std::string("child failed: ") + error.what() + "\n";
        (void)!::write(2, line.data(), line.size());
        value = kFailed;
      } catch (...) {
        value = kFailed;
      }
      (void)!::write(results[1], &value, sizeof value);
      ::_exit(0);
    }
    children.push_back(pid);
  }
  ::close(start[0]);
  ::close(results[1]);
  ::close(start[1]);  // go
  const jobsched_test::Deadline deadline(std::chrono::seconds(60),
                                         std::to_string(count) + " processes to open the file");
  std::string bytes;
  CHECK(jobsched_test::read_to_end(results[0], bytes, deadline));
  ::close(results[0]);
  std::vector<int> reported;
  for (std::size_t at = 0; at + sizeof(std::int32_t) <= bytes.size(); at += sizeof(std::int32_t)) {
    std::int32_t value = 0;
    std::memcpy(&value, bytes.data() + at, sizeof value);
    reported.push_back(value);
  }
  for (const pid_t pid : children) {
    const jobsched_test::ChildEnd end = jobsched_test::wait_for_child(pid, deadline);
    INFO("a child " << end.describe());
    CHECK_FALSE(end.hung);
    CHECK(end.exited);
    CHECK(end.exit_code == 0);
  }
  return reported;
}

void check_concurrent_upgrade(bool wal) {
  TempFile file(std::string("migrate-eight-") + (wal ? "wal" : "delete"));
  const Fixture fixture = write_fixture(file.path(), 0, wal);
  const std::vector<int> reported = open_in_processes(file.path(), 8);
  std::string list;
  for (const int value : reported)
    list += std::to_string(value) + " ";
  INFO("reported: " << list);
  REQUIRE(reported.size() == 8);
  long zero = 0, nothing = 0, failed = 0;
  for (const int value : reported) {
    zero += value == 0;
    nothing += value == kNothingToMigrate;
    failed += value == kFailed;
  }
  CHECK(zero == 1);
  CHECK(nothing == 7);
  CHECK(failed == 0);

  auto scheduler = jobsched::Scheduler::open(file.path(), pinned_options());
  CHECK_FALSE(scheduler.migrated_from().has_value());
  check_jobs_survived(scheduler, fixture);
  check_current_schema(scheduler.handle());
  CHECK(query_text(scheduler.handle(), "PRAGMA journal_mode") == "wal");
  CHECK(scheduler.count_pending_jobs() == 5);
}

}  // namespace

// ---- Upgrades ------------------------------------------------------------------------------

TEST_CASE("a version-0 file in WAL mode is upgraded with every job and field intact",
          "[migrations]") {
  check_upgrade(0, true);
}

TEST_CASE("a version-1 file in WAL mode is upgraded with every job and field intact",
          "[migrations]") {
  check_upgrade(1, true);
}

TEST_CASE("a version-2 file in WAL mode is upgraded with its locks and every job intact",
          "[migrations]") {
  check_upgrade(2, true);
}

TEST_CASE("a version-1 file in rollback-journal mode is upgraded and switched to WAL",
          "[migrations]") {
  check_upgrade(1, false);
}

TEST_CASE("a version-0 file in rollback-journal mode is upgraded and switched to WAL",
          "[migrations]") {
  check_upgrade(0, false);
}

TEST_CASE("a fresh file is migrated from -1 and is current when opened again", "[migrations]") {
  TempFile file("migrate-fresh");
  {
    auto scheduler = jobsched::Scheduler::open(file.path());
    REQUIRE(scheduler.migrated_from().has_value());
    CHECK(*scheduler.migrated_from() == -1);
    check_current_schema(scheduler.handle());
    CHECK(query_text(scheduler.handle(), "PRAGMA journal_mode") == "wal");
    CHECK(scheduler.add_job(jobsched::Payload("x")).id == 1);
  }
  auto again = jobsched::Scheduler::open(file.path());
  CHECK_FALSE(again.migrated_from().has_value());
  CHECK(again.get_job(1).has_value());
  check_current_schema(again.handle());
}

TEST_CASE("an in-memory database is migrated from -1", "[migrations]") {
  auto scheduler = jobsched::Scheduler::open(":memory:");
  REQUIRE(scheduler.migrated_from().has_value());
  CHECK(*scheduler.migrated_from() == -1);
  check_current_schema(scheduler.handle());
  CHECK(query_text(scheduler.handle(), "PRAGMA journal_mode") == "memory");
}

TEST_CASE("the migrations of versions 0 to 2 are exactly what the Python programs ran",
          "[migrations]") {
  // A file built by running the library's own scripts 0..2 has the same schema as one built
  // from the Python programs' SQL (compared through sqlite_master, modulo IF NOT EXISTS).
  TempFile ours("migrate-scripts-ours");
  TempFile theirs("migrate-scripts-theirs");
  {
    auto raw = open_raw(ours.path());
    for (const auto& migration : jobsched::detail::migrations) {
      if (migration.version <= 2)
        exec_raw(raw.get(), migration.script);
    }
    exec_raw(raw.get(), "UPDATE job_schema SET value = 2 WHERE key = 'version'");
  }
  write_fixture(theirs.path(), 2, false);
  auto a = open_raw(ours.path());
  auto b = open_raw(theirs.path());
  const std::string sql = "SELECT type, name, tbl_name FROM sqlite_master ORDER BY name";
  CHECK(query_rows(a.get(), sql) == query_rows(b.get(), sql));
  CHECK(query_rows(a.get(), "SELECT * FROM pragma_table_info('job')") ==
        query_rows(b.get(), "SELECT * FROM pragma_table_info('job')"));
  CHECK(version_row(a.get()) == "integer:2");
}

// ---- Refusals ------------------------------------------------------------------------------

TEST_CASE("a file at a newer schema version is refused and not written", "[migrations]") {
  for (const bool wal : {true, false}) {
    INFO("wal: " << wal);
    TempFile file(std::string("migrate-newer-") + (wal ? "wal" : "delete"));
    const std::string newer = std::to_string(jobsched::current_schema_version + 1);
    write_fixture(file.path(), 2, wal,
                  "UPDATE job_schema SET value = " + newer + " WHERE key = 'version'");
    check_refused(file.path(), newer);
    auto raw = open_raw(file.path());
    CHECK(version_row(raw.get()) == "integer:" + newer);
    CHECK(query_text(raw.get(), "PRAGMA journal_mode") == (wal ? "wal" : "delete"));
  }
}

TEST_CASE("a job_schema without its version row is refused and not written", "[migrations]") {
  TempFile file("migrate-no-version-row");
  write_fixture(file.path(), 1, true, "DELETE FROM job_schema");
  check_refused(file.path(), "version");
  auto raw = open_raw(file.path());
  CHECK(query_int(raw.get(), "SELECT count(*) FROM job_schema") == 0);
  CHECK(has_index(raw.get(), "ix_job_completed_at_expires_at"));
}

TEST_CASE("a version that is the text 'abc' is refused and not written", "[migrations]") {
  TempFile file("migrate-text-version");
  write_fixture(file.path(), 1, true, "UPDATE job_schema SET value = 'abc' WHERE key = 'version'");
  check_refused(file.path(), "abc");
  auto raw = open_raw(file.path());
  CHECK(version_row(raw.get()) == "text:abc");
}

TEST_CASE("a negative schema version is refused and not written", "[migrations]") {
  TempFile file("migrate-negative-version");
  write_fixture(file.path(), 1, true, "UPDATE job_schema SET value = -7 WHERE key = 'version'");
  check_refused(file.path(), "-7");
}

TEST_CASE("a file that is not an SQLite database is refused and not written", "[migrations]") {
  TempFile file("migrate-not-a-db");
  std::string text;
  while (text.size() < 4096)
    text += "this is a text file, not a job database.\n";
  text.resize(4096);
  jobsched_test::write_bytes(file.path(), text);
  const auto message =
      thrown<jobsched::SchemaError>([&] { (void)jobsched::Scheduler::open(file.path()); });
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(contains(*message, "not a database"));
  CHECK((read_bytes(file.path()) == text));
}

TEST_CASE("a migration that fails part-way leaves a WAL file exactly as it was", "[migrations]") {
  // Migration 2 adds locked_at; a version-1 file that already has it makes that ALTER fail
  // after migration 1's scripts have run, inside the same transaction.
  TempFile file("migrate-fails-wal");
  const Fixture fixture =
      write_fixture(file.path(), 1, true, "ALTER TABLE job ADD COLUMN locked_at REAL");
  const Snapshot before = snapshot(file.path());
  const auto message = thrown<jobsched::Error>(
      [&] { (void)jobsched::Scheduler::open(file.path(), pinned_options()); });
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(contains(*message, "locked_at"));
  const Snapshot after = snapshot(file.path());
  CHECK((after.bytes == before.bytes));
  CHECK(after.schema_rows == before.schema_rows);
  auto raw = open_raw(file.path());
  CHECK(version_row(raw.get()) == "integer:1");
  CHECK(has_index(raw.get(), "ix_job_completed_at_expires_at"));
  CHECK_FALSE(has_index(raw.get(), "ix_job_pending_starts_at"));
  CHECK_FALSE(has_index(raw.get(), "ix_job_pending_expires_at"));
  CHECK(query_int(raw.get(), "SELECT count(*) FROM job") ==
        static_cast<long long>(fixture.jobs.size()));
  CHECK(query_text(raw.get(), "PRAGMA integrity_check") == "ok");
}

TEST_CASE("a migration that fails part-way leaves a rollback-journal file exactly as it was",
          "[migrations]") {
  TempFile file("migrate-fails-delete");
  write_fixture(file.path(), 1, false, "ALTER TABLE job ADD COLUMN locked_at REAL");
  const Snapshot before = snapshot(file.path());
  const auto message = thrown<jobsched::Error>(
      [&] { (void)jobsched::Scheduler::open(file.path(), pinned_options()); });
  REQUIRE(message.has_value());
  INFO("message: " << *message);
  CHECK(contains(*message, "locked_at"));
  auto raw = open_raw(file.path());
  CHECK(version_row(raw.get()) == "integer:1");
  CHECK(has_index(raw.get(), "ix_job_completed_at_expires_at"));
  CHECK_FALSE(has_index(raw.get(), "ix_job_pending_starts_at"));
  // "A failure leaves the file as it was": the journal mode included.
  CHECK(query_text(raw.get(), "PRAGMA journal_mode") == "delete");
  raw.reset();
  const Snapshot after = snapshot(file.path());
  CHECK(after.schema_rows == before.schema_rows);
  CHECK((after.bytes == before.bytes));
}

// ---- Several processes ---------------------------------------------------------------------

TEST_CASE("a version-0 WAL file opened by eight processes at once is migrated exactly once",
          "[migrations][processes]") {
  check_concurrent_upgrade(true);
}

TEST_CASE(
    "a version-0 rollback-journal file opened by eight processes at once is migrated exactly "
    "once",
    "[migrations][processes]") {
  check_concurrent_upgrade(false);
}

TEST_CASE("opening a rollback-journal file whose write lock another connection holds waits for it",
          "[migrations][processes]") {
  // What the eight processes above race into, made deterministic: the switch to WAL must
  // wait for the busy timeout like every other step, not fail at once.
  TempFile file("migrate-wait-for-lock");
  const Fixture fixture = write_fixture(file.path(), 1, false);
  auto holder = open_raw(file.path());
  exec_raw(holder.get(), "BEGIN IMMEDIATE; UPDATE job SET data = data WHERE id = 1");
  jobsched_test::BoundedThread release([db = holder.get()] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    exec_raw(db, "COMMIT");
  });
  const auto started = std::chrono::steady_clock::now();
  std::optional<std::string> busy;
  std::optional<int> migrated_from;
  try {
    auto scheduler = jobsched::Scheduler::open(file.path(), pinned_options());
    migrated_from = scheduler.migrated_from();
  } catch (const jobsched::BusyError& error) {
    busy = error.what();
  }
  const double waited_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  release.join(jobsched_test::Deadline(std::chrono::seconds(10), "the lock holder to commit"));
  INFO("waited " << waited_ms << " ms; busy error: " << busy.value_or("none"));
  CHECK_FALSE(busy.has_value());
  CHECK(migrated_from == std::optional<int>(1));
  auto scheduler = jobsched::Scheduler::open(file.path(), pinned_options());
  check_jobs_survived(scheduler, fixture);
  check_current_schema(scheduler.handle());
}

// ---- Adopted handles -----------------------------------------------------------------------

TEST_CASE("an adopted borrowed handle on a version-2 file is migrated and stays usable",
          "[migrations][adopt]") {
  TempFile file("migrate-adopt-borrowed");
  const Fixture fixture = write_fixture(file.path(), 2);
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open(file.path().c_str(), &raw) == SQLITE_OK);
  {
    auto scheduler =
        jobsched::Scheduler::adopt(raw, jobsched::Ownership::borrowed, pinned_options());
    REQUIRE(scheduler.migrated_from().has_value());
    CHECK(*scheduler.migrated_from() == 2);
    CHECK(scheduler.handle() == raw);
    check_jobs_survived(scheduler, fixture);
    CHECK(scheduler.count_pending_jobs() == 5);
  }
  // The scheduler is gone; the host's handle is open and works.
  check_current_schema(raw);
  exec_raw(raw, "INSERT INTO job (data, created_at, starts_at) VALUES ('host', 1, 2)");
  CHECK(sqlite3_last_insert_rowid(raw) == fixture.max_id_ever + 1);
  CHECK(query_int(raw, "SELECT count(*) FROM job") ==
        static_cast<long long>(fixture.jobs.size() + 1));
  // The scheduler finalized every statement it prepared, so a plain close succeeds.
  CHECK(sqlite3_close(raw) == SQLITE_OK);
}

TEST_CASE("a migration inside the host's open transaction is undone by the host's ROLLBACK",
          "[migrations][adopt]") {
  TempFile file("migrate-adopt-rollback");
  const Fixture fixture = write_fixture(file.path(), 2);
  auto owner = open_raw(file.path());
  sqlite3* raw = owner.get();
  exec_raw(raw, "BEGIN");
  {
    auto scheduler =
        jobsched::Scheduler::adopt(raw, jobsched::Ownership::borrowed, pinned_options());
    REQUIRE(scheduler.migrated_from().has_value());
    CHECK(*scheduler.migrated_from() == 2);
    // Migrated inside the host's transaction, which is still open.
    CHECK(sqlite3_get_autocommit(raw) == 0);
    CHECK(version_row(raw) == "integer:" + std::to_string(jobsched::current_schema_version));
    CHECK(has_index(raw, "ix_job_start_order"));
    CHECK_FALSE(has_index(raw, "ix_job_completed_at_expires_at"));
    // Another connection still sees version 2: nothing is committed.
    {
      auto other = open_raw(file.path());
      CHECK(version_row(other.get()) == "integer:2");
    }
    exec_raw(raw, "ROLLBACK");
    CHECK(sqlite3_get_autocommit(raw) != 0);
  }
  CHECK(version_row(raw) == "integer:2");
  CHECK(has_index(raw, "ix_job_completed_at_expires_at"));
  CHECK_FALSE(has_index(raw, "ix_job_pending_starts_at"));
  CHECK_FALSE(has_index(raw, "ix_job_pending_expires_at"));
  CHECK(query_int(raw, "SELECT count(*) FROM job") == static_cast<long long>(fixture.jobs.size()));
  owner.reset();
  // Opened again outside any transaction, it migrates from 2 once more.
  auto scheduler = jobsched::Scheduler::open(file.path(), pinned_options());
  REQUIRE(scheduler.migrated_from().has_value());
  CHECK(*scheduler.migrated_from() == 2);
  check_jobs_survived(scheduler, fixture);
}

}  // namespace test_migrations
