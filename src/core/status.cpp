#include "core/status.hpp"

#include <stdexcept>

namespace flashsale {

std::string Status::ToString() const {
  std::string_view name;
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kUnavailable:
      name = "Unavailable";
      break;
    case Code::kNotDelivered:
      name = "NotDelivered";
      break;
    case Code::kUnknown:
      name = "Unknown";
      break;
    case Code::kInvalid:
      name = "Invalid";
      break;
    case Code::kNotFound:
      name = "NotFound";
      break;
    case Code::kConflict:
      name = "Conflict";
      break;
    case Code::kInternal:
      name = "Internal";
      break;
  }
  return std::string(name) + ": " + message_;
}

void throw_exception_from_error(const Status& s, const boost::source_location&) {
  throw BadResultAccess(s);
}

void CheckFailed(const char* cond, const char* msg, const char* file, int line) {
  throw std::logic_error(std::string("check failed: ") + cond + " (" + msg + ") at " + file + ":" +
                         std::to_string(line));
}

}  // namespace flashsale
