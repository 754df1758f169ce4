#pragma once
// Decimal int64 parsing and formatting, in one place. Pure functions, no
// allocation of their own (AppendInt appends to the caller's buffer, which
// keeps its capacity), so hot paths (HTTP bodies, Kafka keys and payloads) may
// call them per request. Thread-safe: no shared state.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace flashsale {

// Whether ParseInt64 accepts a leading '0' before more characters ("007").
// kRefuse is for texts a client writes where "007" is a typo, not an id
// (HTTP path segments and query values): only "0" itself may start with '0'.
// The check looks at the first character only, so a sign before the zero
// ("-01") is left to from_chars, which reads it as -1.
enum class LeadingZeros { kAllow, kRefuse };

// The value of `text` if it is exactly one decimal int64: an optional '-',
// then digits, nothing before or after (no '+', no spaces). Empty text, junk
// and values outside [INT64_MIN, INT64_MAX] give nullopt.
inline std::optional<std::int64_t> ParseInt64(std::string_view text,
                                              LeadingZeros leading_zeros = LeadingZeros::kAllow) {
  if (leading_zeros == LeadingZeros::kRefuse && text.size() > 1 && text[0] == '0') {
    return std::nullopt;
  }
  std::int64_t value = 0;
  const char* const end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || stop != end) return std::nullopt;
  return value;
}

// Characters in the longest decimal int64, "-9223372036854775808".
inline constexpr std::size_t kMaxInt64Chars = 20;

// Appends the decimal text of `value` to `out`.
inline void AppendInt(std::string& out, std::int64_t value) {
  char buf[kMaxInt64Chars];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;  // cannot fail: buf fits every int64
  out.append(buf, end);
}

// The decimal text of an int64 held on the stack, for APIs that take a
// pointer and a length (e.g. a Kafka message key) without a std::string.
class Int64Text {
 public:
  explicit Int64Text(std::int64_t value) {
    const auto [end, ec] = std::to_chars(buf_, buf_ + sizeof buf_, value);
    (void)ec;  // cannot fail: buf_ fits every int64
    size_ = static_cast<std::size_t>(end - buf_);
  }
  const char* data() const { return buf_; }
  std::size_t size() const { return size_; }
  std::string_view view() const { return {buf_, size_}; }

 private:
  char buf_[kMaxInt64Chars];
  std::size_t size_ = 0;
};

}  // namespace flashsale
