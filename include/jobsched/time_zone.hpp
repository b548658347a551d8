// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
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
class DateTzZone final : public ZoneRules {
 public:
  explicit DateTzZone(const date::time_zone* zone) noexcept : zone_(zone) {}
  ZoneSpan span_at(std::int64_t utc_seconds) const override {
    const auto info = zone_->get_info(date::sys_seconds{std::chrono::seconds{utc_seconds}});
    return {static_cast<std::int64_t>(info.begin.time_since_epoch().count()),
            static_cast<std::int64_t>(info.end.time_since_epoch().count()),
            static_cast<std::int64_t>(info.offset.count())};
  }

 private:
  const date::time_zone* zone_;
};
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
#if defined(JOBSCHED_DETAIL_STD_TZ)
      auto rules = std::make_shared<const detail::StdChronoZone>(std::chrono::locate_zone(name));
#else
      auto rules = std::make_shared<const detail::DateTzZone>(date::locate_zone(name));
#endif
      TimeZone zone;
      zone.name_ = name;
      zone.rules_ = std::move(rules);
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
