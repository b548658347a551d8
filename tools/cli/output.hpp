// SPDX-License-Identifier: MIT
#pragma once

// What the commands print: aligned tables and key-value blocks for people, JSON for scripts.

#include <jobsched/job.hpp>
#include <jobsched/job_state.hpp>
#include <jobsched/schedule.hpp>
#include <jobsched/stats.hpp>

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace jobsched_cli {

/// Columns aligned to their widest cell, two spaces apart, a header line first.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void add_row(std::vector<std::string> row);
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

/// "label: value" lines, labels padded to the widest.
void print_fields(std::ostream& out,
                  const std::vector<std::pair<std::string, std::string>>& fields);

/// Valid UTF-8 with no control character but tab, line feed and carriage return.
bool is_printable_text(std::string_view bytes);

/// The payload for people: its text when printable, else `hex:` and its bytes in hex; NULL,
/// integers and reals as such. `max_chars` > 0 cuts it there and puts line ends as `\n`.
std::string payload_text(const jobsched::Payload& payload, std::size_t max_chars = 0);

/// {"storage": "blob", "text": ...} or {"storage": "blob", "hex": ...}, {"storage":
/// "integer", "value": 5}, or null.
nlohmann::json payload_json(const jobsched::Payload& payload);

/// "(default)" for the default queue "", else the name.
std::string queue_name(const std::string& queue);

/// The time, or "-" when empty.
std::string time_text(const std::optional<jobsched::TimePoint>& time);

/// Every field of the job, times as ISO-8601 strings, and its state at `now`.
nlohmann::json job_json(const jobsched::Job& job, jobsched::TimePoint now);

/// One line per job: id, state, queue, priority, start, expiry, attempts, payload.
Table jobs_table(const std::vector<jobsched::Job>& jobs, jobsched::TimePoint now);

/// Every field of a job, one a line.
void print_job(std::ostream& out, const jobsched::Job& job, jobsched::TimePoint now);

nlohmann::json counts_json(const jobsched::JobCounts& counts);
nlohmann::json schedule_json(const jobsched::Schedule& schedule);

/// One line per queue and a total line: the counts by state, and the oldest due lateness.
Table stats_table(const jobsched::Stats& stats);

}  // namespace jobsched_cli
