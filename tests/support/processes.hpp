// SPDX-License-Identifier: MIT
#pragma once

// Real processes for the multi-process tests: fork children that report job ids through a
// pipe, and collect how often each id was reported and how each child exited. Every wait
// here has a deadline: a child still running at it is SIGKILLed and reported as hung.

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../catch.hpp"
#include "deadline.hpp"

namespace jobsched_test {

/// How a child process ended.
struct ChildEnd {
  bool exited = false;  // it called exit: exit_code holds its status
  int exit_code = -1;
  int signal = 0;     // the signal that ended it, when one did
  bool hung = false;  // still running at the deadline: SIGKILLed then
  std::string error;  // waitpid itself failed

  std::string describe() const {
    std::ostringstream text;
    if (hung) {
      text << "hung (SIGKILLed at the deadline)";
    } else if (exited) {
      text << "exited with " << exit_code;
    } else if (signal != 0) {
      text << "died of signal " << signal << " (" << ::strsignal(signal) << ")";
    } else {
      text << "unknown end: " << error;
    }
    return text.str();
  }
};

/// Call first thing in a forked child: if the test process dies (a failed bound aborts it),
/// the child is killed too instead of running on, orphaned.
inline void die_with_parent() {
#ifdef __linux__
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
}

/// Waits for the child `pid` until the deadline. A child still running then is SIGKILLed,
/// reaped, and reported as hung.
inline ChildEnd wait_for_child(pid_t pid, const Deadline& deadline) {
  ChildEnd end;
  int status = 0;
  auto pause = std::chrono::microseconds(200);
  for (;;) {
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid)
      break;
    if (got < 0 && errno != EINTR) {
      end.error = std::string("waitpid: ") + std::strerror(errno);
      return end;
    }
    if (deadline.passed()) {
      ::kill(pid, SIGKILL);
      end.hung = true;
      // SIGKILL cannot be caught: the wait is short (the bound is only against a child stuck
      // in the kernel).
      const Deadline reaped(std::chrono::seconds(10), "a SIGKILLed child to be reaped");
      while (::waitpid(pid, &status, WNOHANG) != pid) {
        if (reaped.passed()) {
          end.error = "not reaped 10 s after SIGKILL";
          return end;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      break;
    }
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(20))
      pause *= 2;
  }
  end.exited = WIFEXITED(status);
  end.exit_code = end.exited ? WEXITSTATUS(status) : -1;
  end.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return end;
}

/// Waits until `fd` can be read (data or end of file): false when the deadline passed first.
inline bool wait_readable(int fd, const Deadline& deadline) {
  for (;;) {
    pollfd ready{fd, POLLIN, 0};
    const int polled = ::poll(&ready, 1, deadline.poll_ms());
    if (polled > 0)
      return true;
    if (polled < 0 && errno != EINTR)
      return true;  // let the read report the error
    if (deadline.passed())
      return false;
  }
}

/// Reads `fd` to its end, appending to `out`: false when the deadline passed first.
inline bool read_to_end(int fd, std::string& out, const Deadline& deadline) {
  char buffer[4096];
  for (;;) {
    if (!wait_readable(fd, deadline))
      return false;
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return true;
    out.append(buffer, static_cast<std::size_t>(got));
  }
}

/// What run_in_child saw of its child.
struct ChildRun {
  ChildEnd end;
  std::string output;  // what the child wrote to its pipe
};

/// Forks a child that runs `body(out)` and exits with what it returns (1 when it threw);
/// `out` is a pipe to the parent. Waits until the deadline for the pipe's end and the
/// child's exit, SIGKILLing it past the deadline. Call it with no SQLite connection open.
template <class Body>
ChildRun run_in_child(const Deadline& deadline, Body body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0)
    throw std::runtime_error("pipe failed");
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  if (pid < 0)
    throw std::runtime_error("fork failed");
  if (pid == 0) {
    die_with_parent();
    ::close(pipe_fds[0]);
    int status = 1;
    try {
      status = body(pipe_fds[1]);
    } catch (...) {
      status = 1;
    }
    ::_exit(status);
  }
  ::close(pipe_fds[1]);
  ChildRun run;
  read_to_end(pipe_fds[0], run.output, deadline);
  ::close(pipe_fds[0]);
  run.end = wait_for_child(pid, deadline);
  return run;
}

/// Writes all of `text` to `fd` (for a child's report).
inline bool write_all(int fd, const std::string& text) {
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t written = ::write(fd, data, left);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      return false;
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  return true;
}

/// A child's report to its parent, a line at a time; "FAIL ..." lines are broken promises
/// (a forked child cannot use Catch's assertions: its counts die with it).
class ChildReport {
 public:
  explicit ChildReport(int fd) : fd_(fd) {}
  void line(const std::string& text) { write_all(fd_, text + "\n"); }
  void fail(const std::string& text) { line("FAIL " + text); }

 private:
  int fd_;
};

/// Fails the test, naming the case, when the child hung, crashed, exited with anything but 0
/// or reported a FAIL line; returns the other lines of its report.
inline std::vector<std::string> check_child(const std::string& name, const ChildRun& run) {
  std::vector<std::string> lines;
  std::istringstream in(run.output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("FAIL ", 0) == 0) {
      FAIL_CHECK(name << ": " << line.substr(5));
    } else {
      lines.push_back(line);
    }
  }
  if (run.end.hung) {
    FAIL_CHECK(name << ": the child hung, SIGKILLed at its deadline; its report:\n" << run.output);
  } else if (!run.end.exited || run.end.exit_code != 0) {
    FAIL_CHECK(name << ": the child " << run.end.describe() << "; its report:\n" << run.output);
  }
  return lines;
}

/// Runs `body(report)` (a ChildReport&) in a forked child under `limit`: a crash, a hang, a
/// FAIL line or an exception escaping `body` fails the test, naming the case. Returns the
/// report's other lines.
template <class Body>
std::vector<std::string> run_case_in_child(const std::string& name,
                                           std::chrono::duration<double> limit, Body body) {
  const ChildRun run =
      run_in_child(Deadline(limit, "the case '" + name + "' to finish"), [&](int out) {
        ChildReport report(out);
        try {
          body(report);
        } catch (const std::exception& error) {
          report.fail(std::string("an exception escaped: ") + error.what());
        } catch (...) {
          report.fail("an exception that is not a std::exception escaped");
        }
        return 0;
      });
  return check_child(name, run);
}

struct ProcessReports {
  std::map<std::int64_t, int> times_reported;  // id -> how many reports
  std::vector<int> exit_codes;                 // one per child; -1 when it did not exit
  int hung = 0;                                // children SIGKILLed at the deadline
};

/// Forks `processes` children; each runs `body(report)` and exits with its result (1 when it
/// threw). `report(id)` sends an id to the parent. Call it with no SQLite connection open.
/// Children still running after `limit` are SIGKILLed, and the test fails saying so.
template <class Body>
ProcessReports run_in_processes(int processes, Body body,
                                std::chrono::duration<double> limit = std::chrono::seconds(60)) {
  const Deadline deadline(limit, std::to_string(processes) + " child processes to finish");
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0)
    throw std::runtime_error("pipe failed");
  std::cout.flush();
  std::cerr.flush();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      die_with_parent();
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
  std::string bytes;
  const bool ended = read_to_end(pipe_fds[0], bytes, deadline);
  ::close(pipe_fds[0]);
  for (std::size_t at = 0; at + sizeof(std::int64_t) <= bytes.size(); at += sizeof(std::int64_t)) {
    std::int64_t id = 0;
    std::memcpy(&id, bytes.data() + at, sizeof id);
    ++reports.times_reported[id];
  }
  for (const pid_t pid : children) {
    const ChildEnd end = wait_for_child(pid, deadline);
    reports.exit_codes.push_back(end.exited ? end.exit_code : -1);
    if (end.hung)
      ++reports.hung;
  }
  if (!ended || reports.hung > 0)
    FAIL_CHECK(deadline.failure() << ": " << reports.hung << " SIGKILLed");
  return reports;
}

}  // namespace jobsched_test
