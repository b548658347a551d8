// SPDX-License-Identifier: MIT
#pragma once

// The two stores under one test: a SQLite file and a fresh schema on the test cluster, each
// with a pinned clock. Templated tests take SqliteBackend or PgBackend; each makes its own
// scheduler and removes what it made.
//
// The cluster: CTest's fixture starts one (tests/backends/pg_cluster) and its connection
// string is in JOBSCHED_TEST_PG_DIR/conninfo. When none could be started, that directory
// says why, and a PostgreSQL test skips (exit code 77, which CTest reports as skipped) when
// run by CTest, and fails naming the reason when run by hand.

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <jobsched/jobsched.hpp>
#include <jobsched/postgres.hpp>

#include "../catch.hpp"
#include "../support/temp_file.hpp"

#ifndef JOBSCHED_TEST_PG_DIR
#define JOBSCHED_TEST_PG_DIR "/tmp/jobsched-test-pg"
#endif
// The script that starts, crashes and stops clusters (for a test that needs its own).
#ifndef JOBSCHED_TEST_PG_CLUSTER
#define JOBSCHED_TEST_PG_CLUSTER "tests/backends/pg_cluster"
#endif

namespace jobsched_test {

inline std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// The test cluster's connection string; skips or fails the test when there is none.
inline std::string pg_conninfo() {
  const std::string dir = JOBSCHED_TEST_PG_DIR;
  std::string conninfo = first_line(dir + "/conninfo");
  if (!conninfo.empty())
    return conninfo;
  std::string why = first_line(dir + "/unavailable");
  if (why.empty())
    why = "no cluster was started (" + dir + "/conninfo is missing); run the tests with ctest";
  if (std::getenv("JOBSCHED_TEST_SKIP_CODE") != nullptr) {
    std::cout << "SKIPPED: PostgreSQL tests need a server: " << why << std::endl;
    std::_Exit(77);
  }
  FAIL("this PostgreSQL test needs a server: " << why);
  return {};
}

struct PgConnCloser {
  void operator()(PGconn* connection) const noexcept { PQfinish(connection); }
};
using PgConn = std::unique_ptr<PGconn, PgConnCloser>;

/// A raw connection to the test cluster, as a host would have.
inline PgConn pg_connect() {
  PgConn connection(PQconnectdb(pg_conninfo().c_str()));
  if (PQstatus(connection.get()) != CONNECTION_OK)
    throw std::runtime_error(std::string("cannot connect: ") + PQerrorMessage(connection.get()));
  return connection;
}

/// Runs `sql` on a raw connection; its first value, or "" (throws when it fails).
inline std::string pg_exec(PGconn* connection, const std::string& sql) {
  PGresult* result = PQexec(connection, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  std::string value;
  if (status == PGRES_TUPLES_OK && PQntuples(result) > 0 && PQnfields(result) > 0)
    value = PQgetvalue(result, 0, 0);
  const std::string error = PQresultErrorMessage(result);
  PQclear(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error("SQL failed: " + error + " in: " + sql);
  return value;
}

/// A schema name unique to this process and call.
inline std::string fresh_schema(const std::string& name) {
  static std::atomic<int> counter{0};
  return "t_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

/// A schema that is dropped (with everything in it) when the object dies.
class TempSchema {
 public:
  explicit TempSchema(const std::string& name) : name_(fresh_schema(name)) {}
  TempSchema(const TempSchema&) = delete;
  TempSchema& operator=(const TempSchema&) = delete;
  ~TempSchema() {
    try {
      PgConn admin = pg_connect();
      pg_exec(admin.get(), "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"" + name_ + "\" CASCADE");
    } catch (...) {  // a test that failed to connect has said so already
    }
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

/// SQLite: a file, with the scheduler's clock pinned.
struct SqliteBackend {
  using SchedulerType = jobsched::Scheduler;
  static constexpr const char* name = "SQLite";

  explicit SqliteBackend(const std::string& test) : file(test) {}

  jobsched::Scheduler open(const PinnedClock& clock, jobsched::RetryPolicy retry = {}) {
    jobsched::Options options = clock.options();
    options.retry = retry;
    return jobsched::Scheduler::open(file.path(), options);
  }

  TempFile file;
};

/// PostgreSQL: a fresh schema on the test cluster, with the scheduler's clock pinned.
struct PgBackend {
  using SchedulerType = jobsched::PgScheduler;
  static constexpr const char* name = "PostgreSQL";

  explicit PgBackend(const std::string& test) : conninfo(pg_conninfo()), schema(test) {}

  jobsched::PgOptions options(const PinnedClock& clock, jobsched::RetryPolicy retry = {}) const {
    jobsched::PgOptions pg;
    pg.schema = schema.name();
    pg.clock = [time = clock.time] { return *time; };
    pg.retry = retry;
    return pg;
  }

  jobsched::PgScheduler open(const PinnedClock& clock, jobsched::RetryPolicy retry = {}) {
    return jobsched::PgScheduler::open(conninfo, options(clock, retry));
  }

  std::string conninfo;
  TempSchema schema;
};

}  // namespace jobsched_test
