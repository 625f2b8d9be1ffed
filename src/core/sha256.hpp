#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/byte_sink.hpp"

namespace sluice {

// Incremental SHA-256 (OpenSSL's EVP implementation: SHA-NI or AVX2 where the CPU has them).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  // Ends the hash; call once.
  std::array<std::uint8_t, 32> final();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

std::string to_hex(const std::array<std::uint8_t, 32>& digest);

// Standard base64 (RFC 4648 4, '=' padding) through OpenSSL's EVP_EncodeBlock: the one base64
// encoder of the code base (digests in headers, Content-MD5, bytes columns in JSON).
constexpr std::size_t base64_size(std::size_t bytes) { return (bytes + 2) / 3 * 4; }
// Writes base64_size(bytes.size()) characters and a NUL at `out`; returns the characters.
// REQUIRES: bytes.size() <= INT_MAX (callers encode in pieces).
std::size_t base64_encode(std::string_view bytes, char* out);
std::string to_base64(std::string_view bytes);
std::string to_base64(const std::array<std::uint8_t, 32>& digest);

// HMAC-SHA-256 (RFC 2104) through OpenSSL's EVP_MAC, keyed once: each value then costs one
// re-initialisation from the keyed state and the two SHA-256 finishes.
// Not thread-safe: one instance per stream (clone() makes another from the same key).
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  std::unique_ptr<HmacSha256> clone() const;
  std::array<std::uint8_t, 32> digest(std::string_view message);
  // Writes 64 lowercase hex digits at `out`.
  void hex(std::string_view message, char* out);

 private:
  struct Context;
  explicit HmacSha256(std::unique_ptr<Context> context);
  std::unique_ptr<Context> context_;
};

// One HMAC-SHA-256 of `message` under `key` (S3 signatures, presigned links).
std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view message);

// Passes every byte on to `inner` and hashes it on the way: the SHA-256 of exactly the bytes
// that went out. Used for the integrity trailers of a download.
// `before_finish` (optional) gets the digest before `inner` is finished: HTTP trailers.
class Sha256Sink final : public ByteSink {
 public:
  using DigestCallback = std::function<void(const std::array<std::uint8_t, 32>&)>;
  explicit Sha256Sink(ByteSink& inner, DigestCallback before_finish = {})
      : inner_(inner), before_finish_(std::move(before_finish)) {}
  boost::asio::awaitable<void> write(std::string_view bytes) override;
  boost::asio::awaitable<void> finish() override;
  // Valid after finish().
  const std::array<std::uint8_t, 32>& digest() const { return digest_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& inner_;
  DigestCallback before_finish_;
  Sha256 hash_;
  std::array<std::uint8_t, 32> digest_{};
  std::uint64_t bytes_ = 0;
};

}  // namespace sluice
