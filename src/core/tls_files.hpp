#pragma once

// The PEM files of [server.tls], checked with libcrypto alone (core does not link libssl): read
// by the config loader (`check-config` and the start) and again before a reload (SIGHUP).

#include <filesystem>
#include <optional>
#include <string>

namespace sluice {

struct TlsFilesProblem {
  bool in_key = false;  // the key file's problem (else the certificate file's)
  std::string message;  // "cannot open ...", "no PEM certificate in ...", "does not match ..."
};

// Nothing when `certificate` holds at least one PEM certificate (the leaf first, then its
// chain), `key` an unencrypted PEM private key, and the key belongs to the leaf.
std::optional<TlsFilesProblem> check_tls_files(const std::filesystem::path& certificate,
                                               const std::filesystem::path& key);

}  // namespace sluice
