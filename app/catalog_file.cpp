#include "catalog_file.hpp"

#include <boost/json.hpp>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/numbers.hpp"
#include "http/body_specs.hpp"

namespace flashsale::app {
namespace {

Status Bad(const std::string& where, const std::string& what) {
  return Status::Invalid(where + ": " + what);
}

// The waiting room's columns in CSV. JSON writes {"waiting_room": {"admit_per_s":
// N, "pass_ttl_s": T}} instead, which ParseCatalogJson flattens to these names
// (spelt waiting_room.admit_per_s in its errors' field texts).
constexpr const char* kWrAdmit = "waiting_room_admit_per_s";
constexpr const char* kWrTtl = "waiting_room_pass_ttl_s";

// Flattens a JSON entry's "waiting_room" (object or null) into `fields`.
Status FlattenWaitingRoom(const std::string& where, const boost::json::value& v,
                          std::vector<std::pair<std::string, std::string>>& fields) {
  if (v.is_null()) return Status::Ok();
  if (!v.is_object()) {
    return Bad(where, "'waiting_room' must be an object {admit_per_s, pass_ttl_s} or null");
  }
  for (const auto& kv : v.as_object()) {
    const std::string member(kv.key());
    if (member != "admit_per_s" && member != "pass_ttl_s") {
      return Bad(where, "unknown field 'waiting_room." + member + "'");
    }
    const std::int64_t max = member == "admit_per_s" ? kMaxAdmitPerS : kMaxPassTtlS;
    if (!kv.value().is_int64() || kv.value().as_int64() < 1 || kv.value().as_int64() > max) {
      return Bad(where,
                 "'waiting_room." + member + "' must be an integer 1.." + std::to_string(max));
    }
    fields.emplace_back(member == "admit_per_s" ? kWrAdmit : kWrTtl,
                        std::to_string(kv.value().as_int64()));
  }
  for (const char* member : {"admit_per_s", "pass_ttl_s"}) {
    if (!v.as_object().contains(member)) {
      return Bad(where, std::string("missing 'waiting_room.") + member + "'");
    }
  }
  return Status::Ok();
}

// Validates one entry given as field texts (JSON numbers keep their text).
Result<Product> MakeProduct(const std::string& where,
                            const std::vector<std::pair<std::string, std::string>>& fields,
                            const std::set<std::string>& null_fields) {
  static const std::set<std::string> kKnown = {"product_id",       "price",   "stock",
                                               "starts_at",        "ends_at", "limit_per_user",
                                               "payment_window_s", kWrAdmit,  kWrTtl};
  Product p;
  std::optional<std::int64_t> admit_per_s, pass_ttl_s;  // the waiting room's two halves
  std::set<std::string> seen;
  for (const auto& [name, value] : fields) {
    if (!kKnown.contains(name)) return Bad(where, "unknown field '" + name + "'");
    if (!seen.insert(name).second) return Bad(where, "duplicate field '" + name + "'");
    const bool empty = value.empty() || null_fields.contains(name);
    if (name == "starts_at" || name == "ends_at") {
      if (empty) continue;
      std::optional<UnixMillis> t = ParseRfc3339(value);
      if (!t) return Bad(where, "'" + name + "' is not an RFC 3339 time: " + value);
      (name == "starts_at" ? p.starts_at : p.ends_at) = t;
      continue;
    }
    if ((name == "limit_per_user" || name == "payment_window_s" || name == kWrAdmit ||
         name == kWrTtl) &&
        empty) {
      continue;
    }
    if (name == "price") {
      std::optional<Cents> c = ParsePrice(value);
      if (!c) return Bad(where, "'price' must be a number >= 0 with at most 2 decimals");
      p.price = *c;
      continue;
    }
    std::optional<std::int64_t> v = ParseInt64(value);
    if (!v) return Bad(where, "'" + name + "' must be an integer");
    if (name == "product_id") {
      if (*v <= 0) return Bad(where, "'product_id' must be > 0");
      p.id = *v;
    } else if (name == "stock") {
      if (*v < 0) return Bad(where, "'stock' must be >= 0");
      p.stock = *v;
    } else if (name == "payment_window_s") {
      if (*v < 1 || *v > http::kMaxPaymentWindowS) {
        return Bad(where, "'payment_window_s' must be 1.." +
                              std::to_string(http::kMaxPaymentWindowS) + " seconds, or null");
      }
      p.payment_window_s = *v;
    } else if (name == kWrAdmit || name == kWrTtl) {
      const bool admit = name == kWrAdmit;
      const std::int64_t max = admit ? kMaxAdmitPerS : kMaxPassTtlS;
      if (*v < 1 || *v > max) {
        return Bad(where, "'" + name + "' must be 1.." + std::to_string(max));
      }
      (admit ? admit_per_s : pass_ttl_s) = *v;
    } else {
      if (*v < 1) return Bad(where, "'limit_per_user' must be >= 1");
      p.limit_per_user = *v;
    }
  }
  for (const char* required : {"product_id", "price", "stock"}) {
    if (!seen.contains(required)) return Bad(where, std::string("missing '") + required + "'");
  }
  if (admit_per_s.has_value() != pass_ttl_s.has_value()) {
    return Bad(where, std::string("a waiting room needs both '") + kWrAdmit + "' and '" + kWrTtl +
                          "' (or neither)");
  }
  if (admit_per_s) {
    p.waiting_room = WaitingRoom{.admit_per_s = *admit_per_s, .pass_ttl_s = *pass_ttl_s};
  }
  if (p.starts_at && p.ends_at && *p.ends_at <= *p.starts_at) {
    return Bad(where, "'ends_at' must be after 'starts_at'");
  }
  return p;
}

}  // namespace

Result<std::vector<Product>> ParseCatalogJson(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value doc =
      boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
  if (ec) return Status::Invalid("catalog is not valid JSON: " + ec.message());
  if (!doc.is_array()) return Status::Invalid("catalog must be a JSON array of products");
  std::vector<Product> out;
  std::set<ProductId> ids;
  std::size_t index = 0;
  for (const boost::json::value& entry : doc.as_array()) {
    const std::string where = "entry " + std::to_string(index++);
    if (!entry.is_object()) return Bad(where, "must be an object");
    std::vector<std::pair<std::string, std::string>> fields;
    std::set<std::string> nulls;
    for (const auto& kv : entry.as_object()) {
      const std::string name(kv.key());
      const boost::json::value& v = kv.value();
      if (name == kWrAdmit || name == kWrTtl) {
        return Bad(where, "unknown field '" + name + "' (JSON uses \"waiting_room\": {...})");
      }
      if (name == "waiting_room") {
        if (Status st = FlattenWaitingRoom(where, v, fields); !st.ok()) return st;
      } else if (v.is_string()) {
        if (name != "starts_at" && name != "ends_at") {
          return Bad(where, "'" + name + "' must be a number, not a string");
        }
        fields.emplace_back(name, std::string(v.as_string()));
      } else if (v.is_null()) {
        nulls.insert(name);
        fields.emplace_back(name, "");
      } else if (v.is_int64()) {
        fields.emplace_back(name, std::to_string(v.as_int64()));
      } else if (v.is_double() && name == "price") {
        const double cents = std::round(v.as_double() * 100);
        if (v.as_double() < 0 || std::fabs(v.as_double() * 100 - cents) > 1e-6 || cents > 9e15) {
          return Bad(where, "'price' must be a number >= 0 with at most 2 decimals");
        }
        fields.emplace_back(name, FormatPrice(static_cast<Cents>(cents)));
      } else {
        return Bad(where, "'" + name + "' has the wrong type");
      }
    }
    Result<Product> p = MakeProduct(where, fields, nulls);
    if (!p) return p.error();
    if (!ids.insert(p->id).second)
      return Bad(where, "duplicate product_id " + std::to_string(p->id));
    out.push_back(*p);
  }
  return out;
}

Result<std::vector<Product>> ParseCatalogCsv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream ls(line);
    while (std::getline(ls, cell, ',')) {
      const std::size_t a = cell.find_first_not_of(" \t\"");
      const std::size_t b = cell.find_last_not_of(" \t\"");
      cells.push_back(a == std::string::npos ? "" : cell.substr(a, b - a + 1));
    }
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(std::move(cells));
  }
  if (rows.empty()) return Status::Invalid("catalog CSV is empty (expected a header row)");
  const std::vector<std::string>& header = rows.front();
  std::vector<Product> out;
  std::set<ProductId> ids;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const std::string where = "line " + std::to_string(r + 1);
    if (rows[r].size() != header.size()) {
      return Bad(where, "has " + std::to_string(rows[r].size()) + " cells, the header has " +
                            std::to_string(header.size()));
    }
    std::vector<std::pair<std::string, std::string>> fields;
    for (std::size_t c = 0; c < header.size(); ++c) fields.emplace_back(header[c], rows[r][c]);
    Result<Product> p = MakeProduct(where, fields, {});
    if (!p) return p.error();
    if (!ids.insert(p->id).second)
      return Bad(where, "duplicate product_id " + std::to_string(p->id));
    out.push_back(*p);
  }
  return out;
}

Result<std::vector<Product>> ReadCatalogFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read catalog file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const std::size_t first = text.find_first_not_of(" \t\r\n");
  if (path.ends_with(".csv") || (first != std::string::npos && text[first] != '[')) {
    return ParseCatalogCsv(text);
  }
  return ParseCatalogJson(text);
}

}  // namespace flashsale::app
