// SPDX-License-Identifier: MIT
#pragma once

// The commands, each a function from its options to an exit code (exit_codes.hpp). They
// throw jobsched::Error, UsageError and BadFileError; main() turns those into exit codes.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace jobsched_cli {

/// The global options.
struct Context {
  std::string db = "job.db";
  bool json = false;
  std::string busy_timeout = "5s";
};

struct ListOptions {
  std::string state;
  std::optional<std::string> queue;
  bool newest = false;
  std::optional<std::int64_t> after;
  std::size_t limit = 50;
};

struct AddOptions {
  std::optional<std::string> payload;  // "-": stdin
  std::string file;
  std::optional<std::string> in;
  std::optional<std::string> at;
  std::optional<std::string> expires_in;
  std::string queue;
  int priority = 0;
  std::string key;
  std::string on_conflict = "return-existing";
};

struct PruneOptions {
  std::string completed_older;
  std::string failed_older;
  std::string cancelled_older;
};

struct ScheduleAddOptions {
  std::string name;
  std::vector<std::string> rule;
  std::string queue;
  int priority = 0;
  std::string data;
  std::string expires_after;
  std::string misfire = "skip";
};

struct WatchOptions {
  std::string interval = "2s";
  bool once = false;
  std::size_t jobs = 10;
};

int info(const Context& context);
int list(const Context& context, const ListOptions& options);
int show(const Context& context, std::int64_t id);
int add(const Context& context, const AddOptions& options);
int next(const Context& context);
int count(const Context& context);
int complete(const Context& context, std::int64_t id);
int cancel(const Context& context, std::int64_t id, const std::string& reason);
int retry(const Context& context, std::int64_t id);
int remove(const Context& context, std::int64_t id);
int cleanup(const Context& context);
int prune(const Context& context, const PruneOptions& options);
int schedules(const Context& context);
int schedule_add(const Context& context, const ScheduleAddOptions& options);
/// `change` is "pause", "resume" or "delete".
int schedule_change(const Context& context, const std::string& change, const std::string& name);
int pause_queue(const Context& context, const std::string& queue);
int resume_queue(const Context& context, const std::string& queue);
int stats(const Context& context, bool prometheus);
int migrate(const Context& context);
int watch(const Context& context, const WatchOptions& options);

}  // namespace jobsched_cli
