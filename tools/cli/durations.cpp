// SPDX-License-Identifier: MIT
#include "durations.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>

#include "exit_codes.hpp"

namespace jobsched_cli {
namespace {

constexpr const char* duration_help =
    "a number and a unit (ms, s, m, h, d, w), e.g. 90s, 5m, 2h30m, 7d";

std::string quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

Civil civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;
  const unsigned day = day_of_year - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year =
      static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

bool is_leap(std::int64_t year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

unsigned days_in_month(std::int64_t year, unsigned month) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

// Reads exactly `count` digits at `at`, moving it on; empty when they are not there.
std::optional<unsigned> digits(std::string_view text, std::size_t& at, std::size_t count) {
  if (at + count > text.size())
    return std::nullopt;
  unsigned value = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const char c = text[at + i];
    if (!is_digit(c))
      return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  at += count;
  return value;
}

}  // namespace

jobsched::Seconds parse_duration(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return UsageError("bad duration " + quoted(text) + ": " + why + "; expected " + duration_help);
  };
  if (text.empty())
    throw bad("it is empty");
  double total = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t number_start = at;
    while (at < text.size() && (is_digit(text[at]) || text[at] == '.'))
      ++at;
    const std::string number(text.substr(number_start, at - number_start));
    if (number.empty() || number.front() == '.' || number.back() == '.' ||
        number.find('.') != number.rfind('.'))
      throw bad("no number at " + quoted(text.substr(number_start)));
    const std::size_t unit_start = at;
    while (at < text.size() && !is_digit(text[at]) && text[at] != '.')
      ++at;
    const std::string_view unit = text.substr(unit_start, at - unit_start);
    double scale = 0;
    if (unit == "ms")
      scale = 0.001;
    else if (unit == "s")
      scale = 1;
    else if (unit == "m")
      scale = 60;
    else if (unit == "h")
      scale = 3600;
    else if (unit == "d")
      scale = 86400;
    else if (unit == "w")
      scale = 7 * 86400;
    else if (unit.empty())
      throw bad("no unit after " + number);
    else
      throw bad("unknown unit " + quoted(unit));
    total += std::stod(number) * scale;
  }
  if (!std::isfinite(total) || total > 1e11)
    throw bad("it is too long");
  return jobsched::Seconds{total};
}

jobsched::TimePoint parse_time(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return UsageError("bad time " + quoted(text) + ": " + why +
                      "; expected an ISO-8601 time such as 2026-12-01T18:30:00Z, "
                      "2026-12-01T18:30+01:00 or 2026-12-01 (UTC when no offset is given)");
  };
  std::size_t at = 0;
  const auto year = digits(text, at, 4);
  const bool dash1 = at < text.size() && text[at] == '-' && ++at;
  const auto month = dash1 ? digits(text, at, 2) : std::nullopt;
  const bool dash2 = month && at < text.size() && text[at] == '-' && ++at;
  const auto day = dash2 ? digits(text, at, 2) : std::nullopt;
  if (!year || !month || !day)
    throw bad("no date YYYY-MM-DD");
  if (*year < 1 || *month < 1 || *month > 12 || *day < 1 || *day > days_in_month(*year, *month))
    throw bad("no such date");
  unsigned hour = 0;
  unsigned minute = 0;
  double second = 0;
  double offset = 0;
  if (at < text.size()) {
    if (text[at] != 'T' && text[at] != 't' && text[at] != ' ')
      throw bad("expected 'T' after the date");
    ++at;
    const auto h = digits(text, at, 2);
    const bool colon = h && at < text.size() && text[at] == ':' && ++at;
    const auto m = colon ? digits(text, at, 2) : std::nullopt;
    if (!h || !m || *h > 23 || *m > 59)
      throw bad("no time HH:MM");
    hour = *h;
    minute = *m;
    if (at < text.size() && text[at] == ':') {
      ++at;
      const auto s = digits(text, at, 2);
      if (!s || *s > 59)
        throw bad("bad seconds");
      second = *s;
      if (at < text.size() && text[at] == '.') {
        ++at;
        double scale = 0.1;
        const std::size_t fraction_start = at;
        for (; at < text.size() && is_digit(text[at]); ++at, scale /= 10)
          second += (text[at] - '0') * scale;
        if (at == fraction_start)
          throw bad("no digits after '.'");
      }
    }
    if (at < text.size() && (text[at] == 'Z' || text[at] == 'z')) {
      ++at;
    } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
      const double sign = text[at] == '-' ? -1 : 1;
      ++at;
      const auto oh = digits(text, at, 2);
      if (at < text.size() && text[at] == ':')
        ++at;
      const auto om = oh ? digits(text, at, 2) : std::nullopt;
      if (!oh || !om || *oh > 23 || *om > 59)
        throw bad("bad offset (expected +HH:MM)");
      offset = sign * (*oh * 3600.0 + *om * 60.0);
    }
    if (at != text.size())
      throw bad("unexpected " + quoted(text.substr(at)));
  }
  const double days = static_cast<double>(days_from_civil(*year, *month, *day));
  return jobsched::from_unix_seconds(days * 86400 + hour * 3600.0 + minute * 60.0 + second -
                                     offset);
}

std::string format_time(jobsched::TimePoint time) {
  const double seconds = jobsched::to_unix_seconds(time);
  auto millis = static_cast<std::int64_t>(std::llround(seconds * 1000));
  std::int64_t days = millis / 86400000;
  std::int64_t rest = millis % 86400000;
  if (rest < 0) {
    rest += 86400000;
    --days;
  }
  const Civil date = civil_from_days(days);
  const auto hour = static_cast<int>(rest / 3600000);
  const auto minute = static_cast<int>(rest / 60000 % 60);
  const auto second = static_cast<int>(rest / 1000 % 60);
  const auto milli = static_cast<int>(rest % 1000);
  char buffer[48];
  if (milli == 0) {
    std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02d:%02d:%02dZ",
                  static_cast<long long>(date.year), date.month, date.day, hour, minute, second);
  } else {
    std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ",
                  static_cast<long long>(date.year), date.month, date.day, hour, minute, second,
                  milli);
  }
  return buffer;
}

std::string format_duration(jobsched::Seconds duration) {
  double seconds = duration.count();
  std::string sign = seconds < 0 ? "-" : "";
  seconds = std::fabs(seconds);
  char buffer[32];
  if (seconds < 60) {
    std::snprintf(buffer, sizeof buffer, "%.3f", seconds);
    std::string text = buffer;
    while (text.back() == '0')
      text.pop_back();
    if (text.back() == '.')
      text.pop_back();
    return sign + text + "s";
  }
  auto whole = static_cast<std::int64_t>(std::llround(seconds));
  std::string text;
  const std::pair<std::int64_t, const char*> units[] = {
      {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  for (const auto& [size, name] : units) {
    if (whole >= size) {
      text += std::to_string(whole / size) + name;
      whole %= size;
    }
  }
  return sign + text;
}

}  // namespace jobsched_cli
