// SPDX-License-Identifier: MIT
// `jobsched [--db PATH] [--json] <command>`: look at and drive a job file from a shell.

#include <jobsched/error.hpp>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "serve.hpp"

namespace {

using namespace jobsched_cli;

constexpr const char* exit_code_help =
    "Exit codes:\n"
    "  0  done\n"
    "  1  not found: no such job or schedule, no pending job (next), nothing to complete,\n"
    "     cancel or retry\n"
    "  2  usage: a bad flag, command, duration, time, state, rule or argument\n"
    "  3  bad file: missing (never created by a read), not a job database, or a newer\n"
    "     schema version than this build reads\n"
    "  4  busy: another connection held the write lock longer than --busy-timeout\n"
    "  5  I/O: the file cannot be read or written (read-only, disk full, ...)\n"
    "  6  conflict: another job holds the unique key (add --key --on-conflict fail)\n"
    "  7  unavailable: this build has no dashboard (serve)\n"
    "\n"
    "Durations: 90s, 5m, 2h30m, 1.5h, 7d, 2w, 250ms. Times: ISO-8601, such as\n"
    "2026-12-01T18:30:00Z or 2026-12-01T19:30+01:00 (UTC when no offset is given).\n"
    "Read commands (info, list, show, next, count, schedules, stats, watch) open the\n"
    "file read-only and never upgrade it; migrate does.";

// The library's messages start with "jobsched: " already.
std::string message_of(const std::exception& error) {
  std::string message = error.what();
  const std::string prefix = "jobsched: ";
  if (message.compare(0, prefix.size(), prefix) == 0)
    message.erase(0, prefix.size());
  return message;
}

int fail(int code, const std::exception& error) {
  std::cerr << "jobsched: " << message_of(error) << '\n';
  return code;
}

// Runs a command, turning what it throws into its exit code.
int run(const std::function<int()>& command) {
  try {
    return command();
  } catch (const UsageError& error) {
    return fail(exit_usage, error);
  } catch (const BadFileError& error) {
    return fail(exit_bad_file, error);
  } catch (const jobsched::InvalidArgumentError& error) {
    return fail(exit_usage, error);
  } catch (const jobsched::SchemaError& error) {
    return fail(exit_bad_file, error);
  } catch (const jobsched::BusyError& error) {
    return fail(exit_busy, error);
  } catch (const jobsched::ConstraintError& error) {
    return fail(exit_conflict, error);
  } catch (const jobsched::Error& error) {
    return fail(exit_io, error);
  } catch (const std::exception& error) {
    return fail(exit_io, error);
  }
}

int serve_command(const ServeOptions& options) {
#ifdef JOBSCHED_CLI_HAS_SERVE
  return serve(options);
#else
  (void)options;
  std::cerr << "jobsched: this build has no dashboard (serve needs cpp-httplib when it is built:"
               " Debian's libcpp-httplib-dev)\n";
  return exit_unavailable;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jobsched: look at and drive a jobsched job file (SQLite)", "jobsched"};
  app.footer(exit_code_help);
  app.require_subcommand(1);
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Every command's help");

  Context context;
  if (const char* db = std::getenv("JOBSCHED_DB"); db != nullptr && *db != '\0')
    context.db = db;
  app.add_option("--db", context.db, "The job file (default: $JOBSCHED_DB, else job.db)");
  app.add_flag("--json", context.json, "One JSON document on stdout, for scripts");
  app.add_option("--busy-timeout", context.busy_timeout,
                 "How long to wait for another writer's lock before exit 4")
      ->capture_default_str();

  std::function<int()> command;
  const auto id_option = [](CLI::App* sub, std::int64_t& id) {
    sub->add_option("ID", id, "The job's id")->required();
  };

  app.add_subcommand("info", "The file: schema version, size, counts by state and queue")
      ->callback([&] { command = [&] { return info(context); }; });

  ListOptions list_options;
  CLI::App* list_command = app.add_subcommand("list", "One page of jobs");
  list_command->add_option("--state", list_options.state,
                           "Only jobs in this state: scheduled, available, running, completed, "
                           "failed, cancelled, expired (in the order of that state's time)");
  list_command->add_option("--queue", list_options.queue, "Only this queue (\"\" is the default)");
  list_command->add_flag("--newest", list_options.newest, "Newest first");
  list_command->add_option("--after", list_options.after, "Continue after this job id (paging)");
  list_command->add_option("--limit", list_options.limit, "At most this many jobs (1 to 1000)")
      ->capture_default_str();
  list_command->callback([&] { command = [&] { return list(context, list_options); }; });

  std::int64_t id = 0;
  CLI::App* show_command = app.add_subcommand("show", "Every field of one job");
  id_option(show_command, id);
  show_command->callback([&] { command = [&] { return show(context, id); }; });

  AddOptions add_options;
  CLI::App* add_command = app.add_subcommand("add", "Add a job (creates the file if missing)");
  add_command->add_option("PAYLOAD", add_options.payload, "The payload, or - to read stdin");
  add_command->add_option("--file", add_options.file, "Read the payload from this file");
  add_command->add_option("--in", add_options.in, "Start after this duration (5m, 2h30m)");
  add_command->add_option("--at", add_options.at, "Start at this ISO-8601 time (a past one: now)");
  add_command->add_option("--expires-in", add_options.expires_in,
                          "Expire this long from now (default: never)");
  add_command->add_option("--queue", add_options.queue, "The queue (default: \"\")");
  add_command->add_option("--priority", add_options.priority, "Higher runs first among due jobs");
  add_command->add_option("--key", add_options.key, "A unique key: one open job per key");
  add_command
      ->add_option("--on-conflict", add_options.on_conflict,
                   "When the key is held: return-existing, replace or fail")
      ->capture_default_str();
  add_command->callback([&] { command = [&] { return add(context, add_options); }; });

  app.add_subcommand("next", "The pending job that runs next (exit 1 when none)")->callback([&] {
    command = [&] { return next(context); };
  });
  app.add_subcommand("count", "How many jobs are pending")->callback([&] {
    command = [&] { return count(context); };
  });

  CLI::App* complete_command = app.add_subcommand("complete", "Mark a job completed");
  id_option(complete_command, id);
  complete_command->callback([&] { command = [&] { return complete(context, id); }; });

  std::string reason = "cancelled";
  CLI::App* cancel_command = app.add_subcommand("cancel", "Cancel a pending job");
  id_option(cancel_command, id);
  cancel_command->add_option("--reason", reason, "Kept as the job's last error")
      ->capture_default_str();
  cancel_command->callback([&] { command = [&] { return cancel(context, id, reason); }; });

  CLI::App* retry_command = app.add_subcommand("retry", "Run a failed job again, due now");
  id_option(retry_command, id);
  retry_command->callback([&] { command = [&] { return retry(context, id); }; });

  CLI::App* delete_command = app.add_subcommand("delete", "Delete a job");
  id_option(delete_command, id);
  delete_command->callback([&] { command = [&] { return remove(context, id); }; });

  app.add_subcommand("cleanup", "Delete the expired and the completed jobs")->callback([&] {
    command = [&] { return cleanup(context); };
  });

  PruneOptions prune_options;
  CLI::App* prune_command = app.add_subcommand("prune", "Delete finished jobs older than an age");
  prune_command->add_option("--completed-older", prune_options.completed_older,
                            "Completed longer ago than this (7d)");
  prune_command->add_option("--failed-older", prune_options.failed_older,
                            "Failed longer ago than this (30d)");
  prune_command->add_option("--cancelled-older", prune_options.cancelled_older,
                            "Cancelled longer ago than this (30d)");
  prune_command->callback([&] { command = [&] { return prune(context, prune_options); }; });

  CLI::App* schedules_command = app.add_subcommand("schedules", "List or change the schedules");
  schedules_command->callback([&] {
    if (!command)
      command = [&] { return schedules(context); };
  });
  ScheduleAddOptions schedule_options;
  CLI::App* schedule_add_command =
      schedules_command->add_subcommand("add", "Create or update a schedule");
  schedule_add_command->add_option("NAME", schedule_options.name, "The schedule's name")
      ->required();
  schedule_add_command
      ->add_option("RULE", schedule_options.rule,
                   "'every 5m', 'every 90 from 0', 'cron */15 * * * *', "
                   "'cron 30 2 * * * in Europe/Berlin'")
      ->required();
  schedule_add_command->add_option("--queue", schedule_options.queue, "Its jobs' queue");
  schedule_add_command->add_option("--priority", schedule_options.priority, "Its jobs' priority");
  schedule_add_command->add_option("--data", schedule_options.data, "Its jobs' payload (text)");
  schedule_add_command->add_option("--expires-after", schedule_options.expires_after,
                                   "Each job expires this long after its firing");
  schedule_add_command
      ->add_option("--misfire", schedule_options.misfire,
                   "Firings missed while down: skip, once (one late run) or catch-up")
      ->capture_default_str();
  schedule_add_command->callback(
      [&] { command = [&] { return schedule_add(context, schedule_options); }; });
  std::string schedule_name;
  for (const char* change : {"pause", "resume", "delete"}) {
    CLI::App* sub = schedules_command->add_subcommand(change, std::string(change) + " a schedule");
    sub->add_option("NAME", schedule_name, "The schedule's name")->required();
    sub->callback([&, change] {
      command = [&, change] { return schedule_change(context, change, schedule_name); };
    });
  }
  schedules_command->fallthrough();

  std::string queue;
  CLI::App* pause_command = app.add_subcommand("pause", "Stop claims taking a queue's jobs");
  pause_command->add_option("QUEUE", queue, "The queue (\"\" is the default)")->required();
  pause_command->callback([&] { command = [&] { return pause_queue(context, queue); }; });
  CLI::App* resume_command = app.add_subcommand("resume", "Let claims take a queue's jobs again");
  resume_command->add_option("QUEUE", queue, "The queue (\"\" is the default)")->required();
  resume_command->callback([&] { command = [&] { return resume_queue(context, queue); }; });

  bool prometheus = false;
  CLI::App* stats_command = app.add_subcommand("stats", "Counts by queue and state");
  stats_command->add_flag("--prometheus", prometheus, "Prometheus's text format 0.0.4");
  stats_command->callback([&] { command = [&] { return stats(context, prometheus); }; });

  app.add_subcommand("migrate", "Upgrade an older file to this build's schema version")
      ->callback([&] { command = [&] { return migrate(context); }; });

  WatchOptions watch_options;
  CLI::App* watch_command = app.add_subcommand(
      "watch", "A live view of the counts and next jobs (--json: a document each refresh)");
  watch_command->add_option("--interval", watch_options.interval, "Refresh every (2s)")
      ->capture_default_str();
  watch_command->add_option("--jobs", watch_options.jobs, "How many next jobs to show")
      ->capture_default_str();
  watch_command->add_flag("--once", watch_options.once, "Print once and exit");
  watch_command->callback([&] { command = [&] { return watch(context, watch_options); }; });

  ServeOptions serve_options;
  CLI::App* serve_sub = app.add_subcommand("serve", "The web dashboard (exit 7 when not built in)");
  serve_sub->add_option("--listen", serve_options.listen, "host:port (port 0: any free one)")
      ->capture_default_str();
  serve_sub->add_flag("--allow-remote", serve_options.allow_remote,
                      "Allow a non-loopback address (needs --token)");
  serve_sub->add_option("--token", serve_options.token, "The token a remote client must give");
  serve_sub->add_option("--port-file", serve_options.port_file, "Write the bound port here");
  serve_sub->callback([&] {
    command = [&] {
      serve_options.db = context.db;
      return serve_command(serve_options);
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      const std::string word = app.remaining().front();
      std::cerr << "jobsched: unknown " << (word.rfind('-', 0) == 0 ? "option '" : "command '")
                << word << "' (jobsched --help lists them)\n";
      return exit_usage;
    }
    const int code = app.exit(error);
    return code == 0 ? exit_ok : exit_usage;
  }
  return run(command);
}
