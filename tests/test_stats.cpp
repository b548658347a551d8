// SPDX-License-Identifier: MIT
// Stats: counts by queue and state equal to get_job + state_of for every job, pending counts
// equal to count_pending_jobs at every moment, the oldest due job's lateness, on real files
// and in memory, and on an older file read-only; the Prometheus text, to the letter.

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/python_files.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_stats {

using jobsched::Job;
using jobsched::JobCounts;
using jobsched::JobOptions;
using jobsched::JobState;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::Stats;
using jobsched_test::at;
using jobsched_test::query_int;

namespace {

constexpr double kT = jobsched_test::pinned_now;
constexpr double kBuilt = kT - 1000;

jobsched::RetryPolicy retry() {
  jobsched::RetryPolicy policy;
  policy.max_attempts = 3;
  policy.jitter = 0.0;
  return policy;
}

JobOptions job(const std::string& queue, double starts, std::optional<double> expires = {},
               int priority = 0) {
  JobOptions options;
  options.created_at = at(kBuilt - 5000);
  options.starts_at = at(starts);
  if (expires)
    options.expires_at = at(*expires);
  options.queue = queue;
  options.priority = priority;
  return options;
}

void claim_one(Scheduler& s, const std::string& queue, double lease,
               std::optional<double> expires = {}, std::optional<int> attempts = {},
               bool fail = false) {
  JobOptions options = job(queue, kBuilt - 10, expires, 100);
  options.max_attempts = attempts;
  const Job added = s.add_job("c", options);
  auto claim = s.claim_next_job(Seconds{lease}, {queue}, at(kBuilt));
  REQUIRE(claim);
  REQUIRE(claim->job.id == added.id);
  if (fail)
    REQUIRE(s.fail(claim->claim, "broken", at(kBuilt)));
}

// Every state, written at kBuilt so that at kT some stored states lag (as in
// test_listing.cpp): came due, expired in place, leases run out, abandoned.
void add_mix(jobsched_test::PinnedClock& clock, Scheduler& s, const std::string& queue, int n) {
  clock.set(kBuilt);
  for (int i = 0; i < n; ++i) {
    claim_one(s, queue, 10'000);
    claim_one(s, queue, 500);
    claim_one(s, queue, 500, std::nullopt, 1);
    claim_one(s, queue, 10'000, kT - 50);
    claim_one(s, queue, 100, std::nullopt, 1, true);
    s.add_job("s", job(queue, kT + 100 + i));
    s.add_job("a", job(queue, kBuilt - 100 - 7 * i));
    s.add_job("d", job(queue, kT - 50));
    s.add_job("x", job(queue, kBuilt - 100, kT - 60));
    s.add_job("m", job(queue, kBuilt - 200, kBuilt - 60));
    const Job locked = s.add_job("l", job(queue, kBuilt - 100));
    REQUIRE(s.lock_job(locked.id, at(kBuilt)));
    const Job lock_expiring = s.add_job("l", job(queue, kBuilt - 100, kT - 40));
    REQUIRE(s.lock_job(lock_expiring.id, at(kBuilt)));
    const Job done = s.add_job("k", job(queue, kBuilt - 100));
    REQUIRE(s.complete_job(done.id, at(kBuilt - 1)));
    const Job cancelled = s.add_job("z", job(queue, kT + 5));
    REQUIRE(s.cancel_job(cancelled.id, "no", at(kBuilt)));
  }
  clock.set(kT);
}

struct Expected {
  std::map<std::string, JobCounts> queues;
  std::map<std::string, double> oldest_due;
  JobCounts totals;
};

Expected expected(Scheduler& s, double now) {
  Expected result;
  const long long last = query_int(s.handle(), "SELECT coalesce(max(id), 0) FROM job");
  for (std::int64_t id = 1; id <= last; ++id) {
    const std::optional<Job> found = s.get_job(id, at(now));
    if (!found)
      continue;
    const JobState state = jobsched::state_of(*found, at(now));
    result.queues[found->queue][state] += 1;
    result.totals[state] += 1;
    if (state == JobState::available) {
      const double late = now - jobsched_test::seconds(found->starts_at);
      double& oldest = result.oldest_due[found->queue];
      oldest = std::max(oldest, late);
    }
  }
  return result;
}

void check_stats(Scheduler& s, double now) {
  INFO("at " << now);
  const Stats stats = s.stats(at(now));
  const Expected want = expected(s, now);
  CHECK(stats.at == at(now));
  REQUIRE(stats.queues.size() == want.queues.size());
  std::optional<double> latest;
  for (const jobsched::QueueStats& queue : stats.queues) {
    INFO("queue '" << queue.queue << "'");
    REQUIRE(want.queues.count(queue.queue) == 1);
    for (const JobState state : jobsched::all_job_states) {
      INFO(jobsched::to_string(state));
      CHECK(queue.jobs[state] == want.queues.at(queue.queue)[state]);
    }
    const auto oldest = want.oldest_due.find(queue.queue);
    if (oldest == want.oldest_due.end()) {
      CHECK_FALSE(queue.oldest_due);
    } else {
      REQUIRE(queue.oldest_due);
      CHECK(queue.oldest_due->count() == oldest->second);
      latest = std::max(latest.value_or(0.0), oldest->second);
    }
  }
  CHECK(stats.totals == want.totals);
  CHECK(stats.totals.pending() == s.count_pending_jobs(at(now)));
  if (latest) {
    REQUIRE(stats.oldest_due);
    CHECK(stats.oldest_due->count() == *latest);
  } else {
    CHECK_FALSE(stats.oldest_due);
  }
}

}  // namespace

TEST_CASE("stats count every state of every queue as get_job and state_of do") {
  const std::string where = GENERATE("file", "memory");
  INFO(where);
  jobsched_test::SchedulerFixture f("stats-mix", where, retry());
  add_mix(f.clock, f.scheduler, "", 1);
  add_mix(f.clock, f.scheduler, "a", 3);
  add_mix(f.clock, f.scheduler, "b\"\n", 2);
  f.scheduler.put_schedule("nightly", jobsched::Rule::every(Seconds{3600}), {}, at(kT));
  const jobsched_test::Deadline deadline(Seconds{30}, "stats at every moment");
  for (const double now : {kT, kBuilt, kT - 1000 + 0.5, kT - 500, kT - 55, kT + 1000, kT + 20'000}) {
    check_stats(f.scheduler, now);
    if (deadline.passed())
      FAIL(deadline.failure());
  }
  const Stats stats = f.scheduler.stats(at(kT));
  // Every state has jobs at kT, and the stored states lag.
  for (const JobState state : jobsched::all_job_states) {
    INFO(jobsched::to_string(state));
    CHECK(stats.totals[state] > 0);
  }
  CHECK(stats.schema_version == jobsched::current_schema_version);
  CHECK(stats.schedules == 1);
  CHECK(stats.totals.total() ==
        query_int(f.scheduler.handle(), "SELECT count(*) FROM job"));
  // After the claims move every job on, the counts are the same.
  while (f.scheduler.claim_next_job(Seconds{1e6}, {"none"}, at(kT))) {
  }
  for (int i = 0; i < 40; ++i)
    f.scheduler.add_job("more", job("c", kT + 1e6));
  check_stats(f.scheduler, kT);
}

TEST_CASE("stats agree with count_pending_jobs while jobs are claimed, failed and completed") {
  jobsched_test::SchedulerFixture f("stats-pending", "memory", retry());
  add_mix(f.clock, f.scheduler, "q", 2);
  double now = kT;
  for (int round = 0; round < 30; ++round) {
    now += 37;
    const auto claim = f.scheduler.claim_next_job(Seconds{round % 2 == 0 ? 20.0 : 500.0}, at(now));
    if (claim && round % 3 == 0)
      f.scheduler.fail(claim->claim, "again", at(now));
    else if (claim && round % 3 == 1)
      f.scheduler.complete(claim->claim, at(now));
    for (const double later : {now, now + 25, now + 600}) {
      INFO("round " << round << " at " << later);
      CHECK(f.scheduler.stats(at(later)).totals.pending() == f.scheduler.count_pending_jobs(at(later)));
    }
  }
}

TEST_CASE("a read-only scheduler counts an older file's jobs as a writer would") {
  const int version = GENERATE(0, 1, 2);
  INFO("a file at version " << version);
  jobsched_test::OldFileAndUpgrade files(
      "stats-read-only", version,
      "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at) VALUES"
      " ('a', 1, 10, NULL, NULL), ('b', 1, 5, NULL, NULL), (42, 1, 20, 30, NULL),"
      " ('gone', 1, 2, 3, NULL), (NULL, 1, 1, NULL, 4), ('later', 1, 2000000000, NULL, NULL)",
      25);
  Scheduler& writer = files.writer;
  Scheduler& reader = files.reader;
  const Stats read = reader.stats();
  const Stats written = writer.stats();
  CHECK(read.totals == written.totals);
  CHECK(read.totals.available == 3);
  CHECK(read.totals.scheduled == 1);
  CHECK(read.totals.completed == 1);
  CHECK(read.totals.expired == 1);
  CHECK(read.totals.pending() == reader.count_pending_jobs());
  REQUIRE(read.oldest_due);
  CHECK(read.oldest_due->count() == 20.0);
  CHECK(read.schema_version == version);
  CHECK(written.schema_version == jobsched::current_schema_version);
}

TEST_CASE("the Prometheus text follows the exposition format to the letter") {
  Stats stats;
  jobsched::QueueStats plain{"", {}, Seconds{12.25}};
  plain.jobs.scheduled = 3;
  plain.jobs.available = 2;
  plain.jobs.running = 1;
  plain.jobs.completed = 1000000;
  jobsched::QueueStats odd{"a\"b\\c\nd", {}, std::nullopt};
  odd.jobs.failed = 4;
  odd.jobs.cancelled = 5;
  odd.jobs.expired = 6;
  stats.queues = {plain, odd};
  stats.schedules = 2;
  stats.schema_version = 7;
  const std::string golden =
      "# HELP jobsched_jobs Jobs by queue and state.\n"
      "# TYPE jobsched_jobs gauge\n"
      "jobsched_jobs{queue=\"\",state=\"scheduled\"} 3\n"
      "jobsched_jobs{queue=\"\",state=\"available\"} 2\n"
      "jobsched_jobs{queue=\"\",state=\"running\"} 1\n"
      "jobsched_jobs{queue=\"\",state=\"completed\"} 1000000\n"
      "jobsched_jobs{queue=\"\",state=\"failed\"} 0\n"
      "jobsched_jobs{queue=\"\",state=\"cancelled\"} 0\n"
      "jobsched_jobs{queue=\"\",state=\"expired\"} 0\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"scheduled\"} 0\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"available\"} 0\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"running\"} 0\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"completed\"} 0\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"failed\"} 4\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"cancelled\"} 5\n"
      "jobsched_jobs{queue=\"a\\\"b\\\\c\\nd\",state=\"expired\"} 6\n"
      "# HELP jobsched_oldest_due_seconds How late the oldest due job of the queue is, in "
      "seconds (0 when none is due).\n"
      "# TYPE jobsched_oldest_due_seconds gauge\n"
      "jobsched_oldest_due_seconds{queue=\"\"} 12.25\n"
      "jobsched_oldest_due_seconds{queue=\"a\\\"b\\\\c\\nd\"} 0\n"
      "# HELP jobsched_schedules Recurring schedules stored.\n"
      "# TYPE jobsched_schedules gauge\n"
      "jobsched_schedules 2\n"
      "# HELP jobsched_schema_version The job file's schema version.\n"
      "# TYPE jobsched_schema_version gauge\n"
      "jobsched_schema_version 7\n";
  CHECK(jobsched::to_prometheus(stats) == golden);
  // Values read back exactly, in the shortest form.
  CHECK(jobsched::detail::prometheus_number(0.1) == "0.1");
  CHECK(jobsched::detail::prometheus_number(1e21) == "1e+21");
  CHECK(jobsched::detail::prometheus_number(86400.000001) == "86400.000001");
}

TEST_CASE("no job due means no lateness, and lateness counts from the earliest due start") {
  jobsched_test::SchedulerFixture f("stats-lateness", "memory", retry());
  f.scheduler.add_job("later", job("q", kT + 60));
  Stats stats = f.scheduler.stats(at(kT));
  CHECK_FALSE(stats.oldest_due);
  REQUIRE(stats.queues.size() == 1);
  CHECK_FALSE(stats.queues[0].oldest_due);
  f.scheduler.add_job("late", job("q", kT - 30));
  f.scheduler.add_job("less late", job("r", kT - 10));
  stats = f.scheduler.stats(at(kT));
  REQUIRE(stats.oldest_due);
  CHECK(stats.oldest_due->count() == 30.0);
  REQUIRE(stats.queues.size() == 2);
  CHECK(stats.queues[0].oldest_due->count() == 30.0);
  CHECK(stats.queues[1].oldest_due->count() == 10.0);
}

}  // namespace test_stats
