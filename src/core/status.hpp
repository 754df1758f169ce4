#pragma once
// Status: the outcome of an operation that touches infrastructure (journal,
// database, network). Business outcomes (sold out, over the limit) are never a
// Status: they are PurchaseOutcome values. A Status is a value type; copying is
// cheap for the OK case. Thread-compatible (no shared state).

#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace flashsale {

class Status {
 public:
  enum class Code {
    kOk,
    kUnavailable,   // backend down or overloaded: retry later; nothing happened.
    kNotDelivered,  // hand-off definitely refused: nothing was persisted.
    kUnknown,       // hand-off outcome unknown (timeout): may or may not be persisted.
    kInvalid,       // bad input that slipped past validation (caller's bug or bad file).
    kNotFound,
    kConflict,
    kInternal,
  };

  Status() = default;
  static Status Ok() { return {}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status NotDelivered(std::string msg) { return {Code::kNotDelivered, std::move(msg)}; }
  static Status Unknown(std::string msg) { return {Code::kUnknown, std::move(msg)}; }
  static Status Invalid(std::string msg) { return {Code::kInvalid, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Conflict(std::string msg) { return {Code::kConflict, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  [[nodiscard]] bool ok() const { return code_ == Code::kOk; }
  [[nodiscard]] Code code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  // Retrying later may succeed (503 + Retry-After at the HTTP edge).
  [[nodiscard]] bool IsRetryable() const {
    return code_ == Code::kUnavailable || code_ == Code::kNotDelivered || code_ == Code::kUnknown;
  }
  [[nodiscard]] bool IsNotDelivered() const { return code_ == Code::kNotDelivered; }
  [[nodiscard]] bool IsUnknown() const { return code_ == Code::kUnknown; }
  [[nodiscard]] std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Thrown only by Result<T>::value() on a non-OK result (a caller's bug: check ok()).
class BadResultAccess : public std::exception {
 public:
  explicit BadResultAccess(Status s) : status_(std::move(s)) {}
  const char* what() const noexcept override { return status_.message().c_str(); }

 private:
  Status status_;
};

[[noreturn]] void throw_exception_from_error(const Status& s, const boost::source_location& loc);

// A value or a non-OK Status. [[nodiscard]] through boost::system::result.
template <class T>
using Result = boost::system::result<T, Status>;

// Business invariants broken: a bug, never an outcome. Throws std::logic_error
// with file and line; caught only at the top of a request (500) or a thread.
[[noreturn]] void CheckFailed(const char* cond, const char* msg, const char* file, int line);

#define FLASHSALE_CHECK(cond, msg) \
  ((cond) ? static_cast<void>(0) : ::flashsale::CheckFailed(#cond, msg, __FILE__, __LINE__))

}  // namespace flashsale
