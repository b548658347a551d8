// SPDX-License-Identifier: MIT
// Fills a job file for dashboard_test.py: jobs in every state, in three queues, with text,
// binary and NULL payloads, a result, a schedule and a paused queue. Prints the ids of the
// jobs the test acts on, as JSON, on stdout.
//
//   queue ""        scheduled 2 (one is the "heartbeat" schedule's firing), available 1,
//                   completed 3 (one with a result)
//   queue "emails"  available 2 (binary and NULL payloads), running 1, failed 2, cancelled 1
//   queue "reports" scheduled 1, expired 1; paused

#include <cstdio>
#include <iostream>
#include <string>

#include <jobsched/jobsched.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dashboard_fixture FILE\n";
    return 2;
  }
  std::remove(argv[1]);
  auto scheduler = jobsched::Scheduler::open(argv[1]);
  const jobsched::TimePoint now = scheduler.now();

  auto add = [&](jobsched::Payload data, std::string queue, jobsched::Seconds starts_in,
                 int max_attempts = 3) {
    jobsched::JobOptions options;
    options.created_at = now - 600s;
    options.starts_at = now + starts_in;
    options.queue = std::move(queue);
    options.max_attempts = max_attempts;
    return scheduler.add_job(std::move(data), options);
  };
  // Claims the only due job of `queue` (the test adds them one at a time).
  auto claim = [&](const std::string& queue, jobsched::Seconds lease) {
    auto claimed = scheduler.claim_next_job(lease, std::vector<std::string>{queue});
    if (!claimed)
      throw std::runtime_error("nothing to claim in " + queue);
    return claimed->claim;
  };

  // The default queue.
  const auto completed_with_result = add("resize image 41", "", -300s);
  scheduler.complete(claim("", 60s), jobsched::Payload::text("{\"width\": 640, \"height\": 480}"));
  for (const char* data : {"resize image 42", "resize image 43"}) {
    add(data, "", -300s);
    scheduler.complete(claim("", 60s));
  }
  const auto scheduled = add("resize image 44", "", 3600s);
  const auto available = add("resize image 45", "", -30s);

  // "emails": failed twice, cancelled, running, available.
  jobsched::Job failed[2];
  for (int i = 0; i < 2; ++i) {
    failed[i] = add("mail to user" + std::to_string(i + 1) + "@example.com", "emails", -200s, 1);
    // The second error is markup, which the page must show as text.
    scheduler.fail(claim("emails", 60s), i == 0 ? "SMTP 550: mailbox unavailable"
                                                : "<img src=x onerror=alert(1)> mailbox full");
  }
  const auto cancelled = add("mail to nobody@example.com", "emails", 120s);
  scheduler.cancel_job(cancelled.id, "user unsubscribed");
  add("mail to busy@example.com", "emails", -100s);
  claim("emails", 3600s);
  const auto binary =
      add(jobsched::Payload(std::string("\x00\x01\x02\xff\xfe binary", 11)), "emails", -120s);
  add(jobsched::Payload(), "emails", -60s);

  // "reports": scheduled, expired, and paused.
  add("monthly report", "reports", 86400s);
  jobsched::JobOptions expired;
  expired.created_at = now - 900s;
  expired.starts_at = now - 800s;
  expired.expires_at = now - 700s;
  expired.queue = "reports";
  scheduler.add_job("weekly report (missed)", expired);
  scheduler.pause_queue("reports");

  // A schedule: its next firing is a scheduled job of the default queue.
  jobsched::ScheduleOptions heartbeat;
  heartbeat.data = jobsched::Payload::text("heartbeat");
  scheduler.put_schedule("heartbeat", jobsched::Rule::every(3600s, now + 1800s), heartbeat);

  std::cout << "{\"failed\": [" << failed[0].id << ", " << failed[1].id
            << "], \"available\": " << available.id << ", \"binary\": " << binary.id
            << ", \"cancelled\": " << cancelled.id
            << ", \"completed_with_result\": " << completed_with_result.id
            << ", \"scheduled\": " << scheduled.id << "}\n";
  return 0;
}
