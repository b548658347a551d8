// SPDX-License-Identifier: MIT
#pragma once

// Fault injection for the tests: a VFS shim that fails the Nth write, sync or truncate,
// and the helpers the fault sweeps share (a canonical dump of a job database, a fixture
// file with jobs in every state, a schema version 2 file as the Python successor wrote it).
//
// The shim ("jobsched-fault") sits on the default VFS and uses SQLite's public API only.
// Every file it opens is the real VFS's file, whose io methods are a copy of the real ones
// with xWrite, xSync and xTruncate wrapped. Open a database on it with the URI
// `file:<path>?vfs=jobsched-fault` (see uri()).

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "python_files.hpp"
#include "shim_vfs.hpp"
#include "temp_file.hpp"

namespace jobsched_test::faults {

// ---- The fault controller -------------------------------------------------------------------

/// The file operations a plan counts; or them together.
enum Kind : unsigned { write = 1u, sync = 2u, truncate = 4u, any = 7u };

/// Which operation fails, with what, and how often.
struct Plan {
  /// The kinds counted (and failed); `any` counts writes, syncs and truncates together.
  unsigned kinds = any;
  /// The counted operation that fails first, from 1.
  long n = 1;
  /// Fail every counted operation from the Nth on, rather than the Nth alone.
  bool persistent = false;
  /// The code returned; 0 for the kind's own (SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE).
  int code = 0;
};

inline std::string describe(const Plan& plan) {
  std::string kinds;
  if (plan.kinds == any) {
    kinds = "any";
  } else {
    if (plan.kinds & write)
      kinds += "write";
    if (plan.kinds & sync)
      kinds += kinds.empty() ? "sync" : "+sync";
    if (plan.kinds & truncate)
      kinds += kinds.empty() ? "truncate" : "+truncate";
  }
  std::string code = plan.code == 0             ? "IOERR_*"
                     : plan.code == SQLITE_FULL ? "FULL"
                                                : std::to_string(plan.code);
  return kinds + " #" + std::to_string(plan.n) + (plan.persistent ? "+" : "") + " -> " + code;
}

namespace detail {

struct State {
  std::atomic<bool> armed{false};
  std::atomic<unsigned> kinds{0};
  std::atomic<long> fail_at{0};
  std::atomic<bool> persistent{false};
  std::atomic<int> code{0};
  std::atomic<long> seen{0};      // counted operations since arm()
  std::atomic<long> injected{0};  // faults returned since arm()
};

inline State& state() {
  static State instance;
  return instance;
}

/// True when this operation of `kind` must fail; counts it.
inline bool should_fail(Kind kind) {
  State& s = state();
  if (!s.armed.load() || (s.kinds.load() & kind) == 0)
    return false;
  const long n = ++s.seen;
  const long at = s.fail_at.load();
  if (n == at || (s.persistent.load() && n > at)) {
    ++s.injected;
    return true;
  }
  return false;
}

inline int fault_code(int own) {
  const int code = state().code.load();
  return code != 0 ? code : own;
}

// The shim file: the real VFS's sqlite3_file, then (at an 8-byte aligned offset) this.
struct Extra {
  sqlite3_io_methods methods;      // a copy of the real methods, three of them wrapped
  const sqlite3_io_methods* real;  // the real methods
};

using shim::real_vfs;

inline Extra* extra(sqlite3_file* file) {
  return shim::extra<Extra>(file);
}

inline int x_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  if (should_fail(write))
    return fault_code(SQLITE_IOERR_WRITE);
  return extra(file)->real->xWrite(file, data, amount, offset);
}

inline int x_sync(sqlite3_file* file, int flags) {
  if (should_fail(sync))
    return fault_code(SQLITE_IOERR_FSYNC);
  return extra(file)->real->xSync(file, flags);
}

inline int x_truncate(sqlite3_file* file, sqlite3_int64 size) {
  if (should_fail(truncate))
    return fault_code(SQLITE_IOERR_TRUNCATE);
  return extra(file)->real->xTruncate(file, size);
}

inline int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                  int* out_flags) {
  sqlite3_vfs* real = real_vfs();
  const int rc = real->xOpen(real, name, file, flags, out_flags);
  if (file->pMethods != nullptr) {
    Extra* e = extra(file);
    e->real = file->pMethods;
    e->methods = *file->pMethods;
    e->methods.xWrite = &x_write;
    e->methods.xSync = &x_sync;
    e->methods.xTruncate = &x_truncate;
    file->pMethods = &e->methods;
  }
  return rc;
}

// xDelete and xAccess forward to the real VFS (the rest: shim_vfs.hpp).
inline int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs()->xDelete(real_vfs(), name, sync_dir);
}
inline int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs()->xAccess(real_vfs(), name, flags, out);
}
}  // namespace detail

inline constexpr const char* vfs_name = "jobsched-fault";

/// Registers the shim (not as the default VFS). Safe to call any number of times.
inline void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    static sqlite3_vfs vfs{};
    shim::register_vfs(vfs, vfs_name, static_cast<int>(sizeof(detail::Extra)),
                       {&detail::x_open, &detail::x_delete, &detail::x_access});
  });
}

inline std::string uri(const std::string& path) {
  return shim::uri(path, vfs_name);
}

/// Starts counting from zero; the plan's Nth counted operation (and later ones if
/// persistent) fails.
inline void arm(const Plan& plan) {
  detail::State& s = detail::state();
  s.armed = false;
  s.kinds = plan.kinds;
  s.fail_at = plan.n;
  s.persistent = plan.persistent;
  s.code = plan.code;
  s.seen = 0;
  s.injected = 0;
  s.armed = true;
}

/// Stops failing and counting; the counters keep their values.
inline void disarm() {
  detail::state().armed = false;
}

/// Counted operations since arm().
inline long seen() {
  return detail::state().seen.load();
}
/// Faults returned since arm().
inline long injected() {
  return detail::state().injected.load();
}

/// Disarms when it dies, so a failed REQUIRE never leaves faults on for other tests.
struct Disarm {
  Disarm() = default;
  Disarm(const Disarm&) = delete;
  Disarm& operator=(const Disarm&) = delete;
  ~Disarm() { disarm(); }
};

// ---- Shared helpers for the sweeps --------------------------------------------------------

inline constexpr double kNow = 1'700'000'000.0;

/// Options with the clock pinned at kNow and retries without jitter, so every run of an
/// operation writes the same bytes.
inline jobsched::Options pinned_options(jobsched::Synchronous synchronous) {
  jobsched::Options options;
  options.clock = [] { return jobsched::from_unix_seconds(kNow); };
  options.synchronous = synchronous;
  options.retry.jitter = 0.0;
  options.busy_timeout = std::chrono::milliseconds{2000};
  return options;
}

inline std::string hex(const void* data, int size) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (int i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

/// Every row of `sql`, each value as "type:value" (text and blobs in hex), columns named in
/// `masked` shown only as NULL or set.
inline std::string dump_rows(sqlite3* db, const std::string& sql,
                             const std::vector<std::string>& masked = {}) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    const std::string message = sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
    throw std::runtime_error("dump: prepare failed: " + message + " in " + sql);
  }
  std::string out;
  int rc = SQLITE_OK;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const int columns = sqlite3_column_count(stmt);
    for (int i = 0; i < columns; ++i) {
      if (i > 0)
        out += '|';
      const std::string name = sqlite3_column_name(stmt, i);
      out += name + "=";
      const int type = sqlite3_column_type(stmt, i);
      bool mask = false;
      for (const std::string& m : masked)
        mask = mask || m == name;
      if (type == SQLITE_NULL) {
        out += "null";
      } else if (mask) {
        out += "set";
      } else if (type == SQLITE_INTEGER) {
        out += "i:" + std::to_string(sqlite3_column_int64(stmt, i));
      } else if (type == SQLITE_FLOAT) {
        char buffer[40];
        std::snprintf(buffer, sizeof buffer, "r:%.17g", sqlite3_column_double(stmt, i));
        out += buffer;
      } else if (type == SQLITE_TEXT) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        out += "t:" + hex(text, sqlite3_column_bytes(stmt, i));
      } else {
        const void* blob = sqlite3_column_blob(stmt, i);
        out += "b:" + hex(blob, sqlite3_column_bytes(stmt, i));
      }
    }
    out += '\n';
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE)
    throw std::runtime_error("dump: step failed (" + std::to_string(rc) + ") in " + sql);
  return out;
}

inline bool has_table(sqlite3* db, const char* name) {
  return !dump_rows(db,
                    std::string("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '") +
                        name + "'")
              .empty();
}

/// The database as the sweeps compare it: the schema SQL, every job row, job_schema and
/// sqlite_sequence. Claim tokens (random) show only as set or NULL.
inline std::string dump(sqlite3* db) {
  std::string out = "[schema]\n" + dump_rows(db,
                                             "SELECT type, name, tbl_name, sql FROM sqlite_master"
                                             " ORDER BY type, name");
  if (has_table(db, "job"))
    out += "[job]\n" + dump_rows(db, "SELECT * FROM job ORDER BY id", {"claim_token"});
  if (has_table(db, "job_schema"))
    out += "[job_schema]\n" + dump_rows(db, "SELECT * FROM job_schema ORDER BY key");
  if (has_table(db, "sqlite_sequence"))
    out += "[sqlite_sequence]\n" + dump_rows(db, "SELECT * FROM sqlite_sequence ORDER BY name");
  return out;
}

/// `PRAGMA integrity_check`'s answer, joined ("ok" when the file is sound).
inline std::string integrity(sqlite3* db) {
  std::string out;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return std::string("prepare failed: ") + sqlite3_errmsg(db);
  }
  int rc = SQLITE_OK;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (!out.empty())
      out += "; ";
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    out += text != nullptr ? reinterpret_cast<const char*>(text) : "NULL";
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE)
    out += " (step failed: " + std::to_string(rc) + ")";
  return out;
}

/// What the operations of a sweep act on in the fixture file.
struct FixtureIds {
  jobsched::Claim claim;       // a live claim, lease until kNow + 3600
  std::int64_t future_id = 0;  // pending, not due
  std::int64_t completed_count = 0;
  std::int64_t expired_count = 0;
};

inline jobsched::Payload fixture_payload(int i, std::size_t size = 200) {
  std::string bytes(size, '\0');
  for (std::size_t k = 0; k < size; ++k)
    bytes[k] = static_cast<char>((static_cast<std::size_t>(i) * 31u + k * 7u) & 0xff);
  return jobsched::Payload(bytes);
}

/// Writes a current-version job database at `path` (closed, so checkpointed) with a claimed
/// job, due and future pending jobs, completed jobs, expired jobs and a failed one, spread
/// over several pages, and the largest id deleted.
inline FixtureIds write_fixture(const std::string& path) {
  FixtureIds ids;
  jobsched::Scheduler scheduler =
      jobsched::Scheduler::open(path, pinned_options(jobsched::Synchronous::normal));
  using jobsched_test::at;
  using jobsched_test::job_times;
  // The claimed job: the only due job when the claim is made.
  scheduler.add_job(fixture_payload(0), job_times(at(kNow - 300), at(kNow - 300)));
  auto claimed = scheduler.claim_next_job(jobsched::Seconds{3600.0}, at(kNow));
  if (!claimed)
    throw std::runtime_error("fixture: nothing to claim");
  ids.claim = claimed->claim;
  for (int i = 1; i <= 40; ++i) {
    const double created = kNow - 1000 + i;
    switch (i % 4) {
      case 0:  // due
        scheduler.add_job(fixture_payload(i), job_times(at(created), at(created + 10)));
        break;
      case 1: {  // future
        const jobsched::Job job =
            scheduler.add_job(fixture_payload(i), job_times(at(created), at(kNow + 500 + i)));
        if (ids.future_id == 0)
          ids.future_id = job.id;
        break;
      }
      case 2: {  // completed
        const jobsched::Job job =
            scheduler.add_job(fixture_payload(i), job_times(at(created), at(created)));
        scheduler.complete_job(job.id, at(created + 1));
        ++ids.completed_count;
        break;
      }
      default:  // expired
        scheduler.add_job(fixture_payload(i), job_times(at(created), at(created), at(kNow - 5)));
        ++ids.expired_count;
        break;
    }
  }
  // A text payload with a NUL, and a NULL payload, both due later.
  scheduler.add_job(jobsched::Payload::text(std::string("t\0x", 3)),
                    job_times(at(kNow), at(kNow + 50)));
  scheduler.add_job(jobsched::Payload(), job_times(at(kNow), at(kNow + 60)));
  const jobsched::Job last = scheduler.add_job(fixture_payload(99), job_times(at(kNow), at(kNow)));
  scheduler.delete_job(last.id);
  return ids;
}

/// Writes a job.db as the Python successor left it: schema version 2, WAL, a few jobs of
/// every storage class (one locked), the largest id deleted.
inline void write_v2_fixture(const std::string& path) {
  auto owner = jobsched_test::open_raw(path);
  sqlite3* db = owner.get();
  jobsched_test::exec_raw(db, "PRAGMA journal_mode = WAL");
  jobsched_test::write_python_schema(db, 2);
  jobsched_test::exec_raw(
      db,
      "BEGIN;"
      "INSERT INTO job (data, created_at, starts_at) VALUES ('text', 0, 0);"
      "INSERT INTO job (data, created_at, starts_at, completed_at)"
      " VALUES (x'00ff00', 1699999000.5, 1699999100.25, 1699999200.125);"
      "INSERT INTO job (data, created_at, starts_at, expires_at) VALUES (42, 1699999000,"
      " 1699999050, 1699999990);"
      "INSERT INTO job (data, created_at, starts_at, locked_at) VALUES (3.25, 1699999999,"
      " 1700000120, 1699999998.5);"
      "INSERT INTO job (data, created_at, starts_at) VALUES (NULL, 1699999990, 1699999995);"
      "INSERT INTO job (data, created_at, starts_at) VALUES (x'', 1700000000, 1700000030);"
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)"
      " INSERT INTO job (data, created_at, starts_at)"
      " SELECT zeroblob(150) || i, 1699999000 + i, 1699999500 + i FROM n;"
      "INSERT INTO job (data, created_at, starts_at) VALUES (x'dead', 1, 1);"
      "DELETE FROM job WHERE id = (SELECT max(id) FROM job);"
      "COMMIT;");
}

}  // namespace jobsched_test::faults
