// SPDX-License-Identifier: MIT
#include "commands.hpp"

#include <sqlite3.h>
#include <unistd.h>
#include <jobsched/jobsched.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <thread>

#include "durations.hpp"
#include "exit_codes.hpp"
#include "output.hpp"

namespace jobsched_cli {
namespace {

using jobsched::Scheduler;
using nlohmann::json;

void require_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error))
    throw BadFileError("no such file '" + path + "' (give another with --db or $JOBSCHED_DB)");
}

struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};

// Whether the database holds any table, index or view (read on the scheduler's connection).
bool has_tables(const Scheduler& scheduler) {
  sqlite3_stmt* raw = nullptr;
  const int code = sqlite3_prepare_v2(scheduler.handle(), "SELECT 1 FROM sqlite_master LIMIT 1", -1,
                                      &raw, nullptr);
  const std::unique_ptr<sqlite3_stmt, StatementFinalizer> statement(raw);
  if (code != SQLITE_OK)
    throw jobsched::IoError(sqlite3_errmsg(scheduler.handle()), code, code);
  return sqlite3_step(statement.get()) == SQLITE_ROW;
}

jobsched::Options scheduler_options(const Context& context) {
  jobsched::Options options;
  options.busy_timeout = std::chrono::milliseconds(
      static_cast<std::int64_t>(parse_duration(context.busy_timeout).count() * 1000));
  return options;
}

// Read commands: never create, upgrade or write the file. An SQLite file that holds other
// tables but no job schema is refused (the library reads it as empty, and a write would add
// the job tables to it).
Scheduler open_reading(const Context& context) {
  require_file(context.db);
  jobsched::Options options = scheduler_options(context);
  options.read_only = true;
  Scheduler scheduler = Scheduler::open(context.db, options);
  if (scheduler.schema_version() < 0 && has_tables(scheduler)) {
    throw BadFileError("'" + context.db +
                       "' is not a job database (it has tables, but no job_schema)");
  }
  return scheduler;
}

// Write commands: the file must exist unless `create`; an old file is upgraded, and said so.
Scheduler open_writing(const Context& context, bool create = false) {
  std::error_code error;
  if (!create || std::filesystem::exists(context.db, error))
    (void)open_reading(context);
  Scheduler scheduler = Scheduler::open(context.db, scheduler_options(context));
  if (const auto from = scheduler.migrated_from(); from && *from >= 0) {
    std::cerr << "jobsched: upgraded '" << context.db << "' from schema version " << *from << " to "
              << scheduler.schema_version() << '\n';
  }
  return scheduler;
}

// Invalid UTF-8 (a queue name or error written by another program) is replaced, not thrown.
void print_json(const json& document) {
  std::cout << document.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
}

int not_found(const std::string& message) {
  std::cerr << "jobsched: " << message << '\n';
  return exit_not_found;
}

// Says what a call on one job did, or that the job is not there (exit 1).
int job_result(const Context& context, std::int64_t id, bool done, const std::string& verb,
               const std::string& why_not) {
  if (!done)
    return not_found("job " + std::to_string(id) + " " + why_not);
  if (context.json)
    print_json({{"id", id}, {verb, true}});
  else
    std::cout << verb << " job " << id << '\n';
  return exit_ok;
}

std::string read_payload(const AddOptions& options) {
  const int sources = (options.payload ? 1 : 0) + (options.file.empty() ? 0 : 1);
  if (sources != 1)
    throw UsageError("add needs one payload: an argument, --file FILE, or - for stdin");
  if (options.payload && *options.payload != "-")
    return *options.payload;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (!options.file.empty()) {
    file.open(options.file, std::ios::binary);
    if (!file)
      throw UsageError("cannot read payload file '" + options.file + "'");
    in = &file;
  }
  return std::string(std::istreambuf_iterator<char>(*in), std::istreambuf_iterator<char>());
}

jobsched::OnConflict parse_on_conflict(const std::string& text) {
  if (text == "return-existing")
    return jobsched::OnConflict::return_existing;
  if (text == "replace")
    return jobsched::OnConflict::replace;
  if (text == "fail")
    return jobsched::OnConflict::fail;
  throw UsageError("bad --on-conflict '" + text + "' (one of return-existing, replace, fail)");
}

jobsched::Misfire parse_misfire(const std::string& text) {
  if (text == "skip")
    return jobsched::Misfire::skip;
  if (text == "once")
    return jobsched::Misfire::once;
  if (text == "catch-up")
    return jobsched::Misfire::catch_up;
  throw UsageError("bad --misfire '" + text + "' (one of skip, once, catch-up)");
}

// A rule's words: "every 5m" (a duration with units) or Rule::parse's text form.
jobsched::Rule parse_rule(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words)
    text += (text.empty() ? "" : " ") + word;
  if (words.size() == 2 && words[0] == "every" &&
      words[1].find_first_not_of("0123456789.") != std::string::npos) {
    return jobsched::Rule::every(parse_duration(words[1]));
  }
  try {
    return jobsched::Rule::parse(text);
  } catch (const jobsched::InvalidArgumentError& error) {
    throw UsageError(std::string(error.what()) +
                     " (rules: 'every 5m', 'every 90 from 0', 'cron */15 * * * *', "
                     "'cron 30 2 * * * in Europe/Berlin')");
  }
}

json schedules_json(const std::vector<jobsched::Schedule>& schedules) {
  json list = json::array();
  for (const jobsched::Schedule& schedule : schedules)
    list.push_back(schedule_json(schedule));
  return list;
}

json stats_json(const jobsched::Stats& stats) {
  json queues = json::array();
  for (const jobsched::QueueStats& queue : stats.queues) {
    queues.push_back({{"queue", queue.queue},
                      {"jobs", counts_json(queue.jobs)},
                      {"oldest_due_seconds",
                       queue.oldest_due ? json(queue.oldest_due->count()) : json(nullptr)}});
  }
  return {
      {"at", format_time(stats.at)},
      {"jobs", counts_json(stats.totals)},
      {"queues", queues},
      {"oldest_due_seconds", stats.oldest_due ? json(stats.oldest_due->count()) : json(nullptr)},
      {"schedules", stats.schedules},
      {"schema_version", stats.schema_version}};
}

std::uintmax_t file_size(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  return error ? 0 : size;
}

// The next pending jobs: the available ones first, then the scheduled ones, by start.
std::vector<jobsched::Job> next_jobs(Scheduler& scheduler, std::size_t count,
                                     jobsched::TimePoint now) {
  std::vector<jobsched::Job> jobs;
  for (const jobsched::JobState state :
       {jobsched::JobState::available, jobsched::JobState::scheduled}) {
    if (jobs.size() >= count)
      break;
    jobsched::JobQuery query;
    query.state = state;
    query.limit = count - jobs.size();
    auto page = scheduler.list_jobs(query, now);
    jobs.insert(jobs.end(), page.jobs.begin(), page.jobs.end());
  }
  return jobs;
}

void print_watch(const Context& context, Scheduler& scheduler, std::size_t count) {
  const jobsched::TimePoint now = scheduler.now();
  const jobsched::Stats stats = scheduler.stats(now);
  const std::vector<jobsched::Job> jobs = next_jobs(scheduler, count, now);
  if (context.json) {
    json next = json::array();
    for (const jobsched::Job& job : jobs)
      next.push_back(job_json(job, now));
    print_json({{"stats", stats_json(stats)}, {"next_jobs", next}});
    return;
  }
  std::cout << context.db << " at " << format_time(now) << "\n\n";
  stats_table(stats).print(std::cout);
  std::cout << "\nnext jobs:\n";
  if (jobs.empty())
    std::cout << "(none pending)\n";
  else
    jobs_table(jobs, now).print(std::cout);
  std::cout << std::flush;
}

std::string version_text(const Scheduler& scheduler) {
  const int version = scheduler.schema_version();
  if (version < 0)
    return "none (an empty database)";
  if (!scheduler.needs_upgrade())
    return std::to_string(version) + " (latest)";
  return std::to_string(version) + " (needs upgrade to " +
         std::to_string(jobsched::current_schema_version) + ": jobsched migrate)";
}

}  // namespace

int info(const Context& context) {
  Scheduler scheduler = open_reading(context);
  const jobsched::Stats stats = scheduler.stats();
  const std::vector<std::string> paused = scheduler.paused_queues();
  const std::uintmax_t size = file_size(context.db);
  const std::uintmax_t wal_size = file_size(context.db + "-wal");
  if (context.json) {
    json queues = json::array();
    for (const jobsched::QueueStats& queue : stats.queues) {
      const bool is_paused = std::find(paused.begin(), paused.end(), queue.queue) != paused.end();
      queues.push_back(
          {{"queue", queue.queue}, {"jobs", counts_json(queue.jobs)}, {"paused", is_paused}});
    }
    print_json({{"file", context.db},
                {"size_bytes", size},
                {"wal_size_bytes", wal_size},
                {"schema_version", scheduler.schema_version()},
                {"latest_schema_version", jobsched::current_schema_version},
                {"needs_upgrade", scheduler.needs_upgrade()},
                {"jobs", counts_json(stats.totals)},
                {"queues", queues},
                {"paused_queues", paused},
                {"schedules", stats.schedules}});
    return exit_ok;
  }
  std::string paused_text;
  for (const std::string& queue : paused)
    paused_text += (paused_text.empty() ? "" : ", ") + queue_name(queue);
  print_fields(std::cout, {{"file", context.db},
                           {"size", std::to_string(size) + " bytes (-wal " +
                                        std::to_string(wal_size) + " bytes)"},
                           {"schema version", version_text(scheduler)},
                           {"jobs", std::to_string(stats.totals.total()) + " (" +
                                        std::to_string(stats.totals.pending()) + " pending)"},
                           {"schedules", std::to_string(stats.schedules)},
                           {"paused queues", paused_text.empty() ? "-" : paused_text}});
  std::cout << '\n';
  stats_table(stats).print(std::cout);
  return exit_ok;
}

int list(const Context& context, const ListOptions& options) {
  jobsched::JobQuery query;
  if (!options.state.empty())
    query.state = jobsched::parse_job_state(options.state);
  query.queue = options.queue;
  query.order =
      options.newest ? jobsched::ListOrder::newest_first : jobsched::ListOrder::oldest_first;
  query.after = options.after;
  query.limit = options.limit;
  Scheduler scheduler = open_reading(context);
  const jobsched::JobPage page = scheduler.list_jobs(query);
  if (context.json) {
    json jobs = json::array();
    for (const jobsched::Job& job : page.jobs)
      jobs.push_back(job_json(job, page.at));
    print_json(
        {{"jobs", jobs}, {"next_after", page.next_after ? json(*page.next_after) : json(nullptr)}});
    return exit_ok;
  }
  jobs_table(page.jobs, page.at).print(std::cout);
  if (page.next_after)
    std::cerr << "jobsched: more jobs: add --after " << *page.next_after << '\n';
  return exit_ok;
}

int show(const Context& context, std::int64_t id) {
  Scheduler scheduler = open_reading(context);
  const jobsched::TimePoint now = scheduler.now();
  const auto job = scheduler.get_job(id, now);
  if (!job)
    return not_found("no job " + std::to_string(id));
  if (context.json)
    print_json(job_json(*job, now));
  else
    print_job(std::cout, *job, now);
  return exit_ok;
}

int add(const Context& context, const AddOptions& options) {
  if (options.in && options.at)
    throw UsageError("give --in or --at, not both");
  const std::string payload = read_payload(options);
  const jobsched::TimePoint now = jobsched::system_now();
  jobsched::JobOptions job_options;
  job_options.created_at = now;
  if (options.in)
    job_options.starts_at = now + parse_duration(*options.in);
  if (options.at)
    job_options.starts_at = std::max(now, parse_time(*options.at));
  if (options.expires_in)
    job_options.expires_at = now + parse_duration(*options.expires_in);
  job_options.queue = options.queue;
  job_options.priority = options.priority;
  if (!options.key.empty())
    job_options.unique = jobsched::Unique{options.key, parse_on_conflict(options.on_conflict), {}};
  Scheduler scheduler = open_writing(context, /*create=*/true);
  const jobsched::Job job = scheduler.add_job(payload, job_options);
  const bool existing = job.created_at != now;
  if (context.json) {
    json document = job_json(job, scheduler.now());
    document["added"] = !existing;
    print_json(document);
  } else if (existing) {
    std::cout << "job " << job.id << " already holds key '" << options.key << "'\n";
  } else {
    std::cout << "added job " << job.id << " (starts " << format_time(job.starts_at) << ")\n";
  }
  return exit_ok;
}

int next(const Context& context) {
  Scheduler scheduler = open_reading(context);
  const jobsched::TimePoint now = scheduler.now();
  const auto job = scheduler.next_job(now);
  if (!job)
    return not_found("no pending job");
  const double delay = std::max(0.0, (job->starts_at - now).count());
  if (context.json) {
    json document = job_json(*job, now);
    document["delay_seconds"] = delay;
    print_json(document);
  } else {
    jobs_table({*job}, now).print(std::cout);
  }
  return exit_ok;
}

int count(const Context& context) {
  Scheduler scheduler = open_reading(context);
  const std::int64_t pending = scheduler.count_pending_jobs();
  if (context.json)
    print_json({{"pending", pending}});
  else
    std::cout << pending << '\n';
  return exit_ok;
}

int complete(const Context& context, std::int64_t id) {
  Scheduler scheduler = open_writing(context);
  return job_result(context, id, scheduler.complete_job(id), "completed", "does not exist");
}

int cancel(const Context& context, std::int64_t id, const std::string& reason) {
  Scheduler scheduler = open_writing(context);
  const bool cancelled = scheduler.cancel_job(id, reason);
  const bool exists = cancelled || scheduler.get_job(id).has_value();
  return job_result(context, id, cancelled, "cancelled",
                    exists ? "is already completed, failed or expired" : "does not exist");
}

int retry(const Context& context, std::int64_t id) {
  Scheduler scheduler = open_writing(context);
  const bool retried = scheduler.retry_job(id);
  const bool exists = retried || scheduler.get_job(id).has_value();
  return job_result(context, id, retried, "retried", exists ? "is not failed" : "does not exist");
}

int remove(const Context& context, std::int64_t id) {
  Scheduler scheduler = open_writing(context);
  return job_result(context, id, scheduler.delete_job(id), "deleted", "does not exist");
}

int cleanup(const Context& context) {
  Scheduler scheduler = open_writing(context);
  const std::int64_t expired = scheduler.delete_expired_jobs();
  const std::int64_t completed = scheduler.delete_completed_jobs();
  if (context.json)
    print_json({{"expired", expired}, {"completed", completed}});
  else
    std::cout << "deleted " << expired << " expired and " << completed << " completed jobs\n";
  return exit_ok;
}

int prune(const Context& context, const PruneOptions& options) {
  const auto age = [](const std::string& text) -> std::optional<jobsched::Seconds> {
    if (text.empty())
      return std::nullopt;
    return parse_duration(text);
  };
  jobsched::PruneAges ages{age(options.completed_older), age(options.failed_older),
                           age(options.cancelled_older)};
  if (!ages.completed && !ages.failed && !ages.cancelled)
    throw UsageError("prune needs --completed-older, --failed-older or --cancelled-older");
  Scheduler scheduler = open_writing(context);
  const jobsched::PruneResult result = scheduler.prune(ages);
  if (context.json) {
    print_json({{"completed", result.completed},
                {"failed", result.failed},
                {"cancelled", result.cancelled},
                {"total", result.total()}});
  } else {
    std::cout << "pruned " << result.completed << " completed, " << result.failed << " failed and "
              << result.cancelled << " cancelled jobs\n";
  }
  return exit_ok;
}

int schedules(const Context& context) {
  Scheduler scheduler = open_reading(context);
  const std::vector<jobsched::Schedule> all = scheduler.schedules();
  if (context.json) {
    print_json(schedules_json(all));
    return exit_ok;
  }
  Table table({"NAME", "RULE", "QUEUE", "PAUSED", "NEXT FIRE", "LAST FIRE"});
  for (const jobsched::Schedule& schedule : all) {
    table.add_row({schedule.name, schedule.rule.to_string(), queue_name(schedule.options.queue),
                   schedule.paused ? "yes" : "no", time_text(schedule.next_fire),
                   time_text(schedule.last_fire)});
  }
  table.print(std::cout);
  return exit_ok;
}

int schedule_add(const Context& context, const ScheduleAddOptions& options) {
  const jobsched::Rule rule = parse_rule(options.rule);
  jobsched::ScheduleOptions schedule_options;
  schedule_options.queue = options.queue;
  schedule_options.priority = options.priority;
  schedule_options.misfire = parse_misfire(options.misfire);
  if (!options.data.empty())
    schedule_options.data = jobsched::Payload(options.data);
  if (!options.expires_after.empty())
    schedule_options.expires_after = parse_duration(options.expires_after);
  Scheduler scheduler = open_writing(context, /*create=*/true);
  const jobsched::Schedule schedule = scheduler.put_schedule(options.name, rule, schedule_options);
  if (context.json)
    print_json(schedule_json(schedule));
  else
    std::cout << "schedule '" << schedule.name << "': " << schedule.rule.to_string()
              << ", next firing " << time_text(schedule.next_fire) << '\n';
  return exit_ok;
}

int schedule_change(const Context& context, const std::string& change, const std::string& name) {
  Scheduler scheduler = open_writing(context);
  bool done = false;
  if (change == "pause")
    done = scheduler.pause_schedule(name);
  else if (change == "resume")
    done = scheduler.resume_schedule(name);
  else
    done = scheduler.delete_schedule(name);
  if (!done)
    return not_found("no schedule '" + name + "'");
  const std::string verb = change == "pause"    ? "paused"
                           : change == "resume" ? "resumed"
                                                : "deleted";
  if (context.json)
    print_json({{"schedule", name}, {verb, true}});
  else
    std::cout << verb << " schedule '" << name << "'\n";
  return exit_ok;
}

int pause_queue(const Context& context, const std::string& queue) {
  Scheduler scheduler = open_writing(context);
  const bool changed = scheduler.pause_queue(queue);
  if (context.json)
    print_json({{"queue", queue}, {"paused", true}, {"changed", changed}});
  else
    std::cout << "queue " << queue_name(queue) << (changed ? " paused" : " was already paused")
              << '\n';
  return exit_ok;
}

int resume_queue(const Context& context, const std::string& queue) {
  Scheduler scheduler = open_writing(context);
  const bool changed = scheduler.resume_queue(queue);
  if (context.json)
    print_json({{"queue", queue}, {"paused", false}, {"changed", changed}});
  else
    std::cout << "queue " << queue_name(queue) << (changed ? " resumed" : " was not paused")
              << '\n';
  return exit_ok;
}

int stats(const Context& context, bool prometheus) {
  Scheduler scheduler = open_reading(context);
  const jobsched::Stats stats = scheduler.stats();
  if (prometheus)
    std::cout << jobsched::to_prometheus(stats);
  else if (context.json)
    print_json(stats_json(stats));
  else
    stats_table(stats).print(std::cout);
  return exit_ok;
}

int migrate(const Context& context) {
  int from = 0;
  {
    const Scheduler reader = open_reading(context);
    from = reader.schema_version();
  }
  const bool upgrade = from < jobsched::current_schema_version;
  if (upgrade)
    (void)Scheduler::open(context.db, scheduler_options(context));
  if (context.json) {
    print_json({{"file", context.db},
                {"from_version", from},
                {"to_version", jobsched::current_schema_version},
                {"upgraded", upgrade}});
  } else if (upgrade) {
    std::cout << "upgraded '" << context.db << "' from schema version " << from << " to "
              << jobsched::current_schema_version << '\n';
  } else {
    std::cout << "'" << context.db << "' is at schema version " << from
              << " already: nothing to do\n";
  }
  return exit_ok;
}

int watch(const Context& context, const WatchOptions& options) {
  const jobsched::Seconds interval = parse_duration(options.interval);
  if (interval.count() < 0.1)
    throw UsageError("bad --interval '" + options.interval + "': at least 100ms");
  Scheduler scheduler = open_reading(context);
  const bool clear = !options.once && isatty(STDOUT_FILENO) == 1;
  for (;;) {
    if (clear)
      std::cout << "\x1b[H\x1b[2J";
    print_watch(context, scheduler, options.jobs);
    if (options.once)
      return exit_ok;
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace jobsched_cli
