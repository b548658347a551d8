// SPDX-License-Identifier: MIT
// The seed's Tk demo without its window: four actions and a runner over jobs in one file,
// each returning the line the demo logs. Both front ends share it (demo_gui.cpp draws the
// window, demo_terminal.cpp reads the actions from stdin).
//
// The runner is the seed's event loop. Ask seconds_until_next_job(), arm one timer for that
// long, and when it goes off complete the job it was armed for, then ask again and re-arm.
// Adding a job re-arms it too, since the new job may be due first. The timer itself belongs
// to the front end (an Fl::add_timeout, or poll()'s timeout): after every call here, it asks
// seconds_until_wake() and arms its timer anew, as the seed's reschedule_runner() re-armed
// Tk's after().
#pragma once

#include <jobsched/jobsched.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>

namespace jobsched_demo {

class Demo {
 public:
  /// Opens (creating if needed) the job file at `path` and arms the runner for the jobs left
  /// in it by an earlier run. Throws what Scheduler::open throws.
  explicit Demo(const std::string& path) : scheduler_(jobsched::Scheduler::open(path)) { rearm(); }

  /// Submit Job: a job that starts in 3 s and expires in 10 s.
  std::string submit() {
    using namespace std::chrono_literals;
    const jobsched::TimePoint now = scheduler_.now();
    jobsched::JobOptions options;
    options.created_at = now;
    options.starts_at = now + 3s;
    options.expires_at = now + 10s;
    const jobsched::Job job = scheduler_.add_job(nullptr, options);
    rearm();
    return "Submitted job #" + std::to_string(job.id) + ", expected completion in 3 seconds.";
  }

  /// Check Next Job.
  std::string check_next() {
    const auto next = scheduler_.seconds_until_next_job();
    if (!next)
      return "No job is pending completion.";
    std::ostringstream line;
    line << "The next job is #" << next->id << ", due in " << std::fixed << std::setprecision(2)
         << next->delay.count() << " seconds.";
    return line.str();
  }

  /// Count Pending Jobs.
  std::string count() {
    return std::to_string(scheduler_.count_pending_jobs()) + " job(s) need to be completed.";
  }

  /// Cleanup Jobs.
  std::string cleanup() {
    const std::int64_t completed = scheduler_.delete_completed_jobs();
    const std::int64_t expired = scheduler_.delete_expired_jobs();
    return std::to_string(completed) + " completed job(s) and " + std::to_string(expired) +
           " expired job(s) were cleaned up.";
  }

  /// How long until the runner's timer goes off (zero: it is due), or empty when no job is
  /// pending and the timer is off.
  std::optional<jobsched::Seconds> seconds_until_wake() {
    if (!timer_)
      return std::nullopt;
    return std::max(jobsched::Seconds{0}, timer_->wake_at - scheduler_.now());
  }

  /// The runner's timer went off: completes the job it was armed for, unless that job is gone
  /// or completed already, and re-arms. Like the seed's run_job(), it asks the job by id
  /// rather than taking the next job, so a job whose start and expiry are equal still runs.
  /// Returns the line to log, if any.
  std::optional<std::string> run_due() {
    if (!timer_)
      return std::nullopt;
    const std::int64_t id = timer_->job_id;
    timer_.reset();  // it went off; only rearm() sets it again
    std::optional<std::string> line;
    if (const auto job = scheduler_.get_job(id); job && !job->is_completed()) {
      scheduler_.complete_job(id);
      line = "Completed job #" + std::to_string(id);
    }
    rearm();
    return line;
  }

 private:
  /// The runner's single timer: the job it is armed for and when it goes off.
  struct Timer {
    std::int64_t job_id = 0;
    jobsched::TimePoint wake_at{};
  };

  void rearm() {
    const jobsched::TimePoint now = scheduler_.now();
    if (const auto next = scheduler_.seconds_until_next_job(now))
      timer_ = Timer{next->id, now + next->delay};
    else
      timer_.reset();
  }

  jobsched::Scheduler scheduler_;
  std::optional<Timer> timer_;
};

}  // namespace jobsched_demo
