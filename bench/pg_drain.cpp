// SPDX-License-Identifier: MIT
// PostgreSQL drain throughput: P processes, each with its own connection, empty a fresh
// schema of N due jobs, claiming and completing until nothing is left: with PgScheduler one
// job at a time ("jobsched") or 32 at a time ("batches"), or with hand-written libpq doing
// the same work on the same table ("libpq": one job at a time, "libpq-batches": 32), each
// claim and each completion its own transaction. Prints one line: jobs per second.
// Usage: bench_pg_drain CONNINFO [processes=1] [jobs=20000]
//                       [implementation=jobsched|batches|libpq|libpq-batches]

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <jobsched/postgres.hpp>

namespace {

constexpr int kBatch = 32;

// Hand-written libpq: the statements anyone would write for this table, prepared once.
class RawClaims {
 public:
  RawClaims(const std::string& conninfo, const std::string& schema)
      : connection_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(connection_) != CONNECTION_OK)
      throw std::runtime_error(PQerrorMessage(connection_));
    const std::string table = "\"" + schema + "\".job";
    prepare("claim",
            "UPDATE " + table + " SET locked_at = $1, lease_until = $1 + 60, attempts = attempts + 1,"
            " claim_token = nextval('\"" + schema + "\".claim_token') WHERE id IN (SELECT id FROM " +
                table + " WHERE completed_at IS NULL AND failed_at IS NULL AND starts_at <= $1"
                " AND (locked_at IS NULL OR lease_until <= $1) ORDER BY priority DESC, starts_at,"
                " id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, data, claim_token");
    prepare("complete", "UPDATE " + table + " SET completed_at = $1, locked_at = NULL,"
                        " lease_until = NULL, claim_token = NULL WHERE id = $2 AND claim_token = $3"
                        " AND completed_at IS NULL");
  }
  RawClaims(const RawClaims&) = delete;
  RawClaims& operator=(const RawClaims&) = delete;
  ~RawClaims() { PQfinish(connection_); }

  // Claims up to `limit` jobs and completes each in its own transaction; false when none.
  bool claim_and_complete(int limit) {
    const std::string now = std::to_string(jobsched::to_unix_seconds(jobsched::system_now()));
    const std::string count = std::to_string(limit);
    const char* claim_values[] = {now.c_str(), count.c_str()};
    PGresult* claimed = PQexecPrepared(connection_, "claim", 2, claim_values, nullptr, nullptr, 0);
    check(claimed, PGRES_TUPLES_OK);
    const int rows = PQntuples(claimed);
    for (int row = 0; row < rows; ++row) {
      const char* complete_values[] = {now.c_str(), PQgetvalue(claimed, row, 0),
                                       PQgetvalue(claimed, row, 2)};
      PGresult* done =
          PQexecPrepared(connection_, "complete", 3, complete_values, nullptr, nullptr, 0);
      check(done, PGRES_COMMAND_OK);
      PQclear(done);
    }
    PQclear(claimed);
    return rows > 0;
  }

  // As above, the claimed jobs completed in one transaction.
  bool claim_and_complete_together(int limit) {
    const std::string now = std::to_string(jobsched::to_unix_seconds(jobsched::system_now()));
    const std::string count = std::to_string(limit);
    const char* claim_values[] = {now.c_str(), count.c_str()};
    PGresult* claimed = PQexecPrepared(connection_, "claim", 2, claim_values, nullptr, nullptr, 0);
    check(claimed, PGRES_TUPLES_OK);
    const int rows = PQntuples(claimed);
    if (rows > 0) {
      exec("BEGIN");
      for (int row = 0; row < rows; ++row) {
        const char* complete_values[] = {now.c_str(), PQgetvalue(claimed, row, 0),
                                         PQgetvalue(claimed, row, 2)};
        PGresult* done =
            PQexecPrepared(connection_, "complete", 3, complete_values, nullptr, nullptr, 0);
        check(done, PGRES_COMMAND_OK);
        PQclear(done);
      }
      exec("COMMIT");
    }
    PQclear(claimed);
    return rows > 0;
  }

 private:
  void prepare(const char* name, const std::string& sql) {
    PGresult* result = PQprepare(connection_, name, sql.c_str(), 0, nullptr);
    check(result, PGRES_COMMAND_OK);
    PQclear(result);
  }
  void exec(const char* sql) {
    PGresult* result = PQexec(connection_, sql);
    check(result, PGRES_COMMAND_OK);
    PQclear(result);
  }
  void check(PGresult* result, ExecStatusType expected) {
    if (PQresultStatus(result) != expected) {
      const std::string message = PQresultErrorMessage(result);
      PQclear(result);
      throw std::runtime_error(message);
    }
  }
  PGconn* connection_;
};

void drain(const std::string& conninfo, const jobsched::PgOptions& options,
           const std::string& implementation) {
  if (implementation == "libpq" || implementation == "libpq-batches") {
    RawClaims raw(conninfo, options.schema);
    if (implementation == "libpq") {
      while (raw.claim_and_complete(1)) {
      }
    } else {
      while (raw.claim_and_complete_together(kBatch)) {
      }
    }
    return;
  }
  auto scheduler = jobsched::PgScheduler::open(conninfo, options);
  if (implementation == "jobsched") {
    while (const auto claimed = scheduler.claim_next_job(jobsched::Seconds{60}))
      scheduler.complete(claimed->claim);
    return;
  }
  for (;;) {
    const std::vector<jobsched::ClaimedJob> claimed = scheduler.claim_jobs(kBatch, jobsched::Seconds{60});
    if (claimed.empty())
      return;
    std::vector<jobsched::Claim> claims;
    claims.reserve(claimed.size());
    for (const jobsched::ClaimedJob& job : claimed)
      claims.push_back(job.claim);
    scheduler.complete_all(claims);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_pg_drain CONNINFO [processes] [jobs] [implementation]\n");
    return 2;
  }
  const std::string conninfo = argv[1];
  const int processes = argc > 2 ? std::atoi(argv[2]) : 1;
  const int jobs = argc > 3 ? std::atoi(argv[3]) : 20000;
  const std::string implementation = argc > 4 ? argv[4] : "jobsched";

  jobsched::PgOptions options;
  options.schema = "bench_" + std::to_string(::getpid());
  {
    auto scheduler = jobsched::PgScheduler::open(conninfo, options);
    std::vector<jobsched::NewJob> batch(1000);
    for (int added = 0; added < jobs; added += 1000) {
      batch.resize(static_cast<std::size_t>(std::min(1000, jobs - added)));
      for (jobsched::NewJob& job : batch)
        job.data = "payload";
      scheduler.add_jobs(batch);
    }
    PQclear(PQexec(scheduler.handle(), ("ANALYZE \"" + options.schema + "\".job").c_str()));
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int status = 0;
      try {
        drain(conninfo, options, implementation);
      } catch (const std::exception& error) {
        std::fprintf(stderr, "bench_pg_drain: %s\n", error.what());
        status = 1;
      }
      std::_Exit(status);
    }
    children.push_back(pid);
  }
  int failed = 0;
  for (const pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    failed += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  auto scheduler = jobsched::PgScheduler::open(conninfo, options);
  const std::int64_t left = scheduler.count_pending_jobs();
  PQclear(PQexec(scheduler.handle(),
                 ("SET client_min_messages = warning; DROP SCHEMA \"" + options.schema + "\" CASCADE").c_str()));
  if (failed != 0 || left != 0) {
    std::fprintf(stderr, "bench_pg_drain: %d processes failed, %lld jobs left\n", failed,
                 static_cast<long long>(left));
    return 1;
  }
  std::printf("%s processes=%d jobs=%d jobs_per_second=%.0f\n", implementation.c_str(),
              processes, jobs, jobs / seconds);
  return 0;
}
