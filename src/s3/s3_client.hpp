#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "s3/s3_endpoint.hpp"
#include "s3/s3_signing.hpp"
#include "s3/s3_xml.hpp"

namespace sluice {

// An S3 call failed for good (after its retries). `status` is the HTTP status, 0 when no answer
// came (DNS, connect, TLS, timeout, connection lost); `code` is S3's error code
// ("NoSuchBucket", "SignatureDoesNotMatch", "SlowDown", "PreconditionFailed"), or one of ours
// for failures without an answer: "DnsError", "ConnectError", "TlsError", "Timeout",
// "ConnectionLost", "BadResponse".
class S3Error : public std::runtime_error {
 public:
  S3Error(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

struct S3ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};   // resolve + connect + TLS handshake
  std::chrono::milliseconds request_timeout{30000};  // without progress (no byte moved)
  int max_attempts = 4;                              // of an idempotent call; 1 = no retry
  std::size_t max_idle_connections = 64;             // kept alive between calls
  std::string ca_file;                               // PEM; empty = the system's CAs
  // Backoff before retry n (1-based): a uniformly random wait in [0, min(cap, base * 2^n))
  // ("full jitter", as the AWS SDKs do).
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{5000};
};

// An object as HEAD (or a GET's answer) describes it.
struct S3ObjectHead {
  std::uint64_t size = 0;  // the whole object's size (a ranged GET: from Content-Range)
  std::string etag;        // without quotes
  std::int64_t mtime_ns = 0;
};

// The body of a GET, read as the caller consumes it: nothing is read from the socket ahead of
// read_some() beyond the connection's buffers (backpressure comes from TCP). Not thread-safe.
class S3Download {
 public:
  virtual ~S3Download() = default;
  virtual const S3ObjectHead& object() const = 0;
  // The bytes this answer carries (the range's length).
  virtual std::uint64_t content_length() const = 0;
  // Reads up to into.size() bytes; 0 at the end of the body. Throws S3Error (ConnectionLost,
  // Timeout) when the body is cut short.
  virtual boost::asio::awaitable<std::size_t> read_some(std::span<char> into) = 0;
};

// An asynchronous S3 client on Beast: signs every request (SigV4), keeps connections alive in
// a pool, puts a deadline on every step, and retries idempotent calls on connection errors,
// 5xx, 429 and SlowDown with exponential backoff and full jitter. Keys are the store's keys:
// the endpoint's prefix is added and removed here.
// Thread-safe: calls may run at once on any executors (a connection is used by one call at a
// time and goes back to the pool of its own executor).
class S3Client {
 public:
  // Throws S3Error("TlsError") when ca_file cannot be loaded.
  S3Client(S3Endpoint endpoint, S3Credentials credentials, S3ClientOptions options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Endpoint& endpoint() const;
  int max_attempts() const;

  // Nothing when there is no such object.
  boost::asio::awaitable<std::optional<S3ObjectHead>> head_object(std::string key);
  // The whole object, or nothing when absent; S3Error("EntityTooLarge") above max_bytes.
  boost::asio::awaitable<std::optional<std::string>> get_object(std::string key,
                                                                std::size_t max_bytes);
  // Bytes [offset, offset + length) (length 0: to the end). With if_match, S3 answers 412 when
  // the object's ETag differs: S3Error("PreconditionFailed"). Nothing when absent. Retried
  // until the answer's head arrived; the body is the caller's to read.
  boost::asio::awaitable<std::unique_ptr<S3Download>> open_download(std::string key,
                                                                    std::uint64_t offset,
                                                                    std::uint64_t length,
                                                                    std::string if_match);
  // PutObject; returns the ETag. REQUIRES: `body` stays valid until this completes.
  boost::asio::awaitable<std::string> put_object(std::string key, std::string_view body);

  // Multipart upload. create_multipart_upload returns the upload id; upload_part the part's
  // ETag. REQUIRES: `body` stays valid until upload_part completes.
  boost::asio::awaitable<std::string> create_multipart_upload(std::string key);
  boost::asio::awaitable<std::string> upload_part(std::string key, std::string upload_id,
                                                  int part_number, std::string_view body);
  // Returns the object's ETag; S3Error also when S3 answers 200 with an <Error> body.
  boost::asio::awaitable<std::string> complete_multipart_upload(std::string key,
                                                                std::string upload_id,
                                                                std::vector<S3CompletedPart> parts);
  // Idempotent; NoSuchUpload counts as done.
  boost::asio::awaitable<void> abort_multipart_upload(std::string key, std::string upload_id);

  // One page of ListObjectsV2 under `prefix`, after `start_after` (or continuing with
  // `continuation`), at most max_keys (1..1000). Keys come back without the endpoint's prefix.
  boost::asio::awaitable<S3ListPage> list_objects(std::string prefix, std::string start_after,
                                                  std::string continuation, int max_keys);
  // DeleteObject: S3 answers 204 whether or not the object existed.
  boost::asio::awaitable<void> delete_object(std::string key);
  // DeleteObjects, up to 1000 keys: the keys S3 could not delete.
  boost::asio::awaitable<std::vector<S3DeleteFailure>> delete_objects(
      std::vector<std::string> keys);

  // A presigned GET URL valid for `expires` from now; `response_content_disposition` (optional)
  // makes S3 answer with that Content-Disposition (response-content-disposition).
  std::string presign_get(std::string_view key, std::chrono::seconds expires,
                          std::string_view response_content_disposition = {}) const;

  // Closes the kept-alive connections (see ObjectStore::close_idle). Thread-safe.
  void close_idle() noexcept;

  // For tests: the clock signatures use (default: the system clock).
  void set_clock(std::function<std::chrono::system_clock::time_point()> clock);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// S3Credentials from the environment variables `config` names (the session token's variable
// may be unset). Throws std::invalid_argument naming the variable that is missing or empty.
S3Credentials s3_credentials_from_env(const S3StorageConfig& config);

}  // namespace sluice
