#include "core/sha256.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <climits>
#include <new>
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

std::size_t base64_encode(std::string_view bytes, char* out) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX) / 4 * 3) {
    throw std::length_error("base64: input too large for one call");
  }
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out),
                                   reinterpret_cast<const unsigned char*>(bytes.data()),
                                   static_cast<int>(bytes.size()));
  return static_cast<std::size_t>(size);
}

std::string to_base64(std::string_view bytes) {
  std::string text(base64_size(bytes.size()) + 1, '\0');
  text.resize(base64_encode(bytes, text.data()));
  return text;
}

std::string to_base64(const std::array<std::uint8_t, 32>& digest) {
  return to_base64(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

namespace {

void check_mac(int ok) {
  if (ok != 1) throw std::runtime_error("HMAC-SHA-256: OpenSSL's EVP_MAC failed");
}

// OpenSSL's HMAC implementation, fetched once (fetching is a provider lookup under a lock).
EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  if (mac == nullptr) throw std::runtime_error("HMAC-SHA-256: OpenSSL has no HMAC");
  return mac;
}

}  // namespace

struct HmacSha256::Context {
  EVP_MAC_CTX* ctx = nullptr;
  explicit Context(EVP_MAC_CTX* owned) : ctx(owned) {
    if (ctx == nullptr) throw std::bad_alloc();
  }
  ~Context() { EVP_MAC_CTX_free(ctx); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

HmacSha256::HmacSha256(std::string_view key)
    : context_(std::make_unique<Context>(EVP_MAC_CTX_new(hmac_algorithm()))) {
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  // An empty key is a valid HMAC key; OpenSSL wants a non-null pointer for it.
  static constexpr unsigned char kNoKey = 0;
  const auto* key_bytes =
      key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  check_mac(EVP_MAC_init(context_->ctx, key_bytes, key.size(), params));
}

HmacSha256::HmacSha256(std::unique_ptr<Context> context) : context_(std::move(context)) {}

HmacSha256::~HmacSha256() = default;

std::unique_ptr<HmacSha256> HmacSha256::clone() const {
  return std::unique_ptr<HmacSha256>(
      new HmacSha256(std::make_unique<Context>(EVP_MAC_CTX_dup(context_->ctx))));
}

std::array<std::uint8_t, 32> HmacSha256::digest(std::string_view message) {
  std::array<std::uint8_t, 32> result{};
  std::size_t size = 0;
  // A null key re-initialises from the keyed state (the key's pads are not hashed again).
  check_mac(EVP_MAC_init(context_->ctx, nullptr, 0, nullptr));
  check_mac(EVP_MAC_update(context_->ctx, reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()));
  check_mac(EVP_MAC_final(context_->ctx, result.data(), &size, result.size()));
  if (size != result.size()) throw std::runtime_error("HMAC-SHA-256: unexpected digest size");
  return result;
}

void HmacSha256::hex(std::string_view message, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::uint8_t byte : digest(message)) {
    *out++ = kHex[byte >> 4];
    *out++ = kHex[byte & 0x0f];
  }
}

std::array<std::uint8_t, 32> hmac_sha256(std::string_view key, std::string_view message) {
  return HmacSha256(key).digest(message);
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
