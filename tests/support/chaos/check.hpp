// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the checks. The reports and the final file against the promises of DESIGN.md,
// counted in Result and the first few of each kind described (analyse()).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "final_file.hpp"
#include "reports.hpp"
#include "result.hpp"

namespace jobsched_chaos {

namespace detail {

/// Times compared across a double round trip through the file.
inline constexpr double kTimeSlack = 1e-6;

class Notes {
 public:
  explicit Notes(Result& result) : result_(result) {}
  /// Keeps the first two descriptions of each kind, 24 in all.
  void add(const std::string& kind, const std::string& text) {
    if (++seen_[kind] <= 2 && result_.violations.size() < 24)
      result_.violations.push_back(kind + ": " + text);
  }

 private:
  Result& result_;
  std::map<std::string, int> seen_;
};

inline std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6f", seconds);
  return text;
}

inline std::string describe(const ClaimInfo& claim) {
  char text[256];
  std::snprintf(
      text, sizeof text, "%s %d.%d (attempt %d of %d, at %.6f, lease until %.6f, window %.6f-%.6f)",
      claim.by_worker ? "Worker process" : "process", claim.process, claim.thread, claim.attempt,
      claim.max_attempts, claim.at, claim.lease_until, claim.before, claim.after);
  return text;
}

inline std::string describe_call(const Call& call) {
  static const char* const names[] = {"?", "complete", "fail", "release", "extend"};
  char text[160];
  std::snprintf(text, sizeof text, "%s(now %.6f) -> %d in %.6f-%.6f, lease until %.6f",
                names[call.action >= 1 && call.action <= 4 ? call.action : 0], call.at,
                call.accepted, call.before, call.after, call.lease_until);
  return text;
}

/// Every claim of a job and its calls, for a violation's note.
inline std::string describe_claims(const Reports& reports, std::int64_t job) {
  std::string text;
  const auto found = reports.claims_of.find(job);
  if (found == reports.claims_of.end())
    return "; no claim reported";
  for (const std::size_t c : found->second) {
    text += "; " + describe(reports.claims[c]);
    for (const Call& call : reports.claims[c].calls)
      text += " " + describe_call(call);
  }
  return text;
}

/// Why a failed job's failed_at is wrong, if it is: it must be the time of the fail that
/// ended its last attempt, or the end of that attempt's lease.
inline std::optional<std::string> wrong_failure_time(const Row& row,
                                                     const std::vector<const ClaimInfo*>& mine) {
  const double failed_at = *row.failed_time();
  if (mine.empty())
    return std::nullopt;
  const ClaimInfo& last = *mine.back();
  // Only when the newest claim reported was the last attempt and did not end otherwise
  // (a release or complete accepted: then the failing claim went unreported).
  const bool ended_otherwise = last.end && last.end->accepted == 1 && last.end->action != kFail;
  if (last.attempt < last.max_attempts || ended_otherwise)
    return std::nullopt;
  const double lease_end = last.final_lease_end();
  auto is = [&](double expected) { return std::fabs(failed_at - expected) <= kTimeSlack; };
  if (!last.by_worker && last.end && last.end->action == kFail && last.end->accepted == 1) {
    if (!is(last.end->at))
      return "its last fail was at " + seconds_text(last.end->at) + ", it failed at " +
             seconds_text(failed_at);
    return std::nullopt;
  }
  if (!last.by_worker && last.end && last.end->accepted == 0) {
    // Every call of the claim was reported, all extends included: it failed at lease end.
    if (!is(lease_end))
      return "its last lease ended at " + seconds_text(lease_end) + ", it failed at " +
             seconds_text(failed_at);
    return std::nullopt;
  }
  // A fail the thread or handler may have made, or extends (a Worker's heartbeat) may have
  // gone unreported: only a lower bound.
  const bool may_have_failed =
      last.by_worker ? last.handler_throws : last.end_action == kFail && is(last.end_intent_before);
  if (!may_have_failed && failed_at < lease_end - kTimeSlack)
    return "it failed at " + seconds_text(failed_at) + ", before its last lease ended at " +
           seconds_text(lease_end);
  return std::nullopt;
}

/// Every id added, every row, against the reports.
inline void check_rows(const Reports& reports, const FinalFile& file, Result& result,
                       Notes& notes) {
  for (const std::int64_t id : reports.added) {
    if (file.rows.count(id) == 0) {
      ++result.missing;
      notes.add("missing", "job " + std::to_string(id) + "'s add returned; it is gone" +
                               (reports.deleted.count(id) != 0 ? " (the rogue deleted it)" : ""));
    }
  }
  for (const auto& [id, row] : file.rows) {
    const std::string name = "job " + std::to_string(id);
    if (reports.added.count(id) == 0) {
      if (reports.maybe_unreported.count(id) != 0) {
        ++result.added_unreported;
      } else {
        ++result.unexplained_rows;
        notes.add("unexplained row", name + " was never reported added");
      }
    }
    std::vector<const ClaimInfo*> mine;
    if (const auto found = reports.claims_of.find(id); found != reports.claims_of.end()) {
      for (const std::size_t c : found->second)
        mine.push_back(&reports.claims[c]);
    }
    const bool completed = row.completed_at.has_value();
    const std::optional<double> failed_at = row.failed_time();
    const bool failed = failed_at.has_value();

    // What the API says: failed_jobs() and get_job() agree with the row.
    std::optional<std::string> disagrees;
    const auto listed = file.listed_failed.find(id);
    const auto got = file.got.find(id);
    if ((listed != file.listed_failed.end()) != failed) {
      disagrees = failed ? "failed, not listed by failed_jobs()" : "listed by failed_jobs()";
    } else if (listed != file.listed_failed.end() &&
               std::fabs(jobsched::to_unix_seconds(*listed->second.failed_at) - *failed_at) >
                   kTimeSlack) {
      disagrees = "failed_jobs() says it failed at " +
                  seconds_text(jobsched::to_unix_seconds(*listed->second.failed_at)) +
                  ", the row at " + seconds_text(*failed_at);
    } else if (got == file.got.end()) {
      disagrees = "get_job() found nothing";
    } else if (got->second.is_completed() != completed || got->second.is_failed() != failed ||
               (failed && std::fabs(jobsched::to_unix_seconds(*got->second.failed_at) -
                                    *failed_at) > kTimeSlack)) {
      disagrees = "get_job() says completed " + std::to_string(got->second.is_completed()) +
                  ", failed " + std::to_string(got->second.is_failed());
    }
    if (disagrees) {
      ++result.state_mismatch;
      notes.add("state mismatch", name + ": " + *disagrees);
    }

    std::int64_t accepted_completes = 0;
    for (const ClaimInfo* claim : mine)
      accepted_completes += claim->accepted_completes();
    if (completed && failed) {
      ++result.completed_and_failed;
      notes.add("completed and failed", name);
    }
    if (!completed && !failed) {
      ++result.unfinished;
      notes.add("unfinished", name + " is neither completed nor failed at the end (attempts " +
                                  std::to_string(row.attempts) + ")" +
                                  describe_claims(reports, id));
    }
    if (accepted_completes > 0 && !completed) {
      ++result.accepted_not_completed;
      notes.add("accepted, not completed", name + ": complete() returned true" +
                                               (failed ? ", the job failed" : "") +
                                               describe_claims(reports, id));
    }
    if (completed) {
      ++result.completed;
      if (accepted_completes > 1) {
        result.stale_accepted += accepted_completes - 1;
        notes.add("stale accepted", name + ": " + std::to_string(accepted_completes) +
                                        " accepted completes" + describe_claims(reports, id));
      } else if (accepted_completes == 0) {
        const bool by_worker = std::any_of(mine.begin(), mine.end(), [](const ClaimInfo* c) {
          return c->by_worker && c->may_have_completed();
        });
        const bool by_killed = std::any_of(mine.begin(), mine.end(), [](const ClaimInfo* c) {
          return !c->by_worker && c->may_have_completed();
        });
        if (by_worker) {
          ++result.completed_by_worker_processes;
        } else if (by_killed) {
          ++result.completed_unreported;
        } else {
          ++result.completed_unexplained;
          notes.add("completed unexplained",
                    name + " completed at " + seconds_text(*row.completed_at) +
                        ", no claim could have completed it" + describe_claims(reports, id));
        }
      }
      for (const ClaimInfo* claim : mine) {
        if (claim->before > *row.completed_at + kTimeSlack) {
          ++result.reclaimed_after_completion;
          notes.add("claimed after completion", name + " completed at " +
                                                    seconds_text(*row.completed_at) +
                                                    ", claimed by " + describe(*claim));
          break;
        }
      }
    }
    if (failed) {
      ++result.failed;
      result.failed_by_lease +=
          row.abandoned || row.last_error.rfind("the lease of attempt", 0) == 0 ? 1 : 0;
      result.failed_unmarked_at_end += row.abandoned ? 1 : 0;
      if (row.attempts < row.max_attempts) {
        ++result.failed_early;
        notes.add("failed early", name + " failed after " + std::to_string(row.attempts) + " of " +
                                      std::to_string(row.max_attempts) + " attempts");
      }
      for (const ClaimInfo* claim : mine) {
        if (claim->before > *failed_at + kTimeSlack) {
          ++result.claimed_after_failure;
          notes.add("claimed after failure", name + " failed at " + seconds_text(*failed_at) +
                                                 ", claimed by " + describe(*claim));
          break;
        }
      }
      if (const std::optional<std::string> wrong = wrong_failure_time(row, mine)) {
        ++result.failed_at_not_lease_end;
        notes.add("failed_at not at the lease end", name + ": " + *wrong + " (" + row.last_error +
                                                        ")" + describe_claims(reports, id));
      }
    }
  }
}

/// The claims of each job, against each other.
inline void check_claims(const Reports& reports, Result& result, Notes& notes) {
  const std::vector<ClaimInfo>& claims = reports.claims;
  for (const auto& [job, mine] : reports.claims_of) {
    const std::string name = "job " + std::to_string(job);
    const auto runs = static_cast<std::int64_t>(mine.size());
    result.jobs_run_more_than_once += runs > 1 ? 1 : 0;
    result.max_runs_of_one_job = std::max(result.max_runs_of_one_job, runs);
    for (const std::size_t c : mine) {
      const ClaimInfo& claim = claims[c];
      if (claim.attempt > claim.max_attempts) {
        ++result.claims_beyond_last_attempt;
        notes.add("claim beyond the last attempt", name + " by " + describe(claim));
      }
      // Each call in order: accepted after another claim surely took the job over (stale),
      // or after the lease of the last attempt ran out (late); an extend that shortened it.
      double lease_end = claim.lease_until;
      for (const Call& call : claim.calls) {
        if (call.accepted != 1)
          continue;
        for (const std::size_t o : mine) {
          const ClaimInfo& other = claims[o];
          if (o != c && other.before >= claim.after && other.after <= call.before) {
            ++result.stale_accepted;
            notes.add("stale accepted", name + ": " + describe_call(call) + " of " +
                                            describe(claim) + ", after the claim of " +
                                            describe(other));
            break;
          }
        }
        if (claim.attempt >= claim.max_attempts && call.at >= lease_end + kTimeSlack) {
          ++result.late_last_attempt_accepted;
          notes.add("late call accepted on the last attempt",
                    name + ": " + describe_call(call) + " of " + describe(claim) +
                        ", whose lease ended at " + seconds_text(lease_end));
        }
        if (call.action == kExtend) {
          if (call.lease_until < lease_end - kTimeSlack) {
            ++result.lease_moved_earlier;
            notes.add("lease moved earlier", name + ": " + describe_call(call) + " of " +
                                                 describe(claim) + ", lease was until " +
                                                 seconds_text(lease_end));
          }
          lease_end = std::max(lease_end, call.lease_until);
        }
      }
    }
    // `second` was claimed while `first` held a live lease: it committed before first's
    // lease end, by the claim's own time (`at`, what the library compares leases with) or
    // by the wall clock (`after`), and first had surely neither let go of the job before
    // (fail, release) nor completed it.
    auto live_lease_taken = [](const ClaimInfo& first, const ClaimInfo& second) {
      if (!(std::min(second.at, second.after) < first.lease_end_before(second.before)))
        return false;
      return second.after < first.free_from() && first.completed_by() > second.before;
    };
    bool overlapped = false;
    for (std::size_t i = 0; i < mine.size() && !overlapped; ++i) {
      for (std::size_t j = i + 1; j < mine.size() && !overlapped; ++j) {
        const ClaimInfo& a = claims[mine[i]];
        const ClaimInfo& b = claims[mine[j]];
        // The order of the two commits, when the call windows tell it; otherwise either.
        const bool a_first = a.after <= b.before;
        const bool b_first = b.after <= a.before;
        const bool taken = a_first   ? live_lease_taken(a, b)
                           : b_first ? live_lease_taken(b, a)
                                     : live_lease_taken(a, b) && live_lease_taken(b, a);
        if (taken) {
          overlapped = true;
          ++result.double_leased;
          notes.add("two live leases",
                    name + " claimed by " + describe(a) + " and by " + describe(b));
        }
      }
    }
  }
}

/// Counts the broken promises in the log and the final file.
inline void analyse(const std::vector<Logged>& log, const RunFacts& facts, const std::string& path,
                    const Config& config, Result& result) {
  Notes notes(result);
  const Reports reports = read_reports(log, facts, result);
  const FinalFile file = read_final_file(path, config, result);
  std::int64_t attempts_in_file = 0;
  for (const auto& [id, row] : file.rows)
    attempts_in_file += row.attempts;
  result.unreported_claims =
      attempts_in_file - (result.claims + result.handler_starts - result.releases_accepted);
  check_rows(reports, file, result, notes);
  check_claims(reports, result, notes);
  if (result.pending_at_end != 0)
    notes.add("pending at the end", std::to_string(result.pending_at_end) + " jobs");
  result.lost = result.missing + result.unfinished;
}

}  // namespace detail

}  // namespace jobsched_chaos
