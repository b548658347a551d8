// SPDX-License-Identifier: MIT
// Drain throughput: P worker processes with T threads each empty a file of N due jobs,
// with jobsched's Worker or with hand-written C API threads (bench/baseline.hpp) that claim
// and complete until nothing is left; or ("batches") one thread per process calling
// claim_jobs(256) and complete_all in turn, the calls alone without a Worker around them:
// the most a Worker's threads could get from them.
// Usage: bench_drain [processes=1] [threads=4] [jobs=20000] [synchronous=normal|full]
//                    [implementation=jobsched|sqlite|batches]

#include <sys/wait.h>
#include <unistd.h>
#include "baseline.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

// One process of the baseline: each thread claims and completes with its own connection.
void drain_by_hand(const std::string& path, int threads, bool full) {
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&] {
      const bench::Db db(path);
      db.exec(full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
      const bench::RawClaims claims(db);
      for (;;) {
        const double now = jobsched::to_unix_seconds(jobsched::system_now());
        const auto claimed = claims.claim(now, 60);
        if (!claimed)
          return;
        claims.complete(*claimed, now);
      }
    });
  }
  for (auto& thread : running)
    thread.join();
}

void drain_with_worker(const std::string& path, int threads, const jobsched::Options& options) {
  jobsched::WorkerOptions worker_options;
  worker_options.threads = threads;
  worker_options.scheduler = options;
  jobsched::Worker worker(
      path, [](const jobsched::Job&) {}, worker_options);
  auto scheduler = jobsched::Scheduler::open(path, options);
  // Cheap to ask (counting would read the whole index every time): empty once every job
  // is done, claimed ones included.
  while (scheduler.seconds_until_next_job()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  worker.stop();
}

// One process of the calls alone: claim a batch, complete it, until nothing is due.
void drain_by_batches(const std::string& path, const jobsched::Options& options) {
  auto scheduler = jobsched::Scheduler::open(path, options);
  for (;;) {
    const std::vector<jobsched::ClaimedJob> claimed =
        scheduler.claim_jobs(256, jobsched::Seconds{60});
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
  const int processes = argc > 1 ? std::atoi(argv[1]) : 1;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  const int jobs = argc > 3 ? std::atoi(argv[3]) : 20000;
  const bool full = argc > 4 && std::string(argv[4]) == "full";
  const std::string implementation = argc > 5 ? argv[5] : "jobsched";
  const bool by_hand = implementation == "sqlite";
  const bool by_batches = implementation == "batches";
  if (!by_hand && !by_batches && implementation != "jobsched") {
    std::fprintf(stderr, "bench_drain: implementation must be jobsched, sqlite or batches, got '%s'\n",
                 implementation.c_str());
    return 2;
  }
  const std::string path = "bench-drain-" + std::to_string(::getpid()) + ".db";

  jobsched::Options options;
  options.synchronous = full ? jobsched::Synchronous::full : jobsched::Synchronous::normal;
  const double created = jobsched::to_unix_seconds(jobsched::system_now()) - 60;
  if (by_hand) {
    // The one-table form the hand-written SQL fits (bench/fixtures.hpp).
    const bench::Db db(path);
    db.exec("PRAGMA journal_mode = WAL");
    bench::create_schema(db, 4);
    db.exec("BEGIN");
    const bench::Stmt insert(db, "INSERT INTO job (data, created_at, starts_at) VALUES (?1, ?2, ?2)");
    for (int i = 0; i < jobs; ++i) {
      const std::string data = std::to_string(i);
      sqlite3_bind_text(insert.get(), 1, data.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_double(insert.get(), 2, created);
      insert.step();
      insert.reset();
    }
    db.exec("COMMIT");
  } else {
    auto scheduler = jobsched::Scheduler::open(path, options);
    std::vector<jobsched::NewJob> batch;
    for (int i = 0; i < jobs; ++i) {
      jobsched::JobOptions job;
      job.created_at = jobsched::from_unix_seconds(created);
      batch.push_back(jobsched::NewJob{jobsched::Payload(std::to_string(i)), job});
    }
    scheduler.add_jobs(std::move(batch));
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (by_hand) {
        drain_by_hand(path, threads, full);
      } else if (by_batches) {
        drain_by_batches(path, options);
      } else {
        drain_with_worker(path, threads, options);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children)
    ::waitpid(pid, nullptr, 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  long long left = 0;
  {
    const bench::Db db(path);
    const bench::Stmt count(db,
                            "SELECT count(*) FROM job WHERE completed_at IS NULL AND failed_at IS NULL");
    count.step();
    left = sqlite3_column_int64(count.get(), 0);
  }
  std::printf(
      "drain: %s, %d process(es) x %d thread(s), %d jobs, synchronous=%s: %.2f s, %.0f jobs/s"
      " (%lld left)\n",
      implementation.c_str(), processes, by_batches ? 1 : threads, jobs, full ? "full" : "normal", seconds,
      jobs / seconds, left);
  for (const char* suffix : {"", "-wal", "-shm"})
    std::remove((path + suffix).c_str());
  return left == 0 ? 0 : 1;
}
