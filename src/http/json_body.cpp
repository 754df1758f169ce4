#include "http/json_body.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include "core/domain.hpp"

namespace flashsale::http {

// Collects the top-level fields of one JSON object, and the members of objects
// given as top-level values (one level only: deeper values just mark their
// member as an object or array). Arrays' elements are never recorded.
//
// Hot path: a flat body (the purchase) only ever takes the `depth == 1`
// branches, which come first; member bookkeeping costs it nothing but the
// Reset of three scalars.
struct JsonBodyReader::Handler {
  static constexpr std::size_t max_object_size = 64;
  static constexpr std::size_t max_array_size = 1024;
  static constexpr std::size_t max_key_size = 256;
  static constexpr std::size_t max_string_size = 4096;
  static constexpr std::size_t kNoParent = kMaxFields;
  static constexpr std::size_t kMaxMembers = 8;  // over all objects of one body

  std::array<JsonField, kMaxFields> fields;
  std::size_t count = 0;
  bool too_many = false;
  bool top_is_object = false;
  std::string duplicate;  // first duplicated key, if any
  int depth = 0;
  std::string key;     // key being assembled at depth 1
  std::string buffer;  // number or string text being assembled

  // Members of the object value of fields[parent] (parent == kNoParent: not
  // inside an object value, or its field was dropped as a duplicate or extra).
  std::size_t parent = kNoParent;
  std::array<JsonField, kMaxMembers> members;
  std::array<std::size_t, kMaxMembers> member_parent{};
  std::size_t member_count = 0;
  std::array<bool, kMaxFields> members_dropped{};   // by parent: past kMaxMembers
  std::size_t duplicate_member_parent = kNoParent;  // first duplicated member, if any
  std::string duplicate_member;
  std::string member_key;  // key being assembled at depth 2

  void Reset() {
    count = 0;
    too_many = false;
    top_is_object = false;
    duplicate.clear();
    depth = 0;
    key.clear();
    buffer.clear();
    parent = kNoParent;
    if (member_count != 0 || duplicate_member_parent != kNoParent) ResetMembers();
  }
  void ResetMembers() {
    member_count = 0;
    members_dropped = {};
    duplicate_member_parent = kNoParent;
    duplicate_member.clear();
  }
  // Inside the object value of a recorded field, where its members are.
  bool InMembers() const { return depth == 2 && parent != kNoParent; }

  // A value at depth 1 completes a field.
  JsonField* NewField() {
    if (depth != 1) return InMembers() ? NewMember() : nullptr;
    for (std::size_t i = 0; i < count; ++i) {
      if (fields[i].key == key) {
        if (duplicate.empty()) duplicate = key;
        return nullptr;
      }
    }
    if (count == kMaxFields) {
      too_many = true;
      return nullptr;
    }
    JsonField& f = fields[count++];
    f.key = key;
    f.text.clear();
    f.int_value = 0;
    return &f;
  }
  // A value at depth 2 of a recorded object completes a member.
  JsonField* NewMember() {
    for (std::size_t i = 0; i < member_count; ++i) {
      if (member_parent[i] == parent && members[i].key == member_key) {
        if (duplicate_member_parent == kNoParent) {
          duplicate_member_parent = parent;
          duplicate_member = member_key;
        }
        return nullptr;
      }
    }
    if (member_count == kMaxMembers) {
      members_dropped[parent] = true;
      return nullptr;
    }
    member_parent[member_count] = parent;
    JsonField& m = members[member_count++];
    m.key = member_key;
    m.text.clear();
    m.int_value = 0;
    return &m;
  }
  void Scalar(JsonKind kind, std::int64_t v, std::string_view text) {
    if (JsonField* f = NewField()) {
      f->kind = kind;
      f->int_value = v;
      f->text.assign(text);
    }
  }
  bool Collecting() const { return depth == 1 || InMembers(); }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) {
    if (Collecting()) Scalar(JsonKind::kArray, 0, {});
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_object_begin(boost::system::error_code&) {
    if (depth == 0) top_is_object = true;
    if (depth == 1) {
      const std::size_t before = count;
      Scalar(JsonKind::kObject, 0, {});
      parent = count != before ? count - 1 : kNoParent;
    } else if (InMembers()) {
      Scalar(JsonKind::kObject, 0, {});
    }
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    if (--depth == 1) parent = kNoParent;
    return true;
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (Collecting()) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (Collecting()) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kString, 0, buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (Collecting()) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (Collecting()) {
      buffer.append(s.data(), s.size());
      (depth == 1 ? key : member_key).assign(buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_number_part(boost::json::string_view s, boost::system::error_code&) {
    if (Collecting()) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t v, boost::json::string_view s, boost::system::error_code&) {
    if (Collecting()) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kInt, v, buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_uint64(std::uint64_t, boost::json::string_view s, boost::system::error_code&) {
    if (Collecting()) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kUint, 0, buffer);  // above int64: always out of range here
    }
    buffer.clear();
    return true;
  }
  bool on_double(double, boost::json::string_view s, boost::system::error_code&) {
    if (Collecting()) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kDouble, 0, buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_bool(bool, boost::system::error_code&) {
    Scalar(JsonKind::kBool, 0, {});
    return true;
  }
  bool on_null(boost::system::error_code&) {
    Scalar(JsonKind::kNull, 0, {});
    return true;
  }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

struct JsonBodyReader::Impl {
  Impl() : parser(boost::json::parse_options{}) {}
  boost::json::basic_parser<Handler> parser;
};

JsonBodyReader::JsonBodyReader() : impl_(std::make_shared<Impl>()) {}

namespace {

const char* KindName(JsonKind k) {
  switch (k) {
    case JsonKind::kNull:
      return "null";
    case JsonKind::kBool:
      return "bool";
    case JsonKind::kInt:
    case JsonKind::kUint:
    case JsonKind::kDouble:
      return "number";
    case JsonKind::kString:
      return "string";
    case JsonKind::kObject:
      return "object";
    case JsonKind::kArray:
      return "array";
  }
  return "value";
}

// The error for `f`, or for member `f` of the object field `parent`.
FieldError ErrorAt(const JsonField& f, const std::string* parent, std::string msg,
                   const char* type) {
  if (parent == nullptr) return {f.key, std::move(msg), type};
  return {*parent, std::move(msg), type, "body", f.key};
}

void ValidateInt(const JsonField& f, const FieldSpec& spec, std::optional<std::int64_t>& slot,
                 std::vector<FieldError>& errors, const std::string* parent = nullptr) {
  if (f.kind == JsonKind::kUint) {
    errors.push_back(ErrorAt(f, parent,
                             "Input should be a valid integer, value is outside the int64 range",
                             "int_range"));
    return;
  }
  if (f.kind == JsonKind::kDouble) {
    const bool big = f.text.find_first_of(".eE") == std::string::npos;  // integer text past int64
    errors.push_back(ErrorAt(f, parent,
                             big ? "Input should be a valid integer, value is outside the int64 "
                                   "range"
                                 : "Input should be a valid integer, got a number with a "
                                   "fractional part or an exponent",
                             big ? "int_range" : "int_from_float"));
    return;
  }
  if (f.kind != JsonKind::kInt) {
    errors.push_back(
        ErrorAt(f, parent, std::string("Input should be a valid integer, got ") + KindName(f.kind),
                "int_type"));
    return;
  }
  if (spec.min && f.int_value < *spec.min) {
    errors.push_back(
        ErrorAt(f, parent, "Input should be greater than or equal to " + std::to_string(*spec.min),
                "greater_than_equal"));
    return;
  }
  if (spec.max && f.int_value > *spec.max) {
    errors.push_back(ErrorAt(f, parent,
                             "Input should be less than or equal to " + std::to_string(*spec.max),
                             "less_than_equal"));
    return;
  }
  slot = f.int_value;
}

void ValidateString(const JsonField& f, const FieldSpec& spec, std::size_t index, BodyValues& out,
                    std::vector<FieldError>& errors) {
  if (f.kind != JsonKind::kString) {
    errors.push_back({f.key, "Input should be a valid string", "string_type"});
    return;
  }
  if (f.text.empty()) {
    errors.push_back({f.key, "String should have at least 1 character", "string_too_short"});
    return;
  }
  if (spec.max && static_cast<std::int64_t>(f.text.size()) > *spec.max) {
    errors.push_back({f.key, "String should have at most " + std::to_string(*spec.max) + " bytes",
                      "string_too_long"});
    return;
  }
  out.strings[index] = f.text;
}

void ValidatePrice(const JsonField& f, std::size_t index, BodyValues& out,
                   std::vector<FieldError>& errors) {
  if (f.kind != JsonKind::kInt && f.kind != JsonKind::kDouble && f.kind != JsonKind::kUint) {
    errors.push_back({f.key, "Input should be a valid number", "float_type"});
    return;
  }
  std::optional<Cents> cents = ParsePrice(f.text);
  if (!cents) {
    errors.push_back({f.key,
                      f.text.starts_with('-')
                          ? "Input should be greater than or equal to 0"
                          : "Input should be a number >= 0 with at most 2 decimal places",
                      f.text.starts_with('-') ? "greater_than_equal" : "decimal_max_places"});
    return;
  }
  out.ints[index] = *cents;
}

void ValidateTimestamp(const JsonField& f, std::size_t index, BodyValues& out,
                       std::vector<FieldError>& errors) {
  if (f.kind == JsonKind::kNull) return;  // open-ended
  std::optional<UnixMillis> t;
  if (f.kind == JsonKind::kString) t = ParseRfc3339(f.text);
  if (!t) {
    errors.push_back(
        {f.key, "Input should be an RFC 3339 date-time string or null", "datetime_parsing"});
    return;
  }
  out.ints[index] = *t;
}

}  // namespace

// The members of fields[field] against spec.members, in body order; then the
// missing ones. Values land in out.members.
void JsonBodyReader::ValidateObject(const Handler& h, std::size_t field, const FieldSpec& spec,
                                    BodyValues& out, std::vector<FieldError>& errors) {
  const JsonField& f = h.fields[field];
  if (f.kind == JsonKind::kNull) return;
  if (f.kind != JsonKind::kObject) {
    errors.push_back({f.key, "Input should be a valid dictionary or object", "model_type"});
    return;
  }
  out.object_given = true;
  if (h.duplicate_member_parent == field) {
    errors.push_back(
        {f.key, "Duplicate key in JSON object", "duplicate_key", "body", h.duplicate_member});
  }
  if (h.members_dropped[field]) errors.push_back({f.key, "Too many fields", "extra_forbidden"});
  std::array<bool, BodyValues::kMaxMembers> seen{};
  for (std::size_t i = 0; i < h.member_count; ++i) {
    if (h.member_parent[i] != field) continue;
    const JsonField& m = h.members[i];
    std::size_t index = spec.members.size();
    for (std::size_t s = 0; s < spec.members.size(); ++s) {
      if (spec.members[s].name == m.key) index = s;
    }
    if (index == spec.members.size()) {
      errors.push_back({f.key, "Extra inputs are not permitted", "extra_forbidden", "body", m.key});
      continue;
    }
    seen[index] = true;
    ValidateInt(m, spec.members[index], out.members[index], errors, &f.key);
  }
  for (std::size_t s = 0; s < spec.members.size(); ++s) {
    if (spec.members[s].required && !seen[s]) {
      errors.push_back(
          {f.key, "Field required", "missing", "body", std::string(spec.members[s].name)});
    }
  }
}

bool JsonBodyReader::Read(std::string_view body, std::span<const FieldSpec> spec, BodyValues& out,
                          std::vector<FieldError>& errors) {
  out = BodyValues{};
  auto& parser = impl_->parser;
  parser.reset();
  Handler& h = parser.handler();
  h.Reset();
  boost::system::error_code ec;
  const std::size_t n = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || n != body.size() || !parser.done()) {
    errors.push_back({"",
                      "JSON decode error: " + (ec ? ec.message() : std::string("trailing data")),
                      "json_invalid"});
    return false;
  }
  if (!h.top_is_object) {
    errors.push_back({"", "Input should be a valid dictionary or object to extract fields from",
                      "model_attributes_type"});
    return false;
  }
  if (!h.duplicate.empty()) {
    errors.push_back({h.duplicate, "Duplicate key in JSON object", "duplicate_key"});
  }
  if (h.too_many) errors.push_back({"", "Too many fields", "extra_forbidden"});
  for (std::size_t i = 0; i < h.count; ++i) {
    const JsonField& f = h.fields[i];
    std::size_t index = spec.size();
    for (std::size_t s = 0; s < spec.size(); ++s) {
      if (spec[s].name == f.key) index = s;
    }
    if (index == spec.size()) {
      errors.push_back({f.key, "Extra inputs are not permitted", "extra_forbidden"});
      continue;
    }
    out.present[index] = true;
    switch (spec[index].type) {
      case FieldType::kInt:
        ValidateInt(f, spec[index], out.ints[index], errors);
        break;
      case FieldType::kPrice:
        ValidatePrice(f, index, out, errors);
        break;
      case FieldType::kTimestampOrNull:
        ValidateTimestamp(f, index, out, errors);
        break;
      case FieldType::kIntOrNull:
        if (f.kind != JsonKind::kNull) ValidateInt(f, spec[index], out.ints[index], errors);
        break;
      case FieldType::kString:
        ValidateString(f, spec[index], index, out, errors);
        break;
      case FieldType::kObjectOrNull:
        ValidateObject(h, i, spec[index], out, errors);
        break;
    }
  }
  for (std::size_t s = 0; s < spec.size(); ++s) {
    if (spec[s].required && !out.present[s]) {
      errors.push_back({std::string(spec[s].name), "Field required", "missing"});
    }
  }
  return errors.empty();
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out.append("\\u00");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

std::string RenderValidationErrors(const std::vector<FieldError>& errors) {
  std::string out = R"({"detail":[)";
  for (std::size_t i = 0; i < errors.size(); ++i) {
    const FieldError& e = errors[i];
    if (i > 0) out.push_back(',');
    out.append(R"({"loc":[)");
    AppendJsonString(out, e.root);
    if (!e.field.empty()) {
      out.push_back(',');
      AppendJsonString(out, e.field);
    }
    if (!e.member.empty()) {
      out.push_back(',');
      AppendJsonString(out, e.member);
    }
    out.append(R"(],"msg":)");
    AppendJsonString(out, e.msg);
    out.append(R"(,"type":)");
    AppendJsonString(out, e.type);
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

}  // namespace flashsale::http
