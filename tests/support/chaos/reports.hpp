// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the parent's log of records sorted out into the ids added and deleted and
// every claim with its calls (Reports), and the call counts of Result.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "records.hpp"
#include "result.hpp"

namespace jobsched_chaos {

namespace detail {

inline constexpr double kNever = std::numeric_limits<double>::infinity();

struct Call {
  Action action;
  int accepted;  // 1, 0, or -1 (threw: unknown)
  double at, before, after, lease_until;
};

/// One claim: a plain worker's (with its calls) or a Worker handler's.
struct ClaimInfo {
  std::int64_t job = 0;
  std::int64_t token = 0;  // plain only
  bool by_worker = false;  // a jobsched::Worker's (its calls are not seen)
  int process = 0;
  int thread = 0;
  int attempt = 0;
  int max_attempts = 0;
  double at = 0, lease_until = 0, before = 0, after = 0;
  std::vector<Call> calls;
  // The end call (complete, fail or release) it announced, if any.
  Action end_action = Action{};
  double end_intent_before = kNever;
  std::optional<Call> end;  // its result, if reported
  // Worker: the handler's last word.
  bool handler_throws = false;
  double handler_end_before = kNever;

  /// From when the holder may have let go of the job (fail or release), making a claim by
  /// someone else legitimate; kNever if it never tried, or was refused.
  double free_from() const {
    if (by_worker)
      return handler_throws ? handler_end_before : kNever;
    if ((end_action == kFail || end_action == kRelease) && !(end && end->accepted == 0))
      return end_intent_before;
    return kNever;
  }
  /// When its accepted complete had surely committed; kNever if none.
  double completed_by() const {
    return end && end->action == kComplete && end->accepted == 1 ? end->after : kNever;
  }
  /// Its lease end as far as a claim begun at `second_before` can know it: the latest of
  /// the claim's and of its accepted extends returned by then (a lease never moves earlier).
  double lease_end_before(double second_before) const {
    double end_time = lease_until;
    for (const Call& call : calls) {
      if (call.action == kExtend && call.accepted == 1 && call.after <= second_before)
        end_time = std::max(end_time, call.lease_until);
    }
    return end_time;
  }
  double final_lease_end() const { return lease_end_before(kNever); }
  bool may_have_completed() const {
    if (by_worker)
      return !handler_throws;
    return end_action == kComplete && (!end || end->accepted != 0);
  }
  std::int64_t accepted_completes() const {
    return std::count_if(calls.begin(), calls.end(), [](const Call& call) {
      return call.action == kComplete && call.accepted == 1;
    });
  }
};

/// What the parent learnt from its children, apart from the records.
struct RunFacts {
  std::set<std::int64_t> added_by_parent;
  std::set<int> killed;  // child numbers SIGKILLed by the parent
};

/// The records, sorted out.
struct Reports {
  std::set<std::int64_t> added;
  std::set<std::int64_t> deleted;
  /// Ids a killed producer may have added without reporting: the one after its last report.
  std::set<std::int64_t> maybe_unreported;
  std::vector<ClaimInfo> claims;
  std::map<std::int64_t, std::vector<std::size_t>> claims_of;  // job -> claims, by `at`
};

inline void count_result(const Call& call, Result& result) {
  if (call.accepted < 0) {
    ++result.calls_thrown;
    return;
  }
  const bool yes = call.accepted == 1;
  switch (call.action) {
    case kComplete:
      ++(yes ? result.completes_accepted : result.completes_refused);
      break;
    case kFail:
      ++(yes ? result.fails_accepted : result.fails_refused);
      break;
    case kRelease:
      ++(yes ? result.releases_accepted : result.releases_refused);
      break;
    case kExtend:
      ++(yes ? result.extends_accepted : result.extends_refused);
      break;
  }
}

inline ClaimInfo claim_from(const Logged& logged) {
  const Record& r = logged.record;
  ClaimInfo claim;
  claim.by_worker = r.kind == kHandlerStart;
  claim.job = r.job_id;
  claim.token = r.token;
  claim.process = logged.process;
  claim.thread = r.thread;
  claim.attempt = r.attempt;
  claim.max_attempts = r.max_attempts;
  claim.at = r.at;
  claim.lease_until = r.lease_until;
  claim.before = r.before;
  claim.after = r.after;
  return claim;
}

inline Reports read_reports(const std::vector<Logged>& log, const RunFacts& facts, Result& result) {
  Reports reports;
  reports.added = facts.added_by_parent;
  struct Incarnation {
    std::int64_t hello = -1;  // the highest id when it started; -1: no hello
    std::int64_t last_reported = -1;
  };
  std::map<int, Incarnation> producers;
  std::vector<ClaimInfo>& claims = reports.claims;
  std::map<std::pair<std::int64_t, std::int64_t>, std::size_t> by_token;  // (job, token)
  std::map<std::pair<int, int>, std::size_t> open_handler;                // (process, thread)
  for (const Logged& logged : log) {
    const Record& r = logged.record;
    switch (r.kind) {
      case kAdded:
        if (!reports.added.insert(r.job_id).second)
          harness_error(result, "id " + std::to_string(r.job_id) + " reported added twice");
        producers[logged.process].last_reported = r.job_id;
        break;
      case kHello:
        producers[logged.process].hello = r.job_id;
        break;
      case kProducerDone:
        break;
      case kDeleted:
        reports.deleted.insert(r.job_id);
        break;
      case kClaim:
        if (!by_token.emplace(std::make_pair(r.job_id, r.token), claims.size()).second)
          harness_error(result, "one token reported for two claims");
        claims.push_back(claim_from(logged));
        break;
      case kIntent:
      case kResult: {
        const auto found = by_token.find(std::make_pair(r.job_id, r.token));
        if (found == by_token.end()) {
          harness_error(result, "a call on a claim nobody reported");
          break;
        }
        ClaimInfo& claim = claims[found->second];
        const auto action = static_cast<Action>(r.action);
        const bool ends = action == kComplete || action == kFail || action == kRelease;
        if (r.kind == kIntent) {
          if (ends) {
            claim.end_action = action;
            claim.end_intent_before = r.before;
          }
          break;
        }
        const Call call{action, r.accepted, r.at, r.before, r.after, r.lease_until};
        claim.calls.push_back(call);
        if (ends)
          claim.end = call;
        count_result(call, result);
        break;
      }
      case kHandlerStart:
        open_handler[std::make_pair(logged.process, r.thread)] = claims.size();
        claims.push_back(claim_from(logged));
        ++result.handler_starts;
        break;
      case kHandlerEnd: {
        const auto found = open_handler.find(std::make_pair(logged.process, r.thread));
        if (found == open_handler.end() || claims[found->second].job != r.job_id) {
          harness_error(result, "a handler ended a job it never started");
          break;
        }
        ClaimInfo& claim = claims[found->second];
        claim.handler_throws = r.accepted == 0;
        claim.handler_end_before = r.before;
        result.handler_throws += claim.handler_throws ? 1 : 0;
        open_handler.erase(found);
        break;
      }
      case kError:
        if (result.worker_errors++ == 0)
          result.first_worker_error = std::string(r.message, strnlen(r.message, sizeof r.message));
        break;
      default:
        harness_error(result, "a record of unknown kind " + std::to_string(r.kind));
    }
  }
  result.added_reported = static_cast<std::int64_t>(reports.added.size());
  result.deleted_by_rogue = static_cast<std::int64_t>(reports.deleted.size());
  for (const std::int64_t id : reports.deleted)
    result.deleted_reported += reports.added.count(id) != 0 ? 1 : 0;
  for (const auto& [process, incarnation] : producers) {
    if (facts.killed.count(process) != 0 && incarnation.hello >= 0) {
      reports.maybe_unreported.insert(std::max(incarnation.hello, incarnation.last_reported) + 1);
    }
  }
  for (std::size_t i = 0; i < claims.size(); ++i) {
    reports.claims_of[claims[i].job].push_back(i);
    if (!claims[i].by_worker) {
      ++result.claims;
      result.late_claims += claims[i].after >= claims[i].lease_until ? 1 : 0;
    }
  }
  for (auto& [job, mine] : reports.claims_of) {
    std::sort(mine.begin(), mine.end(),
              [&](std::size_t a, std::size_t b) { return claims[a].at < claims[b].at; });
  }
  return reports;
}

}  // namespace detail

}  // namespace jobsched_chaos
