// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the fixed-size records a child writes to its pipe (what it did, when, with
// which result), and how it sends them.

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

#include <jobsched/jobsched.hpp>

namespace jobsched_chaos {

namespace detail {

enum Kind : std::int32_t {
  kAdded = 1,     // producer: job_id's add_job returned
  kHello,         // producer: started; job_id = the highest id ever added to the file
  kProducerDone,  // producer: the file holds Config::jobs ids
  kDeleted,       // rogue: job_id deleted
  kClaim,         // plain worker: a claim returned
  kIntent,        // plain worker: about to make call `action` on the claim
  kResult,        // plain worker: call `action` returned `accepted` (-1: it threw)
  kHandlerStart,  // Worker handler: started job_id (the token is not known)
  kHandlerEnd,    // Worker handler: will return (accepted 1) or throw (accepted 0)
  kError,         // any child: an exception, with its extended code in `accepted`
};
enum Action : std::int32_t { kComplete = 1, kFail = 2, kRelease = 3, kExtend = 4 };

/// One fixed-size record, written whole (far below PIPE_BUF, so atomic even when several
/// threads of a process share the pipe).
struct Record {
  std::int32_t kind = 0;
  std::int32_t action = 0;
  std::int32_t accepted = 0;
  std::int32_t attempt = 0;       // claim, handler start: the job's attempts after the claim
  std::int32_t max_attempts = 0;  // claim, handler start: the job's limit
  std::int32_t thread = 0;        // the thread of the process that wrote it
  std::int64_t job_id = 0;
  std::int64_t token = 0;
  double at = 0;           // claim: its own time (locked_at); call: the `now` passed to it
  double lease_until = 0;  // claim: its lease end; extend: the lease end it returned
  double before = 0;       // wall time just before the call
  double after = 0;        // wall time just after it returned
  char message[96] = {};   // error: what()
};

enum class Role { plain, worker, producer, rogue };

/// A record as the parent logged it.
struct Logged {
  Record record;
  int process = 0;  // the child's number, in start order
  Role role = Role::plain;
};

inline double wall_now() {
  return jobsched::to_unix_seconds(jobsched::system_now());
}

inline bool send(int fd, const Record& record) {
  return ::write(fd, &record, sizeof record) == static_cast<ssize_t>(sizeof record);
}

/// In a child: report, and leave if the parent is gone.
inline void send_or_exit(int fd, const Record& record) {
  if (!send(fd, record))
    ::_exit(3);
}

inline void report_error(int fd, int thread, int code, const char* what) {
  Record error;
  error.kind = kError;
  error.thread = thread;
  error.accepted = code;
  std::snprintf(error.message, sizeof error.message, "%s", what);
  send_or_exit(fd, error);
}

}  // namespace detail

}  // namespace jobsched_chaos
