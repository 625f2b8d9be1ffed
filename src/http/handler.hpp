#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/byte_sink.hpp"

namespace sluice {

using Headers = std::vector<std::pair<std::string, std::string>>;

// A request as handlers see it: Beast-free, with the target already split and decoded.
struct HttpRequest {
  std::string method;                                   // "GET", "HEAD", ...
  std::string target;                                   // raw request target
  bool target_ok = true;                                // false: malformed (answered 400)
  std::vector<std::string> segments;                    // decoded path segments
  std::vector<std::pair<std::string, std::string>> params;  // decoded query parameters
  Headers headers;
  std::string body;
  std::string request_id;
  std::string remote;  // the client's address, "127.0.0.1:51234"
  int version = 11;    // HTTP/1.1 = 11, HTTP/1.0 = 10

  // The value of header `name` (case-insensitive), or "" when absent.
  std::string_view header(std::string_view name) const;
  // Whether a comma-separated list header (every field named `name`) holds `token`, compared
  // case-insensitively and ignoring parameters: has_token("TE", "trailers").
  bool has_token(std::string_view name, std::string_view token) const;
};

// How a handler answers. Either send() once, or start_stream() once and then write the body
// through the returned sink. Every response carries X-Request-Id.
// Not thread-safe: used by the one coroutine that handles the request.
class HttpResponder {
 public:
  virtual ~HttpResponder() = default;
  virtual boost::asio::awaitable<void> send(int status, Headers headers, std::string body) = 0;
  // Sends the status and headers of a chunked response; the sink writes its chunks and
  // finish() writes the last chunk. After a failure the caller must call abort().
  virtual boost::asio::awaitable<ByteSink*> start_stream(int status, Headers headers) = 0;
  // Sends the status and headers of a response whose body is exactly `content_length` bytes,
  // written through the returned sink (no chunked encoding: for Range/Content-Length
  // downloads). finish() throws if fewer bytes were written; so does a write past the length.
  // For HEAD requests the sink discards the body.
  virtual boost::asio::awaitable<ByteSink*> start_body(int status, Headers headers,
                                                      std::uint64_t content_length) = 0;
  // Ends a started stream without its last chunk and closes the connection, so the client
  // sees a truncated transfer rather than a short file that looks whole (an HTTP/1.0 body,
  // which ends at the close, is reset instead). `reason`, in plain words, goes to the access
  // log; what the responder saw itself (the client left, a write timed out, shutdown) wins.
  virtual void abort(std::string_view reason = {}) noexcept = 0;
  virtual bool started() const = 0;
  // What went out so far, for the access log: the status (0 before any), the body bytes the
  // socket took, and why the transfer was cut ("" when it was not).
  virtual int status() const { return 0; }
  virtual std::uint64_t body_bytes() const { return 0; }
  virtual std::string_view abort_reason() const { return {}; }
  // Whether a stream may end with trailer fields: an HTTP/1.1 chunked response to a request
  // whose TE header lists "trailers" (RFC 9110 6.5.1, 10.1.4).
  virtual bool trailers_accepted() const { return false; }
  // Fields that the stream's finish() sends after the last chunk; name them in a `Trailer`
  // header of start_stream(). Ignored unless trailers_accepted().
  virtual void set_trailers(const Headers& /*trailers*/) {}

  // Whether the client closed its side while the response was being produced. Noticed even
  // while no byte is written (a query that has not found its first row yet): the session then
  // cancels the handler's coroutine, so whatever it awaits fails with operation_aborted and its
  // destructors stop the database work.
  virtual bool client_gone() const = 0;

  // A JSON error body as in DESIGN.md.
  boost::asio::awaitable<void> send_error(int status, std::string_view code,
                                          std::string_view message, std::string_view request_id,
                                          Headers extra = {});
};

using Handler = std::function<boost::asio::awaitable<void>(const HttpRequest&, HttpResponder&)>;

// A failure in plain words for HttpResponder::abort(): a system error's message without Boost's
// source location ("Connection reset by peer"), "cancelled" for a cancelled coroutine, else
// what().
std::string describe_failure(const std::exception& error);

// {"error": {"code": ..., "message": ..., "request_id": ...}}
std::string json_error_body(std::string_view code, std::string_view message,
                            std::string_view request_id,
                            const std::vector<std::pair<std::string, std::string>>& fields = {});

}  // namespace sluice
