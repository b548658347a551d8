// SPDX-License-Identifier: MIT
// Twins: the same random sequence of calls, at the same pinned times, on a SQLite file and on
// a PostgreSQL schema. Every answer, and every job as stored after every call, must be the
// same on both: the stores differ in SQL, never in what a job's row and `now` mean.

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../catch.hpp"
#include "backends.hpp"

namespace test_backend_twins {

namespace {

using jobsched::Claim;
using jobsched::ClaimedJob;
using jobsched::ClaimFailure;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::NewJob;
using jobsched::RetryPolicy;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::PgBackend;
using jobsched_test::PinnedClock;
using jobsched_test::SqliteBackend;

constexpr double kT = 1'700'000'000.0;

// A claim as each store gave it: the same job, each store's own token.
struct TwinClaim {
  Claim sqlite;
  Claim pg;
};

class Twins {
 public:
  explicit Twins(std::uint64_t seed)
      : sqlite_backend_("twins"), pg_backend_("twins"), random_(seed) {
    clock_.set(kT);
    RetryPolicy retry;
    retry.max_attempts = 3;
    retry.initial_backoff = Seconds{2.0};
    retry.max_backoff = Seconds{5.0};
    retry.jitter = 0.0;  // the only randomness a store draws: off, so the twins agree
    sqlite_.emplace(sqlite_backend_.open(clock_, retry));
    pg_.emplace(pg_backend_.open(clock_, retry));
  }

  // One random call on both; returns what it was, for the failure message.
  std::string step() {
    const int kind = pick(0, 21);
    switch (kind) {
      case 0:
      case 1:
      case 2:
        return add();
      case 3:
        return add_many();
      case 4:
      case 5:
        return claim_one();
      case 6:
        return claim_many();
      case 7:
      case 8:
        return settle("complete", [](auto& s, const Claim& c) { return s.complete(c); });
      case 9:
        return settle("fail", [](auto& s, const Claim& c) { return s.fail(c, "it broke"); });
      case 10:
        return settle("release", [](auto& s, const Claim& c) { return s.release(c); });
      case 11:
        return settle("snooze", [](auto& s, const Claim& c) { return s.snooze(c, Seconds{3}); });
      case 12:
        return extend();
      case 13:
        return by_id("cancel_job", [](auto& s, std::int64_t id) { return s.cancel_job(id, "no"); });
      case 14:
        return by_id("lock_job", [](auto& s, std::int64_t id) { return s.lock_job(id); });
      case 15:
        return by_id("unlock_job", [](auto& s, std::int64_t id) { return s.unlock_job(id); });
      case 16:
        return by_id("retry_job", [](auto& s, std::int64_t id) { return s.retry_job(id); });
      case 17:
        return by_id("complete_job", [](auto& s, std::int64_t id) { return s.complete_job(id); });
      case 18:
        return deletes();
      case 19:
        return pauses();
      case 20:
        return lock_next();
      default:
        return advance();
    }
  }

  // Every job, the orders and the counts, the same on both.
  void check_same(const std::string& after) {
    INFO("after " << after << " at " << jobsched_test::seconds(clock_.now()));
    for (std::int64_t id = 1; id <= added_; ++id) {
      INFO("job " << id);
      REQUIRE(sqlite_->get_job(id) == pg_->get_job(id));
    }
    REQUIRE(sqlite_->next_job() == pg_->next_job());
    REQUIRE(sqlite_->seconds_until_next_job() == pg_->seconds_until_next_job());
    REQUIRE(sqlite_->seconds_until_next_job(std::vector<std::string>{"a", "b"}) ==
            pg_->seconds_until_next_job(std::vector<std::string>{"a", "b"}));
    REQUIRE(sqlite_->count_pending_jobs() == pg_->count_pending_jobs());
    REQUIRE(sqlite_->failed_jobs() == pg_->failed_jobs());
    REQUIRE(sqlite_->paused_queues() == pg_->paused_queues());
  }

 private:
  int pick(int low, int high) { return std::uniform_int_distribution<int>(low, high)(random_); }

  JobOptions random_options() {
    const double now = jobsched_test::seconds(clock_.now());
    JobOptions options;
    options.created_at = at(now - pick(0, 3));
    options.starts_at = at(now + pick(-3, 8));
    if (*options.starts_at < *options.created_at)
      options.starts_at = options.created_at;
    if (pick(0, 2) == 0)
      options.expires_at = at(jobsched_test::seconds(*options.starts_at) + pick(0, 10));
    options.priority = pick(0, 3) == 0 ? pick(-2, 2) : 0;
    const char* queues[] = {"", "a", "b"};
    options.queue = queues[pick(0, 2)];
    if (pick(0, 3) == 0)
      options.max_attempts = pick(1, 4);
    return options;
  }

  std::string add() {
    const JobOptions options = random_options();
    const std::string data = "job " + std::to_string(added_ + 1);
    REQUIRE(sqlite_->add_job(data, options) == pg_->add_job(data, options));
    ++added_;
    return "add_job";
  }

  std::string add_many() {
    std::vector<NewJob> jobs(static_cast<std::size_t>(pick(1, 4)));
    for (NewJob& job : jobs) {
      job.data = "batch " + std::to_string(added_);
      job.options = random_options();
    }
    REQUIRE(sqlite_->add_jobs(jobs) == pg_->add_jobs(jobs));
    added_ += static_cast<std::int64_t>(jobs.size());
    return "add_jobs";
  }

  void keep(const std::vector<ClaimedJob>& in_sqlite, const std::vector<ClaimedJob>& in_pg) {
    REQUIRE(in_sqlite.size() == in_pg.size());
    for (std::size_t i = 0; i < in_sqlite.size(); ++i) {
      REQUIRE(in_sqlite[i].job == in_pg[i].job);
      REQUIRE(in_sqlite[i].claim.job_id == in_pg[i].claim.job_id);
      REQUIRE(in_sqlite[i].claim.lease_until == in_pg[i].claim.lease_until);
      claims_.push_back({in_sqlite[i].claim, in_pg[i].claim});
    }
  }

  std::string claim_one() {
    const Seconds lease{static_cast<double>(pick(1, 6))};
    if (pick(0, 1) == 0) {
      const std::vector<std::string> queues{"a"};
      auto s = sqlite_->claim_next_job(lease, queues);
      auto p = pg_->claim_next_job(lease, queues);
      REQUIRE(s.has_value() == p.has_value());
      if (s)
        keep({*s}, {*p});
      return "claim_next_job in queue a";
    }
    auto s = sqlite_->claim_next_job(lease);
    auto p = pg_->claim_next_job(lease);
    REQUIRE(s.has_value() == p.has_value());
    if (s)
      keep({*s}, {*p});
    return "claim_next_job";
  }

  std::string claim_many() {
    const auto limit = static_cast<std::size_t>(pick(1, 5));
    const Seconds lease{static_cast<double>(pick(1, 6))};
    keep(sqlite_->claim_jobs(limit, lease), pg_->claim_jobs(limit, lease));
    return "claim_jobs";
  }

  // Settles a claim taken at random (it may well be stale by now).
  template <class Settle>
  std::string settle(const char* name, Settle settle_one) {
    if (claims_.empty())
      return advance();
    const TwinClaim& claim = claims_[static_cast<std::size_t>(pick(0, static_cast<int>(claims_.size()) - 1))];
    if (pick(0, 4) == 0 && std::string(name) == "complete") {
      // Many at once, the same claim twice among them.
      const std::vector<Claim> s{claim.sqlite, claim.sqlite};
      const std::vector<Claim> p{claim.pg, claim.pg};
      REQUIRE(sqlite_->complete_all(s) == pg_->complete_all(p));
      return "complete_all";
    }
    if (pick(0, 4) == 0 && std::string(name) == "fail") {
      REQUIRE(sqlite_->fail_all({ClaimFailure{claim.sqlite, "all"}}) ==
              pg_->fail_all({ClaimFailure{claim.pg, "all"}}));
      return "fail_all";
    }
    REQUIRE(settle_one(*sqlite_, claim.sqlite) == settle_one(*pg_, claim.pg));
    return std::string(name) + " of job " + std::to_string(claim.sqlite.job_id);
  }

  std::string extend() {
    if (claims_.empty())
      return advance();
    TwinClaim& claim = claims_[static_cast<std::size_t>(pick(0, static_cast<int>(claims_.size()) - 1))];
    const Seconds lease{static_cast<double>(pick(1, 6))};
    REQUIRE(sqlite_->extend(claim.sqlite, lease) == pg_->extend(claim.pg, lease));
    REQUIRE(claim.sqlite.lease_until == claim.pg.lease_until);
    return "extend";
  }

  template <class Call>
  std::string by_id(const char* name, Call call) {
    const std::int64_t id = pick(1, static_cast<int>(added_ + 1));
    REQUIRE(call(*sqlite_, id) == call(*pg_, id));
    return std::string(name) + " of job " + std::to_string(id);
  }

  std::string deletes() {
    switch (pick(0, 3)) {
      case 0:
        REQUIRE(sqlite_->delete_expired_jobs() == pg_->delete_expired_jobs());
        return "delete_expired_jobs";
      case 1:
        REQUIRE(sqlite_->delete_completed_jobs() == pg_->delete_completed_jobs());
        return "delete_completed_jobs";
      case 2:
        REQUIRE(sqlite_->delete_failed_jobs() == pg_->delete_failed_jobs());
        return "delete_failed_jobs";
      default: {
        const std::int64_t id = pick(1, static_cast<int>(added_ + 1));
        REQUIRE(sqlite_->delete_job(id) == pg_->delete_job(id));
        return "delete_job";
      }
    }
  }

  std::string pauses() {
    const std::string queue = pick(0, 1) == 0 ? "a" : "";
    if (pick(0, 1) == 0) {
      REQUIRE(sqlite_->pause_queue(queue) == pg_->pause_queue(queue));
      return "pause_queue '" + queue + "'";
    }
    REQUIRE(sqlite_->resume_queue(queue) == pg_->resume_queue(queue));
    return "resume_queue '" + queue + "'";
  }

  std::string lock_next() {
    REQUIRE(sqlite_->lock_next_job() == pg_->lock_next_job());
    return "lock_next_job";
  }

  std::string advance() {
    // Mostly small steps; now and then past every lease and backoff.
    clock_.advance(pick(0, 9) == 0 ? 20.0 : pick(0, 4) * 0.5);
    return "the clock moving on";
  }

  PinnedClock clock_;
  SqliteBackend sqlite_backend_;
  PgBackend pg_backend_;
  std::optional<jobsched::Scheduler> sqlite_;
  std::optional<jobsched::PgScheduler> pg_;
  std::mt19937_64 random_;
  std::vector<TwinClaim> claims_;
  std::int64_t added_ = 0;
};

}  // namespace

TEST_CASE("backends: the same calls on SQLite and PostgreSQL answer and store the same",
          "[backends]") {
  for (const std::uint64_t seed : {1u, 2u, 3u, 4u}) {
    INFO("seed " << seed);
    Twins twins(seed);
    for (int step = 0; step < 250; ++step) {
      INFO("step " << step);
      const std::string call = twins.step();
      twins.check_same(call);
    }
  }
}

}  // namespace test_backend_twins
