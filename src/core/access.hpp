#pragma once

// Who may do what: API token scopes, the token table looked up by hash, and the per-address /
// per-token request limits (token buckets and concurrent streams). Beast-free; the request path
// applies it in http/auth.hpp.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice {

// ---- Scopes ----------------------------------------------------------------------------------

// Whether a granted scope covers the scope a request needs:
//   "*" and "admin" cover everything;
//   equal scopes cover each other;
//   a parent covers its children: "datasets" covers "datasets:orders", "archives" covers
//   "archives:create";
//   a trailing '*' is a prefix pattern: "datasets:orders*" covers "datasets:orders_report",
//   "datasets:*" covers every dataset.
// Patterns are only meaningful in `granted`: a needed scope is compared literally.
bool scope_covers(std::string_view granted, std::string_view needed);

// Why `scope` is not a scope a token may hold, or "" when it is one: "*", "admin", "jobs",
// "files", "archives", "archives:create", "archives:read", "datasets", "cubes", or
// "datasets:" / "cubes:" followed by a name or a name pattern ([A-Za-z0-9_-]* with at most one
// '*', at the end).
std::string scope_problem(std::string_view scope);

// ---- Limits ----------------------------------------------------------------------------------

// Limits of one client (an address or a token). 0 = unlimited.
struct RateLimit {
  double requests_per_second = 0;  // sustained rate (token bucket refill)
  double burst = 0;                // bucket size; 0 with a rate = max(1, requests_per_second)
  std::size_t max_streams = 0;     // requests in flight at once (a download for its duration)

  bool limits_rate() const { return requests_per_second > 0; }
  double bucket_size() const {
    return burst > 0 ? burst : (requests_per_second > 1 ? requests_per_second : 1.0);
  }
};

// [limits]: defaults per client address and per token (a token entry may override its own).
struct LimitsConfig {
  RateLimit per_address;
  RateLimit per_token;
  std::size_t max_addresses = 10'000;  // addresses tracked at once (idle ones are evicted)
  int line = 0;

  bool any() const {
    return per_address.limits_rate() || per_address.max_streams > 0 ||
           per_token.limits_rate() || per_token.max_streams > 0;
  }
};

// ---- Tokens ----------------------------------------------------------------------------------

// One API token as configured: only the SHA-256 of the secret is known to the server.
struct TokenConfig {
  std::string name;    // shown in the access log and in errors, never the secret
  std::string sha256;  // 64 lower-case hex digits of SHA-256(token)
  std::vector<std::string> scopes;
  std::optional<std::chrono::system_clock::time_point> expires;  // refused from then on
  std::optional<double> requests_per_second;  // overrides of [limits] per_token_*
  std::optional<double> burst;
  std::optional<std::size_t> max_streams;
  int line = 0;
};

// [auth]: present means access control is on.
struct AuthConfig {
  std::vector<TokenConfig> tokens;      // [[auth.tokens]]
  std::filesystem::path tokens_file;    // more tokens ([[tokens]]), re-read on SIGHUP; optional
  std::vector<std::string> anonymous_scopes;  // what a request without a token may do
  int line = 0;
};

// [auth] and [limits] of a configuration file. Kept beside Config rather than in it: only the
// server's request path needs them (load_config checks them too, so that check-config and a
// start report their errors).
struct AccessConfig {
  std::optional<AuthConfig> auth;  // absent: no access control
  LimitsConfig limits;
};
// Throw ConfigError naming the file, line and key.
AccessConfig load_access_config(const std::filesystem::path& config_file);
AccessConfig parse_access_config(std::string_view text, const std::filesystem::path& config_file);

// The tokens of a tokens file: `[[tokens]]` entries with the keys of [[auth.tokens]], each name
// and hash unique, also against `configured` (the [[auth.tokens]] of the config). Throws
// ConfigError naming the file, line and key.
std::vector<TokenConfig> load_tokens_file(const std::filesystem::path& file,
                                          const std::vector<TokenConfig>& configured = {});

// Who sent a request, as handlers see it (HttpRequest::caller).
struct Caller {
  std::string name;  // the token's name; "" without a token
  bool authenticated = false;  // a valid token was presented
  std::vector<std::string> scopes;
  RateLimit limits;  // per-token limits (authenticated callers only)
  std::optional<std::chrono::system_clock::time_point> expires;  // the token's, if it has one

  bool may(std::string_view needed) const;
};

// The verdict on a presented token.
enum class TokenVerdict : std::uint8_t { kValid, kUnknown, kExpired };

// An immutable set of tokens, looked up by the SHA-256 of the presented secret (a hash table
// keyed by the digest, then a constant-time comparison of the digests: the secret itself is
// never compared). Thread-safe (const).
class TokenTable {
 public:
  // REQUIRES: names and hashes are unique (the config loader checks).
  TokenTable(const std::vector<TokenConfig>& tokens, const RateLimit& per_token);

  std::shared_ptr<const Caller> find(std::string_view secret,
                                     std::chrono::system_clock::time_point now,
                                     TokenVerdict& verdict) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string digest;  // 32 raw bytes
    std::optional<std::chrono::system_clock::time_point> expires;
    std::shared_ptr<const Caller> caller;
  };
  std::unordered_map<std::string, Entry> entries_;  // by raw digest
};

// The raw 32-byte SHA-256 digest of `text`, and its lower-case hex.
std::string sha256_raw(std::string_view text);
std::string sha256_hex(std::string_view text);

// ---- Rate limiting ---------------------------------------------------------------------------

// A token bucket: `size` tokens at most, refilled at `rate` per second; one request takes one.
// Not thread-safe (ClientLimits locks around it).
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  // Takes a token when there is one; otherwise returns false and sets `retry_after` to the
  // whole seconds until one is there (at least 1).
  bool take(double rate, double size, Clock::time_point now, std::int64_t& retry_after);

 private:
  double tokens_ = -1;  // < 0: not used yet (starts full)
  Clock::time_point last_{};
};

enum class LimitVerdict : std::uint8_t { kAdmitted, kRateLimited, kTooManyStreams };

// Per-client state (token bucket, requests in flight) for many clients keyed by a string (an
// address, a token name). At most `max_clients` idle entries are kept: when the table is full,
// clients with nothing in flight are evicted (a returning one starts with a full bucket);
// clients with a request in flight are always kept, so memory is bounded by max_clients plus the
// number of requests in flight. Thread-safe.
class ClientLimits {
  struct Entry {
    TokenBucket bucket;
    std::size_t in_flight = 0;
    TokenBucket::Clock::time_point last_used{};
  };

 public:
  explicit ClientLimits(std::size_t max_clients) : max_clients_(max_clients) {}

  // The slot of an admitted request: releases its stream when destroyed. Movable.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();
    // Whether it holds a place among its client's requests in flight (only under max_streams).
    bool held() const { return owner_ != nullptr; }

   private:
    friend class ClientLimits;
    ClientLimits* owner_ = nullptr;
    Entry* entry_ = nullptr;
  };

  // Admits one request of client `key` under `limit`, filling `slot` when admitted and the
  // limit counts streams (a slot it held before is released first); `retry_after` (seconds) is
  // set when refused.
  LimitVerdict admit(std::string_view key, const RateLimit& limit, Slot& slot,
                     std::int64_t& retry_after,
                     TokenBucket::Clock::time_point now = TokenBucket::Clock::now());
  std::size_t size() const;

 private:
  void release(Entry* entry);
  void evict_idle(TokenBucket::Clock::time_point now);

  std::size_t max_clients_;
  mutable std::mutex mutex_;
  // Looked up by string_view (no string built per request).
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries_;
};

// The host part of "HOST:PORT" / "[V6]:PORT" ("" stays "").
std::string_view address_host(std::string_view remote);

}  // namespace sluice
