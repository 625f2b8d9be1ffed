#include "s3/s3_client.hpp"

#include <openssl/evp.h>

#include <charconv>
#include <cstdlib>

#include "core/sha256.hpp"
#include "s3/s3_transport.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

constexpr std::size_t kXmlBodyLimit = 16 * 1024 * 1024;  // a listing page of 1000 long keys
// (A named vector: g++ 12 miscompiles a braced list inside a co_await expression.)
const std::vector<unsigned> kAllowNotFound{404};

std::string unquoted(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

std::string content_md5(std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(body.data(), body.size(), digest, &length, EVP_md5(), nullptr);
  return to_base64(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::optional<std::uint64_t> to_uint(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The object an answer (HEAD, GET, ranged GET) describes.
S3ObjectHead head_of(const S3Answer& answer, const char* action, const std::string& key) {
  S3ObjectHead head;
  head.etag = unquoted(answer.header("ETag"));
  head.mtime_ns = parse_http_date(answer.header("Last-Modified")).value_or(0);
  // A ranged answer: "bytes 0-99/1234" gives the whole size after '/'.
  const std::string range = answer.header("Content-Range");
  const std::size_t slash = range.rfind('/');
  std::optional<std::uint64_t> size = answer.status() == 206 && slash != std::string::npos
                                          ? to_uint(std::string_view(range).substr(slash + 1))
                                          : to_uint(answer.header("Content-Length"));
  if (!size) {
    throw S3Error(static_cast<int>(answer.status()), "BadResponse",
                  std::string("S3 ") + action + " " + key + ": no object size in the answer");
  }
  head.size = *size;
  return head;
}

class Download final : public S3Download {
 public:
  Download(std::shared_ptr<S3Client::Impl> client, S3Answer answer, S3ObjectHead head)
      : client_(std::move(client)), answer_(std::move(answer)), head_(std::move(head)) {
    length_ = answer_.parser->content_length().value_or(0);
  }
  const S3ObjectHead& object() const override { return head_; }
  std::uint64_t content_length() const override { return length_; }

  asio::awaitable<std::size_t> read_some(std::span<char> into) override {
    if (!answer_.connection) co_return 0;
    const std::size_t got = co_await answer_.connection->read_body(*answer_.parser, into);
    read_ += got;
    if (got == 0 && read_ != length_) {
      throw S3Error(0, "ConnectionLost", "S3 GetObject: the body ended early");
    }
    // Back to the pool as soon as the whole answer is in, not at a further read that a reader
    // which knows the length never makes.
    if (answer_.parser->is_done()) client_->release(std::move(answer_.connection));
    co_return got;
  }

 private:
  std::shared_ptr<S3Client::Impl> client_;
  S3Answer answer_;
  S3ObjectHead head_;
  std::uint64_t length_ = 0;
  std::uint64_t read_ = 0;
};

}  // namespace

S3Client::S3Client(S3Endpoint endpoint, S3Credentials credentials, S3ClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(endpoint), std::move(credentials),
                                   std::move(options))) {}

S3Client::~S3Client() = default;

const S3Endpoint& S3Client::endpoint() const {
  return impl_->endpoint;
}

void S3Client::close_idle() noexcept {
  impl_->close_idle();
}

int S3Client::max_attempts() const {
  return std::max(impl_->options.max_attempts, 1);
}

void S3Client::set_clock(std::function<std::chrono::system_clock::time_point()> clock) {
  impl_->clock = std::move(clock);
}

asio::awaitable<std::optional<S3ObjectHead>> S3Client::head_object(std::string key) {
  S3Call call{.action = "HeadObject",
              .method = http::verb::head,
              .path = s3_object_path(impl_->endpoint, key)};
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, 0, kAllowNotFound);
  if (reply.status == 404) co_return std::nullopt;
  co_return head_of(reply.answer, call.action, key);
}

asio::awaitable<std::optional<std::string>> S3Client::get_object(std::string key,
                                                                 std::size_t max_bytes) {
  S3Call call{.action = "GetObject", .path = s3_object_path(impl_->endpoint, key)};
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, max_bytes, kAllowNotFound);
  if (reply.status == 404) co_return std::nullopt;
  co_return std::move(reply.body);
}

asio::awaitable<std::unique_ptr<S3Download>> S3Client::open_download(std::string key,
                                                                     std::uint64_t offset,
                                                                     std::uint64_t length,
                                                                     std::string if_match) {
  S3Call call{.action = "GetObject", .path = s3_object_path(impl_->endpoint, key)};
  if (offset > 0 || length > 0) {
    std::string range = "bytes=" + std::to_string(offset) + "-";
    if (length > 0) range += std::to_string(offset + length - 1);
    call.headers.emplace_back("Range", std::move(range));
  }
  if (!if_match.empty()) call.headers.emplace_back("If-Match", "\"" + if_match + "\"");
  S3Answer answer = co_await impl_->send(call);
  const unsigned status = answer.status();
  if (status == 404 || status < 200 || status >= 300) {
    std::string body = co_await impl_->read_all(answer, 64 * 1024);
    if (status == 404) co_return nullptr;
    throw impl_->error_of(call, status, body);
  }
  S3ObjectHead head = head_of(answer, call.action, key);
  // An endpoint that ignores Range answers 200 with the whole object: its first bytes are not
  // the ones asked for (unless the range starts at 0).
  if (status == 200 && offset > 0) {
    throw S3Error(200, "BadResponse",
                  "S3 GetObject " + key + ": the endpoint ignored the Range header");
  }
  co_return std::make_unique<Download>(impl_, std::move(answer), std::move(head));
}

asio::awaitable<std::string> S3Client::put_object(std::string key, std::string_view body) {
  S3Call call{.action = "PutObject",
              .method = http::verb::put,
              .path = s3_object_path(impl_->endpoint, key),
              .body = body};
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, 64 * 1024);
  co_return unquoted(reply.answer.header("ETag"));
}

asio::awaitable<std::string> S3Client::create_multipart_upload(std::string key) {
  S3Call call{.action = "CreateMultipartUpload",
              .method = http::verb::post,
              .path = s3_object_path(impl_->endpoint, key),
              .query = {{"uploads", ""}}};
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, kXmlBodyLimit);
  try {
    co_return parse_initiate_multipart_upload(reply.body);
  } catch (const S3XmlError& error) {
    throw S3Error(200, "BadResponse", "S3 CreateMultipartUpload " + key + ": " + error.what());
  }
}

asio::awaitable<std::string> S3Client::upload_part(std::string key, std::string upload_id,
                                                   int part_number, std::string_view body) {
  S3Call call{.action = "UploadPart",
              .method = http::verb::put,
              .path = s3_object_path(impl_->endpoint, key),
              .query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}},
              .body = body};
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, 64 * 1024);
  std::string etag = unquoted(reply.answer.header("ETag"));
  if (etag.empty()) {
    throw S3Error(200, "BadResponse", "S3 UploadPart " + key + ": no ETag in the answer");
  }
  co_return etag;
}

asio::awaitable<std::string> S3Client::complete_multipart_upload(
    std::string key, std::string upload_id, std::vector<S3CompletedPart> parts) {
  const std::string body = complete_multipart_upload_body(parts);
  S3Call call{.action = "CompleteMultipartUpload",
              .method = http::verb::post,
              .path = s3_object_path(impl_->endpoint, key),
              .query = {{"uploadId", upload_id}},
              .body = body};
  call.headers.emplace_back("Content-Type", "application/xml");
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, kXmlBodyLimit);
  // S3 may answer 200 and report a failure in the body, after the headers went out.
  if (parse_s3_error(reply.body)) throw impl_->error_of(call, 500, reply.body);
  try {
    co_return parse_complete_multipart_upload(reply.body);
  } catch (const S3XmlError& error) {
    throw S3Error(200, "BadResponse", "S3 CompleteMultipartUpload " + key + ": " + error.what());
  }
}

asio::awaitable<void> S3Client::abort_multipart_upload(std::string key, std::string upload_id) {
  S3Call call{.action = "AbortMultipartUpload",
              .method = http::verb::delete_,
              .path = s3_object_path(impl_->endpoint, key),
              .query = {{"uploadId", upload_id}}};
  S3Answer answer = co_await impl_->send(call);
  const unsigned status = answer.status();
  std::string body = co_await impl_->read_all(answer, 64 * 1024);
  if (status >= 200 && status < 300) co_return;
  S3Error error = impl_->error_of(call, status, body);
  if (error.code() == "NoSuchUpload") co_return;
  throw error;
}

asio::awaitable<S3ListPage> S3Client::list_objects(std::string prefix, std::string start_after,
                                                   std::string continuation, int max_keys) {
  const std::string& root = impl_->endpoint.prefix;
  S3Call call{.action = "ListObjectsV2",
              .path = s3_bucket_path(impl_->endpoint),
              .query = {{"list-type", "2"},
                        {"encoding-type", "url"},
                        {"max-keys", std::to_string(max_keys)},
                        {"prefix", root + prefix}}};
  if (!continuation.empty()) {
    call.query.emplace_back("continuation-token", std::move(continuation));
  } else if (!start_after.empty()) {
    call.query.emplace_back("start-after", root + start_after);
  }
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, kXmlBodyLimit);
  S3ListPage page;
  try {
    page = parse_list_objects_v2(reply.body, true);
  } catch (const S3XmlError& error) {
    throw S3Error(200, "BadResponse", std::string("S3 ListObjectsV2: ") + error.what());
  }
  for (S3ListedObject& object : page.objects) {
    if (object.key.compare(0, root.size(), root) != 0) {
      throw S3Error(200, "BadResponse",
                    "S3 ListObjectsV2: a key outside the prefix: " + object.key);
    }
    object.key.erase(0, root.size());
  }
  co_return page;
}

asio::awaitable<void> S3Client::delete_object(std::string key) {
  S3Call call{.action = "DeleteObject",
              .method = http::verb::delete_,
              .path = s3_object_path(impl_->endpoint, key)};
  co_await impl_->exchange(call, 64 * 1024, kAllowNotFound);
}

asio::awaitable<std::vector<S3DeleteFailure>> S3Client::delete_objects(
    std::vector<std::string> keys) {
  for (std::string& key : keys) key = impl_->endpoint.prefix + key;
  const std::string body = delete_objects_body(keys);
  S3Call call{.action = "DeleteObjects",
              .method = http::verb::post,
              .path = s3_bucket_path(impl_->endpoint),
              .query = {{"delete", ""}},
              .body = body};
  call.headers.emplace_back("Content-MD5", content_md5(body));  // S3 requires it here
  call.headers.emplace_back("Content-Type", "application/xml");
  S3Client::Impl::Reply reply = co_await impl_->exchange(call, kXmlBodyLimit);
  try {
    std::vector<S3DeleteFailure> failures = parse_delete_objects(reply.body);
    for (S3DeleteFailure& failure : failures) {
      if (failure.key.compare(0, impl_->endpoint.prefix.size(), impl_->endpoint.prefix) == 0) {
        failure.key.erase(0, impl_->endpoint.prefix.size());
      }
    }
    co_return failures;
  } catch (const S3XmlError& error) {
    throw S3Error(200, "BadResponse", std::string("S3 DeleteObjects: ") + error.what());
  }
}

std::string S3Client::presign_get(std::string_view key, std::chrono::seconds expires,
                                  std::string_view response_content_disposition) const {
  S3Request request;
  request.method = "GET";
  request.host = impl_->endpoint.host_header;
  request.path = s3_object_path(impl_->endpoint, key);
  request.region = impl_->endpoint.region;
  request.time = impl_->clock();
  if (!response_content_disposition.empty()) {
    request.query.emplace_back("response-content-disposition",
                               std::string(response_content_disposition));
  }
  const S3PresignedUrl url = presign_url(request, impl_->credentials, expires);
  return s3_origin(impl_->endpoint) + url.path + "?" + url.query;
}

S3Credentials s3_credentials_from_env(const S3StorageConfig& config) {
  auto read = [](const std::string& name, bool required) {
    const char* value = name.empty() ? nullptr : std::getenv(name.c_str());
    if ((value == nullptr || *value == '\0') && required) {
      throw std::invalid_argument("the S3 credentials: the environment variable " + name +
                                  " is not set");
    }
    return std::string(value == nullptr ? "" : value);
  };
  return S3Credentials{read(config.access_key_id_env, true),
                       read(config.secret_access_key_env, true),
                       read(config.session_token_env, false)};
}

}  // namespace sluice
