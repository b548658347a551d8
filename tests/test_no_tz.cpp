// SPDX-License-Identifier: MIT
// Built on its own (jobsched_no_tz_tests), with jobsched::jobsched alone and as C++17: no zone
// database. UTC and fixed offsets work; a zone name is refused, saying how to get a database.

#include <jobsched/rule.hpp>

#include <chrono>
#include <string>

#include "catch.hpp"

#if defined(JOBSCHED_HAS_DATE_TZ) || defined(JOBSCHED_DETAIL_STD_TZ)
#error "test_no_tz.cpp must be built without a zone database"
#endif

namespace {

using jobsched::InvalidArgumentError;
using jobsched::Rule;
using jobsched::TimeZone;

std::string refusal_of(const std::string& zone, bool through_rule) {
  try {
    if (through_rule)
      Rule::parse("cron 0 9 * * * in " + zone);
    else
      TimeZone::parse(zone);
  } catch (const InvalidArgumentError& error) {
    return error.what();
  }
  FAIL("no InvalidArgumentError for " << zone);
  return {};
}

}  // namespace

TEST_CASE("Without a zone database, named zones are unsupported", "[no_tz]") {
  CHECK_FALSE(TimeZone::named_zones_supported());
}

TEST_CASE("Without a zone database, a zone name is refused, saying how to get one", "[no_tz]") {
  for (const bool through_rule : {false, true}) {
    const std::string message = refusal_of("Europe/Berlin", through_rule);
    INFO("message: " << message);
    CHECK(message.rfind("jobsched: ", 0) == 0);
    CHECK(message.find("\"Europe/Berlin\"") != std::string::npos);
    CHECK(message.find("needs a time zone database") != std::string::npos);
    CHECK(message.find("jobsched::tz") != std::string::npos);
    CHECK(message.find("libhowardhinnant-date-dev") != std::string::npos);
  }
  CHECK_THROWS_AS(TimeZone::named("America/New_York"), InvalidArgumentError);
}

TEST_CASE("Without a zone database, UTC and fixed offsets work", "[no_tz]") {
  CHECK(TimeZone::named("UTC") == TimeZone::utc());
  CHECK(TimeZone::parse("+05:30") == TimeZone::fixed(std::chrono::minutes{330}));
  // 2026-05-05T00:00:00Z; 09:00 at +05:30 is 03:30 UTC, at UTC 09:00 UTC.
  const auto after = jobsched::from_unix_seconds(1777939200);
  const Rule india = Rule::parse("cron 0 9 * * * in +05:30");
  CHECK(india.to_string() == "cron 0 9 * * * in +05:30");
  CHECK(india.next_after(after) == jobsched::from_unix_seconds(1777939200 + 3 * 3600 + 1800));
  CHECK(Rule::cron("0 9 * * *").next_after(after) ==
        jobsched::from_unix_seconds(1777939200 + 9 * 3600));
}
