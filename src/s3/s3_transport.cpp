#include "s3/s3_transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <random>

#include "core/sha256.hpp"
#include "s3/s3_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

constexpr std::size_t kErrorBodyLimit = 64 * 1024;

std::string payload_hash(const S3Endpoint& endpoint, std::string_view body) {
  // Over TLS the payload is protected in transit and hashing it would cost a pass over every
  // part; over plain HTTP it is signed, as botocore does.
  if (endpoint.tls) return std::string(kS3UnsignedPayload);
  Sha256 hash;
  hash.update(body);
  return to_hex(hash.final());
}

std::string status_code_name(unsigned status) {
  switch (status) {
    case 301:
      return "PermanentRedirect";
    case 307:
      return "TemporaryRedirect";
    case 400:
      return "BadRequest";
    case 403:
      return "AccessDenied";
    case 404:
      return "NotFound";
    case 412:
      return "PreconditionFailed";
    case 416:
      return "InvalidRange";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    default:
      return "HTTP" + std::to_string(status);
  }
}

}  // namespace

bool s3_retryable_status(unsigned status, std::string_view code) {
  return status >= 500 || status == 429 || code == "SlowDown" || code == "RequestTimeout" ||
         code == "InternalError" || code == "ServiceUnavailable";
}

std::string S3Answer::header(std::string_view name) const {
  auto found = parser->get().find(name);
  if (found == parser->get().end()) return {};
  return std::string(found->value());
}

S3Client::Impl::Impl(S3Endpoint endpoint_in, S3Credentials credentials_in,
                     S3ClientOptions options_in)
    : endpoint(std::move(endpoint_in)),
      credentials(std::move(credentials_in)),
      options(std::move(options_in)),
      clock([] { return std::chrono::system_clock::now(); }) {
  if (!endpoint.tls) return;
  tls_.emplace(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  if (options.ca_file.empty()) {
    tls_->set_default_verify_paths(ec);
  } else {
    tls_->load_verify_file(options.ca_file, ec);
  }
  if (ec) {
    throw S3Error(0, "TlsError",
                  "cannot load the CA certificates" +
                      (options.ca_file.empty() ? "" : " " + options.ca_file) + ": " + ec.message());
  }
  tls_->set_verify_mode(asio::ssl::verify_peer);
}

S3HttpRequest S3Client::Impl::build(const S3Call& call) const {
  S3Request signing;
  signing.method = std::string(http::to_string(call.method));
  signing.host = endpoint.host_header;
  signing.path = call.path;
  signing.query = call.query;
  signing.headers = call.headers;
  signing.payload_sha256 = payload_hash(endpoint, call.body);
  signing.region = endpoint.region;
  signing.time = clock();
  const S3SignedHeaders signed_headers = sign_headers(signing, credentials);

  std::string target = s3_encoded_path(call.path);
  if (!call.query.empty()) target += "?" + s3_canonical_query(call.query);
  S3HttpRequest request(call.method, target, 11);
  request.set(http::field::host, endpoint.host_header);
  request.set(http::field::user_agent, "sluice/0.1");
  for (const S3Header& header : call.headers) request.insert(header.first, header.second);
  for (const S3Header& header : signed_headers.headers) request.set(header.first, header.second);
  request.body() = boost::beast::span<const char>(call.body.data(), call.body.size());
  request.keep_alive(true);
  if (call.method == http::verb::put || call.method == http::verb::post) {
    request.prepare_payload();  // Content-Length, also 0
  }
  return request;
}

asio::awaitable<std::unique_ptr<S3Connection>> S3Client::Impl::acquire(bool& reused, bool fresh) {
  auto executor = co_await asio::this_coro::executor;
  if (!fresh) {
    std::lock_guard lock(mutex_);
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if ((*it)->executor() != executor) continue;
      std::unique_ptr<S3Connection> connection = std::move(*it);
      idle_.erase(std::next(it).base());
      s3_metrics().idle_connections.sub();
      reused = true;
      co_return connection;
    }
  }
  reused = false;
  s3_metrics().connections_opened.add();
  co_return co_await S3Connection::open(endpoint, tls_ ? &*tls_ : nullptr, options.connect_timeout,
                                        options.request_timeout);
}

void S3Client::Impl::release(std::unique_ptr<S3Connection> connection) {
  if (!connection || !connection->reusable()) return;
  std::lock_guard lock(mutex_);
  if (idle_.size() >= options.max_idle_connections) {
    idle_.erase(idle_.begin());  // the oldest
    s3_metrics().idle_connections.sub();
  }
  idle_.push_back(std::move(connection));
  s3_metrics().idle_connections.add();
}

void S3Client::Impl::close_idle() noexcept {
  std::vector<std::unique_ptr<S3Connection>> closing;
  {
    std::lock_guard lock(mutex_);
    closing.swap(idle_);
  }
  s3_metrics().idle_connections.sub(static_cast<std::int64_t>(closing.size()));
}

asio::awaitable<void> S3Client::Impl::back_off(int attempt) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  const auto ceiling = std::min<std::int64_t>(
      options.backoff_cap.count(), options.backoff_base.count() << std::min(attempt, 20));
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(ceiling, 1) - 1);
  asio::steady_timer timer(co_await asio::this_coro::executor,
                           std::chrono::milliseconds(pick(random)));
  co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<S3Answer> S3Client::Impl::send(const S3Call& call) {
  const int attempts = call.retry ? std::max(options.max_attempts, 1) : 1;
  bool stale_retried = false;
  for (int attempt = 1;; ++attempt) {
    bool reused = false;
    std::unique_ptr<S3Connection> connection;
    std::optional<S3Error> failure;
    try {
      connection = co_await acquire(reused, stale_retried);
      S3HttpRequest request = build(call);
      auto parser = std::make_unique<S3HttpParser>();
      co_await connection->send(request, *parser);
      S3Answer answer{std::move(connection), std::move(parser)};
      s3_metrics().count_answer(answer.status());
      if (attempt >= attempts || !s3_retryable_status(answer.status(), "")) co_return answer;
      // A 5xx worth retrying: read its error (and free the connection) first.
      std::string body = co_await read_all(answer, kErrorBodyLimit);
      failure = error_of(call, answer.status(), body);
      if (!s3_retryable_status(failure->status(), failure->code())) throw *failure;
    } catch (const S3Error& error) {
      if (failure) throw;
      failure = error;
      s3_metrics().failed.add();
    }
    connection.reset();  // a failed connection is never reused
    // A kept-alive connection the endpoint closed meanwhile: once, at once, on a new one.
    if (reused && failure->code() == "ConnectionLost" && !stale_retried) {
      stale_retried = true;
      --attempt;
      continue;
    }
    const bool transient = failure->code() != "TlsError" && failure->code() != "DnsError";
    if (attempt >= attempts || !transient) throw *failure;
    s3_metrics().retries.add();
    co_await back_off(attempt);
  }
}

asio::awaitable<std::string> S3Client::Impl::read_all(S3Answer& answer, std::size_t max_body) {
  std::string body;
  const std::size_t expected = answer.parser->content_length().value_or(0);
  body.resize(std::min(std::max<std::size_t>(expected, 4096), max_body + 1));
  std::size_t size = 0;
  for (;;) {
    if (size == body.size()) {
      if (size > max_body) break;
      body.resize(std::min(body.size() * 2, max_body + 1));
    }
    const std::size_t got =
        co_await answer.connection->read_body(*answer.parser, std::span(body).subspan(size));
    if (got == 0) break;
    size += got;
  }
  if (size > max_body) {
    answer.connection->close();
    throw S3Error(answer.status(), "EntityTooLarge",
                  "S3 answer larger than " + std::to_string(max_body) + " bytes");
  }
  body.resize(size);
  release(std::move(answer.connection));
  co_return body;
}

asio::awaitable<S3Client::Impl::Reply> S3Client::Impl::exchange(const S3Call& call,
                                                                std::size_t max_body,
                                                                std::vector<unsigned> allow) {
  S3Answer answer = co_await send(call);
  const unsigned status = answer.status();
  const bool ok = (status >= 200 && status < 300) ||
                  std::find(allow.begin(), allow.end(), status) != allow.end();
  std::string body = co_await read_all(answer, ok ? max_body : kErrorBodyLimit);
  if (!ok) throw error_of(call, status, body);
  co_return Reply{status, std::move(body), std::move(answer)};
}

S3Error S3Client::Impl::error_of(const S3Call& call, unsigned status, std::string_view body) const {
  const std::optional<S3ErrorBody> error = parse_s3_error(body);
  std::string code = error && !error->code.empty() ? error->code : status_code_name(status);
  std::string message = std::string("S3 ") + call.action + " " + call.path + ": " +
                        std::to_string(status) + " " + code;
  if (error && !error->message.empty()) message += ": " + error->message;
  if (code == "SignatureDoesNotMatch") {
    message += " (check the secret key in " + std::string("the environment") + ")";
  }
  if (status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed") {
    message += " (is [storage] region the bucket's region?)";
  }
  return S3Error(static_cast<int>(status), std::move(code), message);
}

}  // namespace sluice
