// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <cstdint>
#include <locale>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/cron.hpp"
#include "detail/validate.hpp"
#include "error.hpp"
#include "time.hpp"
#include "time_zone.hpp"

namespace jobsched {

namespace detail {

// The shortest decimal that reads back as the same double, whatever the C++ locale:
// "90", "0.1", "1700000000.25", "1e+300".
inline std::string format_exact(double value) {
  std::string text;
  for (int precision = 15; precision <= 17; ++precision) {
    std::ostringstream out;
    out.imbue(std::locale::classic());
    out.precision(precision);
    out << value;
    text = out.str();
    std::istringstream in(text);
    in.imbue(std::locale::classic());
    double back = 0;
    if (in >> back && back == value)
      break;
  }
  return text;
}

// A decimal number as format_exact writes it (an optional '-', digits with an optional
// fraction, an optional exponent); empty for anything else or a value out of double's range.
inline std::optional<double> parse_exact(std::string_view text) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9')
      ++i;
    return i - start;
  };
  if (i < text.size() && text[i] == '-')
    ++i;
  std::size_t mantissa = digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0)
    return std::nullopt;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-'))
      ++i;
    if (digits() == 0)
      return std::nullopt;
  }
  if (i != text.size())
    return std::nullopt;
  std::istringstream in{std::string(text)};
  in.imbue(std::locale::classic());
  double value = 0;
  if (!(in >> value) || !std::isfinite(value))
    return std::nullopt;
  return value;
}

// Interval rules refuse anything shorter: below it, firings near the year 9999 would round
// onto each other (a double there resolves about 30 microseconds).
inline constexpr double shortest_interval = 0.001;

}  // namespace detail

/// When a schedule fires: every fixed interval from an anchor, or a 5-field cron expression
/// read on the wall clock of a time zone. An immutable value: copies may be used from any thread.
///
/// Text form (to_string, parse): "every SECONDS from UNIX_SECONDS", e.g. "every 90 from 0"
/// ("from ..." may be left out on parse: the Unix epoch), and "cron EXPRESSION in ZONE", e.g.
/// "cron */15 9-17 * * MON-FRI in Europe/Berlin" ("in ZONE" may be left out: UTC).
class Rule {
 public:
  /// Firings at anchor + k * interval for every integer k, so they never drift. The interval
  /// must be finite and at least 1 ms, the anchor within the years 1 to 9999;
  /// InvalidArgumentError naming the value otherwise.
  static Rule every(Seconds interval, TimePoint anchor = TimePoint{}) {
    const double seconds = interval.count();
    if (!std::isfinite(seconds) || !(seconds >= detail::shortest_interval)) {
      detail::throw_invalid("an interval rule needs a finite interval of at least 0.001 s, got " +
                            detail::format_exact(seconds) + " s");
    }
    const double start = detail::checked_time("an interval rule's anchor", anchor);
    Rule rule;
    rule.interval_ = seconds;
    rule.anchor_ = start == 0 ? 0.0 : start;  // no "-0"
    return rule;
  }

  /// Standard 5-field cron ("minute hour day-of-month month day-of-week", names such as
  /// MON-FRI or JAN in any case, "*", lists, ranges, steps, "a/n" for a-last/n) or a shorthand
  /// (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`),
  /// fired at whole minutes of `zone`'s wall clock. Day of month and day of week: either may
  /// match when both are restricted, both must when either starts with '*'. Across daylight
  /// saving as Vixie cron. InvalidArgumentError naming the field and value that are wrong.
  static Rule cron(std::string_view expression, TimeZone zone = TimeZone::utc()) {
    Rule rule;
    rule.cron_ = true;
    rule.spec_ = detail::parse_cron(expression);
    rule.zone_ = std::move(zone);
    return rule;
  }

  /// The text form (see the class comment); InvalidArgumentError naming the text and its bad
  /// part.
  static Rule parse(std::string_view text) {
    try {
      return parse_words(detail::split_words(text));
    } catch (const InvalidArgumentError& error) {
      std::string_view reason = error.what();
      constexpr std::string_view prefix = "jobsched: ";
      if (reason.substr(0, prefix.size()) == prefix)
        reason.remove_prefix(prefix.size());
      detail::throw_invalid("rule " + detail::quoted_text(text) + ": " + std::string(reason));
    }
  }

  /// The text form: parse(to_string()) == *this, the interval and anchor bit for bit.
  std::string to_string() const {
    if (cron_)
      return "cron " + spec_.text + " in " + zone_.name();
    return "every " + detail::format_exact(interval_) + " from " + detail::format_exact(anchor_);
  }

  /// The first firing strictly after `after`; empty when there is none before the year 10000.
  /// InvalidArgumentError when `after` is not a time within the years 1 to 9999.
  std::optional<TimePoint> next_after(TimePoint after) const {
    const double now = detail::checked_time("after", after);
    if (cron_) {
      const auto firing =
          detail::next_cron_firing(spec_, zone_, static_cast<std::int64_t>(std::floor(now)));
      if (!firing)
        return std::nullopt;
      return from_unix_seconds(static_cast<double>(*firing));
    }
    const auto at = [this](double k) { return anchor_ + k * interval_; };
    double k = std::floor((now - anchor_) / interval_) + 1;
    // The estimate is off by at most one either way; each step moves by >= 30 ulps.
    for (int i = 0; i < 4 && at(k - 1) > now; ++i)
      k -= 1;
    for (int i = 0; i < 4 && at(k) <= now; ++i)
      k += 1;
    const double firing = at(k);
    if (!(firing < detail::end_of_time))
      return std::nullopt;
    return from_unix_seconds(firing);
  }

  /// True for a cron rule, false for an interval rule.
  bool is_cron() const noexcept { return cron_; }

  /// Equal when their text forms are equal (so "mon" and "MON" are, "@daily" and "0 0 * * *"
  /// are not).
  friend bool operator==(const Rule& a, const Rule& b) noexcept {
    if (a.cron_ != b.cron_)
      return false;
    if (a.cron_)
      return a.spec_.text == b.spec_.text && a.zone_ == b.zone_;
    return a.interval_ == b.interval_ && a.anchor_ == b.anchor_;
  }
  /// Not equal.
  friend bool operator!=(const Rule& a, const Rule& b) noexcept { return !(a == b); }

 private:
  Rule() = default;

  static Rule parse_words(const std::vector<std::string_view>& words) {
    const auto number = [](std::string_view what, std::string_view word) {
      const std::optional<double> value = detail::parse_exact(word);
      if (!value) {
        detail::throw_invalid(std::string(what) + " " + detail::quoted_text(word) +
                              " is not a decimal number");
      }
      return *value;
    };
    if (!words.empty() && words[0] == "every") {
      if (words.size() != 2 && !(words.size() == 4 && words[2] == "from")) {
        detail::throw_invalid(
            "an interval rule reads \"every SECONDS\" or \"every SECONDS from "
            "UNIX_SECONDS\"");
      }
      const double interval = number("the interval", words[1]);
      const double anchor = words.size() == 4 ? number("the anchor", words[3]) : 0.0;
      return every(Seconds{interval}, from_unix_seconds(anchor));
    }
    if (!words.empty() && words[0] == "cron") {
      std::size_t in = 1;
      while (in < words.size() && words[in] != "in")
        ++in;
      if (in + 2 < words.size() || in + 1 == words.size())
        detail::throw_invalid("a cron rule ends with \"in ZONE\" or with its expression");
      std::string expression;
      for (std::size_t i = 1; i < in; ++i)
        expression += (i > 1 ? " " : "") + std::string(words[i]);
      TimeZone zone = in < words.size() ? TimeZone::parse(words[in + 1]) : TimeZone::utc();
      return cron(expression, std::move(zone));
    }
    detail::throw_invalid(
        "a rule reads \"every SECONDS [from UNIX_SECONDS]\" or \"cron EXPRESSION [in ZONE]\"");
  }

  bool cron_ = false;
  double interval_ = 0;  // seconds, interval rules
  double anchor_ = 0;    // Unix seconds, interval rules
  detail::CronSpec spec_;
  TimeZone zone_;
};

}  // namespace jobsched
