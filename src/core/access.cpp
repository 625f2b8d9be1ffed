#include "core/access.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <utility>


namespace sluice {

bool scope_covers(std::string_view granted, std::string_view needed) {
  if (granted == "*" || granted == "admin" || granted == needed) return true;
  if (!granted.empty() && granted.back() == '*') {
    return needed.starts_with(granted.substr(0, granted.size() - 1));
  }
  // A parent covers its children: "datasets" covers "datasets:orders".
  return needed.size() > granted.size() && needed.starts_with(granted) &&
         needed[granted.size()] == ':';
}

namespace {

bool is_name_pattern(std::string_view text) {
  if (text.empty()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!plain && !(c == '*' && i + 1 == text.size())) return false;
  }
  return true;
}

}  // namespace

std::string scope_problem(std::string_view scope) {
  static constexpr std::array<std::string_view, 9> kPlain = {
      "*", "admin", "jobs", "files", "archives", "archives:create", "archives:read", "datasets",
      "cubes"};
  if (std::ranges::find(kPlain, scope) != kPlain.end()) return {};
  for (std::string_view family : {std::string_view("datasets:"), std::string_view("cubes:")}) {
    if (scope.starts_with(family)) {
      if (is_name_pattern(scope.substr(family.size()))) return {};
      return "a " + std::string(family) +
             " scope names one name or a pattern ending in '*' ([A-Za-z0-9_-], e.g. " +
             std::string(family) + "orders*)";
    }
  }
  return "unknown scope (expected *, admin, jobs, files, archives, archives:create, "
         "archives:read, datasets, datasets:NAME, datasets:PREFIX*, cubes or cubes:NAME)";
}

bool Caller::may(std::string_view needed) const {
  return std::ranges::any_of(scopes,
                             [needed](const std::string& granted) { return scope_covers(granted, needed); });
}

// Every request with a token hashes it: one digest context per thread and the algorithm fetched
// once, so that the check costs the hash and not OpenSSL's per-call setup (a fetch and an
// allocation, as much again as hashing a token).
std::string sha256_raw(std::string_view text) {
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct FreeContext {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };
  thread_local const std::unique_ptr<EVP_MD_CTX, FreeContext> context(EVP_MD_CTX_new());
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (kSha256 == nullptr || context == nullptr ||
      EVP_DigestInit_ex(context.get(), kSha256, nullptr) != 1 ||
      EVP_DigestUpdate(context.get(), text.data(), text.size()) != 1 ||
      EVP_DigestFinal_ex(context.get(), digest.data(), &size) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  return {reinterpret_cast<const char*>(digest.data()), size};
}

std::string sha256_hex(std::string_view text) {
  static constexpr std::string_view kDigits = "0123456789abcdef";
  std::string hex;
  for (const char byte : sha256_raw(text)) {
    const auto value = static_cast<unsigned char>(byte);
    hex += kDigits[value >> 4];
    hex += kDigits[value & 0xF];
  }
  return hex;
}

namespace {

std::string hex_to_raw(std::string_view hex) {
  auto nibble = [](char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
  };
  std::string raw;
  raw.reserve(hex.size() / 2);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw += static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  }
  return raw;
}

}  // namespace

TokenTable::TokenTable(const std::vector<TokenConfig>& tokens, const RateLimit& per_token) {
  for (const TokenConfig& token : tokens) {
    auto caller = std::make_shared<Caller>();
    caller->name = token.name;
    caller->authenticated = true;
    caller->scopes = token.scopes;
    caller->limits = per_token;
    if (token.requests_per_second) caller->limits.requests_per_second = *token.requests_per_second;
    if (token.burst) caller->limits.burst = *token.burst;
    if (token.max_streams) caller->limits.max_streams = *token.max_streams;
    caller->expires = token.expires;
    std::string digest = hex_to_raw(token.sha256);
    entries_.emplace(digest, Entry{digest, token.expires, std::move(caller)});
  }
}

std::shared_ptr<const Caller> TokenTable::find(std::string_view secret,
                                               std::chrono::system_clock::time_point now,
                                               TokenVerdict& verdict) const {
  const std::string digest = sha256_raw(secret);
  const auto it = entries_.find(digest);
  // The table is keyed by the digest, never by the secret; the digests are compared once more
  // in constant time so that no early-exit comparison of secret-derived bytes decides.
  if (it == entries_.end() ||
      CRYPTO_memcmp(it->second.digest.data(), digest.data(), digest.size()) != 0) {
    verdict = TokenVerdict::kUnknown;
    return nullptr;
  }
  if (it->second.expires && now >= *it->second.expires) {
    verdict = TokenVerdict::kExpired;
    return nullptr;
  }
  verdict = TokenVerdict::kValid;
  return it->second.caller;
}

bool TokenBucket::take(double rate, double size, Clock::time_point now,
                       std::int64_t& retry_after) {
  if (tokens_ < 0) {
    tokens_ = size;
  } else {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(size, tokens_ + std::max(0.0, elapsed) * rate);
  }
  last_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  retry_after = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil((1 - tokens_) / rate)));
  return false;
}

ClientLimits::Slot::Slot(Slot&& other) noexcept : owner_(other.owner_), entry_(other.entry_) {
  other.owner_ = nullptr;
  other.entry_ = nullptr;
}

ClientLimits::Slot& ClientLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->release(entry_);
    owner_ = std::exchange(other.owner_, nullptr);
    entry_ = std::exchange(other.entry_, nullptr);
  }
  return *this;
}

ClientLimits::Slot::~Slot() {
  if (owner_ != nullptr) owner_->release(entry_);
}

LimitVerdict ClientLimits::admit(std::string_view key, const RateLimit& limit, Slot& slot,
                                 std::int64_t& retry_after, TokenBucket::Clock::time_point now) {
  slot = Slot();  // (before the lock: releasing a slot of this table takes it)
  if (!limit.limits_rate() && limit.max_streams == 0) return LimitVerdict::kAdmitted;  // no state
  const std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_clients_) evict_idle(now);
    it = entries_.emplace(std::string(key), Entry{}).first;
  }
  Entry& entry = it->second;
  entry.last_used = now;
  if (limit.max_streams > 0 && entry.in_flight >= limit.max_streams) {
    retry_after = 1;
    return LimitVerdict::kTooManyStreams;
  }
  if (limit.limits_rate() &&
      !entry.bucket.take(limit.requests_per_second, limit.bucket_size(), now, retry_after)) {
    return LimitVerdict::kRateLimited;
  }
  if (limit.max_streams == 0) return LimitVerdict::kAdmitted;  // nothing to count
  ++entry.in_flight;
  slot.owner_ = this;
  slot.entry_ = &entry;  // unordered_map nodes do not move; an entry in flight is never evicted
  return LimitVerdict::kAdmitted;
}

void ClientLimits::release(Entry* entry) {
  const std::lock_guard lock(mutex_);
  --entry->in_flight;
}

// Called with the table full: drops the clients with nothing in flight, those idle for a second
// first; when that frees less than a quarter, every client with nothing in flight.
void ClientLimits::evict_idle(TokenBucket::Clock::time_point now) {
  const std::size_t before = entries_.size();
  std::erase_if(entries_, [now](const auto& item) {
    return item.second.in_flight == 0 && now - item.second.last_used >= std::chrono::seconds(1);
  });
  if (entries_.size() * 4 > before * 3) {
    std::erase_if(entries_, [](const auto& item) { return item.second.in_flight == 0; });
  }
}

std::size_t ClientLimits::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

std::string_view address_host(std::string_view remote) {
  if (remote.starts_with('[')) {
    const std::size_t close = remote.find(']');
    return close == std::string_view::npos ? remote : remote.substr(1, close - 1);
  }
  const std::size_t colon = remote.rfind(':');
  return colon == std::string_view::npos ? remote : remote.substr(0, colon);
}

}  // namespace sluice
