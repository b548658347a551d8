// SPDX-License-Identifier: MIT
// Retention: Scheduler::prune deletes old completed, failed and cancelled jobs, each kind at
// its own age, with their payloads, in bounded batches that let other writers in; it is
// idempotent from many processes; the Worker runs it periodically; and the -wal file, grown
// behind a long reader, comes back under Options::wal_size_limit once the reader is gone.

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_retention {

namespace {

using jobsched::Options;
using jobsched::Payload;
using jobsched::PruneAges;
using jobsched::PruneResult;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::database;
using jobsched_test::Deadline;
using jobsched_test::query_int;
using jobsched_test::TempFile;

constexpr double kT = 1'700'000'000.0;  // when the jobs of a fixture settle
constexpr std::int64_t kBatch = jobsched::detail::prune_batch_jobs;

Options pinned(double now = kT) {
  Options options;
  options.clock = [now] { return at(now); };
  return options;
}

long long count(Scheduler& scheduler, const std::string& sql) {
  return query_int(scheduler.handle(), sql);
}
long long jobs(Scheduler& scheduler) {
  return count(scheduler, "SELECT count(*) FROM job");
}
long long payloads(Scheduler& scheduler) {
  return count(scheduler, "SELECT count(*) FROM job_payload");
}

jobsched::JobOptions in_queue(const std::string& queue, double created, int max_attempts = 20) {
  jobsched::JobOptions options;
  options.created_at = at(created);
  options.queue = queue;
  options.max_attempts = max_attempts;
  return options;
}

// `n` jobs completed at `when`.
void add_completed(Scheduler& s, int n, double when) {
  std::vector<jobsched::NewJob> batch;
  for (int i = 0; i < n; ++i)
    batch.push_back({Payload("completed"), in_queue("c", when - 100)});
  auto tx = s.transaction();
  for (const jobsched::Job& job : s.add_jobs(std::move(batch)))
    REQUIRE(s.complete_job(job.id, at(when)));
  tx.commit();
}

// `n` jobs failed for good (on their only attempt) at `when`.
void add_failed(Scheduler& s, int n, double when) {
  auto tx = s.transaction();
  for (int i = 0; i < n; ++i) {
    s.add_job(Payload("failed"), in_queue("f", when - 100, 1));
    const auto claimed = s.claim_next_job(Seconds{1000}, {"f"}, at(when - 1));
    REQUIRE(claimed);
    REQUIRE(s.fail(claimed->claim, "broke", at(when)));
  }
  tx.commit();
}

// `n` jobs cancelled at `when`.
void add_cancelled(Scheduler& s, int n, double when) {
  auto tx = s.transaction();
  for (int i = 0; i < n; ++i) {
    const jobsched::Job job = s.add_job(Payload("cancelled"), in_queue("x", when - 100));
    REQUIRE(s.cancel_job(job.id, "not wanted", at(when)));
  }
  tx.commit();
}

// `n` jobs claimed on their last attempt whose lease ends at `when`, not marked failed.
void add_abandoned(Scheduler& s, int n, double when) {
  auto tx = s.transaction();
  for (int i = 0; i < n; ++i) {
    s.add_job(Payload("abandoned"), in_queue("a", when - 100, 1));
    REQUIRE(s.claim_next_job(Seconds{10}, {"a"}, at(when - 10)));
  }
  tx.commit();
}

// Counts the job rows each transaction on `db` deleted, commit by commit.
class DeletesPerCommit {
 public:
  explicit DeletesPerCommit(sqlite3* db) : db_(db) {
    sqlite3_update_hook(db_, on_update, this);
    sqlite3_commit_hook(db_, on_commit, this);
  }
  DeletesPerCommit(const DeletesPerCommit&) = delete;
  DeletesPerCommit& operator=(const DeletesPerCommit&) = delete;
  ~DeletesPerCommit() {
    sqlite3_update_hook(db_, nullptr, nullptr);
    sqlite3_commit_hook(db_, nullptr, nullptr);
  }
  const std::vector<std::int64_t>& commits() const { return commits_; }
  std::atomic<int> committed{0};

 private:
  static void on_update(void* self, int operation, const char*, const char* table,
                        sqlite3_int64) {
    auto* me = static_cast<DeletesPerCommit*>(self);
    if (operation == SQLITE_DELETE && std::string(table) == "job")
      ++me->pending_;
  }
  static int on_commit(void* self) {
    auto* me = static_cast<DeletesPerCommit*>(self);
    me->commits_.push_back(me->pending_);
    me->pending_ = 0;
    me->committed.fetch_add(1);
    return 0;
  }
  sqlite3* db_;
  std::int64_t pending_ = 0;
  std::vector<std::int64_t> commits_;
};

std::uintmax_t wal_size(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path + "-wal", error);
  return error ? 0 : size;
}

}  // namespace

TEST_CASE("each kind is pruned at its own age, a job exactly at the boundary kept",
          "[retention]") {
  TempFile file("retention-ages");
  const bool on_file = GENERATE(true, false);
  CAPTURE(on_file);
  Scheduler s = Scheduler::open(database(file, on_file), pinned());
  add_completed(s, 3, kT);
  add_failed(s, 4, kT);
  add_cancelled(s, 5, kT);
  REQUIRE(jobs(s) == 12);
  REQUIRE(payloads(s) == 12);
  const PruneAges ages{Seconds{10}, Seconds{1000}, Seconds{100}};

  // Exactly at each boundary: nothing is older than its age yet.
  for (const double boundary : {kT + 10, kT + 100, kT + 1000}) {
    const PruneResult kept =
        s.prune(PruneAges{boundary == kT + 10 ? ages.completed : std::nullopt,
                          boundary == kT + 1000 ? ages.failed : std::nullopt,
                          boundary == kT + 100 ? ages.cancelled : std::nullopt},
                at(boundary));
    CHECK(kept.total() == 0);
  }
  CHECK(jobs(s) == 12);

  PruneResult result = s.prune(ages, at(kT + 10.5));
  CHECK(result.completed == 3);
  CHECK(result.failed == 0);
  CHECK(result.cancelled == 0);
  CHECK(count(s, "SELECT count(*) FROM job WHERE queue = 'c'") == 0);
  CHECK(jobs(s) == 9);
  CHECK(payloads(s) == 9);

  result = s.prune(ages, at(kT + 100.5));
  CHECK(result.completed == 0);
  CHECK(result.failed == 0);
  CHECK(result.cancelled == 5);
  CHECK(count(s, "SELECT count(*) FROM job WHERE queue = 'x'") == 0);
  CHECK(count(s, "SELECT count(*) FROM job WHERE queue = 'f'") == 4);
  CHECK(payloads(s) == 4);

  result = s.prune(ages, at(kT + 1000.5));
  CHECK(result.failed == 4);
  CHECK(result.cancelled == 0);
  CHECK(jobs(s) == 0);
  CHECK(payloads(s) == 0);
}

TEST_CASE("cancelled jobs and other failed jobs are told apart", "[retention]") {
  Scheduler s = Scheduler::open(":memory:", pinned());
  add_failed(s, 2, kT);
  add_cancelled(s, 3, kT);
  SECTION("failed only") {
    const PruneResult result = s.prune(PruneAges{std::nullopt, Seconds{0}, std::nullopt},
                                       at(kT + 1));
    CHECK(result.failed == 2);
    CHECK(result.cancelled == 0);
    CHECK(count(s, "SELECT count(*) FROM job WHERE cancelled_at IS NOT NULL") == 3);
  }
  SECTION("cancelled only") {
    const PruneResult result = s.prune(PruneAges{std::nullopt, std::nullopt, Seconds{0}},
                                       at(kT + 1));
    CHECK(result.failed == 0);
    CHECK(result.cancelled == 3);
    CHECK(count(s, "SELECT count(*) FROM job WHERE failed_at IS NOT NULL") == 2);
  }
  SECTION("failed jobs long kept among cancelled ones pruned, more than a batch of each") {
    add_failed(s, static_cast<int>(kBatch) + 5, kT - 50);
    add_cancelled(s, static_cast<int>(kBatch) + 7, kT - 50);
    const PruneResult result = s.prune(PruneAges{std::nullopt, Seconds{1000}, Seconds{10}},
                                       at(kT + 20));
    CHECK(result.failed == 0);
    CHECK(result.cancelled == kBatch + 10);
    CHECK(count(s, "SELECT count(*) FROM job WHERE cancelled_at IS NOT NULL") == 0);
    CHECK(count(s, "SELECT count(*) FROM job WHERE failed_at IS NOT NULL") == kBatch + 7);
  }
  // A completed job is never counted as failed, nor a failed one as completed.
  add_completed(s, 1, kT - 5000);
  const PruneResult none = s.prune(PruneAges{std::nullopt, std::nullopt, std::nullopt},
                                   at(kT + 1e6));
  CHECK(none.total() == 0);
}

TEST_CASE("a job whose lease ran out on its last attempt is pruned as failed at the lease end",
          "[retention]") {
  TempFile file("retention-abandoned");
  const bool on_file = GENERATE(true, false);
  Scheduler s = Scheduler::open(database(file, on_file), pinned());
  add_abandoned(s, 3, kT);
  // Not marked: its row still says leased on its last attempt.
  REQUIRE(count(s, "SELECT count(*) FROM job WHERE state = 3 AND failed_at IS NULL") == 3);
  const std::optional<jobsched::Job> job = s.get_job(1, at(kT + 1));
  REQUIRE(job);
  REQUIRE(job->failed_at == std::optional<jobsched::TimePoint>(at(kT)));

  const PruneAges ages{std::nullopt, Seconds{60}, std::nullopt};
  CHECK(s.prune(ages, at(kT + 60)).total() == 0);  // exactly at the boundary
  CHECK(s.prune(PruneAges{Seconds{0}, std::nullopt, Seconds{0}}, at(kT + 1e6)).total() == 0);
  const PruneResult result = s.prune(ages, at(kT + 60.5));
  CHECK(result.failed == 3);
  CHECK(result.cancelled == 0);
  CHECK(jobs(s) == 0);
  CHECK(payloads(s) == 0);
}

TEST_CASE("pruning again deletes nothing more", "[retention]") {
  Scheduler s = Scheduler::open(":memory:", pinned());
  add_completed(s, 10, kT);
  add_failed(s, 10, kT);
  add_cancelled(s, 10, kT);
  add_completed(s, 2, kT + 50);  // young
  const PruneAges ages{Seconds{10}, Seconds{10}, Seconds{10}};
  CHECK(s.prune(ages, at(kT + 20)).total() == 30);
  CHECK(s.prune(ages, at(kT + 20)).total() == 0);
  CHECK(jobs(s) == 2);
  CHECK(payloads(s) == 2);
}

TEST_CASE("bad ages are refused, naming the value, and nothing changes", "[retention]") {
  TempFile file("retention-bad");
  Scheduler s = Scheduler::open(file.path(), pinned());
  add_completed(s, 5, kT);
  add_failed(s, 5, kT);
  const std::int64_t changes = sqlite3_total_changes64(s.handle());
  const std::string before = jobsched_test::read_bytes(file.path());
  const std::int64_t version = s.data_version();
  auto refuses = [&](const PruneAges& ages, const std::string& named) {
    try {
      s.prune(ages, at(kT + 1e6));
      FAIL("a bad age was taken");
    } catch (const jobsched::InvalidArgumentError& error) {
      CHECK_THAT(error.what(), Catch::Matchers::Contains(named));
    }
  };
  refuses(PruneAges{Seconds{10}, Seconds{-5}, std::nullopt}, "PruneAges::failed");
  refuses(PruneAges{Seconds{10}, Seconds{-5}, std::nullopt}, "-5");
  refuses(PruneAges{Seconds{-0.25}, std::nullopt, std::nullopt}, "-0.25");
  refuses(PruneAges{std::nullopt, std::nullopt, Seconds{std::nan("")}}, "PruneAges::cancelled");
  refuses(PruneAges{Seconds{std::numeric_limits<double>::infinity()}, std::nullopt, std::nullopt},
          "inf");
  CHECK(sqlite3_total_changes64(s.handle()) == changes);
  CHECK(s.data_version() == version);
  CHECK(jobsched_test::read_bytes(file.path()) == before);
  CHECK(jobs(s) == 10);
  CHECK(payloads(s) == 10);

  // A bad now, too.
  CHECK_THROWS_AS(s.prune(PruneAges{Seconds{1}, {}, {}}, at(std::nan(""))),
                  jobsched::InvalidArgumentError);
  CHECK(jobs(s) == 10);

  // And bad options.
  Options options;
  options.wal_size_limit = -1;
  CHECK_THROWS_AS(Scheduler::open(":memory:", options), jobsched::InvalidArgumentError);
  jobsched::WorkerOptions worker;
  worker.prune = jobsched::PeriodicPrune{PruneAges{Seconds{-1}, {}, {}}};
  CHECK_THROWS_AS(jobsched::Worker(file.path(), [](const jobsched::Job&) {}, worker),
                  jobsched::InvalidArgumentError);
  worker.prune = jobsched::PeriodicPrune{PruneAges{Seconds{1}, {}, {}}, std::chrono::milliseconds{0}};
  CHECK_THROWS_AS(jobsched::Worker(file.path(), [](const jobsched::Job&) {}, worker),
                  jobsched::InvalidArgumentError);
  CHECK(jobs(s) == 10);
}

TEST_CASE("a read-only scheduler cannot prune", "[retention]") {
  TempFile file("retention-read-only");
  {
    Scheduler s = Scheduler::open(file.path(), pinned());
    add_completed(s, 2, kT);
  }
  Options options = pinned(kT + 100);
  options.read_only = true;
  Scheduler reader = Scheduler::open(file.path(), options);
  CHECK_THROWS_AS(reader.prune(PruneAges{Seconds{1}, {}, {}}), jobsched::ReadOnlyError);
  CHECK(jobs(reader) == 2);
}

TEST_CASE("inside the host's transaction a prune joins it", "[retention]") {
  Scheduler s = Scheduler::open(":memory:", pinned());
  add_completed(s, 3, kT);
  {
    auto tx = s.transaction();
    CHECK(s.prune(PruneAges{Seconds{1}, {}, {}}, at(kT + 2)).completed == 3);
    CHECK(jobs(s) == 0);
    tx.rollback();
  }
  CHECK(jobs(s) == 3);
}

TEST_CASE("a prune deletes at most a batch of jobs in each transaction", "[retention]") {
  TempFile file("retention-batches");
  const bool on_file = GENERATE(true, false);
  Scheduler s = Scheduler::open(database(file, on_file), pinned());
  const int each = static_cast<int>(2 * kBatch + kBatch / 2);
  add_completed(s, each, kT);
  add_failed(s, static_cast<int>(kBatch) + 1, kT);
  add_cancelled(s, static_cast<int>(kBatch), kT);
  add_abandoned(s, static_cast<int>(kBatch) + 2, kT);
  const DeletesPerCommit deletes(s.handle());
  const PruneResult result = s.prune(PruneAges{Seconds{1}, Seconds{1}, Seconds{1}}, at(kT + 20));
  CHECK(result.completed == each);
  CHECK(result.failed == 2 * kBatch + 3);
  CHECK(result.cancelled == kBatch);
  CHECK(jobs(s) == 0);
  CHECK(payloads(s) == 0);
  const std::vector<std::int64_t>& commits = deletes.commits();
  INFO("job rows deleted per commit: " << [&] {
    std::string text;
    for (const std::int64_t n : commits)
      text += std::to_string(n) + " ";
    return text;
  }());
  CHECK(*std::max_element(commits.begin(), commits.end()) <= kBatch);
  std::int64_t total = 0;
  for (const std::int64_t n : commits)
    total += n;
  CHECK(total == result.total());
  // Completed: 3 batches; failed and cancelled, one walk of 2001 + 1 rows: 3 batches;
  // abandoned: 2 batches.
  CHECK(commits.size() >= 8);
}

TEST_CASE("another connection writes between a prune's batches", "[retention]") {
  TempFile file("retention-interleave");
  {
    Scheduler setup = Scheduler::open(file.path(), pinned());
    add_completed(setup, static_cast<int>(6 * kBatch), kT);
  }
  Scheduler pruner = Scheduler::open(file.path(), pinned(kT + 100));
  DeletesPerCommit deletes(pruner.handle());
  std::atomic<bool> done{false};
  std::mutex seen_mutex;
  std::vector<int> seen;  // the pruner's commits so far, at each of the writer's commits
  jobsched_test::BoundedThread writer([&] {
    Scheduler other = Scheduler::open(file.path(), pinned(kT + 100));
    while (!done.load()) {
      other.add_job(Payload("new"));
      const std::lock_guard<std::mutex> lock(seen_mutex);
      seen.push_back(deletes.committed.load());
    }
  });
  // Let the writer start.
  jobsched_test::require_eventually(Deadline(std::chrono::seconds(10), "the writer's first add"),
                                    [&] {
                                      const std::lock_guard<std::mutex> lock(seen_mutex);
                                      return !seen.empty();
                                    });
  const PruneResult result = pruner.prune(PruneAges{Seconds{10}, {}, {}});
  done = true;
  writer.join(Deadline(std::chrono::seconds(30), "the writer to stop"));
  CHECK(result.completed == 6 * kBatch);
  const int batches = deletes.committed.load();
  CHECK(batches >= 6);
  int between = 0;
  for (const int commits : seen) {
    if (commits >= 1 && commits < batches)
      ++between;
  }
  INFO("the writer's commits: " << seen.size() << ", between batches: " << between);
  CHECK(between >= 3);
}

TEST_CASE("two processes pruning at once delete each job once", "[retention]") {
  TempFile file("retention-processes");
  constexpr int kEach = 3000;
  {
    Scheduler s = Scheduler::open(file.path(), pinned());
    add_completed(s, kEach, kT);
    add_failed(s, kEach, kT);
    add_cancelled(s, kEach, kT);
    add_abandoned(s, 500, kT);
    add_completed(s, 7, kT + 500);  // young
  }
  constexpr std::int64_t kKind = 1'000'000'000;
  const auto start = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  const jobsched_test::ProcessReports reports = jobsched_test::run_in_processes(
      2,
      [&](const auto& report) {
        Scheduler s = Scheduler::open(file.path(), pinned(kT + 100));
        std::this_thread::sleep_until(start);
        const PruneResult result = s.prune(PruneAges{Seconds{10}, Seconds{10}, Seconds{10}});
        // Again, as a second pass of a periodic prune: nothing is left.
        const PruneResult again = s.prune(PruneAges{Seconds{10}, Seconds{10}, Seconds{10}});
        return report(1 * kKind + result.completed) && report(2 * kKind + result.failed) &&
                       report(3 * kKind + result.cancelled) && again.total() == 0
                   ? 0
                   : 1;
      },
      std::chrono::seconds(60));
  REQUIRE(reports.exit_codes == std::vector<int>{0, 0});
  std::map<std::int64_t, std::int64_t> deleted;  // kind -> jobs, both processes together
  int reported = 0;
  for (const auto& entry : reports.times_reported) {
    deleted[entry.first / kKind] += (entry.first % kKind) * entry.second;
    reported += entry.second;
  }
  CHECK(reported == 6);
  CHECK(deleted[1] == kEach);
  CHECK(deleted[2] == kEach + 500);
  CHECK(deleted[3] == kEach);
  Scheduler s = Scheduler::open(file.path(), pinned(kT + 100));
  CHECK(jobs(s) == 7);
  CHECK(payloads(s) == 7);
}

TEST_CASE("a worker's periodic prune deletes old jobs and keeps young ones", "[retention]") {
  TempFile file("retention-worker");
  const double now = jobsched::to_unix_seconds(jobsched::system_now());
  {
    Scheduler s = Scheduler::open(file.path());
    add_completed(s, 20, now - 3600);
    add_failed(s, 5, now - 3600);
    add_completed(s, 3, now - 1);
  }
  jobsched::WorkerOptions options;
  options.prune = jobsched::PeriodicPrune{PruneAges{Seconds{600}, Seconds{600}, {}},
                                          std::chrono::milliseconds{20}};
  std::atomic<int> ran{0};
  jobsched::Worker worker(file.path(), [&](const jobsched::Job&) { ++ran; }, options);
  Scheduler s = Scheduler::open(file.path());
  jobsched_test::require_eventually(Deadline(std::chrono::seconds(10), "the worker's prune"),
                                    [&] { return jobs(s) == 3; });
  // It keeps working, and prunes what grows old later (a job completed "long ago" now).
  s.add_job(Payload("run me"));
  jobsched_test::require_eventually(Deadline(std::chrono::seconds(10), "the job to run"),
                                    [&] { return ran.load() == 1; });
  // Added and completed in one transaction: the worker must never see it due (it would run
  // it, completing it now, and the prune would rightly keep it).
  jobsched::Job late;
  {
    jobsched::Transaction transaction = s.transaction();
    late = s.add_job(Payload("done long ago"), in_queue("late", now - 7200));
    s.complete_job(late.id, at(now - 7000));
    transaction.commit();
  }
  jobsched_test::require_eventually(Deadline(std::chrono::seconds(10), "the next prune"),
                                    [&] { return !s.get_job(late.id); });
  worker.stop();
  CHECK(count(s, "SELECT count(*) FROM job WHERE completed_at < " + std::to_string(now - 600)) ==
        0);
  CHECK(payloads(s) == jobs(s));
}

TEST_CASE("the -wal file grown behind a long reader comes back under the limit once it ends",
          "[retention][wal]") {
  TempFile file("retention-wal");
  constexpr std::int64_t kLimit = 1024 * 1024;  // the stated size
  Options options = pinned(kT);
  options.wal_size_limit = kLimit;
  options.synchronous = jobsched::Synchronous::normal;
  Scheduler s = Scheduler::open(file.path(), options);
  add_completed(s, 10, kT - 1000);
  // A long reader: an open read transaction on a snapshot of its own.
  jobsched_test::RawDb reader = jobsched_test::open_raw(file.path());
  jobsched_test::exec_raw(reader.get(), "BEGIN");
  REQUIRE(query_int(reader.get(), "SELECT count(*) FROM job") == 10);

  const std::string payload(400, 'x');
  for (int round = 0; round < 6; ++round) {
    add_completed(s, 2000, kT - 500);
    std::vector<jobsched::NewJob> batch(2000, jobsched::NewJob{Payload(payload), {}});
    s.add_jobs(std::move(batch));
    // The checkpoint of a prune never waits for the reader.
    const auto started = std::chrono::steady_clock::now();
    CHECK(s.prune(PruneAges{Seconds{100}, {}, {}}, at(kT)).completed == 2000 + (round == 0 ? 10 : 0));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
  }
  const std::uintmax_t grown = wal_size(file.path());
  INFO("the -wal file behind the reader: " << grown << " bytes");
  CHECK(grown > static_cast<std::uintmax_t>(4 * kLimit));
  CHECK(query_int(reader.get(), "SELECT count(*) FROM job") == 10);  // its snapshot held

  SECTION("the next prune cuts it, whatever it deletes") {
    jobsched_test::exec_raw(reader.get(), "COMMIT");
    s.prune(PruneAges{Seconds{100}, {}, {}}, at(kT));
    CHECK(wal_size(file.path()) <= static_cast<std::uintmax_t>(kLimit));
  }
  SECTION("without a prune, the next writes cut it (journal_size_limit)") {
    jobsched_test::exec_raw(reader.get(), "COMMIT");
    for (int i = 0; i < 3; ++i)
      s.add_job(Payload("after"));
    CHECK(wal_size(file.path()) <= static_cast<std::uintmax_t>(kLimit));
  }
  SECTION("while the reader stays, a prune leaves it be and returns at once") {
    const auto started = std::chrono::steady_clock::now();
    s.prune(PruneAges{Seconds{100}, {}, {}}, at(kT));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
    CHECK(wal_size(file.path()) == grown);
    jobsched_test::exec_raw(reader.get(), "COMMIT");
  }
  SECTION("a reader on the newest snapshot: the truncation gives up at once") {
    jobsched_test::exec_raw(reader.get(), "COMMIT");
    jobsched_test::exec_raw(reader.get(), "BEGIN");
    REQUIRE(query_int(reader.get(), "SELECT count(*) FROM job") > 10);
    const auto started = std::chrono::steady_clock::now();
    s.prune(PruneAges{Seconds{100}, {}, {}}, at(kT));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
    jobsched_test::exec_raw(reader.get(), "COMMIT");
    s.prune(PruneAges{Seconds{100}, {}, {}}, at(kT));
    CHECK(wal_size(file.path()) <= static_cast<std::uintmax_t>(kLimit));
  }
}

}  // namespace test_retention
