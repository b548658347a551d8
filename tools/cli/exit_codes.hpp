// SPDX-License-Identifier: MIT
#pragma once

// The exit codes scripts can rely on (listed in `jobsched --help` and the README).

#include <stdexcept>
#include <string>

namespace jobsched_cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_not_found = 1;    // no such job or schedule, no pending job
inline constexpr int exit_usage = 2;        // bad flag, duration, time, state or rule
inline constexpr int exit_bad_file = 3;     // missing file, not a job database, newer version
inline constexpr int exit_busy = 4;         // another connection held the lock too long
inline constexpr int exit_io = 5;           // I/O error, read-only file, disk full
inline constexpr int exit_conflict = 6;     // a unique key held by another job
inline constexpr int exit_unavailable = 7;  // `serve` without the dashboard built in

/// A bad value on the command line: exits with exit_usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The file is missing, or is not one the tool can read: exits with exit_bad_file.
class BadFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace jobsched_cli
