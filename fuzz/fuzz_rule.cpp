// SPDX-License-Identifier: MIT
// libFuzzer target: the input is text, "RULE" or "RULE\nSTART" (START in Unix seconds; without
// it, one is made from the text). It is parsed twice, as Rule::parse and as Rule::cron(text,
// UTC): each must accept it or refuse it with InvalidArgumentError. An accepted rule's text
// form must parse back to an equal rule, and its next 20 firings from START must strictly
// increase and stay before the year 10000. For cron in UTC, every firing must match the
// expression, and no minute between START and the first firing (up to 3 hours) may.

#include <jobsched/rule.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace {

[[noreturn]] void bug(const std::string& what, const std::string& text) {
  std::fprintf(stderr, "fuzz_rule: %s\n  input: %s\n", what.c_str(),
               jobsched::detail::quoted_text(text).c_str());
  std::fflush(stderr);
  std::abort();
}

/// Runs `make`; InvalidArgumentError means refused (empty), anything else aborts.
std::optional<jobsched::Rule> attempt(const std::string& text,
                                      const std::function<jobsched::Rule()>& make) {
  try {
    return make();
  } catch (const jobsched::InvalidArgumentError&) {
    return std::nullopt;
  } catch (const std::exception& error) {
    bug(std::string("threw something other than InvalidArgumentError: ") + error.what(), text);
  } catch (...) {
    bug("threw an exception of unknown type", text);
  }
}

/// START within the years 1 to 9999, whatever the bytes said.
double start_time(const std::string& input, std::size_t newline) {
  using jobsched::detail::earliest_time;
  using jobsched::detail::end_of_time;
  double start = 1'700'000'000.0;
  if (newline != std::string::npos) {
    start = std::strtod(input.c_str() + newline + 1, nullptr);
  } else {
    std::uint64_t hash = 1469598103934665603u;
    for (const char c : input)
      hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211u;
    start += static_cast<double>(hash % 4'000'000'000u) - 2e9;
  }
  if (!std::isfinite(start))
    start = 0;
  if (!jobsched::detail::is_valid_time(start))
    start = earliest_time + std::fmod(std::fabs(start), end_of_time - earliest_time);
  return start;
}

void check(const jobsched::Rule& rule, double start, const std::string& input) {
  const std::string form = rule.to_string();
  const auto back = attempt(input, [&] { return jobsched::Rule::parse(form); });
  if (!back)
    bug("the text form " + form + " does not parse", input);
  if (*back != rule || back->to_string() != form)
    bug("the text form " + form + " parses to " + back->to_string(), input);
  jobsched::TimePoint time = jobsched::from_unix_seconds(start);
  for (int i = 0; i < 20; ++i) {
    std::optional<jobsched::TimePoint> next;
    try {
      next = rule.next_after(time);
    } catch (const std::exception& error) {
      bug(std::string("next_after threw: ") + error.what(), input);
    }
    if (!next)
      return;
    if (!(*next > time) || !(jobsched::to_unix_seconds(*next) < jobsched::detail::end_of_time)) {
      bug("next_after(" + jobsched::detail::format_time(jobsched::to_unix_seconds(time)) + ") of " +
              form + " gave " + jobsched::detail::format_time(jobsched::to_unix_seconds(*next)),
          input);
    }
    time = *next;
  }
}

/// A cron rule in UTC against the plain matcher, minute by minute.
void check_utc_cron(const jobsched::Rule& rule, const std::string& text, double start,
                    const std::string& input) {
  const jobsched::detail::CronSpec spec = jobsched::detail::parse_cron(text);
  const auto first = rule.next_after(jobsched::from_unix_seconds(start));
  const double limit =
      first ? std::fmin(jobsched::to_unix_seconds(*first), start + 3 * 3600.0) : start + 3 * 3600.0;
  for (auto minute =
           jobsched::detail::ceil_to_minute(static_cast<std::int64_t>(std::floor(start)) + 1);
       static_cast<double>(minute) < limit &&
       static_cast<double>(minute) < jobsched::detail::end_of_time;
       minute += 60) {
    if (jobsched::detail::cron_matches(spec, minute))
      bug("cron " + spec.text + " skipped a matching minute", input);
  }
  std::optional<jobsched::TimePoint> time = first;
  for (int i = 0; i < 20 && time; ++i) {
    const double seconds = jobsched::to_unix_seconds(*time);
    if (!jobsched::detail::cron_matches(spec, static_cast<std::int64_t>(seconds)) ||
        seconds != std::floor(seconds))
      bug("cron " + spec.text + " fired at a time it does not match", input);
    time = rule.next_after(*time);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.rfind('\n');
  const std::string text = input.substr(0, newline);
  const double start = start_time(input, newline);

  if (const auto rule = attempt(input, [&] { return jobsched::Rule::parse(text); }))
    check(*rule, start, input);
  if (const auto rule = attempt(input, [&] { return jobsched::Rule::cron(text); })) {
    if (!rule->is_cron())
      bug("Rule::cron made an interval rule", input);
    check(*rule, start, input);
    check_utc_cron(*rule, text, start, input);
  }
  return 0;
}
