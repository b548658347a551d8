// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "claim.hpp"
#include "detail/file_watch.hpp"
#include "detail/transaction.hpp"
#include "detail/unique_follow_ups.hpp"
#include "detail/validate.hpp"
#include "detail/wake.hpp"
#include "error.hpp"
#include "job.hpp"
#include "job_context.hpp"
#include "options.hpp"
#include "scheduler.hpp"
#include "time.hpp"

namespace jobsched {

/// How a Worker runs its jobs.
struct WorkerOptions {
  /// Handler threads (at least 1).
  int threads = 1;
  /// Each claim's lease; a heartbeat extends it every lease/3 while the job waits to start
  /// or its handler runs.
  Seconds lease{30};
  /// The queues served ("" is the default queue); empty: every queue.
  std::vector<std::string> queues;
  /// How often an idle worker checks for commits by other processes (a read, never a write).
  std::chrono::milliseconds poll_interval{50};
  /// How long stop() waits for running handlers before releasing their claims.
  std::chrono::milliseconds grace{5000};
  /// Finished jobs are committed together: once this many wait, or once the first has
  /// waited `commit_window`, whichever comes first. A crash loses at most those not yet
  /// committed, and they run again (delivery is at least once). 1 commits each at once.
  int commit_batch = 64;
  /// How long (ms) the first finished job may wait for others to commit with; default 2.
  std::chrono::milliseconds commit_window{2};
  /// At most this many jobs claimed ahead of free handler threads, and only as many as the
  /// threads can start within a tenth of the lease at the handlers' measured pace.
  int max_claimed_ahead = 1024;
  /// The options of every connection the worker opens.
  Options scheduler;
  /// A prune (Scheduler::prune) to run at start and every interval, between claims; empty:
  /// none. Any number of workers in any processes may run one.
  std::optional<PeriodicPrune> prune;
};

namespace detail {

// Everything a worker's threads touch, owned jointly by the Worker and its threads, so that
// a handler still stuck after stop() can return safely once the Worker is gone. One thread
// claims (for the handler threads that are free, and a few ahead), the handler threads run
// the jobs, one thread commits their results together, one extends the leases.
struct WorkerState final : ContextLink {
  using Handler = std::function<void(const Job&, JobContext&)>;

  enum class Phase { idle, running, abandoned };
  struct Slot {
    Phase phase = Phase::idle;
    Claim claim;
    bool lost = false;  // the heartbeat found the claim stale
  };
  // A job claimed and not started yet.
  struct Ready {
    ClaimedJob claimed;
    bool lost = false;
  };
  // A handler's result, waiting to be committed: a failure (error), a snooze, or a
  // completion with its result and the jobs to add with it.
  struct Outcome {
    Claim claim;
    std::optional<std::string> error;
    std::optional<Seconds> snooze;
    std::optional<Payload> result;
    std::vector<NewJob> follow_ups;
  };

  WorkerState(Handler h, WorkerOptions o) : handler(std::move(h)), options(std::move(o)) {}
  WorkerState(const WorkerState&) = delete;
  WorkerState& operator=(const WorkerState&) = delete;
  ~WorkerState() = default;

  // For the handlers' JobContexts.
  bool claim_lost(std::size_t slot) const override {
    const std::lock_guard<std::mutex> lock(mutex);
    return slots[slot].lost || slots[slot].phase != Phase::running;
  }
  bool wait_claim_lost(std::size_t slot, std::chrono::milliseconds timeout) const override {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, timeout, [&] {
      return slots[slot].lost || slots[slot].phase != Phase::running ||
             stopping.load(std::memory_order_acquire);
    }) && (slots[slot].lost || slots[slot].phase != Phase::running);
  }
  bool stopping_now() const override { return stopping.load(std::memory_order_acquire); }
  void request_beat() override {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      beat_requested = true;
    }
    beat.notify_one();
  }
  TimePoint clock_now() const override {
    return options.scheduler.clock ? options.scheduler.clock() : system_now();
  }

  // Sleeps for `duration` unless stop is requested first.
  void pause(std::chrono::steady_clock::duration duration) {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait_for(lock, duration, [&] { return stopping.load(std::memory_order_acquire); });
  }

  void request_stop() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      stopping.store(true, std::memory_order_release);
    }
    notify_everyone();
    WakeHub::instance().wake_all();
  }

  void notify_everyone() {
    work.notify_all();
    room_made.notify_all();
    results.notify_all();
    beat.notify_all();
    changed.notify_all();
  }

  // How many more jobs the claiming thread may take now (under mutex): one for each idle
  // handler thread, and some ahead while the handlers are fast against the lease.
  std::size_t room() const {
    // None ahead until the handlers' pace is known.
    const double tenth_of_lease = options.lease.count() / 10.0;
    double ahead = 0.0;
    if (handler_seconds > 0.0) {
      ahead = std::min(static_cast<double>(options.max_claimed_ahead),
                       tenth_of_lease / handler_seconds * options.threads);
    }
    const std::size_t wanted = idle_threads + static_cast<std::size_t>(std::max(0.0, ahead));
    // None until the jobs waiting fall to half of that, so that claims come in batches and
    // not one small transaction for each job a handler starts.
    if (ready.size() > wanted / 2)
      return 0;
    return wanted - ready.size();
  }

  const Handler handler;
  const WorkerOptions options;
  // The connection the claiming and committing threads share, each holding `gate` while it
  // uses it: with one connection, neither's commit empties the other's page cache (SQLite
  // rereads every page after another connection's commit; the claims of a drain cost a
  // quarter more that way), and they take turns at once rather than in busy waits.
  std::optional<Scheduler> claimer;
  std::mutex gate;  // never taken with `mutex` held, and `mutex` never waited on under it
  std::optional<Scheduler> heartbeat;  // the heartbeat thread's, then stop()'s
  std::string file;

  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> completed{0};
  std::atomic<std::int64_t> failed{0};
  std::atomic<std::int64_t> stale{0};
  std::atomic<std::int64_t> snoozed{0};

  // One mutex, and a condition variable for each kind of waiter, so that a handler starting
  // or finishing a job wakes only the thread that has something to do about it (waking all
  // of them for each job cost a quarter of a drain's time in the kernel).
  mutable std::mutex mutex;
  std::condition_variable work;       // handler threads: a job ready, or stop
  std::condition_variable room_made;  // the claiming thread: room() above 0, or stop
  std::condition_variable results;    // the committing thread: results to commit, or stop
  std::condition_variable beat;       // the heartbeat: a beat asked for, or stop
  mutable std::condition_variable changed;  // the rest: claims lost, threads gone, stop
  std::deque<Ready> ready;        // guarded by mutex
  std::vector<Slot> slots;        // guarded by mutex, one per handler thread
  std::vector<Outcome> finished;  // guarded by mutex

  // The jobs this worker holds, running or waiting to start.
  std::vector<std::int64_t> held_jobs() const {
    const std::lock_guard<std::mutex> lock(mutex);
    std::vector<std::int64_t> held;
    for (const Slot& slot : slots) {
      if (slot.phase != Phase::idle)
        held.push_back(slot.claim.job_id);
    }
    for (const Ready& waiting : ready)
      held.push_back(waiting.claimed.claim.job_id);
    return held;
  }
  std::chrono::steady_clock::time_point first_finished{};  // guarded by mutex
  std::size_t idle_threads = 0;                            // guarded by mutex
  double handler_seconds = 0.0;                            // guarded by mutex: a running average
  int threads_alive = 0;                                   // guarded by mutex
  bool claimer_stop = false;                               // guarded by mutex
  bool committer_stop = false;                             // guarded by mutex
  bool heartbeat_stop = false;                             // guarded by mutex
  bool beat_requested = false;  // guarded by mutex: a handler asked for a beat now
  std::chrono::steady_clock::time_point next_prune{};  // the claiming thread's
};

// The worker whose handler thread this is; null on other threads.
inline const WorkerState*& current_worker() noexcept {
  thread_local const WorkerState* current = nullptr;
  return current;
}

// A duration on the steady clock, capped at a day (waits are re-checked long before).
inline std::chrono::steady_clock::duration steady_duration(Seconds duration) {
  constexpr double day = 86400.0;
  if (!(duration.count() < day)) {
    return std::chrono::hours(24);
  }
  if (!(duration.count() > 0.0)) {
    return std::chrono::steady_clock::duration::zero();
  }
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(duration);
}

// Pauses after a failed database call: 5 ms, doubling up to half a second.
class RetryPause {
 public:
  std::chrono::milliseconds next() {
    const std::chrono::milliseconds current = pause_;
    pause_ = std::min(pause_ * 2, std::chrono::milliseconds{500});
    return current;
  }
  void reset() { pause_ = std::chrono::milliseconds{5}; }

 private:
  std::chrono::milliseconds pause_{5};
};

inline void check_worker_options(const WorkerOptions& options, bool has_handler) {
  if (!has_handler) {
    throw_invalid("a Worker needs a handler, got an empty std::function");
  }
  if (options.threads < 1) {
    throw_invalid("WorkerOptions::threads must be at least 1, got " +
                  std::to_string(options.threads));
  }
  const double lease = options.lease.count();
  if (!std::isfinite(lease) || lease <= 0) {
    throw_invalid("WorkerOptions::lease must be a finite, positive duration, got " +
                  format_seconds(lease) + " s");
  }
  if (options.poll_interval.count() <= 0) {
    throw_invalid("WorkerOptions::poll_interval must be positive, got " +
                  std::to_string(options.poll_interval.count()) + " ms");
  }
  if (options.scheduler.read_only) {
    throw_invalid("a Worker claims and completes jobs; its Options::read_only must be false");
  }
  if (options.grace.count() < 0) {
    throw_invalid("WorkerOptions::grace must not be negative, got " +
                  std::to_string(options.grace.count()) + " ms");
  }
  if (options.commit_batch < 1) {
    throw_invalid("WorkerOptions::commit_batch must be at least 1, got " +
                  std::to_string(options.commit_batch));
  }
  if (options.commit_window.count() < 0) {
    throw_invalid("WorkerOptions::commit_window must not be negative, got " +
                  std::to_string(options.commit_window.count()) + " ms");
  }
  if (options.max_claimed_ahead < 0) {
    throw_invalid("WorkerOptions::max_claimed_ahead must not be negative, got " +
                  std::to_string(options.max_claimed_ahead));
  }
  if (options.prune) {
    check_prune_ages(options.prune->ages);
    if (options.prune->interval.count() <= 0) {
      throw_invalid("PeriodicPrune::interval must be positive, got " +
                    std::to_string(options.prune->interval.count()) + " ms");
    }
  }
}

// Commits handlers' results in one transaction: every completion and failed attempt. A busy
// or failing database is retried until stop is requested (then once more) or every lease
// ran out; claims whose lease ran out meanwhile are left to it.
inline void commit_outcomes(WorkerState& state, std::vector<WorkerState::Outcome> outcomes) {
  Scheduler& scheduler = *state.claimer;
  RetryPause pause;
  for (;;) {
    try {
      // Each outcome as its one-at-a-time call, all in one transaction.
      std::int64_t completed = 0;
      std::int64_t failed = 0;
      std::int64_t snoozed = 0;
      std::int64_t stale = 0;
      {
        const std::lock_guard<std::mutex> gate(state.gate);
        {
          WriteTransaction transaction(scheduler.handle());
          // Plain completions (no result, no follow-ups) together, many to a statement.
          const auto plain = [](const WorkerState::Outcome& outcome) {
            return !outcome.error && !outcome.snooze && !outcome.result &&
                   outcome.follow_ups.empty();
          };
          std::vector<Claim> plain_claims;
          for (const WorkerState::Outcome& outcome : outcomes) {
            if (plain(outcome))
              plain_claims.push_back(outcome.claim);
          }
          for (const bool settled : scheduler.complete_all(plain_claims)) {
            completed += settled ? 1 : 0;
            stale += settled ? 0 : 1;
          }
          for (WorkerState::Outcome& outcome : outcomes) {
            if (plain(outcome))
              continue;
            bool settled = false;
            if (outcome.error) {
              settled = scheduler.fail(outcome.claim, *outcome.error);
              failed += settled ? 1 : 0;
            } else if (outcome.snooze) {
              settled = scheduler.snooze(outcome.claim, *outcome.snooze);
              snoozed += settled ? 1 : 0;
            } else {
              const FollowUpCompletion done = complete_with_follow_ups(
                  scheduler, outcome.claim, outcome.result, outcome.follow_ups);
              settled = done != FollowUpCompletion::stale;
              completed += done == FollowUpCompletion::completed ? 1 : 0;
              failed += done == FollowUpCompletion::failed ? 1 : 0;
            }
            stale += settled ? 0 : 1;
          }
          transaction.commit();
        }
        scheduler.deliver_events();
      }
      state.completed.fetch_add(completed, std::memory_order_relaxed);
      state.failed.fetch_add(failed, std::memory_order_relaxed);
      state.snoozed.fetch_add(snoozed, std::memory_order_relaxed);
      state.stale.fetch_add(stale, std::memory_order_relaxed);
      // The claiming thread shares this connection, so its data_version does not move for
      // this commit: wake it, for what may have changed (retries and snoozes due, follow-ups).
      WakeHub::instance().job_added(state.file);
      return;
    } catch (const std::exception&) {
      const TimePoint now = scheduler.now();
      outcomes.erase(std::remove_if(outcomes.begin(), outcomes.end(),
                                    [&](const WorkerState::Outcome& outcome) {
                                      return now >= outcome.claim.lease_until;
                                    }),
                     outcomes.end());
      if (outcomes.empty() || state.stopping.load(std::memory_order_acquire))
        return;
      state.pause(pause.next());
    }
  }
}

// The committing thread: waits for results, then for more (up to commit_batch, or until the
// first has waited commit_window), and commits them together. At stop, commits what is left.
inline void committer_thread(const std::shared_ptr<WorkerState>& shared) {
  WorkerState& state = *shared;
  const auto batch = static_cast<std::size_t>(state.options.commit_batch);
  std::unique_lock<std::mutex> lock(state.mutex);
  for (;;) {
    state.results.wait(lock, [&] { return !state.finished.empty() || state.committer_stop; });
    if (state.finished.empty())
      return;  // stopped, nothing left
    state.results.wait_until(lock, state.first_finished + state.options.commit_window, [&] {
      return state.finished.size() >= batch || state.committer_stop;
    });
    std::vector<WorkerState::Outcome> outcomes;
    outcomes.swap(state.finished);
    lock.unlock();
    commit_outcomes(state, std::move(outcomes));
    lock.lock();
  }
}

// Makes JobContexts, and takes what the handler said through one.
struct JobContextAccess {
  static JobContext make(ContextLink& link, std::size_t slot, const Claim& claim) {
    return JobContext(link, slot, claim);
  }
  static void take(JobContext& context, std::optional<Seconds>& snooze,
                   std::optional<Payload>& result, std::vector<NewJob>& follow_ups) {
    snooze = context.snooze_;
    result = std::move(context.result_);
    follow_ups = std::move(context.follow_ups_);
  }
};

// Runs the handler on a claimed job, then hands its result to the committing thread.
inline void run_claimed(WorkerState& state, std::size_t index, const ClaimedJob& claimed) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  std::optional<std::string> error;
  JobContext context = JobContextAccess::make(state, index, claimed.claim);
  try {
    state.handler(claimed.job, context);
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();

  std::unique_lock<std::mutex> lock(state.mutex);
  WorkerState::Slot& slot = state.slots[index];
  state.handler_seconds =
      state.handler_seconds == 0.0 ? took : 0.9 * state.handler_seconds + 0.1 * took;
  if (slot.phase != WorkerState::Phase::running || slot.lost) {
    // Its lease was lost, or stop() released it: the result is not recorded.
    if (slot.phase == WorkerState::Phase::running)
      slot.phase = WorkerState::Phase::idle;
    lock.unlock();
    state.stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  slot.phase = WorkerState::Phase::idle;
  if (state.finished.empty())
    state.first_finished = Clock::now();
  WorkerState::Outcome outcome{slot.claim, std::move(error), {}, {}, {}};
  if (!outcome.error)
    JobContextAccess::take(context, outcome.snooze, outcome.result, outcome.follow_ups);
  state.finished.push_back(std::move(outcome));
  // The committing thread waits for the first result, then for a full batch.
  const std::size_t waiting = state.finished.size();
  lock.unlock();
  if (waiting == 1 || waiting == static_cast<std::size_t>(state.options.commit_batch))
    state.results.notify_one();
}

// A handler thread: takes claimed jobs as they come and runs them, until stop.
inline void handler_thread(const std::shared_ptr<WorkerState>& shared, std::size_t index) {
  WorkerState& state = *shared;
  current_worker() = &state;
  for (;;) {
    std::unique_lock<std::mutex> lock(state.mutex);
    ++state.idle_threads;
    if (state.room() > 0)
      state.room_made.notify_one();
    state.work.wait(lock, [&] {
      return !state.ready.empty() || state.stopping.load(std::memory_order_acquire);
    });
    --state.idle_threads;
    if (state.stopping.load(std::memory_order_acquire))
      return;
    WorkerState::Ready next = std::move(state.ready.front());
    state.ready.pop_front();
    if (next.lost) {
      lock.unlock();
      state.stale.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    state.slots[index] = WorkerState::Slot{WorkerState::Phase::running, next.claimed.claim, false};
    const bool room = state.room() > 0;  // for more ahead
    lock.unlock();
    if (room)
      state.room_made.notify_one();
    run_claimed(state, index, next.claimed);
  }
}

// How far the scheduler's clock may drift from the steady clock during a wait before the
// wait counts it as a step, in seconds.
inline constexpr double clock_step_tolerance = 0.5;

// Waits, without writing, until there may be work: the next job's start, a job added by
// this process, a commit by another connection (seen at a poll tick), a step of the clock,
// or stop.
inline void wait_for_work(WorkerState& state, Scheduler& scheduler, std::uint64_t seen,
                          std::int64_t version, std::optional<JobDelay> next,
                          int& empty_due_claims) {
  using Clock = std::chrono::steady_clock;
  WakeHub& hub = WakeHub::instance();
  const Clock::time_point start = Clock::now();
  Clock::time_point due = start + std::chrono::hours(24);
  if (next) {
    due = start + steady_duration(next->delay);
    if (next->delay.count() <= 0.0) {
      // Due now, yet the claim found nothing: another connection took it in between. Try
      // again at once, then with a short pause, so that a race never becomes a spin.
      if (empty_due_claims++ == 0) {
        return;
      }
      due = start +
            std::min<Clock::duration>(state.options.poll_interval, std::chrono::milliseconds{10});
    } else {
      empty_due_claims = 0;
    }
  }
  if (state.options.prune)
    due = std::min(due, state.next_prune);
  auto stop = [&] { return state.stopping.load(std::memory_order_acquire); };
  // The wait is on the steady clock; when the scheduler's clock steps (NTP, a suspend and
  // resume) the next start is nearer or further than it was: look again.
  const TimePoint wall_start = scheduler.now();
  auto wall_clock_stepped = [&] {
    const double wall = (scheduler.now() - wall_start).count();
    const double steady = std::chrono::duration<double>(Clock::now() - start).count();
    return std::abs(wall - steady) > clock_step_tolerance;
  };
  for (;;) {
    const Clock::time_point tick =
        Clock::now() +
        std::min<Clock::duration>(state.options.poll_interval, std::chrono::hours(24));
    hub.wait_until(state.file, seen, std::min(due, tick), stop);
    if (stop() || hub.generation(state.file) != seen || Clock::now() >= due) {
      return;
    }
    std::int64_t now_version = 0;
    {
      const std::lock_guard<std::mutex> gate(state.gate);
      now_version = scheduler.data_version();
    }
    if (now_version != version || wall_clock_stepped()) {
      return;
    }
  }
}

// How long the claiming thread prunes at a time: a prune cut short goes on after the next
// claim, so that claims and stop() never wait long for a big backlog.
inline constexpr std::chrono::milliseconds prune_slice{50};

// Runs the worker's prune (WorkerOptions::prune) for a slice when it is due. A busy or
// failing database waits for the next interval.
inline void prune_if_due(WorkerState& state, Scheduler& scheduler) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  if (!state.options.prune || now < state.next_prune)
    return;
  PruneSlice slice{&state.stopping, now + prune_slice, false};
  current_prune_slice() = &slice;
  try {
    const std::lock_guard<std::mutex> gate(state.gate);
    scheduler.prune(state.options.prune->ages);
  } catch (...) {
    // Busy, or worse: the next interval tries again.
  }
  current_prune_slice() = nullptr;
  state.next_prune = slice.cut_short ? Clock::now() : Clock::now() + state.options.prune->interval;
}

// Notices the scheduler's clock stepping back against the steady clock, between any two
// looks.
class BackwardStepWatch {
 public:
  explicit BackwardStepWatch(Scheduler& scheduler) : scheduler_(scheduler) { reset(); }

  // True once after each step back of more than clock_step_tolerance.
  bool stepped_back() {
    const double wall = (scheduler_.now() - wall_).count();
    const double steady =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - steady_).count();
    if (std::abs(wall - steady) <= clock_step_tolerance)
      return false;
    reset();
    return wall < steady;
  }

 private:
  void reset() {
    wall_ = scheduler_.now();
    steady_ = std::chrono::steady_clock::now();
  }

  Scheduler& scheduler_;
  TimePoint wall_{};
  std::chrono::steady_clock::time_point steady_{};
};

// The claiming thread: claims, in one transaction, as many due jobs as there is room for
// (see WorkerState::room), and hands them to the handler threads; sleeps when none is due.
inline void claimer_thread(const std::shared_ptr<WorkerState>& shared) {
  WorkerState& state = *shared;
  Scheduler& scheduler = *state.claimer;
  WakeHub& hub = WakeHub::instance();
  const std::vector<std::string>& queues = state.options.queues;
  RetryPause pause;
  int empty_due_claims = 0;
  BackwardStepWatch clock_watch(scheduler);
  for (;;) {
    prune_if_due(state, scheduler);
    std::size_t room = 0;
    {
      std::unique_lock<std::mutex> lock(state.mutex);
      const auto prune_at = state.options.prune
                                ? state.next_prune
                                : std::chrono::steady_clock::now() + std::chrono::hours(24);
      if (!state.room_made.wait_until(lock, prune_at, [&] {
            return state.claimer_stop || state.stopping.load(std::memory_order_acquire) ||
                   state.room() > 0;
          }))
        continue;  // time to prune
      if (state.claimer_stop || state.stopping.load(std::memory_order_acquire))
        return;
      room = state.room();
    }
    try {
      // After a step back, leases granted before it look longer than they are: cut them, but
      // for this worker's own, which it goes on extending.
      if (clock_watch.stepped_back()) {
        const std::vector<std::int64_t> held = state.held_jobs();
        const std::lock_guard<std::mutex> gate(state.gate);
        scheduler.cut_overlong_leases(std::nullopt, held);
      }
      // Look before claiming, so that any add or commit after the look wakes the wait.
      const std::uint64_t seen = hub.generation(state.file);
      std::int64_t version = 0;
      std::vector<ClaimedJob> claimed;
      {
        const std::lock_guard<std::mutex> gate(state.gate);
        version = scheduler.data_version();
        claimed = queues.empty() ? scheduler.claim_jobs(room, state.options.lease)
                                 : scheduler.claim_jobs(room, state.options.lease, queues);
      }
      if (!claimed.empty()) {
        pause.reset();
        empty_due_claims = 0;
        bool released = false;
        {
          const std::lock_guard<std::mutex> lock(state.mutex);
          if (!state.stopping.load(std::memory_order_acquire)) {
            for (ClaimedJob& job : claimed)
              state.ready.push_back(WorkerState::Ready{std::move(job), false});
          } else {
            released = true;
          }
        }
        if (claimed.size() == 1)
          state.work.notify_one();
        else
          state.work.notify_all();
        if (released) {  // stop came while claiming: give the jobs back for others at once
          std::vector<Claim> claims;
          for (const ClaimedJob& job : claimed)
            claims.push_back(job.claim);
          try {
            const std::lock_guard<std::mutex> gate(state.gate);
            scheduler.release_all(claims);
          } catch (const std::exception&) {
            // Left to their leases.
          }
          return;
        }
        continue;
      }
      std::optional<JobDelay> next;
      {
        const std::lock_guard<std::mutex> gate(state.gate);
        next = queues.empty() ? scheduler.seconds_until_next_job()
                              : scheduler.seconds_until_next_job(queues);
      }
      pause.reset();
      wait_for_work(state, scheduler, seen, version, next, empty_due_claims);
    } catch (...) {
      // BusyError, IoError or worse: the database is unavailable for now. Try again later.
      state.pause(pause.next());
    }
  }
}

// Extends the leases of jobs waiting to start and of running handlers, every lease/3.
inline void heartbeat_thread(const std::shared_ptr<WorkerState>& shared) {
  WorkerState& state = *shared;
  Scheduler& scheduler = *state.heartbeat;
  const Seconds lease = state.options.lease;
  const auto period = std::max<std::chrono::steady_clock::duration>(steady_duration(lease / 3.0),
                                                                    std::chrono::milliseconds{1});
  struct Held {
    Claim claim;
    bool extended;
  };
  std::vector<Held> held;
  std::unique_lock<std::mutex> lock(state.mutex);
  for (;;) {
    if (state.beat.wait_for(lock, period,
                            [&] { return state.heartbeat_stop || state.beat_requested; }) &&
        state.heartbeat_stop) {
      return;
    }
    state.beat_requested = false;
    held.clear();
    for (const WorkerState::Slot& slot : state.slots) {
      if (slot.phase != WorkerState::Phase::idle && !slot.lost)
        held.push_back(Held{slot.claim, false});
    }
    for (const WorkerState::Ready& ready : state.ready) {
      if (!ready.lost)
        held.push_back(Held{ready.claimed.claim, false});
    }
    if (held.empty()) {
      continue;
    }
    lock.unlock();
    std::size_t answered = 0;
    for (Held& h : held) {
      try {
        h.extended = scheduler.extend(h.claim, lease);
        held[answered++] = h;
      } catch (const std::exception&) {
        // Busy: try again at the next beat, while two thirds of the lease remain.
      }
    }
    held.resize(answered);
    lock.lock();
    auto update = [](const Held& h, Claim& claim, bool& lost) {
      if (claim.token != h.claim.token || claim.job_id != h.claim.job_id)
        return;
      if (h.extended) {
        claim.lease_until = h.claim.lease_until;
      } else {
        lost = true;
      }
    };
    for (const Held& h : held) {
      for (WorkerState::Slot& slot : state.slots) {
        if (slot.phase != WorkerState::Phase::idle)
          update(h, slot.claim, slot.lost);
      }
      for (WorkerState::Ready& ready : state.ready)
        update(h, ready.claimed.claim, ready.lost);
    }
    state.changed.notify_all();  // for handlers waiting on a cancellation
  }
}

}  // namespace detail

/// Runs a handler on every job as it falls due, in threads of its own, until stopped.
///
/// One thread claims due jobs (of `queues`, or of any queue) in batches: one for each free
/// handler thread, and a few ahead while the handlers are fast against the lease. Handler
/// threads run them; the job is completed when the handler returns, or failed with the
/// exception's message when it throws (the RetryPolicy decides when it runs again). Results
/// are committed together (WorkerOptions::commit_batch, commit_window): a crash loses at
/// most those not committed yet, and those jobs run again once their lease runs out, so
/// delivery is at least once. A heartbeat extends the leases of jobs waiting and running.
/// When nothing is due the claiming thread sleeps until the next start, a job added by this
/// process, or a commit by another process: on Linux noticed at once (inotify on the -wal
/// file, to which every commit writes), elsewhere within `poll_interval` (by reading PRAGMA
/// data_version only, which is also the fallback when the watch cannot be set).
///
/// A handler that takes `(const Job&, JobContext&)` can also store a result, snooze the job
/// instead of completing it, add jobs in the completion's transaction, and see whether its
/// claim went stale (a cancel, a lost lease) while it runs.
///
/// Thread safety: stop(), stop_requested() and the counters may be called from any thread,
/// handlers included. The handler runs concurrently on up to `threads` threads.
class Worker {
 public:
  /// A handler of the job alone: returning completes it, throwing fails the attempt.
  using Handler = std::function<void(const Job&)>;
  /// A handler that also takes the JobContext of the job it runs.
  using ContextHandler = std::function<void(const Job&, JobContext&)>;

  /// Opens its connections (three, whatever the number of threads), then starts the threads.
  /// Throws InvalidArgumentError for bad options or an in-memory database, and what
  /// Scheduler::open throws for a bad file; no thread is left running when it throws.
  Worker(std::string path, Handler handler, WorkerOptions options = {})
      : Worker(std::move(path), with_context(std::move(handler)), std::move(options)) {}

  /// As above, with a handler that takes a JobContext: to store a result, snooze, add jobs
  /// with the completion, or notice a cancellation.
  Worker(std::string path, ContextHandler handler, WorkerOptions options = {}) {
    detail::check_worker_options(options, static_cast<bool>(handler));
    auto state = std::make_shared<detail::WorkerState>(std::move(handler), std::move(options));
    const WorkerOptions& settings = state->options;
    state->heartbeat.emplace(Scheduler::open(path, settings.scheduler));
    state->file = state->heartbeat->file();
    if (state->file.empty()) {
      detail::throw_invalid("a Worker needs a database file; '" + path +
                            "' is in memory, a separate database for each connection");
    }
    state->claimer.emplace(Scheduler::open(path, settings.scheduler));
    state->slots.resize(static_cast<std::size_t>(settings.threads));
    state_ = std::move(state);
    try {
      auto watch = std::make_shared<detail::FileWatch>(state_->file + "-wal");
      if (watch->ok()) {
        watch_ = watch;
        watcher_ = std::thread([watch, file = state_->file] {
          while (watch->wait())
            detail::WakeHub::instance().job_added(file);
        });
      }
      heartbeat_ = std::thread(detail::heartbeat_thread, state_);
      committer_ = std::thread(detail::committer_thread, state_);
      threads_.reserve(static_cast<std::size_t>(settings.threads));
      for (std::size_t i = 0; i < static_cast<std::size_t>(settings.threads); ++i) {
        {
          const std::lock_guard<std::mutex> lock(state_->mutex);
          ++state_->threads_alive;
        }
        try {
          threads_.emplace_back(&Worker::run, state_, i);
        } catch (...) {
          const std::lock_guard<std::mutex> lock(state_->mutex);
          --state_->threads_alive;
          throw;
        }
      }
      claimer_ = std::thread(detail::claimer_thread, state_);
    } catch (...) {
      stop();
      throw;
    }
  }

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Stops the worker (see stop()). Never throws.
  ~Worker() {
    try {
      stop();
    } catch (...) {
      // Nothing left to do: the threads hold their own share of the state.
    }
    // Only when destroyed from one of its own handlers: the threads finish on their own.
    if (watch_)
      watch_->stop();
    if (watcher_.joinable())
      watcher_.detach();
    if (heartbeat_.joinable()) {
      {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        state_->claimer_stop = true;
        state_->committer_stop = true;
        state_->heartbeat_stop = true;
      }
      state_->notify_everyone();
      for (std::thread* thread : {&heartbeat_, &committer_, &claimer_}) {
        if (thread->joinable())
          thread->detach();
      }
    }
    for (std::thread& thread : threads_) {
      if (thread.joinable()) {
        thread.detach();
      }
    }
  }

  /// Stops claiming and gives back the jobs claimed but not started; waits up to `grace`
  /// for running handlers to return, then releases the claims of those still running
  /// (their jobs are free again at once; such a handler's result later is refused as
  /// stale), commits the results of the others, and returns without waiting for the stuck
  /// ones. Idempotent. Called from a handler, it only requests the stop.
  void stop() {
    detail::WorkerState& state = *state_;
    state.request_stop();
    if (detail::current_worker() == &state) {
      return;
    }
    const std::lock_guard<std::mutex> once(stop_mutex_);
    if (stopped_) {
      return;
    }
    if (claimer_.joinable()) {
      claimer_.join();
    }
    if (watch_)
      watch_->stop();
    if (watcher_.joinable()) {
      watcher_.join();
    }

    std::vector<bool> abandoned(threads_.size(), false);
    std::vector<Claim> to_release;
    {
      std::unique_lock<std::mutex> lock(state.mutex);
      for (const detail::WorkerState::Ready& ready : state.ready) {
        if (!ready.lost)
          to_release.push_back(ready.claimed.claim);
      }
      state.ready.clear();
      state.changed.wait_for(lock, state.options.grace, [&] { return state.threads_alive == 0; });
      for (std::size_t i = 0; i < threads_.size(); ++i) {
        detail::WorkerState::Slot& slot = state.slots[i];
        if (slot.phase == detail::WorkerState::Phase::running) {
          slot.phase = detail::WorkerState::Phase::abandoned;
          to_release.push_back(slot.claim);
          abandoned[i] = true;
        }
      }
    }
    for (std::size_t i = 0; i < threads_.size(); ++i) {
      if (!threads_[i].joinable()) {
        continue;
      }
      if (abandoned[i]) {
        threads_[i].detach();
      } else {
        threads_[i].join();
      }
    }
    {
      const std::lock_guard<std::mutex> lock(state.mutex);
      state.committer_stop = true;
    }
    state.results.notify_all();
    if (committer_.joinable()) {
      committer_.join();  // commits what finished
    }
    {
      const std::lock_guard<std::mutex> lock(state.mutex);
      state.heartbeat_stop = true;
    }
    state.beat.notify_all();
    if (heartbeat_.joinable()) {
      heartbeat_.join();
    }
    if (!to_release.empty()) {
      try {
        state.heartbeat->release_all(to_release);
      } catch (const std::exception&) {
        // Left to their leases.
      }
    }
    stopped_ = true;
  }

  /// True once stop() was called; handlers may poll it to finish early.
  bool stop_requested() const noexcept { return state_->stopping.load(std::memory_order_acquire); }

  /// Jobs completed by this worker.
  std::int64_t completed() const noexcept {
    return state_->completed.load(std::memory_order_relaxed);
  }
  /// Failed attempts recorded by this worker (handlers that threw).
  std::int64_t failed() const noexcept { return state_->failed.load(std::memory_order_relaxed); }
  /// Handlers that returned after their claim went stale (lease lost or released by stop),
  /// so their result was not recorded.
  std::int64_t stale() const noexcept { return state_->stale.load(std::memory_order_relaxed); }
  /// Jobs given back by JobContext::snooze.
  std::int64_t snoozed() const noexcept { return state_->snoozed.load(std::memory_order_relaxed); }

 private:
  static ContextHandler with_context(Handler handler) {
    if (!handler)
      return {};
    return [handler = std::move(handler)](const Job& job, JobContext&) { handler(job); };
  }

  static void run(std::shared_ptr<detail::WorkerState> state, std::size_t index) {
    try {
      detail::handler_thread(state, index);
    } catch (...) {
      // handler_thread catches everything; nothing may escape a thread.
    }
    {
      const std::lock_guard<std::mutex> lock(state->mutex);
      --state->threads_alive;
    }
    state->changed.notify_all();
  }

  // Declared first so it outlives the threads' waits.
  detail::WakeHub::Listener listener_;
  std::shared_ptr<detail::WorkerState> state_;
  std::thread heartbeat_;
  std::thread committer_;
  std::thread claimer_;
  std::shared_ptr<detail::FileWatch> watch_;  // null when the file cannot be watched
  std::thread watcher_;
  std::vector<std::thread> threads_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace jobsched
