// SPDX-License-Identifier: MIT
#pragma once

// What the tests' VFS shims (fault_vfs.hpp, power_loss_vfs.hpp) share: the default VFS they
// sit on, where a shim keeps its own data in each file (after the real VFS's sqlite3_file),
// the VFS methods they pass through unchanged, and their registration. Each shim supplies
// xOpen, xDelete and xAccess, and wraps the io methods it needs in its xOpen.

#include <sqlite3.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace jobsched_test::shim {

/// The default VFS, as found when the first shim registered.
inline sqlite3_vfs*& real_vfs() {
  static sqlite3_vfs* vfs = nullptr;
  return vfs;
}

/// Where a shim's own data starts in each of its files: after the real file, 8-byte aligned.
inline int extra_offset() {
  return (real_vfs()->szOsFile + 7) & ~7;
}

/// A shim's own data in `file`, of type Extra.
template <class Extra>
Extra* extra(sqlite3_file* file) {
  return reinterpret_cast<Extra*>(reinterpret_cast<char*>(file) + extra_offset());
}

// The VFS methods every shim forwards to the real VFS, with its own pointer.
inline int x_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return real_vfs()->xFullPathname(real_vfs(), name, size, out);
}
inline void* x_dl_open(sqlite3_vfs*, const char* name) {
  return real_vfs()->xDlOpen(real_vfs(), name);
}
inline void x_dl_error(sqlite3_vfs*, int size, char* out) {
  real_vfs()->xDlError(real_vfs(), size, out);
}
inline void (*x_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs()->xDlSym(real_vfs(), handle, symbol);
}
inline void x_dl_close(sqlite3_vfs*, void* handle) {
  real_vfs()->xDlClose(real_vfs(), handle);
}
inline int x_randomness(sqlite3_vfs*, int size, char* out) {
  return real_vfs()->xRandomness(real_vfs(), size, out);
}
inline int x_sleep(sqlite3_vfs*, int microseconds) {
  return real_vfs()->xSleep(real_vfs(), microseconds);
}
inline int x_current_time(sqlite3_vfs*, double* out) {
  return real_vfs()->xCurrentTime(real_vfs(), out);
}
inline int x_get_last_error(sqlite3_vfs*, int size, char* out) {
  return real_vfs()->xGetLastError(real_vfs(), size, out);
}
inline int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs()->xCurrentTimeInt64(real_vfs(), out);
}

/// A URI opening `path` through the VFS named `vfs` (the characters a URI reserves escaped).
inline std::string uri(const std::string& path, const char* vfs) {
  std::string out = "file:";
  for (const char c : path) {
    if (c == '?' || c == '#' || c == '%') {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", static_cast<unsigned char>(c));
      out += buffer;
    } else {
      out += c;
    }
  }
  return out + "?vfs=" + vfs;
}

/// The methods a shim supplies itself.
struct Own {
  decltype(sqlite3_vfs::xOpen) open;
  decltype(sqlite3_vfs::xDelete) remove;
  decltype(sqlite3_vfs::xAccess) access;
};

/// Fills `shim` (a static of the caller's) over the default VFS, with `extra_size` bytes of
/// its own in each file, and registers it under `name` (not as the default). Call it once.
inline void register_vfs(sqlite3_vfs& shim, const char* name, int extra_size, const Own& own) {
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr)
    throw std::runtime_error(std::string(name) + ": no default VFS");
  if (real_vfs() != nullptr && real_vfs() != real)
    throw std::runtime_error(std::string(name) + ": the default VFS changed");
  real_vfs() = real;
  shim = sqlite3_vfs{};
  shim.iVersion = real->iVersion < 2 ? real->iVersion : 2;
  shim.szOsFile = extra_offset() + extra_size;
  shim.mxPathname = real->mxPathname;
  shim.zName = name;
  shim.xOpen = own.open;
  shim.xDelete = own.remove;
  shim.xAccess = own.access;
  shim.xFullPathname = &x_full_pathname;
  shim.xDlOpen = real->xDlOpen != nullptr ? &x_dl_open : nullptr;
  shim.xDlError = real->xDlError != nullptr ? &x_dl_error : nullptr;
  shim.xDlSym = real->xDlSym != nullptr ? &x_dl_sym : nullptr;
  shim.xDlClose = real->xDlClose != nullptr ? &x_dl_close : nullptr;
  shim.xRandomness = &x_randomness;
  shim.xSleep = &x_sleep;
  shim.xCurrentTime = &x_current_time;
  shim.xGetLastError = real->xGetLastError != nullptr ? &x_get_last_error : nullptr;
  if (shim.iVersion >= 2)
    shim.xCurrentTimeInt64 = &x_current_time_int64;
  const int rc = sqlite3_vfs_register(&shim, 0);
  if (rc != SQLITE_OK) {
    throw std::runtime_error(std::string(name) +
                             ": sqlite3_vfs_register failed: " + std::to_string(rc));
  }
}

}  // namespace jobsched_test::shim
