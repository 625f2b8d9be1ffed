// sluice token create: a new API token, printed once, with the TOML lines that grant it.

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <chrono>
#include <ctime>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

#include "app/token_command.hpp"
#include "core/access.hpp"

namespace sluice {
namespace {

// "30d", "12h", "90m", "45s": at most ten years.
std::chrono::seconds parse_token_lifetime(std::string_view text) {
  std::int64_t count = 0;
  const char* end = text.data() + text.size();
  const auto [rest, error] = std::from_chars(text.data(), end, count);
  if (error != std::errc() || rest + 1 != end || count <= 0) {
    throw std::runtime_error("--expires: expected a number and a unit (s, m, h, d): 30d, 12h");
  }
  std::int64_t unit = 0;
  switch (*rest) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: throw std::runtime_error("--expires: the unit is s, m, h or d (30d, 12h)");
  }
  constexpr std::int64_t kTenYears = 3650LL * 86400;
  if (count > kTenYears / unit) throw std::runtime_error("--expires: at most 3650d");
  return std::chrono::seconds(count * unit);
}

// 32 random bytes from OpenSSL's CSPRNG, base64url without padding (43 characters), after
// "slu_" so that secret scanners and people recognise it.
std::string new_token() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("the system's random generator failed");
  }
  std::array<unsigned char, 48> encoded{};
  const int length = EVP_EncodeBlock(encoded.data(), bytes.data(), static_cast<int>(bytes.size()));
  std::string token = "slu_";
  for (int i = 0; i < length; ++i) {
    const char c = static_cast<char>(encoded[static_cast<std::size_t>(i)]);
    if (c == '=') break;
    token += c == '+' ? '-' : c == '/' ? '_' : c;
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return token;
}

std::string utc_text(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  std::array<char, 32> text{};
  const std::size_t size = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &parts);
  return {text.data(), size};
}

std::string toml_quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";  // names and scopes hold no quote or backslash
}

}  // namespace

int token_create_command(const TokenCreateOptions& options) {
  if (options.name.empty()) throw std::runtime_error("--name: 1 to 64 letters, digits, '_', '-' or '.'");
  for (char c : options.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok || options.name.size() > 64) {
      throw std::runtime_error("--name: 1 to 64 letters, digits, '_', '-' or '.'");
    }
  }
  for (const std::string& scope : options.scopes) {
    if (std::string problem = scope_problem(scope); !problem.empty()) {
      throw std::runtime_error("--scope " + scope + ": " + problem);
    }
  }
  std::optional<std::chrono::system_clock::time_point> expires;
  if (options.expires) {
    expires = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()) +
              parse_token_lifetime(*options.expires);
  }
  const std::string token = new_token();
  std::string scopes;
  for (const std::string& scope : options.scopes) {
    scopes += (scopes.empty() ? "" : ", ") + toml_quoted(scope);
  }
  // The token alone on the first line (for scripts); it is shown this once and stored nowhere.
  std::cout << token << "\n\n"
            << "# Give the token above to its user; it is not stored anywhere and cannot be "
               "shown again.\n"
            << "# Add these lines to [auth] tokens_file (then send the server SIGHUP), or to the\n"
            << "# configuration as [[auth.tokens]]:\n"
            << "[[tokens]]\n"
            << "name = " << toml_quoted(options.name) << "\n"
            << "sha256 = \"" << sha256_hex(token) << "\"\n"
            << "scopes = [" << scopes << "]\n";
  if (expires) std::cout << "expires = " << utc_text(*expires) << "\n";
  return 0;
}

}  // namespace sluice
