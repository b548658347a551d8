// SPDX-License-Identifier: MIT
// libFuzzer target: the input bytes are a database file. Scheduler::open must refuse it
// with a jobsched::Error or open it; every operation after that must work or throw a
// jobsched::Error. A crash, a sanitizer report or any other exception is a bug.

#include <jobsched/jobsched.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace {

[[noreturn]] void bug(const char* where, const char* what) {
  std::fprintf(stderr, "fuzz_open: %s threw something other than jobsched::Error: %s\n", where,
               what);
  std::fflush(stderr);
  std::abort();
}

/// Runs `operation`; a jobsched::Error is fine, anything else aborts.
template <class F>
void attempt(const char* where, F&& operation) {
  try {
    operation();
  } catch (const jobsched::Error&) {
  } catch (const std::exception& error) {
    bug(where, error.what());
  } catch (...) {
    bug(where, "an exception of unknown type");
  }
}

const std::string& database_path() {
  // One file per process, so that parallel jobs (-jobs=N, -fork=N) do not share it. Put it
  // on a tmpfs (TMPDIR=/dev/shm) to spare the disk.
  static const std::string path = [] {
    const char* directory = std::getenv("TMPDIR");
    return std::string(directory != nullptr && *directory != '\0' ? directory : "/tmp") +
           "/jobsched-fuzz-open-" + std::to_string(::getpid()) + ".db";
  }();
  return path;
}

void remove_files(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::remove((path + suffix).c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = database_path();
  remove_files(path);
  {
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (file == nullptr)
      std::abort();
    if (size > 0 && std::fwrite(data, 1, size, file) != size)
      std::abort();
    std::fclose(file);
  }

  double now = 1'700'000'000.0;
  jobsched::Options options;
  options.clock = [&now] { return jobsched::from_unix_seconds(now); };
  options.busy_timeout = std::chrono::milliseconds(0);  // nobody else uses the file
  options.synchronous = jobsched::Synchronous::normal;
  options.retry.max_attempts = 2;
  options.retry.jitter = 0.0;

  std::optional<jobsched::Scheduler> scheduler;
  attempt("open", [&] { scheduler.emplace(jobsched::Scheduler::open(path, options)); });
  if (scheduler) {
    jobsched::Scheduler& s = *scheduler;
    attempt("count_pending_jobs", [&] { (void)s.count_pending_jobs(); });
    attempt("next_job", [&] { (void)s.next_job(); });
    attempt("seconds_until_next_job", [&] { (void)s.seconds_until_next_job(); });
    attempt("seconds_until_next_job(queues)",
            [&] { (void)s.seconds_until_next_job({"", "a"}); });
    for (std::int64_t id : {1, 2, 3, 7, 100})
      attempt("get_job", [&] { (void)s.get_job(id); });
    attempt("failed_jobs", [&] { (void)s.failed_jobs(); });
    attempt("add_job", [&] { (void)s.add_job("fuzz"); });
    attempt("claim/fail", [&] {
      const auto claimed = s.claim_next_job(jobsched::Seconds{10});
      if (claimed) {
        jobsched::Claim claim = claimed->claim;
        (void)s.extend(claim, jobsched::Seconds{20});
        (void)s.fail(claim, "fuzz");
      }
    });
    now += 3600;
    attempt("claim/complete", [&] {
      const auto claimed = s.claim_next_job(jobsched::Seconds{10}, {"", "a"});
      if (claimed)
        (void)s.complete(claimed->claim);
    });
    attempt("lock_next_job", [&] { (void)s.lock_next_job(); });
    attempt("unlock_job", [&] { (void)s.unlock_job(1); });
    attempt("complete_job", [&] { (void)s.complete_job(2); });
    attempt("retry_job", [&] { (void)s.retry_job(1); });
    attempt("delete_expired_jobs", [&] { (void)s.delete_expired_jobs(); });
    attempt("delete_completed_jobs", [&] { (void)s.delete_completed_jobs(); });
    attempt("delete_failed_jobs", [&] { (void)s.delete_failed_jobs(); });
    attempt("delete_job", [&] { (void)s.delete_job(3); });
    attempt("close", [&] { scheduler.reset(); });
  }
  remove_files(path);
  return 0;
}
