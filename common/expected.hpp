// Error and Expected<T>: how every Flotilla module reports failure.
//
// No exceptions cross a module boundary. A function that can fail returns Expected<T>
// (a value or an Error) or Status (Expected<void>). Adapters around throwing libraries
// (Paho, yaml-cpp, std::filesystem) catch and convert. Errors carry a human sentence in the
// form "Failed to <verb> '<what>': <cause>"; WithContext prefixes more context.
//
// Thread-safety: value types; no shared state.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace flotilla {

class Error {
 public:
  Error() = default;
  explicit Error(std::string message) : message_(std::move(message)) {}

  const std::string& message() const { return message_; }
  // "ctx: message" -- used to say where a lower-level failure happened.
  Error WithContext(const std::string& ctx) const { return Error(ctx + ": " + message_); }

 private:
  std::string message_;
};

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Expected(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Status is Expected<void>: ok or an Error.
template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Expected<void>;

inline Status Ok() { return Status(); }

}  // namespace flotilla
