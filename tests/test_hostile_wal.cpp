// SPDX-License-Identifier: MIT
// Hostile -wal files: a job file whose newest commits are still in its -wal (never
// checkpointed, copied away while the writer was open, as after a crash), with the -wal
// corrupted: random bytes in frames, a bad frame checksum, a wrong salt, a truncated last
// frame, a garbage header, bytes past the last frame, and frames re-checksummed around
// garbage. Opening it gives a jobsched::Error or a working scheduler; where the -wal's own
// checksums reject a frame, the file is sound (integrity_check ok) and holds exactly the
// commits before that frame, and the scheduler adds, claims and completes on it. Each case
// runs in a forked child under a time limit, so a crash or a hang fails that case by name.
//
// JOBSCHED_HOSTILE_VERBOSE=1 prints one line per case.

#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/hostile.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_hostile_wal {

namespace {

using jobsched::Scheduler;
using jobsched_test::ChildReport;
using jobsched_test::TempFile;

constexpr double kNow = 1'700'000'000.0;
constexpr int kCheckpointedJobs = 40;
constexpr int kWalCommits = 16;
constexpr int kBigCommit = 8;  // this commit adds kBigCommitJobs jobs, the others one each
constexpr int kBigCommitJobs = 10;

constexpr std::size_t kWalHeaderSize = 32;
constexpr std::size_t kFrameHeaderSize = 24;

jobsched::Options pinned() {
  jobsched::Options options;
  options.clock = [] { return jobsched::from_unix_seconds(kNow); };
  options.busy_timeout = std::chrono::milliseconds(200);
  return options;
}

bool verbose() {
  const char* value = std::getenv("JOBSCHED_HOSTILE_VERBOSE");
  return value != nullptr && *value != '\0' && *value != '0';
}

/// Job `id`'s payload: sizes from 50 bytes to several pages, so that commits span one
/// frame or many (overflow pages).
std::string payload(std::int64_t id) {
  const auto size = static_cast<std::size_t>(50 + (id * 997) % 9000);
  return std::string(size, static_cast<char>('a' + id % 26)) + "#" + std::to_string(id);
}

jobsched::JobOptions due() {
  jobsched::JobOptions options;
  options.created_at = jobsched::from_unix_seconds(kNow - 10);
  options.starts_at = jobsched::from_unix_seconds(kNow - 5);
  return options;
}

// ---- The -wal's format (https://www.sqlite.org/fileformat.html#the_write_ahead_log) ---------

std::uint32_t get32(const std::string& bytes, std::size_t at) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[at + 3]));
}

void put32(std::string& bytes, std::size_t at, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i)
    bytes[at + i] = static_cast<char>((value >> (24 - 8 * i)) & 0xff);
}

struct WalLayout {
  std::size_t page_size = 0;
  std::size_t frames = 0;                  // whole frames in the file
  std::vector<std::size_t> commit_frames;  // frames whose "database size" field is set
};

std::size_t frame_offset(const WalLayout& layout, std::size_t frame) {
  return kWalHeaderSize + frame * (kFrameHeaderSize + layout.page_size);
}

WalLayout layout_of(const std::string& wal) {
  WalLayout layout;
  REQUIRE(wal.size() >= kWalHeaderSize);
  layout.page_size = get32(wal, 8);
  REQUIRE(layout.page_size >= 512);
  layout.frames = (wal.size() - kWalHeaderSize) / (kFrameHeaderSize + layout.page_size);
  for (std::size_t frame = 0; frame < layout.frames; ++frame) {
    if (get32(wal, frame_offset(layout, frame) + 4) != 0)
      layout.commit_frames.push_back(frame);
  }
  return layout;
}

/// SQLite's checksum of the -wal, carried from (s1, s2) over `size` bytes (a multiple of 8),
/// reading words in the byte order the header's magic names.
void wal_checksum(const std::string& bytes, std::size_t at, std::size_t size, std::uint32_t& s1,
                  std::uint32_t& s2) {
  const bool big_endian = (get32(bytes, 0) & 1) != 0;
  const auto word = [&](std::size_t p) {
    const std::uint32_t be = get32(bytes, p);
    return big_endian ? be
                      : (be >> 24) | ((be >> 8) & 0xff00) | ((be << 8) & 0xff0000) | (be << 24);
  };
  for (std::size_t i = at; i < at + size; i += 8) {
    s1 += word(i) + s2;
    s2 += word(i + 4) + s1;
  }
}

/// Makes every checksum in the -wal right again, so that SQLite takes in whatever its
/// frames now hold: the way to get garbage past the checksums.
std::string rechecksummed(std::string wal) {
  std::uint32_t s1 = 0;
  std::uint32_t s2 = 0;
  wal_checksum(wal, 0, 24, s1, s2);
  put32(wal, 24, s1);
  put32(wal, 28, s2);
  const WalLayout layout = layout_of(wal);
  for (std::size_t frame = 0; frame < layout.frames; ++frame) {
    const std::size_t at = frame_offset(layout, frame);
    put32(wal, at + 8, get32(wal, 16));  // the header's salts
    put32(wal, at + 12, get32(wal, 20));
    wal_checksum(wal, at, 8, s1, s2);
    wal_checksum(wal, at + kFrameHeaderSize, layout.page_size, s1, s2);
    put32(wal, at + 16, s1);
    put32(wal, at + 20, s2);
  }
  return wal;
}

// ---- The file: commits in the -wal, never checkpointed ---------------------------------------

struct WalFixture {
  std::string db;   // the main file, as the writer left it
  std::string wal;  // its -wal
  WalLayout layout;
  std::vector<std::int64_t> jobs_after;  // jobs stored after c commits of the -wal (c = 0: none)

  /// Jobs stored when the -wal is read up to (not including) `frame`: the commits whose
  /// commit frame comes before it.
  std::int64_t jobs_before_frame(std::size_t frame) const {
    std::size_t commits = 0;
    while (commits < layout.commit_frames.size() && layout.commit_frames[commits] < frame)
      ++commits;
    return jobs_after[commits];
  }
  std::int64_t all_jobs() const { return jobs_after.back(); }
};

WalFixture make_wal_fixture() {
  TempFile file("hostile-wal-source");
  {
    Scheduler scheduler = Scheduler::open(file.path(), pinned());
    jobsched_test::exec_raw(scheduler.handle(), "BEGIN");
    for (int i = 1; i <= kCheckpointedJobs; ++i)
      scheduler.add_job(payload(i), due());
    jobsched_test::exec_raw(scheduler.handle(), "COMMIT");
  }  // the last connection closes: checkpointed, the -wal removed
  WalFixture fixture;
  fixture.jobs_after.push_back(kCheckpointedJobs);
  Scheduler writer = Scheduler::open(file.path(), pinned());
  jobsched_test::exec_raw(writer.handle(), "PRAGMA wal_autocheckpoint = 0");
  std::int64_t id = kCheckpointedJobs;
  const auto add_next = [&] {
    ++id;
    REQUIRE(writer.add_job(payload(id), due()).id == id);
  };
  for (int commit = 1; commit <= kWalCommits; ++commit) {
    if (commit == kBigCommit) {
      jobsched_test::exec_raw(writer.handle(), "BEGIN");
      for (int i = 0; i < kBigCommitJobs; ++i)
        add_next();
      jobsched_test::exec_raw(writer.handle(), "COMMIT");
    } else {
      add_next();
    }
    fixture.jobs_after.push_back(id);
  }
  // Copied while the writer is still open: its commits are in the -wal only.
  fixture.db = jobsched_test::read_bytes(file.path());
  fixture.wal = jobsched_test::read_bytes(file.path() + "-wal");
  fixture.layout = layout_of(fixture.wal);
  REQUIRE(fixture.layout.commit_frames.size() == static_cast<std::size_t>(kWalCommits));
  REQUIRE(fixture.wal.size() == frame_offset(fixture.layout, fixture.layout.frames));
  REQUIRE(fixture.layout.frames > static_cast<std::size_t>(kWalCommits));  // some span frames
  REQUIRE(rechecksummed(fixture.wal) == fixture.wal);  // the checksum code is SQLite's
  return fixture;
}

// ---- The cases ---------------------------------------------------------------------------------

/// What a case may end in, besides a jobsched::Error from open.
enum class Expect {
  exactly,  // a sound file holding exactly `jobs` jobs: the commits the -wal's checksums keep
  anything  // every call works or throws a jobsched::Error (garbage got past the checksums)
};

struct WalCase {
  std::string name;
  std::string wal;
  Expect expect = Expect::exactly;
  std::int64_t jobs = 0;
};

/// In the child: the jobs must be 1..count with their payloads.
bool check_prefix(sqlite3* db, std::int64_t& count, ChildReport& report) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db,
                         "SELECT id, coalesce(data, (SELECT data FROM job_payload"
                         " WHERE job_id = job.id)) FROM job ORDER BY id",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    report.fail(std::string("cannot read the jobs: ") + sqlite3_errmsg(db));
    return false;
  }
  bool ok = true;
  count = 0;
  int rc = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    ++count;
    const std::int64_t id = sqlite3_column_int64(stmt, 0);
    const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, 1));
    const std::string bytes(data != nullptr ? data : "",
                            static_cast<std::size_t>(sqlite3_column_bytes(stmt, 1)));
    if (ok && (id != count || bytes != payload(id))) {
      report.fail("job " + std::to_string(id) + " is not the job committed as number " +
                  std::to_string(count));
      ok = false;
    }
  }
  if (rc != SQLITE_DONE) {
    report.fail(std::string("reading the jobs failed: ") + sqlite3_errstr(rc));
    ok = false;
  }
  sqlite3_finalize(stmt);
  return ok;
}

/// In the child: open the file and hold the scheduler to the case's promise.
void open_and_check(const std::string& path, const WalCase& c, ChildReport& report) {
  std::optional<Scheduler> scheduler;
  try {
    scheduler.emplace(Scheduler::open(path, pinned()));
  } catch (const jobsched::Error& error) {
    report.line("REFUSED " + std::to_string(error.code()) + " " + error.what());
    return;
  }
  const std::string integrity = jobsched_test::integrity_of(scheduler->handle());
  if (c.expect == Expect::anything) {
    const int errors = jobsched_test::exercise(*scheduler, jobsched::from_unix_seconds(kNow));
    report.line("OPENED integrity " + integrity + ", " + std::to_string(errors) +
                " calls threw a jobsched::Error");
    return;
  }
  if (integrity != "ok")
    report.fail("integrity_check: " + integrity);
  std::int64_t count = 0;
  check_prefix(scheduler->handle(), count, report);
  report.line("JOBS " + std::to_string(count));
  // A sound file works: every call, and they change what they should.
  try {
    if (scheduler->count_pending_jobs() != count)
      report.fail("count_pending_jobs is not " + std::to_string(count));
    const jobsched::Job added = scheduler->add_job("after", due());
    if (added.id != count + 1)
      report.fail("add_job gave id " + std::to_string(added.id));
    const auto claimed = scheduler->claim_next_job(jobsched::Seconds{30});
    if (!claimed || claimed->job.id != 1 || !scheduler->complete(claimed->claim))
      report.fail("claim and complete of job 1 did not work");
    scheduler.reset();
    Scheduler reopened = Scheduler::open(path, pinned());
    const std::optional<jobsched::Job> first = reopened.get_job(1);
    if (!reopened.get_job(count + 1) || !first || !first->is_completed())
      report.fail("the calls' changes are gone after reopening");
    if (jobsched_test::exercise(reopened, jobsched::from_unix_seconds(kNow)) != 0)
      report.fail("a call on a sound file threw a jobsched::Error");
    const std::string after = jobsched_test::integrity_of(reopened.handle());
    if (after != "ok")
      report.fail("integrity_check after the calls: " + after);
  } catch (const jobsched::Error& error) {
    report.fail(std::string("a sound file threw a jobsched::Error: ") + error.what());
  }
}

void run_case(const WalFixture& fixture, const WalCase& c, std::map<std::string, int>& outcomes) {
  TempFile file("hostile-wal");
  jobsched_test::write_bytes(file.path(), fixture.db);
  jobsched_test::write_bytes(file.path() + "-wal", c.wal);
  const std::vector<std::string> lines = jobsched_test::run_case_in_child(
      c.name, std::chrono::seconds(10),
      [&](ChildReport& report) { open_and_check(file.path(), c, report); });
  if (lines.empty())
    return;  // a hang or a crash, failed above
  const std::string& outcome = lines.front();
  if (verbose())
    std::cout << "  [hostile-wal] " << c.name << ": " << outcome << "\n";
  INFO("case: " << c.name << "; outcome: " << outcome);
  if (outcome.rfind("REFUSED", 0) == 0) {
    ++outcomes["refused with a jobsched::Error"];
  } else if (outcome.rfind("JOBS ", 0) == 0) {
    ++outcomes["sound, holding the commits the checksums keep"];
    CHECK(outcome == "JOBS " + std::to_string(c.jobs));
  } else {
    ++outcomes["opened, every call working or a jobsched::Error"];
    CHECK(outcome.rfind("OPENED", 0) == 0);
  }
}

std::vector<WalCase> wal_cases(const WalFixture& fixture) {
  const WalLayout& layout = fixture.layout;
  const std::size_t page = layout.page_size;
  const std::size_t last = layout.frames - 1;
  const std::int64_t none = fixture.jobs_after.front();
  const std::int64_t all = fixture.all_jobs();
  std::vector<WalCase> cases;
  const auto add = [&](std::string name, std::string wal, Expect expect, std::int64_t jobs) {
    cases.push_back(WalCase{std::move(name), std::move(wal), expect, jobs});
  };
  const auto frame_at = [&](std::size_t frame) { return frame_offset(layout, frame); };
  const auto flipped = [&](std::size_t at, unsigned char bit) {
    std::string wal = fixture.wal;
    wal[at] = static_cast<char>(wal[at] ^ bit);
    return wal;
  };
  // Frames to hit: the first, one inside the big commit, the last, and some between.
  const std::size_t big_commit_frame = layout.commit_frames[kBigCommit - 1];
  const std::vector<std::size_t> targets = {
      0, 1, big_commit_frame - 2, big_commit_frame, layout.frames / 2, last};

  add("intact", fixture.wal, Expect::exactly, all);
  std::mt19937 random(9);
  const auto pick = [&](std::size_t below) {
    return std::uniform_int_distribution<std::size_t>(0, below - 1)(random);
  };
  for (int seed = 1; seed <= 8; ++seed) {
    std::string wal = fixture.wal;
    const std::size_t frame =
        seed <= 2 ? targets[static_cast<std::size_t>(seed) * 2] : pick(layout.frames);
    for (std::size_t n = 1 + pick(32); n > 0; --n) {
      const std::size_t at = frame_at(frame) + kFrameHeaderSize + pick(page);
      wal[at] = static_cast<char>(wal[at] ^ static_cast<char>(1 + pick(255)));
    }
    add("random bytes in frame " + std::to_string(frame) + " (seed " + std::to_string(seed) + ")",
        wal, Expect::exactly, fixture.jobs_before_frame(frame));
  }
  for (const std::size_t frame : targets) {
    const std::string at = " of frame " + std::to_string(frame);
    add("a bad checksum" + at, flipped(frame_at(frame) + 16 + frame % 8, 0x10), Expect::exactly,
        fixture.jobs_before_frame(frame));
    add("a wrong salt-1" + at, flipped(frame_at(frame) + 8, 0x01), Expect::exactly,
        fixture.jobs_before_frame(frame));
    add("a wrong salt-2" + at, flipped(frame_at(frame) + 15, 0x80), Expect::exactly,
        fixture.jobs_before_frame(frame));
    add("cut before frame " + std::to_string(frame), fixture.wal.substr(0, frame_at(frame)),
        Expect::exactly, fixture.jobs_before_frame(frame));
  }
  add("the last frame cut in its page",
      fixture.wal.substr(0, frame_at(last) + kFrameHeaderSize + page / 2), Expect::exactly,
      fixture.jobs_before_frame(last));
  add("the last frame cut in its header", fixture.wal.substr(0, frame_at(last) + 10),
      Expect::exactly, fixture.jobs_before_frame(last));
  add("the last frame one byte short", fixture.wal.substr(0, fixture.wal.size() - 1),
      Expect::exactly, fixture.jobs_before_frame(last));
  add("an empty -wal", "", Expect::exactly, none);
  add("a -wal cut inside its header", fixture.wal.substr(0, 20), Expect::exactly, none);
  add("a -wal of its header only", fixture.wal.substr(0, kWalHeaderSize), Expect::exactly, none);
  {
    std::string wal = fixture.wal;
    for (std::size_t i = 0; i < kWalHeaderSize; ++i)
      wal[i] = static_cast<char>(pick(256));
    add("a garbage header", wal, Expect::exactly, none);
  }
  add("a bad magic number", flipped(3, 0x04), Expect::exactly, none);
  add("a bad header checksum", flipped(27, 0x01), Expect::exactly, none);
  add("a header naming another page size", flipped(10, 0x04), Expect::exactly, none);
  add("a header naming a page size that is no power of two", flipped(11, 0x01), Expect::exactly,
      none);
  {
    std::string wal = fixture.wal;
    for (std::size_t i = 0; i < page + page / 2; ++i)
      wal += static_cast<char>(pick(256));
    add("a -wal longer than valid: random bytes after the last frame", wal, Expect::exactly, all);
  }
  add("a -wal longer than valid: zeros after the last frame",
      fixture.wal + std::string(3 * (kFrameHeaderSize + page), '\0'), Expect::exactly, all);
  add("a -wal longer than valid: the first frame again after the last",
      fixture.wal + fixture.wal.substr(frame_at(0), kFrameHeaderSize + page), Expect::exactly, all);

  // Past the checksums: the frames say what they like, and SQLite believes them.
  // Seeds 1 and 2 hit anywhere in the page (mostly payload bytes), the others its first 64
  // bytes: the b-tree page header and cell pointers.
  for (int seed = 1; seed <= 6; ++seed) {
    std::string wal = fixture.wal;
    // The newest frame of its page: an older one is hidden by it.
    std::size_t frame = pick(layout.frames);
    for (std::size_t later = frame + 1; later < layout.frames; ++later) {
      if (get32(wal, frame_at(later)) == get32(wal, frame_at(frame)))
        frame = later;
    }
    const std::size_t span = seed <= 2 ? page : 64;
    for (std::size_t n = 1 + pick(16); n > 0; --n)
      wal[frame_at(frame) + kFrameHeaderSize + pick(span)] = static_cast<char>(pick(256));
    add("garbage in frame " + std::to_string(frame) + ", re-checksummed (seed " +
            std::to_string(seed) + ")",
        rechecksummed(wal), Expect::anything, 0);
  }
  {
    std::string wal = fixture.wal;
    put32(wal, frame_at(last) + 4, 0x7fffffff);
    add("a commit claiming 2^31 pages, re-checksummed", rechecksummed(wal), Expect::anything, 0);
  }
  {
    std::string wal = fixture.wal;
    put32(wal, frame_at(last) + 4, 1);
    add("a commit claiming one page, re-checksummed", rechecksummed(wal), Expect::anything, 0);
  }
  {
    std::string wal = fixture.wal;
    put32(wal, frame_at(1), 0);
    add("a frame for page 0, re-checksummed", rechecksummed(wal), Expect::anything, 0);
  }
  {
    std::string wal = fixture.wal;
    put32(wal, frame_at(1), 1);  // page 1: the schema
    add("a frame overwriting page 1, re-checksummed", rechecksummed(wal), Expect::anything, 0);
  }
  {
    std::string wal = fixture.wal;
    put32(wal, 8, static_cast<std::uint32_t>(page / 2));
    add("a header naming half the page size, re-checksummed", rechecksummed(wal), Expect::anything,
        0);
  }
  return cases;
}

}  // namespace

TEST_CASE(
    "a corrupt -wal holding commits ends in a jobsched Error or a sound file of its "
    "valid commits",
    "[hostile]") {
  const WalFixture fixture = make_wal_fixture();
  INFO("the -wal: " << fixture.layout.frames << " frames of " << fixture.layout.page_size
                    << " bytes, " << fixture.layout.commit_frames.size() << " commits, "
                    << fixture.all_jobs() << " jobs in all, " << kCheckpointedJobs
                    << " of them checkpointed");
  std::map<std::string, int> outcomes;
  const std::vector<WalCase> cases = wal_cases(fixture);
  for (const WalCase& c : cases)
    run_case(fixture, c, outcomes);
  std::string summary;
  for (const auto& [outcome, count] : outcomes)
    summary += " " + std::to_string(count) + " " + outcome + ";";
  INFO(cases.size() << " cases:" << summary);
  CHECK(outcomes["sound, holding the commits the checksums keep"] > 0);
  if (verbose())
    std::cout << "  [hostile-wal] " << cases.size() << " cases:" << summary << "\n";
}

}  // namespace test_hostile_wal
