// SPDX-License-Identifier: MIT
#pragma once

// Power loss for the tests: a VFS shim ("jobsched-powerloss", on the default VFS, SQLite's
// public API only) that models what a disk holds after the power fails. SIGKILL cannot tell
// synchronous=FULL from NORMAL (the kernel keeps every write of a killed process); this can.
//
// The model. During a session (begin() to end()), the shim keeps for every file it opens
// (main database, -wal, -journal) its durable image, the content as of its last successful
// xSync, and the writes and truncates issued since, in their order across all files. The
// cut is the Nth write or sync counted across all files (so it lands inside open, migration,
// commits, checkpoints and close): that write is in flight (it may land whole, torn or not
// at all), that sync does not finish. From the cut on, every I/O through the shim fails
// with SQLITE_IOERR_*, so the code under test stops. Once every connection has closed,
// disk_after() computes each file's content after power comes back under a Policy, and
// restore() writes those images over the real files and deletes the -shm (shared memory
// does not survive power loss); the test then reopens the files with the normal VFS.
//
// Choices, each the simplest honest one:
// - A file that existed when the session began is durable as it was.
// - A file created during the session survives the cut holding its durable image: empty if
//   it was never synced (as if its directory entry were always durable; SQLite syncs the
//   directory after creating a journal or WAL, never after creating the main file).
// - A delete is durable at once, as in SQLite's own crash simulation. (A rollback journal
//   coming back after its delete is what synchronous=EXTRA guards against; not modelled.)
// - Truncates are pending until the file's next sync, like writes.
// - While running, reads and sizes pass through to the real file, which holds every write
//   before the cut.
// - Syncs are not passed on to the real disk: the model alone decides what is durable, and a
//   real fsync per commit would only cost time.
// - xDeviceCharacteristics and xSectorSize are the real VFS's (on this Linux: 4096-byte
//   sectors and SQLITE_IOCAP_POWERSAFE_OVERWRITE alone). Every policy honours that flag: a
//   write can only change the bytes it covers, so tearing is at 512 bytes inside the write.
// - With Plan::syncs_ignored the disk lies: xSync reports success and makes nothing durable.
//   It exists to prove that the checks can fail.

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "shim_vfs.hpp"
#include "temp_file.hpp"

namespace jobsched_test::powerloss {

/// What survives of the writes and truncates not yet synced when the power fails.
enum class Policy {
  none,            // nothing: each file holds its durable image
  torn_prefix,     // the first k in issue order, across files; the next one torn at 512 bytes
  random_sectors,  // a random subset of their 512-byte sectors (and of the truncates)
  all,             // all of them, the in-flight write included
};

inline constexpr Policy kPolicies[] = {Policy::none, Policy::torn_prefix, Policy::random_sectors,
                                       Policy::all};

inline const char* name(Policy policy) {
  switch (policy) {
    case Policy::none:
      return "none";
    case Policy::torn_prefix:
      return "torn-prefix";
    case Policy::random_sectors:
      return "random-sectors";
    case Policy::all:
      return "all";
  }
  return "?";
}

/// Where the power fails, and how honest the disk is.
struct Plan {
  /// The counted write or sync (from 1, across all files) during which the power fails;
  /// 0 never cuts (the session only counts).
  long cut_at = 0;
  /// xSync succeeds without making anything durable.
  bool syncs_ignored = false;
};

/// A write (or truncate) issued since the file's last sync.
struct Pending {
  std::uint64_t order = 0;  // issue order across all files
  bool truncate = false;
  sqlite3_int64 offset = 0;  // a truncate's new size
  std::string bytes;
};

/// One file as the disk has it at the cut.
struct FileState {
  bool exists = true;  // false once deleted
  std::string durable;
  std::vector<Pending> pending;
};

/// Every file the session touched, by the name SQLite opened it with.
using Disk = std::map<std::string, FileState>;

/// Each file's content after the power comes back; empty when the file is gone.
using Images = std::map<std::string, std::optional<std::string>>;

inline constexpr sqlite3_int64 kSector = 512;

namespace detail {

struct Session {
  std::mutex mutex;
  bool active = false;
  Plan plan;
  long counted = 0;
  bool cut = false;
  std::uint64_t next_order = 0;
  int open_files = 0;  // through the shim, in a session or not
  Disk files;
};

inline Session& session() {
  static Session instance;
  return instance;
}

// The shim file: the real VFS's sqlite3_file, then (8-byte aligned) this.
struct Extra {
  sqlite3_io_methods methods;      // a copy of the real methods, most of them wrapped
  const sqlite3_io_methods* real;  // the real methods
  FileState* state;                // the modelled file; null when untracked
};

using shim::real_vfs;

inline Extra* extra(sqlite3_file* file) {
  return shim::extra<Extra>(file);
}

inline void apply_op(std::string& image, const Pending& op) {
  if (op.truncate) {
    image.resize(static_cast<std::size_t>(op.offset));
    return;
  }
  const auto begin = static_cast<std::size_t>(op.offset);
  if (image.size() < begin + op.bytes.size())
    image.resize(begin + op.bytes.size(), '\0');
  image.replace(begin, op.bytes.size(), op.bytes);
}

// The part of `op` in sector-aligned piece `index` (0-based from the write's first byte).
inline std::pair<std::size_t, std::size_t> piece(const Pending& op, std::size_t index) {
  const sqlite3_int64 first_end = (op.offset / kSector + 1) * kSector;
  const sqlite3_int64 begin =
      index == 0 ? op.offset : first_end + static_cast<sqlite3_int64>(index - 1) * kSector;
  const sqlite3_int64 end =
      std::min<sqlite3_int64>(index == 0 ? first_end : begin + kSector,
                              op.offset + static_cast<sqlite3_int64>(op.bytes.size()));
  return {static_cast<std::size_t>(begin - op.offset), static_cast<std::size_t>(end - begin)};
}

inline std::size_t pieces(const Pending& op) {
  if (op.truncate || op.bytes.empty())
    return 1;
  const sqlite3_int64 end = op.offset + static_cast<sqlite3_int64>(op.bytes.size());
  return static_cast<std::size_t>((end - 1) / kSector - op.offset / kSector + 1);
}

// Applies the pieces of `op` that `kept` marks.
inline void apply_pieces(std::string& image, const Pending& op, const std::vector<bool>& kept) {
  if (op.truncate || op.bytes.empty()) {
    if (kept[0])
      apply_op(image, op);
    return;
  }
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (!kept[i])
      continue;
    const auto [at, size] = piece(op, i);
    Pending part;
    part.offset = op.offset + static_cast<sqlite3_int64>(at);
    part.bytes = op.bytes.substr(at, size);
    apply_op(image, part);
  }
}

inline void record(FileState* state, Pending op) {
  if (state == nullptr)
    return;
  op.order = session().next_order++;
  state->pending.push_back(std::move(op));
}

// Counts one write or sync; true when the power fails during it.
inline bool count_and_cut() {
  Session& s = session();
  ++s.counted;
  if (s.plan.cut_at != 0 && s.counted == s.plan.cut_at) {
    s.cut = true;
    return true;
  }
  return false;
}

inline bool powered_off() {
  return session().active && session().cut;
}

inline int x_close(sqlite3_file* file) {
  const sqlite3_io_methods* real = extra(file)->real;
  const int rc = real->xClose(file);
  std::lock_guard<std::mutex> lock(session().mutex);
  --session().open_files;
  return rc;
}

inline int x_read(sqlite3_file* file, void* data, int amount, sqlite3_int64 offset) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off())
      return SQLITE_IOERR_READ;
  }
  return extra(file)->real->xRead(file, data, amount, offset);
}

inline int x_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  Session& s = session();
  std::lock_guard<std::mutex> lock(s.mutex);
  Extra* e = extra(file);
  if (!s.active)
    return e->real->xWrite(file, data, amount, offset);
  if (s.cut)
    return SQLITE_IOERR_WRITE;
  Pending op;
  op.offset = offset;
  op.bytes.assign(static_cast<const char*>(data), static_cast<std::size_t>(amount));
  if (count_and_cut()) {
    record(e->state, std::move(op));  // in flight: the policy decides what of it lands
    return SQLITE_IOERR_WRITE;
  }
  const int rc = e->real->xWrite(file, data, amount, offset);
  if (rc == SQLITE_OK)
    record(e->state, std::move(op));
  return rc;
}

inline int x_truncate(sqlite3_file* file, sqlite3_int64 size) {
  Session& s = session();
  std::lock_guard<std::mutex> lock(s.mutex);
  Extra* e = extra(file);
  if (!s.active)
    return e->real->xTruncate(file, size);
  if (s.cut)
    return SQLITE_IOERR_TRUNCATE;
  const int rc = e->real->xTruncate(file, size);
  if (rc == SQLITE_OK) {
    Pending op;
    op.truncate = true;
    op.offset = size;
    record(e->state, std::move(op));
  }
  return rc;
}

inline int x_sync(sqlite3_file* file, int flags) {
  Session& s = session();
  std::lock_guard<std::mutex> lock(s.mutex);
  Extra* e = extra(file);
  if (!s.active)
    return e->real->xSync(file, flags);
  if (s.cut || count_and_cut())
    return SQLITE_IOERR_FSYNC;
  if (!s.plan.syncs_ignored && e->state != nullptr) {
    for (const Pending& op : e->state->pending)
      apply_op(e->state->durable, op);
    e->state->pending.clear();
  }
  return SQLITE_OK;
}

inline int x_file_size(sqlite3_file* file, sqlite3_int64* size) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off())
      return SQLITE_IOERR_FSTAT;
  }
  return extra(file)->real->xFileSize(file, size);
}

inline int x_lock(sqlite3_file* file, int level) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off())
      return SQLITE_IOERR_LOCK;
  }
  return extra(file)->real->xLock(file, level);
}

inline int x_check_reserved_lock(sqlite3_file* file, int* out) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off())
      return SQLITE_IOERR_CHECKRESERVEDLOCK;
  }
  return extra(file)->real->xCheckReservedLock(file, out);
}

inline int x_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off()) {
      *out = nullptr;
      return SQLITE_IOERR_SHMMAP;
    }
  }
  return extra(file)->real->xShmMap(file, region, size, extend, out);
}

inline int x_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off()) {
      *out = nullptr;  // SQLite then reads with xRead, which fails
      return SQLITE_OK;
    }
  }
  return extra(file)->real->xFetch(file, offset, amount, out);
}

// The modelled state for a file SQLite just opened; `existed` says whether it was there
// before this open.
inline FileState* track(const std::string& name, bool existed, sqlite3_file* file,
                        const sqlite3_io_methods* real) {
  Session& s = session();
  auto found = s.files.find(name);
  if (found != s.files.end()) {
    if (!found->second.exists) {  // deleted earlier, created again now
      found->second = FileState{};
    }
    return &found->second;
  }
  FileState state;
  if (existed) {  // not seen at begin(): durable as it is now
    sqlite3_int64 size = 0;
    if (real->xFileSize(file, &size) == SQLITE_OK && size > 0) {
      state.durable.resize(static_cast<std::size_t>(size));
      if (real->xRead(file, state.durable.data(), static_cast<int>(size), 0) != SQLITE_OK)
        state.durable.clear();
    }
  }
  return &s.files.emplace(name, std::move(state)).first->second;
}

inline int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags,
                  int* out_flags) {
  Session& s = session();
  std::lock_guard<std::mutex> lock(s.mutex);
  sqlite3_vfs* real = real_vfs();
  if (powered_off()) {
    file->pMethods = nullptr;
    return SQLITE_IOERR;
  }
  const bool modelled =
      s.active && name != nullptr && (flags & SQLITE_OPEN_DELETEONCLOSE) == 0 &&
      (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) != 0;
  int existed = 0;
  if (modelled && real->xAccess(real, name, SQLITE_ACCESS_EXISTS, &existed) != SQLITE_OK)
    existed = 0;
  const int rc = real->xOpen(real, name, file, flags, out_flags);
  if (file->pMethods != nullptr) {
    Extra* e = extra(file);
    e->real = file->pMethods;
    e->methods = *file->pMethods;
    e->methods.xClose = &x_close;
    e->methods.xRead = &x_read;
    e->methods.xWrite = &x_write;
    e->methods.xTruncate = &x_truncate;
    e->methods.xSync = &x_sync;
    e->methods.xFileSize = &x_file_size;
    e->methods.xLock = &x_lock;
    e->methods.xCheckReservedLock = &x_check_reserved_lock;
    if (e->real->iVersion >= 2 && e->real->xShmMap != nullptr)
      e->methods.xShmMap = &x_shm_map;
    if (e->real->iVersion >= 3 && e->real->xFetch != nullptr)
      e->methods.xFetch = &x_fetch;
    e->state = nullptr;
    if (rc == SQLITE_OK && modelled)
      e->state = track(name, existed != 0, file, e->real);
    file->pMethods = &e->methods;
    ++s.open_files;
  }
  return rc;
}

inline int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  Session& s = session();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (powered_off())
    return SQLITE_IOERR_DELETE;
  const int rc = real_vfs()->xDelete(real_vfs(), name, sync_dir);
  if (s.active && (rc == SQLITE_OK || rc == SQLITE_IOERR_DELETE_NOENT)) {
    const auto found = s.files.find(name);
    if (found != s.files.end())
      found->second = FileState{false, {}, {}};
  }
  return rc;
}

inline int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  {
    std::lock_guard<std::mutex> lock(session().mutex);
    if (powered_off())
      return SQLITE_IOERR_ACCESS;
  }
  return real_vfs()->xAccess(real_vfs(), name, flags, out);
}

// The content of the file at `path` into `out`; false when there is no such file.
inline bool read_whole(const std::string& path, std::string& out) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (in == nullptr)
    return false;
  out.clear();
  char buffer[65536];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, in)) > 0)
    out.append(buffer, got);
  std::fclose(in);
  return true;
}

inline std::string full_pathname(const std::string& path) {
  sqlite3_vfs* real = real_vfs();
  std::string out(static_cast<std::size_t>(real->mxPathname) + 1, '\0');
  if (real->xFullPathname(real, path.c_str(), real->mxPathname + 1, out.data()) != SQLITE_OK)
    throw std::runtime_error("power_loss_vfs: no full pathname for " + path);
  out.resize(out.find('\0'));
  return out;
}

}  // namespace detail

inline constexpr const char* vfs_name = "jobsched-powerloss";

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

/// The names SQLite gives the files of the database at `path`: the main file, -journal,
/// -wal (the -shm is not modelled: it is shared memory).
inline std::vector<std::string> file_names(const std::string& path) {
  const std::string main = detail::full_pathname(path);
  return {main, main + "-journal", main + "-wal"};
}

/// Starts a session on the database at `path` (no file may be open through the shim): its
/// files as they are now are durable, and counting starts from zero.
inline void begin(const std::string& path, const Plan& plan) {
  install();
  detail::Session& s = detail::session();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.open_files != 0)
    throw std::logic_error("power_loss_vfs: begin() with files still open");
  s.files.clear();
  for (const std::string& file : file_names(path)) {
    FileState state;
    state.exists = detail::read_whole(file, state.durable);
    s.files.emplace(file, std::move(state));
  }
  s.plan = plan;
  s.counted = 0;
  s.cut = false;
  s.next_order = 0;
  s.active = true;
}

/// Writes and syncs counted since begin().
inline long counted() {
  std::lock_guard<std::mutex> lock(detail::session().mutex);
  return detail::session().counted;
}

/// Whether the power has failed in this session.
inline bool cut() {
  std::lock_guard<std::mutex> lock(detail::session().mutex);
  return detail::session().cut;
}

/// Ends the session (the shim passes everything through again) and returns the disk as the
/// model has it. Every connection on the shim must have closed first.
inline Disk end() {
  detail::Session& s = detail::session();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.open_files != 0)
    throw std::logic_error("power_loss_vfs: end() with " + std::to_string(s.open_files) +
                           " files still open");
  s.active = false;
  Disk disk = std::move(s.files);
  s.files.clear();
  return disk;
}

/// Each file's content once power is back, when `policy` decides what of the pending writes
/// landed; `seed` drives the random choices.
inline Images disk_after(const Disk& disk, Policy policy, std::uint64_t seed) {
  std::vector<std::pair<const FileState*, const Pending*>> pending;
  for (const auto& [name, state] : disk) {
    for (const Pending& op : state.pending)
      pending.emplace_back(&state, &op);
  }
  std::sort(pending.begin(), pending.end(),
            [](const auto& a, const auto& b) { return a.second->order < b.second->order; });

  // Which pieces of each pending operation land.
  std::mt19937_64 random(seed);
  std::map<const Pending*, std::vector<bool>> kept;
  const std::size_t torn_at =
      pending.empty() ? 0
                      : std::uniform_int_distribution<std::size_t>(0, pending.size() - 1)(random);
  for (std::size_t i = 0; i < pending.size(); ++i) {
    const Pending* op = pending[i].second;
    std::vector<bool> pieces(detail::pieces(*op), false);
    switch (policy) {
      case Policy::none:
        break;
      case Policy::all:
        pieces.assign(pieces.size(), true);
        break;
      case Policy::torn_prefix:
        if (i < torn_at) {
          pieces.assign(pieces.size(), true);
        } else if (i == torn_at) {
          const std::size_t landed =
              std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(random);
          std::fill(pieces.begin(), pieces.begin() + static_cast<std::ptrdiff_t>(landed), true);
        }
        break;
      case Policy::random_sectors:
        for (std::size_t k = 0; k < pieces.size(); ++k)
          pieces[k] = (random() & 1u) != 0;
        break;
    }
    kept.emplace(op, std::move(pieces));
  }

  Images images;
  for (const auto& [name, state] : disk) {
    if (!state.exists) {
      images.emplace(name, std::nullopt);
      continue;
    }
    std::string image = state.durable;
    for (const Pending& op : state.pending)
      detail::apply_pieces(image, op, kept.at(&op));
    images.emplace(name, std::move(image));
  }
  return images;
}

/// Puts `images` on the real disk for the database at `path`: every modelled file holds its
/// image or is gone, and the -shm is deleted.
inline void restore(const Images& images, const std::string& path) {
  for (const auto& [name, image] : images) {
    std::remove(name.c_str());
    if (image)
      write_bytes(name, *image);
  }
  std::remove((detail::full_pathname(path) + "-shm").c_str());
}

}  // namespace jobsched_test::powerloss
