// libFuzzer target: strict JSON request bodies, their 422 rendering, and the
// RFC 3339 and price codecs of core/domain.hpp.
//
// The input is a request body. It is read against the purchase, admin-product
// (with its nested "waiting_room" object), restock, pay and cancel specs (the
// ones the API reads with, from http/body_specs.hpp) and checked:
//   * Read returns true exactly when it reports no errors; on success every
//     required field is present, ints respect their minimum, and the values
//     agree with a Boost.JSON DOM parse of the same body.
//   * A body the DOM parser rejects is rejected as json_invalid; a DOM-valid
//     object within the reader's size limits is never json_invalid.
//   * RenderValidationErrors emits valid JSON (boost::json::parse) that reads
//     back to exactly the errors given (FastAPI's {"detail":[...]} shape).
//   * A reused reader answers like a fresh one (no state leaks between calls).
// Strings cut from the input (the whole input and each piece between double
// quotes) go through ParseRfc3339 and ParsePrice, checked against a reference
// reading and a Format/Parse round trip; the first 8 bytes, as an integer,
// round-trip through FormatRfc3339 and FormatPrice.
//
// A broken invariant prints what broke and aborts, which libFuzzer reports as
// a crash with the input saved.

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/domain.hpp"
#include "http/body_specs.hpp"
#include "http/json_body.hpp"

#include "fuzz_check.hpp"

namespace {

namespace json = boost::json;
using flashsale::Cents;
using flashsale::UnixMillis;
using flashsale::http::BodyValues;
using flashsale::http::FieldError;
using flashsale::http::FieldSpec;
using flashsale::http::FieldType;
using flashsale::http::JsonBodyReader;

// JsonBodyReader's SAX limits (json_body.cpp's Handler) and Boost's default depth.
constexpr std::size_t kMaxObjectSize = 64;
constexpr std::size_t kMaxArraySize = 1024;
constexpr std::size_t kMaxKeySize = 256;
constexpr std::size_t kMaxStringSize = 4096;

// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what four-digit years can write.
constexpr UnixMillis kMinRfc3339 = -62167219200000;
constexpr UnixMillis kMaxRfc3339 = 253402300799999;
// The largest value ParsePrice promises to accept (whole part <= (INT64_MAX - 99) / 100).
constexpr Cents kMaxPrice = (std::numeric_limits<std::int64_t>::max() - 99) / 100 * 100 + 99;

bool SameErrors(const std::vector<FieldError>& a, const std::vector<FieldError>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].field != b[i].field || a[i].msg != b[i].msg || a[i].type != b[i].type ||
        a[i].root != b[i].root || a[i].member != b[i].member) {
      return false;
    }
  }
  return true;
}

bool SameValues(const BodyValues& a, const BodyValues& b) {
  return a.ints == b.ints && a.strings == b.strings && a.present == b.present &&
         a.object_given == b.object_given && a.members == b.members;
}

// The rendered 422 body must be JSON that reads back to `errors`.
void CheckRendered(const std::vector<FieldError>& errors) {
  const std::string text = flashsale::http::RenderValidationErrors(errors);
  boost::system::error_code ec;
  const json::value doc = json::parse(text, ec);
  if (ec) std::fprintf(stderr, "rendered: %s\nerror: %s\n", text.c_str(), ec.message().c_str());
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(doc.is_object() && doc.as_object().size() == 1);
  const json::value* detail = doc.as_object().if_contains("detail");
  FUZZ_CHECK(detail != nullptr && detail->is_array());
  const json::array& items = detail->as_array();
  FUZZ_CHECK(items.size() == errors.size());
  for (std::size_t i = 0; i < errors.size(); ++i) {
    const FieldError& e = errors[i];
    FUZZ_CHECK(items[i].is_object());
    const json::object& item = items[i].as_object();
    FUZZ_CHECK(item.size() == 3);
    const json::value* loc = item.if_contains("loc");
    const json::value* msg = item.if_contains("msg");
    const json::value* type = item.if_contains("type");
    FUZZ_CHECK(loc && loc->is_array() && msg && msg->is_string() && type && type->is_string());
    const json::array& l = loc->as_array();
    FUZZ_CHECK(l.size() == 1u + !e.field.empty() + !e.member.empty());
    FUZZ_CHECK(l[0].is_string() && std::string_view(l[0].as_string()) == e.root);
    if (!e.field.empty())
      FUZZ_CHECK(l[1].is_string() && std::string_view(l[1].as_string()) == e.field);
    if (!e.member.empty()) {
      const json::value& m = l[e.field.empty() ? 1 : 2];
      FUZZ_CHECK(m.is_string() && std::string_view(m.as_string()) == e.member);
    }
    FUZZ_CHECK(std::string_view(msg->as_string()) == e.msg);
    FUZZ_CHECK(std::string_view(type->as_string()) == e.type);
    FUZZ_CHECK(!e.msg.empty() && !e.type.empty());
  }
}

// True when every object, array, key and string of `v` is within the reader's limits.
bool WithinReaderLimits(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object:
      if (v.as_object().size() > kMaxObjectSize) return false;
      for (const auto& kv : v.as_object()) {
        if (kv.key().size() > kMaxKeySize || !WithinReaderLimits(kv.value())) return false;
      }
      return true;
    case json::kind::array:
      if (v.as_array().size() > kMaxArraySize) return false;
      for (const auto& e : v.as_array()) {
        if (!WithinReaderLimits(e)) return false;
      }
      return true;
    case json::kind::string:
      return v.as_string().size() <= kMaxStringSize;
    default:
      return true;
  }
}

bool HasType(const std::vector<FieldError>& errors, std::string_view type) {
  for (const FieldError& e : errors) {
    if (e.type == type) return true;
  }
  return false;
}

void CheckRead(JsonBodyReader& reader, std::string_view body, std::span<const FieldSpec> spec,
               const json::value* dom, bool dom_ok) {
  BodyValues values;
  std::vector<FieldError> errors;
  const bool ok = reader.Read(body, spec, values, errors);
  FUZZ_CHECK(ok == errors.empty());
  CheckRendered(errors);

  // The same answer from a fresh reader and from this one again.
  {
    JsonBodyReader fresh;
    BodyValues v2;
    std::vector<FieldError> e2;
    FUZZ_CHECK(fresh.Read(body, spec, v2, e2) == ok);
    FUZZ_CHECK(SameErrors(errors, e2));
    FUZZ_CHECK(SameValues(values, v2));
  }

  if (!dom_ok) {
    // Not JSON at all: the reader must say so, and only that.
    FUZZ_CHECK(!ok);
    FUZZ_CHECK(errors.size() == 1 && errors[0].type == "json_invalid" && errors[0].field.empty());
    return;
  }
  // The DOM drops duplicate keys with their values, so bound what it cannot see
  // from the raw text: members (':'), array elements (','), string lengths.
  const bool small = body.size() <= kMaxStringSize &&
                     std::count(body.begin(), body.end(), ':') <= std::ptrdiff_t{kMaxObjectSize} &&
                     std::count(body.begin(), body.end(), ',') < std::ptrdiff_t{kMaxArraySize};
  if (dom->is_object() && small && WithinReaderLimits(*dom)) {
    FUZZ_CHECK(!HasType(errors, "json_invalid"));
  }
  if (!dom->is_object()) FUZZ_CHECK(!ok);
  if (!ok) return;

  // Valid: the DOM holds exactly the spec's fields, with the same values.
  const json::object& obj = dom->as_object();
  std::size_t present = 0;
  for (std::size_t i = 0; i < spec.size(); ++i) {
    const json::value* v = obj.if_contains(spec[i].name);
    FUZZ_CHECK(values.present[i] == (v != nullptr));
    if (spec[i].required) FUZZ_CHECK(values.present[i]);
    if (v == nullptr) {
      FUZZ_CHECK(!values.ints[i]);
      continue;
    }
    ++present;
    switch (spec[i].type) {
      case FieldType::kInt:
        FUZZ_CHECK(v->is_int64() || (v->is_uint64() && v->as_uint64() <= INT64_MAX));
        FUZZ_CHECK(values.ints[i] && *values.ints[i] == v->to_number<std::int64_t>());
        if (spec[i].min) FUZZ_CHECK(*values.ints[i] >= *spec[i].min);
        if (spec[i].max) FUZZ_CHECK(*values.ints[i] <= *spec[i].max);
        break;
      case FieldType::kIntOrNull:
        if (v->is_null()) {
          FUZZ_CHECK(!values.ints[i]);
        } else {
          FUZZ_CHECK(v->is_int64() || (v->is_uint64() && v->as_uint64() <= INT64_MAX));
          FUZZ_CHECK(values.ints[i] && *values.ints[i] == v->to_number<std::int64_t>());
          if (spec[i].min) FUZZ_CHECK(*values.ints[i] >= *spec[i].min);
          if (spec[i].max) FUZZ_CHECK(*values.ints[i] <= *spec[i].max);
        }
        break;
      case FieldType::kString:
        FUZZ_CHECK(v->is_string() && !v->as_string().empty());
        FUZZ_CHECK(values.strings[i] == std::string_view(v->as_string()));
        if (spec[i].max) {
          FUZZ_CHECK(static_cast<std::int64_t>(values.strings[i].size()) <= *spec[i].max);
        }
        break;
      case FieldType::kPrice: {
        FUZZ_CHECK(v->is_number() && values.ints[i] && *values.ints[i] >= 0);
        const double want = v->to_number<double>() * 100.0;
        const double got = static_cast<double>(*values.ints[i]);
        FUZZ_CHECK(std::fabs(want - got) <= 1e-9 * std::fmax(1.0, std::fabs(want)));
        break;
      }
      case FieldType::kTimestampOrNull:
        if (v->is_null()) {
          FUZZ_CHECK(!values.ints[i]);
        } else {
          FUZZ_CHECK(v->is_string() && values.ints[i]);
          FUZZ_CHECK(flashsale::ParseRfc3339(v->as_string()) == values.ints[i]);
        }
        break;
      case FieldType::kObjectOrNull: {
        FUZZ_CHECK(!values.ints[i]);
        FUZZ_CHECK(values.object_given == v->is_object());
        if (!v->is_object()) {
          FUZZ_CHECK(v->is_null());
          break;
        }
        // Exactly the members, each an int within its bounds, as the DOM has it.
        const json::object& o = v->as_object();
        std::size_t given = 0;
        for (std::size_t m = 0; m < spec[i].members.size(); ++m) {
          const FieldSpec& ms = spec[i].members[m];
          const json::value* mv = o.if_contains(ms.name);
          if (ms.required) FUZZ_CHECK(mv != nullptr);
          if (mv == nullptr) {
            FUZZ_CHECK(!values.members[m]);
            continue;
          }
          ++given;
          FUZZ_CHECK(mv->is_int64() || (mv->is_uint64() && mv->as_uint64() <= INT64_MAX));
          FUZZ_CHECK(values.members[m] && *values.members[m] == mv->to_number<std::int64_t>());
          if (ms.min) FUZZ_CHECK(*values.members[m] >= *ms.min);
          if (ms.max) FUZZ_CHECK(*values.members[m] <= *ms.max);
        }
        FUZZ_CHECK(o.size() == given);  // no extra members
        break;
      }
    }
  }
  FUZZ_CHECK(obj.size() == present);  // no extra fields
}

// Reference RFC 3339 reader, written apart from domain.cpp: std::chrono does the calendar.
std::optional<UnixMillis> ReferenceRfc3339(std::string_view s) {
  auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
    if (pos + n > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2),
             mi = digits(14, 2), sec = digits(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || s.size() < 20) return std::nullopt;
  if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
      s[16] != ':') {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{year{*y}, month{static_cast<unsigned>(*mo)},
                           day{static_cast<unsigned>(*d)}};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *sec > 60) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t ms = 0;
  if (s[pos] == '.') {
    const std::size_t first = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == first) return std::nullopt;
    std::string frac(s.substr(first, pos - first));
    frac.resize(3, '0');
    ms = std::stoi(frac);
  }
  if (pos >= s.size()) return std::nullopt;
  std::int64_t offset = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
    if (!oh || !om || pos + 3 >= s.size() || s[pos + 3] != ':' || *oh > 23 || *om > 59) {
      return std::nullopt;
    }
    offset = (*oh * 60 + *om) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  const auto t = sys_days{ymd} + hours{*h} + minutes{*mi} + seconds{std::min(*sec, 59)} -
                 minutes{offset} + milliseconds{ms};
  const UnixMillis out = duration_cast<milliseconds>(t.time_since_epoch()).count();
  // Instants outside four-digit years have no RFC 3339 form: refused.
  if (out < kMinRfc3339 || out > kMaxRfc3339) return std::nullopt;
  return out;
}

void CheckRfc3339(std::string_view s) {
  const std::optional<UnixMillis> t = flashsale::ParseRfc3339(s);
  FUZZ_CHECK(t == ReferenceRfc3339(s));
  if (!t) return;
  const std::string text = flashsale::FormatRfc3339(*t);
  FUZZ_CHECK(flashsale::ParseRfc3339(text) == t);
  FUZZ_CHECK(flashsale::FormatRfc3339(*flashsale::ParseRfc3339(text)) == text);
}

// Reference price reader: digits[.digits], exact in 128 bits.
std::optional<__int128> ReferencePrice(std::string_view s) {
  const std::size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && frac.empty())) return std::nullopt;
  __int128 v = 0;
  for (char c : whole) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
    if (v > (static_cast<__int128>(1) << 100)) return std::nullopt;  // far past int64
  }
  for (char c : frac) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  while (frac.size() > 2 && frac.back() == '0') frac.remove_suffix(1);
  if (frac.size() > 2) return std::nullopt;
  for (std::size_t i = 0; i < 2; ++i) v = v * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  return v;
}

void CheckPrice(std::string_view s) {
  const std::optional<Cents> c = flashsale::ParsePrice(s);
  const std::optional<__int128> want = ReferencePrice(s);
  if (want && *want <= kMaxPrice) FUZZ_CHECK(c && *c == *want);
  if (!want || *want > std::numeric_limits<std::int64_t>::max()) FUZZ_CHECK(!c);
  if (!c) return;
  FUZZ_CHECK(*c >= 0);
  const std::string text = flashsale::FormatPrice(*c);
  FUZZ_CHECK(flashsale::ParsePrice(text) == c);
  FUZZ_CHECK(flashsale::FormatPrice(*flashsale::ParsePrice(text)) == text);
}

void CheckFormatters(std::int64_t n) {
  // FormatRfc3339 within the four-digit years.
  const UnixMillis span = kMaxRfc3339 - kMinRfc3339 + 1;
  const UnixMillis t = kMinRfc3339 + static_cast<UnixMillis>(static_cast<std::uint64_t>(n) %
                                                             static_cast<std::uint64_t>(span));
  const std::string text = flashsale::FormatRfc3339(t);
  FUZZ_CHECK(text.size() == 20 || text.size() == 24);
  FUZZ_CHECK(flashsale::ParseRfc3339(text) == t);
  // FormatPrice over every price ParsePrice can produce.
  const Cents c = static_cast<Cents>(static_cast<std::uint64_t>(n) %
                                     (static_cast<std::uint64_t>(kMaxPrice) + 1));
  const std::string price = flashsale::FormatPrice(c);
  FUZZ_CHECK(flashsale::ParsePrice(price) == c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(bytes), size);

  // One long-lived reader, as each server thread keeps one.
  static JsonBodyReader reader;
  boost::system::error_code ec;
  const json::value dom = json::parse(body, ec);
  const bool dom_ok = !ec;
  CheckRead(reader, body, flashsale::http::kPurchaseSpec, &dom, dom_ok);
  CheckRead(reader, body, flashsale::http::kProductSpec, &dom, dom_ok);
  CheckRead(reader, body, flashsale::http::kRestockSpec, &dom, dom_ok);
  CheckRead(reader, body, flashsale::http::kPaySpec, &dom, dom_ok);
  CheckRead(reader, body, flashsale::http::kCancelSpec, &dom, dom_ok);

  CheckRfc3339(body);
  CheckPrice(body);
  for (std::size_t pos = 0; pos < body.size();) {
    const std::size_t q = body.find('"', pos);
    const std::string_view piece = body.substr(pos, q == std::string_view::npos ? q : q - pos);
    CheckRfc3339(piece);
    CheckPrice(piece);
    if (q == std::string_view::npos) break;
    pos = q + 1;
  }

  if (size >= 8) {
    std::int64_t n;
    std::memcpy(&n, bytes, sizeof n);
    CheckFormatters(n);
  }
  return 0;
}
