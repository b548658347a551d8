// SPDX-License-Identifier: MIT
// jobsched in an Asio program: one steady_timer armed for the next job's delay
// (seconds_until_next_job), re-armed after each run and whenever a job is added, so the
// event loop sleeps exactly until there is work and never polls. Standalone Asio
// (Debian: libasio-dev); with Boost.Asio, include <boost/asio.hpp> and use boost::asio.

#if __has_include(<asio.hpp>)
#include <jobsched/jobsched.hpp>

#include <asio.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

int main() {
  using namespace std::chrono_literals;
  asio::io_context io;
  auto scheduler = jobsched::Scheduler::open(":memory:");
  const auto start = std::chrono::steady_clock::now();
  auto log = [&](const std::string& what) {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    std::printf("[%.2f s] %s\n", elapsed.count(), what.c_str());
  };

  // The one timer for every job. Changing its expiry cancels the wait in progress, whose
  // handler then sees operation_aborted and does nothing.
  asio::steady_timer timer(io);
  std::function<void()> arm = [&] {
    const auto next = scheduler.seconds_until_next_job();
    if (!next)
      return;  // nothing pending: no wait, so io.run() returns once the rest is done
    timer.expires_after(std::chrono::ceil<std::chrono::steady_clock::duration>(next->delay));
    timer.async_wait([&](const asio::error_code& error) {
      if (error == asio::error::operation_aborted)
        return;
      // Run every job that is due; a lease makes each run once even if another process
      // (or another timer) claims from the same file.
      while (const auto claimed = scheduler.claim_next_job(30s)) {
        log("ran " + std::string(claimed->job.data.bytes()));
        scheduler.complete(claimed->claim);
      }
      arm();
    });
  };

  scheduler.add_job_from_now("the report (due at 0.6 s)", 0.6s);
  scheduler.add_job_from_now("the backup (due at 0.9 s)", 0.9s);
  arm();  // sleeps until 0.6 s

  // Something else in the program adds an earlier job at 0.1 s: re-arm, or it waits behind
  // the report.
  asio::steady_timer request(io, 100ms);
  request.async_wait([&](const asio::error_code&) {
    scheduler.add_job_from_now("the urgent email (due at 0.3 s)", 0.2s);
    log("added the urgent email; timer re-armed");
    arm();
  });

  io.run();
  log("nothing pending: " + std::to_string(scheduler.count_pending_jobs()) + " jobs left");
}
#else
// tests/optimised compiles every example; without Asio this one has nothing to show.
#include <cstdio>
int main() {
  std::puts("asio_timer: built without Asio (Debian: libasio-dev)");
}
#endif
