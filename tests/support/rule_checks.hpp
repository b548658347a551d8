// SPDX-License-Identifier: MIT
#pragma once

// For the rule and time-zone tests: UTC times written as text, firings shown as text, and
// the refusals' messages.

#include <jobsched/rule.hpp>

#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "../catch.hpp"

namespace jobsched_test {

/// "2026-03-29T01:00:00Z" or "2026-03-29T01:00:00.25Z" as seconds since 1970 (timegm, not the
/// code under test).
inline double unix_seconds(const std::string& text) {
  std::tm tm{};
  int fraction_at = 0;
  REQUIRE(std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &fraction_at) == 6);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::string rest = text.substr(static_cast<std::size_t>(fraction_at));
  REQUIRE(rest.back() == 'Z');
  const double fraction = rest.size() > 1 ? std::stod("0" + rest.substr(0, rest.size() - 1)) : 0.0;
  return static_cast<double>(timegm(&tm)) + fraction;
}

inline jobsched::TimePoint utc(const std::string& text) {
  return jobsched::from_unix_seconds(unix_seconds(text));
}

inline std::string iso(std::optional<jobsched::TimePoint> time) {
  return time ? jobsched::detail::format_time(jobsched::to_unix_seconds(*time)) : "(none)";
}

/// The next `count` firings of `rule` after `after`, as format_time shows them.
inline std::vector<std::string> firings(const jobsched::Rule& rule, const std::string& after,
                                        int count) {
  std::vector<std::string> shown;
  std::optional<jobsched::TimePoint> time = utc(after);
  for (int i = 0; i < count && time; ++i) {
    time = rule.next_after(*time);
    shown.push_back(iso(time));
  }
  return shown;
}

/// The same, expected: ISO times in UTC (whole seconds).
inline std::vector<std::string> expected(const std::vector<std::string>& times) {
  std::vector<std::string> shown;
  for (const std::string& time : times)
    shown.push_back(time == "(none)" ? time : iso(utc(time)));
  return shown;
}

/// The message of the InvalidArgumentError `action` throws; fails the test when it throws
/// none.
template <class Action>
std::string refusal(Action&& action) {
  try {
    action();
  } catch (const jobsched::InvalidArgumentError& error) {
    std::string message = error.what();
    CHECK(message.rfind("jobsched: ", 0) == 0);
    CHECK(message.find("jobsched: ", 1) == std::string::npos);
    return message;
  }
  FAIL("no jobsched::InvalidArgumentError was thrown");
  return {};
}

inline void check_contains(const std::string& message,
                           const std::vector<std::string>& fragments) {
  INFO("message: " << message);
  for (const std::string& fragment : fragments) {
    INFO("expected in the message: " << fragment);
    CHECK(message.find(fragment) != std::string::npos);
  }
}

}  // namespace jobsched_test
