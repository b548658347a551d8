// SPDX-License-Identifier: MIT
// Batches: many jobs added, claimed, completed, failed or released in one transaction (one
// commit), each answering as its one-at-a-time call would; a bad job refused before anything
// is written; stale claims refused alone; several processes claiming batches at once never
// share a job.

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/checks.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_batches {

namespace {

using jobsched::Claim;
using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::NewJob;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::contains;
using jobsched_test::exec_raw;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using jobsched_test::thrown;

constexpr double kT = 1'700'000'000.0;

jobsched::TimePoint at(double seconds) {
  return jobsched::from_unix_seconds(seconds);
}

int count_commit(void* commits) {
  ++*static_cast<int*>(commits);
  return 0;  // let it commit
}

/// Counts the commits on a scheduler's connection while it lives.
class Commits {
 public:
  explicit Commits(Scheduler& scheduler) : db_(scheduler.handle()) {
    sqlite3_commit_hook(db_, count_commit, &count_);
  }
  Commits(const Commits&) = delete;
  Commits& operator=(const Commits&) = delete;
  ~Commits() { sqlite3_commit_hook(db_, nullptr, nullptr); }
  int count() const { return count_; }

 private:
  sqlite3* db_;
  int count_ = 0;
};

struct Pinned {
  TempFile file{"batches"};
  Scheduler scheduler = open(file.path());

  static Scheduler open(const std::string& path) {
    jobsched::Options options;
    options.clock = [] { return at(kT); };
    options.retry.max_attempts = 2;
    options.retry.initial_backoff = Seconds{10};
    options.retry.jitter = 0;
    return Scheduler::open(path, options);
  }
};

/// `count` jobs in two queues and three priority levels, their starts spread before kT.
std::vector<NewJob> varied_jobs(int count) {
  std::vector<NewJob> jobs;
  for (int i = 0; i < count; ++i) {
    JobOptions options;
    options.created_at = at(kT - 1000);
    options.starts_at = at(kT - 500 + (i * 37 % 400));
    options.priority = i % 3;
    options.queue = i % 2 == 0 ? "" : "other";
    jobs.push_back(NewJob{jobsched::Payload("job " + std::to_string(i)), options});
  }
  return jobs;
}

}  // namespace

TEST_CASE("add_jobs adds every job in one commit and returns each as stored") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  TempFile file("batches-add");
  Scheduler scheduler = Pinned::open(where == "file" ? file.path() : std::string(":memory:"));
  std::vector<NewJob> jobs = varied_jobs(100);
  jobs[7].data = jobsched::Payload();  // NULL
  jobs[8].data = jobsched::Payload(std::string("a\0b", 3));
  jobs[9].options.expires_at = at(kT + 60);
  std::vector<Job> added;
  {
    const Commits commits(scheduler);
    added = scheduler.add_jobs(jobs);
    CHECK(commits.count() == 1);
  }
  REQUIRE(added.size() == jobs.size());
  for (std::size_t i = 0; i < added.size(); ++i) {
    CAPTURE(i);
    CHECK(added[i].id == static_cast<std::int64_t>(i) + 1);
    CHECK(added[i].data == jobs[i].data);
    CHECK(added[i].starts_at == *jobs[i].options.starts_at);
    CHECK(added[i].queue == jobs[i].options.queue);
    const auto stored = scheduler.get_job(added[i].id);
    REQUIRE(stored);
    CHECK(*stored == added[i]);
  }
  CHECK(scheduler.count_pending_jobs() == 100);
  CHECK(scheduler.add_jobs({}).empty());
  CHECK(scheduler.count_pending_jobs() == 100);
}

// add_jobs inserts runs of jobs without a key many rows to a statement (sql::rows_per_insert);
// lists longer than a statement, cut by keyed jobs at odd places, store each job as its own
// add_job would: its id in list order, its values, its payload, and its state at the add.
TEST_CASE("add_jobs stores long runs between keyed jobs as one add_job at a time would") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  TempFile file("batches-runs");
  Scheduler scheduler = Pinned::open(where == "file" ? file.path() : std::string(":memory:"));
  scheduler.add_job("before");  // the list's ids follow on from 2
  std::vector<NewJob> jobs;
  std::vector<int> states;  // the state column each job should be stored in
  for (int i = 0; i < 110; ++i) {
    JobOptions options;
    options.created_at = at(kT - 1000);
    options.priority = i % 5 - 2;
    options.queue = "q" + std::to_string(i % 3);
    if (i % 4 == 0) {
      options.starts_at = at(kT + 10 + i);  // not due yet
      states.push_back(0);
    } else if (i % 4 == 1) {
      options.starts_at = at(kT - 50);
      options.expires_at = at(kT - 10);  // expired before the add
      states.push_back(5);
    } else {
      options.starts_at = at(kT - i);  // due
      if (i % 8 == 2)
        options.expires_at = at(kT + 3600);
      states.push_back(1);
    }
    if (i % 7 == 3)
      options.max_attempts = 1 + i % 4;
    if (i % 9 == 4) {
      options.initial_backoff = Seconds{1.5 + i};
      options.max_backoff = Seconds{100.0 + i};
    }
    if (i == 40 || i == 41 || i == 75)
      options.unique = jobsched::Unique{"key " + std::to_string(i)};
    jobsched::Payload data("payload " + std::to_string(i));
    if (i % 10 == 6)
      data = jobsched::Payload();
    else if (i % 10 == 7)
      data = jobsched::Payload::integer(std::int64_t{i} * 1000);
    else if (i % 10 == 9)
      data = jobsched::Payload::text("text " + std::to_string(i));
    else if (i % 10 == 8)
      data = jobsched::Payload(std::string("\0x\0", 3) + std::to_string(i));
    jobs.push_back(NewJob{data, options});
  }
  const std::vector<Job> added = scheduler.add_jobs(jobs);
  REQUIRE(added.size() == jobs.size());
  for (std::size_t i = 0; i < added.size(); ++i) {
    CAPTURE(i);
    CHECK(added[i].id == static_cast<std::int64_t>(i) + 2);
    CHECK(added[i].data == jobs[i].data);
    CHECK(added[i].priority == jobs[i].options.priority);
    CHECK(added[i].queue == jobs[i].options.queue);
    CHECK(added[i].starts_at == *jobs[i].options.starts_at);
    CHECK(added[i].expires_at == jobs[i].options.expires_at);
    CHECK(added[i].max_attempts == jobs[i].options.max_attempts);
    CHECK(added[i].initial_backoff == jobs[i].options.initial_backoff);
    CHECK(added[i].max_backoff == jobs[i].options.max_backoff);
    const auto stored = scheduler.get_job(added[i].id);
    REQUIRE(stored);
    CHECK(*stored == added[i]);
    CHECK(query_int(scheduler.handle(),
                    "SELECT state FROM job WHERE id = " + std::to_string(added[i].id)) ==
          states[i]);
  }
  CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM job_payload") == 111);
  const auto due = std::count(states.begin(), states.end(), 1);
  const auto later = std::count(states.begin(), states.end(), 0);
  CHECK(scheduler.count_pending_jobs() == 1 + due + later);
  // The key holders hold their keys.
  JobOptions again;
  again.unique = jobsched::Unique{"key 75", jobsched::OnConflict::return_existing};
  CHECK(scheduler.add_job("again", again).id == added[75].id);
}

TEST_CASE("add_jobs refuses a list with one bad job, naming its place, and adds none") {
  Pinned f;
  f.scheduler.add_job("before");
  const std::int64_t changes = query_int(f.scheduler.handle(), "SELECT total_changes()");
  std::vector<NewJob> jobs = varied_jobs(5);
  jobs[2].options.expires_at = at(kT - 2000);  // before its start
  const auto refused =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.add_jobs(jobs); });
  REQUIRE(refused);
  CHECK(contains(*refused, "job 3 of 5"));
  CHECK(contains(*refused, "expires_at"));
  CHECK(query_int(f.scheduler.handle(), "SELECT count(*) FROM job") == 1);
  CHECK(query_int(f.scheduler.handle(), "SELECT total_changes()") == changes);
  // Put right, the same list goes in whole.
  jobs[2].options.expires_at.reset();
  CHECK(f.scheduler.add_jobs(jobs).size() == 5);
  CHECK(f.scheduler.count_pending_jobs() == 6);
}

TEST_CASE("claim_jobs claims in one commit the jobs that claims one at a time would, in order") {
  Pinned one_by_one;
  Pinned batched;
  // More than one statement's worth (sql::rows_per_settle, 32), from either set.
  one_by_one.scheduler.add_jobs(varied_jobs(100));
  batched.scheduler.add_jobs(varied_jobs(100));
  const std::vector<std::string> named{"other"};
  const bool all = GENERATE(true, false);
  INFO((all ? "every queue" : "one queue"));

  std::vector<std::int64_t> expected;
  for (int i = 0; i < 40; ++i) {
    const auto claimed = all ? one_by_one.scheduler.claim_next_job(Seconds{30})
                             : one_by_one.scheduler.claim_next_job(Seconds{30}, named);
    REQUIRE(claimed);
    expected.push_back(claimed->job.id);
  }
  std::vector<ClaimedJob> claimed;
  {
    const Commits commits(batched.scheduler);
    claimed = all ? batched.scheduler.claim_jobs(40, Seconds{30})
                  : batched.scheduler.claim_jobs(40, Seconds{30}, named);
    CHECK(commits.count() == 1);
  }
  REQUIRE(claimed.size() == 40);
  std::set<std::int64_t> tokens;
  for (std::size_t i = 0; i < claimed.size(); ++i) {
    CAPTURE(i);
    CHECK(claimed[i].job.id == expected[i]);
    CHECK(claimed[i].claim.job_id == claimed[i].job.id);
    CHECK(claimed[i].claim.lease_until == at(kT + 30));
    CHECK(claimed[i].job.attempts == 1);
    CHECK(claimed[i].job.data == jobsched::Payload("job " + std::to_string(claimed[i].job.id - 1)));
    // Stored as returned: the job as get_job reads it, with the claim's token.
    const auto stored = batched.scheduler.get_job(claimed[i].job.id);
    REQUIRE(stored);
    CHECK(*stored == claimed[i].job);
    CHECK(stored->locked_at == at(kT));
    CHECK(query_int(batched.scheduler.handle(),
                    "SELECT claim_token FROM job WHERE id = " +
                        std::to_string(claimed[i].job.id)) == claimed[i].claim.token);
    tokens.insert(claimed[i].claim.token);
  }
  CHECK(tokens.size() == claimed.size());
  // Fewer left than asked for: all of them; then none.
  const auto rest = all ? batched.scheduler.claim_jobs(100, Seconds{30})
                        : batched.scheduler.claim_jobs(100, Seconds{30}, named);
  CHECK(rest.size() == (all ? 60u : 10u));
  CHECK((all ? batched.scheduler.claim_jobs(5, Seconds{30})
             : batched.scheduler.claim_jobs(5, Seconds{30}, named))
            .empty());
}

TEST_CASE("claim_jobs refuses a limit of 0 and a bad lease, changing nothing") {
  Pinned f;
  f.scheduler.add_jobs(varied_jobs(3));
  const std::int64_t changes = query_int(f.scheduler.handle(), "SELECT total_changes()");
  const auto zero =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.claim_jobs(0, Seconds{30}); });
  REQUIRE(zero);
  CHECK(contains(*zero, "got 0"));
  const auto lease =
      thrown<jobsched::InvalidArgumentError>([&] { f.scheduler.claim_jobs(2, Seconds{-1}); });
  REQUIRE(lease);
  CHECK(contains(*lease, "got -1 s"));
  CHECK(thrown<jobsched::InvalidArgumentError>(
      [&] { f.scheduler.claim_jobs(2, Seconds{30}, std::vector<std::string>{}); }));
  CHECK(query_int(f.scheduler.handle(), "SELECT total_changes()") == changes);
  CHECK(f.scheduler.count_pending_jobs() == 3);
}

// complete_all completes many claims to a statement (sql::rows_per_settle); stale ones among
// them, on either side of a statement's bounds, are refused alone, as complete refuses them.
TEST_CASE("complete_all of many claims answers and stores each as complete alone would") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  TempFile one_file("batches-complete-one");
  TempFile all_file("batches-complete-all");
  Scheduler one = Pinned::open(where == "file" ? one_file.path() : std::string(":memory:"));
  Scheduler all = Pinned::open(where == "file" ? all_file.path() : std::string(":memory:"));
  // The same jobs and claims on both: 80 on a 30 s lease, then 10 on their last attempt on
  // a 5 s lease, which runs out before they are completed (their jobs are abandoned).
  const auto claims_on = [](Scheduler& scheduler) {
    std::vector<NewJob> jobs = varied_jobs(90);
    for (std::size_t i = 80; i < jobs.size(); ++i) {
      jobs[i].options.max_attempts = 1;
      jobs[i].options.priority = -1;  // claimed after the others
    }
    scheduler.add_jobs(jobs);
    std::vector<Claim> claims;
    for (const ClaimedJob& job : scheduler.claim_jobs(80, Seconds{30}))
      claims.push_back(job.claim);
    for (const ClaimedJob& job : scheduler.claim_jobs(10, Seconds{5}))
      claims.push_back(job.claim);
    REQUIRE(claims.size() == 90);
    claims[5].token ^= 1;                      // a wrong token
    REQUIRE(scheduler.complete(claims[33]));   // completed already
    REQUIRE(scheduler.release(claims[40]));    // released, then claimed by another
    const auto again = scheduler.claim_jobs(1, Seconds{30});
    REQUIRE(again.size() == 1);
    REQUIRE(again[0].job.id == claims[40].job_id);
    return claims;
  };
  const std::vector<Claim> one_claims = claims_on(one);
  const std::vector<Claim> all_claims = claims_on(all);
  const jobsched::TimePoint later = at(kT + 10);
  std::vector<bool> alone;
  for (const Claim& claim : one_claims)
    alone.push_back(one.complete(claim, later));
  std::vector<bool> together;
  {
    const Commits commits(all);
    together = all.complete_all(all_claims, later);
    CHECK(commits.count() == 1);
  }
  CHECK(together == alone);
  for (std::size_t i = 0; i < alone.size(); ++i) {
    CAPTURE(i);
    CHECK(alone[i] == !(i == 5 || i == 33 || i == 40 || i >= 80));
  }
  for (std::int64_t id = 1; id <= 90; ++id) {
    CAPTURE(id);
    CHECK(*all.get_job(id) == *one.get_job(id));
    CHECK(query_int(all.handle(), "SELECT state FROM job WHERE id = " + std::to_string(id)) ==
          query_int(one.handle(), "SELECT state FROM job WHERE id = " + std::to_string(id)));
  }
  CHECK(all.count_pending_jobs(later) == one.count_pending_jobs(later));
}

TEST_CASE("complete_all, fail_all and release_all settle each claim as alone, in one commit") {
  Pinned f;
  f.scheduler.add_jobs(varied_jobs(12));
  std::vector<ClaimedJob> claimed = f.scheduler.claim_jobs(12, Seconds{30});
  REQUIRE(claimed.size() == 12);
  std::vector<Claim> claims;
  for (const ClaimedJob& job : claimed)
    claims.push_back(job.claim);

  // A stale claim among good ones: a wrong token, and one settled already.
  Claim wrong = claims[0];
  wrong.token ^= 1;
  REQUIRE(f.scheduler.complete(claims[1]));

  SECTION("complete_all") {
    std::vector<bool> done;
    {
      const Commits commits(f.scheduler);
      done = f.scheduler.complete_all({wrong, claims[1], claims[2], claims[3], claims[3]});
      CHECK(commits.count() == 1);
    }
    CHECK(done == std::vector<bool>{false, false, true, true, false});
    CHECK_FALSE(f.scheduler.get_job(claims[0].job_id)->completed_at);
    CHECK(f.scheduler.get_job(claims[2].job_id)->completed_at == at(kT));
    CHECK(f.scheduler.complete_all({}).empty());
  }
  SECTION("fail_all") {
    std::vector<bool> done;
    {
      const Commits commits(f.scheduler);
      done = f.scheduler.fail_all(
          {{wrong, "wrong"}, {claims[2], "two"}, {claims[3], "three"}, {claims[1], "one"}});
      CHECK(commits.count() == 1);
    }
    CHECK(done == std::vector<bool>{false, true, true, false});
    const Job two = *f.scheduler.get_job(claims[2].job_id);
    CHECK(two.last_error == std::optional<std::string>("two"));
    CHECK(two.starts_at == at(kT + 10));  // retried after the backoff
    CHECK_FALSE(two.locked_at);
    CHECK(f.scheduler.get_job(claims[3].job_id)->last_error ==
          std::optional<std::string>("three"));
    CHECK_FALSE(f.scheduler.get_job(claims[0].job_id)->last_error);
  }
  SECTION("release_all") {
    std::vector<bool> done;
    {
      const Commits commits(f.scheduler);
      done = f.scheduler.release_all({claims[4], wrong, claims[5]});
      CHECK(commits.count() == 1);
    }
    CHECK(done == std::vector<bool>{true, false, true});
    const Job four = *f.scheduler.get_job(claims[4].job_id);
    CHECK(four.attempts == 0);
    CHECK_FALSE(four.locked_at);
    CHECK(f.scheduler.get_job(claims[0].job_id)->locked_at);
    // Released jobs are claimed again first (they keep their place in claim order).
    const auto again = f.scheduler.claim_jobs(2, Seconds{30});
    REQUIRE(again.size() == 2);
    std::set<std::int64_t> ids{again[0].job.id, again[1].job.id};
    CHECK(ids == std::set<std::int64_t>{claims[4].job_id, claims[5].job_id});
  }
}

TEST_CASE("four processes claiming batches of 7 from 600 jobs claim each exactly once",
          "[processes]") {
  TempFile file("batches-processes");
  constexpr int kJobs = 600;
  constexpr int kProcesses = 4;
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::normal;
  options.busy_timeout = std::chrono::milliseconds(60'000);
  {
    auto scheduler = Scheduler::open(file.path(), options);
    std::vector<NewJob> jobs;
    for (int i = 0; i < kJobs; ++i) {
      JobOptions job;
      job.created_at = at(kT - kJobs + i);
      jobs.push_back(NewJob{jobsched::Payload(std::to_string(i)), job});
    }
    scheduler.add_jobs(jobs);
  }
  const auto reports = jobsched_test::run_in_processes(kProcesses, [&](const auto& report) {
    int status = 0;
    auto scheduler = Scheduler::open(file.path(), options);
    // More batches than jobs means a job came back: the loop would never end.
    for (int batches = 0; batches <= kJobs; ++batches) {
      const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(7, Seconds{3600});
      if (claimed.empty())
        return status;
      std::vector<Claim> claims;
      for (const ClaimedJob& job : claimed) {
        claims.push_back(job.claim);
        if (!report(job.job.id))
          status = 2;
      }
      const std::vector<bool> done = scheduler.complete_all(claims);
      if (std::count(done.begin(), done.end(), true) != static_cast<long>(claims.size()))
        status = 3;
    }
    return 4;
  });
  CHECK(reports.exit_codes == std::vector<int>(kProcesses, 0));
  CHECK(reports.times_reported.size() == static_cast<std::size_t>(kJobs));
  CHECK(std::all_of(reports.times_reported.begin(), reports.times_reported.end(),
                    [](const auto& entry) { return entry.second == 1; }));
  auto scheduler = Scheduler::open(file.path(), options);
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK(query_int(scheduler.handle(),
                  "SELECT count(*) FROM job WHERE completed_at IS NOT NULL AND attempts = 1") ==
        kJobs);
}

TEST_CASE("claim_jobs from queues named more than once claims each job once, in claim order") {
  Pinned one_by_one;
  Pinned batched;
  one_by_one.scheduler.add_jobs(varied_jobs(40));
  batched.scheduler.add_jobs(varied_jobs(40));
  const std::vector<std::string> named{"other", "", "other"};
  std::vector<std::int64_t> expected;
  for (int i = 0; i < 30; ++i)
    expected.push_back(one_by_one.scheduler.claim_next_job(Seconds{30}, named)->job.id);
  const std::vector<ClaimedJob> claimed = batched.scheduler.claim_jobs(30, Seconds{30}, named);
  std::vector<std::int64_t> ids;
  for (const ClaimedJob& job : claimed)
    ids.push_back(job.job.id);
  CHECK(ids == expected);
  CHECK(std::set<std::int64_t>(ids.begin(), ids.end()).size() == 30);
}

}  // namespace test_batches
