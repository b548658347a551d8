// SPDX-License-Identifier: MIT
// Recurrence rules in UTC and fixed offsets: interval rules that never drift, 5-field cron as
// crontab(5) documents it, the text form, and the refusals. Daylight saving is in
// test_time_zone.cpp.

#include <jobsched/rule.hpp>

#include <cmath>
#include <ctime>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/rule_checks.hpp"

namespace test_rule {

namespace {

using jobsched::InvalidArgumentError;
using jobsched::Rule;
using jobsched::Seconds;
using jobsched::TimePoint;
using jobsched::TimeZone;
using jobsched_test::check_contains;
using jobsched_test::expected;
using jobsched_test::firings;
using jobsched_test::iso;
using jobsched_test::refusal;
using jobsched_test::unix_seconds;
using jobsched_test::utc;

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();


}  // namespace

TEST_CASE("The tests' time helper reads ISO 8601 UTC times as Unix seconds", "[rule]") {
  CHECK(unix_seconds("2026-03-29T01:00:00Z") == 1774746000.0);
  CHECK(unix_seconds("1970-01-01T00:00:00.25Z") == 0.25);
  CHECK(unix_seconds("0001-01-01T00:00:00Z") == -62135596800.0);
  CHECK(unix_seconds("2104-02-29T00:00:00Z") == 4233686400.0);
}

// ---- Interval rules ------------------------------------------------------------------

TEST_CASE("An interval rule fires at its anchor plus whole multiples of its interval", "[rule]") {
  const Rule rule = Rule::every(Seconds{90});
  CHECK(rule.to_string() == "every 90 from 0");
  CHECK_FALSE(rule.is_cron());
  CHECK(rule.next_after(jobsched::from_unix_seconds(0)) == jobsched::from_unix_seconds(90));
  CHECK(rule.next_after(jobsched::from_unix_seconds(100)) == jobsched::from_unix_seconds(180));
  // Before the anchor too: k is negative there.
  CHECK(rule.next_after(jobsched::from_unix_seconds(-100)) == jobsched::from_unix_seconds(-90));
  CHECK(rule.next_after(jobsched::from_unix_seconds(-90.5)) == jobsched::from_unix_seconds(-90));

  const Rule anchored = Rule::every(Seconds{90}, jobsched::from_unix_seconds(1000));
  CHECK(anchored.to_string() == "every 90 from 1000");
  CHECK(anchored.next_after(jobsched::from_unix_seconds(0)) == jobsched::from_unix_seconds(10));
  CHECK(anchored.next_after(jobsched::from_unix_seconds(999.75)) ==
        jobsched::from_unix_seconds(1000));
}

TEST_CASE("An interval rule's next firing is strictly after the time it is asked about", "[rule]") {
  const Rule rule = Rule::every(Seconds{0.125}, jobsched::from_unix_seconds(1e9));
  // Exactly on a firing: the following one.
  CHECK(rule.next_after(jobsched::from_unix_seconds(1e9)) ==
        jobsched::from_unix_seconds(1e9 + 0.125));
  CHECK(rule.next_after(jobsched::from_unix_seconds(1e9 + 0.25)) ==
        jobsched::from_unix_seconds(1e9 + 0.375));
  // A fraction before and after one.
  CHECK(rule.next_after(jobsched::from_unix_seconds(1e9 + 0.2)) ==
        jobsched::from_unix_seconds(1e9 + 0.25));
  CHECK(rule.next_after(jobsched::from_unix_seconds(1e9 + 0.2500001)) ==
        jobsched::from_unix_seconds(1e9 + 0.375));

  // Where (after - anchor) / interval rounds below a whole k, or up to one, the first guess of
  // k is off by one; the answer is not.
  const auto at = [](double anchor, double k, double interval) {
    return jobsched::from_unix_seconds(anchor + k * interval);
  };
  const Rule tenths = Rule::every(Seconds{0.1});
  const Rule sevenths = Rule::every(Seconds{0.7});
  const Rule late = Rule::every(Seconds{0.1}, jobsched::from_unix_seconds(1700000000.25));
  for (const double k : {43.0, 81.0, 86.0}) {  // 43 * 0.1 / 0.1 < 43
    CHECK(tenths.next_after(at(0, k, 0.1)) == at(0, k + 1, 0.1));
  }
  CHECK(sevenths.next_after(at(0, 3, 0.7)) == at(0, 4, 0.7));
  for (const double k : {1.0, 3.0, 6.0})
    CHECK(late.next_after(at(1700000000.25, k, 0.1)) == at(1700000000.25, k + 1, 0.1));
  for (const double k : {17.0, 34.0, 39.0}) {  // just below 17 * 0.1, / 0.1 gives 17
    const double before = std::nextafter(0 + k * 0.1, 0.0);
    CHECK(tenths.next_after(jobsched::from_unix_seconds(before)) == at(0, k, 0.1));
  }
  CHECK(sevenths.next_after(jobsched::from_unix_seconds(std::nextafter(5 * 0.7, 0.0))) ==
        at(0, 5, 0.7));
}

TEST_CASE("An interval rule does not drift, however many intervals lie behind it", "[rule]") {
  SECTION("daily, from a time of day") {
    const Rule rule = Rule::every(Seconds{86400}, utc("2026-01-01T02:30:00Z"));
    CHECK(firings(rule, "2030-06-15T12:00:00Z", 2) ==
          expected({"2030-06-16T02:30:00Z", "2030-06-17T02:30:00Z"}));
    CHECK(firings(rule, "2030-06-16T02:30:00Z", 1) == expected({"2030-06-17T02:30:00Z"}));
    CHECK(firings(rule, "1900-03-01T02:29:59.5Z", 1) == expected({"1900-03-01T02:30:00Z"}));
  }
  SECTION("0.1 s, 17 billion intervals after its anchor") {
    const Rule rule = Rule::every(Seconds{0.1});
    const auto next = rule.next_after(jobsched::from_unix_seconds(1700000000.55));
    REQUIRE(next);
    // anchor + k * interval for k = 17,000,000,006: computed once, not summed up.
    CHECK(jobsched::to_unix_seconds(*next) == 17000000006.0 * 0.1);
    CHECK(std::fabs(jobsched::to_unix_seconds(*next) - 1700000000.6) < 1e-6);
    TimePoint time = *next;
    for (double k = 17000000007.0; k < 17000001007.0; k += 1) {
      const auto following = rule.next_after(time);
      REQUIRE(following);
      REQUIRE(jobsched::to_unix_seconds(*following) == k * 0.1);
      time = *following;
    }
  }
  SECTION("1 ms, near the end of the year 9999, where a double resolves 30 us") {
    const Rule rule = Rule::every(Seconds{1e-3}, jobsched::from_unix_seconds(0.5));
    const double start = unix_seconds("9999-12-31T23:00:00Z");
    TimePoint time = jobsched::from_unix_seconds(start);
    for (int i = 1; i <= 1000; ++i) {
      const auto next = rule.next_after(time);
      REQUIRE(next);
      const double seconds = jobsched::to_unix_seconds(*next);
      REQUIRE(seconds > jobsched::to_unix_seconds(time));
      REQUIRE(std::fabs(seconds - (start + i * 1e-3)) < 1e-4);
      time = *next;
    }
  }
}

TEST_CASE("An interval rule has no firing at or after the year 10000", "[rule]") {
  const Rule daily = Rule::every(Seconds{86400});
  CHECK(iso(daily.next_after(utc("9999-12-30T12:00:00Z"))) == iso(utc("9999-12-31T00:00:00Z")));
  CHECK_FALSE(daily.next_after(utc("9999-12-31T00:00:00Z")));
  CHECK_FALSE(daily.next_after(jobsched::from_unix_seconds(jobsched::detail::latest_time)));
  const Rule huge = Rule::every(Seconds{1e300});
  CHECK(huge.to_string() == "every 1e+300 from 0");
  CHECK(huge.next_after(jobsched::from_unix_seconds(-1)) == jobsched::from_unix_seconds(0));
  CHECK_FALSE(huge.next_after(jobsched::from_unix_seconds(0)));
}

TEST_CASE("An interval rule refuses a NaN, infinite, zero, negative or sub-millisecond interval",
          "[rule]") {
  check_contains(refusal([] { Rule::every(Seconds{kNan}); }), {"interval", "got nan s"});
  check_contains(refusal([] { Rule::every(Seconds{kInf}); }), {"interval", "got inf s"});
  check_contains(refusal([] { Rule::every(Seconds{-kInf}); }), {"got -inf s"});
  check_contains(refusal([] { Rule::every(Seconds{0}); }), {"at least 0.001 s", "got 0 s"});
  check_contains(refusal([] { Rule::every(Seconds{-5}); }), {"got -5 s"});
  check_contains(refusal([] { Rule::every(Seconds{1e-7}); }), {"got 1e-07 s"});
  CHECK(Rule::every(Seconds{1e-3}).to_string() == "every 0.001 from 0");
}

TEST_CASE("An interval rule refuses an anchor outside the years 1 to 9999", "[rule]") {
  check_contains(refusal([] { Rule::every(Seconds{1}, jobsched::from_unix_seconds(kNan)); }),
                 {"anchor", "nan"});
  check_contains(refusal([] { Rule::every(Seconds{1}, jobsched::from_unix_seconds(1e12)); }),
                 {"anchor", "1000000000000"});
  CHECK(Rule::every(Seconds{1}, utc("0001-01-01T00:00:00Z")).to_string() ==
        "every 1 from -62135596800");
}

TEST_CASE("next_after refuses a time outside the years 1 to 9999", "[rule]") {
  for (const Rule& rule : {Rule::every(Seconds{60}), Rule::cron("* * * * *")}) {
    check_contains(refusal([&] { rule.next_after(jobsched::from_unix_seconds(kNan)); }),
                   {"after", "nan"});
    check_contains(refusal([&] { rule.next_after(jobsched::from_unix_seconds(-1e12)); }),
                   {"after", "-1000000000000"});
  }
}

// ---- Cron: the fields ------------------------------------------------------------------

TEST_CASE("Cron fields take numbers, names in any case, lists, ranges and steps", "[rule]") {
  using jobsched::detail::parse_cron;
  const auto bits = [](const std::vector<int>& values) {
    std::uint64_t mask = 0;
    for (const int value : values)
      mask |= std::uint64_t{1} << value;
    return mask;
  };
  const auto business = parse_cron("*/15 9-17 * * MON-FRI");
  CHECK(business.minutes == bits({0, 15, 30, 45}));
  CHECK(business.hours == bits({9, 10, 11, 12, 13, 14, 15, 16, 17}));
  CHECK(business.days == bits({1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}));
  CHECK(business.months == bits({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  CHECK(business.weekdays == bits({1, 2, 3, 4, 5}));

  CHECK(parse_cron("0 0 * jan,Jul sUn").months == bits({1, 7}));
  CHECK(parse_cron("0 0 * jan,Jul sUn").weekdays == bits({0}));
  CHECK(parse_cron("0 0 * feb-APR *").months == bits({2, 3, 4}));
  CHECK(parse_cron("5/20 * * * *").minutes == bits({5, 25, 45}));
  CHECK(parse_cron("10-30/10 * * * *").minutes == bits({10, 20, 30}));
  CHECK(parse_cron("1,5-7,50-59/4 * * * *").minutes == bits({1, 5, 6, 7, 50, 54, 58}));
  CHECK(parse_cron("0 0 * * 7").weekdays == bits({0}));
  CHECK(parse_cron("0 0 * * 5-7").weekdays == bits({0, 5, 6}));
  CHECK(parse_cron("0 0 * * 0-7").weekdays == bits({0, 1, 2, 3, 4, 5, 6}));
  CHECK(parse_cron("0 0 * * */2").weekdays == bits({0, 2, 4, 6}));
  CHECK(parse_cron("0 0 * * thu-sat").weekdays == bits({4, 5, 6}));
  CHECK(parse_cron("*/60 */24 */31 */12 */7").minutes == bits({0}));
  CHECK(parse_cron("07 00 01 01 *").hours == bits({0}));
}

TEST_CASE("Cron shorthands stand for their five fields and keep their own name", "[rule]") {
  const std::vector<std::pair<std::string, std::string>> shorthands = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"}};
  for (const auto& [shorthand, fields] : shorthands) {
    INFO(shorthand);
    const Rule rule = Rule::cron(shorthand);
    const Rule spelled = Rule::cron(fields);
    CHECK(rule.to_string() == "cron " + shorthand + " in UTC");
    CHECK(firings(rule, "2026-05-05T10:20:00Z", 3) == firings(spelled, "2026-05-05T10:20:00Z", 3));
    CHECK(rule != spelled);
  }
  CHECK(Rule::cron("@DAILY").to_string() == "cron @daily in UTC");
  CHECK(jobsched::detail::parse_cron("@hourly").fixed_time == false);
  CHECK(jobsched::detail::parse_cron("@daily").fixed_time == true);
}

TEST_CASE("Cron refuses a bad field, naming the field and the value", "[rule]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"60 * * * *", {"minute", "\"60\"", "out of range 0-59"}},
      {"* 24 * * *", {"hour", "\"24\"", "0-23"}},
      {"* * 0 * *", {"day-of-month", "\"0\"", "1-31"}},
      {"* * 32 * *", {"day-of-month", "\"32\""}},
      {"* * * 0 *", {"month", "\"0\"", "1-12"}},
      {"* * * 13 *", {"month", "\"13\""}},
      {"* * * * 8", {"day-of-week", "\"8\"", "0-7"}},
      {"* * * 99999999999999999999 *", {"month", "\"99999999999999999999\""}},
      {"* * * FOO *", {"month", "\"FOO\"", "JAN-DEC"}},
      {"* * * * MONDAY", {"day-of-week", "\"MONDAY\"", "SUN-SAT"}},
      {"MON * * * *", {"minute", "\"MON\"", "not a number 0-59"}},
      {"5-1 * * * *", {"minute", "\"5-1\"", "reversed"}},
      {"* * * DEC-JAN *", {"month", "\"DEC-JAN\"", "reversed"}},
      {"*/0 * * * *", {"minute", "\"*/0\"", "step \"0\"", "1 to 60"}},
      {"*/61 * * * *", {"minute", "step \"61\""}},
      {"* */x * * *", {"hour", "\"*/x\"", "step \"x\" is not a number"}},
      {"1/ * * * *", {"minute", "\"1/\"", "step \"\""}},
      {"*/5/2 * * * *", {"minute", "step \"5/2\""}},
      {"1,,2 * * * *", {"minute", "\"1,,2\"", "empty list item"}},
      {",1 * * * *", {"minute", "\",1\"", "empty list item"}},
      {"* * * * 1,", {"day-of-week", "\"1,\"", "empty list item"}},
      {"-5 * * * *", {"minute", "\"-5\"", "\"\" is not a number"}},
      {"1-2-3 * * * *", {"minute", "\"1-2-3\"", "\"2-3\" is not"}},
      {"** * * * *", {"minute", "\"**\""}},
      {"*-5 * * * *", {"minute", "\"*-5\""}},
      {"+5 * * * *", {"minute", "\"+5\""}},
      {"* * * *", {"has 4 fields", "exactly 5"}},
      {"* * * * * *", {"has 6 fields"}},
      {"", {"has 0 fields"}},
      {"@daily *", {"has 2 fields"}},
      {"@reboot", {"\"@reboot\"", "@reboot means"}},
      {"@sometimes", {"unknown shorthand \"@sometimes\"", "@hourly"}},
      {"@", {"unknown shorthand \"@\""}},
  };
  for (const auto& entry : cases) {
    const std::string& expression = entry.first;
    const std::vector<std::string>& fragments = entry.second;
    INFO("expression: " << expression);
    const std::string message = refusal([&] { Rule::cron(expression); });
    check_contains(message, fragments);
    check_contains(message, {"cron expression \"" + expression + "\""});
  }
}

// ---- Cron: when it fires -----------------------------------------------------------------

TEST_CASE("Cron fires as the examples of crontab(5) say", "[rule]") {
  // Every second hour, on the hour.
  CHECK(firings(Rule::cron("0 */2 * * *"), "2026-05-05T03:10:00Z", 3) ==
        expected({"2026-05-05T04:00:00Z", "2026-05-05T06:00:00Z", "2026-05-05T08:00:00Z"}));
  // Five minutes after midnight, every day.
  CHECK(firings(Rule::cron("5 0 * * *"), "2026-05-05T00:05:00Z", 2) ==
        expected({"2026-05-06T00:05:00Z", "2026-05-07T00:05:00Z"}));
  // 2:15 pm on the first of every month.
  CHECK(firings(Rule::cron("15 14 1 * *"), "2026-05-05T00:00:00Z", 2) ==
        expected({"2026-06-01T14:15:00Z", "2026-07-01T14:15:00Z"}));
  // 5 after 4 every Sunday (2026-05-05 is a Tuesday).
  CHECK(firings(Rule::cron("5 4 * * sun"), "2026-05-05T00:00:00Z", 2) ==
        expected({"2026-05-10T04:05:00Z", "2026-05-17T04:05:00Z"}));
  // 10 pm on weekdays: Friday, then Monday.
  CHECK(firings(Rule::cron("0 22 * * 1-5"), "2026-05-08T21:00:00Z", 3) ==
        expected({"2026-05-08T22:00:00Z", "2026-05-11T22:00:00Z", "2026-05-12T22:00:00Z"}));
  // 23 minutes after midnight, 2 am, 4 am, ..., every day.
  CHECK(firings(Rule::cron("23 0-23/2 * * *"), "2026-05-05T20:23:00Z", 3) ==
        expected({"2026-05-05T22:23:00Z", "2026-05-06T00:23:00Z", "2026-05-06T02:23:00Z"}));
  // Midnight and noon on the first of every other month.
  CHECK(firings(Rule::cron("0 0,12 1 */2 *"), "2026-05-01T00:00:00Z", 3) ==
        expected({"2026-05-01T12:00:00Z", "2026-07-01T00:00:00Z", "2026-07-01T12:00:00Z"}));
  // 4:30 am on the 1st and the 15th of each month, plus every Friday (June 2026: the 1st is a
  // Monday, Fridays are the 5th, 12th, 19th and 26th).
  CHECK(firings(Rule::cron("30 4 1,15 * 5"), "2026-05-31T00:00:00Z", 7) ==
        expected({"2026-06-01T04:30:00Z", "2026-06-05T04:30:00Z", "2026-06-12T04:30:00Z",
                  "2026-06-15T04:30:00Z", "2026-06-19T04:30:00Z", "2026-06-26T04:30:00Z",
                  "2026-07-01T04:30:00Z"}));
  // Every 4th hour on the 1st, and on every Monday (2026-06-01 is both).
  CHECK(firings(Rule::cron("0 */4 1 * mon"), "2026-06-01T21:00:00Z", 3) ==
        expected({"2026-06-08T00:00:00Z", "2026-06-08T04:00:00Z", "2026-06-08T08:00:00Z"}));
  // Midnight on every Sunday that is an odd date ("*/2" starts with '*': both must match).
  CHECK(firings(Rule::cron("0 0 */2 * sun"), "2026-05-01T00:00:00Z", 3) ==
        expected({"2026-05-03T00:00:00Z", "2026-05-17T00:00:00Z", "2026-05-31T00:00:00Z"}));
}

TEST_CASE("Cron's day fields: either matches when both are restricted, else only the other",
          "[rule]") {
  // The 13th, or a Friday: 2026-11-13 is a Friday the 13th.
  CHECK(firings(Rule::cron("0 0 13 * 5"), "2026-11-01T00:00:00Z", 4) ==
        expected({"2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z", "2026-11-20T00:00:00Z",
                  "2026-11-27T00:00:00Z"}));
  CHECK(firings(Rule::cron("0 0 13 * *"), "2026-11-01T00:00:00Z", 2) ==
        expected({"2026-11-13T00:00:00Z", "2026-12-13T00:00:00Z"}));
  CHECK(firings(Rule::cron("0 0 * * 5"), "2026-11-01T00:00:00Z", 2) ==
        expected({"2026-11-06T00:00:00Z", "2026-11-13T00:00:00Z"}));
  // "*/1" starts with '*', so a day must match both fields: every 13th, Fridays or not.
  CHECK(firings(Rule::cron("0 0 13 * */1"), "2026-11-14T00:00:00Z", 1) ==
        expected({"2026-12-13T00:00:00Z"}));
  // "*/13" (the 1st, 14th and 27th) starts with '*': only those that are Fridays.
  CHECK(firings(Rule::cron("0 0 */13 * 5"), "2026-11-01T00:00:00Z", 2) ==
        expected({"2026-11-27T00:00:00Z", "2027-01-01T00:00:00Z"}));
  // February 30th never comes, but Mondays in February do.
  CHECK(firings(Rule::cron("0 0 30 2 1"), "2026-01-01T00:00:00Z", 1) ==
        expected({"2026-02-02T00:00:00Z"}));
}

TEST_CASE("Cron finds February 29th, and skips months too short for the day", "[rule]") {
  const Rule leap_day = Rule::cron("0 0 29 2 *");
  CHECK(firings(leap_day, "2026-01-01T00:00:00Z", 2) ==
        expected({"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}));
  // 2100 is not a leap year, 2400 is.
  CHECK(firings(leap_day, "2096-03-01T00:00:00Z", 1) == expected({"2104-02-29T00:00:00Z"}));
  CHECK(firings(leap_day, "2399-01-01T00:00:00Z", 1) == expected({"2400-02-29T00:00:00Z"}));
  // A leap day that is also a Sunday: both must match ("*/7" starts with '*').
  CHECK(firings(Rule::cron("0 12 29 2 */7"), "2026-01-01T00:00:00Z", 1) ==
        expected({"2032-02-29T12:00:00Z"}));
  CHECK(firings(Rule::cron("0 0 31 * *"), "2026-01-31T00:00:00Z", 5) ==
        expected({"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z",
                  "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"}));
}

TEST_CASE("Cron rolls over the end of a year", "[rule]") {
  CHECK(firings(Rule::cron("0 0 1 1 *"), "2026-12-31T23:59:30.5Z", 2) ==
        expected({"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}));
  CHECK(firings(Rule::cron("59 23 31 12 *"), "2026-12-31T23:59:00Z", 1) ==
        expected({"2027-12-31T23:59:00Z"}));
  CHECK(firings(Rule::cron("*/5 * * * *"), "2026-12-31T23:58:00Z", 2) ==
        expected({"2027-01-01T00:00:00Z", "2027-01-01T00:05:00Z"}));
  CHECK(firings(Rule::cron("0 0 * * *"), "2027-02-28T12:00:00Z", 1) ==
        expected({"2027-03-01T00:00:00Z"}));
}

TEST_CASE("Cron's next firing is strictly after, at whole minutes, whatever the fraction",
          "[rule]") {
  const Rule rule = Rule::cron("*/15 * * * *");
  CHECK(firings(rule, "2026-05-05T10:15:00Z", 1) == expected({"2026-05-05T10:30:00Z"}));
  CHECK(firings(rule, "2026-05-05T10:14:59.999Z", 1) == expected({"2026-05-05T10:15:00Z"}));
  CHECK(firings(rule, "2026-05-05T10:15:00.25Z", 1) == expected({"2026-05-05T10:30:00Z"}));
  CHECK(firings(rule, "1969-12-31T23:59:59.5Z", 1) == expected({"1970-01-01T00:00:00Z"}));
  CHECK(firings(Rule::cron("* * * * *"), "2026-05-05T10:15:59.75Z", 2) ==
        expected({"2026-05-05T10:16:00Z", "2026-05-05T10:17:00Z"}));
}

TEST_CASE("A cron rule that never fires, or not before the year 10000, has no next firing",
          "[rule]") {
  const TimePoint now = utc("2026-05-05T00:00:00Z");
  CHECK_FALSE(Rule::cron("0 0 30 2 *").next_after(now));
  CHECK_FALSE(Rule::cron("0 0 31 4,6,9,11 *").next_after(now));
  CHECK_FALSE(Rule::cron("0 0 30 2 */2").next_after(now));
  CHECK_FALSE(
      Rule::cron("0 0 30 2 *", TimeZone::fixed(std::chrono::minutes{-300})).next_after(now));
  CHECK_FALSE(Rule::cron("0 0 1 1 *").next_after(utc("9999-06-01T00:00:00Z")));
  CHECK(firings(Rule::cron("59 23 31 12 *"), "9999-12-31T23:58:00Z", 2) ==
        expected({"9999-12-31T23:59:00Z", "(none)"}));
  // New year on a wall clock 8 h behind UTC is in the year 10000 in UTC.
  const Rule behind = Rule::cron("0 0 1 1 *", TimeZone::parse("-08:00"));
  CHECK_FALSE(behind.next_after(utc("9999-06-01T00:00:00Z")));
  CHECK(firings(Rule::cron("0 15 31 12 *", TimeZone::parse("-08:00")), "9999-06-01T00:00:00Z", 1) ==
        expected({"9999-12-31T23:00:00Z"}));
  // The first year there is.
  CHECK(firings(Rule::cron("0 0 1 1 *"), "0001-01-01T00:00:00Z", 1) ==
        expected({"0002-01-01T00:00:00Z"}));
  CHECK(firings(Rule::cron("0 0 * * *", TimeZone::parse("+05:00")), "0001-01-01T00:00:00Z", 1) ==
        expected({"0001-01-01T19:00:00Z"}));
}

TEST_CASE("Cron reads the wall clock of a fixed offset", "[rule]") {
  CHECK(firings(Rule::cron("0 9 * * *", TimeZone::parse("+05:30")), "2026-05-05T00:00:00Z", 2) ==
        expected({"2026-05-05T03:30:00Z", "2026-05-06T03:30:00Z"}));
  CHECK(firings(Rule::cron("0 9 * * *", TimeZone::parse("-08:00")), "2026-05-05T00:00:00Z", 1) ==
        expected({"2026-05-05T17:00:00Z"}));
  // Monday midnight 8 h behind UTC is Monday 08:00 UTC, not Monday 00:00 UTC.
  CHECK(firings(Rule::cron("0 0 * * MON", TimeZone::parse("-08:00")), "2026-05-03T12:00:00Z", 1) ==
        expected({"2026-05-04T08:00:00Z"}));
  // 14 h ahead, the day before in UTC.
  CHECK(firings(Rule::cron("30 1 1 * *", TimeZone::parse("+14:00")), "2026-05-05T00:00:00Z", 1) ==
        expected({"2026-05-31T11:30:00Z"}));
}

// ---- The text form ---------------------------------------------------------------------

TEST_CASE("A rule's text form parses back to an equal rule", "[rule]") {
  const std::vector<Rule> rules = {
      Rule::every(Seconds{90}),
      Rule::every(Seconds{0.1}, jobsched::from_unix_seconds(1700000000.25)),
      Rule::every(Seconds{std::nextafter(0.1, 1.0)}, jobsched::from_unix_seconds(-1e-300)),
      Rule::every(Seconds{86400}, jobsched::from_unix_seconds(std::nextafter(1e9, 0.0))),
      Rule::every(Seconds{1e-3}, jobsched::from_unix_seconds(jobsched::detail::latest_time)),
      Rule::cron("*/15 9-17 * * mon-fri"),
      Rule::cron("@weekly", TimeZone::parse("+05:30")),
      Rule::cron("0 0 * * *", TimeZone::parse("-00:30")),
  };
  for (const Rule& rule : rules) {
    INFO(rule.to_string());
    const Rule back = Rule::parse(rule.to_string());
    CHECK(back == rule);
    CHECK(back.to_string() == rule.to_string());
    CHECK(back.is_cron() == rule.is_cron());
  }
  CHECK(Rule::every(Seconds{0.1}, jobsched::from_unix_seconds(1700000000.25)).to_string() ==
        "every 0.1 from 1700000000.25");
  CHECK(Rule::every(Seconds{std::nextafter(0.1, 1.0)}).to_string() ==
        "every 0.10000000000000002 from 0");
  CHECK(Rule::every(Seconds{1}, jobsched::from_unix_seconds(-0.0)).to_string() == "every 1 from 0");
  CHECK(Rule::cron("*/15 9-17 * * mon-fri").to_string() == "cron */15 9-17 * * MON-FRI in UTC");
  CHECK(Rule::cron("@weekly", TimeZone::parse("+05:30")).to_string() == "cron @weekly in +05:30");
}

TEST_CASE("Parsing a rule accepts any white space, and leaves out the epoch and UTC", "[rule]") {
  CHECK(Rule::parse("every 90") == Rule::every(Seconds{90}));
  CHECK(Rule::parse("  every\t90   from  1e3 ") ==
        Rule::every(Seconds{90}, jobsched::from_unix_seconds(1000)));
  CHECK(Rule::parse("every 1.5e1 from -0").to_string() == "every 15 from 0");
  CHECK(Rule::parse("cron */15  9-17 * *\tmon-fri") == Rule::cron("*/15 9-17 * * MON-FRI"));
  CHECK(Rule::parse("cron 0 0 * * * in UTC") == Rule::cron("0 0 * * *"));
  CHECK(Rule::parse("cron 0 0 * * * in Z") == Rule::cron("0 0 * * *"));
  CHECK(Rule::parse("cron @Daily in +0530").to_string() == "cron @daily in +05:30");
}

TEST_CASE("Rules are equal when their text forms are", "[rule]") {
  CHECK(Rule::every(Seconds{90}) == Rule::every(Seconds{90}, jobsched::from_unix_seconds(0)));
  CHECK(Rule::every(Seconds{90}) != Rule::every(Seconds{90}, jobsched::from_unix_seconds(1)));
  CHECK(Rule::every(Seconds{90}) != Rule::every(Seconds{91}));
  CHECK(Rule::cron("0 0 * * mon") == Rule::cron("0 0 * * MON"));
  CHECK(Rule::cron("0 0 * * 1") != Rule::cron("0 0 * * MON"));
  CHECK(Rule::cron("0 0 * * *") != Rule::cron("0 0 * * *", TimeZone::parse("+01:00")));
  CHECK(Rule::cron("0 0 * * *", TimeZone::parse("+00:00")) == Rule::cron("0 0 * * *"));
  CHECK(Rule::cron("* * * * *") != Rule::every(Seconds{60}));
  CHECK(Rule::cron("* * * * *").is_cron());
}

TEST_CASE("Parsing a rule refuses bad text, naming the text and its bad part", "[rule]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"", {"rule \"\"", "every SECONDS", "cron EXPRESSION"}},
      {"sometimes", {"rule \"sometimes\"", "every SECONDS"}},
      {"Every 90", {"rule \"Every 90\""}},
      {"every", {"rule \"every\"", "every SECONDS from UNIX_SECONDS"}},
      {"every x", {"the interval \"x\" is not a decimal number"}},
      {"every 90s", {"the interval \"90s\" is not a decimal number"}},
      {"every 0x10", {"\"0x10\" is not a decimal number"}},
      {"every nan", {"\"nan\" is not a decimal number"}},
      {"every inf", {"\"inf\" is not a decimal number"}},
      {"every 1e999", {"\"1e999\" is not a decimal number"}},
      {"every 1,5", {"\"1,5\" is not a decimal number"}},
      {"every .", {"\".\" is not a decimal number"}},
      {"every 0", {"rule \"every 0\"", "got 0 s"}},
      {"every -5", {"got -5 s"}},
      {"every 90 from", {"every SECONDS from UNIX_SECONDS"}},
      {"every 90 since 0", {"every SECONDS from UNIX_SECONDS"}},
      {"every 90 from 0 extra", {"every SECONDS from UNIX_SECONDS"}},
      {"every 90 from 1e12", {"anchor", "1000000000000"}},
      {"every 90 from 1e", {"the anchor \"1e\" is not a decimal number"}},
      {"cron", {"rule \"cron\"", "has 0 fields"}},
      {"cron 61 * * * *", {"rule \"cron 61 * * * *\"", "minute value \"61\""}},
      {"cron * * * * * in", {"in ZONE"}},
      {"cron * * * * * in UTC extra", {"in ZONE"}},
      {"cron * * * * * in +25:00", {"\"+25:00\"", "-24:00 and +24:00"}},
      {"cron * * * in UTC", {"has 3 fields"}},
      {"cron @reboot", {"@reboot"}},
  };
  for (const auto& entry : cases) {
    const std::string& text = entry.first;
    const std::vector<std::string>& fragments = entry.second;
    INFO("text: " << text);
    check_contains(refusal([&] { Rule::parse(text); }), fragments);
  }
  // Unprintable bytes are shown escaped, and a long text is cut.
  check_contains(refusal([] { Rule::parse(std::string("every \x01\"", 8)); }),
                 {"\"every \\x01\\\"\""});
  check_contains(refusal([] { Rule::parse("every " + std::string(500, '9') + "x"); }),
                 {"9999...\""});
}

}  // namespace test_rule
