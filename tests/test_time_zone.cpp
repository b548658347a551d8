// SPDX-License-Identifier: MIT
// Time zones: UTC, fixed offsets and IANA names, their text forms, and cron across daylight
// saving as Vixie cron fires it (Europe/Berlin, America/New_York, Australia/Lord_Howe with its
// 30-minute shift). The named-zone tests need a zone database (jobsched::tz); without one
// they say so and pass, and test_no_tz.cpp checks the refusal instead.

#include <jobsched/rule.hpp>

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "support/rule_checks.hpp"

namespace test_time_zone {

namespace {

using jobsched::InvalidArgumentError;
using jobsched::Rule;
using jobsched::TimePoint;
using jobsched::TimeZone;
using std::chrono::minutes;
using jobsched_test::check_contains;
using jobsched_test::expected;
using jobsched_test::firings;
using jobsched_test::iso;
using jobsched_test::refusal;
using jobsched_test::utc;


/// False, with a warning, when this build has no zone database.
bool have_zones() {
  if (TimeZone::named_zones_supported())
    return true;
  WARN("no zone database in this build (link jobsched::tz): named-zone checks skipped");
  return false;
}

Rule in_zone(const std::string& expression, const std::string& zone) {
  return Rule::cron(expression, TimeZone::named(zone));
}

}  // namespace

// ---- UTC and fixed offsets -----------------------------------------------------------------

TEST_CASE("UTC and fixed offsets have names that parse back to them", "[time_zone]") {
  CHECK(TimeZone::utc().name() == "UTC");
  CHECK(TimeZone().name() == "UTC");
  CHECK(TimeZone::fixed(minutes{330}).name() == "+05:30");
  CHECK(TimeZone::fixed(minutes{-480}).name() == "-08:00");
  CHECK(TimeZone::fixed(minutes{-30}).name() == "-00:30");
  CHECK(TimeZone::fixed(minutes{24 * 60 - 1}).name() == "+23:59");
  CHECK(TimeZone::fixed(minutes{-24 * 60 + 1}).name() == "-23:59");
  CHECK(TimeZone::fixed(minutes{0}) == TimeZone::utc());
  for (const TimeZone& zone :
       {TimeZone::utc(), TimeZone::fixed(minutes{330}), TimeZone::fixed(minutes{-480}),
        TimeZone::fixed(minutes{-30}), TimeZone::fixed(minutes{1439})}) {
    INFO(zone.name());
    CHECK(TimeZone::parse(zone.name()) == zone);
  }
  CHECK(TimeZone::parse("Z") == TimeZone::utc());
  CHECK(TimeZone::parse("+00:00") == TimeZone::utc());
  CHECK(TimeZone::parse("-0000") == TimeZone::utc());
  CHECK(TimeZone::parse("+0530") == TimeZone::fixed(minutes{330}));
  CHECK(TimeZone::parse("+05") == TimeZone::fixed(minutes{300}));
  CHECK(TimeZone::parse("-09:30") == TimeZone::fixed(minutes{-570}));
  CHECK(TimeZone::fixed(minutes{60}) != TimeZone::fixed(minutes{-60}));
  CHECK(TimeZone::fixed(minutes{60}) != TimeZone::utc());
}

TEST_CASE("A fixed offset must lie strictly within 24 hours, in whole minutes", "[time_zone]") {
  check_contains(refusal([] { TimeZone::fixed(minutes{1440}); }),
                 {"got 1440 minutes", "-24:00 and +24:00"});
  check_contains(refusal([] { TimeZone::fixed(minutes{-1440}); }), {"got -1440 minutes"});
  check_contains(refusal([] { TimeZone::fixed(std::chrono::hours{1000000}); }),
                 {"got 60000000 minutes"});
  check_contains(refusal([] { TimeZone::parse("+24:00"); }), {"\"+24:00\"", "-24:00 and +24:00"});
  check_contains(refusal([] { TimeZone::parse("-05:60"); }), {"\"-05:60\"", "00 to 59"});
  check_contains(refusal([] { TimeZone::parse("+5:30"); }), {"\"+5:30\"", "+HH:MM"});
  check_contains(refusal([] { TimeZone::parse("+05:3"); }), {"\"+05:3\"", "+HH:MM"});
  check_contains(refusal([] { TimeZone::parse("+05:30:00"); }), {"\"+05:30:00\""});
  check_contains(refusal([] { TimeZone::parse("+"); }), {"\"+\""});
  check_contains(refusal([] { TimeZone::parse("05:30"); }), {"\"05:30\"", "needs a sign"});
  check_contains(refusal([] { TimeZone::parse(""); }), {"must not be empty"});
}

// ---- Named zones -----------------------------------------------------------------------

TEST_CASE("A named zone keeps its name, parses back, and compares by name", "[time_zone]") {
  if (!have_zones())
    return;
  const TimeZone berlin = TimeZone::named("Europe/Berlin");
  CHECK(berlin.name() == "Europe/Berlin");
  CHECK(TimeZone::parse("Europe/Berlin") == berlin);
  CHECK(TimeZone::parse(berlin.name()) == berlin);
  CHECK(berlin == TimeZone::named("Europe/Berlin"));
  CHECK(berlin != TimeZone::named("America/New_York"));
  CHECK(berlin != TimeZone::fixed(minutes{60}));
  CHECK(TimeZone::named("UTC") == TimeZone::utc());
  const Rule rule = Rule::cron("*/15 9-17 * * mon-fri", berlin);
  CHECK(rule.to_string() == "cron */15 9-17 * * MON-FRI in Europe/Berlin");
  CHECK(Rule::parse(rule.to_string()) == rule);
  CHECK(Rule::parse(rule.to_string()) != Rule::cron("*/15 9-17 * * MON-FRI"));
}

TEST_CASE("An unknown zone name is refused, naming it", "[time_zone]") {
  if (!have_zones())
    return;
  check_contains(refusal([] { TimeZone::named("Mars/Olympus_Mons"); }),
                 {"unknown time zone \"Mars/Olympus_Mons\""});
  check_contains(refusal([] { TimeZone::parse("Europe/berlin"); }), {"\"Europe/berlin\""});
  check_contains(refusal([] { TimeZone::named("../../../etc/passwd"); }),
                 {"\"../../../etc/passwd\""});
  check_contains(refusal([] { TimeZone::named(""); }), {"must not be empty"});
  check_contains(refusal([] { Rule::parse("cron 0 9 * * * in Nowhere/Zone"); }),
                 {"rule \"cron 0 9 * * * in Nowhere/Zone\"", "\"Nowhere/Zone\""});
}

TEST_CASE("Cron reads a named zone's wall clock in summer and winter", "[time_zone]") {
  if (!have_zones())
    return;
  CHECK(firings(in_zone("0 9 * * *", "Europe/Berlin"), "2026-01-15T00:00:00Z", 1) ==
        expected({"2026-01-15T08:00:00Z"}));
  CHECK(firings(in_zone("0 9 * * *", "Europe/Berlin"), "2026-07-15T00:00:00Z", 1) ==
        expected({"2026-07-15T07:00:00Z"}));
  CHECK(firings(in_zone("0 9 * * *", "America/New_York"), "2026-01-15T00:00:00Z", 1) ==
        expected({"2026-01-15T14:00:00Z"}));
  CHECK(firings(in_zone("0 9 * * *", "Asia/Kolkata"), "2026-07-15T00:00:00Z", 1) ==
        expected({"2026-07-15T03:30:00Z"}));
}

// ---- Daylight saving, as Vixie cron ------------------------------------------------------
// "Fixed-time" rules (neither minute nor hour starts with '*'): a firing in a skipped interval
// runs at the first instant after the jump, once however many fell in it; one in a repeated
// interval runs at its first occurrence only. "Wildcard" rules follow the wall clock: skipped
// times never come, repeated times fire twice.

TEST_CASE("Europe/Berlin spring forward: fixed-time firings in the gap run at the jump",
          "[time_zone][dst]") {
  if (!have_zones())
    return;
  // 2026-03-29 02:00 CET (+1) becomes 03:00 CEST (+2) at 01:00 UTC.
  CHECK(firings(in_zone("30 2 * * *", "Europe/Berlin"), "2026-03-28T12:00:00Z", 2) ==
        expected({"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}));
  // Four firings in the skipped hour: one run.
  CHECK(firings(in_zone("0,15,30,45 2 * * *", "Europe/Berlin"), "2026-03-28T12:00:00Z", 2) ==
        expected({"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}));
  // 03:00 CEST is the jump's instant too: still one run, then 03:30 CEST.
  CHECK(firings(in_zone("0,30 2,3 * * *", "Europe/Berlin"), "2026-03-29T00:00:00Z", 2) ==
        expected({"2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"}));
  // Before and after the gap, unchanged.
  CHECK(firings(in_zone("30 1,3 * * *", "Europe/Berlin"), "2026-03-29T00:00:00Z", 2) ==
        expected({"2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"}));
}

TEST_CASE("Europe/Berlin spring forward: wildcard firings in the gap do not happen",
          "[time_zone][dst]") {
  if (!have_zones())
    return;
  CHECK(firings(in_zone("*/30 * * * *", "Europe/Berlin"), "2026-03-29T00:15:00Z", 3) ==
        expected({"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"}));
  CHECK(firings(in_zone("30 * * * *", "Europe/Berlin"), "2026-03-29T00:00:00Z", 2) ==
        expected({"2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"}));
  // Only the skipped hour: that day has none.
  CHECK(firings(in_zone("*/20 2 * * *", "Europe/Berlin"), "2026-03-28T12:00:00Z", 1) ==
        expected({"2026-03-30T00:00:00Z"}));
}

TEST_CASE("Europe/Berlin fall back: fixed-time firings run once, wildcard ones twice",
          "[time_zone][dst]") {
  if (!have_zones())
    return;
  // 2026-10-25 03:00 CEST (+2) becomes 02:00 CET (+1) at 01:00 UTC: 02:00-03:00 comes twice.
  CHECK(firings(in_zone("30 2 * * *", "Europe/Berlin"), "2026-10-24T12:00:00Z", 2) ==
        expected({"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}));
  CHECK(firings(in_zone("30 * * * *", "Europe/Berlin"), "2026-10-25T00:00:00Z", 3) ==
        expected({"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"}));
  CHECK(firings(in_zone("*/20 2 * * *", "Europe/Berlin"), "2026-10-24T12:00:00Z", 7) ==
        expected({"2026-10-25T00:00:00Z", "2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z",
                  "2026-10-25T01:00:00Z", "2026-10-25T01:20:00Z", "2026-10-25T01:40:00Z",
                  "2026-10-26T01:00:00Z"}));
  // Asked in the second pass, a fixed-time rule waits for the next day.
  CHECK(firings(in_zone("45 2 * * *", "Europe/Berlin"), "2026-10-25T01:10:00Z", 1) ==
        expected({"2026-10-26T01:45:00Z"}));
}

TEST_CASE("America/New_York spring forward and fall back", "[time_zone][dst]") {
  if (!have_zones())
    return;
  // 2026-03-08 02:00 EST (-5) becomes 03:00 EDT (-4) at 07:00 UTC.
  CHECK(firings(in_zone("30 2 * * *", "America/New_York"), "2026-03-07T12:00:00Z", 2) ==
        expected({"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}));
  CHECK(firings(in_zone("*/30 * * * *", "America/New_York"), "2026-03-08T06:15:00Z", 3) ==
        expected({"2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"}));
  // 2026-11-01 02:00 EDT (-4) becomes 01:00 EST (-5) at 06:00 UTC: 01:00-02:00 comes twice.
  CHECK(firings(in_zone("30 1 * * *", "America/New_York"), "2026-10-31T12:00:00Z", 2) ==
        expected({"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}));
  CHECK(firings(in_zone("30 * * * *", "America/New_York"), "2026-11-01T04:00:00Z", 4) ==
        expected({"2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z",
                  "2026-11-01T07:30:00Z"}));
  // 02:00 happens once that day, in EST.
  CHECK(firings(in_zone("0 2 * * *", "America/New_York"), "2026-10-31T12:00:00Z", 1) ==
        expected({"2026-11-01T07:00:00Z"}));
}

TEST_CASE("Australia/Lord_Howe shifts by 30 minutes both ways", "[time_zone][dst]") {
  if (!have_zones())
    return;
  // 2026-10-04 02:00 (+10:30) becomes 02:30 (+11) at 2026-10-03 15:30 UTC.
  CHECK(firings(in_zone("15 2 * * *", "Australia/Lord_Howe"), "2026-10-03T00:00:00Z", 2) ==
        expected({"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}));
  CHECK(firings(in_zone("45 2 * * *", "Australia/Lord_Howe"), "2026-10-03T00:00:00Z", 1) ==
        expected({"2026-10-03T15:45:00Z"}));
  CHECK(firings(in_zone("*/15 * * * *", "Australia/Lord_Howe"), "2026-10-03T15:10:00Z", 3) ==
        expected({"2026-10-03T15:15:00Z", "2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z"}));
  // 2026-04-05 02:00 (+11) becomes 01:30 (+10:30) at 2026-04-04 15:00 UTC.
  CHECK(firings(in_zone("45 1 * * *", "Australia/Lord_Howe"), "2026-04-04T12:00:00Z", 2) ==
        expected({"2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"}));
  CHECK(firings(in_zone("*/15 * * * *", "Australia/Lord_Howe"), "2026-04-04T14:20:00Z", 5) ==
        expected({"2026-04-04T14:30:00Z", "2026-04-04T14:45:00Z", "2026-04-04T15:00:00Z",
                  "2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z"}));
}

TEST_CASE("Zones without daylight saving fire at one offset all year", "[time_zone][dst]") {
  CHECK(firings(Rule::cron("30 2 * * *", TimeZone::parse("+01:00")), "2026-03-28T12:00:00Z", 2) ==
        expected({"2026-03-29T01:30:00Z", "2026-03-30T01:30:00Z"}));
  CHECK(firings(Rule::cron("30 2 * * *"), "2026-10-24T12:00:00Z", 2) ==
        expected({"2026-10-25T02:30:00Z", "2026-10-26T02:30:00Z"}));
}

TEST_CASE("A rare firing in a named zone is found years ahead", "[time_zone]") {
  if (!have_zones())
    return;
  // February 29th at 02:30 in Berlin (winter time): 2028, then 2032.
  CHECK(firings(in_zone("30 2 29 2 *", "Europe/Berlin"), "2026-05-05T00:00:00Z", 2) ==
        expected({"2028-02-29T01:30:00Z", "2032-02-29T01:30:00Z"}));
  CHECK_FALSE(in_zone("0 0 30 2 *", "Europe/Berlin").next_after(utc("2026-05-05T00:00:00Z")));
}

// ---- After the last transition a zone file lists -----------------------------------------
// Debian's zone files list transitions up to 2037, then a POSIX TZ rule for every year after;
// date/tz on the system's files ignores that rule, jobsched applies it.

TEST_CASE("Daylight saving goes on after the last transition a zone file lists",
          "[time_zone][dst]") {
  if (!have_zones())
    return;
  // 2040-03-25 02:00 CET becomes 03:00 CEST at 01:00 UTC; back on 2040-10-28.
  CHECK(firings(in_zone("30 2 * * *", "Europe/Berlin"), "2040-03-24T12:00:00Z", 2) ==
        expected({"2040-03-25T01:00:00Z", "2040-03-26T00:30:00Z"}));
  CHECK(firings(in_zone("0 9 * * *", "Europe/Berlin"), "2040-07-01T00:00:00Z", 1) ==
        expected({"2040-07-01T07:00:00Z"}));
  CHECK(firings(in_zone("30 2 * * *", "Europe/Berlin"), "2040-10-27T12:00:00Z", 2) ==
        expected({"2040-10-28T00:30:00Z", "2040-10-29T01:30:00Z"}));
  CHECK(firings(in_zone("0 9 * * *", "Europe/Berlin"), "9999-07-01T00:00:00Z", 1) ==
        expected({"9999-07-01T07:00:00Z"}));
  // 2040-11-04 02:00 EDT becomes 01:00 EST at 06:00 UTC.
  CHECK(firings(in_zone("30 * * * *", "America/New_York"), "2040-11-04T04:00:00Z", 4) ==
        expected({"2040-11-04T04:30:00Z", "2040-11-04T05:30:00Z", "2040-11-04T06:30:00Z",
                  "2040-11-04T07:30:00Z"}));
  // Southern hemisphere, 30 minutes: 2099-10-04 02:00 (+10:30) becomes 02:30 (+11).
  CHECK(firings(in_zone("15 2 * * *", "Australia/Lord_Howe"), "2099-10-03T00:00:00Z", 2) ==
        expected({"2099-10-03T15:30:00Z", "2099-10-04T15:15:00Z"}));
  CHECK(firings(in_zone("45 1 * * *", "Australia/Lord_Howe"), "2099-04-04T12:00:00Z", 2) ==
        expected({"2099-04-04T14:45:00Z", "2099-04-05T15:15:00Z"}));
  // Transitions at negative local times (America/Nuuk: M3.5.0/-1).
  CHECK(firings(in_zone("0 12 * * *", "America/Nuuk"), "2040-07-01T00:00:00Z", 1) ==
        expected({"2040-07-01T13:00:00Z"}));
}

TEST_CASE("POSIX TZ rules parse as TZif files write them", "[time_zone]") {
  using jobsched::detail::parse_posix_tz;
  const auto berlin = parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  REQUIRE(berlin);
  CHECK(berlin->standard_offset == 3600);
  CHECK(berlin->has_daylight);
  CHECK(berlin->daylight_offset == 7200);
  CHECK(berlin->starts.kind == 'M');
  CHECK(berlin->starts.month == 3);
  CHECK(berlin->starts.week == 5);
  CHECK(berlin->starts.weekday == 0);
  CHECK(berlin->starts.time == 7200);
  CHECK(berlin->ends.month == 10);
  CHECK(berlin->ends.time == 3 * 3600);

  const auto lord_howe = parse_posix_tz("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  REQUIRE(lord_howe);
  CHECK(lord_howe->standard_offset == 37800);
  CHECK(lord_howe->daylight_offset == 39600);

  const auto nuuk = parse_posix_tz("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
  REQUIRE(nuuk);
  CHECK(nuuk->standard_offset == -7200);
  CHECK(nuuk->starts.time == -3600);
  CHECK(nuuk->ends.time == 0);

  const auto india = parse_posix_tz("IST-5:30");
  REQUIRE(india);
  CHECK(india->standard_offset == 19800);
  CHECK_FALSE(india->has_daylight);

  const auto julian = parse_posix_tz("XST3XDT2:30,J60/1:02:03,300/+167");
  REQUIRE(julian);
  CHECK(julian->daylight_offset == -9000);
  CHECK(julian->starts.kind == 'J');
  CHECK(julian->starts.day == 60);
  CHECK(julian->starts.time == 3723);
  CHECK(julian->ends.kind == 'D');
  CHECK(julian->ends.day == 300);
  CHECK(julian->ends.time == 167 * 3600);

  for (const char* bad : {"", "C-1", "CET", "CET-1CEST", "CET-1CEST,M3.5.0", "CET-1CEST,M13.1.0,J1",
                          "CET-1CEST,M3.6.0,J1", "CET-1CEST,M3.5.7,J1", "CET-1CEST,J0,J1",
                          "CET-1CEST,J366,J1", "CET-1CEST,366,J1", "CET-1CEST,J1,J2/168",
                          "CET-1CEST,J1,J2,", "CET-168", "<+01-1", "CET-1:60"}) {
    INFO(bad);
    CHECK_FALSE(parse_posix_tz(bad));
  }
}

TEST_CASE("A POSIX TZ rule's spans follow its days, whichever hemisphere", "[time_zone]") {
  using jobsched::detail::parse_posix_tz;
  using jobsched::detail::posix_tz_span;
  const auto seconds = [](const std::string& text) {
    return static_cast<std::int64_t>(jobsched::to_unix_seconds(utc(text)));
  };
  const auto berlin = *parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  const auto summer = posix_tz_span(berlin, seconds("2040-07-01T00:00:00Z"), 0);
  CHECK(summer.begin == seconds("2040-03-25T01:00:00Z"));
  CHECK(summer.end == seconds("2040-10-28T01:00:00Z"));
  CHECK(summer.offset == 7200);
  const auto winter = posix_tz_span(berlin, seconds("2040-12-01T00:00:00Z"), 0);
  CHECK(winter.begin == seconds("2040-10-28T01:00:00Z"));
  CHECK(winter.end == seconds("2041-03-31T01:00:00Z"));
  CHECK(winter.offset == 3600);
  // Never before the zone's last listed transition.
  CHECK(posix_tz_span(berlin, seconds("2040-07-01T00:00:00Z"), seconds("2040-05-01T00:00:00Z"))
            .begin == seconds("2040-05-01T00:00:00Z"));

  const auto lord_howe = *parse_posix_tz("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  const auto southern_winter = posix_tz_span(lord_howe, seconds("2099-07-01T00:00:00Z"), 0);
  CHECK(southern_winter.begin == seconds("2099-04-04T15:00:00Z"));
  CHECK(southern_winter.end == seconds("2099-10-03T15:30:00Z"));
  CHECK(southern_winter.offset == 37800);

  // J60 is March 1st in every year; zero-based day 59 is February 29th in a leap year, else
  // March 1st. Standard time from day 59 00:00 daylight time to J60 00:00 standard time.
  const auto days = *parse_posix_tz("XST0XDT,J60/0,59/0");
  const auto leap = posix_tz_span(days, seconds("2040-02-29T12:00:00Z"), 0);
  CHECK(leap.begin == seconds("2040-02-28T23:00:00Z"));
  CHECK(leap.end == seconds("2040-03-01T00:00:00Z"));
  CHECK(leap.offset == 0);
  const auto common = posix_tz_span(days, seconds("2041-02-28T23:30:00Z"), 0);
  CHECK(common.begin == seconds("2041-02-28T23:00:00Z"));
  CHECK(common.end == seconds("2041-03-01T00:00:00Z"));
  CHECK(posix_tz_span(days, seconds("2041-06-01T00:00:00Z"), 0).offset == 3600);
}

}  // namespace test_time_zone
