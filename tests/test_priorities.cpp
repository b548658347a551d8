// SPDX-License-Identifier: MIT
// Claim order: among due, free jobs of the queues served, higher priority first, then the
// earlier start, then the lower id. Without priorities or queues that is next-job order.
// Checked case by case, and against a brute-force model over many queues and priority
// levels at many times.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "catch.hpp"
#include "support/temp_file.hpp"

namespace test_priorities {

using jobsched::Claim;
using jobsched::Job;
using jobsched::JobOptions;
using jobsched::RetryPolicy;
using jobsched::Scheduler;
using jobsched::Seconds;
using jobsched_test::at;
using jobsched_test::exec_raw;
using jobsched_test::PinnedClock;
using jobsched_test::TempFile;

namespace {

constexpr double kT = 1'700'000'000.0;  // PinnedClock's default "now"

struct Fixture {
  explicit Fixture(const std::string& where)
      : file("priorities"),
        scheduler(Scheduler::open(where == "file" ? file.path() : ":memory:", options())) {}
  jobsched::Options options() const {
    jobsched::Options result = clock.options();
    result.retry.jitter = 0.0;
    result.retry.max_attempts = 1000;
    return result;
  }
  TempFile file;
  PinnedClock clock;
  Scheduler scheduler;
};

JobOptions job(double starts, int priority = 0, const std::string& queue = "",
               std::optional<double> expires = std::nullopt) {
  JobOptions options;
  options.created_at = at(kT - 1e6);
  options.starts_at = at(starts);
  options.expires_at = expires ? std::optional<jobsched::TimePoint>(at(*expires)) : std::nullopt;
  options.priority = priority;
  options.queue = queue;
  return options;
}

/// Claims (and completes) until nothing is due at `now`; returns the ids in claim order.
std::vector<std::int64_t> drain(Scheduler& scheduler, double now,
                                const std::vector<std::string>* queues = nullptr) {
  std::vector<std::int64_t> order;
  for (;;) {
    const auto claimed = queues != nullptr ? scheduler.claim_next_job(Seconds{60}, *queues, at(now))
                                           : scheduler.claim_next_job(Seconds{60}, at(now));
    if (!claimed)
      return order;
    order.push_back(claimed->job.id);
    REQUIRE(scheduler.complete(claimed->claim, at(now)));
    REQUIRE(order.size() < 100'000);
  }
}

}  // namespace

TEST_CASE("without priorities or queues, jobs are claimed in order of start, then id") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  std::mt19937 random(7);
  std::vector<std::tuple<double, std::int64_t>> expected;
  for (int i = 0; i < 200; ++i) {
    const double starts = kT - static_cast<double>(random() % 40);  // many ties
    expected.emplace_back(starts, f.scheduler.add_job(std::to_string(i), job(starts)).id);
  }
  std::sort(expected.begin(), expected.end());
  std::vector<std::int64_t> expected_ids;
  for (const auto& entry : expected)
    expected_ids.push_back(std::get<1>(entry));

  // Each claim takes what next_job shows.
  std::vector<std::int64_t> order;
  while (const auto next = f.scheduler.next_job()) {
    const auto claimed = f.scheduler.claim_next_job(Seconds{60});
    REQUIRE(claimed.has_value());
    CHECK(claimed->job.id == next->id);
    order.push_back(claimed->job.id);
    REQUIRE(f.scheduler.complete(claimed->claim));
    REQUIRE(order.size() <= expected_ids.size());  // else a completed job came back: no end
  }
  CHECK(order == expected_ids);
}

TEST_CASE("among due jobs, higher priority comes first, then earlier start, then lower id") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto low_early = f.scheduler.add_job("low early", job(kT - 50, 1)).id;
  const auto high_late = f.scheduler.add_job("high late", job(kT - 10, 5)).id;
  const auto high_early = f.scheduler.add_job("high early", job(kT - 20, 5)).id;
  const auto high_late_twin = f.scheduler.add_job("high late twin", job(kT - 10, 5)).id;
  const auto mid = f.scheduler.add_job("mid", job(kT - 30, 3)).id;
  const auto zero = f.scheduler.add_job("zero", job(kT - 100)).id;
  CHECK(drain(f.scheduler, kT) ==
        std::vector<std::int64_t>{high_early, high_late, high_late_twin, mid, low_early, zero});
}

TEST_CASE("a higher-priority job not yet due does not block a due lower-priority one") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto urgent_later = f.scheduler.add_job("urgent later", job(kT + 10, 100)).id;
  const auto lowly_now = f.scheduler.add_job("lowly now", job(kT - 1, -5)).id;
  const auto claimed = f.scheduler.claim_next_job(Seconds{60});
  REQUIRE(claimed.has_value());
  CHECK(claimed->job.id == lowly_now);
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}, at(kT + 9.5)).has_value());
  const auto urgent = f.scheduler.claim_next_job(Seconds{60}, at(kT + 10));
  REQUIRE(urgent.has_value());
  CHECK(urgent->job.id == urgent_later);
  CHECK(urgent->job.priority == 100);
}

TEST_CASE("a held higher-priority job does not block the next level") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto high = f.scheduler.add_job("high", job(kT - 1, 9)).id;
  const auto low = f.scheduler.add_job("low", job(kT - 5, 1)).id;
  REQUIRE(f.scheduler.claim_next_job(Seconds{60})->job.id == high);
  CHECK(f.scheduler.claim_next_job(Seconds{60})->job.id == low);
  CHECK_FALSE(f.scheduler.claim_next_job(Seconds{60}).has_value());
}

TEST_CASE("negative priorities come after zero, and the extremes of int are ordered") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const int lowest = std::numeric_limits<int>::min();
  const int highest = std::numeric_limits<int>::max();
  const auto minus_one = f.scheduler.add_job("-1", job(kT - 100, -1)).id;
  const auto most_negative = f.scheduler.add_job("min", job(kT - 200, lowest)).id;
  const auto zero = f.scheduler.add_job("0", job(kT - 1, 0)).id;
  const auto most_positive = f.scheduler.add_job("max", job(kT - 1, highest)).id;
  const auto minus_two = f.scheduler.add_job("-2", job(kT - 300, -2)).id;
  const auto min_plus_one = f.scheduler.add_job("min+1", job(kT - 1, lowest + 1)).id;
  CHECK(f.scheduler.get_job(most_negative)->priority == lowest);
  CHECK(f.scheduler.get_job(most_positive)->priority == highest);
  CHECK(drain(f.scheduler, kT) == std::vector<std::int64_t>{most_positive, zero, minus_one,
                                                            minus_two, min_plus_one,
                                                            most_negative});
}

TEST_CASE("a claim naming queues takes only from those queues") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto mail = f.scheduler.add_job("mail", job(kT - 10, 0, "mail")).id;
  const auto video = f.scheduler.add_job("video", job(kT - 20, 0, "video")).id;
  const auto plain = f.scheduler.add_job("plain", job(kT - 30)).id;
  const auto mail_urgent = f.scheduler.add_job("mail urgent", job(kT - 5, 2, "mail")).id;

  const std::vector<std::string> mail_only{"mail"};
  CHECK(drain(f.scheduler, kT, &mail_only) == std::vector<std::int64_t>{mail_urgent, mail});
  const std::vector<std::string> unknown{"nobody"};
  CHECK(drain(f.scheduler, kT, &unknown).empty());
  const std::vector<std::string> video_only{"video"};
  const auto from_video = f.scheduler.claim_next_job(Seconds{60}, video_only);
  REQUIRE(from_video.has_value());
  CHECK(from_video->job.id == video);
  CHECK(from_video->job.queue == "video");
  CHECK(f.scheduler.claim_next_job(Seconds{60})->job.id == plain);
}

TEST_CASE("the empty name is the default queue, and a queue's name is matched exactly") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto plain = f.scheduler.add_job("plain", job(kT - 1)).id;
  const auto spaced = f.scheduler.add_job("spaced", job(kT - 2, 0, " ")).id;
  const auto upper = f.scheduler.add_job("upper", job(kT - 3, 0, "Mail")).id;
  const auto lower = f.scheduler.add_job("lower", job(kT - 4, 0, "mail")).id;
  const auto longer = f.scheduler.add_job("longer", job(kT - 5, 0, "mailx")).id;
  const auto accented = f.scheduler.add_job("accented", job(kT - 6, 0, "m\xc3\xa4il")).id;
  CHECK(f.scheduler.get_job(plain)->queue.empty());

  const std::vector<std::string> default_queue{""};
  CHECK(drain(f.scheduler, kT, &default_queue) == std::vector<std::int64_t>{plain});
  const std::vector<std::string> mail{"mail"};
  CHECK(drain(f.scheduler, kT, &mail) == std::vector<std::int64_t>{lower});
  const std::vector<std::string> rest{"m\xc3\xa4il", "Mail", " ", "mailx"};
  CHECK(drain(f.scheduler, kT, &rest) ==
        std::vector<std::int64_t>{accented, longer, upper, spaced});
}

TEST_CASE("a queue whose name holds a NUL byte is a queue of its own") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const std::string nul_queue("a\0b", 3);
  const auto a = f.scheduler.add_job("a", job(kT - 1, 0, "a")).id;
  const auto anul = f.scheduler.add_job("a\\0b", job(kT - 2, 0, nul_queue)).id;
  const auto ab = f.scheduler.add_job("ab", job(kT - 3, 0, "ab")).id;
  CHECK(f.scheduler.get_job(anul)->queue == nul_queue);
  const std::vector<std::string> only_nul{nul_queue};
  CHECK(drain(f.scheduler, kT, &only_nul) == std::vector<std::int64_t>{anul});
  // Served without naming queues, every queue is visited once.
  CHECK(drain(f.scheduler, kT) == std::vector<std::int64_t>{ab, a});
}

TEST_CASE("across the queues named, the order is priority, then start, then id") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto a_low = f.scheduler.add_job("a low", job(kT - 90, 1, "a")).id;
  const auto b_high = f.scheduler.add_job("b high", job(kT - 10, 4, "b")).id;
  const auto a_high = f.scheduler.add_job("a high", job(kT - 20, 4, "a")).id;
  const auto c_top = f.scheduler.add_job("c top", job(kT - 1, 9, "c")).id;
  const auto b_low_tie = f.scheduler.add_job("b low tie", job(kT - 90, 1, "b")).id;
  const auto a_neg = f.scheduler.add_job("a negative", job(kT - 999, -3, "a")).id;
  // c is not named, so its top job waits.
  const std::vector<std::string> a_and_b{"b", "a"};
  CHECK(drain(f.scheduler, kT, &a_and_b) ==
        std::vector<std::int64_t>{a_high, b_high, a_low, b_low_tie, a_neg});
  CHECK(f.scheduler.claim_next_job(Seconds{60})->job.id == c_top);
}

TEST_CASE("naming a queue twice changes nothing") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto first = f.scheduler.add_job("first", job(kT - 2, 0, "q")).id;
  const auto second = f.scheduler.add_job("second", job(kT - 1, 0, "q")).id;
  const std::vector<std::string> twice{"q", "q"};
  CHECK(drain(f.scheduler, kT, &twice) == std::vector<std::int64_t>{first, second});
}

TEST_CASE("seconds_until_next_job with queues considers only those queues") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto other_soon = f.scheduler.add_job("other soon", job(kT + 5, 0, "other")).id;
  const auto mail_later = f.scheduler.add_job("mail later", job(kT + 50, 0, "mail")).id;
  const auto mail_high = f.scheduler.add_job("mail high", job(kT + 80, 7, "mail")).id;
  const auto plain = f.scheduler.add_job("plain", job(kT + 30)).id;

  const std::vector<std::string> mail{"mail"};
  auto delay = f.scheduler.seconds_until_next_job(mail);
  REQUIRE(delay.has_value());
  CHECK(delay->id == mail_later);  // the earliest start, whatever its priority
  CHECK(delay->delay == Seconds{50});
  CHECK(f.scheduler.seconds_until_next_job()->id == other_soon);
  CHECK(f.scheduler.seconds_until_next_job()->delay == Seconds{5});
  const std::vector<std::string> mail_and_default{"mail", ""};
  CHECK(f.scheduler.seconds_until_next_job(mail_and_default)->id == plain);
  CHECK(f.scheduler.seconds_until_next_job(mail_and_default)->delay == Seconds{30});
  CHECK_FALSE(f.scheduler.seconds_until_next_job({"nobody"}).has_value());

  // A claim in a named queue: its lease end counts, for that queue only.
  const auto claimed = f.scheduler.claim_next_job(Seconds{10}, mail, at(kT + 60));
  REQUIRE(claimed.has_value());
  REQUIRE(claimed->job.id == mail_later);  // lease until kT + 70
  delay = f.scheduler.seconds_until_next_job(mail, at(kT + 60));
  REQUIRE(delay.has_value());
  CHECK(delay->id == mail_later);
  CHECK(delay->delay == Seconds{10});
  const std::vector<std::string> other{"other"};
  CHECK(f.scheduler.seconds_until_next_job(other, at(kT + 60))->id == other_soon);
  CHECK(f.scheduler.seconds_until_next_job(other, at(kT + 60))->delay == Seconds{0});
  REQUIRE(f.scheduler.complete(claimed->claim, at(kT + 61)));
  delay = f.scheduler.seconds_until_next_job(mail, at(kT + 61));
  REQUIRE(delay.has_value());
  CHECK(delay->id == mail_high);
  CHECK(delay->delay == Seconds{19});
}

TEST_CASE("seconds_until_next_job with queues ignores locked jobs in them") {
  Fixture f(GENERATE(as<std::string>{}, "file", "memory"));
  const auto locked = f.scheduler.add_job("locked", job(kT - 5, 0, "q")).id;
  const auto later = f.scheduler.add_job("later", job(kT + 40, 0, "q")).id;
  REQUIRE(f.scheduler.lock_job(locked));
  const std::vector<std::string> q{"q"};
  const auto delay = f.scheduler.seconds_until_next_job(q);
  REQUIRE(delay.has_value());
  CHECK(delay->id == later);
  CHECK(delay->delay == Seconds{40});
  CHECK(f.scheduler.claim_next_job(Seconds{5}, q, at(kT + 40))->job.id == later);
}

// ---- Against a brute-force model ------------------------------------------------------------

namespace {

/// The claim order and the next delay, computed from every job as stored.
struct Model {
  std::vector<Job> jobs;

  static bool served(const Job& job, const std::vector<std::string>* queues) {
    return queues == nullptr ||
           std::find(queues->begin(), queues->end(), job.queue) != queues->end();
  }
  static bool live_lease(const Job& job, double now) {
    return job.locked_at && job.lease_until && jobsched::to_unix_seconds(*job.lease_until) > now;
  }
  static bool locked_for_good(const Job& job) { return job.locked_at && !job.lease_until; }

  /// The jobs a claim at `now` may take.
  std::vector<const Job*> claimable(double now, const std::vector<std::string>* queues) const {
    std::vector<const Job*> result;
    for (const Job& job : jobs) {
      if (!served(job, queues) || !job.is_pending(at(now)))
        continue;
      if (locked_for_good(job) || live_lease(job, now))
        continue;
      if (jobsched::to_unix_seconds(job.starts_at) > now)
        continue;
      result.push_back(&job);
    }
    return result;
  }

  std::optional<std::int64_t> next_claim(double now, const std::vector<std::string>* queues) const {
    const Job* best = nullptr;
    for (const Job* job : claimable(now, queues)) {
      if (best == nullptr ||
          std::make_tuple(-static_cast<std::int64_t>(job->priority), job->starts_at, job->id) <
              std::make_tuple(-static_cast<std::int64_t>(best->priority), best->starts_at,
                              best->id)) {
        best = job;
      }
    }
    if (best == nullptr)
      return std::nullopt;
    return best->id;
  }

  /// The earliest time any served job can be claimed, with the job, ties by id.
  std::optional<std::pair<double, std::int64_t>> next_free(
      double now, const std::vector<std::string>* queues) const {
    std::optional<std::pair<double, std::int64_t>> best;
    for (const Job& job : jobs) {
      if (!served(job, queues) || !job.is_pending(at(now)) || locked_for_good(job))
        continue;
      double free_at = jobsched::to_unix_seconds(job.starts_at);
      if (job.lease_until)
        free_at = std::max(free_at, jobsched::to_unix_seconds(*job.lease_until));
      const std::pair<double, std::int64_t> candidate{free_at, job.id};
      if (!best || candidate < *best)
        best = candidate;
    }
    return best;
  }
};

/// The jobs as stored, read again only when a call may have changed them.
struct Mirror {
  std::map<std::int64_t, Job> jobs;
  void refresh(Scheduler& scheduler, std::int64_t id) {
    const std::optional<Job> job = scheduler.get_job(id);
    REQUIRE(job.has_value());
    jobs[id] = *job;
  }
  Model model() const {
    Model result;
    for (const auto& entry : jobs)
      result.jobs.push_back(entry.second);
    return result;
  }
};

}  // namespace

TEST_CASE("with 50 queues and 20 priority levels, claims match a brute-force model") {
  const std::string where = GENERATE(as<std::string>{}, "file", "memory");
  Fixture f(where);
  std::mt19937 random(GENERATE(1u, 2u, 3u));
  std::vector<std::string> queues{""};
  for (int q = 1; q < 50; ++q)
    queues.push_back("q" + std::to_string(q));
  auto pick_queue = [&] { return queues[random() % queues.size()]; };
  auto pick_priority = [&] { return static_cast<int>(random() % 20) - 10; };

  std::int64_t max_id = 0;
  Mirror mirror;
  auto add_random_job = [&](double now) {
    const double starts = now + static_cast<double>(random() % 400) - 200;
    std::optional<double> expires;
    if (random() % 5 == 0)
      expires = starts + static_cast<double>(random() % 300);
    JobOptions options = job(starts, pick_priority(), pick_queue(), expires);
    max_id = f.scheduler.add_job("x", options).id;
    mirror.refresh(f.scheduler, max_id);
  };
  exec_raw(f.scheduler.handle(), "BEGIN");
  for (int i = 0; i < 800; ++i)
    add_random_job(kT);
  exec_raw(f.scheduler.handle(), "COMMIT");
  // Some completed, some locked for good.
  for (std::int64_t id = 1; id <= max_id; id += 9)
    f.scheduler.complete_job(id, at(kT - 1));
  for (std::int64_t id = 5; id <= max_id; id += 31)
    f.scheduler.lock_job(id, at(kT - 1));
  for (std::int64_t id = 1; id <= max_id; ++id)
    mirror.refresh(f.scheduler, id);

  std::vector<Claim> held;
  double now = kT - 150;
  int claims = 0;
  int delays_checked = 0;
  for (int step = 0; step < 400; ++step) {
    // A claim from all queues or from a random handful.
    std::vector<std::string> named;
    const bool all = random() % 3 == 0;
    if (!all) {
      const std::size_t count = 1 + random() % 6;
      for (std::size_t i = 0; i < count; ++i)
        named.push_back(pick_queue());
    }
    const std::vector<std::string>* served = all ? nullptr : &named;
    INFO("step " << step << " at kT" << std::showpos << now - kT << std::noshowpos
                 << (all ? ", all queues" : ", some queues"));

    const Model model = mirror.model();
    const auto free = model.next_free(now, served);
    const auto delay = all ? f.scheduler.seconds_until_next_job(at(now))
                           : f.scheduler.seconds_until_next_job(named, at(now));
    REQUIRE(delay.has_value() == free.has_value());
    if (delay) {
      CHECK(delay->delay == Seconds{std::max(0.0, free->first - now)});
      if (free->first > now) {
        CHECK(delay->id == free->second);
      } else {  // several may be free now; the one named must be claimable
        const auto claimable = model.claimable(now, served);
        CHECK(std::any_of(claimable.begin(), claimable.end(),
                          [&](const Job* job) { return job->id == delay->id; }));
      }
      ++delays_checked;
    }

    const auto expected = model.next_claim(now, served);
    const auto claimed = all ? f.scheduler.claim_next_job(Seconds{20}, at(now))
                             : f.scheduler.claim_next_job(Seconds{20}, named, at(now));
    REQUIRE(claimed.has_value() == expected.has_value());
    if (claimed) {
      ++claims;
      CHECK(claimed->job.id == *expected);
      held.push_back(claimed->claim);
      mirror.refresh(f.scheduler, claimed->job.id);
    }

    // Finish one held claim in a random way, or let it run out.
    if (!held.empty() && random() % 2 == 0) {
      const std::size_t which = random() % held.size();
      switch (random() % 4) {
        case 0:
          f.scheduler.complete(held[which], at(now));
          break;
        case 1:
          f.scheduler.fail(held[which], "model", at(now));
          break;
        case 2:
          f.scheduler.release(held[which]);
          break;
        default:
          break;  // abandoned: the lease runs out
      }
      mirror.refresh(f.scheduler, held[which].job_id);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(which));
    }
    if (random() % 4 == 0)
      add_random_job(now);
    now += static_cast<double>(random() % 3);
  }
  INFO(claims << " claims, " << delays_checked << " delays checked");
  CHECK(claims > 200);
  CHECK(delays_checked > 300);
}

}  // namespace test_priorities
