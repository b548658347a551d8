// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace jobsched {

/// How SQLite stored a payload. jobsched writes BLOB (or NULL); files written by the
/// Python programs may also hold TEXT, INTEGER or REAL.
enum class StorageClass { null, integer, real, text, blob };

/// A job's payload: bytes, or NULL (which is not the same as empty bytes). A payload read
/// from an older file keeps the storage class it was written with.
class Payload {
 public:
  /// NULL: no payload at all.
  Payload() noexcept = default;
  /// NULL, as Payload().
  Payload(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  /// Bytes stored as a BLOB, exactly (NUL bytes included).
  Payload(std::string bytes) noexcept  // NOLINT(google-explicit-constructor)
      : storage_class_(StorageClass::blob), bytes_(std::move(bytes)) {}
  /// A copy of `bytes`, stored as a BLOB, exactly.
  Payload(std::string_view bytes)  // NOLINT(google-explicit-constructor)
      : Payload(std::string(bytes)) {}
  /// A C string's bytes as a BLOB; a null pointer is the NULL payload.
  Payload(const char* bytes)  // NOLINT(google-explicit-constructor)
      : Payload(bytes == nullptr ? Payload() : Payload(std::string(bytes))) {}

  /// `size` bytes from `data`, stored as a BLOB.
  static Payload blob(const void* data, std::size_t size) {
    return Payload(std::string(static_cast<const char*>(data), size));
  }
  /// Bytes stored as TEXT, as the Python programs stored `str` payloads.
  static Payload text(std::string_view text) {
    Payload payload{std::string(text)};
    payload.storage_class_ = StorageClass::text;
    return payload;
  }
  /// An INTEGER payload, as the Python programs stored `int`.
  static Payload integer(std::int64_t value) noexcept {
    Payload payload;
    payload.storage_class_ = StorageClass::integer;
    payload.integer_ = value;
    return payload;
  }
  /// A REAL payload, as the Python programs stored `float`.
  static Payload real(double value) noexcept {
    Payload payload;
    payload.storage_class_ = StorageClass::real;
    payload.real_ = value;
    return payload;
  }

  /// How the payload is stored: null, blob, or (from older files) text, integer, real.
  StorageClass storage_class() const noexcept { return storage_class_; }
  /// True for the NULL payload, never for empty bytes.
  bool is_null() const noexcept { return storage_class_ == StorageClass::null; }
  /// The bytes of a BLOB or TEXT payload; empty for the other storage classes.
  std::string_view bytes() const noexcept { return bytes_; }
  /// The value of an INTEGER payload; empty for the other storage classes.
  std::optional<std::int64_t> as_integer() const noexcept {
    if (storage_class_ != StorageClass::integer)
      return std::nullopt;
    return integer_;
  }
  /// The value of a REAL payload; empty for the other storage classes.
  std::optional<double> as_real() const noexcept {
    if (storage_class_ != StorageClass::real)
      return std::nullopt;
    return real_;
  }

  /// Equal when storage class and value are equal (NULL differs from empty bytes).
  friend bool operator==(const Payload& a, const Payload& b) noexcept {
    return a.storage_class_ == b.storage_class_ && a.bytes_ == b.bytes_ &&
           a.integer_ == b.integer_ && a.real_ == b.real_;
  }
  /// Not equal.
  friend bool operator!=(const Payload& a, const Payload& b) noexcept { return !(a == b); }

 private:
  StorageClass storage_class_ = StorageClass::null;
  std::string bytes_;
  std::int64_t integer_ = 0;
  double real_ = 0.0;
};

}  // namespace jobsched
