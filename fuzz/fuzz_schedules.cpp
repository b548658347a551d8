// SPDX-License-Identifier: MIT
// libFuzzer target: the input bytes decode into a sequence of schedule calls, claims, reads
// and clock moves (forward, back, ten minutes ahead) on a ":memory:" database, and after each one
// the file is checked against what recurring schedules promise (detail/firing.hpp):
//   - a schedule's jobs have strictly increasing fire times in the order they were made,
//     whatever the clock did: no firing is made twice or out of order;
//   - every fire time is a firing of the schedule's rule;
//   - a running schedule always has its next firing made ahead, after every firing made,
//     and a paused one none;
//   - a catch_up schedule with a cap larger than any gap, never paused or changed, has made
//     every firing from its first to its latest, none missing.
// A broken promise, or any exception, prints what differed and aborts.
//
// Set FUZZ_SCHEDULES_TRACE=1 to print each decoded call when replaying an input.

#include <jobsched/jobsched.hpp>
#include <sqlite3.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using jobsched::Misfire;
using jobsched::Rule;
using jobsched::ScheduleOptions;
using jobsched::Scheduler;
using jobsched::Seconds;

bool trace_enabled() {
  static const bool enabled = std::getenv("FUZZ_SCHEDULES_TRACE") != nullptr;
  return enabled;
}

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "fuzz_schedules: %s\n", what.c_str());
  std::abort();
}

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// What the harness knows of one name: the rule of its current life, from which job id on.
struct Life {
  bool exists = false;
  bool paused = false;
  int interval = 1;
  Misfire misfire = Misfire::skip;
  int cap = 1;
  std::int64_t first_id = 0;  // jobs of this life have ids above it
  bool changed = false;       // paused, resumed or redefined since created
};

constexpr int kNames = 3;
constexpr int kIntervals[] = {1, 2, 3, 5, 10};
constexpr int kCaps[] = {1, 3, 100000};

std::string name_of(int index) { return "s" + std::to_string(index); }

std::int64_t max_job_id(sqlite3* db) {
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM job", -1, &statement, nullptr);
  sqlite3_step(statement);
  const std::int64_t id = sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return id;
}

bool firing_exists(sqlite3* db, const std::string& name, double fire) {
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "SELECT 1 FROM job WHERE schedule = ?1 AND fire_at = ?2", -1,
                     &statement, nullptr);
  sqlite3_bind_text(statement, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(statement, 2, fire);
  const bool found = sqlite3_step(statement) == SQLITE_ROW;
  sqlite3_finalize(statement);
  return found;
}

void check(Scheduler& scheduler, const std::map<int, Life>& lives) {
  sqlite3* db = scheduler.handle();
  for (const auto& [index, life] : lives) {
    const std::string name = name_of(index);
    if (!life.exists) {
      if (scheduler.get_schedule(name))
        broken(name + " was deleted but is still listed");
      continue;
    }
    // The jobs of this life, in the order they were made.
    std::vector<double> fires;
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, "SELECT fire_at FROM job WHERE schedule = ?1 AND id > ?2 ORDER BY id",
                       -1, &statement, nullptr);
    sqlite3_bind_text(statement, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(statement, 2, life.first_id);
    while (sqlite3_step(statement) == SQLITE_ROW)
      fires.push_back(sqlite3_column_double(statement, 0));
    sqlite3_finalize(statement);
    for (std::size_t i = 1; i < fires.size(); ++i) {
      if (!(fires[i] > fires[i - 1])) {
        broken(name + ": fire time " + std::to_string(fires[i]) + " made after " +
               std::to_string(fires[i - 1]));
      }
    }
    if (!life.changed) {
      for (const double fire : fires) {
        if (std::fmod(fire, life.interval) != 0.0)
          broken(name + ": " + std::to_string(fire) + " is not a firing of every " +
                 std::to_string(life.interval) + " s");
      }
      if (life.misfire == Misfire::catch_up && life.cap == 100000) {
        for (std::size_t i = 1; i < fires.size(); ++i) {
          if (fires[i] != fires[i - 1] + life.interval)
            broken(name + ": catch_up missed the firings between " + std::to_string(fires[i - 1]) +
                   " and " + std::to_string(fires[i]));
        }
      }
    }
    const std::optional<jobsched::Schedule> stored = scheduler.get_schedule(name);
    if (!stored)
      broken(name + " is missing");
    if (stored->paused != life.paused)
      broken(name + ": paused is " + std::to_string(stored->paused));
    if (life.paused) {
      if (stored->next_fire)
        broken(name + ": paused, yet a firing is made ahead");
      continue;
    }
    if (!stored->next_fire)
      broken(name + ": running, yet no firing is made ahead");
    const double ahead = jobsched::to_unix_seconds(*stored->next_fire);
    // Its job: the latest of this life, or (a name used again, the clock set back) the job
    // an earlier life made for that firing, which stays the only one.
    const bool latest = !fires.empty() && fires.back() == ahead;
    if (!latest && (!fires.empty() || !firing_exists(db, name, ahead)))
      broken(name + ": the firing ahead (" + std::to_string(ahead) + ") is not its latest job");
    if (stored->last_fire && !(jobsched::to_unix_seconds(*stored->last_fire) < ahead))
      broken(name + ": the firing ahead is not after the last one made");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input input(data, size);
  double now = 1'700'000'000.0;
  auto at = [&] { return jobsched::from_unix_seconds(now); };
  std::map<int, Life> lives;
  try {
    // Every call's "now" is the harness's, adds and opens included.
    jobsched::Options options;
    options.clock = at;
    auto scheduler = Scheduler::open(":memory:", options);
    sqlite3* db = scheduler.handle();
    for (int step = 0; step < 200 && !input.empty(); ++step) {
      const int op = input.byte() % 10;
      const int index = input.byte() % kNames;
      const std::string name = name_of(index);
      Life& life = lives[index];
      if (trace_enabled())
        std::fprintf(stderr, "now %.1f op %d %s\n", now, op, name.c_str());
      switch (op) {
        case 0: {  // put
          const int interval = kIntervals[input.byte() % 5];
          const auto misfire = static_cast<Misfire>(input.byte() % 3);
          const int cap = kCaps[input.byte() % 3];
          ScheduleOptions options;
          options.misfire = misfire;
          options.catch_up_limit = cap;
          const bool same = life.exists && life.interval == interval && life.misfire == misfire &&
                            life.cap == cap;
          if (!life.exists) {
            life = Life{};
            life.exists = true;
            life.first_id = max_job_id(db);
          } else if (!same) {
            life.changed = true;
          }
          life.interval = interval;
          life.misfire = misfire;
          life.cap = cap;
          scheduler.put_schedule(name, Rule::every(Seconds{static_cast<double>(interval)}),
                                 options, at());
          break;
        }
        case 1:
          now += input.byte() * 0.5;
          break;
        case 2:
          now -= input.byte();
          break;
        case 3: {  // claim, and complete some
          const std::size_t n = 1 + input.byte() % 4;
          const bool complete = input.byte() % 4 != 0;
          for (const jobsched::ClaimedJob& claimed : scheduler.claim_jobs(n, Seconds{30}, at())) {
            if (complete)
              scheduler.complete(claimed.claim, at());
          }
          break;
        }
        case 4:
          if (input.byte() % 2 == 0) {
            scheduler.next_job(at());
          } else {
            scheduler.seconds_until_next_job(at());
          }
          break;
        case 5:
          if (scheduler.pause_schedule(name, at()) != life.exists)
            broken("pause_schedule answered wrongly for " + name);
          if (life.exists) {
            life.changed = life.changed || !life.paused;
            life.paused = true;
          }
          break;
        case 6:
          if (scheduler.resume_schedule(name, at()) != life.exists)
            broken("resume_schedule answered wrongly for " + name);
          if (life.exists) {
            life.changed = life.changed || life.paused;
            life.paused = false;
          }
          break;
        case 7:
          if (scheduler.delete_schedule(name, at()) != life.exists)
            broken("delete_schedule answered wrongly for " + name);
          life.exists = false;
          break;
        case 8: {
          jobsched::JobOptions options;
          options.created_at = at();
          options.starts_at = at();
          scheduler.add_job(jobsched::Payload("x"), options);
          break;
        }
        default:  // a long downtime
          now += 600;
          break;
      }
      check(scheduler, lives);
    }
  } catch (const std::exception& error) {
    broken(std::string("an exception: ") + error.what());
  }
  return 0;
}
