#include "core/domain.hpp"

#include <atomic>
#include <chrono>
#include <random>

#include "core/numbers.hpp"
#include "core/status.hpp"

namespace flashsale {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void PutHex(char* out, std::uint64_t value, int digits) {
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kHex[value & 0xF];
    value >>= 4;
  }
}

std::atomic<std::uint32_t> g_sequence{0};

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool ParseDigits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<OrderId> OrderId::Parse(std::string_view text) {
  if (text.size() != kLength) return std::nullopt;
  OrderId id;
  for (std::size_t i = 0; i < kLength; ++i) {
    char c = text[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
    id.chars_[i] = c;
  }
  id.size_ = kLength;
  return id;
}

OrderId::Packed OrderId::Pack() const {
  // Non-empty ids have exactly kLength lowercase hex digits (Parse and the
  // generator are the only ways to fill one).
  FLASHSALE_CHECK(size_ == kLength, "packing an empty order id");
  auto nibble = [](char c) { return static_cast<std::uint8_t>(c <= '9' ? c - '0' : c - 'a' + 10); };
  Packed packed;
  for (std::size_t i = 0; i < kPackedSize; ++i) {
    packed[i] = static_cast<std::uint8_t>(nibble(chars_[2 * i]) << 4 | nibble(chars_[2 * i + 1]));
  }
  return packed;
}

OrderId OrderId::Unpack(const Packed& packed) {
  OrderId id;
  for (std::size_t i = 0; i < kPackedSize; ++i) {
    id.chars_[2 * i] = kHex[packed[i] >> 4];
    id.chars_[2 * i + 1] = kHex[packed[i] & 0xF];
  }
  id.size_ = kLength;
  return id;
}

OrderIdGenerator::OrderIdGenerator() {
  std::random_device rd;
  instance_tag_ = rd() & 0xFFFFFFu;
}

OrderId OrderIdGenerator::Next(UnixMillis now) {
  const std::uint32_t seq = g_sequence.fetch_add(1, std::memory_order_relaxed);
  OrderId id;
  PutHex(id.chars_.data(), static_cast<std::uint64_t>(now), 11);
  PutHex(id.chars_.data() + 11, instance_tag_, 6);
  PutHex(id.chars_.data() + 17, seq & 0xFFFFFFFu, 7);
  id.size_ = OrderId::kLength;
  return id;
}

std::string_view ToString(OrderStatus s) {
  switch (s) {
    case OrderStatus::kPending:
      return "PENDING";
    case OrderStatus::kConfirmed:
      return "CONFIRMED";
    case OrderStatus::kFailed:
      return "FAILED";
    case OrderStatus::kPaid:
      return "PAID";
    case OrderStatus::kCancelled:
      return "CANCELLED";
    case OrderStatus::kExpired:
      return "EXPIRED";
  }
  return "PENDING";
}

std::optional<OrderStatus> ParseOrderStatus(std::string_view s) {
  if (s == "PENDING") return OrderStatus::kPending;
  if (s == "CONFIRMED") return OrderStatus::kConfirmed;
  if (s == "FAILED") return OrderStatus::kFailed;
  if (s == "PAID") return OrderStatus::kPaid;
  if (s == "CANCELLED") return OrderStatus::kCancelled;
  if (s == "EXPIRED") return OrderStatus::kExpired;
  return std::nullopt;
}

std::optional<UnixMillis> ParseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)
  int year, month, day, hour, minute, second;
  if (!ParseDigits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !ParseDigits(s, 5, 2, month) ||
      s[7] != '-' || !ParseDigits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !ParseDigits(s, 11, 2, hour) || s[13] != ':' || !ParseDigits(s, 14, 2, minute) ||
      s[16] != ':' || !ParseDigits(s, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  static constexpr int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (day > kDaysIn[month - 1] || (month == 2 && day == 29 && !leap)) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!ParseDigits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseDigits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const std::int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs =
      days * 86400 + hour * 3600 + minute * 60 + std::min(second, 59) - offset_minutes * 60;
  const std::int64_t t = secs * 1000 + millis;
  // Offsets can push an instant outside the years 0000-9999 that
  // FormatRfc3339 can write back; refuse those.
  constexpr std::int64_t kMin = -62167219200000;  // 0000-01-01T00:00:00Z
  constexpr std::int64_t kMax = 253402300799999;  // 9999-12-31T23:59:59.999Z
  if (t < kMin || t > kMax) return std::nullopt;
  return t;
}

std::string FormatRfc3339(UnixMillis t) {
  std::int64_t secs = t >= 0 ? t / 1000 : (t - 999) / 1000;
  const std::int64_t millis = t - secs * 1000;
  std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  std::int64_t rem = secs - days * 86400;
  // Civil from days (Howard Hinnant).
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                        static_cast<long long>(rem % 3600 / 60), static_cast<long long>(rem % 60));
  if (millis != 0) {
    n += std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ".%03lld",
                       static_cast<long long>(millis));
  }
  buf[n++] = 'Z';
  return {buf, static_cast<std::size_t>(n)};
}

std::optional<Cents> ParsePrice(std::string_view s) {
  if (s.empty() || s[0] == '-') return std::nullopt;
  const std::size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty())) return std::nullopt;
  // Trailing zeros beyond 2 decimals are still "at most 2 decimals" in value.
  while (frac.size() > 2 && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 2) return std::nullopt;
  const std::optional<std::int64_t> units = ParseInt64(whole);
  if (!units) return std::nullopt;
  std::int64_t cents = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    char c = i < frac.size() ? frac[i] : '0';
    if (c < '0' || c > '9') return std::nullopt;
    cents = cents * 10 + (c - '0');
  }
  if (*units > (INT64_MAX - cents) / 100) return std::nullopt;
  return *units * 100 + cents;
}

std::string FormatPrice(Cents c) {
  std::string out = std::to_string(c / 100);
  const std::int64_t frac = c % 100;
  if (frac != 0) {
    out.push_back('.');
    out.push_back(static_cast<char>('0' + frac / 10));
    if (frac % 10 != 0) out.push_back(static_cast<char>('0' + frac % 10));
  }
  return out;
}

}  // namespace flashsale
