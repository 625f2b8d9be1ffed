#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3/s3_client.hpp"
#include "s3/s3_connection.hpp"

namespace sluice {

// One S3 request as the client describes it, before signing.
struct S3Call {
  const char* action = "";  // for messages: "PutObject", "ListObjectsV2", ...
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string path;  // unencoded (s3_object_path / s3_bucket_path)
  std::vector<S3QueryParam> query;
  std::vector<S3Header> headers;  // signed and sent
  std::string_view body;          // REQUIRES: valid until the call completes (retries resend it)
  // Retried on connection errors, 5xx, 429 and SlowDown. Every S3 call Sluice makes is safe
  // to repeat (PUT replaces, DELETE of nothing succeeds, a repeated initiate leaves an upload
  // that nothing references... see S3Client), so this is true unless a caller says otherwise.
  bool retry = true;
};

// An answer whose head was read; the body is still on the connection.
struct S3Answer {
  std::unique_ptr<S3Connection> connection;
  std::unique_ptr<S3HttpParser> parser;
  unsigned status() const { return parser->get().result_int(); }
  std::string header(std::string_view name) const;
};

// The shared state of an S3Client: endpoint, credentials, the TLS context, the pool of idle
// connections (per executor) and the retry loop. Thread-safe.
struct S3Client::Impl : std::enable_shared_from_this<S3Client::Impl> {
  Impl(S3Endpoint endpoint, S3Credentials credentials, S3ClientOptions options);
  ~Impl() { close_idle(); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Sends `call` (signed anew for each attempt) until an answer that is not to be retried
  // arrives: a 2xx/3xx/4xx answer, or the last attempt's 5xx. Throws S3Error when no answer
  // came on the last attempt.
  boost::asio::awaitable<S3Answer> send(const S3Call& call);
  // send(), then the whole body (at most max_body bytes); throws S3Error for any status
  // outside 2xx, with S3's code and message. `allow` lists further statuses to return (404).
  struct Reply {
    unsigned status = 0;
    std::string body;
    S3Answer answer;  // connection already returned to the pool; for its headers
  };
  boost::asio::awaitable<Reply> exchange(const S3Call& call, std::size_t max_body,
                                         std::vector<unsigned> allow = {});
  // Reads the rest of the body (at most max_body) and gives the connection back when it can
  // carry another request.
  boost::asio::awaitable<std::string> read_all(S3Answer& answer, std::size_t max_body);
  void release(std::unique_ptr<S3Connection> connection);
  void close_idle() noexcept;

  // An S3Error for an answer outside 2xx, from its status and <Error> body.
  S3Error error_of(const S3Call& call, unsigned status, std::string_view body) const;

  const S3Endpoint endpoint;
  const S3Credentials credentials;
  const S3ClientOptions options;
  std::function<std::chrono::system_clock::time_point()> clock;

 private:
  // An idle connection of this executor (`reused` says so), or a new one; always a new one
  // with `fresh`.
  boost::asio::awaitable<std::unique_ptr<S3Connection>> acquire(bool& reused, bool fresh);
  S3HttpRequest build(const S3Call& call) const;
  boost::asio::awaitable<void> back_off(int attempt);

  std::optional<boost::asio::ssl::context> tls_;
  std::mutex mutex_;  // guards idle_
  std::vector<std::unique_ptr<S3Connection>> idle_;
};

// True for answers worth another attempt: 5xx, 429, SlowDown/RequestTimeout whatever status.
bool s3_retryable_status(unsigned status, std::string_view code);

}  // namespace sluice
