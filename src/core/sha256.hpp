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
std::string to_base64(const std::array<std::uint8_t, 32>& digest);

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
