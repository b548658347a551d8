// SPDX-License-Identifier: MIT
// Testing your own code against jobsched with <jobsched/testing.hpp>: a ManualClock pins
// "now", drain() runs what is due on the test's thread, and the finders show what your code
// queued. The checks here are plain functions so the example needs no framework; in your
// suite they are Catch2's REQUIRE or GoogleTest's EXPECT_TRUE.

#include <jobsched/jobsched.hpp>
#include <jobsched/testing.hpp>

#include <chrono>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// ---- Your code: what the tests below test ------------------------------------------------

// Queues a welcome mail now and a reminder in three days, both in the "mail" queue.
void sign_up(jobsched::Scheduler& scheduler, const std::string& address) {
  jobsched::JobOptions welcome;
  welcome.queue = "mail";
  scheduler.add_job("welcome " + address, welcome);
  jobsched::JobOptions reminder = welcome;
  reminder.starts_at = scheduler.now() + 3 * 24h;
  scheduler.add_job("reminder " + address, reminder);
}

// The mail queue's handler: "sends" a mail into `outbox`; throws for a bad address.
void send_mail(const jobsched::Job& job, std::vector<std::string>& outbox) {
  const std::string mail(job.data.bytes());
  if (mail.find('@') == std::string::npos)
    throw std::runtime_error("no address in '" + mail + "'");
  outbox.push_back(mail);
}

// ---- The tests -----------------------------------------------------------------------------

namespace {

int checks_failed = 0;

void check(bool condition, const std::string& what) {
  if (!condition) {
    ++checks_failed;
    std::cout << "  FAILED: " << what << '\n';
  }
}

void sign_up_queues_a_welcome_now_and_a_reminder_later() {
  jobsched::testing::ManualClock clock;  // frozen at the time it was made
  auto scheduler = jobsched::Scheduler::open(":memory:", clock.options());

  sign_up(scheduler, "ann@example.com");

  check(jobsched::testing::jobs_in_queue(scheduler, "mail").size() == 2, "two mails queued");
  const auto welcome = jobsched::testing::only_job(
      jobsched::testing::jobs_with_payload(scheduler, "welcome ann@example.com"));
  check(welcome && welcome->starts_at == clock.now(), "the welcome starts now");
  const auto reminder = jobsched::testing::only_job(
      jobsched::testing::jobs_with_payload(scheduler, "reminder ann@example.com"));
  check(reminder && reminder->starts_at == clock.now() + 72h, "the reminder in three days");
}

void the_reminder_is_sent_three_days_later_not_before() {
  jobsched::testing::ManualClock clock;
  auto scheduler = jobsched::Scheduler::open(":memory:", clock.options());
  std::vector<std::string> outbox;
  auto handler = [&outbox](const jobsched::Job& job) { send_mail(job, outbox); };
  sign_up(scheduler, "ann@example.com");

  check(jobsched::testing::drain(scheduler, handler).completed == 1, "one mail due at once");
  check(outbox == std::vector<std::string>{"welcome ann@example.com"}, "the welcome was sent");

  clock.advance(72h - 1s);  // no sleeping: the clock moves, drain runs what is now due
  check(jobsched::testing::drain(scheduler, handler).ran.empty(), "nothing a second early");
  clock.advance(1s);
  check(jobsched::testing::drain(scheduler, handler).completed == 1, "the reminder, on time");
  check(outbox.size() == 2 && outbox[1] == "reminder ann@example.com", "the reminder was sent");
  check(jobsched::testing::enqueued(scheduler).empty(), "nothing left to run");
}

void a_mail_without_an_address_fails_and_is_retried() {
  jobsched::testing::ManualClock clock;
  auto scheduler = jobsched::Scheduler::open(":memory:", clock.options());
  std::vector<std::string> outbox;
  auto handler = [&outbox](const jobsched::Job& job) { send_mail(job, outbox); };
  sign_up(scheduler, "nobody");

  check(jobsched::testing::drain(scheduler, handler).failed == 1, "the welcome failed");
  const auto welcome = jobsched::testing::only_job(
      jobsched::testing::jobs_with_payload(scheduler, "welcome nobody"));
  check(welcome && welcome->attempts == 1 && !welcome->is_failed(), "one attempt, not given up");
  check(welcome && welcome->last_error == "no address in 'welcome nobody'", "the error stored");

  // The default RetryPolicy waits at most 1 s after the first failure.
  clock.advance(1s);
  check(jobsched::testing::drain(scheduler, handler).failed == 1, "retried, and failed again");
  check(outbox.empty(), "nothing was sent");
}

}  // namespace

int main() {
  struct Test {
    const char* name;
    void (*run)();
  };
  const Test tests[] = {
      {"sign_up queues a welcome now and a reminder later",
       sign_up_queues_a_welcome_now_and_a_reminder_later},
      {"the reminder is sent three days later, not before",
       the_reminder_is_sent_three_days_later_not_before},
      {"a mail without an address fails and is retried",
       a_mail_without_an_address_fails_and_is_retried},
  };
  int passed = 0;
  for (const Test& test : tests) {
    const int failed_before = checks_failed;
    test.run();
    const bool ok = checks_failed == failed_before;
    passed += ok ? 1 : 0;
    std::cout << (ok ? "ok: " : "FAILED: ") << test.name << '\n';
  }
  std::cout << passed << " of " << std::size(tests) << " tests passed\n";
  return passed == static_cast<int>(std::size(tests)) ? 0 : 1;
}
