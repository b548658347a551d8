// SPDX-License-Identifier: MIT
#pragma once

// Small checks shared by the tests: what a call threw, substrings, a stored job.

#include <cstdint>
#include <optional>
#include <string>

#include <jobsched/jobsched.hpp>

#include "../catch.hpp"

namespace jobsched_test {

/// What `fn` threw as an E, with its message; empty when it threw nothing. Any other
/// exception escapes, so Catch reports it as a failure.
template <class E, class F>
std::optional<std::string> thrown(F&& fn) {
  try {
    fn();
  } catch (const E& error) {
    return std::string(error.what());
  }
  return std::nullopt;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// How many times `needle` occurs in `haystack`, without overlaps.
inline int count_of(const std::string& haystack, const std::string& needle) {
  int count = 0;
  for (std::size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size()))
    ++count;
  return count;
}

/// The job with this id, which the test requires to exist.
inline jobsched::Job stored(jobsched::Scheduler& scheduler, std::int64_t id) {
  const std::optional<jobsched::Job> job = scheduler.get_job(id);
  REQUIRE(job.has_value());
  return *job;
}

}  // namespace jobsched_test
