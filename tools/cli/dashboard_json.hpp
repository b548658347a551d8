// SPDX-License-Identifier: MIT
#pragma once

// What the dashboard's JSON API answers (serve.cpp): jobs, payloads, counts and times as
// JSON. Times are Unix seconds (fractional), or null; payloads say their storage class and
// are shown as text when they are valid UTF-8 without control characters, else as hex.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <jobsched/jobsched.hpp>
#include <nlohmann/json.hpp>

#include "output.hpp"

namespace jobsched_cli::dashboard {

using nlohmann::json;

// How many bytes of a payload the job detail shows (as text or hex).
inline constexpr std::size_t payload_shown = 4096;
// How much of a payload and last error the job table shows.
inline constexpr std::size_t preview_length = 80;

inline json time_json(const std::optional<jobsched::TimePoint>& time) {
  return time ? json(jobsched::to_unix_seconds(*time)) : json(nullptr);
}

inline json seconds_json(const std::optional<jobsched::Seconds>& seconds) {
  return seconds ? json(seconds->count()) : json(nullptr);
}

// Valid UTF-8 with no control characters but tab, line feed and carriage return is shown as
// text (the command line's test, output.hpp); anything else is shown as hex.
inline bool is_text(std::string_view bytes) { return is_printable_text(bytes); }

// The longest prefix of at most `limit` bytes that does not cut a UTF-8 sequence.
inline std::string_view utf8_prefix(std::string_view text, std::size_t limit) {
  if (text.size() <= limit)
    return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80)
    --end;
  return text.substr(0, end);
}

inline std::string hex_of(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0)
      hex += (i % 16 == 0) ? '\n' : ' ';
    const auto byte = static_cast<unsigned char>(bytes[i]);
    hex += digits[byte >> 4];
    hex += digits[byte & 15];
  }
  return hex;
}

inline const char* storage_class_name(jobsched::StorageClass storage) {
  switch (storage) {
    case jobsched::StorageClass::null:
      return "null";
    case jobsched::StorageClass::integer:
      return "integer";
    case jobsched::StorageClass::real:
      return "real";
    case jobsched::StorageClass::text:
      return "text";
    case jobsched::StorageClass::blob:
      break;
  }
  return "blob";
}

inline json payload_json(const jobsched::Payload& payload) {
  json out = {{"storage_class", storage_class_name(payload.storage_class())}};
  if (const auto value = payload.as_integer()) {
    out["value"] = *value;
  } else if (const auto real = payload.as_real()) {
    out["value"] = *real;
  } else if (!payload.is_null()) {
    const std::string_view bytes = payload.bytes();
    out["size"] = bytes.size();
    const bool text = is_text(bytes);
    const std::string_view shown =
        text ? utf8_prefix(bytes, payload_shown) : bytes.substr(0, payload_shown);
    out["shown"] = shown.size();
    out["truncated"] = shown.size() < bytes.size();
    if (text)
      out["text"] = std::string(shown);
    else
      out["hex"] = hex_of(shown);
  }
  return out;
}

// One line for the job table: the text, or what kind of payload it is.
inline std::string payload_preview(const jobsched::Payload& payload) {
  if (payload.is_null())
    return "NULL";
  if (const auto value = payload.as_integer())
    return std::to_string(*value);
  if (const auto real = payload.as_real())
    return std::to_string(*real);
  const std::string_view bytes = payload.bytes();
  if (!is_text(bytes))
    return "(" + std::to_string(bytes.size()) + " bytes, binary)";
  std::string preview(utf8_prefix(bytes, preview_length));
  if (preview.size() < bytes.size())
    preview += "…";
  return preview;
}

inline json job_summary(const jobsched::Job& job, jobsched::TimePoint at) {
  json error = nullptr;
  if (job.last_error) {
    std::string text(utf8_prefix(*job.last_error, preview_length * 2));
    error = text;
  }
  return {{"id", job.id},
          {"state", jobsched::to_string(jobsched::state_of(job, at))},
          {"queue", job.queue},
          {"priority", job.priority},
          {"attempts", job.attempts},
          {"created_at", time_json(job.created_at)},
          {"starts_at", time_json(job.starts_at)},
          {"expires_at", time_json(job.expires_at)},
          {"preview", payload_preview(job.data)},
          {"last_error", error},
          {"schedule", job.firing ? json(job.firing->schedule) : json(nullptr)}};
}

inline json job_detail(const jobsched::Job& job, jobsched::TimePoint at) {
  json out = job_summary(job, at);
  out["at"] = jobsched::to_unix_seconds(at);
  out["last_error"] = job.last_error ? json(*job.last_error) : json(nullptr);
  out["completed_at"] = time_json(job.completed_at);
  out["locked_at"] = time_json(job.locked_at);
  out["lease_until"] = time_json(job.lease_until);
  out["failed_at"] = time_json(job.failed_at);
  out["cancelled_at"] = time_json(job.cancelled_at);
  out["max_attempts"] = job.max_attempts ? json(*job.max_attempts) : json(nullptr);
  out["key"] = job.key ? json(*job.key) : json(nullptr);
  out["firing"] = job.firing ? json{{"schedule", job.firing->schedule},
                                    {"at", jobsched::to_unix_seconds(job.firing->at)}}
                             : json(nullptr);
  out["data"] = payload_json(job.data);
  out["result"] = payload_json(job.result);
  return out;
}

inline json counts_json(const jobsched::JobCounts& counts) {
  json out = json::object();
  for (const jobsched::JobState state : jobsched::all_job_states)
    out[jobsched::to_string(state)] = counts[state];
  out["pending"] = counts.pending();
  out["total"] = counts.total();
  return out;
}

}  // namespace jobsched_cli::dashboard
