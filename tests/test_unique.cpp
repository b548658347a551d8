// SPDX-License-Identifier: MIT
// Unique jobs: at most one open job per key (ix_job_unique), optionally one per key completed
// within a period; each OnConflict; holders that let go of their key (expired, abandoned);
// batches; retry_job; bad keys refused with nothing written; 8 processes adding the same keys.

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>
#include <jobsched/testing.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_unique {

namespace {

using jobsched::Job;
using jobsched::JobOptions;
using jobsched::OnConflict;
using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::Unique;
using jobsched::UniqueConflictError;

constexpr double kStart = 1'700'000'000.0;

jobsched::TimePoint at(double seconds) { return jobsched::from_unix_seconds(seconds); }

struct Db {
  explicit Db(const std::string& where)
      : file("unique"),
        clock(at(kStart)),
        scheduler(Scheduler::open(where == "file" ? file.path() : ":memory:", clock.options())) {}
  std::int64_t changes() { return sqlite3_total_changes64(scheduler.handle()); }
  // Every row of job and job_payload, to compare before and after.
  std::string snapshot() {
    std::string text;
    for (const char* sql :
         {"SELECT quote(id) || quote(data) || quote(created_at) || quote(starts_at) ||"
          " quote(expires_at) || quote(completed_at) || quote(failed_at) || quote(state) ||"
          " quote(priority) || quote(queue) || quote(unique_key) || quote(attempts) ||"
          " quote(last_error) || quote(locked_at) || quote(lease_until) FROM job ORDER BY id",
          "SELECT quote(job_id) || quote(data) FROM job_payload ORDER BY job_id"}) {
      sqlite3_stmt* stmt = nullptr;
      REQUIRE(sqlite3_prepare_v2(scheduler.handle(), sql, -1, &stmt, nullptr) == SQLITE_OK);
      while (sqlite3_step(stmt) == SQLITE_ROW)
        text += std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) + "\n";
      sqlite3_finalize(stmt);
    }
    return text;
  }
  std::int64_t count(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(scheduler.handle(), sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const std::int64_t value = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return value;
  }
  jobsched_test::TempFile file;
  jobsched::testing::ManualClock clock;
  Scheduler scheduler;
};

// The ids of the first page of jobs in `state`, in the listing's order (ties by id).
std::vector<std::int64_t> listed_ids(Scheduler& scheduler, jobsched::JobState state,
                                     jobsched::ListOrder order = jobsched::ListOrder::oldest_first) {
  std::vector<std::int64_t> ids;
  for (const Job& job : scheduler.list_jobs(jobsched::JobQuery{state, {}, order, {}, 10}).jobs)
    ids.push_back(job.id);
  return ids;
}

JobOptions keyed(const std::string& key, OnConflict on_conflict = OnConflict::return_existing,
                 Seconds within = Seconds{0}) {
  JobOptions options;
  options.unique = Unique{key, on_conflict, within};
  return options;
}

}  // namespace

TEST_CASE("return_existing adds one job per key and returns it as stored, unchanged",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job first = db.scheduler.add_job(Payload("a"), keyed("k"));
  REQUIRE(first.key == std::optional<std::string>("k"));
  CHECK(db.scheduler.get_job(first.id) == first);
  JobOptions other = keyed("k");
  other.priority = 9;
  other.queue = "q";
  const Job again = db.scheduler.add_job(Payload("b"), other);
  CHECK(again == first);
  CHECK(again.data == Payload("a"));
  CHECK(db.scheduler.count_pending_jobs() == 1);
  CHECK(jobsched::testing::jobs_with_key(db.scheduler, "k").size() == 1);
  // Another key, and no key at all, are not affected.
  const Job other_key = db.scheduler.add_job(Payload("c"), keyed("k2"));
  CHECK(other_key.id != first.id);
  db.scheduler.add_job(Payload("d"));
  db.scheduler.add_job(Payload("d"));
  CHECK(db.scheduler.count_pending_jobs() == 4);
}

TEST_CASE("fail throws UniqueConflictError naming the key and the holder, changing nothing",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job first = db.scheduler.add_job(Payload("a"), keyed("mail:42"));
  const std::string before = db.snapshot();
  try {
    db.scheduler.add_job(Payload("b"), keyed("mail:42", OnConflict::fail));
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.key() == "mail:42");
    CHECK(error.existing_id() == first.id);
    CHECK(error.code() == SQLITE_CONSTRAINT);
    CHECK(error.extended_code() == SQLITE_CONSTRAINT_UNIQUE);
    const std::string message = error.what();
    CHECK(message.find("'mail:42'") != std::string::npos);
    CHECK(message.find("job " + std::to_string(first.id)) != std::string::npos);
  }
  CHECK(db.snapshot() == before);
  CHECK(db.count("SELECT count(*) FROM job") == 1);
  CHECK(db.scheduler.get_job(first.id) == first);
  // A ConstraintError too, for callers that catch that.
  CHECK_THROWS_AS(db.scheduler.add_job(Payload("b"), keyed("mail:42", OnConflict::fail)),
                  jobsched::ConstraintError);
}

TEST_CASE("replace updates a pending free holder's payload, times and settings", "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions options = keyed("k", OnConflict::replace);
  options.starts_at = at(kStart + 100);
  const Job first = db.scheduler.add_job(Payload("old"), options);
  JobOptions next = keyed("k", OnConflict::replace);
  next.starts_at = at(kStart + 50);
  next.expires_at = at(kStart + 500);
  next.priority = 3;
  next.queue = "q";
  next.max_attempts = 2;
  next.initial_backoff = Seconds{4};
  next.max_backoff = Seconds{8};
  const Job replaced = db.scheduler.add_job(Payload("new"), next);
  CHECK(replaced.id == first.id);
  CHECK(replaced.created_at == first.created_at);
  CHECK(replaced.data == Payload("new"));
  CHECK(replaced.starts_at == at(kStart + 50));
  CHECK(replaced.expires_at == at(kStart + 500));
  CHECK(replaced.priority == 3);
  CHECK(replaced.queue == "q");
  CHECK(replaced.max_attempts == std::optional<int>(2));
  CHECK(replaced.initial_backoff == std::optional<Seconds>(Seconds{4}));
  CHECK(replaced.max_backoff == std::optional<Seconds>(Seconds{8}));
  CHECK(replaced.key == std::optional<std::string>("k"));
  CHECK(db.scheduler.get_job(first.id) == replaced);
  CHECK(db.count("SELECT count(*) FROM job") == 1);
  // Its new times decide when it runs: not due before kStart + 50.
  CHECK_FALSE(db.scheduler.claim_next_job(Seconds{10}, at(kStart + 49)));
  const auto claimed = db.scheduler.claim_next_job(Seconds{10}, at(kStart + 50));
  REQUIRE(claimed);
  CHECK(claimed->job.data == Payload("new"));
}

TEST_CASE("replace of a claimed or locked holder throws UniqueConflictError, changing nothing",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job first = db.scheduler.add_job(Payload("old"), keyed("k"));
  const bool lock = GENERATE(false, true);
  if (lock) {
    REQUIRE(db.scheduler.lock_job(first.id));
  } else {
    REQUIRE(db.scheduler.claim_next_job(Seconds{60}));
  }
  const Job held = *db.scheduler.get_job(first.id);
  const std::string before = db.snapshot();
  try {
    db.scheduler.add_job(Payload("new"), keyed("k", OnConflict::replace));
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.existing_id() == first.id);
    CHECK(std::string(error.what()).find("claimed or locked") != std::string::npos);
  }
  CHECK(db.snapshot() == before);
  CHECK(db.scheduler.get_job(first.id) == held);
  // return_existing still answers the running job.
  CHECK(db.scheduler.add_job(Payload("new"), keyed("k")) == held);
}

TEST_CASE("replace moves a start before the holder's creation to it, an expiry before it is "
          "refused, changing nothing",
          "[unique]") {
  Db db("memory");
  JobOptions later = keyed("k");
  later.created_at = at(kStart + 100);
  const Job first = db.scheduler.add_job(Payload("old"), later);
  JobOptions early = keyed("k", OnConflict::replace);
  early.created_at = at(kStart - 100);
  early.starts_at = at(kStart - 50);
  early.expires_at = at(kStart + 50);
  const std::string before = db.snapshot();
  CHECK_THROWS_AS(db.scheduler.add_job(Payload("new"), early), jobsched::InvalidArgumentError);
  CHECK(db.snapshot() == before);
  early.expires_at.reset();
  const Job replaced = db.scheduler.add_job(Payload("new"), early);
  CHECK(replaced.id == first.id);
  CHECK(replaced.starts_at == first.created_at);
  CHECK(replaced.data == Payload("new"));
}

TEST_CASE("an expired holder lets go of its key: moved out, the new job added", "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  // An earlier expiry, for the add's upkeep to move on (it moves one a write): the holder
  // is left to the unique add.
  JobOptions first = keyed("other");
  first.expires_at = at(kStart + 5);
  db.scheduler.add_job(Payload("first"), first);
  JobOptions options = keyed("k", OnConflict::fail);
  options.expires_at = at(kStart + 10);
  const Job old = db.scheduler.add_job(Payload("old"), options);
  db.clock.set(at(kStart + 10));  // exactly at its expiry: expired
  const Job added = db.scheduler.add_job(Payload("new"), keyed("k", OnConflict::fail));
  CHECK(added.id != old.id);
  CHECK(db.scheduler.get_job(old.id)->is_expired(db.clock.now()));
  CHECK(db.count("SELECT state FROM job WHERE id = " + std::to_string(old.id)) == 5);
  CHECK(db.scheduler.count_pending_jobs() == 1);
  CHECK(db.scheduler.get_job(added.id)->is_pending(db.clock.now()));
  // Just before its expiry it still held the key.
  Db again("memory");
  const Job held = again.scheduler.add_job(Payload("old"), options);
  again.clock.set(at(kStart + 9.5));
  CHECK(again.scheduler.add_job(Payload("new"), keyed("k")) == held);
}

TEST_CASE("an expired holder under a live lease still holds its key", "[unique]") {
  Db db("memory");
  JobOptions options = keyed("k");
  options.expires_at = at(kStart + 10);
  const Job old = db.scheduler.add_job(Payload("old"), options);
  REQUIRE(db.scheduler.claim_next_job(Seconds{60}));
  db.clock.set(at(kStart + 20));
  CHECK(db.scheduler.add_job(Payload("new"), keyed("k")).id == old.id);
  // Once its lease ran out, it lets go.
  db.clock.set(at(kStart + 61));
  CHECK(db.scheduler.add_job(Payload("new"), keyed("k")).id != old.id);
}

TEST_CASE("an abandoned holder lets go of its key: marked failed, the new job added",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions options = keyed("k");
  options.max_attempts = 1;
  const Job old = db.scheduler.add_job(Payload("old"), options);
  REQUIRE(db.scheduler.claim_next_job(Seconds{10}));
  db.clock.set(at(kStart + 10));  // the lease of its last attempt ran out
  const Job added = db.scheduler.add_job(Payload("new"), keyed("k", OnConflict::fail));
  CHECK(added.id != old.id);
  const Job failed = *db.scheduler.get_job(old.id);
  CHECK(failed.failed_at == at(kStart + 10));
  CHECK(failed.last_error == std::optional<std::string>("the lease of attempt 1 ran out"));
  CHECK(db.count("SELECT state FROM job WHERE id = " + std::to_string(old.id)) == 7);
}

TEST_CASE("completed_within: a job completed within the period holds its key, to the edge",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Seconds hour{3600};
  const Job first = db.scheduler.add_job(Payload("a"), keyed("k", OnConflict::fail, hour));
  REQUIRE(db.scheduler.complete_job(first.id, at(kStart + 100)));
  // Without a period, a completed job holds nothing.
  db.clock.set(at(kStart + 200));
  CHECK_THROWS_AS(db.scheduler.add_job(Payload("b"), keyed("k", OnConflict::fail, hour)),
                  UniqueConflictError);
  try {
    db.scheduler.add_job(Payload("b"), keyed("k", OnConflict::replace, hour));
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.existing_id() == first.id);
    CHECK(std::string(error.what()).find("completed within") != std::string::npos);
  }
  CHECK(db.scheduler.add_job(Payload("b"), keyed("k", OnConflict::return_existing, hour)) ==
        *db.scheduler.get_job(first.id));
  CHECK(db.count("SELECT count(*) FROM job") == 1);
  // Just inside the period.
  db.clock.set(at(kStart + 100 + 3599.5));
  CHECK_THROWS_AS(db.scheduler.add_job(Payload("b"), keyed("k", OnConflict::fail, hour)),
                  UniqueConflictError);
  // Exactly at the period's end (completed_at == now - period): the key is free.
  db.clock.set(at(kStart + 100 + 3600));
  const Job second = db.scheduler.add_job(Payload("b"), keyed("k", OnConflict::fail, hour));
  CHECK(second.id != first.id);
  // The period's check does not hide an open holder: it is the one answered.
  REQUIRE(db.scheduler.complete_job(second.id, at(kStart + 100 + 3600)));
  const Job third = db.scheduler.add_job(Payload("c"), keyed("k"));
  CHECK(db.scheduler.add_job(Payload("d"), keyed("k", OnConflict::return_existing, hour)) ==
        third);
  const Job fourth = db.scheduler.add_job(Payload("e"), keyed("k", OnConflict::replace, hour));
  CHECK(fourth.id == third.id);
  CHECK(fourth.data == Payload("e"));
}

TEST_CASE("a batch's keys conflict with each other as with stored jobs", "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job stored = db.scheduler.add_job(Payload("stored"), keyed("s"));
  std::vector<jobsched::NewJob> jobs;
  jobs.push_back({Payload("a1"), keyed("a")});
  jobs.push_back({Payload("a2"), keyed("a")});
  jobs.push_back({Payload("s2"), keyed("s")});
  jobs.push_back({Payload("none"), {}});
  jobs.push_back({Payload("b1"), keyed("b")});
  jobs.push_back({Payload("b2"), keyed("b", OnConflict::replace)});
  const std::vector<Job> added = db.scheduler.add_jobs(jobs);
  REQUIRE(added.size() == 6);
  CHECK(added[1] == added[0]);
  CHECK(added[0].data == Payload("a1"));
  CHECK(added[2] == stored);
  CHECK_FALSE(added[3].key);
  // Both entries of b show it as the batch left it.
  CHECK(added[4].id == added[5].id);
  CHECK(added[4].data == Payload("b2"));
  CHECK(added[4] == added[5]);
  for (const Job& job : added)
    CHECK(*db.scheduler.get_job(job.id) == job);
  CHECK(db.count("SELECT count(*) FROM job") == 4);
}

TEST_CASE("a batch with a fail conflict adds nothing and names the place", "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job stored = db.scheduler.add_job(Payload("stored"), keyed("s"));
  const std::string before = db.snapshot();
  std::vector<jobsched::NewJob> within;
  within.push_back({Payload("x"), {}});
  within.push_back({Payload("a1"), keyed("a")});
  within.push_back({Payload("a2"), keyed("a", OnConflict::fail)});
  try {
    db.scheduler.add_jobs(within);
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.existing_id() == 0);
    CHECK(error.key() == "a");
    const std::string message = error.what();
    CHECK(message.find("job 3 of 3") != std::string::npos);
    CHECK(message.find("job 2 of the list") != std::string::npos);
  }
  std::vector<jobsched::NewJob> against_stored;
  against_stored.push_back({Payload("x"), {}});
  against_stored.push_back({Payload("s2"), keyed("s", OnConflict::fail)});
  try {
    db.scheduler.add_jobs(against_stored);
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.existing_id() == stored.id);
    CHECK(std::string(error.what()).find("job 2 of 2") != std::string::npos);
  }
  CHECK(db.snapshot() == before);
  CHECK(db.count("SELECT count(*) FROM job") == 1);
}

TEST_CASE("retry_job of a keyed job whose key another open job holds throws, changing nothing",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  const Job old = db.scheduler.add_job(Payload("old"), keyed("k"));
  REQUIRE(db.scheduler.cancel_job(old.id));
  const Job holder = db.scheduler.add_job(Payload("new"), keyed("k"));
  REQUIRE(holder.id != old.id);
  const Job cancelled = *db.scheduler.get_job(old.id);
  const std::string before = db.snapshot();
  try {
    db.scheduler.retry_job(old.id);
    FAIL("no UniqueConflictError");
  } catch (const UniqueConflictError& error) {
    CHECK(error.key() == "k");
    CHECK(error.existing_id() == holder.id);
    CHECK(std::string(error.what()).find("job " + std::to_string(old.id)) != std::string::npos);
  }
  CHECK(db.snapshot() == before);
  CHECK(*db.scheduler.get_job(old.id) == cancelled);
  // Once the holder completed, the retry goes through.
  REQUIRE(db.scheduler.complete_job(holder.id));
  CHECK(db.scheduler.retry_job(old.id));
  CHECK(db.scheduler.get_job(old.id)->is_pending(db.clock.now()));
  // A holder that expired lets go of the key for a retry too.
  Db other("memory");
  const Job first = other.scheduler.add_job(Payload("a"), keyed("k"));
  REQUIRE(other.scheduler.cancel_job(first.id));
  JobOptions expiring = keyed("k");
  expiring.expires_at = at(kStart + 5);
  const Job second = other.scheduler.add_job(Payload("b"), expiring);
  other.clock.set(at(kStart + 6));
  CHECK(other.scheduler.retry_job(first.id));
  CHECK(other.count("SELECT state FROM job WHERE id = " + std::to_string(second.id)) == 5);
}

TEST_CASE("bad unique settings are refused naming the value, with nothing written",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  db.scheduler.add_job(Payload("x"), keyed("k"));
  const std::string before = db.snapshot();
  auto refused = [&](const JobOptions& options, const std::string& needle) {
    INFO(needle);
    try {
      db.scheduler.add_job(Payload("y"), options);
      FAIL("not refused");
    } catch (const jobsched::InvalidArgumentError& error) {
      CHECK(std::string(error.what()).find(needle) != std::string::npos);
    }
    std::vector<jobsched::NewJob> jobs{{Payload("z"), {}}, {Payload("y"), options}};
    try {
      db.scheduler.add_jobs(jobs);
      FAIL("not refused in a batch");
    } catch (const jobsched::InvalidArgumentError& error) {
      CHECK(std::string(error.what()).find("job 2 of 2") != std::string::npos);
    }
  };
  refused(keyed(""), "must not be empty");
  refused(keyed(std::string("a\0b", 3)), "NUL byte, got one at byte 2 of 3");
  refused(keyed("k", OnConflict::fail, Seconds{-1}), "completed_within");
  refused(keyed("k", OnConflict::fail, Seconds{std::numeric_limits<double>::quiet_NaN()}),
          "nan");
  refused(keyed("k", static_cast<OnConflict>(7)), "got 7");
  refused(keyed("k", static_cast<OnConflict>(-1)), "got -1");
  CHECK(db.snapshot() == before);
  CHECK(db.count("SELECT count(*) FROM job") == 1);
}

TEST_CASE("the Adder and JobContext follow-ups honour unique keys", "[unique]") {
  jobsched_test::TempFile file("unique-adder");
  {
    jobsched::Adder adder(file.path());
    const Job first = adder.add(Payload("a"), keyed("k"));
    CHECK(adder.add(Payload("b"), keyed("k")).id == first.id);
    // The error reaches the caller's thread with its key, holder, codes and message.
    try {
      adder.add(Payload("b"), keyed("k", OnConflict::fail));
      FAIL("a second job under key 'k' was added");
    } catch (const UniqueConflictError& error) {
      CHECK(error.key() == "k");
      CHECK(error.existing_id() == first.id);
      CHECK(error.extended_code() == SQLITE_CONSTRAINT_UNIQUE);
      CHECK(std::string(error.what()).find("'k'") != std::string::npos);
    }
    // A conflict fails only its own add, even when others share its commit.
    CHECK(adder.add(Payload("c"), keyed("k2")).id != first.id);
    std::atomic<int> refused{0};
    std::atomic<int> other_errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&adder, &refused, &other_errors, t] {
        for (int i = 0; i < 40; ++i) {
          try {
            if (t == 0)
              adder.add(Payload("x"), keyed("k", OnConflict::fail));
            else
              adder.add(Payload("y"), keyed("t" + std::to_string(t) + "-" + std::to_string(i)));
          } catch (const UniqueConflictError&) {
            ++(t == 0 ? refused : other_errors);
          } catch (...) {
            ++other_errors;
          }
        }
      });
    }
    for (std::thread& thread : threads)
      thread.join();
    CHECK(refused == 40);
    CHECK(other_errors == 0);
  }
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == 2 + 5 * 40);
}

TEST_CASE("a follow-up's fail conflict undoes the completion and fails the attempt",
          "[unique][worker]") {
  jobsched_test::TempFile file("unique-follow-up");
  auto scheduler = Scheduler::open(file.path());
  const Job holder = scheduler.add_job(Payload("holder"), keyed("k"));
  JobOptions parent_options;
  parent_options.max_attempts = 1;
  parent_options.priority = 5;
  // The holder runs too unless it is locked.
  REQUIRE(scheduler.lock_job(holder.id));
  const Job keeps = scheduler.add_job(Payload("keeps"), parent_options);
  const Job fails = scheduler.add_job(Payload("fails"), parent_options);
  jobsched::Worker worker(file.path(), [&](const Job& running, jobsched::JobContext& context) {
    const bool fail = running.data == Payload("fails");
    JobOptions follow_up = keyed("k", fail ? OnConflict::fail : OnConflict::return_existing);
    follow_up.starts_at = jobsched::system_now() + Seconds{3600};  // not run by this worker
    context.add_job(Payload("follow-up"), follow_up);
    follow_up.unique.reset();
    context.add_job(Payload("other"), follow_up);
  });
  const jobsched_test::Deadline deadline(std::chrono::seconds(20), "both parents to settle");
  while (worker.completed() + worker.failed() < 2 && !deadline.passed())
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  worker.stop();
  for (const Job& job : jobsched::testing::all_jobs(scheduler))
    UNSCOPED_INFO("job " << job.id << " " << job.data.bytes() << " completed "
                         << job.is_completed() << " failed " << job.is_failed() << " key "
                         << job.key.value_or("-") << " error " << job.last_error.value_or("-"));
  CHECK(worker.completed() == 1);
  CHECK(worker.failed() == 1);
  CHECK(scheduler.get_job(keeps.id)->is_completed());
  const Job failed = *scheduler.get_job(fails.id);
  CHECK(failed.is_failed());
  CHECK_FALSE(failed.is_completed());
  REQUIRE(failed.last_error);
  CHECK(failed.last_error->find("'k'") != std::string::npos);
  // One "other" (from the parent that completed), no second keyed job.
  CHECK(jobsched::testing::jobs_with_key(scheduler, "k").size() == 1);
  CHECK(jobsched::testing::jobs_with_payload(scheduler, Payload("other")).size() == 1);
}

TEST_CASE("8 processes adding the same 200 keys at once make one open job per key",
          "[unique][processes]") {
  jobsched_test::TempFile file("unique-processes");
  Scheduler::open(file.path());  // the schema, before the children race
  constexpr int processes = 8;
  constexpr int keys = 200;
  constexpr std::int64_t per_key = 1'000'000;
  const bool mixed = GENERATE(false, true);
  CAPTURE(mixed);
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      processes,
      [&](auto report) {
        jobsched::Options options;
        options.synchronous = jobsched::Synchronous::normal;
        options.busy_timeout = std::chrono::milliseconds(30'000);
        auto scheduler = Scheduler::open(file.path(), options);
        // Each child starts at its own key, then goes round: every key is raced by several.
        const int child = static_cast<int>(::getpid() % processes);
        for (int i = 0; i < keys; ++i) {
          const int key = (i + child * 7) % keys;
          const auto policy =
              mixed ? static_cast<OnConflict>((key + i) % 3) : OnConflict::return_existing;
          std::int64_t id = 0;
          try {
            id = scheduler.add_job(Payload("k" + std::to_string(key)),
                                   keyed("key-" + std::to_string(key), policy))
                     .id;
          } catch (const UniqueConflictError& error) {
            id = error.existing_id();
          }
          if (id <= 0 || id >= per_key || !report(key * per_key + id))
            return 2;
        }
        return 0;
      },
      std::chrono::seconds(120));
  for (const int code : reports.exit_codes)
    CHECK(code == 0);
  std::map<int, std::map<std::int64_t, int>> ids_by_key;
  for (const auto& entry : reports.times_reported)
    ids_by_key[static_cast<int>(entry.first / per_key)][entry.first % per_key] += entry.second;
  auto scheduler = Scheduler::open(file.path());
  CHECK(ids_by_key.size() == static_cast<std::size_t>(keys));
  for (const auto& entry : ids_by_key) {
    INFO("key-" << entry.first);
    REQUIRE(entry.second.size() == 1);
    CHECK(entry.second.begin()->second == processes);
    const std::vector<Job> jobs =
        jobsched::testing::jobs_with_key(scheduler, "key-" + std::to_string(entry.first));
    REQUIRE(jobs.size() == 1);
    CHECK(jobs.front().id == entry.second.begin()->first);
    CHECK(jobs.front().is_pending(scheduler.now()));
  }
  CHECK(scheduler.count_pending_jobs() == keys);
}

TEST_CASE("a job moved out as expired does not take back a key another job holds",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  JobOptions options = keyed("k");
  options.expires_at = at(kStart + 5);
  const Job old = db.scheduler.add_job(Payload("old"), options);
  const Job plain = db.scheduler.add_job(Payload("plain"));  // due from the start, no key
  auto claimed = db.scheduler.claim_next_job(Seconds{10});
  REQUIRE(claimed);
  REQUIRE(claimed->job.id == old.id);
  db.clock.set(at(kStart + 11));  // expired, and its lease ran out
  const Job holder = db.scheduler.add_job(Payload("new"), keyed("k"));
  REQUIRE(holder.id != old.id);
  const std::string open_rows =
      "SELECT count(*) FROM job WHERE unique_key = 'k' AND state < 5";
  // Its late heartbeat is stale, not a constraint error.
  jobsched::Claim claim = claimed->claim;
  CHECK_FALSE(db.scheduler.extend(claim, Seconds{10}));
  CHECK(db.count(open_rows) == 1);
  // With the clock set back before its expiry, its row's times say pending (state_of sees
  // only those), but it stays expired: a lock or an unlock does not put it back beside the
  // holder, and next_job, claims, counts, listings and stats all pass over it to the plain
  // job (due) and the holder (not due: it was added at +11 s).
  db.clock.set(at(kStart + 1));
  CHECK(db.scheduler.get_job(old.id)->is_pending(db.clock.now()));
  CHECK_FALSE(db.scheduler.lock_job(old.id));
  CHECK(db.scheduler.unlock_job(old.id));
  CHECK(db.count(open_rows) == 1);
  CHECK(db.count("SELECT state FROM job WHERE id = " + std::to_string(old.id)) == 5);
  CHECK(db.scheduler.count_pending_jobs() == 2);
  const std::optional<Job> next = db.scheduler.next_job();
  REQUIRE(next);
  CHECK(next->id == plain.id);
  const jobsched::Stats stats = db.scheduler.stats();
  REQUIRE(stats.queues.size() == 1);
  CHECK(stats.queues.front().jobs.available == 1);
  CHECK(stats.queues.front().jobs.scheduled == 1);
  CHECK(stats.queues.front().jobs.expired == 1);
  CHECK(stats.queues.front().jobs.running == 0);
  auto listed = [&](jobsched::JobState state, jobsched::ListOrder order) {
    return listed_ids(db.scheduler, state, order);
  };
  for (const jobsched::ListOrder order :
       {jobsched::ListOrder::oldest_first, jobsched::ListOrder::newest_first}) {
    CHECK(listed(jobsched::JobState::available, order) == std::vector<std::int64_t>{plain.id});
    CHECK(listed(jobsched::JobState::scheduled, order) == std::vector<std::int64_t>{holder.id});
    CHECK(listed(jobsched::JobState::expired, order) == std::vector<std::int64_t>{old.id});
    CHECK(listed(jobsched::JobState::running, order).empty());
  }
  // A lock and a claim take the plain job, not nothing (nor the old job, unlocked).
  const std::optional<Job> locked = db.scheduler.lock_next_job();
  REQUIRE(locked);
  CHECK(locked->id == plain.id);
  CHECK(locked->locked_at.has_value());
  REQUIRE(db.scheduler.unlock_job(plain.id));
  const std::vector<jobsched::ClaimedJob> batch = db.scheduler.claim_jobs(4, Seconds{10});
  REQUIRE(batch.size() == 1);
  CHECK(batch.front().job.id == plain.id);
  const std::optional<jobsched::ClaimedJob> one = db.scheduler.claim_next_job(Seconds{10});
  CHECK_FALSE(one.has_value());  // the holder is not due yet, the old job stays expired
  CHECK(db.count(open_rows) == 1);
  CHECK(db.count("SELECT state FROM job WHERE id = " + std::to_string(old.id)) == 5);
}

TEST_CASE("a job moved out as expired stays expired when set back before its start or lease end",
          "[unique]") {
  Db db(GENERATE(as<std::string>{}, "file", "memory"));
  // b: claimed for 2 s; a: starts at +3 s. Both expire at +5 s, both moved out at +6 s.
  JobOptions b_options = keyed("b");
  b_options.expires_at = at(kStart + 5);
  const Job b = db.scheduler.add_job(Payload("b"), b_options);
  JobOptions a_options = keyed("a");
  a_options.starts_at = at(kStart + 3);
  a_options.expires_at = at(kStart + 5);
  const Job a = db.scheduler.add_job(Payload("a"), a_options);
  auto claimed = db.scheduler.claim_next_job(Seconds{2});
  REQUIRE(claimed);
  REQUIRE(claimed->job.id == b.id);
  db.clock.set(at(kStart + 6));
  CHECK(db.scheduler.claim_jobs(4, Seconds{10}).empty());
  const std::string moved_out = "SELECT count(*) FROM job WHERE state = 5";
  REQUIRE(db.count(moved_out) == 2);
  const Job holder_a = db.scheduler.add_job(Payload("a2"), keyed("a"));
  const Job holder_b = db.scheduler.add_job(Payload("b2"), keyed("b"));
  // At +1 s, a's row says scheduled (start +3 s) and b's says running (its lease to +2 s).
  db.clock.set(at(kStart + 1));
  CHECK(db.scheduler.count_pending_jobs() == 2);
  const std::optional<Job> next = db.scheduler.next_job();
  REQUIRE(next);
  CHECK(next->id == holder_a.id);
  const jobsched::Stats stats = db.scheduler.stats();
  REQUIRE(stats.queues.size() == 1);
  CHECK(stats.queues.front().jobs.scheduled == 2);
  CHECK(stats.queues.front().jobs.running == 0);
  CHECK(stats.queues.front().jobs.expired == 2);
  auto listed = [&](jobsched::JobState state) { return listed_ids(db.scheduler, state); };
  CHECK(listed(jobsched::JobState::scheduled) ==
        std::vector<std::int64_t>{holder_a.id, holder_b.id});
  CHECK(listed(jobsched::JobState::running).empty());
  CHECK(listed(jobsched::JobState::expired) == std::vector<std::int64_t>{b.id, a.id});
  CHECK(db.count(moved_out) == 2);
}

}  // namespace test_unique
