#pragma once
// Appends HTTP/1.1 responses to a connection's output buffer (reused across
// requests, so a steady connection allocates nothing). Thread-compatible.

#include <string>
#include <string_view>

namespace flashsale::http {

inline constexpr std::string_view kJson = "application/json";

struct ResponseHead {
  int status = 200;
  std::string_view content_type = kJson;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
  bool keep_alive = true;
};

void AppendResponse(std::string& out, const ResponseHead& head, std::string_view body);
std::string_view ReasonPhrase(int status);

// HTTP/1.0 clients keep a connection only when the reply says so: adds
// "Connection: keep-alive" to the response that starts at `response_start`.
void AddKeepAliveHeader(std::string& out, std::size_t response_start);

// {"code":<status>,"message":<m>,"data":null,"status":<s>} (SPEC §4 errors).
std::string ErrorBody(int code, std::string_view message, std::string_view status);

}  // namespace flashsale::http
