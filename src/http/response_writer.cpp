#include "http/response_writer.hpp"

#include "core/numbers.hpp"
#include "http/json_body.hpp"

namespace flashsale::http {

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void AppendResponse(std::string& out, const ResponseHead& head, std::string_view body) {
  out.append("HTTP/1.1 ");
  AppendInt(out, head.status);
  out.push_back(' ');
  out.append(ReasonPhrase(head.status));
  out.append("\r\nContent-Type: ");
  out.append(head.content_type);
  out.append("\r\nContent-Length: ");
  AppendInt(out, static_cast<std::int64_t>(body.size()));
  out.append(head.keep_alive ? "\r\n" : "\r\nConnection: close\r\n");
  out.append(head.extra_headers);
  out.append("\r\n");
  out.append(body);
}

void AddKeepAliveHeader(std::string& out, std::size_t response_start) {
  const std::size_t status_line_end = out.find("\r\n", response_start);
  if (status_line_end == std::string::npos) return;
  out.insert(status_line_end + 2, "Connection: keep-alive\r\n");
}

std::string ErrorBody(int code, std::string_view message, std::string_view status) {
  std::string out = "{\"code\":" + std::to_string(code) + ",\"message\":";
  AppendJsonString(out, message);
  out.append(",\"data\":null,\"status\":");
  AppendJsonString(out, status);
  out.push_back('}');
  return out;
}

}  // namespace flashsale::http
