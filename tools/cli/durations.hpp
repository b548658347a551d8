// SPDX-License-Identifier: MIT
#pragma once

// Durations (`90s`, `5m`, `2h30m`, `7d`) and ISO-8601 times on the command line.

#include <jobsched/time.hpp>

#include <string>
#include <string_view>

namespace jobsched_cli {

/// `5m`, `2h30m`, `1.5h`, `7d`, `250ms`: numbers each with a unit (ms, s, m, h, d, w).
/// UsageError naming the text otherwise.
jobsched::Seconds parse_duration(std::string_view text);

/// `2026-12-01T18:30:00Z`, `2026-12-01 18:30`, `2026-12-01T18:30:00.5+01:00`, `2026-12-01`:
/// no offset means UTC. UsageError naming the text otherwise.
jobsched::TimePoint parse_time(std::string_view text);

/// `2026-12-01T18:30:00Z`, with milliseconds when the time has a fraction.
std::string format_time(jobsched::TimePoint time);

/// `2h30m`, `45s`, `1.5s`, `-3m` (the shortest of whole units; below a minute, to 1 ms).
std::string format_duration(jobsched::Seconds duration);

}  // namespace jobsched_cli
