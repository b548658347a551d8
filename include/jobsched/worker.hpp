// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
#include "detail/validate.hpp"
#include "detail/wake.hpp"
#include "error.hpp"
#include "job.hpp"
#include "options.hpp"
#include "scheduler.hpp"
#include "time.hpp"

namespace jobsched {

/// How a Worker runs its jobs.
struct WorkerOptions {
  /// Handler threads, each with its own connection (at least 1).
  int threads = 1;
  /// Each claim's lease; a heartbeat extends it every lease/3 while the handler runs.
  Seconds lease{30};
  /// The queues served ("" is the default queue); empty: every queue.
  std::vector<std::string> queues;
  /// How often an idle worker checks for commits by other processes (a read, never a write).
  std::chrono::milliseconds poll_interval{50};
  /// How long stop() waits for running handlers before releasing their claims.
  std::chrono::milliseconds grace{5000};
  /// The options of every connection the worker opens.
  Options scheduler;
};

namespace detail {

// Everything a worker's threads touch, owned jointly by the Worker and its threads, so that
// a handler still stuck after stop() can return safely once the Worker is gone.
struct WorkerState {
  using Handler = std::function<void(const Job&)>;

  enum class Phase { idle, running, abandoned };
  struct Slot {
    Phase phase = Phase::idle;
    Claim claim;
    bool lost = false;  // the heartbeat found the claim stale
  };

  WorkerState(Handler h, WorkerOptions o) : handler(std::move(h)), options(std::move(o)) {}

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
    changed.notify_all();
    WakeHub::instance().wake_all();
  }

  const Handler handler;
  const WorkerOptions options;
  std::vector<Scheduler> schedulers;   // one per handler thread, used by that thread only
  std::optional<Scheduler> heartbeat;  // the heartbeat thread's, then stop()'s
  std::string file;

  std::atomic<bool> stopping{false};
  std::atomic<std::int64_t> completed{0};
  std::atomic<std::int64_t> failed{0};
  std::atomic<std::int64_t> stale{0};

  std::mutex mutex;
  std::condition_variable changed;
  std::vector<Slot> slots;      // guarded by mutex, one per handler thread
  int threads_alive = 0;        // guarded by mutex
  bool heartbeat_stop = false;  // guarded by mutex
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
}

// Completes or fails a claim after its handler returned. A busy or failing database is
// retried until the lease runs out or stop is requested; then the claim is left to its lease.
inline void settle(WorkerState& state, Scheduler& scheduler, const Claim& claim,
                   const std::optional<std::string>& error) {
  RetryPause pause;
  for (;;) {
    try {
      const bool done = error ? scheduler.fail(claim, *error) : scheduler.complete(claim);
      std::atomic<std::int64_t>& counter =
          !done ? state.stale : (error ? state.failed : state.completed);
      counter.fetch_add(1, std::memory_order_relaxed);
      return;
    } catch (const std::exception&) {
      if (state.stopping.load(std::memory_order_acquire)) {
        return;
      }
      if (scheduler.now() >= claim.lease_until) {
        return;
      }
      state.pause(pause.next());
    }
  }
}

// Runs the handler on a claimed job, then completes or fails it.
inline void run_claimed(WorkerState& state, std::size_t index, Scheduler& scheduler,
                        const ClaimedJob& claimed) {
  bool start = false;
  {
    const std::lock_guard<std::mutex> lock(state.mutex);
    if (!state.stopping.load(std::memory_order_acquire)) {
      state.slots[index] = WorkerState::Slot{WorkerState::Phase::running, claimed.claim, false};
      start = true;
    }
  }
  if (!start) {  // stop came while claiming: give the job back for others to take at once
    try {
      scheduler.release(claimed.claim);
    } catch (const std::exception&) {
      // Left to its lease.
    }
    return;
  }

  std::optional<std::string> error;
  try {
    state.handler(claimed.job);
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }

  Claim claim;
  bool lost = false;
  {
    const std::lock_guard<std::mutex> lock(state.mutex);
    WorkerState::Slot& slot = state.slots[index];
    claim = slot.claim;
    lost = slot.lost;
    if (slot.phase == WorkerState::Phase::running) {
      slot.phase = WorkerState::Phase::idle;
    }
  }
  if (lost) {
    state.stale.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  settle(state, scheduler, claim, error);
}

// Waits, without writing, until there may be work: the next job's start, a job added by
// this process, a commit by another connection (seen at a poll tick), or stop.
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
  auto stop = [&] { return state.stopping.load(std::memory_order_acquire); };
  for (;;) {
    const Clock::time_point tick =
        Clock::now() +
        std::min<Clock::duration>(state.options.poll_interval, std::chrono::hours(24));
    hub.wait_until(state.file, seen, std::min(due, tick), stop);
    if (stop() || hub.generation(state.file) != seen || Clock::now() >= due) {
      return;
    }
    if (scheduler.data_version() != version) {
      return;
    }
  }
}

inline void handler_thread(const std::shared_ptr<WorkerState>& shared, std::size_t index) {
  WorkerState& state = *shared;
  current_worker() = &state;
  Scheduler& scheduler = state.schedulers[index];
  WakeHub& hub = WakeHub::instance();
  const std::vector<std::string>& queues = state.options.queues;
  RetryPause pause;
  int empty_due_claims = 0;
  while (!state.stopping.load(std::memory_order_acquire)) {
    try {
      // Look before claiming, so that any add or commit after the look wakes the wait.
      const std::uint64_t seen = hub.generation(state.file);
      const std::int64_t version = scheduler.data_version();
      const std::optional<ClaimedJob> claimed =
          queues.empty() ? scheduler.claim_next_job(state.options.lease)
                         : scheduler.claim_next_job(state.options.lease, queues);
      if (claimed) {
        pause.reset();
        empty_due_claims = 0;
        run_claimed(state, index, scheduler, *claimed);
        continue;
      }
      const std::optional<JobDelay> next = queues.empty()
                                               ? scheduler.seconds_until_next_job()
                                               : scheduler.seconds_until_next_job(queues);
      pause.reset();
      wait_for_work(state, scheduler, seen, version, next, empty_due_claims);
    } catch (...) {
      // BusyError, IoError or worse: the database is unavailable for now. Try again later.
      state.pause(pause.next());
    }
  }
}

inline void heartbeat_thread(const std::shared_ptr<WorkerState>& shared) {
  WorkerState& state = *shared;
  Scheduler& scheduler = *state.heartbeat;
  const Seconds lease = state.options.lease;
  const auto period = std::max<std::chrono::steady_clock::duration>(steady_duration(lease / 3.0),
                                                                    std::chrono::milliseconds{1});
  struct Held {
    std::size_t index;
    Claim claim;
    bool extended;
  };
  std::vector<Held> held;
  std::unique_lock<std::mutex> lock(state.mutex);
  for (;;) {
    if (state.changed.wait_for(lock, period, [&] { return state.heartbeat_stop; })) {
      return;
    }
    held.clear();
    for (std::size_t i = 0; i < state.slots.size(); ++i) {
      if (state.slots[i].phase != WorkerState::Phase::idle && !state.slots[i].lost) {
        held.push_back(Held{i, state.slots[i].claim, false});
      }
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
    for (const Held& h : held) {
      WorkerState::Slot& slot = state.slots[h.index];
      if (slot.phase == WorkerState::Phase::idle || slot.claim.token != h.claim.token ||
          slot.claim.job_id != h.claim.job_id) {
        continue;
      }
      if (h.extended) {
        slot.claim.lease_until = h.claim.lease_until;
      } else {
        slot.lost = true;
      }
    }
  }
}

}  // namespace detail

/// Runs a handler on every job as it falls due, in threads of its own, until stopped.
///
/// Each handler thread claims the next due job (of `queues`, or of any queue), runs the
/// handler, and completes the job when it returns or fails it with the exception's message
/// when it throws (the RetryPolicy decides when it runs again). A heartbeat extends the
/// leases of running handlers. When nothing is due the threads sleep until the next start,
/// a job added by this process, or a commit by another process (noticed within
/// `poll_interval`, by reading PRAGMA data_version only).
///
/// Thread safety: stop(), stop_requested() and the counters may be called from any thread,
/// handlers included. The handler runs concurrently on up to `threads` threads.
class Worker {
 public:
  using Handler = std::function<void(const Job&)>;

  /// Opens every connection, then starts the threads. Throws InvalidArgumentError for bad
  /// options or an in-memory database, and what Scheduler::open throws for a bad file;
  /// no thread is left running when it throws.
  Worker(std::string path, Handler handler, WorkerOptions options = {}) {
    detail::check_worker_options(options, static_cast<bool>(handler));
    auto state = std::make_shared<detail::WorkerState>(std::move(handler), std::move(options));
    const WorkerOptions& settings = state->options;
    state->heartbeat.emplace(Scheduler::open(path, settings.scheduler));
    state->file = state->heartbeat->file();
    if (state->file.empty()) {
      detail::throw_invalid("a Worker needs a database file; '" + path +
                            "' is in memory, a separate database for each connection");
    }
    state->schedulers.reserve(static_cast<std::size_t>(settings.threads));
    for (int i = 0; i < settings.threads; ++i) {
      state->schedulers.push_back(Scheduler::open(path, settings.scheduler));
    }
    state->slots.resize(static_cast<std::size_t>(settings.threads));
    state_ = std::move(state);
    try {
      heartbeat_ = std::thread(detail::heartbeat_thread, state_);
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
    if (heartbeat_.joinable()) {
      {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        state_->heartbeat_stop = true;
      }
      state_->changed.notify_all();
      heartbeat_.detach();
    }
    for (std::thread& thread : threads_) {
      if (thread.joinable()) {
        thread.detach();
      }
    }
  }

  /// Stops claiming, waits up to `grace` for running handlers to return, then releases the
  /// claims of those still running (their jobs are free again at once; such a handler's
  /// completion later is refused as stale) and returns without waiting for them.
  /// Idempotent. Called from a handler, it only requests the stop.
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

    std::vector<bool> abandoned(threads_.size(), false);
    std::vector<Claim> to_release;
    {
      std::unique_lock<std::mutex> lock(state.mutex);
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
      state.heartbeat_stop = true;
    }
    state.changed.notify_all();
    if (heartbeat_.joinable()) {
      heartbeat_.join();
    }
    for (const Claim& claim : to_release) {
      try {
        state.heartbeat->release(claim);
      } catch (const std::exception&) {
        // Left to its lease.
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

 private:
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
  std::vector<std::thread> threads_;
  std::mutex stop_mutex_;
  bool stopped_ = false;
};

}  // namespace jobsched
