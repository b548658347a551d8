// SPDX-License-Identifier: MIT
// libFuzzer target: the input bytes decode into a sequence of Scheduler calls on a
// ":memory:" database at pinned times, and every result is checked against a small model of
// the documented semantics (DESIGN.md "Semantics", the comments of scheduler.hpp). A
// mismatch, an exception other than a predicted InvalidArgumentError, or a sanitizer report
// is a bug: the target prints what differed and aborts.
//
// The model keeps each row as stored and derives what every call shows at its `now`: a job
// whose lease ran out on its last attempt (before it expired) is failed at that lease end in
// every call, whether or not a write has marked it yet. Times, from arguments and from the
// clock (which sometimes lies for one call), must lie within the years 1 to 9999.
//
// Set FUZZ_API_TRACE=1 to print each decoded call when replaying an input.

#include <jobsched/jobsched.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using jobsched::Claim;
using jobsched::Job;
using jobsched::JobDelay;
using jobsched::JobOptions;
using jobsched::Payload;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched::TimePoint;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool trace_enabled() {
  static const bool enabled = std::getenv("FUZZ_API_TRACE") != nullptr;
  return enabled;
}

double sec(TimePoint time) { return jobsched::to_unix_seconds(time); }
TimePoint tp(double seconds) { return jobsched::from_unix_seconds(seconds); }

std::string fmt(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}
std::string fmt(const std::optional<TimePoint>& time) {
  return time ? fmt(sec(*time)) : std::string("-");
}
std::string fmt(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '\0') {
      out += "\\0";
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string describe(const Payload& payload) {
  switch (payload.storage_class()) {
    case jobsched::StorageClass::null:
      return "NULL";
    case jobsched::StorageClass::integer:
      return "int:" + std::to_string(*payload.as_integer());
    case jobsched::StorageClass::real:
      return "real:" + fmt(*payload.as_real());
    case jobsched::StorageClass::text:
      return "text:" + fmt(std::string(payload.bytes()));
    case jobsched::StorageClass::blob:
      return "blob:" + fmt(std::string(payload.bytes()));
  }
  return "?";
}

std::string describe(const Job& job) {
  std::ostringstream out;
  out << "{id " << job.id << " data " << describe(job.data) << " created " << fmt(sec(job.created_at))
      << " starts " << fmt(sec(job.starts_at)) << " expires " << fmt(job.expires_at) << " completed "
      << fmt(job.completed_at) << " locked " << fmt(job.locked_at) << " lease " << fmt(job.lease_until)
      << " attempts " << job.attempts << " max_attempts "
      << (job.max_attempts ? std::to_string(*job.max_attempts) : "-") << " backoffs "
      << (job.initial_backoff ? fmt(job.initial_backoff->count()) : "-") << "/"
      << (job.max_backoff ? fmt(job.max_backoff->count()) : "-") << " last_error "
      << (job.last_error ? fmt(*job.last_error) : "-") << " failed " << fmt(job.failed_at)
      << " priority " << job.priority << " queue " << fmt(job.queue) << "}";
  return out.str();
}
std::string describe(const std::optional<Job>& job) { return job ? describe(*job) : "none"; }

[[noreturn]] void mismatch(const std::string& operation, const std::string& what) {
  std::fprintf(stderr, "fuzz_api: MISMATCH in %s: %s\n", operation.c_str(), what.c_str());
  std::fflush(stderr);
  std::abort();
}

void trace(const std::string& text) {
  if (trace_enabled())
    std::fprintf(stderr, "fuzz_api: %s\n", text.c_str());
}

// ---- Input decoding ------------------------------------------------------------------------

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return position_ >= size_; }
  std::uint8_t byte() { return done() ? 0 : data_[position_++]; }
  std::size_t pick(std::size_t choices) { return byte() % choices; }
  bool flag() { return (byte() & 1) != 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

// ---- The model -----------------------------------------------------------------------------

// The times jobsched accepts (DESIGN.md: the years 1 to 9999, from arguments and the clock
// alike): 0001-01-01T00:00:00Z up to, not including, 10000-01-01T00:00:00Z.
constexpr double kEarliestTime = -62135596800.0;
constexpr double kEndOfTime = 253402300800.0;
// A failed attempt's retry time never goes past the last whole second before the end.
constexpr double kLatestRetry = kEndOfTime - 1.0;

bool valid_time(double seconds) { return seconds >= kEarliestTime && seconds < kEndOfTime; }

/// What the database holds, field by field, as the documented semantics say it changes.
/// `jobs` are the rows as stored: a job whose lease ran out on its last attempt stays as it
/// was until a marking write meets it, and `shown` is how every call sees it meanwhile.
/// A claim's token is random, so the model learns it from the claim that drew it.
struct Model {
  jobsched::RetryPolicy policy;
  std::map<std::int64_t, Job> jobs;
  std::map<std::int64_t, std::int64_t> tokens;  // claim tokens stored, by job id
  std::int64_t max_id = 0;                      // AUTOINCREMENT: ids are never reused

  int max_attempts(const Job& job) const { return job.max_attempts.value_or(policy.max_attempts); }
  static bool open(const Job& job) { return !job.completed_at && !job.failed_at; }
  static bool pending(const Job& job, double now) {
    return open(job) && (!job.expires_at || sec(*job.expires_at) > now);
  }
  /// Not held: never locked or claimed, or a claim whose lease ran out before the last attempt.
  bool free(const Job& job, double now) const {
    return !job.locked_at ||
           (job.lease_until && sec(*job.lease_until) <= now && job.attempts < max_attempts(job));
  }
  /// An open job whose lease ran out on its last attempt before the job expired: it failed
  /// at that lease end, marked or not. (One that expired at or before its lease end is
  /// expired instead.)
  bool abandoned(const Job& job, double now) const {
    return open(job) && job.lease_until && sec(*job.lease_until) <= now &&
           job.attempts >= max_attempts(job) &&
           (!job.expires_at || sec(*job.lease_until) < sec(*job.expires_at));
  }
  static std::string lease_ran_out(const Job& job) {
    return "the lease of attempt " + std::to_string(job.attempts) + " ran out";
  }
  /// The job as every call shows it at `now`: an abandoned job as it will be once marked,
  /// failed at its lease end, its lease gone.
  Job shown(const Job& job, double now) const {
    if (!abandoned(job, now))
      return job;
    Job view = job;
    view.failed_at = job.lease_until;
    view.locked_at.reset();
    view.lease_until.reset();
    view.last_error = lease_ran_out(job);
    return view;
  }
  std::optional<Job> shown(std::int64_t id, double now) const {
    const auto found = jobs.find(id);
    return found == jobs.end() ? std::nullopt : std::optional<Job>(shown(found->second, now));
  }
  void let_go(Job& job) {
    job.locked_at.reset();
    job.lease_until.reset();
    tokens.erase(job.id);
  }
  /// What a marking write does to an abandoned job: stores it as it was shown.
  void mark_if_abandoned(Job& job, double now) {
    if (abandoned(job, now)) {
      job = shown(job, now);
      tokens.erase(job.id);
    }
  }
  void mark_abandoned(double now) {
    for (auto& entry : jobs)
      mark_if_abandoned(entry.second, now);
  }
  /// The claim still holds its job at `now`: its token, the job open and not abandoned.
  bool held(const Claim& claim, double now) const {
    const auto job = jobs.find(claim.job_id);
    const auto token = tokens.find(claim.job_id);
    return job != jobs.end() && token != tokens.end() && token->second == claim.token &&
           open(job->second) && !abandoned(job->second, now);
  }
  /// next_job: pending and free, by starts_at then id.
  std::optional<Job> next(double now) const {
    const Job* best = nullptr;
    for (const auto& [id, job] : jobs) {
      if (pending(job, now) && free(job, now) &&
          (best == nullptr || sec(job.starts_at) < sec(best->starts_at)))
        best = &job;  // ids ascend, so ties keep the lower id
    }
    return best != nullptr ? std::optional<Job>(shown(*best, now)) : std::nullopt;
  }
  /// When a pending job can next be claimed: its start if free, the later of its start and
  /// its lease end if a live claim holds it with attempts left; never for a lock, nor for a
  /// claim on its last attempt (which fails instead).
  std::optional<double> available_at(const Job& job, double now) const {
    if (!pending(job, now))
      return std::nullopt;
    if (free(job, now))
      return sec(job.starts_at);
    if (job.lease_until && job.attempts < max_attempts(job))
      return std::max(sec(job.starts_at), sec(*job.lease_until));
    return std::nullopt;
  }
};

struct Bounds {
  double value;
  std::int64_t id;
};

// ---- The fuzzed session --------------------------------------------------------------------

class Session {
 public:
  Session(const std::uint8_t* data, std::size_t size) : in_(data, size) {
    // The retry policy of this run; jitter 0 so that backoffs are exact.
    static const int kMaxAttempts[] = {1, 2, 3, 5};
    static const double kInitial[] = {0.0, 0.5, 1.0, 2.0};
    static const double kMultiplier[] = {1.0, 2.0, 3.0, 1.5};
    static const double kMaxBackoff[] = {0.0, 1.0, 4.0, 600.0};
    const std::uint8_t setup = in_.byte();
    setup_ = setup;
    model_.policy.max_attempts = kMaxAttempts[setup & 3];
    model_.policy.initial_backoff = Seconds{kInitial[(setup >> 2) & 3]};
    model_.policy.multiplier = kMultiplier[(setup >> 4) & 3];
    model_.policy.max_backoff = Seconds{kMaxBackoff[(setup >> 6) & 3]};
    model_.policy.jitter = 0.0;
  }

  void run() {
    scheduler_ = &scheduler_for(setup_);
    set_clock(clock_);
    for (int step = 0; step < 256 && !in_.done(); ++step) {
      one_step();
      check_state();
    }
    scheduler_ = nullptr;
  }

 private:
  // Opening and migrating a database costs about 5 ms, a hundred times a short input, so
  // each retry policy gets one ":memory:" scheduler for the whole run, emptied before each
  // input (its AUTOINCREMENT counter too) as if it were new.
  // The schedulers' clock: `value`, except that the first reading returns `first` once when
  // it is set (a clock that changes while a call runs).
  struct FuzzClock {
    double value = 0.0;
    std::optional<double> first;
    TimePoint read() {
      if (first) {
        const double reading = *first;
        first.reset();
        return tp(reading);
      }
      return tp(value);
    }
  };
  static FuzzClock& the_clock() {
    static FuzzClock clock;
    return clock;
  }
  static void set_clock(double value, std::optional<double> first = std::nullopt) {
    the_clock().value = value;
    the_clock().first = first;
  }
  Scheduler& scheduler_for(std::uint8_t setup) {
    static std::map<std::uint8_t, Scheduler> schedulers;
    auto found = schedulers.find(setup);
    if (found == schedulers.end()) {
      jobsched::Options options;
      options.clock = [] { return the_clock().read(); };
      options.retry = model_.policy;
      found = schedulers.emplace(setup, Scheduler::open(":memory:", options)).first;
    }
    Scheduler& scheduler = found->second;
    if (sqlite3_exec(scheduler.handle(),
                     "DELETE FROM job; DELETE FROM sqlite_sequence WHERE name = 'job';", nullptr,
                     nullptr, nullptr) != SQLITE_OK)
      mismatch("reset", sqlite3_errmsg(scheduler.handle()));
    return scheduler;
  }

 public:

 private:
  // ---- Arguments ----

  double time_value() {
    switch (in_.pick(24)) {
      case 0: return 0.0;
      case 1: return -1.0;
      case 2: return -1e9;
      case 3: return clock_;
      case 4: return clock_ + 1;
      case 5: return clock_ - 1;
      case 6: return clock_ + 0.5;
      case 7: return clock_ + 10;
      case 8: return clock_ + 100;
      case 9: return clock_ - 100;
      case 10: return kNaN;
      case 11: return kInf;
      case 12: return -kInf;
      case 13: return 1e18;
      case 14: return clock_ + 2;
      case 15: return clock_ + 3600;
      case 16: return 1000.0;
      case 17: return kEarliestTime;                                // valid: 0001-01-01
      case 18: return std::nextafter(kEarliestTime, -kInf);          // just before: invalid
      case 19: return kEndOfTime;                                   // invalid: year 10000
      case 20: return kEndOfTime - 1.0;                             // 9999-12-31T23:59:59
      case 21: return kEndOfTime - 0.25;
      case 22: return -62135596800.0 - 86400.0;                     // year 0: invalid
      default: return clock_ + 5;
    }
  }
  std::optional<double> optional_time() {
    if (in_.pick(3) == 0)
      return std::nullopt;
    return time_value();
  }
  /// The `now` of a call: mostly the clock (empty), sometimes an explicit time.
  std::optional<double> now_argument() {
    if (in_.pick(4) != 0)
      return std::nullopt;
    return time_value();
  }
  static std::optional<TimePoint> as_time(std::optional<double> value) {
    return value ? std::optional<TimePoint>(tp(*value)) : std::nullopt;
  }
  double duration() {
    static const double kDurations[] = {0, 0.5, 1, 2, 10, 100, 3600, -1, kNaN, kInf};
    return kDurations[in_.pick(10)];
  }
  double lease() {
    static const double kLeases[] = {0.5, 1, 5, 30, 0.25, 10, 0, -1, kNaN, kInf};
    return kLeases[in_.pick(10)];
  }
  Payload payload() {
    switch (in_.pick(13)) {
      case 0: return Payload();
      case 1: return Payload(std::string());
      case 2: return Payload("a");
      case 3: return Payload(std::string("a\0b", 3));
      case 4: return Payload::text("t");
      case 5: return Payload::text("");
      case 6: return Payload::text(std::string("\0z", 2));
      case 7: return Payload::integer(0);
      case 8: return Payload::integer(std::numeric_limits<std::int64_t>::min());
      case 9: return Payload::real(1.5);
      case 10: return Payload::real(kNaN);
      case 11: return Payload::real(-kInf);
      default: return Payload::real(-0.0);
    }
  }
  int priority() {
    static const int kPriorities[] = {0, 0, 1, -1, 5, INT_MAX, INT_MIN};
    return kPriorities[in_.pick(7)];
  }
  std::string queue() {
    switch (in_.pick(5)) {
      case 0:
      case 1: return "";
      case 2: return "a";
      case 3: return "b";
      default: return std::string("a\0", 2);
    }
  }
  std::vector<std::string> queues() {
    std::vector<std::string> list;
    for (std::size_t n = in_.pick(4); n > 0; --n)  // 0: empty, refused
      list.push_back(queue());
    return list;
  }
  std::optional<int> max_attempts() {
    static const int kValues[] = {0, -1, 1, 2, 3};
    const std::size_t choice = in_.pick(8);
    if (choice >= 5)
      return std::nullopt;
    return kValues[choice];
  }
  std::optional<Seconds> backoff() {
    static const double kValues[] = {0, 0.5, 2, 100, -1, kNaN, kInf};
    const std::size_t choice = in_.pick(10);
    if (choice >= 7)
      return std::nullopt;
    return Seconds{kValues[choice]};
  }
  std::int64_t job_id() {
    const std::size_t choice = in_.pick(16);
    if (choice < 11 && model_.max_id > 0)
      return 1 + static_cast<std::int64_t>(in_.byte()) % model_.max_id;
    switch (choice) {
      case 11: return 0;
      case 12: return -1;
      case 13: return std::numeric_limits<std::int64_t>::max();
      default: return model_.max_id + 1;
    }
  }
  /// A claim this session got (held or stale by now), or a forged one.
  Claim& claim() {
    if (claims_.empty() || in_.pick(8) == 0) {
      forged_ = Claim{job_id(), in_.pick(2) == 0 ? 0 : 42, tp(clock_)};
      return forged_;
    }
    return claims_[in_.byte() % claims_.size()];
  }
  std::string error_text() {
    switch (in_.pick(4)) {
      case 0: return "";
      case 1: return "boom";
      case 2: return std::string("nul\0inside", 10);
      default: return "the lease of attempt 1 ran out";
    }
  }

  static bool good_duration(double value) { return std::isfinite(value) && value >= 0; }
  static bool good_lease(double value) { return std::isfinite(value) && value > 0; }

  /// Calls `fn`, which must throw InvalidArgumentError exactly when `invalid`; anything
  /// else thrown is a mismatch. Empty when it threw.
  template <class F>
  auto call(const std::string& operation, bool invalid, F&& fn) -> std::optional<decltype(fn())> {
    trace(operation + (invalid ? " (invalid)" : ""));
    std::optional<decltype(fn())> result;
    try {
      result.emplace(fn());
    } catch (const jobsched::InvalidArgumentError& error) {
      if (!invalid)
        mismatch(operation, std::string("unexpected InvalidArgumentError: ") + error.what());
      return std::nullopt;
    } catch (const jobsched::Error& error) {
      mismatch(operation, std::string("unexpected jobsched::Error: ") + error.what());
    } catch (const std::exception& error) {
      mismatch(operation, std::string("unexpected exception: ") + error.what());
    } catch (...) {
      mismatch(operation, "unexpected exception of unknown type");
    }
    if (invalid)
      mismatch(operation, "expected InvalidArgumentError, got a result");
    return result;
  }

  template <class T>
  static void expect_equal(const std::string& operation, const T& expected, const T& actual,
                           const std::string& what) {
    if (!(expected == actual))
      mismatch(operation, what);
  }

  /// The same claim, a NaN lease_until equal to itself (a claim forged while the clock lied
  /// carries one; the library reads only its job and token).
  static void expect_claim(const std::string& operation, const Claim& expected,
                           const Claim& actual, const std::string& what) {
    const double a = sec(expected.lease_until);
    const double b = sec(actual.lease_until);
    if (expected.job_id != actual.job_id || expected.token != actual.token ||
        !(a == b || (std::isnan(a) && std::isnan(b))))
      mismatch(operation, what);
  }

  static void expect_job(const std::string& operation, const std::optional<Job>& expected,
                         const std::optional<Job>& actual) {
    if (expected != actual) {
      mismatch(operation,
               "expected job " + describe(expected) + "\n  got      " + describe(actual));
    }
  }

  // ---- Operations ----

  void one_step() {
    Scheduler& s = *scheduler_;
    switch (in_.pick(24)) {
      case 0: {  // advance the clock, or let it lie for one call
        static const double kSteps[] = {0, 0.25, 0.5, 1, 2, 5, 30, 1000};
        const std::size_t choice = in_.pick(10);
        if (lying_) {
          trace("(no clock change inside a lie)");
        } else if (choice < 8) {
          clock_ += kSteps[choice];
          set_clock(clock_);
          trace("clock = " + fmt(clock_));
        } else {
          lie(choice == 9);
        }
        break;
      }
      case 1:
      case 2:
        add_job(s);
        break;
      case 3:
        add_job_from_now(s);
        break;
      case 4: {
        const std::int64_t id = job_id();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("get_job(" + std::to_string(id) + ", " + fmt(at) + ")", !valid_time(at),
                              [&] { return s.get_job(id, as_time(now)); });
        if (got)
          expect_job("get_job", model_.shown(id, at), *got);
        break;
      }
      case 5: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("next_job(" + fmt(at) + ")", !valid_time(at), [&] { return s.next_job(as_time(now)); });
        if (got)
          expect_job("next_job", model_.next(at), *got);
        break;
      }
      case 6:
        seconds_until(s);
        break;
      case 7: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("count_pending_jobs(" + fmt(at) + ")", !valid_time(at),
                              [&] { return s.count_pending_jobs(as_time(now)); });
        if (got) {
          std::int64_t expected = 0;
          for (const auto& [id, job] : model_.jobs)
            expected += Model::pending(job, at) && !model_.abandoned(job, at) ? 1 : 0;
          expect_equal("count_pending_jobs", expected, *got,
                       "expected " + std::to_string(expected) + " got " + std::to_string(*got));
        }
        break;
      }
      case 8: {
        const std::int64_t id = job_id();
        const auto when = now_argument();
        const double at = when.value_or(clock_);
        const auto got = call("complete_job(" + std::to_string(id) + ", " + fmt(at) + ")", !valid_time(at),
                              [&] { return s.complete_job(id, as_time(when)); });
        if (got) {
          const auto found = model_.jobs.find(id);
          expect_equal("complete_job", found != model_.jobs.end(), *got, "wrong result");
          if (found != model_.jobs.end()) {
            // Completed whatever it was: a failure ends too, as a lock or claim does.
            if (!found->second.completed_at)
              found->second.completed_at = tp(at);
            found->second.failed_at.reset();
            model_.let_go(found->second);
          }
        }
        break;
      }
      case 9: {
        const std::int64_t id = job_id();
        const auto got = call("delete_job(" + std::to_string(id) + ")", false, [&] { return s.delete_job(id); });
        expect_equal("delete_job", model_.jobs.count(id) == 1, *got, "wrong result");
        model_.jobs.erase(id);
        model_.tokens.erase(id);
        break;
      }
      case 10: {
        const auto got = call("delete_completed_jobs", false, [&] { return s.delete_completed_jobs(); });
        std::int64_t expected = 0;
        erase_if([&](const Job& job) { return job.completed_at.has_value(); }, expected);
        expect_equal("delete_completed_jobs", expected, *got,
                     "expected " + std::to_string(expected) + " got " + std::to_string(*got));
        break;
      }
      case 11: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("delete_expired_jobs(" + fmt(at) + ")", !valid_time(at),
                              [&] { return s.delete_expired_jobs(as_time(now)); });
        if (got) {
          std::int64_t expected = 0;
          erase_if([&](const Job& job) {
            // An abandoned job failed (at its lease end, before its expiry): it stays.
            return Model::open(job) && job.expires_at && sec(*job.expires_at) <= at &&
                   !model_.abandoned(job, at);
          }, expected);
          expect_equal("delete_expired_jobs", expected, *got,
                       "expected " + std::to_string(expected) + " got " + std::to_string(*got));
        }
        break;
      }
      case 12: {
        const std::int64_t id = job_id();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("lock_job(" + std::to_string(id) + ", " + fmt(at) + ")", !valid_time(at),
                              [&] { return s.lock_job(id, as_time(now)); });
        if (got) {
          const auto found = model_.jobs.find(id);
          const bool expected = found != model_.jobs.end() && Model::pending(found->second, at) &&
                                model_.free(found->second, at);
          expect_equal("lock_job", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            model_.let_go(found->second);
            found->second.locked_at = tp(at);
          }
        }
        break;
      }
      case 13: {
        const std::int64_t id = job_id();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("unlock_job(" + std::to_string(id) + ", " + fmt(at) + ")", !valid_time(at),
                              [&] { return s.unlock_job(id, as_time(now)); });
        if (got) {
          // True for any job that exists, held or not; an abandoned one is marked failed.
          const auto found = model_.jobs.find(id);
          const bool expected = found != model_.jobs.end();
          expect_equal("unlock_job", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            model_.mark_if_abandoned(found->second, at);
            model_.let_go(found->second);
          }
        }
        break;
      }
      case 14: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("lock_next_job(" + fmt(at) + ")", !valid_time(at),
                              [&] { return s.lock_next_job(as_time(now)); });
        if (got) {
          std::optional<Job> expected = model_.next(at);
          if (expected) {
            Job& job = model_.jobs.at(expected->id);
            model_.let_go(job);
            job.locked_at = tp(at);
            expected = job;
          }
          expect_job("lock_next_job", expected, *got);
        }
        break;
      }
      case 15:
      case 16:
        claim_next(s);
        break;
      case 17: {  // complete a claim
        Claim& held = claim();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const bool expected = model_.held(held, at);
        const auto got = call("complete(job " + std::to_string(held.job_id) + ", " + fmt(at) + ")",
                              !valid_time(at), [&] { return s.complete(held, as_time(now)); });
        if (got) {
          expect_equal("complete", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            Job& job = model_.jobs.at(held.job_id);
            job.completed_at = tp(at);
            model_.let_go(job);
          }
        }
        break;
      }
      case 18:
        fail(s);
        break;
      case 19: {  // extend a claim
        Claim& held = claim();
        const Claim before = held;
        const double length = lease();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const bool expected = model_.held(held, at);
        // The lease's end must be a valid time too.
        const auto got =
            call("extend(job " + std::to_string(held.job_id) + ", " + fmt(length) + ", " + fmt(at) + ")",
                 !valid_time(at) || !good_lease(length) || !valid_time(at + length),
                 [&] { return s.extend(held, Seconds{length}, as_time(now)); });
        if (got) {
          expect_equal("extend", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            // A lease never moves earlier; the claim learns the end that stands.
            Job& job = model_.jobs.at(held.job_id);
            const double stored =
                job.lease_until ? std::max(sec(*job.lease_until), at + length) : at + length;
            job.lease_until = tp(stored);
            expect_claim("extend", Claim{before.job_id, before.token, tp(stored)}, held,
                         "the claim's lease_until is not the stored end " + fmt(stored) + ": " +
                             fmt(sec(held.lease_until)));
          } else {
            expect_claim("extend", before, held, "a refused extend changed the claim");
          }
        } else {
          expect_claim("extend", before, held, "an invalid extend changed the claim");
        }
        break;
      }
      case 20: {  // release a claim
        Claim& held = claim();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const bool expected = model_.held(held, at);
        const auto got = call("release(job " + std::to_string(held.job_id) + ", " + fmt(at) + ")",
                              !valid_time(at), [&] { return s.release(held, as_time(now)); });
        if (got) {
          expect_equal("release", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            Job& job = model_.jobs.at(held.job_id);
            model_.let_go(job);
            job.attempts = std::max(job.attempts - 1, 0);
          }
        }
        break;
      }
      case 21: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("failed_jobs(" + fmt(at) + ")", !valid_time(at),
                              [&] { return s.failed_jobs(as_time(now)); });
        if (got) {
          // A read: the failed jobs as shown at `at`, the abandoned ones included, by
          // failed_at then id. Nothing changes.
          std::vector<Job> expected;
          for (const auto& [id, job] : model_.jobs) {
            Job view = model_.shown(job, at);
            if (view.failed_at)
              expected.push_back(std::move(view));
          }
          std::stable_sort(expected.begin(), expected.end(), [](const Job& a, const Job& b) {
            return sec(*a.failed_at) < sec(*b.failed_at);  // ids ascend already
          });
          if (expected != *got) {
            std::string text = "expected";
            for (const Job& job : expected)
              text += "\n  " + describe(job);
            text += "\ngot";
            for (const Job& job : *got)
              text += "\n  " + describe(job);
            mismatch("failed_jobs", text);
          }
        }
        break;
      }
      case 22: {
        const std::int64_t id = job_id();
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("retry_job(" + std::to_string(id) + ", " + fmt(at) + ")", !valid_time(at),
                              [&] { return s.retry_job(id, as_time(now)); });
        if (got) {
          model_.mark_abandoned(at);
          const auto found = model_.jobs.find(id);
          const bool expected = found != model_.jobs.end() && found->second.failed_at.has_value();
          expect_equal("retry_job", expected, *got, "expected " + std::to_string(expected));
          if (expected) {
            Job& job = found->second;
            job.failed_at.reset();
            job.attempts = 0;
            const double until = job.expires_at ? std::min(at, sec(*job.expires_at)) : at;
            job.starts_at = tp(std::max(sec(job.created_at), until));
          }
        }
        break;
      }
      default: {
        const auto now = now_argument();
        const double at = now.value_or(clock_);
        const auto got = call("delete_failed_jobs(" + fmt(at) + ")", !valid_time(at),
                              [&] { return s.delete_failed_jobs(as_time(now)); });
        if (got) {
          model_.mark_abandoned(at);
          std::int64_t expected = 0;
          erase_if([&](const Job& job) { return job.failed_at.has_value(); }, expected);
          expect_equal("delete_failed_jobs", expected, *got,
                       "expected " + std::to_string(expected) + " got " + std::to_string(*got));
        }
        break;
      }
    }
  }

  template <class Pred>
  void erase_if(Pred pred, std::int64_t& erased) {
    for (auto it = model_.jobs.begin(); it != model_.jobs.end();) {
      if (pred(it->second)) {
        model_.tokens.erase(it->first);
        it = model_.jobs.erase(it);
        ++erased;
      } else {
        ++it;
      }
    }
  }

  void add_job(Scheduler& s) {
    Payload data = payload();
    JobOptions options;
    options.created_at = as_time(optional_time());
    options.starts_at = as_time(optional_time());
    options.expires_at = as_time(optional_time());
    options.priority = priority();
    options.queue = queue();
    if (in_.pick(3) == 0) {
      options.max_attempts = max_attempts();
      options.initial_backoff = backoff();
      options.max_backoff = backoff();
    }
    const double created = options.created_at ? sec(*options.created_at) : clock_;
    const double starts = options.starts_at ? sec(*options.starts_at) : created;
    const std::optional<double> expires =
        options.expires_at ? std::optional<double>(sec(*options.expires_at)) : std::nullopt;
    const bool invalid =
        !valid_time(created) || !valid_time(starts) || (expires && !valid_time(*expires)) || created > starts ||
        (expires && starts > *expires) || (data.as_real() && std::isnan(*data.as_real())) ||
        (options.max_attempts && *options.max_attempts < 1) ||
        (options.initial_backoff && !good_duration(options.initial_backoff->count())) ||
        (options.max_backoff && !good_duration(options.max_backoff->count()));
    Job expected;
    expected.id = model_.max_id + 1;
    expected.data = data;
    expected.created_at = tp(created);
    expected.starts_at = tp(starts);
    expected.expires_at = as_time(expires);
    expected.max_attempts = options.max_attempts;
    expected.initial_backoff = options.initial_backoff;
    expected.max_backoff = options.max_backoff;
    expected.priority = options.priority;
    expected.queue = options.queue;
    const auto got = call("add_job(" + describe(expected) + ")", invalid,
                          [&] { return s.add_job(data, options); });
    if (got) {
      expect_job("add_job", expected, *got);
      model_.jobs[expected.id] = expected;
      model_.max_id = expected.id;
    }
  }

  void add_job_from_now(Scheduler& s) {
    Payload data = payload();
    const double after = duration();
    const std::optional<double> expires_after =
        in_.flag() ? std::optional<double>(duration()) : std::nullopt;
    const std::optional<double> created_at = in_.pick(3) == 0 ? optional_time() : std::nullopt;
    const double created = created_at.value_or(clock_);
    bool invalid = !good_duration(after) || (expires_after && !good_duration(*expires_after));
    Job expected;
    if (!invalid) {
      const double starts = sec(tp(created) + Seconds{after});
      std::optional<double> expires;
      if (expires_after)
        expires = sec(tp(created) + Seconds{*expires_after});
      invalid = !valid_time(created) || !valid_time(starts) || (expires && !valid_time(*expires)) ||
                created > starts || (expires && starts > *expires) ||
                (data.as_real() && std::isnan(*data.as_real()));
      expected.id = model_.max_id + 1;
      expected.data = data;
      expected.created_at = tp(created);
      expected.starts_at = tp(starts);
      expected.expires_at = as_time(expires);
    }
    const auto got = call("add_job_from_now(" + fmt(after) + ", " +
                              (expires_after ? fmt(*expires_after) : "-") + ", " +
                              fmt(created) + ")",
                          invalid, [&] {
                            return s.add_job_from_now(
                                data, Seconds{after},
                                expires_after ? std::optional<Seconds>(Seconds{*expires_after})
                                              : std::nullopt,
                                as_time(created_at));
                          });
    if (got) {
      expect_job("add_job_from_now", expected, *got);
      model_.jobs[expected.id] = expected;
      model_.max_id = expected.id;
    }
  }

  void seconds_until(Scheduler& s) {
    const bool with_queues = in_.flag();
    const std::vector<std::string> list = with_queues ? queues() : std::vector<std::string>{};
    const auto now = now_argument();
    const double at = now.value_or(clock_);
    const bool invalid = !valid_time(at) || (with_queues && list.empty());
    const std::string name = std::string("seconds_until_next_job(") +
                             (with_queues ? std::to_string(list.size()) + " queues, " : "") +
                             fmt(at) + ")";
    const auto got = call(name, invalid, [&] {
      return with_queues ? s.seconds_until_next_job(list, as_time(now))
                         : s.seconds_until_next_job(as_time(now));
    });
    if (!got)
      return;
    // The earliest (available_at, id) among the jobs served: next_job's job (of those
    // queues) when one is due, else the one that becomes claimable first. Both forms name
    // that very job.
    std::optional<Bounds> best;
    for (const auto& [id, job] : model_.jobs) {
      if (with_queues && std::find(list.begin(), list.end(), job.queue) == list.end())
        continue;
      const std::optional<double> available = model_.available_at(job, at);
      if (!available)
        continue;
      if (!best || *available < best->value)
        best = Bounds{*available, id};  // ids ascend, so ties keep the lower id
    }
    const std::optional<JobDelay>& actual = *got;
    if (best.has_value() != actual.has_value()) {
      mismatch(name, std::string("expected ") + (best ? "a job" : "none") + ", got " +
                         (actual ? "job " + std::to_string(actual->id) : "none"));
    }
    if (!best)
      return;
    const double delay = std::max(0.0, best->value - at);
    if (actual->delay.count() != delay) {
      mismatch(name, "expected delay " + fmt(delay) + " (job " + std::to_string(best->id) +
                         "), got " + fmt(actual->delay.count()) + " (job " +
                         std::to_string(actual->id) + ")");
    }
    if (actual->id != best->id)
      mismatch(name, "expected job " + std::to_string(best->id) + ", got job " +
                         std::to_string(actual->id) + " (same delay " + fmt(delay) + ")");
  }

  /// `first_read`, when set, is what the clock answers first (then clock_): a claim reads it
  /// before waiting for the write lock and again once it holds it, and claims at the second.
  void claim_next(Scheduler& s, std::optional<double> first_read = std::nullopt) {
    const bool with_queues = in_.flag();
    const std::vector<std::string> list = with_queues ? queues() : std::vector<std::string>{};
    const double length = lease();
    const auto now = now_argument();
    const double before_lock = now ? *now : first_read.value_or(clock_);
    const double at = now.value_or(clock_);
    // Either reading, and the lease's end from either, must be a valid time.
    const bool invalid = !valid_time(before_lock) || !valid_time(before_lock + length) ||
                         !valid_time(at) || !valid_time(at + length) || !good_lease(length) ||
                         (with_queues && list.empty());
    const std::string name = std::string("claim_next_job(") + fmt(length) + ", " +
                             (with_queues ? std::to_string(list.size()) + " queues, " : "") +
                             (before_lock != at ? fmt(before_lock) + " then " : "") + fmt(at) + ")";
    const auto got = call(name, invalid, [&] {
      return with_queues ? s.claim_next_job(Seconds{length}, list, as_time(now))
                         : s.claim_next_job(Seconds{length}, as_time(now));
    });
    if (!got)
      return;
    model_.mark_abandoned(at);
    // Claim order among due, free, pending jobs: priority desc, starts_at, id.
    Job* best = nullptr;
    for (auto& [id, job] : model_.jobs) {
      if (with_queues && std::find(list.begin(), list.end(), job.queue) == list.end())
        continue;
      if (!Model::pending(job, at) || !model_.free(job, at) || sec(job.starts_at) > at)
        continue;
      if (best == nullptr || job.priority > best->priority ||
          (job.priority == best->priority && sec(job.starts_at) < sec(best->starts_at)))
        best = &job;
    }
    const std::optional<jobsched::ClaimedJob>& actual = *got;
    if ((best != nullptr) != actual.has_value()) {
      mismatch(name, std::string("expected ") + (best ? describe(*best) : "none") + ", got " +
                         (actual ? describe(actual->job) : "none"));
    }
    if (best == nullptr)
      return;
    if (best->lease_until)
      best->last_error = "the lease of attempt " + std::to_string(best->attempts) + " ran out";
    best->locked_at = tp(at);
    best->lease_until = tp(at + length);
    best->attempts += 1;
    expect_job(name, *best, actual->job);
    const Claim expected{best->id, actual->claim.token, tp(at + length)};
    expect_equal(name, expected, actual->claim, "wrong claim");
    model_.tokens[best->id] = actual->claim.token;
    if (claims_.size() < 16) {
      claims_.push_back(actual->claim);
    } else {
      claims_[static_cast<std::size_t>(best->id) % claims_.size()] = actual->claim;
    }
  }

  void fail(Scheduler& s) {
    Claim& held = claim();
    const std::string error = error_text();
    const auto now = now_argument();
    const double at = now.value_or(clock_);
    const bool expected = model_.held(held, at);
    const auto got = call("fail(job " + std::to_string(held.job_id) + ", " + fmt(at) + ")",
                          !valid_time(at), [&] { return s.fail(held, error, as_time(now)); });
    if (!got)
      return;
    expect_equal("fail", expected, *got, "expected " + std::to_string(expected));
    if (!expected)
      return;
    Job& job = model_.jobs.at(held.job_id);
    const jobsched::RetryPolicy& policy = model_.policy;
    if (job.attempts < model_.max_attempts(job)) {
      const double initial = job.initial_backoff.value_or(policy.initial_backoff).count();
      const double cap = job.max_backoff.value_or(policy.max_backoff).count();
      double backoff = 0.0;
      if (initial > 0.0) {
        backoff = initial * std::pow(policy.multiplier, static_cast<double>(std::max(job.attempts, 1) - 1));
        if (!(backoff <= cap))
          backoff = cap;
      }
      double when = at + backoff;
      if (job.expires_at)
        when = std::min(when, sec(*job.expires_at));
      when = std::min(when, kLatestRetry);
      job.starts_at = tp(std::max(when, sec(job.created_at)));
    } else {
      job.failed_at = tp(at);
    }
    job.last_error = error;
    model_.let_go(job);
  }

  /// The clock lies for one call: it reads `first` (NaN, far off, or just valid); or, for a
  /// claim, `first` before the write lock and another reading after. Then it tells the truth.
  void lie(bool at_claim) {
    const double truth = clock_;
    const double first = time_value();
    if (at_claim) {
      clock_ = time_value();
      trace("clock reads " + fmt(first) + ", then " + fmt(clock_) + ", for one claim");
      set_clock(clock_, first);
      claim_next(*scheduler_, first);
    } else {
      clock_ = first;
      trace("clock reads " + fmt(first) + " for one call");
      set_clock(clock_);
      lying_ = true;
      one_step();
      lying_ = false;
    }
    clock_ = truth;
    set_clock(truth);
    trace("clock = " + fmt(clock_));
  }

  /// Every job the model knows reads back exactly, and no other id exists.
  void check_state() {
    Scheduler& s = *scheduler_;
    for (std::int64_t id = 1; id <= model_.max_id + 1; ++id) {
      const std::optional<Job> expected = model_.shown(id, clock_);
      std::optional<Job> actual;
      try {
        actual = s.get_job(id);
      } catch (const std::exception& error) {
        mismatch("state check", std::string("get_job threw: ") + error.what());
      }
      if (expected != actual)
        mismatch("state check", "job " + std::to_string(id) + ": expected " + describe(expected) +
                                    "\n  got " + describe(actual));
    }
  }

  Input in_;
  std::uint8_t setup_ = 0;
  Model model_;
  double clock_ = 1000.0;
  bool lying_ = false;
  Scheduler* scheduler_ = nullptr;
  std::vector<Claim> claims_;
  Claim forged_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Session session(data, size);
  try {
    session.run();
  } catch (const std::exception& error) {
    mismatch("session", std::string("escaped exception: ") + error.what());
  }
  return 0;
}
