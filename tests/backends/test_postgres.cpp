// SPDX-License-Identifier: MIT
// What only the PostgreSQL store has to promise: real processes claiming from one schema at
// once (each job exactly once), many processes opening a brand-new schema at once (one
// migrates), row locks held by another connection (BusyError with SQLSTATE 55P03 after
// busy_timeout, nothing changed; claims pass over them), calls joining the caller's
// transaction on an adopted connection (through a SAVEPOINT) and a borrowed connection left
// as it was found, an unreachable server and bad schemas refused with clear messages, and
// workers SIGKILLed at random moments losing no job and never holding one twice.
//
// Every test has a schema of its own (TempSchema), so that `ctest -j` can run them at once,
// and every wait has a bound. A parent never holds a libpq connection across fork(): each
// child opens its own.

#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../catch.hpp"
#include "../support/checks.hpp"
#include "../support/deadline.hpp"
#include "../support/processes.hpp"
#include "backends.hpp"

namespace test_backend_postgres {

namespace {

using namespace std::chrono_literals;
using jobsched::Claim;
using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::NewJob;
using jobsched::Ownership;
using jobsched::Payload;
using jobsched::PgOptions;
using jobsched::PgScheduler;
using jobsched::Seconds;
using jobsched_test::ChildEnd;
using jobsched_test::ChildReport;
using jobsched_test::contains;
using jobsched_test::Deadline;
using jobsched_test::pg_connect;
using jobsched_test::pg_conninfo;
using jobsched_test::pg_exec;
using jobsched_test::PgConn;
using jobsched_test::PinnedClock;
using jobsched_test::TempSchema;
using jobsched_test::thrown;
using SteadyClock = std::chrono::steady_clock;

// The schema's name quoted, for SQL text: "name".
std::string quoted(const std::string& schema) { return "\"" + schema + "\""; }

PgOptions in_schema(const TempSchema& schema) {
  PgOptions options;
  options.schema = schema.name();
  return options;
}

// One query's first value on a connection of its own (for a parent between its forks, or to
// look from outside a transaction).
std::string query(const std::string& sql) {
  PgConn connection = pg_connect();
  return pg_exec(connection.get(), sql);
}

// How many schemas of that name exist.
std::string schemas_named(const std::string& name) {
  PgConn connection = pg_connect();
  const std::string escaped = [&] {
    std::string out;
    for (const char c : name) {
      if (c == '\'')
        out += '\'';
      out += c;
    }
    return out;
  }();
  return pg_exec(connection.get(),
                 "SELECT count(*) FROM pg_namespace WHERE nspname = '" + escaped + "'");
}

// What a call threw, as a jobsched::Error: its most derived type's name, message, SQLSTATE
// and code. Empty when it threw nothing; any other exception escapes (Catch reports it).
struct Caught {
  std::string type;
  std::string message;
  std::string sqlstate;
  int code = 0;
};

template <class F>
std::optional<Caught> caught(F&& fn) {
  const auto record = [](const char* type, const jobsched::Error& error) {
    return Caught{type, error.what(), error.sqlstate(), error.code()};
  };
  try {
    fn();
  } catch (const jobsched::BusyError& error) {
    return record("BusyError", error);
  } catch (const jobsched::SchemaError& error) {
    return record("SchemaError", error);
  } catch (const jobsched::InvalidArgumentError& error) {
    return record("InvalidArgumentError", error);
  } catch (const jobsched::IoError& error) {
    return record("IoError", error);
  } catch (const jobsched::ConstraintError& error) {
    return record("ConstraintError", error);
  } catch (const jobsched::Error& error) {
    return record("Error", error);
  }
  return std::nullopt;
}

std::vector<NewJob> numbered_jobs(int count) {
  std::vector<NewJob> jobs(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    jobs[static_cast<std::size_t>(i)].data = Payload::integer(i);
  return jobs;
}

// A double as text that reads back as the same double.
std::string exact(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

double seconds_of(jobsched::TimePoint time) { return jobsched::to_unix_seconds(time); }

// What run_together saw: every line the children reported (FAIL lines already failed the
// test) and how each child ended.
struct Together {
  std::vector<std::string> lines;
  std::vector<ChildEnd> ends;
};

// Forks `count` children at once; child i runs body(report, i), then leaves with _exit(0).
// Each report line goes in one write (atomic on a pipe), so the children's lines never mix.
// A child still running at `limit` is SIGKILLed; a hang, a crash, an exit code but 0, an
// exception escaping `body` or a FAIL line fails the test, naming `name`.
template <class Body>
Together run_together(const std::string& name, int count, std::chrono::duration<double> limit,
                      Body body) {
  const Deadline deadline(limit, name);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0)
    throw std::runtime_error("pipe failed");
  std::cout.flush();
  std::cerr.flush();
  std::vector<pid_t> children;
  for (int i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (const pid_t child : children)
        ::kill(child, SIGKILL);
      throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(pipe_fds[0]);
      ChildReport report(pipe_fds[1]);
      try {
        body(report, i);
      } catch (const std::exception& error) {
        report.fail(std::string("an exception escaped: ") + error.what());
      } catch (...) {
        report.fail("an exception that is not a std::exception escaped");
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  ::close(pipe_fds[1]);
  std::string output;
  const bool ended = jobsched_test::read_to_end(pipe_fds[0], output, deadline);
  ::close(pipe_fds[0]);
  Together together;
  for (const pid_t pid : children)
    together.ends.push_back(jobsched_test::wait_for_child(pid, deadline));
  if (!ended)
    FAIL_CHECK(deadline.failure());
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("FAIL ", 0) == 0)
      FAIL_CHECK(name << ": " << line.substr(5));
    else
      together.lines.push_back(line);
  }
  for (const ChildEnd& end : together.ends) {
    if (end.hung || !end.exited || end.exit_code != 0)
      FAIL_CHECK(name << ": a child " << end.describe() << "; the report:\n" << output);
  }
  return together;
}

}  // namespace

// ---- Many processes at once -----------------------------------------------------------------

TEST_CASE("postgres: four processes claiming batches at once claim each of 400 jobs exactly once",
          "[postgres][processes]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("claim_race");
  constexpr int kJobs = 400;
  constexpr int kProcesses = 4;
  constexpr std::int64_t kTally = 1'000'000;  // a child's count of claims, reported as -(kTally + n)
  const PgOptions options = in_schema(schema);
  {
    auto scheduler = PgScheduler::open(conninfo, options);
    const std::vector<Job> added = scheduler.add_jobs(numbered_jobs(kJobs));
    REQUIRE(added.size() == static_cast<std::size_t>(kJobs));
    REQUIRE(added.front().id == 1);
    REQUIRE(added.back().id == kJobs);
    REQUIRE(scheduler.count_pending_jobs() == kJobs);
  }  // closed: the children must not share the parent's connection

  // Every child opens first, then all start claiming at the same moment.
  const SteadyClock::time_point start =
      SteadyClock::now() +
      std::chrono::duration_cast<SteadyClock::duration>(700ms * jobsched_test::time_scale());
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      kProcesses,
      [&](const auto& report) {
        auto scheduler = PgScheduler::open(conninfo, options);
        std::this_thread::sleep_until(start);
        int status = 0;
        std::int64_t claimed_here = 0;
        // More batches than jobs means jobs came back: the loop would never end.
        for (int batches = 0; batches <= kJobs; ++batches) {
          const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(7, Seconds{3600});
          if (claimed.empty()) {
            if (!report(-(kTally + claimed_here)))
              status = 2;
            return status;
          }
          std::vector<Claim> claims;
          for (const ClaimedJob& job : claimed) {
            claims.push_back(job.claim);
            if (job.job.attempts != 1)
              status = 5;  // claimed before: a claim that another process already held
            if (!report(job.job.id))
              status = 2;
          }
          claimed_here += static_cast<std::int64_t>(claimed.size());
          const std::vector<bool> done = scheduler.complete_all(claims);
          if (std::count(done.begin(), done.end(), true) != static_cast<std::ptrdiff_t>(claims.size()))
            status = 3;  // a claim went stale: another process claimed the same job
        }
        return 4;
      },
      60s);

  INFO("exit codes: 2 a report was lost, 3 a completion refused, 4 jobs kept coming back, "
       "5 a job claimed a second time");
  CHECK(reports.exit_codes == std::vector<int>(kProcesses, 0));
  std::map<std::int64_t, int> times_claimed;
  std::vector<std::int64_t> per_child;
  for (const auto& [id, times] : reports.times_reported) {
    if (id > 0) {
      times_claimed[id] = times;
    } else {
      for (int i = 0; i < times; ++i)
        per_child.push_back(-id - kTally);
    }
  }
  REQUIRE(times_claimed.size() == static_cast<std::size_t>(kJobs));
  CHECK(times_claimed.begin()->first == 1);
  CHECK(times_claimed.rbegin()->first == kJobs);
  std::vector<std::int64_t> claimed_twice;
  for (const auto& [id, times] : times_claimed) {
    if (times != 1)
      claimed_twice.push_back(id);
  }
  INFO("the first jobs claimed more than once: "
       << (claimed_twice.empty() ? std::string("none") : std::to_string(claimed_twice.front())));
  CHECK(claimed_twice.empty());
  // Each child said how many it claimed: together, every job once, and the work was shared
  // (the claims really ran at once).
  REQUIRE(per_child.size() == static_cast<std::size_t>(kProcesses));
  std::int64_t total = 0;
  int busy_children = 0;
  for (const std::int64_t n : per_child) {
    total += n;
    busy_children += n > 0 ? 1 : 0;
  }
  CHECK(total == kJobs);
  CHECK(busy_children >= 2);

  auto scheduler = PgScheduler::open(conninfo, options);
  CHECK(scheduler.migrated_from() == 1);
  CHECK(scheduler.count_pending_jobs() == 0);
  const std::string job = quoted(schema.name()) + ".job";
  CHECK(query("SELECT count(*) FROM " + job) == std::to_string(kJobs));
  CHECK(query("SELECT count(*) FROM " + job + " WHERE completed_at IS NULL") == "0");
  CHECK(query("SELECT count(*) FROM " + job +
              " WHERE attempts = 1 AND locked_at IS NULL AND claim_token IS NULL") ==
        std::to_string(kJobs));
}

TEST_CASE("postgres: six processes opening a brand-new schema at once migrate it exactly once",
          "[postgres][processes]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("first_open");
  const PgOptions options = in_schema(schema);
  REQUIRE(schemas_named(schema.name()) == "0");
  constexpr int kProcesses = 6;

  const SteadyClock::time_point start =
      SteadyClock::now() +
      std::chrono::duration_cast<SteadyClock::duration>(500ms * jobsched_test::time_scale());
  const Together together =
      run_together("six processes opening one new schema", kProcesses, 60s,
                   [&](ChildReport& report, int child) {
                     std::this_thread::sleep_until(start);
                     const auto opened = caught([&] {
                       auto scheduler = PgScheduler::open(conninfo, options);
                       report.line("opened " + std::to_string(scheduler.migrated_from()) + " " +
                                   std::to_string(scheduler.schema_version()));
                       // Each can use the schema at once.
                       scheduler.add_job(Payload::integer(child));
                     });
                     if (opened)
                       report.fail("open threw " + opened->type + " (" + opened->sqlstate +
                                   "): " + opened->message);
                   });

  std::map<std::string, int> answers;
  for (const std::string& line : together.lines)
    ++answers[line];
  const std::map<std::string, int> expected = {{"opened 0 1", 1}, {"opened 1 1", kProcesses - 1}};
  CHECK(answers == expected);
  const std::string s = quoted(schema.name());
  CHECK(query("SELECT string_agg(version::text, ',') FROM " + s + ".schema_version") == "1");
  CHECK(query("SELECT count(*) FROM " + s + ".job") == std::to_string(kProcesses));
  CHECK(query("SELECT count(DISTINCT data) FROM " + s + ".job") == std::to_string(kProcesses));
  auto scheduler = PgScheduler::open(conninfo, options);
  CHECK(scheduler.migrated_from() == 1);
  CHECK(scheduler.count_pending_jobs() == kProcesses);
}

// ---- Row locks another connection holds -------------------------------------------------------

TEST_CASE("postgres: a job row locked by another connection makes settling it throw BusyError "
          "55P03 after busy_timeout, and nothing changes",
          "[postgres]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("row_lock");
  PgOptions options = in_schema(schema);
  options.busy_timeout = 200ms;
  auto scheduler = PgScheduler::open(conninfo, options);
  // busy_timeout is the server's lock_timeout on the connection open made.
  CHECK(pg_exec(scheduler.handle(), "SHOW lock_timeout") == "200ms");
  // The bound on every wait below, should lock_timeout not be applied.
  pg_exec(scheduler.handle(), "SET statement_timeout = '10s'");

  const Job held = scheduler.add_job("held");
  const Job other = scheduler.add_job("other");
  const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(Seconds{600});
  REQUIRE(claimed);
  REQUIRE(claimed->job.id == held.id);
  const Job before = *scheduler.get_job(held.id);

  PgConn holder = pg_connect();
  pg_exec(holder.get(), "BEGIN");
  CHECK(pg_exec(holder.get(), "SELECT id FROM " + quoted(schema.name()) +
                                  ".job WHERE id = " + std::to_string(held.id) + " FOR UPDATE") ==
        std::to_string(held.id));

  const auto expect_busy = [&](const char* what, auto call) {
    INFO(what);
    const SteadyClock::time_point called = SteadyClock::now();
    const std::optional<Caught> error = caught(call);
    const auto waited = SteadyClock::now() - called;
    REQUIRE(error);
    INFO(error->message);
    CHECK(error->type == "BusyError");
    CHECK(error->sqlstate == "55P03");
    CHECK(error->code == SQLITE_BUSY);
    CHECK(waited >= 150ms);  // it waited for the lock, as long as busy_timeout says
    CHECK(waited < 5s);
    // Nothing left open on the scheduler's connection: its own transaction rolled back.
    CHECK(PQtransactionStatus(scheduler.handle()) == PQTRANS_IDLE);
  };
  expect_busy("complete_job", [&] { scheduler.complete_job(held.id); });
  expect_busy("complete", [&] { scheduler.complete(claimed->claim); });
  expect_busy("fail (its own transaction)", [&] { scheduler.fail(claimed->claim, "boom"); });
  expect_busy("complete_all (its own transaction)",
              [&] { scheduler.complete_all({claimed->claim}); });

  // Reads do not wait for row locks.
  CHECK(scheduler.count_pending_jobs() == 2);
  CHECK(scheduler.get_job(held.id) == before);
  pg_exec(holder.get(), "ROLLBACK");

  // Nothing changed: still claimed by the same claim, not completed, no error recorded.
  const Job after = *scheduler.get_job(held.id);
  CHECK(after == before);
  CHECK_FALSE(after.completed_at);
  CHECK_FALSE(after.failed_at);
  CHECK_FALSE(after.last_error);
  CHECK(after.attempts == 1);
  CHECK(scheduler.count_pending_jobs() == 2);
  CHECK(query("SELECT count(*) FROM " + quoted(schema.name()) +
              ".job WHERE completed_at IS NOT NULL") == "0");
  // The lock gone, the same calls work on the same scheduler.
  CHECK(scheduler.complete(claimed->claim));
  CHECK(scheduler.get_job(held.id)->completed_at);
  CHECK_FALSE(scheduler.get_job(other.id)->completed_at);
  CHECK(scheduler.count_pending_jobs() == 1);
}

TEST_CASE("postgres: claims pass over a job row another connection holds locked, without waiting",
          "[postgres]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("skip_locked");
  PgOptions options = in_schema(schema);
  options.busy_timeout = 200ms;
  auto scheduler = PgScheduler::open(conninfo, options);
  pg_exec(scheduler.handle(), "SET statement_timeout = '10s'");
  jobsched::JobOptions first;
  first.priority = 5;
  const Job locked = scheduler.add_job("locked", first);  // first in every order
  const Job b = scheduler.add_job("b");
  const Job c = scheduler.add_job("c");

  PgConn holder = pg_connect();
  pg_exec(holder.get(), "BEGIN");
  pg_exec(holder.get(), "SELECT id FROM " + quoted(schema.name()) + ".job WHERE id = " +
                            std::to_string(locked.id) + " FOR UPDATE");

  const SteadyClock::time_point called = SteadyClock::now();
  const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(1, Seconds{60});
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].job.id == b.id);
  const std::optional<Job> next = scheduler.lock_next_job();
  REQUIRE(next);
  CHECK(next->id == c.id);
  CHECK_FALSE(scheduler.claim_next_job(Seconds{60}));
  CHECK(scheduler.claim_jobs(10, Seconds{60}).empty());
  CHECK(SteadyClock::now() - called < 150ms);  // no lock wait at all

  pg_exec(holder.get(), "ROLLBACK");
  const std::optional<ClaimedJob> freed = scheduler.claim_next_job(Seconds{60});
  REQUIRE(freed);
  CHECK(freed->job.id == locked.id);
  CHECK(freed->job.attempts == 1);
}

// ---- An adopted connection, in the caller's transactions --------------------------------------

TEST_CASE("postgres: on a borrowed connection calls join the caller's transaction, and the "
          "connection is left as found",
          "[postgres]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("adopted");
  const std::string job_table = quoted(schema.name()) + ".job";
  PgConn raw = pg_connect();
  PGconn* db = raw.get();
  PgConn observer = pg_connect();  // outside the caller's transaction
  const auto seen_outside = [&] {
    return pg_exec(observer.get(), "SELECT count(*) FROM " + job_table);
  };
  const std::string lock_timeout = pg_exec(db, "SHOW lock_timeout");
  const std::string min_messages = pg_exec(db, "SHOW client_min_messages");
  {
    auto scheduler = PgScheduler::adopt(db, Ownership::borrowed, in_schema(schema));
    CHECK(scheduler.handle() == db);
    CHECK(scheduler.migrated_from() == 0);
    // Its session settings untouched.
    CHECK(pg_exec(db, "SHOW lock_timeout") == lock_timeout);
    CHECK(pg_exec(db, "SHOW client_min_messages") == min_messages);
    CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);

    SECTION("a job added in a transaction rolled back is gone, one committed stays") {
      pg_exec(db, "BEGIN");
      const Job gone = scheduler.add_job("rolled back");
      CHECK(scheduler.get_job(gone.id) == gone);  // inside, it is there
      CHECK(seen_outside() == "0");
      CHECK(PQtransactionStatus(db) == PQTRANS_INTRANS);
      pg_exec(db, "ROLLBACK");
      CHECK_FALSE(scheduler.get_job(gone.id));
      CHECK(scheduler.count_pending_jobs() == 0);

      pg_exec(db, "BEGIN");
      const Job kept = scheduler.add_job("committed");
      CHECK(seen_outside() == "0");  // not before the caller commits
      pg_exec(db, "COMMIT");
      CHECK(seen_outside() == "1");
      CHECK(scheduler.get_job(kept.id) == kept);
      CHECK(scheduler.count_pending_jobs() == 1);
    }

    SECTION("add_jobs and fail, with transactions of their own, join the caller's") {
      pg_exec(db, "BEGIN");
      const std::vector<Job> added = scheduler.add_jobs(numbered_jobs(3));
      REQUIRE(added.size() == 3);
      // add_jobs committed nothing: the caller's transaction is still open.
      CHECK(PQtransactionStatus(db) == PQTRANS_INTRANS);
      CHECK(scheduler.count_pending_jobs() == 3);
      CHECK(seen_outside() == "0");
      pg_exec(db, "ROLLBACK");
      CHECK(seen_outside() == "0");
      CHECK(scheduler.count_pending_jobs() == 0);
      for (const Job& job : added)
        CHECK_FALSE(scheduler.get_job(job.id));

      const Job job = scheduler.add_job("claimed and failed, then rolled back");
      pg_exec(db, "BEGIN");
      const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(Seconds{60});
      REQUIRE(claimed);
      CHECK(claimed->job.id == job.id);
      CHECK(scheduler.fail(claimed->claim, "boom"));
      CHECK(PQtransactionStatus(db) == PQTRANS_INTRANS);
      CHECK(scheduler.get_job(job.id)->last_error == std::string("boom"));
      pg_exec(db, "ROLLBACK");
      CHECK(scheduler.get_job(job.id) == job);  // attempt, error and claim all undone

      // A call that fails half way undoes its own part only: the caller's transaction and
      // its other writes live on (a constraint of the test's makes the server refuse the
      // second row).
      pg_exec(db, "ALTER TABLE " + job_table +
                      " ADD CONSTRAINT test_refused CHECK (data IS DISTINCT FROM 'refused')");
      pg_exec(db, "BEGIN");
      const Job mine = scheduler.add_job("the caller's own write");
      std::vector<NewJob> bad(2);
      bad[0].data = "fine";
      bad[1].data = "refused";
      const std::optional<Caught> refused = caught([&] { scheduler.add_jobs(bad); });
      REQUIRE(refused);
      INFO(refused->message);
      CHECK(refused->type == "ConstraintError");
      CHECK(refused->sqlstate == "23514");
      CHECK(PQtransactionStatus(db) == PQTRANS_INTRANS);  // not failed: the savepoint went
      CHECK(scheduler.count_pending_jobs() == 2);
      pg_exec(db, "COMMIT");
      CHECK(seen_outside() == "2");
      CHECK(scheduler.get_job(mine.id) == mine);
      CHECK(query("SELECT count(*) FROM " + job_table + " WHERE data = 'fine'") == "0");
    }

    SECTION("in a failed transaction each call throws 25P02, and the connection lives on") {
      const Job committed = scheduler.add_job("before");
      scheduler.count_pending_jobs();  // prepared before the transaction fails
      pg_exec(db, "BEGIN");
      CHECK_THROWS(pg_exec(db, "SELECT 1/0"));
      REQUIRE(PQtransactionStatus(db) == PQTRANS_INERROR);
      const auto expect_failed_transaction = [&](const char* what, auto call) {
        INFO(what);
        const std::optional<Caught> error = caught(call);
        REQUIRE(error);
        INFO(error->message);
        CHECK(error->type == "Error");
        CHECK(error->sqlstate == "25P02");
        CHECK(PQstatus(db) == CONNECTION_OK);
        CHECK(PQtransactionStatus(db) == PQTRANS_INERROR);  // still the caller's to end
      };
      expect_failed_transaction("add_job (its statement prepared before)",
                                [&] { scheduler.add_job("in a failed transaction"); });
      expect_failed_transaction("count_pending_jobs", [&] { scheduler.count_pending_jobs(); });
      expect_failed_transaction("add_jobs (a transaction of its own)",
                                [&] { scheduler.add_jobs(numbered_jobs(2)); });
      expect_failed_transaction("complete_all", [&] { scheduler.complete_all({}); });
      expect_failed_transaction("delete_job (its first use)",
                                [&] { scheduler.delete_job(committed.id); });
      pg_exec(db, "ROLLBACK");
      CHECK(pg_exec(db, "SELECT 1") == "1");
      CHECK(scheduler.count_pending_jobs() == 1);
      CHECK(scheduler.get_job(committed.id) == committed);
      CHECK(scheduler.delete_job(committed.id));  // prepared now, though its first try failed
      CHECK(scheduler.count_pending_jobs() == 0);
    }

    SECTION("destroyed inside the caller's open transaction") {
      scheduler.add_job("x");
      pg_exec(db, "BEGIN");
      CHECK(scheduler.count_pending_jobs() == 1);
      CHECK(std::stoi(pg_exec(db, "SELECT count(*) FROM pg_prepared_statements")) == 2);
      PgScheduler gone = std::move(scheduler);
      { PgScheduler end = std::move(gone); }
      CHECK(PQtransactionStatus(db) == PQTRANS_INTRANS);
      pg_exec(db, "ROLLBACK");
    }
  }
  // The scheduler is gone: the connection is open and usable, with none of its statements.
  CHECK(PQstatus(db) == CONNECTION_OK);
  CHECK(PQtransactionStatus(db) == PQTRANS_IDLE);
  CHECK(pg_exec(db, "SELECT 1") == "1");
  CHECK(pg_exec(db, "SELECT count(*) FROM pg_prepared_statements") == "0");
  CHECK(pg_exec(db, "SHOW lock_timeout") == lock_timeout);
  CHECK(pg_exec(db, "SHOW client_min_messages") == min_messages);
  // A second scheduler on the same connection works as the first did.
  auto again = PgScheduler::adopt(db, Ownership::borrowed, in_schema(schema));
  CHECK(again.migrated_from() == 1);
  CHECK(again.count_pending_jobs() >= 0);
}

// ---- Refused before anything is used ----------------------------------------------------------

TEST_CASE("postgres: an unreachable server is an IoError naming the host, never the password",
          "[postgres]") {
  const SteadyClock::time_point called = SteadyClock::now();
  for (const std::string& conninfo :
       {std::string("host=/nonexistent-dir port=5432 dbname=x user=u password=secret"),
        std::string("postgresql://u:secret@/x?host=/nonexistent-dir&port=5432")}) {
    INFO(conninfo);
    const std::optional<Caught> error = caught([&] { PgScheduler::open(conninfo); });
    REQUIRE(error);
    INFO(error->message);
    CHECK(error->type == "IoError");
    CHECK(error->code == SQLITE_IOERR);
    CHECK(error->sqlstate.empty());
    CHECK(contains(error->message, "host=/nonexistent-dir"));
    CHECK(contains(error->message, "dbname=x"));
    CHECK(contains(error->message, "/nonexistent-dir/.s.PGSQL.5432"));  // libpq's own reason
    CHECK_FALSE(contains(error->message, "secret"));
  }
  // A connection string libpq cannot read is named as such, its password still left out.
  const std::optional<Caught> unreadable =
      caught([&] { PgScheduler::open("host=/nonexistent-dir password=secret port"); });
  REQUIRE(unreadable);
  INFO(unreadable->message);
  CHECK(unreadable->type == "IoError");
  CHECK(contains(unreadable->message, "unreadable"));
  CHECK_FALSE(contains(unreadable->message, "secret"));
  CHECK(SteadyClock::now() - called < 10s);
}

TEST_CASE("postgres: a schema version newer than this build knows is a SchemaError, and the "
          "schema is left as it was",
          "[postgres]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("newer");
  const std::string s = quoted(schema.name());
  const PgOptions options = in_schema(schema);
  {
    auto scheduler = PgScheduler::open(conninfo, options);
    CHECK(scheduler.migrated_from() == 0);
    CHECK(scheduler.schema_version() == 1);
    scheduler.add_job("kept");
  }
  CHECK(query("SELECT version FROM " + s + ".schema_version") == "1");
  query("UPDATE " + s + ".schema_version SET version = 99");

  const std::optional<Caught> error = caught([&] { PgScheduler::open(conninfo, options); });
  CHECK(error);
  if (error) {
    INFO(error->message);
    CHECK(error->type == "SchemaError");
    CHECK(contains(error->message, "version 99"));
    CHECK(contains(error->message, "'" + schema.name() + "'"));
    CHECK(contains(error->message, "newer than this build knows (1)"));
  }
  // Nothing was changed: neither the version nor the jobs.
  CHECK(query("SELECT string_agg(version::text, ',') FROM " + s + ".schema_version") == "99");
  CHECK(query("SELECT count(*) FROM " + s + ".job") == "1");

  // Adopted inside the caller's transaction: the same refusal, undone to its savepoint, and
  // the caller's transaction goes on.
  PgConn raw = pg_connect();
  pg_exec(raw.get(), "BEGIN");
  const std::optional<Caught> adopted = caught(
      [&] { PgScheduler::adopt(raw.get(), Ownership::borrowed, options); });
  REQUIRE(adopted);
  CHECK(adopted->type == "SchemaError");
  CHECK(contains(adopted->message, "version 99"));
  CHECK(PQtransactionStatus(raw.get()) == PQTRANS_INTRANS);
  CHECK(pg_exec(raw.get(), "SELECT version FROM " + s + ".schema_version") == "99");
  pg_exec(raw.get(), "COMMIT");
  CHECK(query("SELECT version FROM " + s + ".schema_version") == "99");

  // Back to the version this build knows: it opens, the job still there.
  query("UPDATE " + s + ".schema_version SET version = 1");
  auto scheduler = PgScheduler::open(conninfo, options);
  CHECK(scheduler.migrated_from() == 1);
  CHECK(scheduler.count_pending_jobs() == 1);
}

TEST_CASE("postgres: a schema name that is not a plain identifier is refused, naming it, and "
          "no schema is made",
          "[postgres]") {
  const std::string conninfo = pg_conninfo();
  PgConn raw = pg_connect();
  for (const std::string& name : {std::string("bad-name"), std::string("1abc"), std::string(),
                                 std::string("a\"b"), std::string("x y"), std::string("é"),
                                 std::string(64, 'a')}) {
    INFO("schema '" << name << "'");
    PgOptions options;
    options.schema = name;
    const auto opened = thrown<jobsched::InvalidArgumentError>(
        [&] { PgScheduler::open(conninfo, options); });
    REQUIRE(opened);
    CHECK(contains(*opened, "'" + name + "'"));
    CHECK(contains(*opened, "PgOptions::schema"));
    const auto adopted = thrown<jobsched::InvalidArgumentError>(
        [&] { PgScheduler::adopt(raw.get(), Ownership::borrowed, options); });
    REQUIRE(adopted);
    CHECK(contains(*adopted, "'" + name + "'"));
    CHECK(schemas_named(name) == "0");
  }
  // The borrowed connection was not touched.
  CHECK(PQstatus(raw.get()) == CONNECTION_OK);
  CHECK(pg_exec(raw.get(), "SELECT 1") == "1");
  CHECK(pg_exec(raw.get(), "SELECT count(*) FROM pg_prepared_statements") == "0");

  // 63 characters, the server's limit, is a name; it is made as given.
  std::string longest = jobsched_test::fresh_schema("longest");
  longest += std::string(63 - longest.size(), 'x');
  struct Dropped {
    const std::string& name;
    ~Dropped() {
      try {
        query("SET client_min_messages = warning; DROP SCHEMA IF EXISTS " + quoted(name) +
              " CASCADE");
      } catch (...) {
      }
    }
  } dropped{longest};
  PgOptions options;
  options.schema = longest;
  auto scheduler = PgScheduler::open(conninfo, options);
  CHECK(scheduler.schema() == longest);
  CHECK(schemas_named(longest) == "1");
}

// ---- Adopted connections ----------------------------------------------------------------------

// An owned connection is the scheduler's from the call on: closed even when adopt refuses
// the options (the caller gave it away and cannot close it).
TEST_CASE("postgres: adopt with Ownership::owned closes the connection even when it refuses "
          "the options",
          "[postgres]") {
  for (const int refused : {0, 1}) {
    INFO((refused == 0 ? "a bad schema name" : "a bad retry policy"));
    const std::string application =
        "jobsched_adopt_owned_" + std::to_string(::getpid()) + "_" + std::to_string(refused);
    PGconn* connection =
        PQconnectdb((pg_conninfo() + " application_name=" + application).c_str());
    REQUIRE(PQstatus(connection) == CONNECTION_OK);
    PgOptions options;
    if (refused == 0)
      options.schema = "bad-name";
    else
      options.retry.max_attempts = 0;
    CHECK(thrown<jobsched::InvalidArgumentError>(
        [&] { PgScheduler::adopt(connection, Ownership::owned, options); }));
    PgConn admin = pg_connect();
    const bool closed =
        jobsched_test::wait_until(Deadline(1s, "the adopted connection to be closed"), [&] {
          return pg_exec(admin.get(),
                         "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                             application + "'") == "0";
        });
    if (!closed)
      PQfinish(connection);  // the scheduler did not close it: do it here, not to leak it
    CHECK(closed);
  }
}

// The server refuses DEALLOCATE inside a failed transaction: a borrowed scheduler destroyed
// there leaves its prepared statements for the rest of the session, under names no other
// scheduler on the connection uses, so the next one works.
TEST_CASE("postgres: a borrowed scheduler destroyed in a failed transaction leaves statements "
          "that no later scheduler trips on",
          "[postgres]") {
  TempSchema schema("destroyed_failed");
  PgConn raw = pg_connect();
  {
    auto scheduler = PgScheduler::adopt(raw.get(), Ownership::borrowed, in_schema(schema));
    scheduler.add_job("x");
    CHECK(scheduler.count_pending_jobs() == 1);
    pg_exec(raw.get(), "BEGIN");
    CHECK_THROWS(pg_exec(raw.get(), "SELECT 1/0"));
    REQUIRE(PQtransactionStatus(raw.get()) == PQTRANS_INERROR);
  }
  pg_exec(raw.get(), "ROLLBACK");
  CHECK(pg_exec(raw.get(), "SELECT count(*) FROM pg_prepared_statements") == "2");
  auto next = PgScheduler::adopt(raw.get(), Ownership::borrowed, in_schema(schema));
  next.add_job("y");
  CHECK(next.count_pending_jobs() == 2);
  CHECK(pg_exec(raw.get(), "SELECT count(*) FROM pg_prepared_statements") == "4");
}

// Creating the schema inside the caller's transaction changes none of its settings (a SET
// LOCAL would outlive the savepoint, to the end of the caller's transaction).
TEST_CASE("postgres: adopt inside the caller's transaction leaves its settings untouched",
          "[postgres]") {
  TempSchema schema("adopt_settings");
  PgConn raw = pg_connect();
  const std::string before = pg_exec(raw.get(), "SHOW client_min_messages");
  pg_exec(raw.get(), "BEGIN");
  auto scheduler = PgScheduler::adopt(raw.get(), Ownership::borrowed, in_schema(schema));
  CHECK(scheduler.migrated_from() == 0);
  CHECK(pg_exec(raw.get(), "SHOW client_min_messages") == before);
  pg_exec(raw.get(), "COMMIT");
}

// ---- Crashes ----------------------------------------------------------------------------------

namespace {

// A worker process of the chaos test: claims with a lease of 1 s, works a few milliseconds,
// completes; until nothing is pending (jobs stranded by killed workers come back once their
// leases run out). Reports each claim ("C id token locked_at lease_until"), each completion
// before it is tried ("I id token") and its answer ("D id token 0|1").
void chaos_worker(ChildReport& report, const std::string& conninfo, const PgOptions& options,
                  unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> work_ms(20, 80);
  auto scheduler = PgScheduler::open(conninfo, options);
  const Deadline give_up(20s, "");
  while (!give_up.passed()) {
    const std::optional<ClaimedJob> job = scheduler.claim_next_job(Seconds{1});
    if (!job) {
      if (scheduler.count_pending_jobs() == 0)
        return;
      std::this_thread::sleep_for(20ms);
      continue;
    }
    const std::string held = std::to_string(job->job.id) + " " + std::to_string(job->claim.token);
    report.line("C " + held + " " + exact(seconds_of(*job->job.locked_at)) + " " +
                exact(seconds_of(job->claim.lease_until)));
    std::this_thread::sleep_for(std::chrono::milliseconds(work_ms(rng)));
    report.line("I " + held);
    const bool done = scheduler.complete(job->claim);
    report.line("D " + held + (done ? " 1" : " 0"));
  }
  report.fail("jobs still pending after 20 s");
}

struct ClaimRecord {
  std::int64_t token = 0;
  double locked_at = 0;
  double lease_until = 0;
};

// What the workers and the drain said about one job.
struct JobRecords {
  std::vector<ClaimRecord> claims;
  std::vector<std::int64_t> tried;     // completions tried (any may have died on the way)
  std::vector<std::int64_t> accepted;  // completions that returned true
  int refused = 0;                     // completions that returned false
};

}  // namespace

TEST_CASE("postgres: workers SIGKILLed at random moments lose no job, and no job is held by two "
          "live leases",
          "[postgres][processes]") {
  const std::string conninfo = pg_conninfo();
  TempSchema schema("chaos");
  constexpr int kJobs = 200;
  constexpr int kWorkers = 3;
  constexpr int kRounds = 21;  // every 7th round kills them all
  PgOptions options = in_schema(schema);
  options.retry.max_attempts = 1000;  // a killed claim costs an attempt: never fail for good
  {
    auto scheduler = PgScheduler::open(conninfo, options);
    REQUIRE(scheduler.add_jobs(numbered_jobs(kJobs)).size() == static_cast<std::size_t>(kJobs));
  }
  // Workers connect under a name of their own, to see when the last killed one's server
  // process has gone.
  const std::string application = "jobsched_chaos_" + std::to_string(::getpid());
  const std::string worker_conninfo = conninfo + " application_name=" + application;

  const unsigned seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  const Deadline deadline(40s, "the chaos run");

  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  std::string log;
  const auto pump = [&](std::chrono::milliseconds span) {
    const SteadyClock::time_point until = SteadyClock::now() + span;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now()).count();
      if (left <= 0)
        return;
      pollfd ready{pipe_fds[0], POLLIN, 0};
      if (::poll(&ready, 1, static_cast<int>(left)) > 0) {
        char buffer[4096];
        const ssize_t got = ::read(pipe_fds[0], buffer, sizeof buffer);
        if (got > 0)
          log.append(buffer, static_cast<std::size_t>(got));
      }
    }
  };
  unsigned forked = 0;
  const auto spawn = [&]() -> pid_t {
    const unsigned child_seed = seed + ++forked;
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(pipe_fds[0]);
      ChildReport report(pipe_fds[1]);
      try {
        chaos_worker(report, worker_conninfo, options, child_seed);
      } catch (const std::exception& error) {
        report.fail(std::string("a worker threw: ") + error.what());
      } catch (...) {
        report.fail("a worker threw something that is not a std::exception");
      }
      ::_exit(0);
    }
    return pid;
  };
  int killed = 0;
  int ended_early = 0;  // found nothing pending and left
  std::vector<std::string> bad_ends;
  const auto end_child = [&](pid_t pid) {
    ::kill(pid, SIGKILL);
    const ChildEnd end =
        jobsched_test::wait_for_child(pid, Deadline(10s, "a SIGKILLed worker to be reaped"));
    if (end.signal == SIGKILL)
      ++killed;
    else if (end.exited && end.exit_code == 0)
      ++ended_early;
    else
      bad_ends.push_back(end.describe());
  };

  std::vector<pid_t> workers;
  for (int i = 0; i < kWorkers; ++i)
    workers.push_back(spawn());
  std::uniform_int_distribution<int> pause_ms(50, 150);
  for (int round = 1; round <= kRounds && !deadline.passed(); ++round) {
    pump(std::chrono::milliseconds(pause_ms(rng)));
    if (round % 7 == 0) {
      for (pid_t& pid : workers) {
        end_child(pid);
        pid = spawn();
      }
    } else {
      const auto victim = static_cast<std::size_t>(rng() % workers.size());
      end_child(workers[victim]);
      workers[victim] = spawn();
    }
  }
  pump(std::chrono::milliseconds(pause_ms(rng)));
  for (const pid_t pid : workers)  // the last round: all at once, jobs still held
    end_child(pid);
  ::close(pipe_fds[1]);
  const bool read_all = jobsched_test::read_to_end(pipe_fds[0], log, deadline);
  ::close(pipe_fds[0]);
  CHECK(read_all);
  CHECK(bad_ends.empty());
  CHECK(killed >= kRounds);
  INFO("workers forked " << forked << ", killed " << killed << ", left on their own "
                         << ended_early);

  // Killed workers' server processes may finish a statement sent just before: wait until
  // they are all gone, so that the drain below is the only one left.
  {
    PgConn admin = pg_connect();
    jobsched_test::require_eventually(Deadline(10s, "the killed workers' sessions to end"), [&] {
      return pg_exec(admin.get(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                      application + "'") == "0";
    });
  }

  std::map<std::int64_t, JobRecords> records;
  std::vector<std::string> failures;
  {
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("FAIL ", 0) == 0) {
        failures.push_back(line.substr(5));
        continue;
      }
      std::istringstream fields(line);
      std::string kind;
      std::int64_t id = 0;
      std::int64_t token = 0;
      fields >> kind >> id >> token;
      if (kind == "C") {
        ClaimRecord claim{token, 0, 0};
        fields >> claim.locked_at >> claim.lease_until;
        records[id].claims.push_back(claim);
      } else if (kind == "I") {
        records[id].tried.push_back(token);
      } else if (kind == "D") {
        int ok = 0;
        fields >> ok;
        if (ok == 1)
          records[id].accepted.push_back(token);
        else
          ++records[id].refused;
      } else {
        failures.push_back("a line the workers never write: " + line);
      }
    }
  }
  CHECK(failures == std::vector<std::string>{});

  // The drain: past every lease (1 s from a claim made before now), claim and complete what
  // is left, as one more worker whose every call is recorded.
  PinnedClock clock;
  clock.set(seconds_of(jobsched::system_now()) + 2.0);
  PgOptions drain_options = options;
  drain_options.clock = [time = clock.time] { return *time; };
  auto drain = PgScheduler::open(conninfo, drain_options);
  int drained = 0;
  for (int i = 0; i <= kJobs; ++i) {
    const std::optional<ClaimedJob> job = drain.claim_next_job(Seconds{1});
    if (!job)
      break;
    JobRecords& record = records[job->job.id];
    record.claims.push_back(ClaimRecord{job->claim.token, seconds_of(*job->job.locked_at),
                                        seconds_of(job->claim.lease_until)});
    record.tried.push_back(job->claim.token);
    const bool done = drain.complete(job->claim);
    CHECK(done);
    if (done)
      record.accepted.push_back(job->claim.token);
    else
      ++record.refused;
    ++drained;
  }
  INFO("the drain completed " << drained << " jobs");

  // Every job completed, none failed, none lost.
  CHECK(drain.count_pending_jobs() == 0);
  CHECK(drain.count_pending_jobs(jobsched::system_now()) == 0);
  CHECK(drain.failed_jobs().empty());
  const std::string job_table = quoted(schema.name()) + ".job";
  CHECK(query("SELECT count(*) FROM " + job_table + " WHERE completed_at IS NOT NULL") ==
        std::to_string(kJobs));
  CHECK(query("SELECT count(*) FROM " + job_table) == std::to_string(kJobs));
  CHECK(query("SELECT count(*) FROM " + job_table + " WHERE failed_at IS NOT NULL") == "0");

  // The promises, job by job.
  std::set<std::int64_t> tokens;
  int claims_seen = 0;
  int reclaimed_jobs = 0;
  int refused = 0;
  int completed_unseen = 0;  // completed by a call whose answer died with its worker
  std::vector<std::string> broken;
  for (std::int64_t id = 1; id <= kJobs; ++id) {
    const auto found = records.find(id);
    if (found == records.end()) {
      broken.push_back("job " + std::to_string(id) + ": never claimed");
      continue;
    }
    JobRecords& record = found->second;
    std::sort(record.claims.begin(), record.claims.end(),
              [](const ClaimRecord& a, const ClaimRecord& b) { return a.token < b.token; });
    claims_seen += static_cast<int>(record.claims.size());
    reclaimed_jobs += record.claims.size() > 1 ? 1 : 0;
    refused += record.refused;
    const std::string job = "job " + std::to_string(id) + ": ";
    if (record.claims.empty()) {
      broken.push_back(job + "completed without a claim seen");
      continue;
    }
    for (std::size_t i = 0; i < record.claims.size(); ++i) {
      const ClaimRecord& claim = record.claims[i];
      if (!tokens.insert(claim.token).second)
        broken.push_back(job + "token " + std::to_string(claim.token) + " given twice");
      if (std::abs(claim.lease_until - claim.locked_at - 1.0) > 1e-6)
        broken.push_back(job + "a lease of " + exact(claim.lease_until - claim.locked_at) + " s");
      // Claimed again only once the earlier lease had run out: never two live leases.
      if (i > 0 && claim.locked_at < record.claims[i - 1].lease_until) {
        broken.push_back(job + "claimed at " + exact(claim.locked_at) +
                         " while the lease of token " + std::to_string(record.claims[i - 1].token) +
                         " ran to " + exact(record.claims[i - 1].lease_until));
      }
    }
    const std::int64_t latest = record.claims.back().token;
    if (record.accepted.size() > 1) {
      broken.push_back(job + std::to_string(record.accepted.size()) + " completions accepted");
    } else if (record.accepted.size() == 1) {
      // An accepted completion is the latest claim's: an earlier claim's token was stale.
      if (record.accepted.front() != latest)
        broken.push_back(job + "completed by token " + std::to_string(record.accepted.front()) +
                         ", not by the latest claim's " + std::to_string(latest));
    } else {
      // Completed in the store, its answer lost: the latest claim's call must have been tried.
      ++completed_unseen;
      if (std::find(record.tried.begin(), record.tried.end(), latest) == record.tried.end())
        broken.push_back(job + "completed, but its latest claim never tried to");
    }
    const std::string attempts =
        query("SELECT attempts FROM " + job_table + " WHERE id = " + std::to_string(id));
    if (std::stoi(attempts) < static_cast<int>(record.claims.size()))
      broken.push_back(job + attempts + " attempts for " + std::to_string(record.claims.size()) +
                       " claims seen");
  }
  INFO("claims seen " << claims_seen << ", jobs claimed more than once " << reclaimed_jobs
                      << ", completions refused " << refused << ", completed unseen "
                      << completed_unseen);
  CHECK(broken == std::vector<std::string>{});
  CHECK(records.size() == static_cast<std::size_t>(kJobs));
  // The kills did strand claimed jobs, which came back once their leases ran out.
  CHECK(reclaimed_jobs > 0);
  CHECK(claims_seen > kJobs);
  CHECK_FALSE(deadline.passed());
}

// ---- Text PostgreSQL cannot store ----------------------------------------------------------

// A name with a NUL byte or bytes that are not UTF-8 is refused before any SQL, naming it;
// an error or a reason (which must not be refused) is stored with U+FFFD in their place.
TEST_CASE("postgres: queues PostgreSQL cannot store are refused, errors are stored cleaned",
          "[postgres]") {
  TempSchema schema("text");
  PinnedClock clock;
  PgOptions options;
  options.schema = schema.name();
  options.clock = [time = clock.time] { return *time; };
  auto scheduler = PgScheduler::open(pg_conninfo(), options);

  jobsched::JobOptions nul;
  nul.queue = std::string("a\0b", 3);
  const auto refused = thrown<jobsched::InvalidArgumentError>([&] { scheduler.add_job("x", nul); });
  REQUIRE(refused);
  CHECK(contains(*refused, "the queue 'a\\x00b' holds a NUL byte or is not UTF-8"));
  jobsched::JobOptions latin1;
  latin1.queue = "caf\xe9";
  CHECK(thrown<jobsched::InvalidArgumentError>([&] {
    scheduler.add_jobs({NewJob{"ok", {}}, NewJob{"x", latin1}});
  }));
  CHECK(thrown<jobsched::InvalidArgumentError>(
      [&] { scheduler.claim_next_job(Seconds{1}, std::vector<std::string>{"caf\xe9"}); }));
  CHECK(thrown<jobsched::InvalidArgumentError>([&] { scheduler.pause_queue("\xff"); }));
  CHECK(scheduler.count_pending_jobs() == 0);
  CHECK(scheduler.paused_queues().empty());
  // Valid UTF-8 of every length goes through.
  jobsched::JobOptions accents;
  accents.queue = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa8";
  const Job added = scheduler.add_job("x", accents);
  CHECK(scheduler.get_job(added.id)->queue == accents.queue);

  auto claimed = scheduler.claim_next_job(Seconds{60});
  REQUIRE(claimed);
  CHECK(scheduler.fail(claimed->claim, std::string("bad\0byte \xff end", 14)));
  CHECK(scheduler.get_job(added.id)->last_error ==
        std::string("bad\xef\xbf\xbd" "byte \xef\xbf\xbd end"));
  CHECK(scheduler.cancel_job(added.id, std::string("why\0", 4)));
  CHECK(scheduler.get_job(added.id)->last_error == std::string("why\xef\xbf\xbd"));
}

// ---- Whose clock ------------------------------------------------------------------------------

// The skew between the host's clock and the server's is measured at connect: with a host
// clock pinned to 2023, it is the years between. By default now is the host's; with
// server_clock, the host's plus the skew, so the server's within a round trip.
TEST_CASE("postgres: the clock skew to the server is measured, and server_clock uses it",
          "[postgres]") {
  TempSchema schema("skew");
  PinnedClock clock;
  clock.set(1'700'000'000.0);
  PgOptions options;
  options.schema = schema.name();
  options.clock = [time = clock.time] { return *time; };
  const auto real_now = [] { return jobsched::to_unix_seconds(jobsched::system_now()); };

  auto host = PgScheduler::open(pg_conninfo(), options);
  CHECK(std::abs(host.clock_skew().count() - (real_now() - 1'700'000'000.0)) < 5.0);
  CHECK(host.now() == clock.now());
  CHECK(host.add_job("host").created_at == clock.now());

  options.server_clock = true;
  auto server = PgScheduler::open(pg_conninfo(), options);
  CHECK(server.now() == clock.now() + server.clock_skew());
  const Job added = server.add_job("server");
  CHECK(std::abs(jobsched::to_unix_seconds(added.created_at) - real_now()) < 5.0);
  CHECK(server.get_job(added.id) == added);

  // The host's clock moves 100 s ahead: measured again, the skew is 100 s less.
  const double before = server.clock_skew().count();
  clock.advance(100.0);
  const double after = server.measure_clock_skew().count();
  CHECK(std::abs((before - after) - 100.0) < 5.0);
  CHECK(server.clock_skew().count() == after);
}

// ---- A lost connection --------------------------------------------------------------------

// The server ends the scheduler's session: the call that meets it throws IoError; the next
// call connects again (statements prepared anew, lock_timeout set again) and works. A
// borrowed connection is the host's to restore.
TEST_CASE("postgres: a session the server ends is an IoError, and the next call connects again",
          "[postgres]") {
  TempSchema schema("lost");
  PinnedClock clock;
  PgOptions options;
  options.schema = schema.name();
  options.clock = [time = clock.time] { return *time; };
  options.busy_timeout = std::chrono::milliseconds(1234);
  auto scheduler = PgScheduler::open(pg_conninfo(), options);
  const Job job = scheduler.add_job("survives");
  CHECK(scheduler.count_pending_jobs() == 1);

  PgConn admin = pg_connect();
  const auto terminate = [&](PGconn* connection) {
    const std::string pid = std::to_string(PQbackendPID(connection));
    CHECK(pg_exec(admin.get(), "SELECT pg_terminate_backend(" + pid + ", 5000)") == "t");
  };
  terminate(scheduler.handle());
  const auto lost = thrown<jobsched::IoError>([&] { scheduler.count_pending_jobs(); });
  REQUIRE(lost);
  CHECK(contains(*lost, "PostgreSQL"));
  CHECK(scheduler.count_pending_jobs() == 1);
  CHECK(scheduler.get_job(job.id) == job);
  CHECK(pg_exec(scheduler.handle(), "SHOW lock_timeout") == "1234ms");
  auto claimed = scheduler.claim_next_job(Seconds{60});
  REQUIRE(claimed);

  // Lost inside one of its own transactions (fail reads, then writes): IoError, and the
  // attempt is recorded wholly or not at all.
  terminate(scheduler.handle());
  CHECK(thrown<jobsched::IoError>([&] { scheduler.fail(claimed->claim, "boom"); }));
  const Job after = *scheduler.get_job(job.id);
  CHECK_FALSE(after.last_error);
  CHECK(after.lease_until == claimed->claim.lease_until);
  CHECK(scheduler.complete(claimed->claim));

  // Borrowed: not reconnected behind the host's back.
  PgConn raw = pg_connect();
  auto borrowed = PgScheduler::adopt(raw.get(), Ownership::borrowed, options);
  CHECK(borrowed.count_pending_jobs() == 0);
  terminate(raw.get());
  CHECK(thrown<jobsched::IoError>([&] { borrowed.count_pending_jobs(); }));
  CHECK(thrown<jobsched::IoError>([&] { borrowed.count_pending_jobs(); }));
  CHECK(PQstatus(raw.get()) == CONNECTION_BAD);
}

// ---- The server crashing -------------------------------------------------------------------

// Workers drain while the server itself is killed (pg_ctl -m immediate, then crash recovery)
// twice: calls in flight throw, the workers carry on once it is back (their schedulers
// connect again), and at the end every job is completed and no completion was accepted
// twice. A cluster of the test's own, since the shared one serves the other tests meanwhile.
TEST_CASE("postgres: the server killed twice mid-drain loses no job and completes none twice",
          "[postgres]") {
  pg_conninfo();  // skips or fails the test as the others do when there is no server
  const std::string state = std::string(JOBSCHED_TEST_TMPDIR) + "/crash-cluster-" +
                            std::to_string(::getpid());
  const std::string script = JOBSCHED_TEST_PG_CLUSTER;
  // Durable: with synchronous_commit off (the shared cluster's setting), a crash loses
  // commits already answered (seen here: 7 of 300 completions gone).
  REQUIRE(std::system(("JOBSCHED_PG_DURABLE=1 '" + script + "' start '" + state +
                       "' > /dev/null").c_str()) == 0);
  struct StopCluster {
    std::string command;
    ~StopCluster() { (void)std::system(command.c_str()); }
  } stop{"'" + script + "' stop '" + state + "'"};
  const std::string conninfo = jobsched_test::first_line(state + "/conninfo");
  REQUIRE_FALSE(conninfo.empty());

  constexpr int kJobs = 300;
  PgOptions options;
  options.schema = "crash";
  {
    auto scheduler = PgScheduler::open(conninfo, options);
    scheduler.add_jobs(std::vector<NewJob>(kJobs, NewJob{"job", {}}));
  }

  // The crasher: a process of its own (the test process stays single-threaded for fork).
  std::cout.flush();
  const pid_t crasher = ::fork();
  REQUIRE(crasher >= 0);
  if (crasher == 0) {
    for (const auto pause : {300ms, 600ms}) {
      std::this_thread::sleep_for(pause);
      if (std::system(("'" + script + "' crash '" + state + "'").c_str()) != 0)
        std::_Exit(1);
    }
    std::_Exit(0);
  }

  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      3,
      [&](const auto& report) {
        std::optional<PgScheduler> scheduler;
        int errors = 0;
        const Deadline give_up(30s, "");
        while (!give_up.passed()) {
          try {
            if (!scheduler)
              scheduler.emplace(PgScheduler::open(conninfo, options));
            const std::vector<ClaimedJob> claimed = scheduler->claim_jobs(5, Seconds{2});
            if (claimed.empty()) {
              if (scheduler->count_pending_jobs() == 0)
                return errors > 0 ? 0 : 3;  // 3: the crashes never reached this worker
              std::this_thread::sleep_for(50ms);
              continue;
            }
            for (const ClaimedJob& job : claimed) {
              std::this_thread::sleep_for(10ms);  // a drain of about 1 s: crashes land in it
              if (scheduler->complete(job.claim) && !report(job.job.id))
                return 2;
            }
          } catch (const jobsched::Error&) {
            ++errors;  // the server went away, or is still recovering: try again
            std::this_thread::sleep_for(50ms);
          }
        }
        return 4;
      },
      60s);
  int crasher_status = 0;
  REQUIRE(::waitpid(crasher, &crasher_status, 0) == crasher);
  CHECK(WIFEXITED(crasher_status));
  CHECK(WEXITSTATUS(crasher_status) == 0);
  CHECK(reports.hung == 0);
  CHECK(reports.exit_codes == std::vector<int>(3, 0));

  auto scheduler = PgScheduler::open(conninfo, options);
  CHECK(scheduler.count_pending_jobs() == 0);
  PgConn check(PQconnectdb(conninfo.c_str()));
  CHECK(pg_exec(check.get(), "SELECT count(*) FROM crash.job WHERE completed_at IS NOT NULL") ==
        std::to_string(kJobs));
  int accepted_twice = 0;
  for (const auto& [id, times] : reports.times_reported) {
    CHECK(id >= 1);
    CHECK(id <= kJobs);
    accepted_twice += times > 1 ? 1 : 0;
  }
  CHECK(accepted_twice == 0);
  // A completion whose answer the crash swallowed is not reported: most are.
  CHECK(reports.times_reported.size() > static_cast<std::size_t>(kJobs - 40));
}

}  // namespace test_backend_postgres
