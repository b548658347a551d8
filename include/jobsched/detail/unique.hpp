// SPDX-License-Identifier: MIT
#pragma once

// Unique jobs: a keyed job is inserted, and ix_job_unique refuses it when another job in
// states 0 to 4 has the key; only then is the holder read. A holder that is expired (and not
// held) or abandoned at now lets go of the key, moved out in the same transaction, and the
// insert runs again; a real holder is answered by the add's OnConflict. With a period, the
// latest completion by key is looked up first (ix_job_key_completed). Everything runs in the
// caller's write transaction, so no other writer comes between a look and a write.

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../job.hpp"
#include "../payload.hpp"
#include "../unique.hpp"
#include "job_row.hpp"
#include "new_job.hpp"
#include "sql.hpp"
#include "sqlite.hpp"
#include "statements.hpp"
#include "validate.hpp"

namespace jobsched::detail {

// The statements of unique jobs, prepared on first use.
struct UniqueStatements {
  explicit UniqueStatements(sqlite3* db)
      : insert_keyed_job(db, sql::insert_keyed_job),
        select_key_holder(db, sql::select_key_holder),
        select_unique_key(db, sql::select_unique_key),
        move_out_expired(db, sql::move_out_expired),
        fail_abandoned_job(db, sql::fail_abandoned_job),
        key_completed_after(db, sql::key_completed_after),
        replace_keyed_job(db, sql::replace_keyed_job) {}
  Statement insert_keyed_job, select_key_holder, select_unique_key, move_out_expired,
      fail_abandoned_job, key_completed_after, replace_keyed_job;
};

// What a keyed add did.
enum class UniqueOutcome { inserted, existing, replaced };

struct UniqueAdd {
  Job job;
  UniqueOutcome outcome = UniqueOutcome::inserted;
};

// The job holding a key at `at`, and whether nobody holds it (it may be replaced).
struct KeyHolder {
  Job job;
  bool free = false;
};

inline std::string quoted_key(const std::string& key) { return "'" + key + "'"; }

[[noreturn]] inline void throw_unique_conflict(const std::string& key, std::int64_t id,
                                               const std::string& why) {
  throw UniqueConflictError(std::string(message_prefix) + "the unique key " + quoted_key(key) +
                                " is held by job " + std::to_string(id) + why,
                            key, id);
}

// The job that holds `key` at `at`, if any. A holder whose real state at `at` lets go of its
// key is moved out first (an abandoned one marked failed as fail_abandoned_jobs does, an
// expired one that no lock or live lease holds moved to state 5).
inline std::optional<KeyHolder> key_holder(UniqueStatements& unique, const std::string& key,
                                           double at) {
  std::optional<KeyHolder> holder;
  std::int64_t id = 0;
  bool abandoned = false;
  bool expired = false;
  {
    Run run(unique.select_key_holder);
    run.bind(1, at).bind_text(2, key);
    if (!run.step())
      return std::nullopt;
    id = run.column_int64(0);
    abandoned = run.column_int64(job_columns) != 0;
    expired = run.column_int64(job_columns + 1) != 0;
    if (!abandoned && !expired)
      holder = KeyHolder{read_job(run), run.column_int64(job_columns + 2) != 0};
  }
  if (holder)
    return holder;
  Run run(abandoned ? unique.fail_abandoned_job : unique.move_out_expired);
  run.bind(1, at).bind(2, id);
  run.execute();
  return std::nullopt;
}

// Job `id` as stored at `at`.
inline Job stored_job(ReadStatements& read, std::int64_t id, double at) {
  Run run(read.select_job);
  run.bind(1, at).bind(2, id);
  if (!run.step())
    throw_invalid("job " + std::to_string(id) + " vanished inside a write transaction");
  return read_job(run);
}

// Inserts the keyed row; false when ix_job_unique refused it.
inline bool try_insert_keyed(UniqueStatements& unique, const JobOptions& options,
                             const CheckedTimes& times, double state_at) {
  Run run(unique.insert_keyed_job);
  bind_new_job(run, options, times, state_at);
  run.bind_text(11, options.unique->key);
  try {
    run.execute();
  } catch (const ConstraintError& error) {
    if (error.extended_code() != SQLITE_CONSTRAINT_UNIQUE)
      throw;
    return false;
  }
  return true;
}

// OnConflict::replace on a pending free holder: its payload, times and settings become the
// new job's (its creation time stays).
inline Job replace_job(ReadStatements& read, WriteStatements& write, UniqueStatements& unique,
                       const KeyHolder& holder, Payload data, const JobOptions& options,
                       const CheckedTimes& times, double at) {
  const std::string& key = options.unique->key;
  if (!holder.free)
    throw_unique_conflict(key, holder.job.id, ", which is claimed or locked: it cannot be replaced");
  // A start before the holder's creation (another process's add, created a moment earlier)
  // is its creation.
  const double created = to_unix_seconds(holder.job.created_at);
  const double starts = std::max(times.starts_at, created);
  if (times.expires_at && *times.expires_at < starts) {
    throw_invalid("the replacement of job " + std::to_string(holder.job.id) + " (unique key " +
                  quoted_key(key) + ") expires at " + format_time(*times.expires_at) +
                  ", before that job's creation at " + format_time(created));
  }
  {
    Run run(unique.replace_keyed_job);
    run.bind(1, at).bind(2, holder.job.id).bind(3, starts);
    bind_optional(run, 4, times.expires_at);
    run.bind(5, std::int64_t{options.priority}).bind_text(6, options.queue);
    bind_optional(run, 7, options.max_attempts);
    bind_optional(run, 8, options.initial_backoff);
    bind_optional(run, 9, options.max_backoff);
    if (run.execute() == 0)
      throw_unique_conflict(key, holder.job.id, ", which is not pending and free: it cannot be replaced");
  }
  {
    Run run(write.insert_payload);
    run.bind(2, holder.job.id);
    bind_payload(run, 3, data);
    run.execute();
  }
  return stored_job(read, holder.job.id, at);
}

// The add's answer to an open holder.
inline UniqueAdd on_open_conflict(ReadStatements& read, WriteStatements& write,
                                  UniqueStatements& unique, KeyHolder holder, Payload data,
                                  const JobOptions& options, const CheckedTimes& times,
                                  double at) {
  switch (options.unique->on_conflict) {
    case OnConflict::return_existing:
      return UniqueAdd{std::move(holder.job), UniqueOutcome::existing};
    case OnConflict::replace:
      return UniqueAdd{replace_job(read, write, unique, holder, std::move(data), options, times, at),
                       UniqueOutcome::replaced};
    case OnConflict::fail:
      break;
  }
  throw_unique_conflict(options.unique->key, holder.job.id,
                        holder.free ? ", pending" : ", which is claimed or locked");
}

// Adds a checked keyed job inside the caller's write transaction, or answers the job holding
// its key as its OnConflict says; `at` is now (for the holder's real state and the period).
inline UniqueAdd add_unique_job(sqlite3* db, ReadStatements& read, WriteStatements& write,
                                UniqueStatements& unique, Payload data, const JobOptions& options,
                                const CheckedTimes& times, double at) {
  const Unique& wanted = *options.unique;
  if (wanted.completed_within.count() > 0) {
    std::optional<std::int64_t> completed;
    {
      Run run(unique.key_completed_after);
      run.bind(1, at).bind_text(2, wanted.key).bind(3, at - wanted.completed_within.count());
      if (run.step())
        completed = run.column_int64(0);
    }
    if (completed) {
      // An open holder comes first: it is the one that will run.
      if (std::optional<KeyHolder> holder = key_holder(unique, wanted.key, at))
        return on_open_conflict(read, write, unique, std::move(*holder), std::move(data), options,
                                times, at);
      if (wanted.on_conflict == OnConflict::return_existing)
        return UniqueAdd{stored_job(read, *completed, at), UniqueOutcome::existing};
      throw_unique_conflict(wanted.key, *completed,
                            ", completed within the last " +
                                format_seconds(wanted.completed_within.count()) + " s");
    }
  }
  for (int round = 0;; ++round) {
    if (try_insert_keyed(unique, options, times, at)) {
      UniqueAdd added{inserted_job(db, write, std::move(data), options, times),
                      UniqueOutcome::inserted};
      added.job.key = wanted.key;
      return added;
    }
    std::optional<KeyHolder> holder = key_holder(unique, wanted.key, at);
    if (holder)
      return on_open_conflict(read, write, unique, std::move(*holder), std::move(data), options,
                              times, at);
    if (round > 0)  // moved out, and refused again: cannot happen inside one transaction
      throw_unique_conflict(wanted.key, 0, " that this transaction cannot see");
  }
}

// The keyed adds of one add_jobs call. A conflict names the job's place in the list (and
// the earlier entry holding the key, when it is one: its id would be rolled back); at the
// end, every entry of a job replaced later in the list shows it as the list left it.
class UniqueBatch {
 public:
  explicit UniqueBatch(std::size_t size) : size_(size) {}

  template <class AddOne>
  void add(std::size_t index, std::vector<Job>& added, AddOne add_one) {
    const std::string place =
        "job " + std::to_string(index + 1) + " of " + std::to_string(size_) + ": ";
    try {
      UniqueAdd result = add_one();
      if (result.outcome == UniqueOutcome::inserted)
        inserted_[result.job.id] = index;
      else if (result.outcome == UniqueOutcome::replaced)
        latest_[result.job.id] = result.job;
      added.push_back(std::move(result.job));
    } catch (const UniqueConflictError& error) {
      const auto earlier = inserted_.find(error.existing_id());
      if (earlier == inserted_.end()) {
        throw UniqueConflictError(std::string(message_prefix) + place + reason(error),
                                  error.key(), error.existing_id());
      }
      throw UniqueConflictError(std::string(message_prefix) + place + "the unique key " +
                                    quoted_key(error.key()) + " is held by job " +
                                    std::to_string(earlier->second + 1) + " of the list",
                                error.key(), 0);
    } catch (const InvalidArgumentError& error) {
      throw_invalid(place + reason(error));
    }
  }

  void finish(std::vector<Job>& added) const {
    if (latest_.empty())
      return;
    for (Job& job : added) {
      if (const auto latest = latest_.find(job.id); latest != latest_.end())
        job = latest->second;
    }
  }

 private:
  std::size_t size_;
  std::map<std::int64_t, std::size_t> inserted_;  // id -> place in the list
  std::map<std::int64_t, Job> latest_;            // replaced jobs, as last stored
};

// For retry_job, whose update ix_job_unique refused: frees the key of job `id` if its holder
// lets go of it (then true: run the update again); UniqueConflictError naming the holder.
inline bool free_key_for_retry(UniqueStatements& unique, std::int64_t id, double at) {
  std::string key;
  {
    Run run(unique.select_unique_key);
    run.bind(2, id);
    if (!run.step() || run.column_type(0) == SQLITE_NULL)
      return false;
    key = std::string(run.column_text(0));
  }
  const std::optional<KeyHolder> holder = key_holder(unique, key, at);
  if (!holder)
    return true;
  throw UniqueConflictError(std::string(message_prefix) + "cannot retry job " +
                                std::to_string(id) + ": its unique key " + quoted_key(key) +
                                " is held by job " + std::to_string(holder->job.id),
                            key, holder->job.id);
}

}  // namespace jobsched::detail
