// SPDX-License-Identifier: MIT
// The demo in a terminal, on jobs.db in the current directory: reads the window's four
// actions from stdin, one a line, and prints what the window would log. Works piped:
//
//   { echo submit; echo count; sleep 4; echo cleanup; } | demo_terminal
//
// The runner's timer is poll()'s timeout: the program sleeps until a line arrives or the job
// falls due, never spinning. At `quit` or the end of input it stops once no job is due
// within a second (finishing those that are).

#include "demo_logic.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

namespace {

constexpr const char* usage =
    "usage: demo_terminal [--help]\n"
    "\n"
    "The jobsched demo on jobs.db in the current directory. Reads one action a line from\n"
    "stdin and prints what it did:\n"
    "  submit   add a job that starts in 3 s and expires in 10 s\n"
    "  next     the next pending job and when it is due\n"
    "  count    how many jobs are pending\n"
    "  cleanup  delete the completed and the expired jobs\n"
    "  quit     stop (as does the end of input) once no job is due within a second\n"
    "Each job is completed when it falls due (\"Completed job #N\").\n"
    "\n"
    "Exit status: 0 done, 1 jobs.db or stdin failed, 2 bad arguments.\n";

void print(const std::string& line) {
  std::cout << line << std::endl;  // flushed, so a reader at the other end of a pipe sees it now
}

/// Runs one line of input. False when it asks to stop.
bool run_action(jobsched_demo::Demo& demo, std::string line) {
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  line = first == std::string::npos ? "" : line.substr(first, last - first + 1);
  if (line == "submit")
    print(demo.submit());
  else if (line == "next")
    print(demo.check_next());
  else if (line == "count")
    print(demo.count());
  else if (line == "cleanup")
    print(demo.cleanup());
  else if (line == "quit")
    return false;
  else if (!line.empty())
    std::cerr << "demo_terminal: unknown action '" << line
              << "' (submit, next, count, cleanup or quit)\n";
  return true;
}

/// The wait in whole milliseconds for poll(), rounded up so the timer never goes off early.
int poll_timeout(jobsched::Seconds wait) {
  constexpr double one_day_ms = 24.0 * 3600.0 * 1000.0;
  return static_cast<int>(std::min(std::ceil(wait.count() * 1000.0), one_day_ms));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc > 1) {
    const std::string argument = argv[1];
    if (argument == "--help" || argument == "-h") {
      std::cout << usage;
      return 0;
    }
    std::cerr << "demo_terminal: unexpected argument '" << argument << "'\n" << usage;
    return 2;
  }

  try {
    jobsched_demo::Demo demo("jobs.db");
    if (isatty(STDIN_FILENO) != 0)
      std::cerr << "Type submit, next, count, cleanup or quit, one a line.\n";

    bool reading = true;  // until quit or the end of input
    std::string unread;   // input read but not yet a whole line
    for (;;) {
      const std::optional<jobsched::Seconds> wait = demo.seconds_until_wake();
      if (!reading && (!wait || *wait > 1s))
        return 0;
      if (wait && *wait <= 0s) {  // the runner's timer went off
        if (const auto line = demo.run_due())
          print(*line);
        continue;
      }

      // Sleep until a line comes in or the timer goes off; after the input ends, poll() on no
      // descriptor is just the timer.
      pollfd input{STDIN_FILENO, POLLIN, 0};
      const int ready = poll(&input, reading ? 1 : 0, wait ? poll_timeout(*wait) : -1);
      if (ready < 0 && errno != EINTR) {
        std::cerr << "demo_terminal: poll: " << std::strerror(errno) << '\n';
        return 1;
      }
      if (ready <= 0)
        continue;  // timed out (the next pass runs the job) or interrupted

      char buffer[4096];
      const ssize_t got = read(STDIN_FILENO, buffer, sizeof buffer);
      if (got < 0) {
        if (errno == EINTR)
          continue;
        std::cerr << "demo_terminal: reading stdin: " << std::strerror(errno) << '\n';
        return 1;
      }
      if (got == 0) {  // end of input; a last line without its newline still counts
        reading = false;
        run_action(demo, unread);
        continue;
      }
      unread.append(buffer, static_cast<std::size_t>(got));
      for (auto end = unread.find('\n'); reading && end != std::string::npos;
           end = unread.find('\n')) {
        const std::string line = unread.substr(0, end);
        unread.erase(0, end + 1);
        reading = run_action(demo, line);
      }
    }
  } catch (const jobsched::Error& error) {
    std::cerr << "demo_terminal: " << error.what() << '\n';
    return 1;
  }
}
