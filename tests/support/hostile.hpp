// SPDX-License-Identifier: MIT
#pragma once

// Shared by the hostile-file tests: every kind of call on a scheduler whose file may be
// corrupt, and the file's integrity check.

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <string>

#include <jobsched/jobsched.hpp>

namespace jobsched_test {

/// Runs every kind of operation; each must work or throw a jobsched::Error. Returns how many
/// threw one. Any other exception escapes to the caller (a failure), a crash ends the process.
inline int exercise(jobsched::Scheduler& scheduler, jobsched::TimePoint now) {
  int errors = 0;
  const auto attempt = [&](const std::function<void()>& operation) {
    try {
      operation();
    } catch (const jobsched::Error&) {
      ++errors;
    }
  };
  attempt([&] { (void)scheduler.count_pending_jobs(); });
  attempt([&] { (void)scheduler.next_job(); });
  attempt([&] { (void)scheduler.seconds_until_next_job(); });
  attempt([&] { (void)scheduler.seconds_until_next_job({"", "mail"}); });
  for (std::int64_t id : {1, 2, 50, 150, 299, 300, 1000})
    attempt([&] { (void)scheduler.get_job(id); });
  attempt([&] { (void)scheduler.failed_jobs(); });
  attempt([&] { (void)scheduler.add_job("new job"); });
  attempt([&] {
    const auto claimed =
        scheduler.claim_next_job(jobsched::Seconds{30}, now + jobsched::Seconds{5});
    if (claimed) {
      jobsched::Claim claim = claimed->claim;
      (void)scheduler.extend(claim, jobsched::Seconds{60});
      (void)scheduler.fail(claim, "hostile");
    }
  });
  attempt([&] {
    const auto claimed = scheduler.claim_next_job(jobsched::Seconds{30}, {"mail"});
    if (claimed)
      (void)scheduler.complete(claimed->claim);
  });
  attempt([&] { (void)scheduler.lock_next_job(); });
  attempt([&] { (void)scheduler.unlock_job(100); });
  attempt([&] { (void)scheduler.complete_job(40); });
  attempt([&] { (void)scheduler.retry_job(31); });
  attempt([&] { (void)scheduler.delete_job(41); });
  attempt([&] { (void)scheduler.delete_expired_jobs(now + jobsched::Seconds{100}); });
  attempt([&] { (void)scheduler.delete_completed_jobs(); });
  attempt([&] { (void)scheduler.delete_failed_jobs(); });
  attempt([&] { (void)scheduler.data_version(); });
  return errors;
}

/// `PRAGMA integrity_check`'s first row on one line: "ok" for a sound file, else what is
/// wrong (or why the check itself could not run).
inline std::string integrity_of(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  std::string result;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) != SQLITE_OK) {
    result = std::string("cannot check: ") + sqlite3_errmsg(db);
  } else if (const int rc = sqlite3_step(stmt); rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    result = text != nullptr ? reinterpret_cast<const char*>(text) : "";
  } else {
    result = std::string("cannot check: ") + sqlite3_errstr(rc);
  }
  sqlite3_finalize(stmt);
  for (char& c : result) {
    if (c == '\n')
      c = ' ';
  }
  return result;
}

}  // namespace jobsched_test
