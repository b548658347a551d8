// SPDX-License-Identifier: MIT
#pragma once

#include <chrono>
#include <cstddef>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "claim.hpp"
#include "detail/new_job.hpp"
#include "detail/validate.hpp"
#include "job.hpp"
#include "payload.hpp"
#include "time.hpp"

namespace jobsched {

namespace detail {

// What a JobContext asks of the worker that runs its handler (WorkerState answers).
class ContextLink {
 public:
  virtual bool claim_lost(std::size_t slot) const = 0;
  virtual bool wait_claim_lost(std::size_t slot, std::chrono::milliseconds timeout) const = 0;
  virtual bool stopping_now() const = 0;
  virtual void request_beat() = 0;
  virtual TimePoint clock_now() const = 0;

 protected:
  ContextLink() = default;
  ContextLink(const ContextLink&) = default;
  ContextLink& operator=(const ContextLink&) = default;
  ~ContextLink() = default;
};

struct JobContextAccess;

}  // namespace detail

/// What a Worker's handler may say about the job it runs, when it takes
/// `(const Job&, JobContext&)`: a result to store, a snooze instead of a completion, jobs to
/// add with the completion; and what it may learn: whether its claim is still good.
///
/// Thread safety: used by the handler's own thread, while the handler runs.
class JobContext {
 public:
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;

  /// The claim the handler runs under.
  const Claim& claim() const noexcept { return claim_; }

  /// True once the claim went stale (the job was cancelled, or its lease was lost, or the
  /// worker gave it back at stop): whatever the handler does next is not recorded. The
  /// heartbeat notices, every lease/3, or at once after heartbeat().
  bool cancelled() const { return link_.claim_lost(slot_); }

  /// Waits until cancelled() or the worker stops, at most `timeout`; true when cancelled.
  bool wait_cancelled(std::chrono::milliseconds timeout) const {
    return link_.wait_claim_lost(slot_, timeout);
  }

  /// True once the worker is stopping: a long handler may finish early.
  bool stop_requested() const { return link_.stopping_now(); }

  /// Asks the heartbeat to extend the lease now (and so to find out now whether the claim is
  /// still good), rather than at its next beat.
  void heartbeat() { link_.request_beat(); }

  /// Stores `result` with the completion (Job::result).
  void set_result(Payload result) { result_ = std::move(result); }

  /// Once the handler returns, gives the job back to run again `delay` later instead of
  /// completing it, the attempt not spent. InvalidArgumentError for a negative or non-finite
  /// delay.
  void snooze(Seconds delay) {
    const double seconds = delay.count();
    if (!std::isfinite(seconds) || seconds < 0) {
      detail::throw_invalid("a snooze's delay must be finite and not negative, got " +
                            detail::format_seconds(seconds) + " s");
    }
    snooze_ = delay;
  }

  /// Adds a job in the same transaction as this job's completion, and only if it completes
  /// (a handler that throws, snoozes or loses its claim adds nothing). Checked now:
  /// InvalidArgumentError as add_job gives. A unique key's conflict that add_job would throw
  /// (OnConflict::fail, or a replace of a running job) undoes the completion: the attempt
  /// fails with the UniqueConflictError's message, and nothing is added.
  void add_job(Payload data, JobOptions options = {}) {
    detail::checked_new_job(data, options, link_.clock_now());
    follow_ups_.push_back(NewJob{std::move(data), std::move(options)});
  }

 private:
  friend struct detail::JobContextAccess;

  JobContext(detail::ContextLink& link, std::size_t slot, Claim claim)
      : link_(link), slot_(slot), claim_(claim) {}

  detail::ContextLink& link_;
  std::size_t slot_;
  Claim claim_;
  std::optional<Payload> result_;
  std::optional<Seconds> snooze_;
  std::vector<NewJob> follow_ups_;
};

}  // namespace jobsched
