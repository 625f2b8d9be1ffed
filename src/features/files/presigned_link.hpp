#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Presigned links to stored objects: GET /v1/files/{key}?expires=UNIX_SECONDS&sig=HEX, where
// sig is the lower-case hex HMAC-SHA-256, keyed with the link secret, of
// "GET\n" + key + "\n" + expires (expires as its decimal digits). The same link serves HEAD.
// Pure functions of their arguments: thread-safe.

// The longest lifetime `sluice presign` gives a link (like S3's presigned URLs).
inline constexpr std::chrono::seconds kMaxLinkLifetime{604800};  // 7 days
inline constexpr std::chrono::seconds kDefaultLinkLifetime{3600};

// The secrets a server accepts: `current` (the environment variable named by
// [storage] link_secret_env) and, while secrets rotate, `previous` (the same name + "_PREVIOUS").
// Links are disabled when there is no current secret.
struct LinkSecrets {
  std::optional<std::string> current;
  std::optional<std::string> previous;
  bool enabled() const { return current.has_value(); }
};

// Reads both variables; an empty value counts as unset.
LinkSecrets link_secrets_from_env(const std::string& variable);

// The signature of a link to `key` valid until `expires` (Unix seconds): 64 lower-case hex
// digits.
std::string link_signature(std::string_view secret, std::string_view key, std::int64_t expires);

// Whether `a` and `b` are equal, in a time that depends only on their lengths.
bool equal_in_constant_time(std::string_view a, std::string_view b);

// The `expires` parameter: 1 to 18 decimal digits without a leading zero (no sign, no spaces;
// one spelling per value, the one signed), else nothing.
std::optional<std::int64_t> parse_link_expires(std::string_view text);

enum class LinkVerdict { kValid, kExpired, kInvalid };

// Checks a link's parameters (nothing for a missing one): kInvalid when `expires` is malformed
// or `sig` is not the signature under either secret, else kExpired when expires < now (the
// signature is checked first, so an unsigned probe learns nothing from the expiry).
// REQUIRES: secrets.enabled().
LinkVerdict verify_link(const LinkSecrets& secrets, std::string_view key,
                        std::optional<std::string_view> expires, std::optional<std::string_view> sig,
                        std::int64_t now);

// A link lifetime as `sluice presign --expires` takes it: a positive number followed by s, m, h
// or d ("30s", "15m", "1h", "7d"), at most kMaxLinkLifetime. On failure, `error` says why.
struct LinkLifetime {
  std::chrono::seconds seconds{0};
  std::string error;  // empty on success
};
LinkLifetime parse_link_lifetime(std::string_view text);

// The path and query of a presigned link: "/v1/files/" + the key percent-encoded ('/' kept) +
// "?expires=" + expires + "&sig=" + the signature.
std::string presigned_path(std::string_view secret, std::string_view key, std::int64_t expires);

}  // namespace sluice
