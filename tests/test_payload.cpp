// SPDX-License-Identifier: MIT
// Payloads: arbitrary bytes round-trip exactly, NULL is not empty, and the storage classes
// the Python programs wrote (TEXT, INTEGER, REAL) are kept.

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_payload {

namespace {

using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::StorageClass;
using jobsched_test::TempFile;

/// How SQLite stored one job's data: its typeof() and its length in bytes (-1 for NULL).
struct Stored {
  std::string type;
  long long bytes = -1;
};

Stored stored_data(sqlite3* db, std::int64_t id) {
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db,
                             "SELECT typeof(data), coalesce(length(CAST(data AS BLOB)), -1)"
                             " FROM job_payload WHERE job_id = ?1"
                             " UNION ALL SELECT 'null', -1 WHERE NOT EXISTS"
                             " (SELECT 1 FROM job_payload WHERE job_id = ?1)",
                             -1, &stmt, nullptr) == SQLITE_OK);
  sqlite3_bind_int64(stmt, 1, id);
  Stored result;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    result.type = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    result.bytes = sqlite3_column_int64(stmt, 1);
  }
  sqlite3_finalize(stmt);
  return result;
}

std::string all_byte_values() {
  std::string bytes;
  for (int value = 0; value < 256; ++value)
    bytes.push_back(static_cast<char>(value));
  return bytes;
}

/// Checks that `got` is `expected`, field by field, so that a failure says which part differs.
void check_same_payload(const Payload& got, const Payload& expected) {
  CHECK(got.storage_class() == expected.storage_class());
  CHECK(got.is_null() == expected.is_null());
  CHECK(got.bytes().size() == expected.bytes().size());
  CHECK(bool(got.bytes() == expected.bytes()));
  CHECK(got.as_integer() == expected.as_integer());
  CHECK(got.as_real() == expected.as_real());
  CHECK(bool(got == expected));
}

/// Adds `payload` on a fresh database at `path` and reads it back through the job add_job
/// returns, get_job and next_job; for a file, again through a new scheduler, so the bytes
/// really come from disk. Checks how SQLite stored it: `type` and `bytes` as typeof() and
/// length.
void check_round_trip(const std::string& path, const Payload& payload, const std::string& type,
                      long long bytes) {
  INFO("database: " << path << ", expected storage: " << type << " of " << bytes << " bytes");
  std::int64_t id = 0;
  {
    Scheduler scheduler = Scheduler::open(path);
    const jobsched::Job added = scheduler.add_job(payload);
    id = added.id;
    REQUIRE(id == 1);
    check_same_payload(added.data, payload);

    const std::optional<jobsched::Job> got = scheduler.get_job(id);
    REQUIRE(got.has_value());
    check_same_payload(got->data, payload);

    const std::optional<jobsched::Job> next = scheduler.next_job();
    REQUIRE(next.has_value());
    REQUIRE(next->id == id);
    check_same_payload(next->data, payload);

    const Stored raw = stored_data(scheduler.handle(), id);
    CHECK(raw.type == type);
    CHECK(raw.bytes == bytes);
  }
  if (path == ":memory:")
    return;

  Scheduler reopened = Scheduler::open(path);
  const std::optional<jobsched::Job> got = reopened.get_job(id);
  REQUIRE(got.has_value());
  check_same_payload(got->data, payload);
  const std::optional<jobsched::Job> next = reopened.next_job();
  REQUIRE(next.has_value());
  REQUIRE(next->id == id);
  check_same_payload(next->data, payload);
  const Stored raw = stored_data(reopened.handle(), id);
  CHECK(raw.type == type);
  CHECK(raw.bytes == bytes);
}

/// Runs check_round_trip on a new file and on ":memory:".
void check_round_trip_everywhere(const std::string& name, const Payload& payload,
                                 const std::string& type, long long bytes) {
  TempFile file(name);
  check_round_trip(file.path(), payload, type, bytes);
  check_round_trip(":memory:", payload, type, bytes);
}

}  // namespace

TEST_CASE("An empty payload is stored as a zero-length blob, not as NULL", "[payload]") {
  const Payload empty{std::string()};
  REQUIRE(empty.storage_class() == StorageClass::blob);
  REQUIRE_FALSE(empty.is_null());
  check_round_trip_everywhere("payload-empty", empty, "blob", 0);
  check_round_trip_everywhere("payload-empty-literal", Payload(""), "blob", 0);
}

TEST_CASE("A payload with NUL bytes inside and at both ends round-trips exactly", "[payload]") {
  const std::string bytes("\0a\0\0b\0", 6);
  REQUIRE(bytes.size() == 6);
  check_round_trip_everywhere("payload-nul", Payload(bytes), "blob", 6);
  check_round_trip_everywhere("payload-only-nul", Payload(std::string(1, '\0')), "blob", 1);
  check_round_trip_everywhere("payload-blob-helper", Payload::blob(bytes.data(), bytes.size()),
                              "blob", 6);
}

TEST_CASE("A payload holding all 256 byte values round-trips exactly", "[payload]") {
  const std::string bytes = all_byte_values() + all_byte_values();
  REQUIRE(bytes.size() == 512);
  check_round_trip_everywhere("payload-256", Payload(bytes), "blob", 512);
}

TEST_CASE("A 16 MiB payload round-trips exactly", "[payload]") {
  std::string bytes(16u * 1024u * 1024u, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  check_round_trip_everywhere("payload-16mib", Payload(bytes), "blob", 16 * 1024 * 1024);
}

TEST_CASE("A NULL payload is stored as NULL and is distinct from an empty payload", "[payload]") {
  const Payload null_payload{};
  REQUIRE(null_payload.is_null());
  REQUIRE(null_payload.storage_class() == StorageClass::null);
  REQUIRE(Payload(nullptr).is_null());
  REQUIRE(Payload(static_cast<const char*>(nullptr)).is_null());
  REQUIRE(null_payload != Payload(""));

  check_round_trip_everywhere("payload-null", null_payload, "null", -1);
  check_round_trip_everywhere("payload-nullptr", Payload(nullptr), "null", -1);

  // Both side by side in one file: each keeps its own identity.
  TempFile file("payload-null-vs-empty");
  std::int64_t null_id = 0;
  std::int64_t empty_id = 0;
  {
    Scheduler scheduler = Scheduler::open(file.path());
    null_id = scheduler.add_job(nullptr).id;
    empty_id = scheduler.add_job(Payload("")).id;
  }
  Scheduler scheduler = Scheduler::open(file.path());
  const auto null_job = scheduler.get_job(null_id);
  const auto empty_job = scheduler.get_job(empty_id);
  REQUIRE(null_job.has_value());
  REQUIRE(empty_job.has_value());
  CHECK(null_job->data.is_null());
  CHECK_FALSE(empty_job->data.is_null());
  CHECK(empty_job->data.storage_class() == StorageClass::blob);
  CHECK(null_job->data != empty_job->data);
  CHECK(stored_data(scheduler.handle(), null_id).type == "null");
  CHECK(stored_data(scheduler.handle(), empty_id).type == "blob");
}

TEST_CASE("Text payloads are stored as TEXT and read back as text", "[payload]") {
  const Payload hello = Payload::text("h\xc3\xa9llo");
  REQUIRE(hello.storage_class() == StorageClass::text);
  REQUIRE(hello.bytes() == "h\xc3\xa9llo");
  check_round_trip_everywhere("payload-text", hello, "text", 6);
  check_round_trip_everywhere("payload-text-empty", Payload::text(""), "text", 0);
  check_round_trip_everywhere("payload-text-nul", Payload::text(std::string("a\0b", 3)), "text", 3);
}

TEST_CASE("Integer payloads are stored as INTEGER and keep their value, INT64 limits included",
          "[payload]") {
  const std::int64_t values[] = {0,
                                 1,
                                 -1,
                                 42,
                                 std::numeric_limits<std::int64_t>::min(),
                                 std::numeric_limits<std::int64_t>::max()};
  for (const std::int64_t value : values) {
    INFO("integer " << value);
    const Payload payload = Payload::integer(value);
    REQUIRE(payload.storage_class() == StorageClass::integer);
    REQUIRE(payload.as_integer() == value);
    REQUIRE_FALSE(payload.as_real().has_value());
    // length(CAST(x AS BLOB)) of an integer is the length of its decimal text.
    check_round_trip_everywhere("payload-integer", payload, "integer",
                                static_cast<long long>(std::to_string(value).size()));
  }
}

TEST_CASE("Real payloads are stored as REAL and keep their exact value", "[payload]") {
  const double values[] = {1.5,
                           -0.25,
                           3.0,
                           1e308,
                           5e-324,
                           0.1,
                           -0.0,
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
  for (const double value : values) {
    INFO("real " << value);
    const Payload payload = Payload::real(value);
    REQUIRE(payload.storage_class() == StorageClass::real);
    REQUIRE(payload.as_real() == value);
    REQUIRE_FALSE(payload.as_integer().has_value());

    TempFile file("payload-real");
    for (const std::string& path : {file.path(), std::string(":memory:")}) {
      INFO("database: " << path);
      std::int64_t id = 0;
      {
        Scheduler scheduler = Scheduler::open(path);
        id = scheduler.add_job(payload).id;
        CHECK(stored_data(scheduler.handle(), id).type == "real");
        const auto got = scheduler.get_job(id);
        REQUIRE(got.has_value());
        CHECK(got->data.storage_class() == StorageClass::real);
        CHECK(got->data.as_real() == value);
        CHECK(std::signbit(*got->data.as_real()) == std::signbit(value));
        CHECK(got->data == payload);
      }
      if (path == ":memory:")
        continue;
      Scheduler reopened = Scheduler::open(path);
      const auto got = reopened.next_job();
      REQUIRE(got.has_value());
      CHECK(got->data.storage_class() == StorageClass::real);
      CHECK(got->data.as_real() == value);
      CHECK(std::signbit(*got->data.as_real()) == std::signbit(value));
      CHECK(got->data == payload);
    }
  }
}

// SQLite cannot store a NaN REAL (it binds it as NULL), so add_job refuses it before any SQL
// rather than turn it silently into the NULL payload.
TEST_CASE("a REAL NaN payload is refused before any SQL, not turned into NULL", "[payload]") {
  const Payload nan_payload = Payload::real(std::numeric_limits<double>::quiet_NaN());
  TempFile file("payload-real-nan");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    Scheduler scheduler = Scheduler::open(path);
    try {
      scheduler.add_job(nan_payload);
      FAIL("add_job accepted a NaN REAL payload");
    } catch (const jobsched::InvalidArgumentError& error) {
      CHECK(error.code() == SQLITE_MISUSE);
      CHECK(std::string(error.what()).find("NaN") != std::string::npos);
    }
    CHECK(jobsched_test::query_int(scheduler.handle(), "SELECT count(*) FROM job") == 0);
    CHECK(scheduler.add_job(Payload::real(1.5)).id == 1);
  }
}

TEST_CASE(
    "Rows the Python programs wrote with TEXT, INTEGER, REAL, BLOB or NULL data are read "
    "with their storage class",
    "[payload]") {
  struct Row {
    const char* literal;
    Payload expected;
  };
  const std::vector<Row> rows = {
      {"'hello'", Payload::text("hello")},
      {"CAST(X'610062' AS TEXT)", Payload::text(std::string("a\0b", 3))},
      {"''", Payload::text("")},
      {"42", Payload::integer(42)},
      {"-9223372036854775808", Payload::integer(std::numeric_limits<std::int64_t>::min())},
      {"9223372036854775807", Payload::integer(std::numeric_limits<std::int64_t>::max())},
      {"2.5", Payload::real(2.5)},
      {"-1e300", Payload::real(-1e300)},
      {"X''", Payload("")},
      {"X'00FF00'", Payload(std::string("\0\xff\0", 3))},
      {"NULL", Payload()},
  };

  TempFile file("payload-python-rows");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    Scheduler scheduler = Scheduler::open(path);
    {
      // For the file, a separate raw connection writes, as the Python programs did.
      jobsched_test::RawDb raw;
      sqlite3* db = scheduler.handle();
      if (path != ":memory:") {
        raw = jobsched_test::open_raw(path);
        db = raw.get();
      }
      for (const Row& row : rows) {
        jobsched_test::exec_raw(db, std::string("INSERT INTO job (data, created_at, starts_at)"
                                                " VALUES (") +
                                        row.literal + ", 100, 100)");
      }
    }
    std::vector<Scheduler> readers;
    readers.push_back(std::move(scheduler));
    if (path != ":memory:")
      readers.push_back(Scheduler::open(path));
    for (Scheduler& reader : readers) {
      for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO("row " << i + 1 << " written as " << rows[i].literal);
        const auto id = static_cast<std::int64_t>(i + 1);
        const auto job = reader.get_job(id);
        REQUIRE(job.has_value());
        check_same_payload(job->data, rows[i].expected);
      }
      // next_job reads the same rows (all start at 100, so in id order).
      for (std::size_t i = 0; i < rows.size(); ++i) {
        INFO("next job, row " << i + 1 << " written as " << rows[i].literal);
        const auto job = reader.lock_next_job(jobsched_test::at(200));
        REQUIRE(job.has_value());
        CHECK(job->id == static_cast<std::int64_t>(i + 1));
        check_same_payload(job->data, rows[i].expected);
      }
      CHECK_FALSE(reader.next_job(jobsched_test::at(200)).has_value());
      for (std::size_t i = 0; i < rows.size(); ++i) {
        CHECK(reader.unlock_job(static_cast<std::int64_t>(i + 1)));
      }
      const auto first = reader.next_job(jobsched_test::at(200));
      REQUIRE(first.has_value());
      CHECK(first->id == 1);
      check_same_payload(first->data, rows[0].expected);
    }
  }
}

TEST_CASE("Payload equality compares storage class as well as content", "[payload]") {
  CHECK(Payload("a") != Payload::text("a"));
  CHECK(Payload::text("a") == Payload::text("a"));
  CHECK(Payload("a") == Payload(std::string("a")));
  CHECK(Payload("a") == Payload(std::string_view("a")));
  CHECK(Payload("a") == Payload::blob("a", 1));
  CHECK(Payload("a") != Payload("b"));
  CHECK(Payload() != Payload(""));
  CHECK(Payload() == Payload(nullptr));
  CHECK(Payload("") != Payload::text(""));
  CHECK(Payload::integer(1) != Payload::real(1.0));
  CHECK(Payload::integer(0) != Payload());
  CHECK(Payload::real(0.0) != Payload());
  CHECK(Payload::integer(7) == Payload::integer(7));
  CHECK(Payload::integer(7) != Payload::integer(8));
  CHECK(Payload::real(0.5) == Payload::real(0.5));
  CHECK(Payload::real(0.5) != Payload::real(0.25));
  CHECK(Payload::text("1") != Payload::integer(1));
  // A C string stops at its first NUL; the std::string keeps every byte.
  CHECK(Payload(std::string("a\0b", 3)) != Payload("a\0b"));
  CHECK(Payload("a\0b").bytes().size() == 1);
  CHECK(Payload(std::string("a\0b", 3)).bytes().size() == 3);

  SECTION("and so do payloads read back from the database") {
    TempFile file("payload-equality");
    for (const std::string& path : {file.path(), std::string(":memory:")}) {
      INFO("database: " << path);
      Scheduler scheduler = Scheduler::open(path);
      const auto blob_id = scheduler.add_job(Payload("a")).id;
      const auto text_id = scheduler.add_job(Payload::text("a")).id;
      const auto blob = scheduler.get_job(blob_id);
      const auto text = scheduler.get_job(text_id);
      REQUIRE(blob.has_value());
      REQUIRE(text.has_value());
      CHECK(blob->data.bytes() == text->data.bytes());
      CHECK(blob->data != text->data);
      CHECK(blob->data == Payload("a"));
      CHECK(text->data == Payload::text("a"));
    }
  }
}

TEST_CASE("a payload left by a job deleted by hand never shows in a new job under its id") {
  jobsched_test::TempFile file("payload-orphan");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    Scheduler scheduler = Scheduler::open(path);
    scheduler.add_job("old one");
    scheduler.add_job(jobsched::Payload("old two"));
    // A host empties the table by hand, ids and all, and leaves the payloads behind.
    jobsched_test::exec_raw(scheduler.handle(),
                            "DELETE FROM job; DELETE FROM sqlite_sequence WHERE name = 'job'");
    const jobsched::Job with_data = scheduler.add_job("new one");
    const jobsched::Job without_data = scheduler.add_job(jobsched::Payload());
    CHECK(with_data.id == 1);
    CHECK(without_data.id == 2);
    CHECK(scheduler.get_job(1)->data == jobsched::Payload("new one"));
    CHECK(scheduler.get_job(2)->data.is_null());
    // The same through add_jobs, whose jobs go in many to a statement.
    for (int i = 0; i < 40; ++i)
      scheduler.add_job(jobsched::Payload("old " + std::to_string(i)));
    jobsched_test::exec_raw(scheduler.handle(),
                            "DELETE FROM job; DELETE FROM sqlite_sequence WHERE name = 'job'");
    std::vector<jobsched::NewJob> jobs(40);
    for (std::size_t i = 0; i < jobs.size(); i += 2)
      jobs[i].data = jobsched::Payload("new " + std::to_string(i));
    const std::vector<jobsched::Job> added = scheduler.add_jobs(jobs);
    REQUIRE(added.size() == 40);
    for (std::size_t i = 0; i < added.size(); ++i) {
      CAPTURE(i);
      CHECK(added[i].id == static_cast<std::int64_t>(i) + 1);
      CHECK(scheduler.get_job(added[i].id)->data == jobs[i].data);
    }
  }
}

}  // namespace test_payload
