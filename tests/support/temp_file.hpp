// SPDX-License-Identifier: MIT
#pragma once

// Test helpers: uniquely named database files, raw SQLite access for building fixtures,
// and a pinned clock.

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>

#include <jobsched/jobsched.hpp>

#ifndef JOBSCHED_TEST_TMPDIR
#define JOBSCHED_TEST_TMPDIR "/tmp"
#endif

namespace jobsched_test {

/// A database path unique to this process and call, removed (with its -wal, -shm and
/// -journal files) when the object dies, so tests can run in parallel.
class TempFile {
 public:
  explicit TempFile(const std::string& name) {
    static std::atomic<int> counter{0};
    path_ = std::string(JOBSCHED_TEST_TMPDIR) + "/" + name + "-" + std::to_string(::getpid()) +
            "-" + std::to_string(counter++) + ".db";
    remove_all();
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { remove_all(); }

  const std::string& path() const { return path_; }

 private:
  void remove_all() const {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::remove((path_ + suffix).c_str());
    }
  }
  std::string path_;
};

/// The whole content of a file, to compare before and after.
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using RawDb = std::unique_ptr<sqlite3, Closer>;

/// A raw SQLite connection, as the Python programs or a host would have.
inline RawDb open_raw(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open(path.c_str(), &db);
  RawDb owner(db);
  if (rc != SQLITE_OK)
    throw std::runtime_error("cannot open " + path);
  sqlite3_busy_timeout(db, 5000);
  return owner;
}

inline void exec_raw(sqlite3* db, const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "?";
    sqlite3_free(error);
    throw std::runtime_error("SQL failed: " + message + " in: " + sql);
  }
}

/// The first column of the first row of a query, as an integer (-1 when there is no row).
inline long long query_int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db));
  }
  long long value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW)
    value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return value;
}

/// A clock the test sets by hand.
struct PinnedClock {
  std::shared_ptr<jobsched::TimePoint> time =
      std::make_shared<jobsched::TimePoint>(jobsched::from_unix_seconds(1'700'000'000.0));

  jobsched::Options options() const {
    jobsched::Options options;
    options.clock = [time = time] { return *time; };
    return options;
  }
  void set(double unix_seconds) { *time = jobsched::from_unix_seconds(unix_seconds); }
  void advance(double seconds) { *time += jobsched::Seconds{seconds}; }
  jobsched::TimePoint now() const { return *time; }
};

inline jobsched::TimePoint at(double unix_seconds) {
  return jobsched::from_unix_seconds(unix_seconds);
}

/// The file's path, or ":memory:": for a test run on both.
inline std::string database(const TempFile& file, bool on_file) {
  return on_file ? file.path() : ":memory:";
}

/// Seconds since the Unix epoch of `time`.
inline double seconds(jobsched::TimePoint time) {
  return jobsched::to_unix_seconds(time);
}

/// A new job's times, the rest of its settings left at their defaults.
inline jobsched::JobOptions job_times(jobsched::TimePoint created, jobsched::TimePoint starts,
                                      std::optional<jobsched::TimePoint> expires = std::nullopt) {
  jobsched::JobOptions options;
  options.created_at = created;
  options.starts_at = starts;
  options.expires_at = expires;
  return options;
}

}  // namespace jobsched_test
