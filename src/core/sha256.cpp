#include "core/sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace sluice {

struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  if (context_->ctx == nullptr || EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256: cannot initialise OpenSSL's digest");
  }
}

Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  if (!bytes.empty() && EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size()) != 1) {
    throw std::runtime_error("SHA-256: update failed");
  }
}

std::array<std::uint8_t, 32> Sha256::final() {
  std::array<std::uint8_t, 32> digest{};
  unsigned int size = 0;
  if (EVP_DigestFinal_ex(context_->ctx, digest.data(), &size) != 1 || size != digest.size()) {
    throw std::runtime_error("SHA-256: final failed");
  }
  return digest;
}

std::string to_hex(const std::array<std::uint8_t, 32>& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(64);
  for (std::uint8_t byte : digest) {
    text += kHex[byte >> 4];
    text += kHex[byte & 0xF];
  }
  return text;
}

std::string to_base64(const std::array<std::uint8_t, 32>& digest) {
  unsigned char text[48] = {};
  int size = EVP_EncodeBlock(text, digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(size));
}

boost::asio::awaitable<void> Sha256Sink::write(std::string_view bytes) {
  hash_.update(bytes);
  bytes_ += bytes.size();
  co_await inner_.write(bytes);
}

boost::asio::awaitable<void> Sha256Sink::finish() {
  digest_ = hash_.final();
  if (before_finish_) before_finish_(digest_);
  co_await inner_.finish();
}

}  // namespace sluice
