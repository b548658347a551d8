// SPDX-License-Identifier: MIT
#pragma once

// Notice when another process writes a file, without polling: Linux inotify on the database's
// -wal file, to which every commit writes. Elsewhere, or when the watch cannot be set, ok()
// is false and the caller polls instead (define JOBSCHED_NO_FILE_WATCH to poll always).

#include <string>

#if defined(__linux__) && __has_include(<sys/inotify.h>) && !defined(JOBSCHED_NO_FILE_WATCH)
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#define JOBSCHED_HAS_FILE_WATCH 1
#else
#define JOBSCHED_HAS_FILE_WATCH 0
#endif

namespace jobsched::detail {

#if JOBSCHED_HAS_FILE_WATCH

class FileWatch {
 public:
  explicit FileWatch(const std::string& path) {
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_ < 0 || ::pipe2(stop_, O_NONBLOCK | O_CLOEXEC) != 0 ||
        ::inotify_add_watch(inotify_, path.c_str(), IN_MODIFY) < 0) {
      close_all();
    }
  }
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;
  ~FileWatch() { close_all(); }

  bool ok() const noexcept { return inotify_ >= 0; }

  // Blocks until the file is written (true) or stop() was called (false).
  bool wait() {
    for (;;) {
      pollfd fds[2] = {{inotify_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR)
          continue;
        return false;
      }
      if (fds[1].revents != 0)
        return false;
      if (fds[0].revents != 0) {
        // A commit writes its frames in a burst: answer once the file has been quiet for
        // 200 us, so that the waiter does not wake mid-transaction and wait for its lock.
        const timespec quiet{0, 200'000};
        do {
          drain();
          fds[0].revents = 0;
        } while (::ppoll(fds, 1, &quiet, nullptr) > 0);
        return true;
      }
    }
  }

  // Every event waiting says the same: reads them all.
  void drain() noexcept {
    char events[4096];
    while (::read(inotify_, events, sizeof events) > 0) {
    }
  }

  // Ends wait(), now and for good; from any thread.
  void stop() noexcept {
    if (stop_[1] >= 0) {
      const char byte = 1;
      [[maybe_unused]] const ssize_t written = ::write(stop_[1], &byte, 1);
    }
  }

 private:
  void close_all() noexcept {
    for (int* fd : {&inotify_, &stop_[0], &stop_[1]}) {
      if (*fd >= 0)
        ::close(*fd);
      *fd = -1;
    }
  }

  int inotify_ = -1;
  int stop_[2] = {-1, -1};
};

#else

class FileWatch {
 public:
  explicit FileWatch(const std::string&) {}
  bool ok() const noexcept { return false; }
  bool wait() { return false; }
  void stop() noexcept {}
};

#endif

}  // namespace jobsched::detail
