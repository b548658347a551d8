// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: what a run is asked to do (Config), and the scheduler and job settings every
// process derives from it.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

#include <jobsched/jobsched.hpp>

namespace jobsched_chaos {

struct Config {
  /// Plain worker processes, each running `threads` threads with a Scheduler each.
  int processes = 3;
  int threads = 2;
  /// Processes running a jobsched::Worker of `worker_threads` threads (and its heartbeat).
  int worker_processes = 1;
  int worker_threads = 2;
  /// Jobs in all; the parent adds `initial_jobs` before the run, the producer the rest.
  int jobs = 1500;
  int initial_jobs = 300;
  /// The producer's pause after each add.
  std::chrono::microseconds add_interval{1000};
  /// The parent kills a process every interval (+-50%): in turn a plain worker, the
  /// producer (while it runs), a plain worker, a Worker process; which one at random.
  std::chrono::milliseconds kill_interval{150};
  jobsched::Seconds lease{0.5};
  /// Each job "works" for a random time up to this.
  std::chrono::microseconds max_work{2000};
  /// A plain worker thread's pause after a claim found nothing.
  std::chrono::microseconds idle_pause{5000};
  /// Of every 1000 claims of a plain worker: fail(claim, error); release(claim); a
  /// heartbeat (work 1.2 leases, extending twice, the first time sometimes by a quarter
  /// lease only: a lease never moves earlier); sleep to 0-1 ms past the lease end, then
  /// complete, extend and complete, fail or release (stale if the job was claimed again,
  /// refused on its last attempt). The rest complete after a short work.
  int fail_per_mille = 200;
  int release_per_mille = 60;
  int heartbeat_per_mille = 30;
  int slow_per_mille = 20;
  /// Of every 1000 claims on a job's last attempt, these go slow first (then the above).
  int slow_last_attempt_per_mille = 200;
  /// Of every 1000 jobs a Worker's handler runs: it throws; it works 1.3 leases (its
  /// heartbeat must keep the lease).
  int handler_fail_per_mille = 200;
  int handler_slow_per_mille = 20;
  /// RetryPolicy::max_attempts of every scheduler; a third of the jobs set one less (at
  /// least 1) in JobOptions::max_attempts, a third one more.
  int max_attempts = 3;
  jobsched::Seconds initial_backoff{0.02};
  jobsched::Seconds max_backoff{0.1};
  /// For the harness's own test only: odd-numbered plain worker processes claim with a
  /// clock this far ahead, so they take jobs whose leases are live for everyone else.
  jobsched::Seconds claim_skew{0.0};
  /// For the harness's own test only: a rogue process deletes this many random rows.
  int rogue_deletes = 0;
  /// Give up (and report timed_out) after this long.
  std::chrono::seconds time_limit{55};
  jobsched::Synchronous synchronous = jobsched::Synchronous::full;
  /// 0: a random seed.
  std::uint64_t seed = 0;
};

namespace detail {

inline jobsched::Options scheduler_options(const Config& config) {
  jobsched::Options options;
  options.synchronous = config.synchronous;
  options.busy_timeout = std::chrono::milliseconds{5000};
  options.retry.max_attempts = config.max_attempts;
  options.retry.initial_backoff = config.initial_backoff;
  options.retry.max_backoff = config.max_backoff;
  return options;
}

/// A new job's settings: two priorities, two queues, a quarter starting up to 100 ms later,
/// a third with one attempt less than the policy, a third with one more.
inline jobsched::JobOptions new_job_options(std::mt19937_64& random, const Config& config) {
  std::uniform_int_distribution<int> pick(0, 11);
  std::uniform_real_distribution<double> later(0.0, 0.1);
  const int kind = pick(random);
  jobsched::JobOptions options;
  options.priority = kind % 2;
  options.queue = kind % 3 == 0 ? "mail" : "";
  if (kind % 4 == 0) {
    options.created_at = jobsched::system_now();
    options.starts_at = *options.created_at + jobsched::Seconds{later(random)};
  }
  const int limit = pick(random) % 3;
  if (limit == 1)
    options.max_attempts = std::max(1, config.max_attempts - 1);
  if (limit == 2) {
    options.max_attempts = config.max_attempts + 1;
    options.initial_backoff = config.initial_backoff / 2.0;
    options.max_backoff = config.max_backoff / 2.0;
  }
  return options;
}

}  // namespace detail

}  // namespace jobsched_chaos
