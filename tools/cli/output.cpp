// SPDX-License-Identifier: MIT
#include "output.hpp"

#include <algorithm>
#include <ostream>

#include "durations.hpp"

namespace jobsched_cli {
namespace {

// Code points, near enough the width a terminal gives most text.
std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    text += digits[byte >> 4];
    text += digits[byte & 0x0F];
  }
  return text;
}

nlohmann::json optional_time(const std::optional<jobsched::TimePoint>& time) {
  return time ? nlohmann::json(format_time(*time)) : nlohmann::json(nullptr);
}

// Cuts to `max_chars` code points (with "..." when cut) and shows line ends as \n, \r, \t.
std::string cell_text(std::string_view text, std::size_t max_chars) {
  std::string cell;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if ((c & 0xC0) != 0x80) {
      if (chars == max_chars) {
        cell += "...";
        return cell;
      }
      ++chars;
    }
    if (c == '\n')
      cell += "\\n";
    else if (c == '\r')
      cell += "\\r";
    else if (c == '\t')
      cell += "\\t";
    else
      cell += c;
  }
  return cell;
}

const char* misfire_name(jobsched::Misfire misfire) {
  switch (misfire) {
    case jobsched::Misfire::skip:
      return "skip";
    case jobsched::Misfire::once:
      return "once";
    case jobsched::Misfire::catch_up:
      break;
  }
  return "catch-up";
}

}  // namespace

Table::Table(std::vector<std::string> header) {
  rows_.push_back(std::move(header));
}

void Table::add_row(std::vector<std::string> row) {
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], display_width(row[i]));
  }
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    out << line << '\n';
  }
}

void print_fields(std::ostream& out,
                  const std::vector<std::pair<std::string, std::string>>& fields) {
  std::size_t width = 0;
  for (const auto& field : fields)
    width = std::max(width, field.first.size());
  for (const auto& [label, value] : fields)
    out << label << ':' << std::string(width - label.size() + 1, ' ') << value << '\n';
}

bool is_printable_text(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    if (byte < 0x80) {
      if (byte == 0x7F || (byte < 0x20 && byte != '\t' && byte != '\n' && byte != '\r'))
        return false;
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code = byte & 0x1Fu;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code = byte & 0x0Fu;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code = byte & 0x07u;
    } else {
      return false;
    }
    if (i + length > bytes.size())
      return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(bytes[i + k]);
      if ((next & 0xC0) != 0x80)
        return false;
      code = (code << 6) | (next & 0x3Fu);
    }
    static constexpr std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < least[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF) ||
        (code >= 0x80 && code < 0xA0))
      return false;
    i += length;
  }
  return true;
}

std::string payload_text(const jobsched::Payload& payload, std::size_t max_chars) {
  if (payload.is_null())
    return "NULL";
  if (const auto value = payload.as_integer())
    return std::to_string(*value);
  if (const auto value = payload.as_real())
    return nlohmann::json(*value).dump();
  const std::string_view bytes = payload.bytes();
  const std::string text = is_printable_text(bytes) ? std::string(bytes) : "hex:" + hex(bytes);
  return max_chars > 0 ? cell_text(text, max_chars) : text;
}

nlohmann::json payload_json(const jobsched::Payload& payload) {
  using jobsched::StorageClass;
  switch (payload.storage_class()) {
    case StorageClass::null:
      return nullptr;
    case StorageClass::integer:
      return {{"storage", "integer"}, {"value", *payload.as_integer()}};
    case StorageClass::real:
      return {{"storage", "real"}, {"value", *payload.as_real()}};
    case StorageClass::text:
    case StorageClass::blob:
      break;
  }
  const std::string storage = payload.storage_class() == StorageClass::text ? "text" : "blob";
  const std::string_view bytes = payload.bytes();
  if (is_printable_text(bytes))
    return {{"storage", storage}, {"text", std::string(bytes)}};
  return {{"storage", storage}, {"hex", hex(bytes)}};
}

std::string queue_name(const std::string& queue) {
  return queue.empty() ? "(default)" : queue;
}

std::string time_text(const std::optional<jobsched::TimePoint>& time) {
  return time ? format_time(*time) : "-";
}

nlohmann::json job_json(const jobsched::Job& job, jobsched::TimePoint now) {
  nlohmann::json json = {
      {"id", job.id},
      {"state", jobsched::to_string(jobsched::state_of(job, now))},
      {"queue", job.queue},
      {"priority", job.priority},
      {"data", payload_json(job.data)},
      {"created_at", format_time(job.created_at)},
      {"starts_at", format_time(job.starts_at)},
      {"expires_at", optional_time(job.expires_at)},
      {"completed_at", optional_time(job.completed_at)},
      {"locked_at", optional_time(job.locked_at)},
      {"lease_until", optional_time(job.lease_until)},
      {"failed_at", optional_time(job.failed_at)},
      {"cancelled_at", optional_time(job.cancelled_at)},
      {"attempts", job.attempts},
      {"max_attempts", job.max_attempts ? nlohmann::json(*job.max_attempts) : nullptr},
      {"last_error", job.last_error ? nlohmann::json(*job.last_error) : nullptr},
      {"key", job.key ? nlohmann::json(*job.key) : nullptr},
      {"result", payload_json(job.result)},
  };
  if (job.firing) {
    json["firing"] = {{"schedule", job.firing->schedule}, {"at", format_time(job.firing->at)}};
  } else {
    json["firing"] = nullptr;
  }
  return json;
}

Table jobs_table(const std::vector<jobsched::Job>& jobs, jobsched::TimePoint now) {
  Table table({"ID", "STATE", "QUEUE", "PRI", "STARTS", "EXPIRES", "TRIES", "DATA"});
  for (const jobsched::Job& job : jobs) {
    table.add_row({std::to_string(job.id), jobsched::to_string(jobsched::state_of(job, now)),
                   queue_name(job.queue), std::to_string(job.priority), format_time(job.starts_at),
                   time_text(job.expires_at), std::to_string(job.attempts),
                   payload_text(job.data, 40)});
  }
  return table;
}

void print_job(std::ostream& out, const jobsched::Job& job, jobsched::TimePoint now) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"id", std::to_string(job.id)},
      {"state", jobsched::to_string(jobsched::state_of(job, now))},
      {"queue", queue_name(job.queue)},
      {"priority", std::to_string(job.priority)},
      {"created", format_time(job.created_at)},
      {"starts", format_time(job.starts_at)},
      {"expires", time_text(job.expires_at)},
      {"completed", time_text(job.completed_at)},
      {"locked", time_text(job.locked_at)},
      {"lease until", time_text(job.lease_until)},
      {"failed", time_text(job.failed_at)},
      {"cancelled", time_text(job.cancelled_at)},
      {"attempts", std::to_string(job.attempts) +
                       (job.max_attempts ? " of " + std::to_string(*job.max_attempts) : "")},
      {"last error", job.last_error.value_or("-")},
      {"key", job.key.value_or("-")},
      {"firing", job.firing ? job.firing->schedule + " at " + format_time(job.firing->at) : "-"},
      {"data", payload_text(job.data)},
      {"result", payload_text(job.result)},
  };
  print_fields(out, fields);
}

nlohmann::json counts_json(const jobsched::JobCounts& counts) {
  nlohmann::json json = nlohmann::json::object();
  for (const jobsched::JobState state : jobsched::all_job_states)
    json[jobsched::to_string(state)] = counts[state];
  json["pending"] = counts.pending();
  json["total"] = counts.total();
  return json;
}

nlohmann::json schedule_json(const jobsched::Schedule& schedule) {
  return {
      {"name", schedule.name},
      {"rule", schedule.rule.to_string()},
      {"queue", schedule.options.queue},
      {"priority", schedule.options.priority},
      {"data", payload_json(schedule.options.data)},
      {"misfire", misfire_name(schedule.options.misfire)},
      {"paused", schedule.paused},
      {"next_fire", optional_time(schedule.next_fire)},
      {"last_fire", optional_time(schedule.last_fire)},
  };
}

Table stats_table(const jobsched::Stats& stats) {
  std::vector<std::string> header = {"QUEUE"};
  for (const jobsched::JobState state : jobsched::all_job_states) {
    std::string name = jobsched::to_string(state);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return static_cast<char>(c - 'a' + 'A'); });
    header.push_back(name);
  }
  header.push_back("OLDEST DUE");
  Table table(header);
  const auto row = [](const std::string& name, const jobsched::JobCounts& counts,
                      const std::optional<jobsched::Seconds>& oldest_due) {
    std::vector<std::string> cells = {name};
    for (const jobsched::JobState state : jobsched::all_job_states)
      cells.push_back(std::to_string(counts[state]));
    cells.push_back(oldest_due ? format_duration(*oldest_due) : "-");
    return cells;
  };
  for (const jobsched::QueueStats& queue : stats.queues)
    table.add_row(row(queue_name(queue.queue), queue.jobs, queue.oldest_due));
  table.add_row(row("total", stats.totals, stats.oldest_due));
  return table;
}

}  // namespace jobsched_cli
