// [server] ops_listen and [server.tls]: the PEM files are checked when the config is read, and
// every problem names its key and line.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.hpp"
#include "core/tls_files.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;

// A self-signed P-256 certificate (CN=unit), its key, and a key of another pair.
constexpr const char* kCertificate = R"(-----BEGIN CERTIFICATE-----
MIIBdTCCARugAwIBAgIUWJmCJZc2e2F+IT60ex6hPd5jayswCgYIKoZIzj0EAwIw
DzENMAsGA1UEAwwEdW5pdDAgFw0yNjEyMDcxNDQyMjBaGA8yMTI2MTExMzE0NDIy
MFowDzENMAsGA1UEAwwEdW5pdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFYH
7BUDJtsTW3VzYp6sH1erf8oZViozs05T7x2relx5NdEbKmEgCFeOrYEfdvFrnqZP
iIXtsgVrXOvZfpK38P6jUzBRMB0GA1UdDgQWBBTFF70eSeDqm6IQiuAXnA9644Ju
XjAfBgNVHSMEGDAWgBTFF70eSeDqm6IQiuAXnA9644JuXjAPBgNVHRMBAf8EBTAD
AQH/MAoGCCqGSM49BAMCA0gAMEUCIBHdzKD5655LLZO6Dy+4Te2enW+Ge+MTu4VI
tqQescTpAiEA4glQj2XHfn2eYeEwEfv1a2flgYJ9nXklBF/BlQt5czk=
-----END CERTIFICATE-----
)";
constexpr const char* kKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWVklxoQBYEBfHblc
MZNB5oxyx0EplWF2gXrfUFItL9KhRANCAARWB+wVAybbE1t1c2KerB9Xq3/KGVYq
M7NOU+8dq3pceTXRGyphIAhXjq2BH3bxa56mT4iF7bIFa1zr2X6St/D+
-----END PRIVATE KEY-----
)";
constexpr const char* kOtherKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2g+U+QmcT3WI4s1d
/iAE2P45skdd6bh+RdoKJPkuo2uhRANCAATGER3s/s7CywGVk6T2RIo/uojJZVok
pBR8AL15gKfDtdWWrSdv5cG2vNXJ5a2a5XVSg3VUovtPBIiEmSWW5sod
-----END PRIVATE KEY-----
)";

class ConfigTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sluice-tls-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    write("cert.pem", kCertificate);
    write("key.pem", kKey);
    write("other.pem", kOtherKey);
    write("chain.pem", std::string(kCertificate) + kCertificate);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
  }

  std::string error_of(const std::string& server) const {
    try {
      parse_config("[server]\nlisten = \"127.0.0.1:0\"\n" + server, dir_ / "sluice.toml");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(ConfigTlsTest, FilesAreResolvedAgainstTheConfigFile) {
  const Config config = parse_config(
      "[server]\nops_listen = \"127.0.0.1:9091\"\n[server.tls]\ncertificate = \"chain.pem\"\n"
      "key = \"key.pem\"\n",
      dir_ / "sluice.toml");
  ASSERT_TRUE(config.server.tls.has_value());
  EXPECT_EQ(config.server.tls->certificate, dir_ / "chain.pem");
  EXPECT_EQ(config.server.tls->key, dir_ / "key.pem");
  EXPECT_EQ(config.server.ops_listen, "127.0.0.1:9091");
  EXPECT_FALSE(parse_config("[server]\n", dir_ / "sluice.toml").server.tls.has_value());
}

TEST_F(ConfigTlsTest, ProblemsNameTheKeyAndLine) {
  const std::string file = (dir_ / "sluice.toml").string();
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"cert.pem\"\nkey = \"other.pem\"\n")
                .rfind(file + ":5: server.tls.key: the key in ", 0),
            0u);
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"none.pem\"\nkey = \"key.pem\"\n")
                .rfind(file + ":4: server.tls.certificate: cannot read ", 0),
            0u);
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"key.pem\"\nkey = \"key.pem\"\n")
                .rfind(file + ":4: server.tls.certificate: no PEM certificate in ", 0),
            0u);
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"cert.pem\"\nkey = \"cert.pem\"\n")
                .rfind(file + ":5: server.tls.key: no unencrypted PEM private key in ", 0),
            0u);
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"cert.pem\"\n")
                .rfind(file + ":3: server.tls.key: missing required key", 0),
            0u);
  EXPECT_EQ(error_of("[server.tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\nca = \"x\"\n")
                .rfind(file + ":6: server.tls.ca: unknown key", 0),
            0u);
  EXPECT_EQ(error_of("ops_listen = \"9091\"\n").rfind(file + ":3: server.ops_listen: expected HOST:PORT", 0),
            0u);
}

TEST_F(ConfigTlsTest, CheckTlsFilesSaysWhichFile) {
  EXPECT_FALSE(check_tls_files(dir_ / "cert.pem", dir_ / "key.pem").has_value());
  const auto mismatch = check_tls_files(dir_ / "cert.pem", dir_ / "other.pem");
  ASSERT_TRUE(mismatch.has_value());
  EXPECT_TRUE(mismatch->in_key);
  const auto missing = check_tls_files(dir_ / "none.pem", dir_ / "key.pem");
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->in_key);
}

}  // namespace
}  // namespace sluice
