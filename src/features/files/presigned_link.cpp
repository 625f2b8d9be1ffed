#include "features/files/presigned_link.hpp"

#include <openssl/crypto.h>

#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "core/sha256.hpp"
#include "s3/s3_signing.hpp"

namespace sluice {
namespace {

std::optional<std::string> env_value(const std::string& name) {
  const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read at start
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

LinkSecrets link_secrets_from_env(const std::string& variable) {
  return LinkSecrets{env_value(variable), env_value(variable + "_PREVIOUS")};
}

std::string link_signature(std::string_view secret, std::string_view key, std::int64_t expires) {
  std::string message = "GET\n";
  message.append(key);
  message += '\n';
  message += std::to_string(expires);
  return to_hex(hmac_sha256(secret, message));
}

bool equal_in_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::int64_t> parse_link_expires(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;  // one spelling per value
  std::int64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

LinkVerdict verify_link(const LinkSecrets& secrets, std::string_view key,
                        std::optional<std::string_view> expires, std::optional<std::string_view> sig,
                        std::int64_t now) {
  if (!expires || !sig || !secrets.current) return LinkVerdict::kInvalid;
  const std::optional<std::int64_t> when = parse_link_expires(*expires);
  if (!when) return LinkVerdict::kInvalid;
  // Both secrets are always tried, so the time taken does not tell which one matched.
  bool valid = equal_in_constant_time(link_signature(*secrets.current, key, *when), *sig);
  if (secrets.previous) {
    valid = equal_in_constant_time(link_signature(*secrets.previous, key, *when), *sig) || valid;
  }
  if (!valid) return LinkVerdict::kInvalid;
  return *when < now ? LinkVerdict::kExpired : LinkVerdict::kValid;
}

LinkLifetime parse_link_lifetime(std::string_view text) {
  LinkLifetime result;
  const std::string shown(text.substr(0, 40));
  if (text.size() < 2) {
    result.error = "'" + shown + "' is not a duration such as 30s, 15m, 1h or 7d";
    return result;
  }
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: break;
  }
  const std::optional<std::int64_t> count = parse_link_expires(text.substr(0, text.size() - 1));
  if (unit == 0 || !count) {
    result.error = "'" + shown + "' is not a duration such as 30s, 15m, 1h or 7d";
    return result;
  }
  if (*count == 0) {
    result.error = "'" + shown + "' is not a positive duration";
    return result;
  }
  if (*count > kMaxLinkLifetime.count() / unit) {
    result.error = "'" + shown + "' is beyond the maximum of 7d (" +
                   std::to_string(kMaxLinkLifetime.count()) + " seconds)";
    return result;
  }
  result.seconds = std::chrono::seconds(*count * unit);
  return result;
}

std::string presigned_path(std::string_view secret, std::string_view key, std::int64_t expires) {
  return "/v1/files/" + s3_uri_encode(key, true) + "?expires=" + std::to_string(expires) +
         "&sig=" + link_signature(secret, key, expires);
}

}  // namespace sluice
