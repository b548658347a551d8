// SPDX-License-Identifier: MIT
// Bad times are refused with InvalidArgumentError before any SQL runs, with a message that
// names the values, and leave the database exactly as it was; boundary times are accepted.

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_validation {

namespace {

using jobsched::InvalidArgumentError;
using jobsched::JobOptions;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::PinnedClock;
using jobsched_test::query_int;
using jobsched_test::TempFile;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using Action = std::function<void(Scheduler&)>;

JobOptions times(std::optional<double> created, std::optional<double> starts,
                 std::optional<double> expires = std::nullopt) {
  JobOptions options;
  if (created)
    options.created_at = at(*created);
  if (starts)
    options.starts_at = at(*starts);
  if (expires)
    options.expires_at = at(*expires);
  return options;
}

/// Runs `action`, which must throw InvalidArgumentError with code SQLITE_MISUSE, no SQL, and
/// a message containing every one of `fragments`.
void check_refused(Scheduler& scheduler, const Action& action,
                   const std::vector<std::string>& fragments) {
  bool thrown = false;
  try {
    action(scheduler);
  } catch (const InvalidArgumentError& error) {
    thrown = true;
    const std::string message = error.what();
    INFO("message: " << message);
    CHECK(error.code() == SQLITE_MISUSE);
    CHECK(error.extended_code() == SQLITE_MISUSE);
    CHECK(error.sql().empty());
    for (const std::string& fragment : fragments) {
      INFO("expected in the message: " << fragment);
      CHECK(message.find(fragment) != std::string::npos);
    }
  }
  REQUIRE(thrown);
}

long long job_count(sqlite3* db) {
  return query_int(db, "SELECT count(*) FROM job");
}
long long job_sequence(sqlite3* db) {
  return query_int(db, "SELECT seq FROM sqlite_sequence WHERE name = 'job'");
}

/// Holds the fixture every refusal runs against: two jobs (one completed, one pending and
/// locked), a pinned clock at 1,000,000,000 s. Checks that a refused action changes nothing:
/// the job count, the AUTOINCREMENT sequence, every job, and (for a file, after closing)
/// every byte of the file.
void check_refused_everywhere(const std::string& name, const Action& action,
                              const std::vector<std::string>& fragments) {
  PinnedClock clock;
  clock.set(1'000'000'000.0);
  TempFile file(name);
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    const bool is_file = path != ":memory:";
    std::optional<Scheduler> memory_scheduler;
    std::vector<jobsched::Job> jobs_before;
    {
      Scheduler scheduler = Scheduler::open(path, clock.options());
      const auto first = scheduler.add_job("first", times(10, 20, 30));
      const auto second = scheduler.add_job("second", times(10, 20));
      REQUIRE(scheduler.complete_job(first.id, at(25)));
      REQUIRE(scheduler.lock_job(second.id, at(26)));
      jobs_before = {*scheduler.get_job(first.id), *scheduler.get_job(second.id)};
      if (!is_file)
        memory_scheduler.emplace(std::move(scheduler));
    }
    const std::string bytes_before = is_file ? jobsched_test::read_bytes(path) : std::string();
    if (is_file)
      REQUIRE(bytes_before.size() > 0);

    {
      std::optional<Scheduler> reopened;
      if (is_file)
        reopened.emplace(Scheduler::open(path, clock.options()));
      Scheduler& scheduler = is_file ? *reopened : *memory_scheduler;
      REQUIRE(job_count(scheduler.handle()) == 2);
      REQUIRE(job_sequence(scheduler.handle()) == 2);

      check_refused(scheduler, action, fragments);

      CHECK(job_count(scheduler.handle()) == 2);
      CHECK(job_sequence(scheduler.handle()) == 2);
      CHECK(sqlite3_get_autocommit(scheduler.handle()) != 0);
      for (const jobsched::Job& before : jobs_before) {
        const auto after = scheduler.get_job(before.id);
        REQUIRE(after.has_value());
        CHECK(*after == before);
      }
    }
    if (is_file)
      CHECK(jobsched_test::read_bytes(path) == bytes_before);

    // The scheduler still works after the refusal, and the refused job took no id.
    std::optional<Scheduler> reopened;
    if (is_file)
      reopened.emplace(Scheduler::open(path, clock.options()));
    Scheduler& scheduler = is_file ? *reopened : *memory_scheduler;
    const auto added = scheduler.add_job("after", times(40, 50));
    CHECK(added.id == 3);
    CHECK(job_count(scheduler.handle()) == 3);
  }
}

}  // namespace

TEST_CASE("add_job refuses created_at after starts_at and names both values", "[validation]") {
  check_refused_everywhere(
      "validation-created-after-starts", [](Scheduler& s) { s.add_job("x", times(10, 5)); },
      {"created_at 1970-01-01T00:00:10Z (10)", "starts_at 1970-01-01T00:00:05Z (5)"});
  check_refused_everywhere("validation-created-after-starts-fraction",
                           [](Scheduler& s) { s.add_job("x", times(1700000000.5, 1700000000.25)); },
                           {"created_at 2023-11-14T22:13:20.5Z (1700000000.5)",
                            "starts_at 2023-11-14T22:13:20.25Z (1700000000.25)"});
  // Without created_at, it defaults to now (1,000,000,000 on the pinned clock), so a
  // starts_at in the past is refused.
  check_refused_everywhere(
      "validation-default-created-after-starts",
      [](Scheduler& s) { s.add_job("x", times(std::nullopt, 100)); },
      {"created_at 2001-09-09T01:46:40Z (1000000000)", "starts_at 1970-01-01T00:01:40Z (100)"});
  check_refused_everywhere(
      "validation-negative-created-after-starts",
      [](Scheduler& s) { s.add_job("x", times(-5, -10)); },
      {"created_at 1969-12-31T23:59:55Z (-5)", "starts_at 1969-12-31T23:59:50Z (-10)"});
}

TEST_CASE("add_job refuses starts_at after expires_at and names both values", "[validation]") {
  check_refused_everywhere(
      "validation-starts-after-expires", [](Scheduler& s) { s.add_job("x", times(1, 5, 4)); },
      {"starts_at 1970-01-01T00:00:05Z (5)", "expires_at 1970-01-01T00:00:04Z (4)"});
  // starts_at defaults to created_at, which defaults to now.
  check_refused_everywhere(
      "validation-default-starts-after-expires",
      [](Scheduler& s) { s.add_job("x", times(std::nullopt, std::nullopt, 999999999.5)); },
      {"starts_at 2001-09-09T01:46:40Z (1000000000)",
       "expires_at 2001-09-09T01:46:39.5Z (999999999.5)"});
  check_refused_everywhere(
      "validation-created-starts-after-expires",
      [](Scheduler& s) { s.add_job(nullptr, times(7, std::nullopt, 6)); },
      {"starts_at 1970-01-01T00:00:07Z (7)", "expires_at 1970-01-01T00:00:06Z (6)"});
}

TEST_CASE(
    "add_job refuses NaN and infinite times for each of created_at, starts_at and "
    "expires_at",
    "[validation]") {
  struct Bad {
    const char* name;
    double value;
    const char* shown;
  };
  const Bad bad_values[] = {
      {"nan", kNan, "got nan"}, {"inf", kInf, "got inf"}, {"-inf", -kInf, "got -inf"}};
  for (const Bad& bad : bad_values) {
    INFO("value: " << bad.name);
    const double value = bad.value;
    check_refused_everywhere("validation-created-nonfinite",
                             [value](Scheduler& s) { s.add_job("x", times(value, 5)); },
                             {"created_at", bad.shown});
    check_refused_everywhere("validation-created-only-nonfinite",
                             [value](Scheduler& s) { s.add_job("x", times(value, std::nullopt)); },
                             {"created_at", bad.shown});
    check_refused_everywhere("validation-starts-nonfinite",
                             [value](Scheduler& s) { s.add_job("x", times(5, value)); },
                             {"starts_at", bad.shown});
    check_refused_everywhere("validation-expires-nonfinite",
                             [value](Scheduler& s) { s.add_job("x", times(5, 6, value)); },
                             {"expires_at", bad.shown});
    check_refused_everywhere("validation-all-nonfinite",
                             [value](Scheduler& s) { s.add_job("x", times(value, value, value)); },
                             {bad.shown});
  }
}

TEST_CASE("A clock that returns NaN is refused wherever its time would be used", "[validation]") {
  TempFile file("validation-nan-clock");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    jobsched::Options options;
    options.clock = [] { return at(kNan); };
    Scheduler scheduler = Scheduler::open(path, options);
    const auto job = scheduler.add_job("x", times(1, 2));
    check_refused(scheduler, [](Scheduler& s) { s.add_job("y"); }, {"created_at", "nan"});
    check_refused(scheduler, [](Scheduler& s) { s.next_job(); }, {"now", "nan"});
    check_refused(scheduler, [](Scheduler& s) { s.count_pending_jobs(); }, {"now", "nan"});
    check_refused(scheduler, [&](Scheduler& s) { s.complete_job(job.id); },
                  {"completed_at", "nan"});
    CHECK(job_count(scheduler.handle()) == 1);
    check_refused(scheduler, [&](Scheduler& s) { s.get_job(job.id); }, {"now", "nan"});
    const auto stored = scheduler.get_job(job.id, at(3));
    REQUIRE(stored.has_value());
    CHECK_FALSE(stored->completed_at.has_value());
    CHECK(scheduler.count_pending_jobs(at(3)) == 1);
  }
}

TEST_CASE("add_job_from_now refuses negative, NaN and infinite durations and names them",
          "[validation]") {
  check_refused_everywhere("validation-from-now-negative-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{-1}); },
                           {"starts_after", "-1 s"});
  check_refused_everywhere("validation-from-now-tiny-negative-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{-0.5}); },
                           {"starts_after", "-0.5 s"});
  check_refused_everywhere("validation-from-now-nan-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{kNan}); },
                           {"starts_after", "nan"});
  check_refused_everywhere("validation-from-now-inf-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{kInf}); },
                           {"starts_after", "got inf"});
  check_refused_everywhere("validation-from-now-minus-inf-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{-kInf}); },
                           {"starts_after", "-inf"});
  check_refused_everywhere("validation-from-now-negative-expiry",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{0}, Seconds{-2}); },
                           {"expires_after", "-2 s"});
  check_refused_everywhere("validation-from-now-nan-expiry",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{0}, Seconds{kNan}); },
                           {"expires_after", "nan"});
  check_refused_everywhere("validation-from-now-inf-expiry",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{0}, Seconds{kInf}); },
                           {"expires_after", "got inf"});
  check_refused_everywhere(
      "validation-from-now-nan-created",
      [](Scheduler& s) { s.add_job_from_now("x", Seconds{1}, std::nullopt, at(kNan)); },
      {"created_at", "nan"});
}

TEST_CASE("add_job_from_now refuses an expiry before the start and names both times",
          "[validation]") {
  // On the pinned clock (1,000,000,000): starts 10 s from now, expires 5 s from now.
  check_refused_everywhere("validation-from-now-expiry-before-start",
                           [](Scheduler& s) { s.add_job_from_now("x", Seconds{10}, Seconds{5}); },
                           {"starts_at 2001-09-09T01:46:50Z (1000000010)",
                            "expires_at 2001-09-09T01:46:45Z (1000000005)"});
  check_refused_everywhere(
      "validation-from-now-expiry-before-start-created",
      [](Scheduler& s) { s.add_job_from_now("x", Seconds{3}, Seconds{1}, at(100)); },
      {"starts_at 1970-01-01T00:01:43Z (103)", "expires_at 1970-01-01T00:01:41Z (101)"});
}

TEST_CASE("Calls that take now refuse NaN and infinite times before touching the database",
          "[validation]") {
  struct Bad {
    double value;
    const char* shown;
  };
  const Bad bad_values[] = {{kNan, "got nan"}, {kInf, "got inf"}, {-kInf, "got -inf"}};
  for (const Bad& bad_value : bad_values) {
    const double bad = bad_value.value;
    const std::string shown = bad_value.shown;
    INFO("now: " << shown);
    check_refused_everywhere("validation-next-job-now",
                             [bad](Scheduler& s) { s.next_job(at(bad)); }, {"now", shown});
    check_refused_everywhere("validation-count-now",
                             [bad](Scheduler& s) { s.count_pending_jobs(at(bad)); },
                             {"now", shown});
    check_refused_everywhere("validation-delete-expired-now",
                             [bad](Scheduler& s) { s.delete_expired_jobs(at(bad)); },
                             {"now", shown});
    check_refused_everywhere("validation-lock-job-now",
                             [bad](Scheduler& s) { s.lock_job(2, at(bad)); }, {"now", shown});
    check_refused_everywhere("validation-lock-next-now",
                             [bad](Scheduler& s) { s.lock_next_job(at(bad)); }, {"now", shown});
    check_refused_everywhere("validation-seconds-until-now",
                             [bad](Scheduler& s) { s.seconds_until_next_job(at(bad)); },
                             {"now", shown});
  }
}

TEST_CASE("complete_job refuses a NaN or infinite completed_at and leaves the job pending",
          "[validation]") {
  check_refused_everywhere("validation-complete-nan",
                           [](Scheduler& s) { s.complete_job(2, at(kNan)); },
                           {"completed_at", "nan"});
  check_refused_everywhere("validation-complete-inf",
                           [](Scheduler& s) { s.complete_job(2, at(kInf)); },
                           {"completed_at", "got inf"});
  check_refused_everywhere("validation-complete-minus-inf",
                           [](Scheduler& s) { s.complete_job(2, at(-kInf)); },
                           {"completed_at", "-inf"});
}

TEST_CASE("A job whose created, start and expiry times are all equal is accepted", "[validation]") {
  TempFile file("validation-equal-times");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    std::int64_t id = 0;
    std::int64_t from_now_id = 0;
    {
      Scheduler scheduler = Scheduler::open(path);
      const auto job = scheduler.add_job("same", times(50, 50, 50));
      id = job.id;
      CHECK(job.created_at == at(50));
      CHECK(job.starts_at == at(50));
      CHECK(job.expires_at == at(50));

      const auto from_now = scheduler.add_job_from_now("zero", Seconds{0}, Seconds{0}, at(60));
      from_now_id = from_now.id;
      CHECK(from_now.created_at == at(60));
      CHECK(from_now.starts_at == at(60));
      CHECK(from_now.expires_at == at(60));

      // Pending strictly before its expiry, expired at it.
      CHECK(scheduler.count_pending_jobs(at(49.5)) == 2);
      CHECK(scheduler.count_pending_jobs(at(50)) == 1);
      if (path == ":memory:") {
        const auto next = scheduler.next_job(at(49.5));
        REQUIRE(next.has_value());
        CHECK(next->id == id);
      }
    }
    if (path == ":memory:")
      continue;
    Scheduler reopened = Scheduler::open(path);
    const auto job = reopened.get_job(id);
    REQUIRE(job.has_value());
    CHECK(job->created_at == at(50));
    CHECK(job->starts_at == at(50));
    CHECK(job->expires_at == at(50));
    const auto from_now = reopened.get_job(from_now_id);
    REQUIRE(from_now.has_value());
    CHECK(from_now->starts_at == at(60));
    CHECK(from_now->expires_at == at(60));
  }
}

TEST_CASE("Time 0 is a time, not a missing value", "[validation]") {
  TempFile file("validation-time-zero");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    PinnedClock clock;  // 1,700,000,000: far from 0, so a 0 replaced by now would show.
    Scheduler scheduler = Scheduler::open(path, clock.options());

    const auto both = scheduler.add_job("both zero", times(0, 0));
    CHECK(jobsched::to_unix_seconds(both.created_at) == 0.0);
    CHECK(jobsched::to_unix_seconds(both.starts_at) == 0.0);
    CHECK_FALSE(both.expires_at.has_value());

    // starts_at defaults to created_at, even when that is 0.
    const auto created_only = scheduler.add_job("created zero", times(0, std::nullopt));
    CHECK(jobsched::to_unix_seconds(created_only.starts_at) == 0.0);

    const auto expires_zero = scheduler.add_job("expires zero", times(-5, 0, 0));
    CHECK(expires_zero.expires_at == at(0));

    for (const auto id : {both.id, created_only.id, expires_zero.id}) {
      INFO("job " << id);
      const std::string where = " FROM job WHERE id = " + std::to_string(id);
      CHECK(query_int(scheduler.handle(), "SELECT typeof(created_at) = 'real'" + where) == 1);
      CHECK(query_int(scheduler.handle(), "SELECT starts_at = 0" + where) == 1);
    }
    CHECK(query_int(scheduler.handle(),
                    "SELECT created_at = 0 AND expires_at IS NULL FROM job WHERE id = " +
                        std::to_string(both.id)) == 1);
    CHECK(query_int(scheduler.handle(), "SELECT expires_at = 0 FROM job WHERE id = " +
                                            std::to_string(expires_zero.id)) == 1);

    const auto stored = scheduler.get_job(both.id);
    REQUIRE(stored.has_value());
    CHECK(*stored == both);

    // A clock at 0 gives created_at 0 too.
    clock.set(0);
    const auto from_clock = scheduler.add_job("clock zero");
    CHECK(jobsched::to_unix_seconds(from_clock.created_at) == 0.0);
    CHECK(jobsched::to_unix_seconds(from_clock.starts_at) == 0.0);
    CHECK(query_int(scheduler.handle(), "SELECT created_at = 0 FROM job WHERE id = " +
                                            std::to_string(from_clock.id)) == 1);

    // At now = 0 the job expiring at 0 has expired; the others are pending and due.
    CHECK(scheduler.count_pending_jobs(at(0)) == 3);
    const auto delay = scheduler.seconds_until_next_job(at(-1));
    REQUIRE(delay.has_value());
    CHECK(delay->id == both.id);
    CHECK(delay->delay == Seconds{1});
  }
}

TEST_CASE("Negative times before 1970 are accepted and read back exactly", "[validation]") {
  const double created = -10.0 * 365 * 86400;  // 1960
  const double starts = -1000.5;
  const double expires = -0.25;
  TempFile file("validation-negative-times");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    std::int64_t id = 0;
    {
      Scheduler scheduler = Scheduler::open(path);
      const auto job = scheduler.add_job("old", times(created, starts, expires));
      id = job.id;
      CHECK(job.created_at == at(created));
      CHECK(job.starts_at == at(starts));
      CHECK(job.expires_at == at(expires));

      const auto next = scheduler.next_job(at(-2000));
      REQUIRE(next.has_value());
      CHECK(*next == job);
      const auto delay = scheduler.seconds_until_next_job(at(-2000));
      REQUIRE(delay.has_value());
      CHECK(delay->id == id);
      CHECK(delay->delay == Seconds{999.5});
      CHECK(scheduler.count_pending_jobs(at(-0.5)) == 1);
      CHECK(scheduler.count_pending_jobs(at(-0.25)) == 0);

      const auto from_now = scheduler.add_job_from_now("older", Seconds{1.5}, Seconds{2}, at(-100));
      CHECK(from_now.starts_at == at(-98.5));
      CHECK(from_now.expires_at == at(-98));
      CHECK(scheduler.delete_job(from_now.id));
    }
    if (path == ":memory:")
      continue;
    Scheduler reopened = Scheduler::open(path);
    const auto job = reopened.get_job(id);
    REQUIRE(job.has_value());
    CHECK(jobsched::to_unix_seconds(job->created_at) == created);
    CHECK(jobsched::to_unix_seconds(job->starts_at) == starts);
    CHECK(job->expires_at == at(expires));
    CHECK(reopened.delete_expired_jobs(at(0)) == 1);
    CHECK_FALSE(reopened.get_job(id).has_value());
  }
}

TEST_CASE("Times in messages read as ISO 8601 UTC with their fraction, then the stored seconds",
          "[validation]") {
  using jobsched::detail::format_time;
  CHECK(format_time(0) == "1970-01-01T00:00:00Z (0)");
  CHECK(format_time(1700000000.25) == "2023-11-14T22:13:20.25Z (1700000000.25)");
  CHECK(format_time(-0.5) == "1969-12-31T23:59:59.5Z (-0.5)");
  CHECK(format_time(1709164800.000001) == "2024-02-29T00:00:00.000001Z (1709164800.000001)");
  CHECK(format_time(951782400) == "2000-02-29T00:00:00Z (951782400)");
  CHECK(format_time(-62135596800.0) == "0001-01-01T00:00:00Z (-62135596800)");
  CHECK(format_time(253402300799.0) == "9999-12-31T23:59:59Z (253402300799)");
  // Outside the years 1 to 9999 no calendar applies: only the seconds.
  CHECK(format_time(253402300800.0) == "253402300800");
  CHECK(format_time(1e300) == "1.0000000000000001e+300");
  CHECK(format_time(kNan) == "nan");
}

}  // namespace test_validation
