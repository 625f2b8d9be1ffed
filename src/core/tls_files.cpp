#include "core/tls_files.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

namespace sluice {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

// OpenSSL's reason for the last failure, and the error queue emptied.
std::string openssl_reason() {
  const auto code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(code);
  return reason != nullptr ? reason : "error " + std::to_string(code);
}

// An encrypted key would make OpenSSL prompt on the terminal: refuse instead.
int no_passphrase(char* /*buffer*/, int /*size*/, int /*rwflag*/, void* /*user*/) { return -1; }

std::unique_ptr<BIO, BioFree> open_file(const std::filesystem::path& file) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_file(file.c_str(), "r"));
}

}  // namespace

std::optional<TlsFilesProblem> check_tls_files(const std::filesystem::path& certificate,
                                               const std::filesystem::path& key) {
  ERR_clear_error();
  auto cert_file = open_file(certificate);
  if (!cert_file) {
    ERR_clear_error();
    return TlsFilesProblem{false, "cannot read " + certificate.string()};
  }
  std::unique_ptr<X509, X509Free> leaf(
      PEM_read_bio_X509(cert_file.get(), nullptr, no_passphrase, nullptr));
  if (!leaf) {
    return TlsFilesProblem{false, "no PEM certificate in " + certificate.string() + " (" +
                                      openssl_reason() + ")"};
  }
  auto key_file = open_file(key);
  if (!key_file) {
    ERR_clear_error();
    return TlsFilesProblem{true, "cannot read " + key.string()};
  }
  std::unique_ptr<EVP_PKEY, KeyFree> private_key(
      PEM_read_bio_PrivateKey(key_file.get(), nullptr, no_passphrase, nullptr));
  if (!private_key) {
    return TlsFilesProblem{true, "no unencrypted PEM private key in " + key.string() + " (" +
                                     openssl_reason() + ")"};
  }
  if (X509_check_private_key(leaf.get(), private_key.get()) != 1) {
    ERR_clear_error();
    return TlsFilesProblem{true, "the key in " + key.string() +
                                     " does not belong to the first certificate of " +
                                     certificate.string()};
  }
  return std::nullopt;
}

}  // namespace sluice
