// SPDX-License-Identifier: MIT
// Listing jobs: each state in the order of its time, both ways, keyset pages that give every
// job exactly once (equal times too), by queue; jobs whose stored state lags listed under the
// state they are in; bad limits and cursors refused; read-only schedulers on older files.
// The oracle is get_job + state_of for every job.

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/deadline.hpp"
#include "support/python_files.hpp"
#include "support/scheduler_fixture.hpp"
#include "support/temp_file.hpp"

namespace test_listing {

using jobsched::InvalidArgumentError;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::JobPage;
using jobsched::JobQuery;
using jobsched::JobState;
using jobsched::ListOrder;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::contains;
using jobsched_test::query_int;
using jobsched_test::thrown;

namespace {

constexpr double kT = jobsched_test::pinned_now;
constexpr double kBuilt = kT - 1000;  // every write happens then; reads at kT

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

// Adds a due job of top priority and claims it (it is the only one at that level).
jobsched::ClaimedJob claimed(Scheduler& s, const std::string& queue, double lease,
                             std::optional<double> expires = {}, std::optional<int> attempts = {}) {
  JobOptions options = job(queue, kBuilt - 10, expires, 100);
  options.max_attempts = attempts;
  const Job added = s.add_job("c", options);
  auto claim = s.claim_next_job(Seconds{lease}, {queue}, at(kBuilt));
  REQUIRE(claim);
  REQUIRE(claim->job.id == added.id);
  return *claim;
}

/// Jobs in every state in `queue`, `n` of each kind (so that queues differ), with equal
/// times, written at kBuilt so that at kT some stored states lag: a job that came due
/// (stored 0), one that expired where it is (stored 1), a lease with attempts left that ran
/// out (stored 2), one on its last attempt that ran out (stored 3: abandoned), a lock and a
/// lease whose job expired (stored 4 and 2).
void add_mix(jobsched_test::PinnedClock& clock, Scheduler& s, const std::string& queue, int n) {
  clock.set(kBuilt);
  for (int i = 0; i < n; ++i) {
    claimed(s, queue, 10'000);                       // running till kT + 9000
    claimed(s, queue, 500);                          // lease ran out at kT - 500: free again
    claimed(s, queue, 500, std::nullopt, 1);         // abandoned at kT - 500: failed
    claimed(s, queue, 10'000, kT - 50);              // held, expired at kT - 50
    const auto failing = claimed(s, queue, 100, std::nullopt, 1);
    REQUIRE(s.fail(failing.claim, "broken", at(kBuilt)));
    s.add_job("s", job(queue, kT + 100));            // scheduled, equal starts
    s.add_job("s", job(queue, kT + 100 + i));
    s.add_job("a", job(queue, kBuilt - 100));        // available, equal starts
    s.add_job("a", job(queue, kBuilt - 100 - i));
    s.add_job("d", job(queue, kT - 50));             // came due since: stored 0
    s.add_job("x", job(queue, kBuilt - 100, kT - 60));  // expired in place: stored 1
    s.add_job("m", job(queue, kBuilt - 200, kBuilt - 60));  // expired, moved out: stored 5
    const Job locked = s.add_job("l", job(queue, kBuilt - 100));
    REQUIRE(s.lock_job(locked.id, at(kBuilt)));
    const Job lock_expiring = s.add_job("l", job(queue, kBuilt - 100, kT - 40));
    REQUIRE(s.lock_job(lock_expiring.id, at(kBuilt)));
    const Job done = s.add_job("k", job(queue, kBuilt - 100));
    REQUIRE(s.complete_job(done.id, at(kBuilt - 1)));
    const Job done_too = s.add_job("k", job(queue, kBuilt - 100));
    REQUIRE(s.complete_job(done_too.id, at(kBuilt - 1 - i)));
    const Job cancelled = s.add_job("z", job(queue, kT + 5));
    REQUIRE(s.cancel_job(cancelled.id, "no", at(kBuilt)));
  }
  clock.set(kT);
}

/// Every job's state at `now`, by get_job.
std::vector<std::pair<Job, JobState>> oracle(Scheduler& s, double now) {
  std::vector<std::pair<Job, JobState>> jobs;
  const long long last = query_int(s.handle(), "SELECT coalesce(max(id), 0) FROM job");
  for (std::int64_t id = 1; id <= last; ++id) {
    const std::optional<Job> found = s.get_job(id, at(now));
    if (found)
      jobs.emplace_back(*found, jobsched::state_of(*found, at(now), retry().max_attempts));
  }
  return jobs;
}

/// The ids a listing must give, in its order.
std::vector<std::int64_t> expected(const std::vector<std::pair<Job, JobState>>& jobs,
                                   const JobQuery& query) {
  std::vector<std::tuple<int, double, std::int64_t>> keys;
  for (const auto& entry : jobs) {
    const Job& j = entry.first;
    if (query.state && entry.second != *query.state)
      continue;
    if (query.queue && j.queue != *query.queue)
      continue;
    int group = 0;
    double key = static_cast<double>(j.id);
    if (query.state) {
      switch (*query.state) {
        case JobState::scheduled:
        case JobState::available:
          key = jobsched_test::seconds(j.starts_at);
          break;
        case JobState::running:
          if (j.lease_until) {
            key = jobsched_test::seconds(*j.lease_until);
          } else {
            group = 1;
            key = jobsched_test::seconds(j.starts_at);
          }
          break;
        case JobState::completed:
          key = jobsched_test::seconds(*j.completed_at);
          break;
        case JobState::failed:
        case JobState::cancelled:
          key = jobsched_test::seconds(*j.failed_at);
          break;
        case JobState::expired:
          key = jobsched_test::seconds(*j.expires_at);
          break;
      }
    }
    keys.emplace_back(group, key, j.id);
  }
  std::sort(keys.begin(), keys.end());
  if (query.order == ListOrder::newest_first)
    std::reverse(keys.begin(), keys.end());
  std::vector<std::int64_t> ids;
  for (const auto& key : keys)
    ids.push_back(std::get<2>(key));
  return ids;
}

/// Every page of the listing, followed from the first; the jobs' ids in order.
std::vector<std::int64_t> all_pages(Scheduler& s, JobQuery query, double now) {
  const jobsched_test::Deadline deadline(Seconds{20}, "the listing to reach its last page");
  std::vector<std::int64_t> ids;
  query.after.reset();
  for (;;) {
    const JobPage page = s.list_jobs(query, at(now));
    for (const Job& listed : page.jobs)
      ids.push_back(listed.id);
    if (!page.has_more())
      return ids;
    REQUIRE(page.jobs.size() == query.limit);
    REQUIRE(*page.next_after == page.jobs.back().id);
    query.after = page.next_after;
    if (deadline.passed())
      FAIL(deadline.failure());
  }
}

std::vector<std::optional<JobState>> every_state_or_none() {
  std::vector<std::optional<JobState>> states{std::nullopt};
  for (const JobState state : jobsched::all_job_states)
    states.emplace_back(state);
  return states;
}

}  // namespace

TEST_CASE("a job state's name reads back as the state, and an unknown name is refused") {
  for (const JobState state : jobsched::all_job_states)
    CHECK(jobsched::parse_job_state(jobsched::to_string(state)) == state);
  const auto error = thrown<InvalidArgumentError>([] { jobsched::parse_job_state("runing"); });
  REQUIRE(error);
  CHECK(contains(*error, "'runing'"));
  CHECK(contains(*error, "scheduled, available, running, completed, failed, cancelled, expired"));
}

TEST_CASE("each state is listed in the order of its time, both ways, every page exact") {
  const std::string where = GENERATE("file", "memory");
  INFO(where);
  jobsched_test::SchedulerFixture f("listing-order", where, retry());
  add_mix(f.clock, f.scheduler, "", 1);
  add_mix(f.clock, f.scheduler, "a", 3);
  add_mix(f.clock, f.scheduler, "b", 2);
  for (const double now : {kT, kT - 1000, kT + 20'000}) {
    const auto jobs = oracle(f.scheduler, now);
    for (const auto& state : every_state_or_none()) {
      for (const auto& queue : std::vector<std::optional<std::string>>{std::nullopt, "", "a", "b"}) {
        for (const ListOrder order : {ListOrder::oldest_first, ListOrder::newest_first}) {
          for (const std::size_t limit : {std::size_t{1}, std::size_t{3}, std::size_t{50}}) {
            JobQuery query;
            query.state = state;
            query.queue = queue;
            query.order = order;
            query.limit = limit;
            INFO("now " << now << ", state " << (state ? jobsched::to_string(*state) : "any")
                        << ", queue " << (queue ? "'" + *queue + "'" : "any") << ", "
                        << (order == ListOrder::oldest_first ? "oldest" : "newest")
                        << " first, limit " << limit);
            const std::vector<std::int64_t> want = expected(jobs, query);
            if (state && !queue && now == kT)
              CHECK_FALSE(want.empty());
            CHECK(all_pages(f.scheduler, query, now) == want);
          }
        }
      }
    }
  }
}

TEST_CASE("jobs whose stored state lags are listed under the state they are in") {
  jobsched_test::SchedulerFixture f("listing-lag", "file", retry());
  add_mix(f.clock, f.scheduler, "q", 1);
  sqlite3* db = f.scheduler.handle();
  auto listed = [&](JobState state) {
    JobQuery query;
    query.state = state;
    std::vector<std::int64_t> ids;
    for (const Job& j : f.scheduler.list_jobs(query, at(kT)).jobs)
      ids.push_back(j.id);
    return ids;
  };
  auto has = [](const std::vector<std::int64_t>& ids, long long id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  // A stored 1 whose expiry passed.
  const long long expired_in_place =
      query_int(db, "SELECT id FROM job WHERE state = 1 AND expires_at <= " + std::to_string(kT));
  REQUIRE(expired_in_place > 0);
  CHECK(has(listed(JobState::expired), expired_in_place));
  CHECK_FALSE(has(listed(JobState::available), expired_in_place));
  // A stored 2 whose lease ran out (attempts left): free, and due.
  const long long ran_out = query_int(
      db, "SELECT id FROM job WHERE state = 2 AND lease_until <= " + std::to_string(kT));
  REQUIRE(ran_out > 0);
  CHECK(has(listed(JobState::available), ran_out));
  CHECK_FALSE(has(listed(JobState::running), ran_out));
  // A stored 3 whose lease ran out: abandoned, failed at its lease end.
  const long long abandoned = query_int(
      db, "SELECT id FROM job WHERE state = 3 AND lease_until <= " + std::to_string(kT));
  REQUIRE(abandoned > 0);
  CHECK(has(listed(JobState::failed), abandoned));
  CHECK_FALSE(has(listed(JobState::running), abandoned));
  // A stored 0 that came due; a lock and a lease whose jobs expired.
  const long long came_due =
      query_int(db, "SELECT id FROM job WHERE state = 0 AND starts_at <= " + std::to_string(kT));
  REQUIRE(came_due > 0);
  CHECK(has(listed(JobState::available), came_due));
  const long long lock_expired = query_int(db, "SELECT id FROM job WHERE state = 4 AND expires_at IS NOT NULL");
  REQUIRE(lock_expired > 0);
  CHECK(has(listed(JobState::expired), lock_expired));
  CHECK_FALSE(has(listed(JobState::running), lock_expired));
}

TEST_CASE("pages over equal times give every job exactly once, in id order") {
  const std::string where = GENERATE("file", "memory");
  INFO(where);
  jobsched_test::SchedulerFixture f("listing-ties", where, retry());
  std::vector<jobsched::NewJob> batch;
  for (int i = 0; i < 120; ++i)
    batch.push_back({"t", job(i % 3 == 0 ? "other" : "q", kT + 100)});
  const std::vector<Job> added = f.scheduler.add_jobs(batch);
  std::vector<std::int64_t> in_q;
  for (const Job& j : added) {
    if (j.queue == "q")
      in_q.push_back(j.id);
  }
  JobQuery query;
  query.state = JobState::scheduled;
  query.queue = "q";
  query.limit = 7;
  CHECK(all_pages(f.scheduler, query, kT) == in_q);
  query.order = ListOrder::newest_first;
  std::vector<std::int64_t> reversed(in_q.rbegin(), in_q.rend());
  CHECK(all_pages(f.scheduler, query, kT) == reversed);
  // A page after the last job is empty, and says so.
  query.after = in_q.front();
  const JobPage last = f.scheduler.list_jobs(query, at(kT));
  CHECK(last.jobs.empty());
  CHECK_FALSE(last.has_more());
}

TEST_CASE("a bad limit or cursor is refused with an InvalidArgumentError naming it") {
  jobsched_test::SchedulerFixture f("listing-refused", "memory", retry());
  const Job one = f.scheduler.add_job("x", job("", kT + 10));
  JobQuery query;
  for (const std::size_t limit : {std::size_t{0}, jobsched::max_page_size + 1, std::size_t{1} << 40}) {
    query.limit = limit;
    const auto error = thrown<InvalidArgumentError>([&] { f.scheduler.list_jobs(query); });
    REQUIRE(error);
    CHECK(contains(*error, "got " + std::to_string(limit)));
  }
  query.limit = jobsched::max_page_size;
  CHECK(f.scheduler.list_jobs(query).jobs.size() == 1);
  query.after = 424242;
  const auto unknown = thrown<InvalidArgumentError>([&] { f.scheduler.list_jobs(query); });
  REQUIRE(unknown);
  CHECK(contains(*unknown, "job 424242"));
  // A cursor whose job has no time of the listed state.
  query.after = one.id;
  query.state = JobState::completed;
  const auto left = thrown<InvalidArgumentError>([&] { f.scheduler.list_jobs(query); });
  REQUIRE(left);
  CHECK(contains(*left, "job " + std::to_string(one.id)));
  CHECK(contains(*left, "completed jobs"));
}

TEST_CASE("a read-only scheduler lists an older file's jobs as a writer would") {
  const int version = GENERATE(0, 1, 2);
  INFO("a file at version " << version);
  jobsched_test::OldFileAndUpgrade files(
      "listing-read-only", version,
      "INSERT INTO job (data, created_at, starts_at, expires_at, completed_at) VALUES"
      " ('a', 1, 10, NULL, NULL), ('b', 1, 5, NULL, NULL), (42, 1, 20, 30, NULL),"
      " ('gone', 1, 2, 3, NULL), (NULL, 1, 1, NULL, 4), (2.5, 1, 7, NULL, NULL),"
      " ('later', 1, 2000000000, NULL, NULL), ('same', 1, 10, NULL, NULL)",
      25);
  Scheduler& writer = files.writer;
  Scheduler& reader = files.reader;
  REQUIRE(reader.needs_upgrade());
  for (const auto& state : every_state_or_none()) {
    for (const ListOrder order : {ListOrder::oldest_first, ListOrder::newest_first}) {
      JobQuery query;
      query.state = state;
      query.order = order;
      query.limit = 2;
      INFO((state ? jobsched::to_string(*state) : "any"));
      CHECK(all_pages(reader, query, 25) == all_pages(writer, query, 25));
    }
  }
  JobQuery available;
  available.state = JobState::available;
  CHECK(all_pages(reader, available, 25) == std::vector<std::int64_t>{2, 6, 1, 8, 3});
}

TEST_CASE("state_of a job read before its last lease ran out says it failed at that end") {
  jobsched_test::SchedulerFixture f("listing-state-of", "memory", retry());
  JobOptions options = job("", kT - 10);
  options.max_attempts = 1;
  f.scheduler.add_job("x", options);
  const auto claim = f.scheduler.claim_next_job(Seconds{30}, at(kT));
  REQUIRE(claim);
  const Job read = *f.scheduler.get_job(claim->job.id, at(kT));
  CHECK(jobsched::state_of(read, at(kT + 29)) == JobState::running);
  CHECK(jobsched::state_of(read, at(kT + 30)) == JobState::failed);
  CHECK(jobsched::state_of(*f.scheduler.get_job(read.id, at(kT + 30)), at(kT + 30)) ==
        JobState::failed);
  // With attempts left, the job is free again once its lease ran out.
  Job second = read;
  second.max_attempts = 2;
  CHECK(jobsched::state_of(second, at(kT + 30)) == JobState::available);
}

}  // namespace test_listing
