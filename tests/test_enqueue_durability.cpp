// SPDX-License-Identifier: MIT
// Enqueue durability under process crashes: a child adds jobs as fast as it can and reports
// each id once add_job returned; the parent SIGKILLs it at a random moment, several rounds
// on one file. Every reported job is in the file afterwards, with its payload, the file
// passes integrity_check, and a fresh scheduler works on it. With synchronous FULL (the
// default) and NORMAL: both promise to survive a process crash (DESIGN.md, "Concurrency
// and delivery"); only FULL also promises power loss, which a process kill cannot show.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_enqueue_durability {

using jobsched::Scheduler;
using jobsched::Synchronous;
using jobsched_test::query_int;
using jobsched_test::TempFile;
using namespace std::chrono_literals;

namespace {

// What the child writes: a header (seq < 0), then one record per job added.
struct Added {
  std::int64_t id;
  std::int64_t seq;
};
constexpr std::int64_t kSynchronousIs = -1;  // id: PRAGMA synchronous as the child's connection has it
constexpr std::int64_t kJournalModeIsWal = -2;  // id: 1 when the journal mode is wal
constexpr std::int64_t kError = -3;             // id: the extended code

std::string payload(int round, std::int64_t seq) {
  return "round " + std::to_string(round) + " job " + std::to_string(seq);
}

std::string pragma_text(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  std::string value;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    value = text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }
  sqlite3_finalize(stmt);
  return value;
}

[[noreturn]] void add_until_killed(const std::string& path, Synchronous mode, int round, int out) {
  auto send = [out](std::int64_t id, std::int64_t seq) {
    const Added record{id, seq};
    if (::write(out, &record, sizeof record) != static_cast<ssize_t>(sizeof record))
      ::_exit(3);
  };
  try {
    jobsched::Options options;
    options.synchronous = mode;
    auto scheduler = Scheduler::open(path, options);
    send(query_int(scheduler.handle(), "PRAGMA synchronous"), kSynchronousIs);
    send(pragma_text(scheduler.handle(), "PRAGMA journal_mode") == "wal" ? 1 : 0,
         kJournalModeIsWal);
    for (std::int64_t seq = 0;; ++seq) {
      const jobsched::Job job = scheduler.add_job(payload(round, seq));
      send(job.id, seq);
    }
  } catch (const jobsched::Error& e) {
    send(e.extended_code(), kError);
  } catch (...) {
    send(-1, kError);
  }
  ::_exit(1);
}

std::string integrity(sqlite3* db) { return pragma_text(db, "PRAGMA integrity_check"); }

}  // namespace

TEST_CASE("every job whose add_job returned survives a SIGKILL of the adding process",
          "[durability]") {
  const Synchronous mode = GENERATE(Synchronous::full, Synchronous::normal);
  const char* mode_name = mode == Synchronous::full ? "full" : "normal";
  const std::int64_t expected_synchronous = mode == Synchronous::full ? 2 : 1;
  CAPTURE(mode_name);
  TempFile file(std::string("enqueue-durability-") + mode_name);
  constexpr int rounds = 5;
  std::mt19937_64 random(std::random_device{}());
  std::uniform_int_distribution<int> kill_after_ms(50, 300);

  std::map<std::int64_t, std::string> reported;  // id -> payload
  std::int64_t unreported_total = 0;
  std::string per_round;
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      jobsched_test::die_with_parent();
      ::close(fds[0]);
      add_until_killed(file.path(), mode, round, fds[1]);
    }
    ::close(fds[1]);

    // Read (so the child never blocks on a full pipe) until the moment to kill it: a random
    // 50-300 ms after its first add returned (opening, and creating the file in round 0,
    // can take a while under load; this way every round kills a child that is adding).
    const int delay = kill_after_ms(random);
    const auto first_add_deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
    std::optional<std::chrono::steady_clock::time_point> kill_at;
    std::string bytes;
    auto read_available = [&](int timeout_ms) {
      pollfd ready{fds[0], POLLIN, 0};
      if (::poll(&ready, 1, timeout_ms) <= 0)
        return true;
      char buffer[4096];
      const ssize_t got = ::read(fds[0], buffer, sizeof buffer);
      if (got <= 0)
        return false;
      bytes.append(buffer, static_cast<std::size_t>(got));
      return true;
    };
    bool open = true;
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (!kill_at && bytes.size() >= 3 * sizeof(Added))  // two headers, one add (or error)
        kill_at = now + std::chrono::milliseconds{delay};
      const auto until = kill_at ? *kill_at : first_add_deadline;
      if (!open || now >= until)
        break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      open = read_available(static_cast<int>(std::clamp<long long>(left.count(), 1, 10)));
    }
    if (!kill_at)
      FAIL_CHECK("gave up waiting: the child's first add did not return within 20 s");
    ::kill(pid, SIGKILL);
    const jobsched_test::ChildEnd end =
        jobsched_test::wait_for_child(pid, jobsched_test::Deadline(10s, "the killed child to end"));
    const jobsched_test::Deadline drained(10s, "the killed child's pipe to close");
    while (open && !drained.passed())
      open = read_available(drained.poll_ms());
    ::close(fds[0]);
    INFO("the child " << end.describe());
    CHECK_FALSE(open);
    // The child was killed adding, not stopped by an error.
    CHECK(end.signal == SIGKILL);
    REQUIRE(bytes.size() % sizeof(Added) == 0);

    std::int64_t adds = 0, last_id = 0, duplicate_ids = 0;
    bool ids_ascending = true;
    for (std::size_t at = 0; at < bytes.size(); at += sizeof(Added)) {
      Added record{};
      std::memcpy(&record, bytes.data() + at, sizeof record);
      if (record.seq == kSynchronousIs) {
        CHECK(record.id == expected_synchronous);
      } else if (record.seq == kJournalModeIsWal) {
        CHECK(record.id == 1);
      } else if (record.seq == kError) {
        FAIL_CHECK("the child failed with extended code " << record.id);
      } else {
        ++adds;
        ids_ascending = ids_ascending && record.id > last_id;
        last_id = record.id;
        if (!reported.emplace(record.id, payload(round, record.seq)).second)
          ++duplicate_ids;
      }
    }
    CHECK(ids_ascending);
    CHECK(duplicate_ids == 0);
    CHECK(adds > 0);

    // After each crash: every reported job is there, with its payload.
    auto scheduler = Scheduler::open(file.path());
    std::int64_t missing = 0, wrong = 0;
    for (const auto& [id, data] : reported) {
      const std::optional<jobsched::Job> job = scheduler.get_job(id);
      if (!job) {
        ++missing;
      } else if (job->data.bytes() != data) {
        ++wrong;
      }
    }
    CHECK(missing == 0);
    CHECK(wrong == 0);
    CHECK(integrity(scheduler.handle()) == "ok");
    // At most the one job the child committed but was killed before reporting.
    const std::int64_t stored = query_int(scheduler.handle(), "SELECT count(*) FROM job");
    const std::int64_t unreported = stored - static_cast<std::int64_t>(reported.size());
    CHECK(unreported >= 0);
    CHECK(unreported <= round + 1);
    unreported_total = unreported;
    per_round += " " + std::to_string(adds) + "@" + std::to_string(delay) + "ms";
  }
  WARN("enqueue durability (" << mode_name << "): " << reported.size()
                              << " jobs reported in " << rounds
                              << " rounds (adds@kill time:" << per_round
                              << "), committed but unreported " << unreported_total
                              << ", missing 0");

  // A fresh scheduler works: adds, claims and completes.
  auto scheduler = Scheduler::open(file.path());
  CHECK(scheduler.count_pending_jobs() == query_int(scheduler.handle(), "SELECT count(*) FROM job"));
  const jobsched::Job job = scheduler.add_job("after the crashes");
  CHECK(job.id > reported.rbegin()->first);
  const auto claimed = scheduler.claim_next_job(jobsched::Seconds{30});
  REQUIRE(claimed.has_value());
  CHECK(scheduler.complete(claimed->claim));
  CHECK(scheduler.get_job(claimed->job.id)->completed_at.has_value());
  CHECK(integrity(scheduler.handle()) == "ok");
}

}  // namespace test_enqueue_durability
