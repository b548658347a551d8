// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <exception>
#include <new>
#include <string>

#include "../error.hpp"

namespace jobsched::detail {

// An error caught in one thread, kept as plain values (its kind, codes and text, each string
// a copy of its own), so that another thread can throw it afresh. Handing the exception
// object itself across (std::exception_ptr, std::future) shares it, and in libstdc++ its
// message string too, between threads: their reference counts live in the uninstrumented C++
// runtime, where ThreadSanitizer cannot see the atomics, and it reports a race to users.
class ErrorRecord {
 public:
  // Captures the exception being handled (call it inside a catch block).
  static ErrorRecord current() {
    ErrorRecord record;
    try {
      throw;
    } catch (const UniqueConflictError& e) {
      record.set(Kind::unique_conflict, e);
      record.key_ = e.key();
      record.existing_id_ = e.existing_id();
    } catch (const ReadOnlyError& e) {
      record.set(Kind::read_only, e);
    } catch (const ConstraintError& e) {
      record.set(Kind::constraint, e);
    } catch (const IoError& e) {
      record.set(Kind::io, e);
    } catch (const BusyError& e) {
      record.set(Kind::busy, e);
    } catch (const SchemaError& e) {
      record.set(Kind::schema, e);
    } catch (const InvalidArgumentError& e) {
      record.set(Kind::invalid_argument, e);
    } catch (const Error& e) {
      record.set(Kind::error, e);
    } catch (const std::bad_alloc&) {
      record.kind_ = Kind::bad_alloc;
    } catch (const std::exception& e) {
      record.kind_ = Kind::other;
      record.message_ = e.what();
    } catch (...) {
      record.kind_ = Kind::other;
      record.message_ = "an unknown exception";
    }
    return record;
  }

  // Throws a new exception of the recorded kind, with the recorded codes and text. Other
  // types than jobsched's and std::bad_alloc come back as Error (SQLITE_ERROR) with their
  // what().
  [[noreturn]] void raise() const {
    switch (kind_) {
      case Kind::unique_conflict:
        throw UniqueConflictError(message_, key_, existing_id_);
      case Kind::read_only:
        throw ReadOnlyError(message_, code_, extended_code_, sql_);
      case Kind::constraint:
        throw ConstraintError(message_, code_, extended_code_, sql_);
      case Kind::io:
        throw IoError(message_, code_, extended_code_, sql_);
      case Kind::busy:
        throw BusyError(message_, code_, extended_code_, sql_);
      case Kind::schema:
        throw SchemaError(message_, code_, extended_code_, sql_);
      case Kind::invalid_argument:
        throw InvalidArgumentError(message_);
      case Kind::error:
        throw Error(message_, code_, extended_code_, sql_);
      case Kind::bad_alloc:
        throw std::bad_alloc();
      case Kind::other:
        break;
    }
    throw Error(message_, SQLITE_ERROR, SQLITE_ERROR);
  }

 private:
  enum class Kind {
    unique_conflict,
    read_only,
    constraint,
    io,
    busy,
    schema,
    invalid_argument,
    error,
    bad_alloc,
    other
  };

  void set(Kind kind, const Error& e) {
    kind_ = kind;
    message_ = e.what();
    code_ = e.code();
    extended_code_ = e.extended_code();
    sql_ = e.sql();
  }

  Kind kind_ = Kind::other;
  std::string message_;
  int code_ = SQLITE_ERROR;
  int extended_code_ = SQLITE_ERROR;
  std::string sql_;
  std::string key_;
  std::int64_t existing_id_ = 0;
};

}  // namespace jobsched::detail
