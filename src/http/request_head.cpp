#include "http/request_head.hpp"

#include <boost/url/parse.hpp>

#include "http/handler.hpp"

namespace sluice {

std::size_t request_head_end(std::string_view received) {
  std::size_t start = 0;
  while (start < received.size() && (received[start] == '\r' || received[start] == '\n')) ++start;
  const std::size_t blank = received.find("\r\n\r\n", start);
  return blank == std::string_view::npos ? std::string_view::npos : blank + 4;
}

std::optional<std::string> raw_head_problem(std::string_view head) {
  // A line that begins with SP or HTAB continues the field before it (obs-fold): refused, as a
  // server may (RFC 9112 5.2), since intermediaries disagree on what it means.
  for (std::size_t at = head.find('\n'); at != std::string_view::npos && at + 1 < head.size();
       at = head.find('\n', at + 1)) {
    const char next = head[at + 1];
    if (next == ' ' || next == '\t') {
      return "a header field folded over two lines (obs-fold) is not accepted";
    }
  }
  return std::nullopt;
}

std::optional<std::string> framing_problem(const RequestFraming& framing) {
  if (framing.transfer_encodings > 0 && framing.version < 11) {
    return "Transfer-Encoding is not defined for HTTP/1.0";
  }
  if (framing.transfer_encodings > 0 && !framing.chunked) {
    return "Transfer-Encoding must end with chunked";
  }
  if (framing.host_fields > 1) return "more than one Host header";
  if (framing.host_fields == 0 && framing.version >= 11) return "an HTTP/1.1 request needs a Host header";
  return std::nullopt;
}

bool parse_target(HttpRequest& request) {
  auto take = [&](auto&& url) {
    boost::urls::encoding_opts options;
    options.space_as_plus = true;
    for (auto segment : url.segments()) request.segments.emplace_back(segment);
    for (auto param : url.params(options)) {
      request.params.emplace_back(param.key, param.has_value ? param.value : std::string());
    }
  };
  if (auto origin = boost::urls::parse_origin_form(request.target)) {
    take(*origin);
    return true;
  }
  auto absolute = boost::urls::parse_absolute_uri(request.target);
  if (!absolute || (absolute->scheme() != "http" && absolute->scheme() != "https")) return false;
  take(*absolute);
  return true;
}

}  // namespace sluice
