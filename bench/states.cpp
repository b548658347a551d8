// SPDX-License-Identifier: MIT
// Each call in each state a busy table is in, at N stored jobs, against the same call on a
// clean table of N free, due jobs: many claimed (live leases), leases run out, expired long
// ago, 90 % locked, 1,000 priority levels none due, 10,000 queues, a few completed among many,
// a big payload. Prints one line per (state, call, N): the median time of a call in µs.
//
// Usage: bench_states [sizes=1000,1000000] [repetitions=200]
// Environment: JOBSCHED_BENCH_DIR (where the job files are written, default ./bench-data).
//
// The files are written through the C API in one transaction and given the states that the
// library's own writes would store (a claim, a lock, a completion), so that a million jobs
// take seconds, not minutes.

#include "fixtures.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace {

using bench::Db;
using bench::now_seconds;
using Clock = std::chrono::steady_clock;

// Inserts n jobs: created a day before now, due over the hour before now (`due`) or starting
// in the hour after it; priority and queue from i.
void insert_jobs(const Db& db, long n, bool due, const std::function<int(long)>& priority,
                 const std::function<std::string(long)>& queue, long first = 0) {
  const bench::Stmt insert(db,
                           "INSERT INTO job (created_at, starts_at, priority, queue, state)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)");
  const bench::Stmt payload(db, "INSERT INTO job_payload (job_id, data) VALUES (?1, ?2)");
  const std::string data(32, 'x');
  for (long i = first; i < first + n; ++i) {
    const double offset = 3600.0 * static_cast<double>((i * 7919) % n) / static_cast<double>(n);
    sqlite3_bind_double(insert.get(), 1, now_seconds - 86400.0);
    sqlite3_bind_double(insert.get(), 2,
                        due ? now_seconds - 3600.0 + offset : now_seconds + 1.0 + offset);
    sqlite3_bind_int(insert.get(), 3, priority(i));
    const std::string q = queue(i);
    sqlite3_bind_text(insert.get(), 4, q.c_str(), static_cast<int>(q.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int(insert.get(), 5, due ? 1 : 0);  // its state at now: available or scheduled
    insert.step();
    insert.reset();
    sqlite3_bind_int64(payload.get(), 1, sqlite3_last_insert_rowid(db.get()));
    sqlite3_bind_blob(payload.get(), 2, data.data(), static_cast<int>(data.size()), SQLITE_STATIC);
    payload.step();
    payload.reset();
  }
}

int no_priority(long) {
  return 0;
}
std::string default_queue(long) {
  return "";
}

struct State {
  const char* name;
  // Fills a fresh file of the current schema with n jobs in this state; returns the time
  // the calls run at.
  std::function<double(const Db&, long)> fill;
  bool big_payload = false;
};

std::vector<State> states() {
  return {
      {"clean",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         return now_seconds;
       }},
      {"1% claimed (live leases)",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         // What claim_next_job writes, on the first 1 % in claim order.
         db.exec(("UPDATE job SET locked_at = " + std::to_string(now_seconds - 10) +
                  ", lease_until = " + std::to_string(now_seconds + 3600) +
                  ", claim_token = random(), attempts = 1, state = 2 WHERE id IN (SELECT id FROM"
                  " job WHERE state = 1 ORDER BY priority DESC, starts_at LIMIT " +
                  std::to_string(n / 100) + ")")
                     .c_str());
         return now_seconds;
       }},
      {"45% leases ran out, attempts left",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         db.exec(("UPDATE job SET locked_at = " + std::to_string(now_seconds - 100) +
                  ", lease_until = " + std::to_string(now_seconds - 40) +
                  ", claim_token = random(), attempts = 1, state = 2 WHERE id % 100 < 45")
                     .c_str());
         return now_seconds;  // every one of those leases ran out, and no write met them
       }},
      {"30% expired long ago",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         // Moved out (state 5) by the writes since they expired: jobs that started at least
         // a minute ago and expired a second after.
         db.exec(("UPDATE job SET expires_at = starts_at + 1, state = 5 WHERE id % 10 < 3"
                  " AND starts_at <= " + std::to_string(now_seconds - 60)).c_str());
         return now_seconds;
       }},
      {"90% locked",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         db.exec(("UPDATE job SET locked_at = " + std::to_string(now_seconds - 10) +
                  ", state = 4 WHERE id % 10 <> 0")
                     .c_str());
         return now_seconds;
       }},
      {"1,000 priority levels, none due",
       [](const Db& db, long n) {
         insert_jobs(db, n, false, [](long i) { return static_cast<int>(i % 1000); },
                     default_queue);
         return now_seconds;
       }},
      {"10,000 queues",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority,
                     [](long i) { return "queue " + std::to_string(i % 10000); });
         return now_seconds;
       }},
      {"0.1% completed",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         db.exec(("UPDATE job SET completed_at = " + std::to_string(now_seconds - 10) +
                  ", state = 6 WHERE id % 1000 = 0")
                     .c_str());
         return now_seconds;
       }},
      {"a 256 MiB payload",
       [](const Db& db, long n) {
         insert_jobs(db, n, true, no_priority, default_queue);
         // The first job in claim order carries it.
         db.exec("UPDATE job_payload SET data = zeroblob(268435456) WHERE job_id ="
                 " (SELECT id FROM job ORDER BY starts_at LIMIT 1)");
         return now_seconds;
       },
       true},
  };
}

std::filesystem::path build_file(const State& state, long n, double& at) {
  const std::filesystem::path path = bench::data_dir() / ("states-" + std::to_string(::getpid()) + ".db");
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(path.string() + suffix);
  jobsched::Scheduler::open(path.string());  // the current schema
  const Db db(path);
  db.exec("PRAGMA synchronous = OFF");
  db.exec("BEGIN");
  at = state.fill(db, n);
  db.exec("COMMIT");
  db.exec("ANALYZE");
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return path;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

// The median µs of `call` over `repetitions` runs.
double time_call(int repetitions, const std::function<void()>& call) {
  std::vector<double> micros;
  for (int i = 0; i < repetitions; ++i) {
    const auto start = Clock::now();
    call();
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return median(micros);
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_states: wrong answer: %s\n", what);
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<long> sizes;
  {
    std::istringstream list(argc > 1 ? argv[1] : "1000,1000000");
    for (std::string item; std::getline(list, item, ',');)
      sizes.push_back(std::stol(item));
  }
  const int repetitions = argc > 2 ? std::atoi(argv[2]) : 200;
  for (const State& state : states()) {
    for (const long n : sizes) {
      double at = 0;
      const std::filesystem::path path = build_file(state, n, at);
      jobsched::Options options;
      options.synchronous = jobsched::Synchronous::normal;
      auto scheduler = jobsched::Scheduler::open(path.string(), options);
      const auto when = jobsched::from_unix_seconds(at);
      const bool any_due = std::string(state.name) != "1,000 priority levels, none due";
      const int reps = state.big_payload ? 20 : repetitions;
      auto report = [&](const char* call, double micros) {
        std::printf("state \"%s\" %s %ld %.2f\n", state.name, call, n, micros);
        std::fflush(stdout);
      };
      if (state.big_payload) {
        // The big job itself, first in claim order: its claim writes what any claim writes,
        // then reads the payload it returns (after the commit). Then ordinary jobs beside it.
        // Its commit's moment, from SQLite's commit hook: the claim's own transaction.
        static Clock::time_point committed;
        sqlite3_commit_hook(
            scheduler.handle(), [](void*) { committed = Clock::now(); return 0; }, nullptr);
        const auto start = Clock::now();
        report("claim_the_big_job", time_call(1, [&] {
                 auto claimed = scheduler.claim_next_job(jobsched::Seconds{3600}, when);
                 check(claimed && claimed->job.data.bytes().size() == 268435456u, "the big job");
                 sqlite3_commit_hook(scheduler.handle(), nullptr, nullptr);
                 check(scheduler.complete(claimed->claim, when), "complete");
               }));
        report("the_big_job_claim_committed_after",
               std::chrono::duration<double, std::micro>(committed - start).count());
      } else {
        report("next_job", time_call(reps, [&] { check(scheduler.next_job(when).has_value(), "next_job"); }));
        report("seconds_until", time_call(reps, [&] {
                 check(scheduler.seconds_until_next_job(when).has_value(), "seconds_until");
               }));
        report("count", time_call(std::min(reps, 20), [&] {
                 check(scheduler.count_pending_jobs(when) > 0, "count");
               }));
      }
      // Never more claims than free jobs (a tenth of them are, when 90 % are locked).
      report("claim_complete", time_call(std::min<int>(reps, static_cast<int>(n / 20)), [&] {
               auto claimed = scheduler.claim_next_job(jobsched::Seconds{3600}, when);
               check(claimed.has_value() == any_due, "claim");
               if (claimed)
                 check(scheduler.complete(claimed->claim, when), "complete");
             }));
      if (std::string(state.name) == "0.1% completed") {
        report("delete_completed", time_call(1, [&] {
                 check(scheduler.delete_completed_jobs() >= n / 1000, "delete_completed");
               }));
      }
      for (const char* suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path.string() + suffix);
    }
  }
  return 0;
}
