// SPDX-License-Identifier: MIT
#pragma once

// libpq, as the PostgreSQL store uses it: RAII for connections and results, parameters
// passed as text (times as shortest exact decimals) or as binary bytes (payloads), and each
// failure thrown as the Error subtype its SQLSTATE means.

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../payload.hpp"
#include "sqlite.hpp"
#include "validate.hpp"

namespace jobsched::detail::pg {

// Closes a connection the scheduler owns; a borrowed one stays open for its host.
struct ConnectionCloser {
  bool owned = true;
  void operator()(PGconn* connection) const noexcept {
    if (owned)
      PQfinish(connection);
  }
};
using ConnectionPtr = std::unique_ptr<PGconn, ConnectionCloser>;

struct ResultClearer {
  void operator()(PGresult* result) const noexcept { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// The connection's last message, one line, without libpq's trailing newline.
inline std::string connection_message(const PGconn* connection) {
  std::string message = connection != nullptr ? PQerrorMessage(connection) : "out of memory";
  while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
    message.pop_back();
  return message;
}

// A lost connection: an IoError, since the work may or may not have committed.
[[noreturn]] inline void throw_connection_error(const PGconn* connection,
                                                const std::string& context,
                                                std::string_view sql = {}) {
  throw IoError(std::string(message_prefix) + context + ": " + connection_message(connection),
                SQLITE_IOERR, SQLITE_IOERR, std::string(sql));
}

// Throws the Error subtype for a failed result: serialization failures, deadlocks and lock
// timeouts are BusyError (nothing was changed; try again), class 08 and a lost connection
// IoError, class 23 ConstraintError, and the rest Error, each with the SQLSTATE kept.
[[noreturn]] inline void throw_result_error(const PGconn* connection, const PGresult* result,
                                            std::string_view sql) {
  const char* field = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = field != nullptr ? field : "";
  std::string message = result != nullptr ? PQresultErrorMessage(result) : "";
  if (message.empty())
    message = connection_message(connection);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
    message.pop_back();
  message = std::string(message_prefix) + "PostgreSQL: " + message;
  const std::string text(sql);
  if (state == "40001" || state == "40P01" || state == "55P03")
    throw BusyError(message, SQLITE_BUSY, SQLITE_BUSY, text, state);
  if (state.empty() || state.compare(0, 2, "08") == 0 ||
      (connection != nullptr && PQstatus(connection) != CONNECTION_OK))
    throw IoError(message, SQLITE_IOERR, SQLITE_IOERR, text, state);
  if (state.compare(0, 2, "53") == 0)  // insufficient resources: disk full, out of memory
    throw IoError(message, SQLITE_FULL, SQLITE_FULL, text, state);
  if (state.compare(0, 2, "23") == 0) {
    const int extended = state == "23505" ? SQLITE_CONSTRAINT_UNIQUE : SQLITE_CONSTRAINT;
    throw ConstraintError(message, SQLITE_CONSTRAINT, extended, text, state);
  }
  throw Error(message, SQLITE_ERROR, SQLITE_ERROR, text, state);
}

// A double as the shortest decimal that reads back as the same double.
inline std::string format_double(double value) {
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)error;
  return std::string(buffer, end);
}

// The length of the valid UTF-8 sequence at the start of `text`, or 0 (a NUL byte, a stray
// or overlong byte, a surrogate, past U+10FFFF, or cut short).
inline std::size_t utf8_sequence(std::string_view text) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead == 0)
    return 0;
  if (lead < 0x80)
    return 1;
  std::size_t length = 0;
  unsigned low = 0x80, high = 0xBF;  // the second byte's range
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    low = lead == 0xE0 ? 0xA0 : 0x80;
    high = lead == 0xED ? 0x9F : 0xBF;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    low = lead == 0xF0 ? 0x90 : 0x80;
    high = lead == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high)
    return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF)
      return 0;
  }
  return length;
}

// `text` as PostgreSQL can store it: each NUL byte and each byte of no valid UTF-8 sequence
// replaced by U+FFFD (for texts that must not be refused, such as a failure's error).
inline std::string storable_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = utf8_sequence(text);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      text.remove_prefix(1);
    } else {
      out.append(text.data(), length);
      text.remove_prefix(length);
    }
  }
  return out;
}

// Refuses a name PostgreSQL cannot store as text (a NUL byte, or not UTF-8), naming it with
// its bytes escaped.
inline void check_text(const char* what, std::string_view text) {
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t length = utf8_sequence(rest);
    if (length == 0) {
      std::string shown;
      for (const char c : text) {
        const auto value = static_cast<unsigned char>(c);
        if (value >= 0x20 && value < 0x7F) {
          shown += c;
        } else {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\x%02X", value);
          shown += escaped;
        }
      }
      throw_invalid(std::string(what) + " '" + shown +
                    "' holds a NUL byte or is not UTF-8, which PostgreSQL cannot store as text");
    }
    rest.remove_prefix(length);
  }
}

// One statement's parameters, $1 first. Text values are kept as strings; bytes go binary.
class Params {
 public:
  Params& add(double value) { return add_text(format_double(value)); }
  Params& add(std::int64_t value) { return add_text(std::to_string(value)); }
  Params& add(int value) { return add_text(std::to_string(value)); }
  Params& add(std::optional<double> value) { return value ? add(*value) : add_null(); }
  Params& add(std::optional<int> value) { return value ? add(*value) : add_null(); }
  Params& add_text(std::string value) {
    values_.emplace_back(std::move(value));
    binary_.push_back(0);
    return *this;
  }
  Params& add_text(std::optional<std::string> value) {
    return value ? add_text(std::move(*value)) : add_null();
  }
  Params& add_bytes(std::string_view bytes) {
    values_.emplace_back(std::string(bytes));
    binary_.push_back(1);
    return *this;
  }
  Params& add_null() {
    values_.emplace_back(std::nullopt);
    binary_.push_back(0);
    return *this;
  }
  int size() const noexcept { return static_cast<int>(values_.size()); }

  // The arrays libpq reads, valid while this object is unchanged.
  void arrays(std::vector<const char*>& values, std::vector<int>& lengths) const {
    values.clear();
    lengths.clear();
    for (const std::optional<std::string>& value : values_) {
      values.push_back(value ? value->data() : nullptr);
      lengths.push_back(value ? static_cast<int>(value->size()) : 0);
    }
  }
  const int* formats() const noexcept { return binary_.data(); }

 private:
  std::vector<std::optional<std::string>> values_;
  std::vector<int> binary_;
};

// A result's rows, read by column: text values, NULL as empty.
class Rows {
 public:
  explicit Rows(ResultPtr result) : result_(std::move(result)) {}
  int size() const noexcept { return PQntuples(result_.get()); }
  bool empty() const noexcept { return size() == 0; }
  bool is_null(int row, int column) const noexcept {
    return PQgetisnull(result_.get(), row, column) != 0;
  }
  std::string_view text(int row, int column) const noexcept {
    return {PQgetvalue(result_.get(), row, column),
            static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
  }
  std::int64_t int64(int row, int column) const {
    const std::string_view value = text(row, column);
    std::int64_t number = 0;
    std::from_chars(value.data(), value.data() + value.size(), number);
    return number;
  }
  double real(int row, int column) const {
    // strtod, not from_chars: g++ 12 has it, clang 14's libstdc++ use may not.
    return std::strtod(PQgetvalue(result_.get(), row, column), nullptr);
  }
  std::optional<double> optional_real(int row, int column) const {
    if (is_null(row, column))
      return std::nullopt;
    return real(row, column);
  }
  std::optional<std::string> optional_text(int row, int column) const {
    if (is_null(row, column))
      return std::nullopt;
    return std::string(text(row, column));
  }
  // A bytea column, as bytes (the text form is hex).
  std::string bytes(int row, int column) const {
    std::size_t length = 0;
    unsigned char* raw = PQunescapeBytea(
        reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row, column)), &length);
    if (raw == nullptr)
      throw IoError(std::string(message_prefix) + "out of memory reading a payload", SQLITE_NOMEM,
                    SQLITE_NOMEM);
    std::string out(reinterpret_cast<const char*>(raw), length);
    PQfreemem(raw);
    return out;
  }
  // The number of rows a command changed.
  std::int64_t changed() const {
    const char* tuples = PQcmdTuples(result_.get());
    return tuples[0] == '\0' ? 0 : std::strtoll(tuples, nullptr, 10);
  }

 private:
  ResultPtr result_;
};

// Runs `sql` with `params` on `connection` and returns its rows, or throws.
inline Rows run(PGconn* connection, const std::string& sql, const Params& params = {}) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  params.arrays(values, lengths);
  ResultPtr result(PQexecParams(connection, sql.c_str(), params.size(), nullptr, values.data(),
                                lengths.data(), params.formats(), 0));
  const ExecStatusType status =
      result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw_result_error(connection, result.get(), sql);
  return Rows(std::move(result));
}

// Runs `script` (statements separated by ';', no parameters), or throws.
inline void run_script(PGconn* connection, const std::string& script) {
  ResultPtr result(PQexec(connection, script.c_str()));
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw_result_error(connection, result.get(), script);
}

// A statement prepared once on its connection under `name`, then run by name.
class Prepared {
 public:
  Prepared(std::string name, std::string sql) : name_(std::move(name)), sql_(std::move(sql)) {}

  Rows run(PGconn* connection, const Params& params = {}) {
    if (!prepared_) {
      // $1 now (float8, oid 701) and $2 the default limit on attempts (int4, oid 23), typed
      // here since not every statement reads them; the rest the server infers.
      static const Oid types[2] = {701, 23};
      ResultPtr result(PQprepare(connection, name_.c_str(), sql_.c_str(), 2, types));
      if (!result || PQresultStatus(result.get()) != PGRES_COMMAND_OK)
        throw_result_error(connection, result.get(), sql_);
      prepared_ = true;
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    params.arrays(values, lengths);
    ResultPtr result(PQexecPrepared(connection, name_.c_str(), params.size(), values.data(),
                                    lengths.data(), params.formats(), 0));
    const ExecStatusType status =
        result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
      throw_result_error(connection, result.get(), sql_);
    return Rows(std::move(result));
  }
  const std::string& sql() const noexcept { return sql_; }
  // After a new session (a reconnect): prepared again at the next run.
  void forget() noexcept { prepared_ = false; }

 private:
  std::string name_;
  std::string sql_;
  bool prepared_ = false;
};

// Sets how long a statement waits for a row lock before it fails with 55P03 (BusyError).
inline void set_lock_timeout(PGconn* connection, std::chrono::milliseconds timeout) {
  const auto milliseconds = std::max<std::int64_t>(1, static_cast<std::int64_t>(timeout.count()));
  run(connection, "SET lock_timeout = " + std::to_string(milliseconds));
}

// A payload as its two columns: the storage class (NULL for a NULL payload) and the bytes
// (integers and reals as their shortest exact decimals).
inline void add_payload(Params& params, const Payload& data) {
  switch (data.storage_class()) {
    case StorageClass::null:
      params.add_null().add_null();
      return;
    case StorageClass::integer:
      params.add(int{2}).add_bytes(std::to_string(*data.as_integer()));
      return;
    case StorageClass::real:
      params.add(int{3}).add_bytes(format_double(*data.as_real()));
      return;
    case StorageClass::text:
      params.add(int{1}).add_bytes(data.bytes());
      return;
    case StorageClass::blob:
      break;
  }
  params.add(int{0}).add_bytes(data.bytes());
}

inline Payload read_payload(const Rows& rows, int row, int kind_column) {
  if (rows.is_null(row, kind_column))
    return Payload();
  const std::string bytes = rows.bytes(row, kind_column + 1);
  switch (rows.int64(row, kind_column)) {
    case 1:
      return Payload::text(bytes);
    case 2:
      return Payload::integer(std::strtoll(bytes.c_str(), nullptr, 10));
    case 3:
      return Payload::real(std::strtod(bytes.c_str(), nullptr));
    default:
      return Payload(bytes);
  }
}

// A quoted identifier ("name", with any '"' doubled), for a schema's name in SQL text.
inline std::string quoted(std::string_view identifier) {
  std::string out = "\"";
  for (const char c : identifier) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

// A transaction of our own, or a SAVEPOINT inside the caller's: commit() releases it; the
// destructor rolls back what was not committed, and never throws.
class Transaction {
 public:
  explicit Transaction(PGconn* connection) : connection_(connection) {
    const PGTransactionStatusType status = PQtransactionStatus(connection);
    if (status == PQTRANS_INERROR) {
      throw Error(std::string(message_prefix) +
                      "the caller's transaction on this PostgreSQL connection has failed; roll "
                      "it back before using the scheduler on it",
                  SQLITE_ERROR, SQLITE_ERROR, {}, "25P02");
    }
    if (status != PQTRANS_IDLE && status != PQTRANS_INTRANS)
      throw_connection_error(connection, "cannot start a transaction");
    nested_ = status == PQTRANS_INTRANS;
    run(connection_, nested_ ? "SAVEPOINT jobsched" : "BEGIN");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (done_)
      return;
    const char* undo = nested_ ? "ROLLBACK TO SAVEPOINT jobsched; RELEASE SAVEPOINT jobsched"
                               : "ROLLBACK";
    PQclear(PQexec(connection_, undo));
  }
  void commit() {
    run(connection_, nested_ ? "RELEASE SAVEPOINT jobsched" : "COMMIT");
    done_ = true;
  }

 private:
  PGconn* connection_;
  bool nested_ = false;
  bool done_ = false;
};

}  // namespace jobsched::detail::pg
