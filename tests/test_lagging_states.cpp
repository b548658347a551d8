// SPDX-License-Identifier: MIT
// The stored states lag behind time: jobs come due, expire and have their leases run out
// without any write, and each claim or add moves at most a few of each on. Whatever the lag,
// every call answers what a brute-force model of the jobs (read back one by one) answers:
// more jobs lagging than one write moves, of each kind, and a caller's clock set back before
// the moment the states were written.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_lagging_states {

namespace {

using jobsched::Job;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::TimePoint;
using jobsched_test::TempFile;

constexpr double kT = 1'700'000'000.0;
// Many more than one write moves on.
constexpr int kLagging = jobsched::detail::sql::moves_per_write * 48;
constexpr int kMaxAttempts = 3;

TimePoint at(double seconds) {
  return jobsched::from_unix_seconds(seconds);
}
double seconds(TimePoint time) {
  return jobsched::to_unix_seconds(time);
}

/// The schedule at `now`, from every job read back with get_job.
struct Model {
  std::vector<Job> jobs;
  double now = 0;

  bool pending(const Job& job) const {
    return !job.completed_at && !job.failed_at &&
           !(job.expires_at && seconds(*job.expires_at) <= now);
  }
  bool free(const Job& job) const {
    if (!job.locked_at)
      return true;
    return job.lease_until && seconds(*job.lease_until) <= now &&
           job.attempts < job.max_attempts.value_or(kMaxAttempts);
  }
  std::int64_t count() const {
    return std::count_if(jobs.begin(), jobs.end(), [&](const Job& job) { return pending(job); });
  }
  const Job* next() const {
    const Job* best = nullptr;
    for (const Job& job : jobs) {
      if (pending(job) && free(job) && (best == nullptr || job.starts_at < best->starts_at))
        best = &job;  // ids ascend: the first of equal starts stays
    }
    return best;
  }
  const Job* claim() const {
    const Job* best = nullptr;
    for (const Job& job : jobs) {
      if (!pending(job) || !free(job) || seconds(job.starts_at) > now)
        continue;
      if (best == nullptr || job.priority > best->priority ||
          (job.priority == best->priority && job.starts_at < best->starts_at))
        best = &job;
    }
    return best;
  }
  /// The id and the time of the job that can be claimed first.
  std::optional<std::pair<double, std::int64_t>> first_free() const {
    std::optional<std::pair<double, std::int64_t>> best;
    for (const Job& job : jobs) {
      if (!pending(job))
        continue;
      std::optional<double> when;
      if (free(job)) {
        when = std::max(seconds(job.starts_at), now);
      } else if (job.lease_until && job.attempts < job.max_attempts.value_or(kMaxAttempts)) {
        when = std::max(seconds(job.starts_at), seconds(*job.lease_until));
      }
      if (when && (!best || std::make_pair(*when, job.id) < *best))
        best = std::make_pair(*when, job.id);
    }
    return best;
  }
};

Model model_of(Scheduler& scheduler, std::int64_t last_id, double now) {
  Model model;
  model.now = now;
  for (std::int64_t id = 1; id <= last_id; ++id) {
    if (auto job = scheduler.get_job(id, at(now)))
      model.jobs.push_back(*job);
  }
  return model;
}

/// Checks every read against the model at `now`, then claims as the model says (completing
/// every other claim), `rounds` times.
void check_against_model(Scheduler& scheduler, std::int64_t last_id, double now, int rounds) {
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round << " at kT" << std::showpos << now - kT);
    const Model model = model_of(scheduler, last_id, now);
    CHECK(scheduler.count_pending_jobs(at(now)) == model.count());
    const Job* next = model.next();
    const auto next_job = scheduler.next_job(at(now));
    REQUIRE(next_job.has_value() == (next != nullptr));
    if (next != nullptr)
      CHECK(next_job->id == next->id);
    const auto first = model.first_free();
    const auto delay = scheduler.seconds_until_next_job(at(now));
    REQUIRE(delay.has_value() == first.has_value());
    if (first) {
      CHECK(delay->delay == Seconds{first->first - now});
      CHECK(delay->id == (first->first <= now && next != nullptr ? next->id : first->second));
    }
    const Job* claim = model.claim();
    const auto claimed = scheduler.claim_next_job(Seconds{30}, at(now));
    REQUIRE(claimed.has_value() == (claim != nullptr));
    if (claim == nullptr)
      return;
    CHECK(claimed->job.id == claim->id);
    if (round % 2 == 0)
      CHECK(scheduler.complete(claimed->claim, at(now)));
  }
}

/// jobs: `count` due at `start`, in three queues and four priority levels, starts spread so
/// that claim order and start order differ; every fifth expiring at `expiry`.
std::int64_t add_jobs(Scheduler& scheduler, int count, double start,
                      std::optional<double> expiry = std::nullopt) {
  std::int64_t last = 0;
  for (int i = 0; i < count; ++i) {
    jobsched::JobOptions options;
    options.created_at = at(start - 1000);
    options.starts_at = at(start + (i * 7 % 13));
    options.priority = i % 4;
    options.queue = "q" + std::to_string(i % 3);
    if (expiry && i % 5 == 0)
      options.expires_at = at(*expiry + i);
    last = scheduler.add_job("x", options).id;
  }
  return last;
}

struct Pinned {
  double now = kT;
  TempFile file{"lagging"};
  Scheduler scheduler = open();

  Scheduler open() {
    jobsched::Options options;
    options.clock = [this] { return at(now); };
    options.retry.max_attempts = kMaxAttempts;
    options.retry.initial_backoff = Seconds{1};
    options.retry.jitter = 0;
    options.synchronous = jobsched::Synchronous::normal;
    return Scheduler::open(file.path(), options);
  }
};

}  // namespace

TEST_CASE("more scheduled jobs come due than a claim moves on: calls still match the model") {
  Pinned f;
  const std::int64_t last = add_jobs(f.scheduler, kLagging * 2, kT + 100);
  check_against_model(f.scheduler, last, kT + 200, kLagging);
}

TEST_CASE("more leases run out than a claim moves on: calls still match the model") {
  Pinned f;
  const std::int64_t last = add_jobs(f.scheduler, kLagging * 2, kT - 100);
  for (int i = 0; i < kLagging; ++i)
    REQUIRE(f.scheduler.claim_next_job(Seconds{10 + i % 7}));
  check_against_model(f.scheduler, last, kT + 50, kLagging);
}

TEST_CASE("more leases run out on a last attempt than a claim marks: calls still match the model") {
  Pinned f;
  const std::int64_t last = add_jobs(f.scheduler, kLagging * 2, kT - 100);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    for (int i = 0; i < kLagging; ++i)
      REQUIRE(f.scheduler.claim_next_job(Seconds{10}));
    f.now += 20;
  }
  check_against_model(f.scheduler, last, f.now + 5, kLagging);
  REQUIRE_FALSE(f.scheduler.failed_jobs().empty());
}

TEST_CASE("more jobs expire than a claim moves on: calls still match the model") {
  Pinned f;
  const std::int64_t last = add_jobs(f.scheduler, kLagging * 6, kT - 100, kT + 10);
  check_against_model(f.scheduler, last, kT + 100, kLagging);
}

TEST_CASE("a clock set back before the stored states were written: calls still match the model") {
  Pinned f;
  // Written at kT + 500: jobs due and expired, leases run out and moved on, all relative to a
  // clock the calls below are set back from.
  std::int64_t last = add_jobs(f.scheduler, kLagging * 2, kT, kT + 20);
  for (int i = 0; i < kLagging; ++i)
    REQUIRE(f.scheduler.claim_next_job(Seconds{10 + i}, at(kT + 15)));
  f.now = kT + 500;
  last = std::max(last, add_jobs(f.scheduler, kLagging * 2, kT + 5, kT + 30));
  const double back = GENERATE(kT + 1, kT + 12, kT + 20, kT + 28, kT + 40);
  check_against_model(f.scheduler, last, back, 3);
}

}  // namespace test_lagging_states
