// SPDX-License-Identifier: MIT
#pragma once

// Crash chaos: the parent's side. run_chaos() adds the first jobs, forks the children, kills
// and replaces one at random moments, reads their pipes, and hands the log to the checks.

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "check.hpp"
#include "config.hpp"
#include "records.hpp"
#include "reports.hpp"
#include "result.hpp"
#include "roles.hpp"

namespace jobsched_chaos {

namespace detail {

struct Child {
  Role role = Role::plain;
  pid_t pid = -1;  // -1: the slot is empty (a producer or rogue that finished)
  int fd = -1;
  int number = 0;
  bool finished = false;  // producer: reported done; rogue: did its deletes
  int deletes_done = 0;   // rogue
  std::string buffer;
};

/// Moves the complete records in `child.buffer` to `log`.
inline void take_records(Child& child, std::vector<Logged>& log) {
  std::size_t used = 0;
  while (child.buffer.size() - used >= sizeof(Record)) {
    Logged logged;
    std::memcpy(&logged.record, child.buffer.data() + used, sizeof(Record));
    logged.process = child.number;
    logged.role = child.role;
    if (logged.record.kind == kProducerDone)
      child.finished = true;
    if (logged.record.kind == kDeleted)
      ++child.deletes_done;
    log.push_back(logged);
    used += sizeof(Record);
  }
  child.buffer.erase(0, used);
}

/// Reads what is there; false at end of file.
inline bool read_some(Child& child, std::vector<Logged>& log) {
  char bytes[8192];
  for (;;) {
    const ssize_t got = ::read(child.fd, bytes, sizeof bytes);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      return false;
    child.buffer.append(bytes, static_cast<std::size_t>(got));
    take_records(child, log);
    return true;
  }
}

/// After the child died: reads to the end of its pipe (for at most 5 s) and closes it.
inline void drain(Child& child, std::vector<Logged>& log, Result& result) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{5};
  for (;;) {
    pollfd ready{child.fd, POLLIN, 0};
    const int polled = ::poll(&ready, 1, 100);
    if (polled > 0 && !read_some(child, log))
      break;
    if (polled < 0 && errno != EINTR) {
      harness_error(result, "poll failed while draining a pipe");
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      harness_error(result, "a dead child's pipe did not close within 5 s");
      break;
    }
  }
  if (!child.buffer.empty())
    harness_error(result, "a child's pipe ended inside a record");
  ::close(child.fd);
  child.fd = -1;
}

/// Waits (at most 10 s) for the child to end; its wait status, or nothing.
inline std::optional<int> reap(pid_t pid, Result& result) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid)
      return status;
    if (got < 0 && errno != EINTR) {
      harness_error(result, "waitpid failed");
      return std::nullopt;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      harness_error(result, "a child did not end within 10 s of SIGKILL");
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
}

}  // namespace detail

/// Runs one chaos round on a new file at `path` (which must not exist yet).
inline Result run_chaos(const std::string& path, const Config& config) {
  using namespace detail;
  using Clock = std::chrono::steady_clock;
  Result result;
  result.jobs = config.jobs;
  result.seed = config.seed != 0 ? config.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  std::mt19937_64 random(result.seed);
  const jobsched::Options options = scheduler_options(config);
  RunFacts facts;
  const Clock::time_point began = Clock::now();

  // The first jobs, in one transaction. No connection stays open in the parent across a
  // fork, and no thread ever runs in it.
  try {
    auto scheduler = jobsched::Scheduler::open(path, options);
    std::vector<std::int64_t> ids;
    if (sqlite3_exec(scheduler.handle(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error("BEGIN failed");
    for (int i = 0; i < std::min(config.initial_jobs, config.jobs); ++i)
      ids.push_back(
          scheduler.add_job(jobsched::Payload::integer(i + 1), new_job_options(random, config)).id);
    if (sqlite3_exec(scheduler.handle(), "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("COMMIT failed: ") + sqlite3_errmsg(scheduler.handle()));
    facts.added_by_parent.insert(ids.begin(), ids.end());
  } catch (const std::exception& e) {
    harness_error(result, std::string("adding the first jobs: ") + e.what());
    return result;
  }

  const pid_t parent = ::getpid();
  std::vector<Child> children;
  auto add_slot = [&children](Role role) {
    children.emplace_back();
    children.back().role = role;
  };
  for (int i = 0; i < config.processes; ++i)
    add_slot(Role::plain);
  for (int i = 0; i < config.worker_processes; ++i)
    add_slot(Role::worker);
  add_slot(Role::producer);
  if (config.rogue_deletes > 0)
    add_slot(Role::rogue);
  std::vector<Logged> log;
  log.reserve(static_cast<std::size_t>(config.jobs) * 8 + 1024);

  auto spawn = [&](std::size_t slot) {
    int fds[2];
    if (::pipe(fds) != 0) {
      harness_error(result, "pipe failed");
      return false;
    }
    Child& child = children[slot];
    const int number = result.processes_started++;
    const std::uint64_t seed = random();
    int plain_number = 0;
    for (std::size_t i = 0; i < slot; ++i)
      plain_number += children[i].role == Role::plain ? 1 : 0;
    const bool skewed = config.claim_skew.count() != 0 && plain_number % 2 == 1;
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      harness_error(result, "fork failed");
      return false;
    }
    if (pid == 0) {
      ::close(fds[0]);
      for (const Child& other : children) {
        if (other.fd >= 0)
          ::close(other.fd);
      }
      switch (child.role) {
        case Role::plain:
          plain_main(path, config, fds[1], seed, skewed, parent);
        case Role::worker:
          worker_main(path, config, fds[1], seed, parent);
        case Role::producer:
          producer_main(path, config, fds[1], seed, parent);
        case Role::rogue:
          rogue_main(path, config, fds[1], seed, parent, config.rogue_deletes - child.deletes_done);
      }
      ::_exit(1);
    }
    ::close(fds[1]);
    child.pid = pid;
    child.fd = fds[0];
    child.number = number;
    child.buffer.clear();
    if (child.role == Role::producer)
      ++result.producers_started;
    return true;
  };
  // A child that ended (killed, or on its own): collect it and decide whether it comes back.
  auto replace = [&](std::size_t slot, bool killed) {
    Child& child = children[slot];
    const std::optional<int> status = reap(child.pid, result);
    drain(child, log, result);
    const bool finished_well = status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0 &&
                               (child.finished || (child.role == Role::rogue &&
                                                   child.deletes_done >= config.rogue_deletes));
    if (killed) {
      facts.killed.insert(child.number);
    } else if (!finished_well) {
      ++result.unexpected_exits;
    }
    child.pid = -1;
    if (child.role == Role::rogue && child.deletes_done >= config.rogue_deletes)
      child.finished = true;
    if (!status || child.finished)
      return true;  // done, or not collectable: either way, no replacement
    return spawn(slot);
  };

  bool spawned = true;
  for (std::size_t i = 0; i < children.size() && spawned; ++i)
    spawned = spawn(i);

  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto next_interval = [&] {
    return std::chrono::duration_cast<Clock::duration>(config.kill_interval * jitter(random));
  };
  Clock::time_point next_kill = Clock::now() + next_interval();
  Clock::time_point next_look = Clock::now();
  std::vector<pollfd> polled;
  std::vector<std::size_t> polled_slot;
  while (spawned && result.harness_errors == 0) {
    const Clock::time_point now = Clock::now();
    if (now - began > config.time_limit) {
      result.timed_out = true;
      break;
    }
    const bool others_done = std::all_of(children.begin(), children.end(), [](const Child& c) {
      return (c.role != Role::producer && c.role != Role::rogue) || c.finished;
    });
    if (others_done && now >= next_look) {
      // Done when every job was added and none is pending (completed or failed, or gone).
      std::int64_t pending = -1;
      try {
        auto scheduler = jobsched::Scheduler::open(path, options);
        pending = scheduler.count_pending_jobs();
      } catch (const std::exception&) {
        // Busy or the like: look again later.
      }
      if (pending == 0)
        break;
      next_look = Clock::now() + std::chrono::milliseconds{50};
    }
    if (now >= next_kill) {
      // The victim's role in turn (so that each is killed, whatever the luck), the victim
      // and the moment at random.
      static constexpr Role turns[] = {Role::plain, Role::producer, Role::plain, Role::worker};
      std::vector<std::size_t> killable;
      for (int pass = 0; pass < 2 && killable.empty(); ++pass) {
        for (std::size_t i = 0; i < children.size(); ++i) {
          if (children[i].pid > 0 && children[i].role != Role::rogue &&
              (pass == 1 || children[i].role == turns[result.kills % 4]))
            killable.push_back(i);
        }
      }
      if (!killable.empty()) {
        std::uniform_int_distribution<std::size_t> pick(0, killable.size() - 1);
        const std::size_t slot = killable[pick(random)];
        ::kill(children[slot].pid, SIGKILL);
        ++result.kills;
        result.kills_of_producer += children[slot].role == Role::producer ? 1 : 0;
        result.kills_of_worker_processes += children[slot].role == Role::worker ? 1 : 0;
        spawned = replace(slot, true);
      }
      next_kill = Clock::now() + next_interval();
    }
    polled.clear();
    polled_slot.clear();
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (children[i].pid > 0) {
        polled.push_back(pollfd{children[i].fd, POLLIN, 0});
        polled_slot.push_back(i);
      }
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(next_kill, others_done ? next_look : next_kill) - Clock::now());
    const int ready = ::poll(polled.data(), polled.size(),
                             static_cast<int>(std::clamp<long long>(wait.count(), 0, 20)));
    if (ready <= 0)
      continue;
    for (std::size_t k = 0; k < polled.size() && spawned; ++k) {
      if ((polled[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      if (!read_some(children[polled_slot[k]], log))
        spawned = replace(polled_slot[k], false);  // ended on its own
    }
  }
  for (Child& child : children) {
    if (child.pid <= 0)
      continue;
    ::kill(child.pid, SIGKILL);
    reap(child.pid, result);
    drain(child, log, result);
    child.pid = -1;
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - began).count();
  analyse(log, facts, path, config, result);
  return result;
}

}  // namespace jobsched_chaos
