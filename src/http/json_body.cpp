#include "http/json_body.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include "core/domain.hpp"

namespace flashsale::http {

// Collects the top-level fields of one JSON object. Nested values only mark
// their field as an object or array (they are always invalid here).
struct JsonBodyReader::Handler {
  static constexpr std::size_t max_object_size = 64;
  static constexpr std::size_t max_array_size = 1024;
  static constexpr std::size_t max_key_size = 256;
  static constexpr std::size_t max_string_size = 4096;

  std::array<JsonField, kMaxFields> fields;
  std::size_t count = 0;
  bool too_many = false;
  bool top_is_object = false;
  std::string duplicate;  // first duplicated key, if any
  int depth = 0;
  std::string key;     // key being assembled at depth 1
  std::string buffer;  // number or string text being assembled

  void Reset() {
    count = 0;
    too_many = false;
    top_is_object = false;
    duplicate.clear();
    depth = 0;
    key.clear();
    buffer.clear();
  }

  // A value at depth 1 completes a field.
  JsonField* NewField() {
    if (depth != 1) return nullptr;
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
  void Scalar(JsonKind kind, std::int64_t v, std::string_view text) {
    if (JsonField* f = NewField()) {
      f->kind = kind;
      f->int_value = v;
      f->text.assign(text);
    }
  }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) {
    if (depth == 1) Scalar(JsonKind::kArray, 0, {});
    ++depth;
    return true;
  }
  bool on_array_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_object_begin(boost::system::error_code&) {
    if (depth == 0) top_is_object = true;
    if (depth == 1) Scalar(JsonKind::kObject, 0, {});
    ++depth;
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    --depth;
    return true;
  }
  bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kString, 0, buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    if (depth == 1) {
      buffer.append(s.data(), s.size());
      key.assign(buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_number_part(boost::json::string_view s, boost::system::error_code&) {
    if (depth == 1) buffer.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t v, boost::json::string_view s, boost::system::error_code&) {
    if (depth == 1) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kInt, v, buffer);
    }
    buffer.clear();
    return true;
  }
  bool on_uint64(std::uint64_t, boost::json::string_view s, boost::system::error_code&) {
    if (depth == 1) {
      buffer.append(s.data(), s.size());
      Scalar(JsonKind::kUint, 0, buffer);  // above int64: always out of range here
    }
    buffer.clear();
    return true;
  }
  bool on_double(double, boost::json::string_view s, boost::system::error_code&) {
    if (depth == 1) {
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

void ValidateInt(const JsonField& f, const FieldSpec& spec, std::size_t index, BodyValues& out,
                 std::vector<FieldError>& errors) {
  if (f.kind == JsonKind::kUint) {
    errors.push_back(
        {f.key, "Input should be a valid integer, value is outside the int64 range", "int_range"});
    return;
  }
  if (f.kind == JsonKind::kDouble) {
    const bool big = f.text.find_first_of(".eE") == std::string::npos;  // integer text past int64
    errors.push_back({f.key,
                      big ? "Input should be a valid integer, value is outside the int64 range"
                          : "Input should be a valid integer, got a number with a fractional part "
                            "or an exponent",
                      big ? "int_range" : "int_from_float"});
    return;
  }
  if (f.kind != JsonKind::kInt) {
    errors.push_back({f.key,
                      std::string("Input should be a valid integer, got ") + KindName(f.kind),
                      "int_type"});
    return;
  }
  if (spec.min && f.int_value < *spec.min) {
    errors.push_back({f.key,
                      "Input should be greater than or equal to " + std::to_string(*spec.min),
                      "greater_than_equal"});
    return;
  }
  if (spec.max && f.int_value > *spec.max) {
    errors.push_back({f.key, "Input should be less than or equal to " + std::to_string(*spec.max),
                      "less_than_equal"});
    return;
  }
  out.ints[index] = f.int_value;
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
        ValidateInt(f, spec[index], index, out, errors);
        break;
      case FieldType::kPrice:
        ValidatePrice(f, index, out, errors);
        break;
      case FieldType::kTimestampOrNull:
        ValidateTimestamp(f, index, out, errors);
        break;
      case FieldType::kIntOrNull:
        if (f.kind != JsonKind::kNull) ValidateInt(f, spec[index], index, out, errors);
        break;
      case FieldType::kString:
        ValidateString(f, spec[index], index, out, errors);
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
