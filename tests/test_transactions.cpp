// SPDX-License-Identifier: MIT
// Transactions: the scheduler joins a transaction the host has open on its handle (its
// changes commit and roll back with the host's), migrations inside one use a SAVEPOINT, and
// lock_next_job never hands one job to two schedulers.

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/temp_file.hpp"

namespace test_transactions {

namespace {

using jobsched::Ownership;
using jobsched::Scheduler;
using jobsched_test::at;
using jobsched_test::exec_raw;
using jobsched_test::open_raw;
using jobsched_test::query_int;
using jobsched_test::TempFile;

long long job_count(sqlite3* db) {
  return query_int(db, "SELECT count(*) FROM job");
}
long long table_count(sqlite3* db, const std::string& name) {
  return query_int(
      db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + name + "'");
}

jobsched::JobOptions times(double created, double starts) {
  jobsched::JobOptions options;
  options.created_at = at(created);
  options.starts_at = at(starts);
  return options;
}

/// Records the text of every statement a connection runs.
struct StatementLog {
  std::vector<std::string> statements;

  void attach(sqlite3* db) {
    sqlite3_trace_v2(
        db, SQLITE_TRACE_STMT,
        [](unsigned, void* context, void* statement, void*) -> int {
          const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(statement));
          static_cast<StatementLog*>(context)->statements.emplace_back(sql != nullptr ? sql : "");
          return 0;
        },
        this);
  }
  static void detach(sqlite3* db) { sqlite3_trace_v2(db, 0, nullptr, nullptr); }

  long long count_starting_with(const std::string& prefix) const {
    long long count = 0;
    for (const std::string& statement : statements) {
      if (statement.rfind(prefix, 0) == 0)
        ++count;
    }
    return count;
  }
};

}  // namespace

TEST_CASE("A job added inside the host's transaction is gone when the host rolls back",
          "[transactions]") {
  for (const char* begin : {"BEGIN", "BEGIN IMMEDIATE"}) {
    TempFile file("transactions-rollback");
    for (const std::string& path : {file.path(), std::string(":memory:")}) {
      INFO("database: " << path << ", host runs " << begin);
      Scheduler scheduler = Scheduler::open(path);
      const auto kept = scheduler.add_job("kept", times(1, 2));
      const long long sequence_before =
          query_int(scheduler.handle(), "SELECT seq FROM sqlite_sequence WHERE name = 'job'");

      exec_raw(scheduler.handle(), begin);
      const auto job = scheduler.add_job("rolled back", times(1, 2));
      CHECK(job.id == kept.id + 1);
      // Inside the transaction the scheduler sees its own change, and the host is still in it.
      CHECK(sqlite3_get_autocommit(scheduler.handle()) == 0);
      REQUIRE(scheduler.get_job(job.id).has_value());
      CHECK(scheduler.count_pending_jobs(at(3)) == 2);
      CHECK(scheduler.complete_job(kept.id, at(5)));
      const auto locked = scheduler.lock_next_job(at(3));
      REQUIRE(locked.has_value());
      CHECK(locked->id == job.id);
      exec_raw(scheduler.handle(), "ROLLBACK");

      CHECK_FALSE(scheduler.get_job(job.id).has_value());
      CHECK(scheduler.count_pending_jobs(at(3)) == 1);
      CHECK(job_count(scheduler.handle()) == 1);
      CHECK(query_int(scheduler.handle(), "SELECT seq FROM sqlite_sequence WHERE name = 'job'") ==
            sequence_before);
      const auto kept_after = scheduler.get_job(kept.id);
      REQUIRE(kept_after.has_value());
      CHECK(*kept_after == kept);  // neither completed nor locked
      const auto next = scheduler.next_job(at(3));
      REQUIRE(next.has_value());
      CHECK(next->id == kept.id);
      // The id of the rolled-back job is free again.
      CHECK(scheduler.add_job("after", times(1, 2)).id == job.id);
    }
  }
}

TEST_CASE("A job added with the host's own write in one transaction commits with it",
          "[transactions]") {
  TempFile file("transactions-commit");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    const bool is_file = path != ":memory:";
    std::int64_t id = 0;
    {
      Scheduler scheduler = Scheduler::open(path);
      exec_raw(scheduler.handle(), "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)");

      exec_raw(scheduler.handle(), "BEGIN");
      exec_raw(scheduler.handle(), "INSERT INTO orders (item) VALUES ('book')");
      id = scheduler.add_job("ship the book", times(1, 2)).id;
      if (is_file) {
        // Until the host commits, another connection sees neither change.
        auto other = open_raw(path);
        CHECK(job_count(other.get()) == 0);
        CHECK(query_int(other.get(), "SELECT count(*) FROM orders") == 0);
      }
      exec_raw(scheduler.handle(), "COMMIT");
      CHECK(sqlite3_get_autocommit(scheduler.handle()) != 0);

      if (is_file) {
        auto other = open_raw(path);
        CHECK(job_count(other.get()) == 1);
        CHECK(query_int(other.get(), "SELECT count(*) FROM orders") == 1);
      } else {
        CHECK(job_count(scheduler.handle()) == 1);
        CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM orders") == 1);
        const auto job = scheduler.get_job(id);
        REQUIRE(job.has_value());
        CHECK(job->data == jobsched::Payload("ship the book"));
      }

      // And the other way round: the host's write and the job roll back together.
      exec_raw(scheduler.handle(), "BEGIN");
      const auto dropped = scheduler.add_job("ship the pen", times(1, 2));
      exec_raw(scheduler.handle(), "INSERT INTO orders (item) VALUES ('pen')");
      exec_raw(scheduler.handle(), "ROLLBACK");
      CHECK_FALSE(scheduler.get_job(dropped.id).has_value());
      CHECK(query_int(scheduler.handle(), "SELECT count(*) FROM orders") == 1);
    }
    if (!is_file)
      continue;
    Scheduler reopened = Scheduler::open(path);
    const auto job = reopened.get_job(id);
    REQUIRE(job.has_value());
    CHECK(job->data == jobsched::Payload("ship the book"));
    CHECK(job_count(reopened.handle()) == 1);
    CHECK(query_int(reopened.handle(), "SELECT count(*) FROM orders WHERE item = 'book'") == 1);
    CHECK(query_int(reopened.handle(), "SELECT count(*) FROM orders") == 1);
  }
}

TEST_CASE("Migrating inside the host's transaction uses a SAVEPOINT and rolls back with it",
          "[transactions][migration]") {
  TempFile file("transactions-migrate-rollback");
  for (const std::string& path : {file.path(), std::string(":memory:")}) {
    INFO("database: " << path);
    const bool is_file = path != ":memory:";
    auto host = open_raw(path);
    REQUIRE(table_count(host.get(), "job") == 0);

    exec_raw(host.get(), "BEGIN");
    exec_raw(host.get(), "CREATE TABLE host_table (x)");
    StatementLog log;
    log.attach(host.get());
    {
      Scheduler scheduler = Scheduler::adopt(host.get(), Ownership::borrowed);
      StatementLog::detach(host.get());
      CHECK(scheduler.migrated_from() == -1);
      // The host's transaction is still open, now holding the new schema.
      CHECK(sqlite3_get_autocommit(host.get()) == 0);
      CHECK(table_count(host.get(), "job") == 1);
      CHECK(table_count(host.get(), "job_schema") == 1);
      CHECK(query_int(host.get(), "SELECT value FROM job_schema WHERE key = 'version'") ==
            jobsched::current_schema_version);
      const auto job = scheduler.add_job("inside", times(1, 2));
      CHECK(job.id == 1);
      REQUIRE(scheduler.get_job(job.id).has_value());
      if (is_file) {
        auto other = open_raw(path);
        CHECK(table_count(other.get(), "job") == 0);
        CHECK(table_count(other.get(), "host_table") == 0);
      }
    }
    INFO("statements run during adopt: " << log.statements.size());
    CHECK(log.count_starting_with("SAVEPOINT jobsched") == 1);
    CHECK(log.count_starting_with("RELEASE jobsched") == 1);
    CHECK(log.count_starting_with("BEGIN") == 0);
    CHECK(log.count_starting_with("COMMIT") == 0);
    // Journal mode and synchronous cannot change inside a transaction, so none were tried.
    CHECK(log.count_starting_with("PRAGMA") == 0);

    // The borrowed handle is still open and still inside the host's transaction.
    REQUIRE(sqlite3_get_autocommit(host.get()) == 0);
    exec_raw(host.get(), "ROLLBACK");
    CHECK(table_count(host.get(), "job") == 0);
    CHECK(table_count(host.get(), "job_schema") == 0);
    CHECK(table_count(host.get(), "host_table") == 0);
    if (is_file) {
      auto other = open_raw(path);
      CHECK(table_count(other.get(), "job") == 0);
    }

    // Adopted again outside any transaction, it migrates for real and the schema stays.
    {
      Scheduler scheduler = Scheduler::adopt(host.get(), Ownership::borrowed);
      CHECK(scheduler.migrated_from() == -1);
      CHECK(scheduler.add_job("outside", times(1, 2)).id == 1);
    }
    CHECK(table_count(host.get(), "job") == 1);
    if (is_file) {
      auto other = open_raw(path);
      CHECK(table_count(other.get(), "job") == 1);
      CHECK(job_count(other.get()) == 1);
    }
  }
}

TEST_CASE("Migrating inside the host's transaction commits with the host's COMMIT",
          "[transactions][migration]") {
  TempFile file("transactions-migrate-commit");
  auto host = open_raw(file.path());
  exec_raw(host.get(), "BEGIN");
  exec_raw(host.get(), "CREATE TABLE host_table (x)");
  {
    Scheduler scheduler = Scheduler::adopt(host.get(), Ownership::borrowed);
    CHECK(scheduler.migrated_from() == -1);
    scheduler.add_job("inside", times(1, 2));
  }
  exec_raw(host.get(), "COMMIT");
  host.reset();

  Scheduler reopened = Scheduler::open(file.path());
  CHECK_FALSE(reopened.migrated_from().has_value());
  CHECK(job_count(reopened.handle()) == 1);
  CHECK(table_count(reopened.handle(), "host_table") == 1);
  CHECK(query_int(reopened.handle(), "SELECT value FROM job_schema WHERE key = 'version'") ==
        jobsched::current_schema_version);
}

TEST_CASE("Two schedulers calling lock_next_job in turn never get the same job",
          "[transactions][locking]") {
  TempFile file("transactions-lock-interleaved");
  Scheduler first = Scheduler::open(file.path());
  Scheduler second = Scheduler::open(file.path());
  for (int i = 0; i < 20; ++i)
    first.add_job(std::to_string(i), times(1, 2 + i % 3));

  std::set<std::int64_t> seen;
  std::vector<std::int64_t> order;
  for (int round = 0; round < 10; ++round) {
    for (Scheduler* scheduler : {&first, &second}) {
      const auto job = scheduler->lock_next_job(at(100));
      REQUIRE(job.has_value());
      CHECK(job->locked_at == at(100));
      CHECK(seen.insert(job->id).second);
      order.push_back(job->id);
      // The other scheduler sees the lock at once.
      Scheduler* other = scheduler == &first ? &second : &first;
      const auto stored = other->get_job(job->id);
      REQUIRE(stored.has_value());
      CHECK(stored->locked_at == at(100));
    }
  }
  CHECK(seen.size() == 20);
  CHECK(*seen.begin() == 1);
  CHECK(*seen.rbegin() == 20);
  // Handed out in next-job order: by starts_at, then id.
  std::vector<std::int64_t> expected;
  for (int offset = 0; offset < 3; ++offset) {
    for (std::int64_t id = 1 + offset; id <= 20; id += 3)
      expected.push_back(id);
  }
  CHECK(order == expected);

  CHECK_FALSE(first.lock_next_job(at(100)).has_value());
  CHECK_FALSE(second.lock_next_job(at(100)).has_value());
  CHECK_FALSE(first.next_job(at(100)).has_value());
  CHECK(second.count_pending_jobs(at(100)) == 20);
  CHECK(query_int(first.handle(), "SELECT count(*) FROM job WHERE locked_at IS NULL") == 0);
}

TEST_CASE("Four threads with their own schedulers lock 2,000 jobs, each exactly once",
          "[transactions][locking][threads]") {
  constexpr int job_total = 2000;
  constexpr int thread_total = 4;
  TempFile file("transactions-lock-threads");
  jobsched::Options options;
  options.synchronous = jobsched::Synchronous::normal;
  {
    Scheduler setup = Scheduler::open(file.path(), options);
    exec_raw(setup.handle(), "BEGIN");
    for (int i = 0; i < job_total; ++i)
      setup.add_job(std::to_string(i), times(1, 2 + i % 7));
    exec_raw(setup.handle(), "COMMIT");
    REQUIRE(job_count(setup.handle()) == job_total);
  }

  std::vector<std::vector<std::int64_t>> locked(thread_total);
  std::vector<std::exception_ptr> failures(thread_total);
  std::atomic<int> ready{0};
  std::vector<jobsched_test::BoundedThread> threads;
  for (int t = 0; t < thread_total; ++t) {
    threads.emplace_back([&, t] {
      try {
        Scheduler scheduler = Scheduler::open(file.path(), options);
        ++ready;
        const jobsched_test::Deadline all_ready(std::chrono::seconds(30),
                                                "the four threads to open their schedulers");
        while (ready.load() < thread_total) {
          if (all_ready.passed())
            throw std::runtime_error(all_ready.failure());
          std::this_thread::yield();
        }
        // More locks than jobs means a lock did not hold: the loop would never end.
        for (int locks = 0;; ++locks) {
          if (locks > job_total)
            throw std::runtime_error("locked more jobs than there are");
          const auto job = scheduler.lock_next_job(at(100));
          if (!job)
            break;
          locked[static_cast<std::size_t>(t)].push_back(job->id);
          std::this_thread::yield();  // a moment of "work", so the threads interleave more
        }
      } catch (...) {
        failures[static_cast<std::size_t>(t)] = std::current_exception();
        ++ready;
      }
    });
  }
  const jobsched_test::Deadline deadline(std::chrono::seconds(60),
                                         "four threads to lock 2,000 jobs");
  for (jobsched_test::BoundedThread& thread : threads)
    thread.join(deadline);
  for (const std::exception_ptr& failure : failures) {
    if (failure)
      std::rethrow_exception(failure);
  }

  std::vector<int> times_locked(job_total + 1, 0);
  std::size_t total = 0;
  for (int t = 0; t < thread_total; ++t) {
    const auto& ids = locked[static_cast<std::size_t>(t)];
    INFO("thread " << t << " locked " << ids.size() << " jobs");
    total += ids.size();
    for (const std::int64_t id : ids) {
      REQUIRE(id >= 1);
      REQUIRE(id <= job_total);
      ++times_locked[static_cast<std::size_t>(id)];
    }
  }
  CHECK(total == static_cast<std::size_t>(job_total));
  int locked_twice = 0;
  int never_locked = 0;
  for (int id = 1; id <= job_total; ++id) {
    if (times_locked[static_cast<std::size_t>(id)] > 1)
      ++locked_twice;
    if (times_locked[static_cast<std::size_t>(id)] == 0)
      ++never_locked;
  }
  CHECK(locked_twice == 0);
  CHECK(never_locked == 0);

  auto check = open_raw(file.path());
  CHECK(query_int(check.get(), "SELECT count(*) FROM job WHERE locked_at IS NULL") == 0);
  CHECK(query_int(check.get(), "SELECT count(*) FROM job WHERE locked_at = 100") == job_total);
}

// ---- Every write call inside the host's transaction --------------------------------------------

namespace {

using jobsched::Seconds;

constexpr double kHostNow = 1'700'000'000.0;

/// Every row of every table, in a fixed order, each value with its storage class: two equal
/// dumps mean the database holds exactly the same data.
std::string dump_tables(sqlite3* db) {
  std::vector<std::string> tables;
  {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db,
                               "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                               -1, &stmt, nullptr) == SQLITE_OK);
    while (sqlite3_step(stmt) == SQLITE_ROW)
      tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    sqlite3_finalize(stmt);
  }
  std::string dump;
  for (const std::string& table : tables) {
    dump += "table " + table + "\n";
    sqlite3_stmt* stmt = nullptr;
    const std::string sql = "SELECT * FROM \"" + table + "\" ORDER BY 1";
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    int rc = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      for (int column = 0; column < sqlite3_column_count(stmt); ++column) {
        const int type = sqlite3_column_type(stmt, column);
        dump += std::to_string(type) + ":";
        if (type == SQLITE_FLOAT) {
          char text[40];
          std::snprintf(text, sizeof text, "%.17g", sqlite3_column_double(stmt, column));
          dump += text;
        } else if (type != SQLITE_NULL) {
          const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt, column));
          dump.append(bytes != nullptr ? bytes : "",
                      static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
        }
        dump += "|";
      }
      dump += "\n";
    }
    sqlite3_finalize(stmt);
    REQUIRE(rc == SQLITE_DONE);
  }
  return dump;
}

/// The host's own statement: its result code, never an exception, so a failed ROLLBACK is
/// reported as such.
int host_exec(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
}

/// The jobs every row starts from, on a clock pinned at kHostNow (ids in brackets).
struct HostJobs {
  std::int64_t failed = 0;               // failed for good (its only attempt failed)
  std::int64_t due = 0;                  // due and free: the next job, and the one claimed first
  std::int64_t done = 0;                 // completed
  std::int64_t expired = 0;              // expired at kHostNow
  std::int64_t mail = 0;                 // due, in queue "mail"
  std::int64_t locked = 0;               // locked with lock_job
  std::int64_t once = 0;                 // due, in queue "once", one attempt allowed
  std::int64_t later = 0;                // starts in the future
  std::int64_t next_id = 0;              // the id the next add_job gives
  std::optional<jobsched::Claim> claim;  // a live claim, when the row made one
};

jobsched::JobOptions host_job(double starts, const std::string& queue = "",
                              std::optional<double> expires = std::nullopt) {
  jobsched::JobOptions options;
  options.created_at = at(kHostNow - 1000);
  options.starts_at = at(starts);
  if (expires)
    options.expires_at = at(*expires);
  options.queue = queue;
  return options;
}

HostJobs add_host_jobs(Scheduler& scheduler) {
  HostJobs jobs;
  jobsched::JobOptions one_attempt = host_job(kHostNow - 900, "failing");
  one_attempt.max_attempts = 1;
  jobs.failed = scheduler.add_job("failed", one_attempt).id;
  const auto claimed = scheduler.claim_next_job(Seconds{60}, {"failing"});
  REQUIRE(claimed.has_value());
  REQUIRE(scheduler.fail(claimed->claim, "its only attempt"));
  REQUIRE(scheduler.get_job(jobs.failed)->is_failed());

  jobs.due = scheduler.add_job("due", host_job(kHostNow - 100)).id;
  jobs.done = scheduler.add_job("done", host_job(kHostNow - 500)).id;
  REQUIRE(scheduler.complete_job(jobs.done, at(kHostNow - 5)));
  jobs.expired = scheduler.add_job("expired", host_job(kHostNow - 200, "", kHostNow - 10)).id;
  jobs.mail = scheduler.add_job("mail", host_job(kHostNow - 50, "mail")).id;
  jobs.locked = scheduler.add_job("locked", host_job(kHostNow - 300)).id;
  REQUIRE(scheduler.lock_job(jobs.locked));
  jobsched::JobOptions once = host_job(kHostNow - 10, "once");
  once.max_attempts = 1;
  jobs.once = scheduler.add_job("once", once).id;
  jobs.later = scheduler.add_job("later", host_job(kHostNow + 1000)).id;
  jobs.next_id = jobs.later + 1;
  return jobs;
}

/// One write call: what it needs first (outside any transaction), the call with a check of
/// its answer (inside the host's transaction), and a check of its change once committed (on
/// a second connection).
struct WriteCall {
  const char* name;
  std::function<void(Scheduler&, HostJobs&)> prepare;
  std::function<void(Scheduler&, HostJobs&)> call;
  std::function<void(Scheduler&, const HostJobs&)> committed;
};

void claim_due(Scheduler& scheduler, HostJobs& jobs) {
  const auto claimed = scheduler.claim_next_job(Seconds{30});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == jobs.due);
  jobs.claim = claimed->claim;
}

void claim_once(Scheduler& scheduler, HostJobs& jobs) {
  const auto claimed = scheduler.claim_next_job(Seconds{30}, {"once"});
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == jobs.once);
  jobs.claim = claimed->claim;
}

std::vector<WriteCall> write_calls() {
  const auto nothing = [](Scheduler&, HostJobs&) {};
  return {
      {"add_job", nothing,
       [](Scheduler& s, HostJobs& j) {
         const jobsched::Job job = s.add_job("new", host_job(kHostNow + 5));
         CHECK(job.id == j.next_id);
         CHECK(job.starts_at == at(kHostNow + 5));
       },
       [](Scheduler& s, const HostJobs& j) {
         const auto job = s.get_job(j.next_id);
         REQUIRE(job.has_value());
         CHECK(job->data == jobsched::Payload("new"));
       }},
      {"add_job_from_now", nothing,
       [](Scheduler& s, HostJobs& j) {
         const jobsched::Job job = s.add_job_from_now("from now", Seconds{60});
         CHECK(job.id == j.next_id);
         CHECK(job.starts_at == at(kHostNow + 60));
       },
       [](Scheduler& s, const HostJobs& j) {
         const auto job = s.get_job(j.next_id);
         REQUIRE(job.has_value());
         CHECK(job->starts_at == at(kHostNow + 60));
       }},
      {"complete_job", nothing, [](Scheduler& s, HostJobs& j) { CHECK(s.complete_job(j.due)); },
       [](Scheduler& s, const HostJobs& j) {
         CHECK(s.get_job(j.due)->completed_at == at(kHostNow));
       }},
      {"delete_job", nothing, [](Scheduler& s, HostJobs& j) { CHECK(s.delete_job(j.later)); },
       [](Scheduler& s, const HostJobs& j) { CHECK_FALSE(s.get_job(j.later).has_value()); }},
      {"delete_completed_jobs", nothing,
       [](Scheduler& s, HostJobs&) { CHECK(s.delete_completed_jobs() == 1); },
       [](Scheduler& s, const HostJobs& j) { CHECK_FALSE(s.get_job(j.done).has_value()); }},
      {"delete_expired_jobs", nothing,
       [](Scheduler& s, HostJobs&) { CHECK(s.delete_expired_jobs() == 1); },
       [](Scheduler& s, const HostJobs& j) { CHECK_FALSE(s.get_job(j.expired).has_value()); }},
      {"lock_job", nothing, [](Scheduler& s, HostJobs& j) { CHECK(s.lock_job(j.due)); },
       [](Scheduler& s, const HostJobs& j) { CHECK(s.get_job(j.due)->locked_at == at(kHostNow)); }},
      {"unlock_job", nothing, [](Scheduler& s, HostJobs& j) { CHECK(s.unlock_job(j.locked)); },
       [](Scheduler& s, const HostJobs& j) {
         CHECK_FALSE(s.get_job(j.locked)->locked_at.has_value());
       }},
      {"lock_next_job", nothing,
       [](Scheduler& s, HostJobs& j) {
         const auto job = s.lock_next_job();
         REQUIRE(job.has_value());
         CHECK(job->id == j.due);
       },
       [](Scheduler& s, const HostJobs& j) { CHECK(s.get_job(j.due)->locked_at == at(kHostNow)); }},
      {"claim_next_job", nothing,
       [](Scheduler& s, HostJobs& j) {
         const auto claimed = s.claim_next_job(Seconds{30});
         REQUIRE(claimed.has_value());
         CHECK(claimed->job.id == j.due);
         CHECK(claimed->job.attempts == 1);
       },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.due);
         CHECK(job.attempts == 1);
         CHECK(job.lease_until == at(kHostNow + 30));
       }},
      {"claim_next_job with queues", nothing,
       [](Scheduler& s, HostJobs& j) {
         const auto claimed = s.claim_next_job(Seconds{30}, {"mail"});
         REQUIRE(claimed.has_value());
         CHECK(claimed->job.id == j.mail);
       },
       [](Scheduler& s, const HostJobs& j) {
         CHECK(s.get_job(j.mail)->lease_until == at(kHostNow + 30));
       }},
      {"complete", claim_due, [](Scheduler& s, HostJobs& j) { CHECK(s.complete(*j.claim)); },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.due);
         CHECK(job.completed_at == at(kHostNow));
         CHECK_FALSE(job.locked_at.has_value());
       }},
      {"fail, to be retried", claim_due,
       [](Scheduler& s, HostJobs& j) { CHECK(s.fail(*j.claim, "try again")); },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.due);
         CHECK(job.last_error == std::optional<std::string>("try again"));
         CHECK_FALSE(job.is_failed());
         CHECK(job.starts_at > at(kHostNow));
       }},
      {"fail, for good", claim_once,
       [](Scheduler& s, HostJobs& j) { CHECK(s.fail(*j.claim, "last try")); },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.once);
         CHECK(job.failed_at == at(kHostNow));
         CHECK(job.last_error == std::optional<std::string>("last try"));
       }},
      {"extend", claim_due,
       [](Scheduler& s, HostJobs& j) {
         CHECK(s.extend(*j.claim, Seconds{120}));
         CHECK(j.claim->lease_until == at(kHostNow + 120));
       },
       [](Scheduler& s, const HostJobs& j) {
         CHECK(s.get_job(j.due)->lease_until == at(kHostNow + 120));
       }},
      {"release", claim_due, [](Scheduler& s, HostJobs& j) { CHECK(s.release(*j.claim)); },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.due);
         CHECK_FALSE(job.locked_at.has_value());
         CHECK(job.attempts == 0);
       }},
      {"retry_job", nothing, [](Scheduler& s, HostJobs& j) { CHECK(s.retry_job(j.failed)); },
       [](Scheduler& s, const HostJobs& j) {
         const jobsched::Job job = *s.get_job(j.failed);
         CHECK_FALSE(job.is_failed());
         CHECK(job.attempts == 0);
       }},
      {"delete_failed_jobs", nothing,
       [](Scheduler& s, HostJobs&) { CHECK(s.delete_failed_jobs() == 1); },
       [](Scheduler& s, const HostJobs& j) { CHECK_FALSE(s.get_job(j.failed).has_value()); }},
  };
}

}  // namespace

TEST_CASE("Every write call inside the host's transaction rolls back and commits with it",
          "[transactions]") {
  for (const WriteCall& write : write_calls()) {
    for (const char* end : {"ROLLBACK", "COMMIT"}) {
      DYNAMIC_SECTION(write.name << ", then the host runs " << end) {
        TempFile file("transactions-host");
        jobsched_test::PinnedClock clock;
        clock.set(kHostNow);
        Scheduler scheduler = Scheduler::open(file.path(), clock.options());
        sqlite3* host = scheduler.handle();
        exec_raw(host, "CREATE TABLE host_orders (id INTEGER PRIMARY KEY, item TEXT)");
        HostJobs jobs = add_host_jobs(scheduler);
        write.prepare(scheduler, jobs);
        const std::string before = dump_tables(host);

        REQUIRE(host_exec(host, "BEGIN") == SQLITE_OK);
        REQUIRE(host_exec(host, "INSERT INTO host_orders (item) VALUES ('book')") == SQLITE_OK);
        write.call(scheduler, jobs);
        // The call joined the host's transaction and left it open.
        CHECK(sqlite3_get_autocommit(host) == 0);
        auto other = open_raw(file.path());
        CHECK(dump_tables(other.get()) == before);  // nothing visible before the host ends
        const std::string inside = dump_tables(host);
        CHECK(inside != before);

        const int rc = host_exec(host, end);
        INFO("the host's " << end << ": " << sqlite3_errstr(rc) << " (" << sqlite3_errmsg(host)
                           << ")");
        CHECK(rc == SQLITE_OK);
        CHECK(sqlite3_get_autocommit(host) != 0);
        if (std::string(end) == "ROLLBACK") {
          CHECK(dump_tables(host) == before);
          CHECK(dump_tables(other.get()) == before);
          // The scheduler still works: the same call, now on its own, gives the same answer
          // and commits.
          HostJobs again = jobs;
          write.call(scheduler, again);
          CHECK(sqlite3_get_autocommit(host) != 0);
          Scheduler second = Scheduler::open(file.path(), clock.options());
          write.committed(second, jobs);
        } else {
          CHECK(dump_tables(host) == inside);
          CHECK(dump_tables(other.get()) == inside);
          CHECK(query_int(other.get(), "SELECT count(*) FROM host_orders") == 1);
          Scheduler second = Scheduler::open(file.path(), clock.options());
          write.committed(second, jobs);
        }
        CHECK(sqlite3_get_autocommit(host) != 0);
        // And another write on its own commits.
        const jobsched::Job added = scheduler.add_job("after", host_job(kHostNow + 7));
        CHECK(query_int(other.get(),
                        "SELECT count(*) FROM job WHERE id = " + std::to_string(added.id)) == 1);
      }
    }
  }
}

}  // namespace test_transactions
