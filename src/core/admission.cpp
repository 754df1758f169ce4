#include "core/admission.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "core/numbers.hpp"

namespace flashsale {
namespace {

// Splits `text` at '.' into exactly N fields (the last is the MAC).
template <std::size_t N>
std::optional<std::array<std::string_view, N>> SplitFields(std::string_view text) {
  std::array<std::string_view, N> fields;
  for (std::size_t i = 0; i < N; ++i) {
    const std::size_t dot = i + 1 < N ? text.find('.') : std::string_view::npos;
    if (i + 1 < N && dot == std::string_view::npos) return std::nullopt;
    fields[i] = text.substr(0, dot);
    if (fields[i].empty()) return std::nullopt;
    text = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  }
  return fields;
}

std::optional<std::int64_t> Number(std::string_view s) {
  return ParseInt64(s, LeadingZeros::kRefuse);
}

}  // namespace

void AdvanceFrontier(QueueState& s, UnixMillis now) {
  const UnixMillis from = std::max(s.as_of, s.starts_at.value_or(0));
  const std::int64_t before = s.AdmittedCount();
  if (now > from && s.room.admit_per_s > 0 && !s.sold_out) {
    const double grown = s.admitted + static_cast<double>(s.room.admit_per_s) *
                                          static_cast<double>(now - from) / 1000.0;
    s.admitted = std::min(grown, static_cast<double>(s.joined));
  }
  s.as_of = std::max(s.as_of, now);
  s.newly_admitted = s.AdmittedCount() - before;
}

UnixMillis AdmittedAt(const QueueState& s, std::int64_t position) {
  if (s.room.admit_per_s <= 0) return s.as_of;
  const double behind = (s.admitted - static_cast<double>(position)) * 1000.0 /
                        static_cast<double>(s.room.admit_per_s);
  const auto at = s.as_of - static_cast<UnixMillis>(std::floor(std::max(behind, 0.0)));
  return std::max(at, s.starts_at.value_or(at));
}

std::int64_t EstimatedWaitS(const QueueState& s, std::int64_t position, UnixMillis now) {
  if (position <= s.AdmittedCount() || s.room.admit_per_s <= 0) return 0;
  const double ahead = static_cast<double>(position) - s.admitted;
  double wait_ms = ahead * 1000.0 / static_cast<double>(s.room.admit_per_s);
  if (s.starts_at && *s.starts_at > now) wait_ms += static_cast<double>(*s.starts_at - now);
  return static_cast<std::int64_t>(std::ceil(wait_ms / 1000.0));
}

std::string_view ToString(PassRejection r) {
  switch (r) {
    case PassRejection::kMissing:
      return "missing";
    case PassRejection::kMalformed:
      return "malformed";
    case PassRejection::kForged:
      return "forged";
    case PassRejection::kExpired:
      return "expired";
    case PassRejection::kOtherUser:
      return "other_user";
    case PassRejection::kOtherProduct:
      return "other_product";
  }
  return "unknown";
}

std::string AdmissionTokens::Mac(std::string_view kind, std::string_view fields) const {
  std::string message;
  message.reserve(kind.size() + 1 + fields.size());
  message.append(kind).push_back(':');
  message.append(fields);
  return mac_.Hex(message).substr(0, kMacLength);
}

std::string AdmissionTokens::Signed(std::string_view kind, std::string fields) const {
  const std::string mac = Mac(kind, fields);
  fields.push_back('.');
  fields.append(mac);
  return fields;
}

std::string AdmissionTokens::Pass(ProductId product, UserId user, UnixMillis expires_at) const {
  std::string fields;
  AppendInt(fields, product);
  fields.push_back('.');
  AppendInt(fields, user);
  fields.push_back('.');
  AppendInt(fields, expires_at);
  return Signed("pass", std::move(fields));
}

std::optional<PassRejection> AdmissionTokens::CheckPass(std::string_view pass, UserId user,
                                                        ProductId product, UnixMillis now) const {
  if (pass.empty()) return PassRejection::kMissing;
  if (pass.size() > 3 * kMaxInt64Chars + 3 + kMacLength) return PassRejection::kMalformed;
  const auto f = SplitFields<4>(pass);
  if (!f) return PassRejection::kMalformed;
  const auto pass_product = Number((*f)[0]);
  const auto pass_user = Number((*f)[1]);
  const auto expires_at = Number((*f)[2]);
  if (!pass_product || !pass_user || !expires_at || (*f)[3].size() != kMacLength) {
    return PassRejection::kMalformed;
  }
  const std::string_view signed_part = pass.substr(0, pass.size() - kMacLength - 1);
  if (!ConstantTimeEquals(Mac("pass", signed_part), (*f)[3])) return PassRejection::kForged;
  if (*pass_product != product) return PassRejection::kOtherProduct;
  if (*pass_user != user) return PassRejection::kOtherUser;
  if (now >= *expires_at) return PassRejection::kExpired;
  return std::nullopt;
}

std::string AdmissionTokens::Ticket(const QueueTicket& t) const {
  std::string fields;
  AppendInt(fields, t.product);
  fields.push_back('.');
  AppendInt(fields, t.user);
  fields.push_back('.');
  AppendInt(fields, t.position);
  fields.push_back('.');
  fields.append(std::to_string(t.generation));
  return Signed("ticket", std::move(fields));
}

std::optional<QueueTicket> AdmissionTokens::ParseTicket(std::string_view text) const {
  if (text.size() > 4 * kMaxInt64Chars + 4 + kMacLength) return std::nullopt;
  const auto f = SplitFields<5>(text);
  if (!f || (*f)[4].size() != kMacLength) return std::nullopt;
  const auto product = Number((*f)[0]);
  const auto user = Number((*f)[1]);
  const auto position = Number((*f)[2]);
  std::uint64_t generation = 0;
  const std::string_view g = (*f)[3];
  const auto [stop, ec] = std::from_chars(g.data(), g.data() + g.size(), generation);
  if (!product || !user || !position || *position < 1 || ec != std::errc() ||
      stop != g.data() + g.size()) {
    return std::nullopt;
  }
  const std::string_view signed_part = text.substr(0, text.size() - kMacLength - 1);
  if (!ConstantTimeEquals(Mac("ticket", signed_part), (*f)[4])) return std::nullopt;
  return QueueTicket{*product, *user, *position, generation};
}

}  // namespace flashsale
