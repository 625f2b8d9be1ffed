#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice {

struct TokenCreateOptions {
  std::string name;
  std::vector<std::string> scopes;
  std::optional<std::string> expires;  // 30d, 12h, 90m (at most 3650d); none: never
};

// sluice token create: prints a new API token once (alone on the first line), then the TOML
// lines that grant it (its SHA-256, scopes, expiry) for [auth] tokens_file or [[auth.tokens]].
int token_create_command(const TokenCreateOptions& options);

}  // namespace sluice
