// SPDX-License-Identifier: MIT
// Recurring schedules under chaos (issue 11, "Exactly once per firing"). Six real processes
// share one file and one accelerated clock (hundreds of schedule seconds per wall second, so
// that thousands of firings fall due in a few seconds): each declares the same schedules at
// its start, then claims in batches, claims one at a time, runs a jobsched::Worker, only
// reads (next_job, seconds_until_next_job, get_schedule), runs the seed's loop
// (seconds_until_next_job, get_job, complete_job), or declares again every few
// milliseconds. The parent SIGKILLs one at random every ~120 ms and starts a replacement.
// At the end only the readers run (every firing made then was made by next_job and
// seconds_until_next_job), then everything is killed and the parent runs what is left.
// Declarations may come in two versions (payload v1 or v2, as during a rolling upgrade): a
// changed one takes back the firing made ahead and makes it again. The first case declares
// one version (see there why); the second declares both while its clock is stepped back.
//
// The checks, from the file and from every child's reports: per schedule, the jobs in id
// order have increasing fire times, each a firing of the rule; catch_up (with a cap no run
// reaches) makes every firing from the first to the last, none missed; skip and once make
// each job for the first firing after both its making and the firing before it (what they
// pass over had fallen due already); no two jobs for one firing (also in the file: no
// duplicate (schedule, fire_at)); no claim of one firing under two jobs; no claim accepted
// twice for one job; the schedule's row names its last job; every job of catch_up and once
// ran, every skip job ran or expired; every payload is one of the two versions; the
// children's own checks (a schedule's next firing after its last, neither ever moving
// back) held. A killed claimer's job is claimed again once its lease runs out: delivery is
// at least once, only firings are exactly once.
//
// The second case steps the shared clock back an hour and then forward a day while the
// processes run, and redefines the schedules while the clock is behind: nothing is made
// twice, catch_up makes every missed firing (and, with a cap of 25, exactly 25), skip and
// once only the next future one (once also runs the late one).
//
// JOBSCHED_CHAOS_SECONDS (default 6) sets the wall seconds of the first case's chaos;
// Its declarations redefine the schedules too (JOBSCHED_SCHEDULE_CHAOS_REDEFINE=0: not).

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <jobsched/jobsched.hpp>

#include "catch.hpp"
#include "support/deadline.hpp"
#include "support/processes.hpp"
#include "support/temp_file.hpp"

namespace test_schedule_chaos {

namespace {

using jobsched::ClaimedJob;
using jobsched::Job;
using jobsched::Misfire;
using jobsched::Payload;
using jobsched::Rule;
using jobsched::Schedule;
using jobsched::ScheduleOptions;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::Deadline;
using jobsched_test::TempFile;

constexpr double kBase = 1'700'000'000.0;
constexpr int kMaxSlots = 8;
constexpr int kMaxSpecs = 8;
constexpr double kNoTime = -std::numeric_limits<double>::infinity();

double seconds(jobsched::TimePoint time) {
  return jobsched::to_unix_seconds(time);
}

std::int64_t monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// ---- What every process shares: one anonymous page, mapped before the forks --------------

struct SharedState {
  // Added to every process's clock: the parent steps it back and forward.
  std::atomic<std::int64_t> offset_us;
  // 1 while schedules may be declared; the parent closes it (and waits until nobody
  // declares) to step the clock or to change the versions below.
  std::atomic<int> declarations_open;
  // 1 while the process in that slot declares.
  std::atomic<int> declaring[kMaxSlots];
  // 1: each process declares its own version (a rolling upgrade: declarations redefine the
  // schedules); 0: every process declares `versions` (declarations change nothing).
  std::atomic<int> own_versions;
  std::atomic<int> versions[kMaxSpecs];
};
static_assert(std::atomic<std::int64_t>::is_always_lock_free, "shared between processes");
static_assert(std::atomic<int>::is_always_lock_free, "shared between processes");

class SharedPage {
 public:
  SharedPage() {
    void* page = ::mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
      throw std::runtime_error("mmap failed");
    state_ = new (page) SharedState;
    state_->offset_us.store(0);
    state_->declarations_open.store(1);
    for (std::atomic<int>& flag : state_->declaring)
      flag.store(0);
    state_->own_versions.store(0);
    for (std::atomic<int>& version : state_->versions)
      version.store(1);
  }
  SharedPage(const SharedPage&) = delete;
  SharedPage& operator=(const SharedPage&) = delete;
  ~SharedPage() {
    state_->~SharedState();
    ::munmap(state_, sizeof(SharedState));
  }
  SharedState* get() const { return state_; }

 private:
  SharedState* state_ = nullptr;
};

// The clock of every process: base + offset + factor * (monotonic time since the start). The
// start is fixed by the parent before it forks, so all processes agree to the nanosecond.
struct SharedClock {
  double base = kBase;
  double factor = 300;
  std::int64_t start_ns = 0;
  SharedState* shared = nullptr;

  double now() const {
    const double elapsed = static_cast<double>(monotonic_ns() - start_ns) * 1e-9;
    return base + static_cast<double>(shared->offset_us.load()) * 1e-6 + factor * elapsed;
  }
};

// ---- The schedules --------------------------------------------------------------------

struct Spec {
  std::string name;
  Rule rule;
  Misfire misfire;
  int cap;  // catch_up_limit
};

Payload version_payload(const std::string& name, int version) {
  return Payload::text(name + ":v" + std::to_string(version));
}

ScheduleOptions options_of(const Spec& spec, int version) {
  ScheduleOptions options;
  options.data = version_payload(spec.name, version);
  options.misfire = spec.misfire;
  options.catch_up_limit = spec.cap;
  // Leases of killed claimers run out many times over a run: never fail a firing for it,
  // and never hold it back (the final drain runs at one fixed time).
  options.max_attempts = 1000;
  options.initial_backoff = Seconds{0};
  options.max_backoff = Seconds{0};
  return options;
}

enum class Role { batch, single, worker, reader, seed, declarer };

const char* role_name(Role role) {
  switch (role) {
    case Role::batch:
      return "claim_jobs";
    case Role::single:
      return "claim_next_job";
    case Role::worker:
      return "Worker";
    case Role::reader:
      return "reader";
    case Role::seed:
      return "seed loop";
    case Role::declarer:
      return "declarer";
  }
  return "?";
}

struct Setup {
  std::string path;
  std::vector<Spec> specs;
  SharedClock clock;
  double lease = 60;       // schedule seconds
  unsigned alarm_s = 120;  // each child dies by SIGALRM after this, whatever happens
};

jobsched::Options scheduler_options(const Setup& setup) {
  jobsched::Options options;
  const SharedClock clock = setup.clock;
  options.clock = [clock] { return at(clock.now()); };
  // A SIGKILL loses no commit with NORMAL in WAL mode (only power loss could).
  options.synchronous = jobsched::Synchronous::normal;
  return options;
}

// ---- What a child reports -------------------------------------------------------------

enum Kind : std::int32_t {
  kDeclared = 1,  // declared every schedule in `version`
  kClaimed,       // a claim returned job `job` (firing `schedule`, `fire`)
  kCompleted,     // complete(claim) of `job` returned `accepted`
  kHandled,       // a Worker's handler ran `job`
  kSeen,          // next_job, or the seed loop's get_job, returned `job`
  kSeedDone,      // the seed loop's complete_job(`job`) returned `accepted`
  kFailed,        // a child's own check failed: `text`
  kError,         // a call threw: `text`
};

// Fixed size, far below PIPE_BUF: written whole, even by a Worker's threads at once.
struct Record {
  std::int32_t kind = 0;
  std::int32_t accepted = 0;
  std::int32_t version = 0;
  std::int32_t process = 0;  // set by the parent: the child's number
  std::int64_t job = 0;
  double fire = 0;
  char schedule[24] = {};
  char text[96] = {};
};

class Out {
 public:
  explicit Out(int fd) : fd_(fd) {}

  void send(Record record) const {
    jobsched_test::write_all(fd_,
                             std::string(reinterpret_cast<const char*>(&record), sizeof record));
  }
  void about(Kind kind, const Job& job, int accepted = 0) const {
    Record record;
    record.kind = kind;
    record.job = job.id;
    record.accepted = accepted;
    if (job.firing) {
      std::strncpy(record.schedule, job.firing->schedule.c_str(), sizeof record.schedule - 1);
      record.fire = seconds(job.firing->at);
    }
    send(record);
  }
  void note(Kind kind, const std::string& text) const {
    Record record;
    record.kind = kind;
    std::strncpy(record.text, text.c_str(), sizeof record.text - 1);
    send(record);
  }

 private:
  int fd_;
};

// ---- A child's own checks -------------------------------------------------------------

// Every job in the file was made by a schedule, with one of its two payloads.
void check_job(const Setup& setup, const Job& job, const Out& out, const char* who) {
  if (!job.firing) {
    out.note(kFailed, std::string(who) + ": job " + std::to_string(job.id) + " has no firing");
    return;
  }
  for (const Spec& spec : setup.specs) {
    if (spec.name != job.firing->schedule)
      continue;
    if (job.data != version_payload(spec.name, 1) && job.data != version_payload(spec.name, 2))
      out.note(kFailed, std::string(who) + ": job " + std::to_string(job.id) + " of '" + spec.name +
                            "' has a payload of neither version");
    return;
  }
  out.note(kFailed, std::string(who) + ": job " + std::to_string(job.id) +
                        " names an unknown schedule '" + job.firing->schedule + "'");
}

// A schedule as this process sees it over time: its next firing after its last, and neither
// ever moving back (fire times only grow).
class Watch {
 public:
  void observe(const Schedule& schedule, const Out& out) {
    auto& [next_seen, last_seen] = seen_.try_emplace(schedule.name, kNoTime, kNoTime).first->second;
    if (schedule.paused || !schedule.next_fire) {
      out.note(kFailed, "'" + schedule.name + "' is paused or has no next firing");
      return;
    }
    const double next = seconds(*schedule.next_fire);
    const double last = schedule.last_fire ? seconds(*schedule.last_fire) : kNoTime;
    if (!(next > last))
      out.note(kFailed, "'" + schedule.name + "': next firing " + std::to_string(next) +
                            " not after the last " + std::to_string(last));
    if (next < next_seen)
      out.note(kFailed, "'" + schedule.name + "': next firing moved back from " +
                            std::to_string(next_seen) + " to " + std::to_string(next));
    if (last < last_seen)
      out.note(kFailed, "'" + schedule.name + "': last firing moved back from " +
                            std::to_string(last_seen) + " to " + std::to_string(last));
    next_seen = std::max(next_seen, next);
    last_seen = std::max(last_seen, last);
  }

  void observe_all(Scheduler& scheduler, const Setup& setup, const Out& out) {
    for (const Spec& spec : setup.specs) {
      const std::optional<Schedule> schedule = scheduler.get_schedule(spec.name);
      if (!schedule) {
        out.note(kFailed, "'" + spec.name + "' is not in the file");
        continue;
      }
      observe(*schedule, out);
    }
  }

 private:
  std::map<std::string, std::pair<double, double>> seen_;
};

// Declares every schedule, in this process's `version` or in the shared versions, unless
// declarations are closed (false then). The flag is raised before the gate is read, so the
// parent, which closes the gate before it waits for every flag to fall, never steps the
// clock or changes the versions under a declaration (which reads the clock inside).
bool declare_if_open(Scheduler& scheduler, const Setup& setup, int slot, int version, Watch& watch,
                     const Out& out) {
  SharedState& shared = *setup.clock.shared;
  std::atomic<int>& flag = shared.declaring[slot];
  flag.store(1);
  struct Lower {
    std::atomic<int>& flag;
    ~Lower() { flag.store(0); }
  } lower{flag};
  if (shared.declarations_open.load() != 1)
    return false;
  const bool own = shared.own_versions.load() == 1;
  for (std::size_t i = 0; i < setup.specs.size(); ++i) {
    const Spec& spec = setup.specs[i];
    const int declared = own ? version : shared.versions[i].load();
    watch.observe(scheduler.put_schedule(spec.name, spec.rule, options_of(spec, declared)), out);
  }
  Record record;
  record.kind = kDeclared;
  record.version = own ? version : 0;
  out.send(record);
  return true;
}

void pause_wall(std::chrono::microseconds duration) {
  std::this_thread::sleep_for(duration);
}

void exit_if_orphaned(pid_t parent) {
  if (::getppid() != parent)
    ::_exit(4);
}

void complete_each(Scheduler& scheduler, const std::vector<ClaimedJob>& claimed, const Out& out) {
  for (const ClaimedJob& job : claimed)
    out.about(kCompleted, job.job, scheduler.complete(job.claim) ? 1 : 0);
}

void report_claims(const Setup& setup, const std::vector<ClaimedJob>& claimed, const Out& out,
                   const char* who) {
  for (const ClaimedJob& job : claimed) {
    out.about(kClaimed, job.job);
    check_job(setup, job.job, out, who);
  }
}

// A child's body, from the fork to its death (the parent SIGKILLs every child).
[[noreturn]] void child_main(const Setup& setup, Role role, int slot, int number, int fd,
                             std::uint64_t seed, pid_t parent) {
  jobsched_test::die_with_parent();
  ::alarm(setup.alarm_s);
  const Out out(fd);
  std::mt19937_64 random(seed);
  Watch watch;
  const Seconds lease{setup.lease};
  const double factor = setup.clock.factor;
  // Schedule seconds to wall time, at most `cap` of it.
  auto wall = [factor](double schedule_seconds, std::chrono::microseconds cap) {
    const double us = std::max(0.0, schedule_seconds / factor * 1e6);
    return std::min(cap, std::chrono::microseconds(static_cast<std::int64_t>(us)));
  };
  try {
    const jobsched::Options options = scheduler_options(setup);
    auto scheduler = Scheduler::open(setup.path, options);
    // Two versions of the program: each declares its own at its start (waiting while the
    // parent has declarations closed).
    int version = 1 + number % 2;
    while (!declare_if_open(scheduler, setup, slot, version, watch, out)) {
      exit_if_orphaned(parent);
      pause_wall(std::chrono::milliseconds{2});
    }
    std::optional<jobsched::Worker> worker;
    if (role == Role::worker) {
      jobsched::WorkerOptions worker_options;
      worker_options.threads = 2;
      worker_options.lease = lease;
      worker_options.scheduler = options;
      const Setup* shared_setup = &setup;
      const Out* shared_out = &out;
      worker.emplace(
          setup.path,
          [shared_setup, shared_out](const Job& job) {
            shared_out->about(kHandled, job);
            check_job(*shared_setup, job, *shared_out, "Worker");
          },
          worker_options);
    }
    std::uniform_int_distribution<int> percent(0, 99);
    auto next_declaration = std::chrono::steady_clock::now();
    for (std::uint64_t round = 0;; ++round) {
      exit_if_orphaned(parent);
      try {
        switch (role) {
          case Role::batch: {
            const auto limit =
                static_cast<std::size_t>(std::uniform_int_distribution<int>(2, 16)(random));
            const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(limit, lease);
            report_claims(setup, claimed, out, "claim_jobs");
            if (claimed.empty()) {
              pause_wall(std::chrono::microseconds{500});
            } else if (percent(random) < 50) {
              std::vector<jobsched::Claim> claims;
              for (const ClaimedJob& job : claimed)
                claims.push_back(job.claim);
              const std::vector<bool> accepted = scheduler.complete_all(claims);
              for (std::size_t i = 0; i < claimed.size(); ++i)
                out.about(kCompleted, claimed[i].job, accepted[i] ? 1 : 0);
            } else {
              complete_each(scheduler, claimed, out);
            }
            break;
          }
          case Role::single: {
            const std::optional<ClaimedJob> claimed = scheduler.claim_next_job(lease);
            if (!claimed) {
              pause_wall(std::chrono::microseconds{500});
              break;
            }
            report_claims(setup, {*claimed}, out, "claim_next_job");
            complete_each(scheduler, {*claimed}, out);
            break;
          }
          case Role::worker:
            watch.observe_all(scheduler, setup, out);
            pause_wall(std::chrono::milliseconds{10});
            break;
          case Role::reader: {
            if (round % 2 == 0) {
              if (const std::optional<Job> next = scheduler.next_job()) {
                out.about(kSeen, *next);
                check_job(setup, *next, out, "next_job");
              }
            } else {
              static_cast<void>(scheduler.seconds_until_next_job());
            }
            if (round % 16 == 0)
              watch.observe_all(scheduler, setup, out);
            pause_wall(std::chrono::microseconds{300});
            break;
          }
          case Role::seed: {
            const std::optional<jobsched::JobDelay> next = scheduler.seconds_until_next_job();
            if (!next) {
              pause_wall(std::chrono::milliseconds{1});
            } else if (next->delay.count() > 0) {
              pause_wall(wall(next->delay.count(), std::chrono::milliseconds{2}));
            } else if (const std::optional<Job> job = scheduler.get_job(next->id);
                       job && job->is_pending(scheduler.now())) {
              out.about(kSeen, *job);
              check_job(setup, *job, out, "seed loop");
              out.about(kSeedDone, *job, scheduler.complete_job(job->id) ? 1 : 0);
            }
            break;
          }
          case Role::declarer: {
            if (std::chrono::steady_clock::now() >= next_declaration) {
              if (declare_if_open(scheduler, setup, slot, 3 - version, watch, out))
                version = 3 - version;
              next_declaration =
                  std::chrono::steady_clock::now() +
                  std::chrono::milliseconds{std::uniform_int_distribution<int>(3, 30)(random)};
            }
            const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(4, lease);
            report_claims(setup, claimed, out, "declarer");
            complete_each(scheduler, claimed, out);
            if (claimed.empty())
              pause_wall(std::chrono::microseconds{700});
            break;
          }
        }
      } catch (const std::exception& error) {
        out.note(kError, std::string(role_name(role)) + ": " + error.what());
        pause_wall(std::chrono::milliseconds{5});
      }
    }
  } catch (const std::exception& error) {
    out.note(kError, std::string(role_name(role)) + " at its start: " + error.what());
  }
  ::_exit(1);
}

// ---- The parent: forks, kills, replaces, and reads every report ------------------------

struct Slot {
  Role role = Role::batch;
  pid_t pid = -1;
  int fd = -1;
  int number = 0;
  std::string buffer;
};

class Chaos {
 public:
  Chaos(const Setup& setup, std::vector<Role> roles, std::uint64_t seed)
      : setup_(setup), random_(seed), parent_(::getpid()) {
    for (const Role role : roles) {
      slots_.emplace_back();
      slots_.back().role = role;
    }
  }
  Chaos(const Chaos&) = delete;
  Chaos& operator=(const Chaos&) = delete;
  ~Chaos() { kill_all(); }

  void start() {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      spawn(i);
  }

  // Reads what the children wrote for up to `timeout_ms`, and kills one when it is time.
  void step(int timeout_ms) {
    const auto now = std::chrono::steady_clock::now();
    if (killing_ && now >= next_kill_) {
      kill_one();
      next_kill_ = std::chrono::steady_clock::now() + kill_interval();
    }
    std::vector<pollfd> polled;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].pid > 0) {
        polled.push_back(pollfd{slots_[i].fd, POLLIN, 0});
        which.push_back(i);
      }
    }
    if (::poll(polled.data(), polled.size(), timeout_ms) <= 0)
      return;
    for (std::size_t k = 0; k < polled.size(); ++k) {
      if ((polled[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      if (!read_some(slots_[which[k]])) {
        // Ended on its own: every child should run until killed.
        ++unexpected_exits;
        end(which[k], false);
        spawn(which[k]);
      }
    }
  }

  // Runs (reading, killing) for `duration` of wall time.
  void run_for(std::chrono::duration<double> duration) {
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(duration);
    while (std::chrono::steady_clock::now() < until)
      step(5);
  }

  // Runs until `condition()` holds (true) or `limit` passes (false).
  template <class Condition>
  bool run_until(const Deadline& limit, Condition condition) {
    while (!condition()) {
      if (limit.passed())
        return false;
      step(5);
    }
    return true;
  }

  void start_killing(std::chrono::duration<double> mean_interval) {
    mean_interval_ = mean_interval;
    killing_ = true;
    next_kill_ = std::chrono::steady_clock::now() + kill_interval();
  }
  void stop_killing() { killing_ = false; }

  // Kills every child but those in `role`, and does not replace them.
  void kill_all_but(Role role) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].pid > 0 && slots_[i].role != role) {
        ::kill(slots_[i].pid, SIGKILL);
        end(i, true);
      }
    }
  }
  void kill_all() {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].pid > 0) {
        ::kill(slots_[i].pid, SIGKILL);
        end(i, true);
      }
    }
  }

  bool nobody_declaring() const {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (setup_.clock.shared->declaring[i].load() != 0)
        return false;
    }
    return true;
  }

  // Closes declarations and waits (reading, killing) until nobody declares: then the clock
  // and the versions may change under no declaration. False when the wait reached its bound.
  bool close_declarations() {
    setup_.clock.shared->declarations_open.store(0);
    return run_until(Deadline(std::chrono::seconds(5), "declarations to end"),
                     [&] { return nobody_declaring(); });
  }
  void open_declarations() { setup_.clock.shared->declarations_open.store(1); }

  std::vector<Record> log;
  std::vector<std::string> harness_errors;
  int kills = 0;
  int started = 0;
  int unexpected_exits = 0;
  std::map<Role, int> kills_by_role;

 private:
  std::chrono::steady_clock::duration kill_interval() {
    const double factor = std::uniform_real_distribution<double>(0.5, 1.5)(random_);
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(mean_interval_ * factor);
  }

  void spawn(std::size_t index) {
    int fds[2];
    if (::pipe(fds) != 0)
      throw std::runtime_error("pipe failed");
    Slot& slot = slots_[index];
    const int number = started++;
    const std::uint64_t seed = random_();
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(fds[0]);
      for (const Slot& other : slots_) {
        if (other.fd >= 0)
          ::close(other.fd);
      }
      child_main(setup_, slot.role, static_cast<int>(index), number, fds[1], seed, parent_);
    }
    ::close(fds[1]);
    slot.pid = pid;
    slot.fd = fds[0];
    slot.number = number;
    slot.buffer.clear();
  }

  // The victim's role in turn, so that every role is killed whatever the luck; the victim
  // among them and the moment at random.
  void kill_one() {
    const Role role = slots_[static_cast<std::size_t>(kills) % slots_.size()].role;
    std::vector<std::size_t> victims;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].pid > 0 && slots_[i].role == role)
        victims.push_back(i);
    }
    if (victims.empty())
      return;
    const std::size_t index =
        victims[std::uniform_int_distribution<std::size_t>(0, victims.size() - 1)(random_)];
    ::kill(slots_[index].pid, SIGKILL);
    ++kills;
    ++kills_by_role[role];
    end(index, true);
    spawn(index);
  }

  // Reaps the child (bounded), reads the rest of its pipe, and frees the slot.
  void end(std::size_t index, bool killed) {
    Slot& slot = slots_[index];
    const jobsched_test::ChildEnd ended = jobsched_test::wait_for_child(
        slot.pid, Deadline(std::chrono::seconds(10), "a child to be reaped"));
    if (killed && !(ended.signal == SIGKILL))
      harness_errors.push_back("a killed child " + ended.describe());
    if (!killed)
      harness_errors.push_back("a " + std::string(role_name(slot.role)) + " child " +
                               ended.describe());
    std::string rest;
    if (!jobsched_test::read_to_end(
            slot.fd, rest, Deadline(std::chrono::seconds(5), "a dead child's pipe to close")))
      harness_errors.push_back("a dead child's pipe did not close");
    slot.buffer += rest;
    take_records(slot);
    if (!slot.buffer.empty())
      harness_errors.push_back("a child's pipe ended inside a record");
    ::close(slot.fd);
    slot.fd = -1;
    slot.pid = -1;
    // A child killed while declaring leaves its flag raised.
    setup_.clock.shared->declaring[index].store(0);
  }

  bool read_some(Slot& slot) {
    char bytes[16384];
    for (;;) {
      const ssize_t got = ::read(slot.fd, bytes, sizeof bytes);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        return false;
      slot.buffer.append(bytes, static_cast<std::size_t>(got));
      take_records(slot);
      return true;
    }
  }

  void take_records(Slot& slot) {
    std::size_t used = 0;
    while (slot.buffer.size() - used >= sizeof(Record)) {
      Record record;
      std::memcpy(&record, slot.buffer.data() + used, sizeof record);
      record.process = slot.number;
      log.push_back(record);
      used += sizeof record;
    }
    slot.buffer.erase(0, used);
  }

  const Setup& setup_;
  std::vector<Slot> slots_;
  std::mt19937_64 random_;
  pid_t parent_;
  bool killing_ = false;
  std::chrono::duration<double> mean_interval_{0.12};
  std::chrono::steady_clock::time_point next_kill_;
};

// ---- The checks, once every child is dead ----------------------------------------------

struct Drain {
  double at = 0;  // the time it ran at
  int claimed = 0;
  std::map<std::int64_t, int> accepted;  // job id -> completions accepted
};

// Runs everything due at `at` (past every lease of the run) and completes it.
Drain drain(const Setup& setup, double at_time) {
  Drain drained;
  drained.at = at_time;
  auto scheduler = Scheduler::open(setup.path);
  for (int round = 0; round < 10'000; ++round) {
    const std::vector<ClaimedJob> claimed = scheduler.claim_jobs(500, Seconds{60}, at(at_time));
    if (claimed.empty())
      break;
    std::vector<jobsched::Claim> claims;
    for (const ClaimedJob& job : claimed)
      claims.push_back(job.claim);
    const std::vector<bool> accepted = scheduler.complete_all(claims, at(at_time));
    for (std::size_t i = 0; i < claimed.size(); ++i)
      drained.accepted[claimed[i].job.id] += accepted[i] ? 1 : 0;
    drained.claimed += static_cast<int>(claimed.size());
  }
  return drained;
}

// One schedule's jobs, as the file holds them at the end.
struct ScheduleFigures {
  std::string name;
  int jobs = 0;
  int late = 0;          // made after their fire time (catch_up)
  int passed_over = 0;   // firings not made as the policy says (skip, once, a cap reached)
  int cap_gaps = 0;      // catch_up: places where the cap was reached
  int missed = 0;        // firings missing where the policy makes them
  int out_of_order = 0;  // a fire time not after the one before, in id order
  int misplaced = 0;     // a job for a firing the policy would not make there
  int over_cap = 0;      // catch_up: more late firings in one making than the cap
  int bad_payload = 0;
  int bad_expiry = 0;
  int not_run = 0;        // catch_up, once: not completed; skip: neither completed nor expired
  int expired_unrun = 0;  // skip, as it promises
  int row_mismatch = 0;   // the schedule's row does not name its last job
  double first_fire = 0;
  double last_fire = 0;
  std::vector<std::int64_t>
      cap_gap_after;                  // the made-ahead job after each cap gap: its making time
  std::vector<std::string> problems;  // the first few, to show
};

void problem(ScheduleFigures& figures, int& count, const std::string& text) {
  ++count;
  if (figures.problems.size() < 8)
    figures.problems.push_back(figures.name + ": " + text);
}

std::string describe(double time) {
  std::ostringstream text;
  text.precision(3);
  text << std::fixed << time - kBase;
  return "T+" + text.str();
}

ScheduleFigures check_schedule(Scheduler& scheduler, const Spec& spec, const std::vector<Job>& jobs,
                               double drained_at, std::vector<double>* late_makings) {
  ScheduleFigures figures;
  figures.name = spec.name;
  figures.jobs = static_cast<int>(jobs.size());
  if (jobs.empty())
    return figures;
  figures.first_fire = seconds(jobs.front().firing->at);
  figures.last_fire = seconds(jobs.back().firing->at);
  auto next_after = [&](double time) { return seconds(*spec.rule.next_after(at(time))); };
  std::map<double, int> late_per_making;  // created_at -> late firings made then
  double previous = kNoTime;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    const double fire = seconds(job.firing->at);
    const double created = seconds(job.created_at);
    const std::string where = "job " + std::to_string(job.id) + " (fire " + describe(fire) +
                              ", made " + describe(created) + ")";
    if (job.data != version_payload(spec.name, 1) && job.data != version_payload(spec.name, 2))
      problem(figures, figures.bad_payload, where + " has a payload of neither version");
    if (i > 0 && !(fire > previous)) {
      problem(figures, figures.out_of_order,
              where + " is not after the job before it (" + describe(previous) + ")");
      continue;
    }
    // Where the policy puts the firing after `previous`: the next one (made on time or
    // late), or the first after both the making and `previous` (made ahead).
    const double following = i == 0 ? next_after(created) : next_after(previous);
    const double ahead = next_after(i == 0 ? created : std::max(created, previous));
    if (fire <= created) {
      ++figures.late;
      ++late_per_making[created];
      if (spec.misfire != Misfire::catch_up) {
        problem(figures, figures.misplaced, where + " was made late, which only catch_up does");
      } else if (fire != following) {
        problem(figures, figures.missed, where + " is not the firing after " + describe(previous));
      }
    } else if (fire != following) {
      if (fire != ahead) {
        problem(figures, figures.misplaced,
                where + " is neither the firing after " + describe(previous) +
                    " nor the first after its making");
      } else {
        // Firings passed over: due before this job's making, so made by no one.
        int gap = 0;
        for (double f = following; f < fire && gap < 10'000'000; f = next_after(f))
          ++gap;
        if (spec.misfire == Misfire::catch_up) {
          // Only where the cap was reached: the `cap` jobs before it made late, together.
          bool capped = i >= static_cast<std::size_t>(spec.cap);
          const double making = capped ? seconds(jobs[i - 1].created_at) : 0;
          for (std::size_t k = 1; capped && k <= static_cast<std::size_t>(spec.cap); ++k) {
            const Job& before = jobs[i - k];
            capped = seconds(before.created_at) == making && seconds(before.firing->at) <= making;
          }
          if (capped) {
            ++figures.cap_gaps;
            figures.passed_over += gap;
            if (late_makings != nullptr)
              late_makings->push_back(making);
          } else {
            problem(figures, figures.missed,
                    where + " follows " + describe(previous) + ": " + std::to_string(gap) +
                        " firings missing, the cap not reached");
          }
        } else {
          figures.passed_over += gap;
        }
      }
    }
    // Expiry: skip's job is dropped once the next firing is due; the others never expire.
    const std::optional<double> expires =
        job.expires_at ? std::optional<double>(seconds(*job.expires_at)) : std::nullopt;
    if (spec.misfire == Misfire::skip ? expires != std::optional<double>(next_after(fire))
                                      : expires.has_value())
      problem(figures, figures.bad_expiry, where + " has the wrong expiry");
    // Every firing ran (at least once), or expired as skip drops it.
    if (fire <= drained_at && !job.completed_at) {
      if (spec.misfire == Misfire::skip && expires && *expires <= drained_at) {
        ++figures.expired_unrun;
      } else {
        problem(figures, figures.not_run, where + " never ran");
      }
    }
    previous = fire;
  }
  for (const auto& [making, late] : late_per_making) {
    if (late > spec.cap)
      problem(figures, figures.over_cap,
              std::to_string(late) + " made late at " + describe(making) + ", over the cap");
  }
  // The schedule's row: its next firing is its last job, the last made the one before.
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(scheduler.handle(),
                     "SELECT made_through, ahead_at, ahead_job, paused, error FROM schedule"
                     " WHERE name = ?",
                     -1, &statement, nullptr);
  sqlite3_bind_text(statement, 1, spec.name.c_str(), -1, SQLITE_TRANSIENT);
  bool row_ok = sqlite3_step(statement) == SQLITE_ROW;
  if (row_ok) {
    const double made = sqlite3_column_double(statement, 0);
    row_ok = sqlite3_column_double(statement, 1) == figures.last_fire &&
             sqlite3_column_int64(statement, 2) == jobs.back().id &&
             sqlite3_column_int64(statement, 3) == 0 &&
             sqlite3_column_type(statement, 4) == SQLITE_NULL &&
             (jobs.size() < 2 || made == seconds(jobs[jobs.size() - 2].firing->at)) &&
             figures.last_fire > drained_at;
  }
  sqlite3_finalize(statement);
  if (!row_ok)
    problem(figures, figures.row_mismatch, "the schedule's row does not name its last job");
  return figures;
}

std::int64_t query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK)
    return -1;
  const std::int64_t value =
      sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
  sqlite3_finalize(statement);
  return value;
}

std::string query_text(sqlite3* db, const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &statement, nullptr) != SQLITE_OK)
    return "?";
  std::string value;
  if (sqlite3_step(statement) == SQLITE_ROW)
    value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
  sqlite3_finalize(statement);
  return value;
}

// Everything a run shows, from the reports and the file.
struct Verdict {
  std::map<std::string, ScheduleFigures> schedules;
  std::map<std::string, std::vector<double>> late_makings;  // per schedule: each cap gap's making
  std::int64_t jobs = 0;
  std::int64_t duplicate_firings = 0;  // (schedule, fire_at) with more than one job
  std::int64_t jobs_without_firing = 0;
  std::int64_t jobs_without_payload = 0;
  std::string integrity;
  int claims = 0, handled = 0, completes_accepted = 0, seen = 0, seed_completes = 0,
      declarations = 0;
  int firings_claimed_under_two_jobs = 0;
  int claims_unlike_the_file = 0;
  int seen_unexplained = 0;
  int completed_twice = 0;
  int child_failures = 0;
  int child_errors = 0;
  std::vector<std::string> messages;  // the first few failures and errors of the children

  int sum(int ScheduleFigures::*field) const {
    int total = 0;
    for (const auto& [name, figures] : schedules)
      total += figures.*field;
    return total;
  }
};

Verdict analyse(const Setup& setup, const std::vector<Record>& log, const Drain& drained) {
  Verdict verdict;
  auto scheduler = Scheduler::open(setup.path);
  sqlite3* db = scheduler.handle();
  verdict.integrity = query_text(db, "PRAGMA integrity_check");
  verdict.duplicate_firings =
      query_int(db,
                "SELECT count(*) FROM (SELECT 1 FROM job WHERE schedule IS NOT NULL"
                " GROUP BY schedule, fire_at HAVING count(*) > 1)");
  verdict.jobs_without_firing = query_int(db, "SELECT count(*) FROM job WHERE schedule IS NULL");
  verdict.jobs_without_payload = query_int(db,
                                           "SELECT count(*) FROM job WHERE NOT EXISTS (SELECT 1 "
                                           "FROM job_payload WHERE job_id = job.id)");

  // Every job, through the API, by schedule in id order.
  std::map<std::string, std::vector<Job>> by_schedule;
  std::map<std::int64_t, Job> by_id;
  {
    std::vector<std::int64_t> ids;
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, "SELECT id FROM job ORDER BY id", -1, &statement, nullptr);
    while (sqlite3_step(statement) == SQLITE_ROW)
      ids.push_back(sqlite3_column_int64(statement, 0));
    sqlite3_finalize(statement);
    for (const std::int64_t id : ids) {
      const std::optional<Job> job = scheduler.get_job(id, at(drained.at));
      if (!job || !job->firing)
        continue;
      by_schedule[job->firing->schedule].push_back(*job);
      by_id.emplace(id, *job);
    }
    verdict.jobs = static_cast<std::int64_t>(ids.size());
  }
  for (const Spec& spec : setup.specs)
    verdict.schedules[spec.name] = check_schedule(scheduler, spec, by_schedule[spec.name],
                                                  drained.at, &verdict.late_makings[spec.name]);

  // The reports.
  std::map<std::pair<std::string, double>, std::set<std::int64_t>> claimed_firings;
  std::map<std::pair<std::string, double>, std::set<std::int64_t>> seen_firings;
  std::map<std::int64_t, int> accepted = drained.accepted;
  for (const Record& record : log) {
    const std::pair<std::string, double> firing{record.schedule, record.fire};
    switch (record.kind) {
      case kClaimed:
      case kHandled: {
        ++(record.kind == kClaimed ? verdict.claims : verdict.handled);
        claimed_firings[firing].insert(record.job);
        const auto row = by_id.find(record.job);
        if (row == by_id.end() || row->second.firing->schedule != firing.first ||
            seconds(row->second.firing->at) != firing.second)
          ++verdict.claims_unlike_the_file;
        break;
      }
      case kCompleted:
        if (record.accepted != 0) {
          ++verdict.completes_accepted;
          ++accepted[record.job];
        }
        break;
      case kSeen:
        ++verdict.seen;
        seen_firings[firing].insert(record.job);
        break;
      case kSeedDone:
        verdict.seed_completes += record.accepted != 0 ? 1 : 0;
        break;
      case kDeclared:
        ++verdict.declarations;
        break;
      case kFailed:
      case kError:
        ++(record.kind == kFailed ? verdict.child_failures : verdict.child_errors);
        if (verdict.messages.size() < 10)
          verdict.messages.push_back(std::string(record.kind == kFailed ? "FAIL " : "ERROR ") +
                                     record.text);
        break;
      default:
        ++verdict.child_errors;
        break;
    }
  }
  for (const auto& [firing, ids] : claimed_firings)
    verdict.firings_claimed_under_two_jobs += ids.size() > 1 ? 1 : 0;
  for (const auto& [id, count] : accepted)
    verdict.completed_twice += count > 1 ? 1 : 0;
  // A job a reader saw may have been taken back since (a declaration made its firing again):
  // then the firing's job in the file is a later one.
  for (const auto& seen : seen_firings) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    const auto& firing = seen.first;
    for (const std::int64_t id : seen.second) {
      const auto row = by_id.find(id);
      if (row != by_id.end()) {
        if (row->second.firing->schedule != firing.first ||
            seconds(row->second.firing->at) != firing.second)
          ++verdict.seen_unexplained;
        continue;
      }
      const bool remade = std::any_of(by_id.begin(), by_id.end(), [&](const auto& entry) {
        return entry.first > id && entry.second.firing->schedule == firing.first &&
               seconds(entry.second.firing->at) == firing.second;
      });
      verdict.seen_unexplained += remade ? 0 : 1;
    }
  }
  return verdict;
}

struct Ending {
  double end;
  Drain drained;
  Verdict verdict;
};

// Kills every child, then runs what is due a lease after the last child's clock (a
// heartbeat just before a kill extends a lease from then, so not a lease after the time
// before the kills), and judges the file.
Ending end_run(Chaos& chaos, const Setup& setup) {
  chaos.kill_all();
  const double end = setup.clock.now();
  Drain drained = drain(setup, end + setup.lease + 1);
  Verdict verdict = analyse(setup, chaos.log, drained);
  return Ending{end, std::move(drained), std::move(verdict)};
}

void check_verdict(const Verdict& verdict, const Chaos& chaos) {
  for (const std::string& error : chaos.harness_errors)
    FAIL_CHECK("harness: " << error);
  std::string details;
  for (const std::string& message : verdict.messages)
    details += "\n  " + message;
  for (const auto& [name, figures] : verdict.schedules) {
    for (const std::string& text : figures.problems)
      details += "\n  " + text;
  }
  INFO(
      "the first failures and errors the children reported, and the first problems per"
      " schedule in the file:"
      << (details.empty() ? std::string(" none") : details));
  CHECK(verdict.integrity == "ok");
  CHECK(verdict.duplicate_firings == 0);
  CHECK(verdict.jobs_without_firing == 0);
  CHECK(verdict.jobs_without_payload == 0);
  CHECK(verdict.sum(&ScheduleFigures::out_of_order) == 0);
  CHECK(verdict.sum(&ScheduleFigures::missed) == 0);
  CHECK(verdict.sum(&ScheduleFigures::misplaced) == 0);
  CHECK(verdict.sum(&ScheduleFigures::over_cap) == 0);
  CHECK(verdict.sum(&ScheduleFigures::bad_payload) == 0);
  CHECK(verdict.sum(&ScheduleFigures::bad_expiry) == 0);
  CHECK(verdict.sum(&ScheduleFigures::not_run) == 0);
  CHECK(verdict.sum(&ScheduleFigures::row_mismatch) == 0);
  CHECK(verdict.firings_claimed_under_two_jobs == 0);
  CHECK(verdict.claims_unlike_the_file == 0);
  CHECK(verdict.seen_unexplained == 0);
  CHECK(verdict.completed_twice == 0);
  CHECK(verdict.child_failures == 0);
  CHECK(verdict.child_errors == 0);
  CHECK(chaos.unexpected_exits == 0);
}

std::string summary(const Verdict& verdict, const Chaos& chaos, double wall_seconds) {
  std::ostringstream text;
  text << wall_seconds << " s; " << chaos.started << " processes started, " << chaos.kills
       << " SIGKILLed; " << verdict.jobs << " firings made (";
  bool first = true;
  for (const auto& [name, figures] : verdict.schedules) {
    text << (first ? "" : ", ") << name << " " << figures.jobs;
    if (figures.late > 0)
      text << " (" << figures.late << " late)";
    if (figures.passed_over > 0)
      text << " (" << figures.passed_over << " passed over)";
    first = false;
  }
  text << "); duplicates " << verdict.duplicate_firings << ", missed "
       << verdict.sum(&ScheduleFigures::missed) << ", out of order "
       << verdict.sum(&ScheduleFigures::out_of_order) << ", misplaced "
       << verdict.sum(&ScheduleFigures::misplaced) << "; " << verdict.claims << " claims, "
       << verdict.handled << " Worker handler runs, " << verdict.completes_accepted
       << " completes accepted, " << verdict.seed_completes << " seed-loop completions, "
       << verdict.seen << " jobs seen by readers, " << verdict.declarations << " declarations; "
       << verdict.sum(&ScheduleFigures::expired_unrun) << " skip firings expired unrun";
  return text.str();
}

double chaos_seconds() {
  if (const char* text = std::getenv("JOBSCHED_CHAOS_SECONDS")) {
    const double value = std::strtod(text, nullptr);
    if (value > 0)
      return value;
  }
  return 6.0;
}

const std::vector<Role> kRoles = {Role::batch,  Role::single, Role::worker,
                                  Role::reader, Role::seed,   Role::declarer};

Setup make_setup(const TempFile& file, SharedPage& page, double factor, std::vector<Spec> specs,
                 double run_seconds) {
  Setup setup;
  setup.path = file.path();
  setup.specs = std::move(specs);
  setup.clock.base = kBase;
  setup.clock.factor = factor;
  setup.clock.shared = page.get();
  setup.alarm_s = static_cast<unsigned>(run_seconds * jobsched_test::time_scale()) + 60;
  // The schema first, so that the children race on schedules, not on the migration.
  { Scheduler::open(setup.path); }
  setup.clock.start_ns = monotonic_ns();
  return setup;
}

}  // namespace

TEST_CASE(
    "processes killed at random while claiming, reading and declaring make every firing "
    "exactly once, in order",
    "[schedules][schedule-chaos]") {
  TempFile file("schedule-chaos");
  SharedPage page;
  const double run_seconds = chaos_seconds();
  // Each process declares its own version (a rolling upgrade), so declarations redefine
  // the schedules at any moment, due or not (JOBSCHED_SCHEDULE_CHAOS_REDEFINE=0: one
  // version for all).
  const char* redefine = std::getenv("JOBSCHED_SCHEDULE_CHAOS_REDEFINE");
  page.get()->own_versions.store(redefine != nullptr && std::string(redefine) == "0" ? 0 : 1);
  // 300 schedule seconds a wall second: the 1 s rule alone fires 1,800 times in 6 s.
  const Setup setup =
      make_setup(file, page, 300,
                 {Spec{"every-1s", Rule::every(Seconds{1}), Misfire::catch_up, 1'000'000},
                  Spec{"every-3s", Rule::every(Seconds{3}, at(0.5)), Misfire::catch_up, 1'000'000},
                  Spec{"every-7s", Rule::every(Seconds{7}), Misfire::catch_up, 1'000'000},
                  Spec{"each-minute", Rule::cron("* * * * *"), Misfire::catch_up, 1'000'000},
                  Spec{"skip-5s", Rule::every(Seconds{5}), Misfire::skip, 100}},
                 run_seconds);
  const std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  const auto began = std::chrono::steady_clock::now();
  const Deadline limit(std::chrono::duration<double>(run_seconds + 30), "the schedule chaos run");

  Chaos chaos(setup, kRoles, seed);
  chaos.start();
  chaos.start_killing(std::chrono::milliseconds{120});
  chaos.run_for(std::chrono::duration<double>(run_seconds));
  chaos.stop_killing();
  // Only the readers now: whatever is made from here was made by next_job and
  // seconds_until_next_job (their clock is read after every other process is dead).
  chaos.kill_all_but(Role::reader);
  const double readers_from = setup.clock.now();
  chaos.run_for(std::chrono::milliseconds{400});
  const Ending ending = end_run(chaos, setup);
  REQUIRE_FALSE(limit.passed());
  const double end = ending.end;
  const Drain& drained = ending.drained;
  const Verdict& verdict = ending.verdict;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  int made_by_readers = 0;
  {
    auto scheduler = Scheduler::open(setup.path);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(scheduler.handle(),
                       "SELECT count(*) FROM job WHERE created_at >= ?1 AND created_at <= ?2", -1,
                       &statement, nullptr);
    sqlite3_bind_double(statement, 1, readers_from);
    sqlite3_bind_double(statement, 2, end);
    if (sqlite3_step(statement) == SQLITE_ROW)
      made_by_readers = sqlite3_column_int(statement, 0);
    sqlite3_finalize(statement);
  }
  const std::string figures = summary(verdict, chaos, wall) + "; " +
                              std::to_string(made_by_readers) +
                              " made while only readers ran; drain ran " +
                              std::to_string(drained.claimed) + "; seed " + std::to_string(seed);
  INFO(figures);
  WARN("schedule chaos: " << figures);

  check_verdict(verdict, chaos);
  // Chaotic enough to mean something, on every path.
  CHECK(verdict.jobs >= static_cast<std::int64_t>(250 * run_seconds));
  CHECK(chaos.kills >= static_cast<int>(4 * run_seconds));
  for (const Role role : kRoles) {
    CAPTURE(role_name(role));
    CHECK(chaos.kills_by_role.count(role) == 1);
  }
  CHECK(verdict.claims > 0);
  CHECK(verdict.handled > 0);
  CHECK(verdict.completes_accepted > 0);
  CHECK(verdict.seed_completes > 0);
  CHECK(verdict.seen > 0);
  CHECK(verdict.declarations > chaos.started);  // each process's at its start, the declarer's
  CHECK(made_by_readers > 0);
  CHECK(verdict.sum(&ScheduleFigures::late) > 0);  // makings that came late, caught up
  CHECK(verdict.sum(&ScheduleFigures::cap_gaps) == 0);
  for (const auto& [name, schedule] : verdict.schedules) {
    CAPTURE(name);
    CHECK(schedule.jobs > 0);
    CHECK(schedule.first_fire <= kBase + 60);
  }
}

TEST_CASE(
    "the shared clock stepping back an hour and forward a day under chaos makes no "
    "firing twice, and each misfire policy applies to the jump",
    "[schedules][schedule-chaos]") {
  TempFile file("schedule-chaos-clock");
  SharedPage page;
  constexpr int kCap = 25;
  const Setup setup =
      make_setup(file, page, 200,
                 {Spec{"catch-up-10s", Rule::every(Seconds{10}), Misfire::catch_up, 1'000'000},
                  Spec{"catch-up-5min", Rule::cron("*/5 * * * *"), Misfire::catch_up, 1'000'000},
                  Spec{"capped-30s", Rule::every(Seconds{30}), Misfire::catch_up, kCap},
                  Spec{"skip-20s", Rule::every(Seconds{20}), Misfire::skip, 100},
                  Spec{"once-15s", Rule::every(Seconds{15}), Misfire::once, 100}},
                 12);
  SharedState& shared = *page.get();
  const std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  const auto began = std::chrono::steady_clock::now();
  const Deadline limit(std::chrono::seconds(90), "the schedule chaos run with clock steps");

  Chaos chaos(setup, kRoles, seed);
  chaos.start();
  // As often for a process slowed by a sanitizer as for one at full speed: the day's catch-up
  // is one transaction, which a process killed too soon into its life never commits.
  chaos.start_killing(std::chrono::milliseconds{150} * jobsched_test::time_scale());
  // Every process declares version 1: declarations change nothing.
  chaos.run_for(std::chrono::milliseconds{1500});
  // Back an hour: every firing made so far is an hour ahead again. Now each process
  // declares its own version and the declarer switches every few milliseconds, so the
  // firings made ahead are taken back and made again while the clock is behind them (no
  // schedule is due then, so no redefinition meets a due one: see the first case).
  REQUIRE(chaos.close_declarations());
  const double back_from = setup.clock.now();
  shared.offset_us.fetch_sub(3'600'000'000);
  shared.own_versions.store(1);
  chaos.open_declarations();
  chaos.run_for(std::chrono::milliseconds{1500});
  // Forward a day. From here every process declares what the file holds (nothing changes),
  // and no declaration runs with a time after the jump until every schedule made its
  // firings after it.
  REQUIRE(chaos.close_declarations());
  {
    jobsched::Options options;
    options.read_only = true;
    auto reader = Scheduler::open(setup.path, options);
    for (std::size_t i = 0; i < setup.specs.size(); ++i) {
      const std::optional<Schedule> schedule = reader.get_schedule(setup.specs[i].name);
      REQUIRE(schedule);
      shared.versions[i].store(
          schedule->options.data == version_payload(setup.specs[i].name, 2) ? 2 : 1);
    }
  }
  shared.own_versions.store(0);
  const double jump_from = setup.clock.now();
  shared.offset_us.fetch_add(86'400'000'000);
  const double jump_to = setup.clock.now();
  // Anything made after the jump is made about a day after jump_from.
  const double after_jump = jump_from + 3600;
  auto next_look = std::chrono::steady_clock::now();
  const bool advanced = chaos.run_until(
      Deadline(std::chrono::seconds(30), "every schedule to go past the jump"), [&] {
        if (std::chrono::steady_clock::now() < next_look)
          return false;
        next_look = std::chrono::steady_clock::now() + std::chrono::milliseconds{20};
        jobsched::Options options;
        options.read_only = true;
        auto reader = Scheduler::open(setup.path, options);
        for (const Spec& spec : setup.specs) {
          const std::optional<Schedule> schedule = reader.get_schedule(spec.name);
          if (!schedule || !schedule->next_fire || seconds(*schedule->next_fire) <= after_jump)
            return false;
        }
        return true;
      });
  CHECK(advanced);
  chaos.open_declarations();
  chaos.run_for(std::chrono::milliseconds{1500});
  chaos.stop_killing();
  const Ending ending = end_run(chaos, setup);
  REQUIRE_FALSE(limit.passed());
  const Verdict& verdict = ending.verdict;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  const std::string figures = summary(verdict, chaos, wall) + "; stepped back at " +
                              describe(back_from) + ", jumped from " + describe(jump_from) +
                              " to " + describe(jump_to) + "; seed " + std::to_string(seed);
  INFO(figures);
  WARN("schedule chaos, clock steps: " << figures);
  check_verdict(verdict, chaos);
  CHECK(chaos.kills >= static_cast<int>(15 / jobsched_test::time_scale()));
  CHECK(verdict.declarations > chaos.started);

  // catch_up without a reachable cap: every firing of the day missed, each once (the checks
  // above: none missing, none twice, in order); here, that the jump is inside the run.
  for (const char* name : {"catch-up-10s", "catch-up-5min"}) {
    CAPTURE(name);
    const ScheduleFigures& caught_up = verdict.schedules.at(name);
    CHECK(caught_up.first_fire < back_from);
    CHECK(caught_up.last_fire > jump_to);
    CHECK(caught_up.cap_gaps == 0);
    CHECK(caught_up.late >= (std::string(name) == "catch-up-10s" ? 8000 : 250));
  }
  // catch_up with a cap of 25: exactly one place where it was reached, in the first making
  // after the jump (its 25 late firings, then the next one ahead).
  const ScheduleFigures& capped = verdict.schedules.at("capped-30s");
  CHECK(capped.cap_gaps == 1);
  REQUIRE(verdict.late_makings.at("capped-30s").size() == 1);
  CHECK(verdict.late_makings.at("capped-30s").front() >= after_jump);
  CHECK(capped.passed_over > 2000);
  // skip: nothing made late and no job out of its place (checked above: each job the first
  // firing after its making and after the one before); the day passed over.
  const ScheduleFigures& skipped = verdict.schedules.at("skip-20s");
  CHECK(skipped.late == 0);
  CHECK(skipped.passed_over > 4000);
  // once: the same, and the firing made before the jump ran, late (no job is left unrun).
  const ScheduleFigures& once = verdict.schedules.at("once-15s");
  CHECK(once.late == 0);
  CHECK(once.passed_over > 5000);
  CHECK(once.not_run == 0);
}

}  // namespace test_schedule_chaos
