// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "detail/validate.hpp"

// Named zones come from the first zone database this translation unit has:
//  1. C++20 <chrono> (std::chrono::locate_zone), when the standard library really ships it:
//     __cpp_lib_chrono >= 201907L, and not libstdc++ before 13 (g++ 12 claims C++20 but has
//     no time zones). Define JOBSCHED_NO_STD_TZ to skip it.
//  2. Howard Hinnant's date/tz, when JOBSCHED_HAS_DATE_TZ is defined: link the CMake target
//     jobsched::tz, which defines it and links date::date-tz (it reads /usr/share/zoneinfo).
//  3. None: UTC and fixed offsets work, a zone name is refused with InvalidArgumentError.
// Every translation unit of a program must make the same choice: link jobsched::tz to every
// target that includes jobsched, or to none.
#if __has_include(<version>)
#include <version>
#endif
#if !defined(JOBSCHED_NO_STD_TZ) && defined(__cpp_lib_chrono) && __cpp_lib_chrono >= 201907L && \
    (!defined(_GLIBCXX_RELEASE) || _GLIBCXX_RELEASE >= 13)
#define JOBSCHED_DETAIL_STD_TZ 1
#elif defined(JOBSCHED_HAS_DATE_TZ)
#define JOBSCHED_DETAIL_DATE_TZ 1
#include <date/tz.h>
#endif

namespace jobsched {

class TimeZone;

namespace detail {

// A text for messages, in double quotes: quotes, backslashes and unprintable bytes escaped,
// anything past 80 bytes cut to "...".
inline std::string quoted_text(std::string_view text) {
  constexpr std::size_t longest = 80;
  std::string quoted = "\"";
  for (std::size_t i = 0; i < text.size() && i < longest; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '"' || byte == '\\') {
      quoted += '\\';
      quoted += static_cast<char>(byte);
    } else if (byte < 0x20 || byte >= 0x7f) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(byte));
      quoted += buffer;
    } else {
      quoted += static_cast<char>(byte);
    }
  }
  if (text.size() > longest)
    quoted += "...";
  return quoted + "\"";
}

// ---- The civil calendar (proleptic Gregorian; Howard Hinnant's algorithms) ------------

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t quotient = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? quotient - 1 : quotient;
}

inline std::int64_t days_from_civil(std::int64_t year, int month, int day) noexcept {
  const std::int64_t y = month <= 2 ? year - 1 : year;
  const std::int64_t era = floor_div(y, 400);
  const std::int64_t year_of_era = y - era * 400;
  const std::int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const std::int64_t day_of_era =
      year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

struct CivilDate {
  std::int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

inline CivilDate civil_from_days(std::int64_t days) noexcept {
  const std::int64_t shifted = days + 719468;
  const std::int64_t era = floor_div(shifted, 146097);
  const std::int64_t day_of_era = shifted - era * 146097;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t month_index = (5 * day_of_year + 2) / 153;
  const int day = static_cast<int>(day_of_year - (153 * month_index + 2) / 5 + 1);
  const int month = static_cast<int>(month_index < 10 ? month_index + 3 : month_index - 9);
  return {year_of_era + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

inline bool is_leap_year(std::int64_t year) noexcept {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

inline int days_in_month(std::int64_t year, int month) noexcept {
  constexpr int lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap_year(year) ? 29 : lengths[month - 1];
}

// 0 = Sunday ... 6 = Saturday; day 0 (1970-01-01) was a Thursday.
inline int weekday_from_days(std::int64_t days) noexcept {
  const std::int64_t weekday = (days + 4) % 7;
  return static_cast<int>(weekday < 0 ? weekday + 7 : weekday);
}

// A stretch of time with one UTC offset: [begin, end) in seconds since 1970 (UTC), offset
// in seconds east of UTC. An unbounded end is +/- unbounded_time.
struct ZoneSpan {
  std::int64_t begin;
  std::int64_t end;
  std::int64_t offset;
};

inline constexpr std::int64_t unbounded_time = std::int64_t{1} << 62;

// The offsets of a zone from a database; immutable, shared by copies of a TimeZone.
class ZoneRules {
 public:
  ZoneRules() = default;
  ZoneRules(const ZoneRules&) = delete;
  ZoneRules& operator=(const ZoneRules&) = delete;
  virtual ~ZoneRules() = default;
  virtual ZoneSpan span_at(std::int64_t utc_seconds) const = 0;
};

// ---- POSIX TZ rules, as TZif files (version 2 and later) end with ----------------------
// "CET-1CEST,M3.5.0,M10.5.0/3": standard time and, when there is one, daylight time with the
// day and local time it starts and ends. Offsets in the text count west, stored here east.

struct PosixTzDay {
  char kind = 'M';  // 'J' day 1-365 (no February 29), 'D' day 0-365, 'M' month.week.weekday
  int day = 0;
  int month = 0;
  int week = 0;  // 1-5, 5 the last
  int weekday = 0;
  std::int64_t time = 7200;  // seconds after local midnight, -167 h to 167 h
};

struct PosixTz {
  std::int64_t standard_offset = 0;
  bool has_daylight = false;
  std::int64_t daylight_offset = 0;
  PosixTzDay starts;
  PosixTzDay ends;
};

inline std::optional<PosixTz> parse_posix_tz(std::string_view text) {
  std::size_t i = 0;
  const auto more = [&] { return i < text.size(); };
  const auto name = [&] {
    if (more() && text[i] == '<') {
      const std::size_t close = text.find('>', i);
      if (close == std::string_view::npos || close - i < 4)
        return false;
      i = close + 1;
      return true;
    }
    const std::size_t start = i;
    while (more() && ((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= 'a' && text[i] <= 'z')))
      ++i;
    return i - start >= 3;
  };
  const auto number = [&](int& value, int largest) {
    const std::size_t start = i;
    value = 0;
    while (more() && text[i] >= '0' && text[i] <= '9' && value <= largest)
      value = value * 10 + (text[i++] - '0');
    return i > start && value <= largest;
  };
  // [+-]hh[:mm[:ss]] in seconds.
  const auto clock = [&](std::int64_t& seconds) {
    std::int64_t sign = 1;
    if (more() && (text[i] == '+' || text[i] == '-'))
      sign = text[i++] == '-' ? -1 : 1;
    int hours = 0;
    int minutes = 0;
    int secs = 0;
    if (!number(hours, 167))
      return false;
    if (more() && text[i] == ':' && (++i, !number(minutes, 59)))
      return false;
    if (more() && text[i] == ':' && (++i, !number(secs, 59)))
      return false;
    seconds = sign * (hours * 3600 + minutes * 60 + secs);
    return true;
  };
  const auto day = [&](PosixTzDay& when) {
    if (more() && text[i] == 'J') {
      ++i;
      when.kind = 'J';
      if (!number(when.day, 365) || when.day < 1)
        return false;
    } else if (more() && text[i] == 'M') {
      ++i;
      when.kind = 'M';
      if (!number(when.month, 12) || when.month < 1 || !more() || text[i++] != '.' ||
          !number(when.week, 5) || when.week < 1 || !more() || text[i++] != '.' ||
          !number(when.weekday, 6))
        return false;
    } else {
      when.kind = 'D';
      if (!number(when.day, 365))
        return false;
    }
    when.time = 7200;
    return !(more() && text[i] == '/') || (++i, clock(when.time));
  };
  PosixTz tz;
  std::int64_t west = 0;
  if (!name() || !clock(west))
    return std::nullopt;
  tz.standard_offset = -west;
  if (!more())
    return tz;
  if (!name())
    return std::nullopt;
  tz.has_daylight = true;
  tz.daylight_offset = tz.standard_offset + 3600;
  if (more() && text[i] != ',') {
    if (!clock(west))
      return std::nullopt;
    tz.daylight_offset = -west;
  }
  // Without dates POSIX leaves the rule to the implementation; TZif files always give them.
  if (!more() || text[i++] != ',' || !day(tz.starts) || !more() || text[i++] != ',' ||
      !day(tz.ends) || more())
    return std::nullopt;
  return tz;
}

// The local midnight that starts `when` in `year`, in local seconds since 1970.
inline std::int64_t posix_tz_midnight(const PosixTzDay& when, std::int64_t year) noexcept {
  const std::int64_t january_first = days_from_civil(year, 1, 1);
  std::int64_t days = 0;
  if (when.kind == 'J') {
    days = january_first + when.day - 1 + (is_leap_year(year) && when.day >= 60 ? 1 : 0);
  } else if (when.kind == 'D') {
    days = january_first + when.day;
  } else {
    const std::int64_t first = days_from_civil(year, when.month, 1);
    days = first + (when.weekday - weekday_from_days(first) + 7) % 7 + (when.week - 1) * 7;
    if (days - first >= days_in_month(year, when.month))
      days -= 7;
  }
  return days * 86400;
}

// The span of a POSIX TZ rule with daylight time around `utc_seconds`, its begin no earlier
// than `earliest` (the zone's last listed transition).
inline ZoneSpan posix_tz_span(const PosixTz& tz, std::int64_t utc_seconds, std::int64_t earliest) {
  struct Change {
    std::int64_t at;
    std::int64_t offset;
  };
  Change changes[6];
  const std::int64_t year = civil_from_days(floor_div(utc_seconds, 86400)).year;
  for (std::int64_t y = year - 1, n = 0; y <= year + 1; ++y) {
    changes[n++] = {posix_tz_midnight(tz.starts, y) + tz.starts.time - tz.standard_offset,
                    tz.daylight_offset};
    changes[n++] = {posix_tz_midnight(tz.ends, y) + tz.ends.time - tz.daylight_offset,
                    tz.standard_offset};
  }
  std::stable_sort(std::begin(changes), std::end(changes),
                   [](const Change& a, const Change& b) { return a.at < b.at; });
  ZoneSpan span{earliest, unbounded_time, tz.standard_offset};
  for (const Change& change : changes) {
    if (change.at <= utc_seconds) {
      span.begin = std::max(change.at, earliest);
      span.offset = change.offset;
    } else if (change.at < span.end) {
      span.end = change.at;
    }
  }
  return span;
}

// Where the system keeps its TZif files (date/tz's default on Linux).
#ifdef JOBSCHED_ZONEINFO_DIR
inline constexpr const char* zoneinfo_directory = JOBSCHED_ZONEINFO_DIR;
#else
inline constexpr const char* zoneinfo_directory = "/usr/share/zoneinfo";
#endif

// The POSIX TZ rule a zone's TZif file ends with; empty when it has none or cannot be read.
inline std::optional<PosixTz> read_zone_rule(const std::string& name) {
  std::ifstream file(std::string(zoneinfo_directory) + "/" + name, std::ios::binary);
  std::string bytes;
  char buffer[4096];
  while (file && bytes.size() < (std::size_t{1} << 20)) {
    file.read(buffer, sizeof buffer);
    bytes.append(buffer, static_cast<std::size_t>(file.gcount()));
  }
  if (bytes.size() < 46 || bytes.compare(0, 4, "TZif") != 0 || bytes[4] < '2' ||
      bytes.back() != '\n')
    return std::nullopt;
  const std::size_t start = bytes.rfind('\n', bytes.size() - 2);
  if (start == std::string::npos)
    return std::nullopt;
  return parse_posix_tz(std::string_view(bytes).substr(start + 1, bytes.size() - start - 2));
}

#if defined(JOBSCHED_DETAIL_STD_TZ)
class StdChronoZone final : public ZoneRules {
 public:
  explicit StdChronoZone(const std::chrono::time_zone* zone) noexcept : zone_(zone) {}
  ZoneSpan span_at(std::int64_t utc_seconds) const override {
    const auto info = zone_->get_info(std::chrono::sys_seconds{std::chrono::seconds{utc_seconds}});
    return {static_cast<std::int64_t>(info.begin.time_since_epoch().count()),
            static_cast<std::int64_t>(info.end.time_since_epoch().count()),
            static_cast<std::int64_t>(info.offset.count())};
  }

 private:
  const std::chrono::time_zone* zone_;
};
#elif defined(JOBSCHED_DETAIL_DATE_TZ)
// date/tz on the system's zoneinfo (USE_OS_TZDB) reads a zone's listed transitions but not
// the rule its file ends with (HowardHinnant/date#563, #874), so daylight saving would stop
// after the last one listed (2037 in Debian's files). After it, the rule decides.
class DateTzZone final : public ZoneRules {
 public:
  DateTzZone(const date::time_zone* zone, std::optional<PosixTz> rule) noexcept
      : zone_(zone), rule_(std::move(rule)) {}
  ZoneSpan span_at(std::int64_t utc_seconds) const override {
    const auto info = zone_->get_info(date::sys_seconds{std::chrono::seconds{utc_seconds}});
    const ZoneSpan span{static_cast<std::int64_t>(info.begin.time_since_epoch().count()),
                        static_cast<std::int64_t>(info.end.time_since_epoch().count()),
                        static_cast<std::int64_t>(info.offset.count())};
    if (rule_ && rule_->has_daylight && span.end > static_cast<std::int64_t>(end_of_time))
      return posix_tz_span(*rule_, utc_seconds, span.begin);
    return span;
  }

 private:
  const date::time_zone* zone_;
  std::optional<PosixTz> rule_;
};
#endif

#if defined(JOBSCHED_DETAIL_STD_TZ) || defined(JOBSCHED_DETAIL_DATE_TZ)
// The zone named `name`, looked up once per process (zones never change while it runs);
// std::runtime_error from the database when it does not know the name.
inline std::shared_ptr<const ZoneRules> database_zone(const std::string& name) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::shared_ptr<const ZoneRules>> zones;
  {
    const std::lock_guard<std::mutex> lock(mutex);
    if (const auto found = zones.find(name); found != zones.end())
      return found->second;
  }
#if defined(JOBSCHED_DETAIL_STD_TZ)
  std::shared_ptr<const ZoneRules> zone =
      std::make_shared<const StdChronoZone>(std::chrono::locate_zone(name));
#else
  const date::time_zone* located = date::locate_zone(name);
  std::shared_ptr<const ZoneRules> zone =
      std::make_shared<const DateTzZone>(located, read_zone_rule(name));
#endif
  const std::lock_guard<std::mutex> lock(mutex);
  return zones.emplace(name, std::move(zone)).first->second;
}
#endif

struct ZoneAccess;

}  // namespace detail

/// Where cron rules read the wall clock: UTC, a fixed offset, or an IANA zone such as
/// "Europe/Berlin" (named zones need a zone database: see named_zones_supported()).
/// An immutable value: copies may be used from any thread.
class TimeZone {
 public:
  /// UTC.
  TimeZone() = default;

  /// UTC (also what fixed(0 min), parse("Z") and named("UTC") give).
  static TimeZone utc() { return TimeZone{}; }

  /// A fixed offset east of UTC in whole minutes, strictly within +/-24 h; InvalidArgumentError
  /// naming the value otherwise.
  static TimeZone fixed(std::chrono::minutes offset) {
    const auto minutes = offset.count();
    if (minutes <= -24 * 60 || minutes >= 24 * 60) {
      detail::throw_invalid("a fixed UTC offset must lie strictly between -24:00 and +24:00, got " +
                            std::to_string(minutes) + " minutes");
    }
    TimeZone zone;
    zone.offset_minutes_ = static_cast<std::int32_t>(minutes);
    return zone;
  }

  /// An IANA zone ("Europe/Berlin"). InvalidArgumentError naming the zone when it is unknown, or
  /// when this build has no zone database (the message says how to get one).
  static TimeZone named(const std::string& name) {
    if (name == "UTC")
      return utc();
    if (name.empty())
      detail::throw_invalid("a time zone name must not be empty");
#if defined(JOBSCHED_DETAIL_STD_TZ) || defined(JOBSCHED_DETAIL_DATE_TZ)
    try {
      TimeZone zone;
      zone.rules_ = detail::database_zone(name);
      zone.name_ = name;
      return zone;
    } catch (const std::runtime_error& error) {
      detail::throw_invalid("unknown time zone " + detail::quoted_text(name) +
                            " (the zone database says: " + error.what() + ")");
    }
#else
    detail::throw_invalid(
        "time zone " + detail::quoted_text(name) +
        " needs a time zone database, and this build of jobsched has none: link the CMake "
        "target jobsched::tz (Howard Hinnant's date/tz; Debian and Ubuntu package "
        "libhowardhinnant-date-dev), or build as C++20 with a standard library that has "
        "std::chrono::locate_zone. UTC and fixed offsets such as \"+01:00\" need no database");
#endif
  }

  /// "UTC" or "Z"; a fixed offset "+05:30", "-0800" or "+01" (a sign, two-digit hours,
  /// optional minutes); otherwise an IANA name as for named().
  static TimeZone parse(std::string_view text) {
    if (text == "UTC" || text == "Z")
      return utc();
    if (text.empty())
      detail::throw_invalid("a time zone must not be empty: give \"UTC\", \"+05:30\" or a name");
    if (text.front() >= '0' && text.front() <= '9') {
      detail::throw_invalid("time zone " + detail::quoted_text(text) +
                            " is not a zone name, and a UTC offset needs a sign, as in \"+05:30\"");
    }
    if (text.front() != '+' && text.front() != '-')
      return named(std::string(text));
    const auto digit = [&](std::size_t i) {
      return i < text.size() && text[i] >= '0' && text[i] <= '9';
    };
    const auto two_digits = [&](std::size_t i) {
      return (text[i] - '0') * 10 + (text[i + 1] - '0');
    };
    int hours = 0;
    int minutes = 0;
    if (text.size() == 3 && digit(1) && digit(2)) {
      hours = two_digits(1);
    } else if (text.size() == 5 && digit(1) && digit(2) && digit(3) && digit(4)) {
      hours = two_digits(1);
      minutes = two_digits(3);
    } else if (text.size() == 6 && digit(1) && digit(2) && text[3] == ':' && digit(4) && digit(5)) {
      hours = two_digits(1);
      minutes = two_digits(4);
    } else {
      detail::throw_invalid("time zone " + detail::quoted_text(text) +
                            " is not a UTC offset of the form +HH:MM, +HHMM or +HH");
    }
    if (minutes > 59) {
      detail::throw_invalid("time zone " + detail::quoted_text(text) +
                            ": the minutes of a UTC offset must be 00 to 59");
    }
    if (hours > 23) {
      detail::throw_invalid("time zone " + detail::quoted_text(text) +
                            ": a UTC offset must lie strictly between -24:00 and +24:00");
    }
    const int total = hours * 60 + minutes;
    return fixed(std::chrono::minutes{text.front() == '-' ? -total : total});
  }

  /// "UTC", a fixed offset as "+05:30" or "-08:00", or the IANA name; parse(name()) == *this.
  std::string name() const {
    if (rules_)
      return name_;
    if (offset_minutes_ == 0)
      return "UTC";
    const int magnitude = offset_minutes_ < 0 ? -offset_minutes_ : offset_minutes_;
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%c%02d:%02d", offset_minutes_ < 0 ? '-' : '+',
                  magnitude / 60, magnitude % 60);
    return buffer;
  }

  /// True when named() can work in this build (a zone database was compiled in).
  static bool named_zones_supported() noexcept {
#if defined(JOBSCHED_DETAIL_STD_TZ) || defined(JOBSCHED_DETAIL_DATE_TZ)
    return true;
#else
    return false;
#endif
  }

  /// Equal when both are UTC, the same fixed offset, or the same zone name.
  friend bool operator==(const TimeZone& a, const TimeZone& b) noexcept {
    return a.offset_minutes_ == b.offset_minutes_ &&
           (a.rules_ != nullptr) == (b.rules_ != nullptr) && a.name_ == b.name_;
  }
  /// Not equal.
  friend bool operator!=(const TimeZone& a, const TimeZone& b) noexcept {
    return !(a == b);
  }

 private:
  friend struct detail::ZoneAccess;

  std::int32_t offset_minutes_ = 0;                 // for UTC and fixed offsets
  std::string name_;                                // for named zones
  std::shared_ptr<const detail::ZoneRules> rules_;  // named zones only
};

namespace detail {

struct ZoneAccess {
  static ZoneSpan span_at(const TimeZone& zone, std::int64_t utc_seconds) {
    if (zone.rules_)
      return zone.rules_->span_at(utc_seconds);
    return {-unbounded_time, unbounded_time, std::int64_t{zone.offset_minutes_} * 60};
  }
};

// The offset of `zone` that holds at `utc_seconds`, and the stretch of time it holds for.
inline ZoneSpan zone_span(const TimeZone& zone, std::int64_t utc_seconds) {
  return ZoneAccess::span_at(zone, utc_seconds);
}

}  // namespace detail

}  // namespace jobsched
