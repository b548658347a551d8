// SPDX-License-Identifier: MIT
// Recurring jobs: an interval schedule and a cron schedule, run on a pinned clock so that
// seven minutes of firings print at once, the same on every run. A real program declares
// its schedules the same way at every start and lets Workers run the firings.

#include <jobsched/jobsched.hpp>

#include <chrono>
#include <ctime>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace {

// "Fri 08:58:30" (UTC) for a reader.
std::string show(jobsched::TimePoint time) {
  const auto seconds = static_cast<std::time_t>(jobsched::to_unix_seconds(time));
  std::ostringstream out;
  out << std::put_time(std::gmtime(&seconds), "%a %H:%M:%S");
  return out.str();
}

}  // namespace

int main() {
  using namespace std::chrono_literals;
  // The pinned clock: every call that takes an optional `now` reads this variable.
  jobsched::TimePoint now = jobsched::from_unix_seconds(1767949080);  // Fri 2026-01-09 08:58 UTC
  jobsched::Options options;
  options.clock = [&now] { return now; };
  auto scheduler = jobsched::Scheduler::open(":memory:", options);

  // Every 90 s (at whole multiples of 90 s since the epoch, so it never drifts), and at
  // 09:00 on weekdays. Each firing's job expires if it has not started by the next one.
  jobsched::ScheduleOptions heartbeat;
  heartbeat.data = "ping the monitor";
  scheduler.put_schedule("heartbeat", jobsched::Rule::every(90s), heartbeat);
  jobsched::ScheduleOptions standup;
  standup.data = "post the standup reminder";
  standup.misfire = jobsched::Misfire::once;  // after downtime: one late run, not none
  scheduler.put_schedule("standup", jobsched::Rule::cron("0 9 * * MON-FRI"), standup);

  // Declaring a schedule again with the same definition changes nothing.
  const jobsched::Schedule again =
      scheduler.put_schedule("heartbeat", jobsched::Rule::every(90s), heartbeat);
  std::cout << "declared again, unchanged: " << again.rule.to_string() << ", next at "
            << show(*again.next_fire) << '\n';

  for (const jobsched::Schedule& schedule : scheduler.schedules())
    std::cout << "schedule " << schedule.name << ": " << schedule.rule.to_string() << ", next at "
              << show(*schedule.next_fire) << '\n';

  // A rule alone answers "when next?": the weekend is skipped.
  const jobsched::Rule weekdays = jobsched::Rule::cron("0 9 * * MON-FRI");
  std::cout << "standups:";
  std::optional<jobsched::TimePoint> at = now;
  for (int i = 0; i < 3 && at; ++i) {
    at = weekdays.next_after(*at);
    std::cout << ' ' << show(*at);
  }
  std::cout << '\n';

  // Seven minutes of the event loop: wait (here: move the clock) until the next job is due,
  // claim it, run it, complete it. Claiming a firing makes the schedule's next one.
  const jobsched::TimePoint end = now + 7min;
  while (const auto next = scheduler.seconds_until_next_job()) {
    if (now + next->delay > end)
      break;
    now += next->delay;
    const auto claimed = scheduler.claim_next_job(30s);
    if (!claimed)
      continue;
    const jobsched::Job& job = claimed->job;
    std::cout << '[' << show(now) << "] " << job.firing->schedule << ": " << job.data.bytes()
              << " (due " << show(job.firing->at) << ")\n";
    scheduler.complete(claimed->claim);
  }
  std::cout << "next heartbeat at " << show(*scheduler.get_schedule("heartbeat")->next_fire)
            << ", next standup at " << show(*scheduler.get_schedule("standup")->next_fire) << '\n';
}
