// SPDX-License-Identifier: MIT
#pragma once

// Events (Options::on_event) wait here from the call that made them until the connection is
// out of every transaction: a call adds its events once its own writes succeeded, SQLite's
// rollback hook drops those of a transaction rolled back, and the rest are delivered when
// no transaction is open (their transaction committed).

#include <sqlite3.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "../event.hpp"

namespace jobsched::detail {

class EventQueue {
 public:
  EventQueue(sqlite3* db, EventHook hook) : db_(db), hook_(std::move(hook)) {
    sqlite3_rollback_hook(db_, &EventQueue::on_rollback, this);
  }
  ~EventQueue() { sqlite3_rollback_hook(db_, nullptr, nullptr); }
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  void add(Event event) { pending_.push_back(std::move(event)); }
  std::size_t size() const noexcept { return pending_.size(); }
  // Drops the events after the first `size` (a call that failed made them).
  void truncate(std::size_t size) noexcept {
    if (size < pending_.size())
      pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(size), pending_.end());
  }

  // Calls the hook with the events made so far, once no transaction is open.
  void deliver() noexcept {
    if (pending_.empty() || sqlite3_get_autocommit(db_) == 0)
      return;
    std::vector<Event> events;
    events.swap(pending_);
    for (const Event& event : events) {
      try {
        hook_(event);
      } catch (...) {
        // The change is committed; the hook's failure is its own.
      }
    }
  }

 private:
  static void on_rollback(void* queue) noexcept { static_cast<EventQueue*>(queue)->pending_.clear(); }

  sqlite3* db_;
  EventHook hook_;
  std::vector<Event> pending_;
};

// One call's events: dropped unless the call gets to deliver() them (an error undid its
// writes, even when a savepoint of the host's transaction keeps the rest).
class EventScope {
 public:
  explicit EventScope(EventQueue* queue) noexcept
      : queue_(queue), mark_(queue != nullptr ? queue->size() : 0) {}
  ~EventScope() {
    if (queue_ != nullptr && !done_)
      queue_->truncate(mark_);
  }
  EventScope(const EventScope&) = delete;
  EventScope& operator=(const EventScope&) = delete;

  void deliver() noexcept {
    done_ = true;
    if (queue_ != nullptr)
      queue_->deliver();
  }

 private:
  EventQueue* queue_;
  std::size_t mark_;
  bool done_ = false;
};

}  // namespace jobsched::detail
