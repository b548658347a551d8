// SPDX-License-Identifier: MIT
// No test can hang: each test case runs under a time limit of its own (a SIGALRM that names
// the test and aborts it, well before CTest's TIMEOUT kills it without a word), and the
// bounded waits of tests/support/ give up at their deadline, saying what they waited for.
//
// JOBSCHED_TEST_CASE_LIMIT sets the limit in seconds (0: none); the default is 120 s,
// stretched by time_scale() in sanitizer builds, and always under CTest's TIMEOUT of 300 s
// (tests/CMakeLists.txt).

#ifndef JOBSCHED_CATCH2_V3
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch2 v2: the listener base class
#endif

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"

namespace {

using jobsched_test::Deadline;
using namespace std::chrono_literals;

constexpr double kDefaultCaseLimit = 120.0;
constexpr double kCtestTimeout = 300.0;  // tests/CMakeLists.txt

double case_limit_seconds() {
  if (const char* text = std::getenv("JOBSCHED_TEST_CASE_LIMIT"))
    return std::max(0.0, std::strtod(text, nullptr));
  return std::min(kDefaultCaseLimit * jobsched_test::time_scale(), kCtestTimeout - 20.0);
}

// Written before the alarm is armed, read only by the signal handler.
char time_limit_message[512];
std::size_t time_limit_message_length = 0;

extern "C" void on_time_limit(int) {
  const int saved = errno;
  (void)!::write(STDERR_FILENO, time_limit_message, time_limit_message_length);
  errno = saved;
  std::abort();  // Catch reports the abort as a failure of the running test case
}

class TimeLimitListener
#ifdef JOBSCHED_CATCH2_V3
    : public Catch::EventListenerBase {
 public:
  using Catch::EventListenerBase::EventListenerBase;
#else
    : public Catch::TestEventListenerBase {
 public:
  using Catch::TestEventListenerBase::TestEventListenerBase;
#endif

  void testCaseStarting(Catch::TestCaseInfo const& info) override {
    const double limit = case_limit_seconds();
    if (limit <= 0)
      return;
    const int written = std::snprintf(
        time_limit_message, sizeof time_limit_message,
        "\njobsched tests: the test case \"%s\" is still running after its time limit of %.0f s "
        "(JOBSCHED_TEST_CASE_LIMIT): a call that never returned, or a wait without a bound\n",
        info.name.c_str(), limit);
    time_limit_message_length =
        std::min(sizeof time_limit_message - 1, static_cast<std::size_t>(std::max(written, 0)));
    struct sigaction action {};
    action.sa_handler = &on_time_limit;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGALRM, &action, nullptr);
    ::alarm(static_cast<unsigned>(limit + 0.5));
  }

  void testCaseEnded(Catch::TestCaseStats const&) override {
    ::alarm(0);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(TimeLimitListener)

// ---- The bounded waits -----------------------------------------------------------------------

TEST_CASE("a child that never ends is SIGKILLed at its deadline and reported as hung",
          "[time-limits]") {
  const auto started = std::chrono::steady_clock::now();
  const jobsched_test::ChildRun run =
      jobsched_test::run_in_child(Deadline(300ms, "a child that sleeps forever"), [](int out) {
        jobsched_test::write_all(out, "started\n");
        for (;;)
          ::pause();
        return 0;
      });
  const auto took = std::chrono::steady_clock::now() - started;
  INFO("the child " << run.end.describe());
  CHECK(run.end.hung);
  CHECK(run.end.signal == SIGKILL);
  CHECK_FALSE(run.end.exited);
  CHECK(run.output == "started\n");
  CHECK(took >= 300ms);
  CHECK(took < 300ms * jobsched_test::time_scale() + 5s);
}

TEST_CASE("a child that ends in time is reported as it ended", "[time-limits]") {
  const jobsched_test::ChildRun exits =
      jobsched_test::run_in_child(Deadline(30s, "a child that exits"), [](int out) {
        jobsched_test::write_all(out, "bye");
        return 7;
      });
  CHECK_FALSE(exits.end.hung);
  CHECK(exits.end.exited);
  CHECK(exits.end.exit_code == 7);
  CHECK(exits.output == "bye");
  CHECK(exits.end.describe() == "exited with 7");

  const jobsched_test::ChildRun crashes =
      jobsched_test::run_in_child(Deadline(30s, "a child killed by a signal"), [](int) {
        ::raise(SIGUSR1);
        return 0;
      });
  CHECK_FALSE(crashes.end.hung);
  CHECK(crashes.end.signal == SIGUSR1);
}

TEST_CASE("reading a pipe nobody closes gives up at its deadline", "[time-limits]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], "x", 1) == 1);
  std::string out;
  const auto started = std::chrono::steady_clock::now();
  CHECK_FALSE(jobsched_test::read_to_end(fds[0], out, Deadline(200ms, "a pipe to close")));
  CHECK(std::chrono::steady_clock::now() - started >= 200ms);
  CHECK(out == "x");
  ::close(fds[1]);
  CHECK(jobsched_test::read_to_end(fds[0], out, Deadline(5s, "a closed pipe's end")));
  ::close(fds[0]);
}

TEST_CASE("wait_until gives up at its deadline and a Deadline says what it waited for",
          "[time-limits]") {
  const Deadline never(100ms, "a condition that never holds");
  CHECK_FALSE(jobsched_test::wait_until(never, [] { return false; }));
  CHECK(never.passed());
  CHECK(never.poll_ms() == 0);
  CHECK(never.failure().find("a condition that never holds did not happen within") !=
        std::string::npos);

  int calls = 0;
  CHECK(jobsched_test::wait_until(Deadline(30s, "the third look"), [&] { return ++calls == 3; }));
  CHECK(calls == 3);
}

TEST_CASE("a bounded thread is joined, and what it threw is thrown by join", "[time-limits]") {
  int result = 0;
  jobsched_test::BoundedThread adds([&result] { result = 42; });
  adds.join(Deadline(30s, "a thread that sets a number"));
  CHECK(result == 42);

  jobsched_test::BoundedThread throws([] { throw std::runtime_error("from the thread"); });
  CHECK_THROWS_WITH(throws.join(Deadline(30s, "a thread that throws")), "from the thread");
}

// ---- The time limit of a whole test case -----------------------------------------------------

// Hidden ([.]): run only by the test below, in a process of its own.
TEST_CASE("a test case that hangs on purpose", "[.][time-limits-hang]") {
  for (;;)
    std::this_thread::sleep_for(1s);
}

TEST_CASE("a test case that hangs is aborted at its time limit, naming it", "[time-limits]") {
  const auto started = std::chrono::steady_clock::now();
  int err[2];
  REQUIRE(::pipe(err) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    jobsched_test::die_with_parent();
    ::dup2(err[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::close(err[0]);
    ::close(err[1]);
    ::setenv("JOBSCHED_TEST_CASE_LIMIT", "1", 1);
    // The limit aborts from a signal handler, and Catch's fatal-signal handler then builds
    // its report (allocating): in a process that is dying on purpose. ThreadSanitizer would
    // report that as a signal-unsafe call and exit with its own code instead of SIGABRT.
    const char* tsan = std::getenv("TSAN_OPTIONS");
    const std::string options =
        std::string(tsan != nullptr ? tsan : "") + " report_signal_unsafe=0";
    ::setenv("TSAN_OPTIONS", options.c_str(), 1);
    ::execl("/proc/self/exe", "jobsched_tests", "a test case that hangs on purpose",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(err[1]);
  const Deadline deadline(30s, "the hanging test case to be aborted by its time limit");
  std::string output;
  CHECK(jobsched_test::read_to_end(err[0], output, deadline));
  ::close(err[0]);
  const jobsched_test::ChildEnd end = jobsched_test::wait_for_child(pid, deadline);
  const auto took = std::chrono::steady_clock::now() - started;
  INFO("the test process " << end.describe() << "; its output:\n" << output);
  CHECK_FALSE(end.hung);
  CHECK(end.signal == SIGABRT);
  CHECK(output.find("the test case \"a test case that hangs on purpose\" is still running after "
                    "its time limit of 1 s") != std::string::npos);
  CHECK(took >= 1s);
  CHECK(took < 20s);
}
