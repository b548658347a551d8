// SPDX-License-Identifier: MIT
#pragma once

// Standard 5-field cron: parsing, matching, and the next firing in a time zone, as Vixie cron
// fires them across daylight-saving changes.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../time_zone.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// ---- The parsed expression ----------------------------------------------------------

// Bit n of each mask is value n of its field. Day-of-week 7 is folded into 0 (Sunday).
struct CronSpec {
  std::string text;  // canonical: the five fields upper-cased, one space apart; or "@daily"
  std::uint64_t minutes = 0;
  std::uint64_t hours = 0;
  std::uint64_t days = 0;
  std::uint64_t months = 0;
  std::uint64_t weekdays = 0;
  bool day_star = false;      // the day-of-month field starts with '*'
  bool weekday_star = false;  // the day-of-week field starts with '*'
  bool fixed_time = false;    // neither the minute nor the hour field starts with '*'
  bool can_fire = false;      // some calendar day matches (not so for "0 0 30 2 *")
};

struct CronField {
  const char* name;
  int lowest;
  int highest;
  const char* const* names;  // names[i] is value first_named + i; null when the field has none
  int name_count;
  int first_named;
};

inline constexpr const char* cron_month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                   "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
inline constexpr const char* cron_weekday_names[] = {"SUN", "MON", "TUE", "WED",
                                                     "THU", "FRI", "SAT"};

inline constexpr CronField cron_fields[] = {
    {"minute", 0, 59, nullptr, 0, 0},
    {"hour", 0, 23, nullptr, 0, 0},
    {"day-of-month", 1, 31, nullptr, 0, 0},
    {"month", 1, 12, cron_month_names, 12, 1},
    {"day-of-week", 0, 7, cron_weekday_names, 7, 0},
};

inline char ascii_upper(char c) noexcept {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

inline char ascii_lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// The words of `text`, split at runs of white space.
inline std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i]))
      ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_blank(text[i]))
      ++i;
    if (i > start)
      words.push_back(text.substr(start, i - start));
  }
  return words;
}

[[noreturn]] inline void throw_cron(std::string_view expression, const std::string& what) {
  throw_invalid("cron expression " + quoted_text(expression) + ": " + what);
}

inline bool all_digits(std::string_view text) noexcept {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// One value of a field: a number, or (months, days of the week) a name in any case.
inline int parse_cron_value(std::string_view expression, const CronField& field,
                            std::string_view item, std::string_view value) {
  const std::string range = std::to_string(field.lowest) + "-" + std::to_string(field.highest);
  if (all_digits(value)) {
    int number = 0;
    for (const char c : value) {
      number = number * 10 + (c - '0');
      if (number > field.highest)
        break;
    }
    if (number < field.lowest || number > field.highest) {
      throw_cron(expression, std::string(field.name) + " value " + quoted_text(value) +
                                 " is out of range " + range);
    }
    return number;
  }
  if (field.names != nullptr && value.size() == 3) {
    for (int i = 0; i < field.name_count; ++i) {
      const char* name = field.names[i];
      if (ascii_upper(value[0]) == name[0] && ascii_upper(value[1]) == name[1] &&
          ascii_upper(value[2]) == name[2])
        return field.first_named + i;
    }
  }
  std::string expected = "a number " + range;
  if (field.names != nullptr) {
    expected +=
        std::string(" or a name ") + field.names[0] + "-" + field.names[field.name_count - 1];
  }
  throw_cron(expression, std::string(field.name) + " " + quoted_text(item) + ": " +
                             quoted_text(value) + " is not " + expected);
}

// One list item: "*", "a", "a-b", each optionally "/step" ("a/step" means a-highest/step).
inline std::uint64_t parse_cron_item(std::string_view expression, const CronField& field,
                                     std::string_view item) {
  const std::size_t slash = item.find('/');
  const std::string_view base = item.substr(0, slash);
  int lowest = field.lowest;
  int highest = field.highest;
  if (base != "*") {
    const std::size_t dash = base.find('-');
    lowest = parse_cron_value(expression, field, item, base.substr(0, dash));
    if (dash != std::string_view::npos)
      highest = parse_cron_value(expression, field, item, base.substr(dash + 1));
    else if (slash == std::string_view::npos)
      highest = lowest;
    if (lowest > highest) {
      throw_cron(expression, std::string(field.name) + " range " + quoted_text(item) +
                                 " is reversed: its start is after its end");
    }
  }
  int step = 1;
  if (slash != std::string_view::npos) {
    const std::string_view step_text = item.substr(slash + 1);
    const int largest_step = field.highest - field.lowest + 1;
    if (!all_digits(step_text)) {
      throw_cron(expression, std::string(field.name) + " " + quoted_text(item) + ": the step " +
                                 quoted_text(step_text) + " is not a number");
    }
    step = 0;
    for (const char c : step_text) {
      step = step * 10 + (c - '0');
      if (step > largest_step)
        break;
    }
    if (step < 1 || step > largest_step) {
      throw_cron(expression, std::string(field.name) + " " + quoted_text(item) + ": the step " +
                                 quoted_text(step_text) + " must be 1 to " +
                                 std::to_string(largest_step));
    }
  }
  std::uint64_t mask = 0;
  for (int value = lowest; value <= highest; value += step)
    mask |= std::uint64_t{1} << value;
  return mask;
}

// A field: a comma-separated list of items.
inline std::uint64_t parse_cron_field(std::string_view expression, const CronField& field,
                                      std::string_view text) {
  std::uint64_t mask = 0;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) {
      throw_cron(expression,
                 std::string(field.name) + " " + quoted_text(text) + " has an empty list item");
    }
    mask |= parse_cron_item(expression, field, item);
    if (comma == std::string_view::npos)
      return mask;
    start = comma + 1;
  }
}

struct CronShorthand {
  const char* name;
  const char* fields;
};

inline constexpr CronShorthand cron_shorthands[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

inline CronSpec parse_cron_fields(std::string_view expression,
                                  const std::vector<std::string_view>& words) {
  CronSpec spec;
  std::uint64_t* masks[] = {&spec.minutes, &spec.hours, &spec.days, &spec.months, &spec.weekdays};
  for (std::size_t i = 0; i < 5; ++i) {
    *masks[i] = parse_cron_field(expression, cron_fields[i], words[i]);
    if (i > 0)
      spec.text += ' ';
    for (const char c : words[i])
      spec.text += ascii_upper(c);
  }
  constexpr std::uint64_t sunday = 1;
  constexpr std::uint64_t seventh_day = std::uint64_t{1} << 7;
  if ((spec.weekdays & seventh_day) != 0)
    spec.weekdays = (spec.weekdays & ~seventh_day) | sunday;
  spec.day_star = words[2].front() == '*';
  spec.weekday_star = words[4].front() == '*';
  spec.fixed_time = words[0].front() != '*' && words[1].front() != '*';
  // Either day field matching is enough when both are restricted; otherwise both must match,
  // and then some month must have one of the days (February counts 29).
  spec.can_fire = !spec.day_star && !spec.weekday_star;
  for (int month = 1; month <= 12 && !spec.can_fire; ++month) {
    if ((spec.months >> month & 1) == 0)
      continue;
    const int longest = month == 2 ? 29 : days_in_month(2001, month);
    for (int day = 1; day <= longest && !spec.can_fire; ++day)
      spec.can_fire = (spec.days >> day & 1) != 0;
  }
  return spec;
}

// Parses "*/15 9-17 * * MON-FRI" or a shorthand such as "@daily"; InvalidArgumentError naming
// the field and the value otherwise.
inline CronSpec parse_cron(std::string_view expression) {
  const std::vector<std::string_view> words = split_words(expression);
  if (words.size() == 1 && words[0].front() == '@') {
    std::string word;
    for (const char c : words[0])
      word += ascii_lower(c);
    for (const CronShorthand& shorthand : cron_shorthands) {
      if (word == shorthand.name) {
        CronSpec spec = parse_cron_fields(shorthand.fields, split_words(shorthand.fields));
        spec.text = word;
        return spec;
      }
    }
    if (word == "@reboot") {
      throw_cron(expression,
                 "@reboot means \"when cron starts\", not a time; jobsched schedules only times");
    }
    throw_cron(expression, "unknown shorthand " + quoted_text(words[0]) +
                               "; the shorthands are @yearly, @annually, @monthly, @weekly, "
                               "@daily, @midnight and @hourly");
  }
  if (words.size() != 5) {
    throw_cron(expression, "has " + std::to_string(words.size()) +
                               " fields; cron needs exactly 5 (minute hour day-of-month month "
                               "day-of-week) or one shorthand such as @daily");
  }
  return parse_cron_fields(expression, words);
}

// ---- Matching -------------------------------------------------------------------------

// Vixie cron: when either day field starts with '*', a day must match both; otherwise either.
inline bool cron_day_matches(const CronSpec& spec, int day, int weekday) noexcept {
  const bool by_day = (spec.days >> day & 1) != 0;
  const bool by_weekday = (spec.weekdays >> weekday & 1) != 0;
  return spec.day_star || spec.weekday_star ? by_day && by_weekday : by_day || by_weekday;
}

// Whether the wall-clock time `local_seconds` (seconds since 1970-01-01 00:00 local) matches.
inline bool cron_matches(const CronSpec& spec, std::int64_t local_seconds) noexcept {
  const std::int64_t days = floor_div(local_seconds, 86400);
  const std::int64_t second_of_day = local_seconds - days * 86400;
  const CivilDate date = civil_from_days(days);
  return second_of_day % 60 == 0 && (spec.months >> date.month & 1) != 0 &&
         cron_day_matches(spec, date.day, weekday_from_days(days)) &&
         (spec.hours >> (second_of_day / 3600) & 1) != 0 &&
         (spec.minutes >> (second_of_day / 60 % 60) & 1) != 0;
}

// The smallest value >= from set in mask, up to highest; -1 when none.
inline int next_cron_value(std::uint64_t mask, int from, int highest) noexcept {
  for (int value = from; value <= highest; ++value) {
    if ((mask >> value & 1) != 0)
      return value;
  }
  return -1;
}

// The first matching day >= day of year/month; -1 when none is left in the month.
inline int next_cron_day(const CronSpec& spec, std::int64_t year, int month, int day) noexcept {
  const int last = days_in_month(year, month);
  if (day > last)
    return -1;
  int weekday = weekday_from_days(days_from_civil(year, month, day));
  for (; day <= last; ++day, weekday = (weekday + 1) % 7) {
    if (cron_day_matches(spec, day, weekday))
      return day;
  }
  return -1;
}

// Wall-clock searches stop after this local year (a UTC time before the year 10000 is never
// later than 10000-01-01 on a wall clock).
inline constexpr std::int64_t last_cron_year = 10000;

// The first matching wall-clock minute at or after `from` (a whole minute, local seconds since
// 1970), or empty before the end of last_cron_year. Skips by field: month, day, hour, minute.
inline std::optional<std::int64_t> next_cron_local(const CronSpec& spec, std::int64_t from) {
  if (!spec.can_fire)
    return std::nullopt;
  const std::int64_t start_day = floor_div(from, 86400);
  const std::int64_t second_of_day = from - start_day * 86400;
  const CivilDate start = civil_from_days(start_day);
  std::int64_t year = start.year;
  int month = start.month;
  int day = start.day;
  int hour = static_cast<int>(second_of_day / 3600);
  int minute = static_cast<int>(second_of_day / 60 % 60);
  const auto next_month = [&] {
    if (++month > 12) {
      month = 1;
      ++year;
    }
    day = 1;
    hour = 0;
    minute = 0;
  };
  while (year <= last_cron_year) {
    if ((spec.months >> month & 1) == 0) {
      next_month();
      continue;
    }
    const int matching_day = next_cron_day(spec, year, month, day);
    if (matching_day < 0) {
      next_month();
      continue;
    }
    if (matching_day != day) {
      day = matching_day;
      hour = 0;
      minute = 0;
    }
    const int matching_hour = next_cron_value(spec.hours, hour, 23);
    if (matching_hour < 0) {
      ++day;
      hour = 0;
      minute = 0;
      continue;
    }
    if (matching_hour != hour) {
      hour = matching_hour;
      minute = 0;
    }
    const int matching_minute = next_cron_value(spec.minutes, minute, 59);
    if (matching_minute < 0) {
      minute = 0;
      if (++hour > 23) {
        hour = 0;
        ++day;
      }
      continue;
    }
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + matching_minute * 60;
  }
  return std::nullopt;
}

inline std::int64_t ceil_to_minute(std::int64_t seconds) noexcept {
  return floor_div(seconds + 59, 60) * 60;
}

// The first firing strictly after `after` (UTC seconds), or empty when none comes before the
// year 10000. Follows the zone's offsets span by span. Daylight saving as Vixie cron: a
// fixed-time rule's firings that fall in a skipped interval run once, at the jump; in a
// repeated interval they run at the first occurrence only. A wildcard rule follows the wall
// clock: skipped times never come, repeated times fire twice.
inline std::optional<std::int64_t> next_cron_firing(const CronSpec& spec, const TimeZone& zone,
                                                    std::int64_t after) {
  constexpr auto end = static_cast<std::int64_t>(end_of_time);
  if (!spec.can_fire)
    return std::nullopt;
  std::int64_t cursor = after + 1;
  while (cursor < end) {
    const ZoneSpan span = zone_span(zone, cursor);
    const std::int64_t begin = std::min(span.begin, cursor);
    const std::int64_t span_end = std::max(span.end, cursor + 1);
    const std::int64_t offset = span.offset;
    std::int64_t lowest_local = std::max(after + 1, begin) + offset;
    // The offset before this span only matters when the span began near `after`.
    if (spec.fixed_time && begin > -unbounded_time && begin > after - 2 * 86400) {
      const std::int64_t previous = zone_span(zone, begin - 1).offset;
      if (previous < offset && begin > after) {
        // Spring forward: local [begin + previous, begin + offset) never happened.
        const auto skipped = next_cron_local(spec, ceil_to_minute(begin + previous));
        if (skipped && *skipped < begin + offset)
          return begin;
      } else if (previous > offset) {
        // Fall back: local [begin + offset, begin + previous) comes again; it fired already.
        lowest_local = std::max(lowest_local, begin + previous);
      }
    }
    const auto local = next_cron_local(spec, ceil_to_minute(lowest_local));
    if (local && *local < span_end + offset) {
      const std::int64_t instant = *local - offset;
      if (instant >= end)
        return std::nullopt;
      return instant;
    }
    cursor = span_end;
  }
  return std::nullopt;
}

}  // namespace jobsched::detail
