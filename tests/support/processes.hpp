// SPDX-License-Identifier: MIT
#pragma once

// Real processes for the multi-process tests: fork children that report job ids through a
// pipe, and collect how often each id was reported and how each child exited.

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <vector>

namespace jobsched_test {

struct ProcessReports {
  std::map<std::int64_t, int> times_reported;  // id -> how many reports
  std::vector<int> exit_codes;                 // one per child; -1 when it did not exit
};

/// Forks `processes` children; each runs `body(report)` and exits with its result (1 when it
/// threw). `report(id)` sends an id to the parent. Call it with no SQLite connection open.
template <class Body>
ProcessReports run_in_processes(int processes, Body body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0)
    throw std::runtime_error("pipe failed");
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(pipe_fds[0]);
      const int fd = pipe_fds[1];
      int status = 1;
      try {
        status = body([fd](std::int64_t id) {
          return ::write(fd, &id, sizeof id) == static_cast<ssize_t>(sizeof id);
        });
      } catch (...) {
        status = 1;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  ::close(pipe_fds[1]);
  ProcessReports reports;
  std::int64_t id = 0;
  while (::read(pipe_fds[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id))
    ++reports.times_reported[id];
  ::close(pipe_fds[0]);
  for (const pid_t pid : children) {
    int status = -1;
    const bool exited = ::waitpid(pid, &status, 0) == pid && WIFEXITED(status);
    reports.exit_codes.push_back(exited ? WEXITSTATUS(status) : -1);
  }
  return reports;
}

}  // namespace jobsched_test
