#pragma once
// Strict JSON request bodies (SPEC §4): one JSON object in UTF-8; integers are
// JSON integers within int64 only (no strings, booleans, floats, exponents);
// duplicate keys, unknown fields and missing fields are errors. Errors come
// out in FastAPI's 422 shape, naming each bad field.
//
// Parsing is a SAX pass (Boost.JSON basic_parser) into a fixed table of
// top-level fields, so a valid purchase body is read without building a DOM
// or allocating. Thread-compatible: use one JsonBodyReader per thread.

#include <boost/json/basic_parser.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flashsale::http {

// One entry of FastAPI's {"detail": [...]}.
struct FieldError {
  std::string field;  // empty: the body as a whole (loc ["body"])
  std::string msg;
  std::string type;
  std::string root = "body";  // "body", "header", "path" or "query"
  std::string member;         // a member of `field`'s object: loc ["body", field, member]
};

enum class JsonKind { kNull, kBool, kInt, kUint, kDouble, kString, kObject, kArray };

struct JsonField {
  std::string key;
  JsonKind kind = JsonKind::kNull;
  std::int64_t int_value = 0;
  std::string text;  // the number's text, or the string's value
};

// What a body must contain. Strict: anything else is an error.
enum class FieldType {
  kInt,              // JSON integer within int64
  kPrice,            // JSON number >= 0 with at most 2 decimals
  kTimestampOrNull,  // RFC 3339 string or null
  kIntOrNull,        // JSON integer within [min, max], or null (absent value)
  kString,           // JSON string of 1..max bytes
  kObjectOrNull,     // JSON object of `members` (kInt only, one level), or null
};
struct FieldSpec {
  std::string_view name;
  FieldType type = FieldType::kInt;
  bool required = true;
  std::optional<std::int64_t> min;  // inclusive lower bound for kInt, kIntOrNull
  std::optional<std::int64_t> max;  // inclusive upper bound; kString: its length
  // kObjectOrNull: the object's members (strict like the body: unknown,
  // duplicate and missing members are errors). At most one kObjectOrNull field
  // per spec, with at most kMaxMembers members.
  std::span<const FieldSpec> members = {};
};

// Values of a validated body, by the index of their FieldSpec.
struct BodyValues {
  static constexpr std::size_t kMaxMembers = 4;
  std::array<std::optional<std::int64_t>, 8> ints{};  // kInt, kPrice (cents), kTimestamp (ms)
  std::array<std::string, 8> strings{};               // kString
  std::array<bool, 8> present{};
  // The kObjectOrNull field: true when it was an object (not null or absent);
  // then its members' values are in `members`, by the index of their FieldSpec.
  bool object_given = false;
  std::array<std::optional<std::int64_t>, kMaxMembers> members{};
};

class JsonBodyReader {
 public:
  JsonBodyReader();
  // Parses and validates `body` against `spec`. Returns the errors (empty when
  // valid); on success `out` holds the values.
  bool Read(std::string_view body, std::span<const FieldSpec> spec, BodyValues& out,
            std::vector<FieldError>& errors);

  static constexpr std::size_t kMaxFields = 16;

 private:
  struct Handler;  // the SAX handler (json_body.cpp)
  struct Impl;
  static void ValidateObject(const Handler& h, std::size_t field, const FieldSpec& spec,
                             BodyValues& out, std::vector<FieldError>& errors);
  std::shared_ptr<Impl> impl_;
};

// Renders FastAPI's 422 body: {"detail":[{"loc":["body","f"],"msg":..,"type":..}]}.
std::string RenderValidationErrors(const std::vector<FieldError>& errors);

// Appends `s` as a JSON string literal (quotes included).
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace flashsale::http
