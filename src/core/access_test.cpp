#include "core/access.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "core/config.hpp"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

TEST(Scopes, CoverExactParentAndPatterns) {
  EXPECT_TRUE(scope_covers("jobs", "jobs"));
  EXPECT_TRUE(scope_covers("*", "datasets:orders"));
  EXPECT_TRUE(scope_covers("admin", "cubes:sales"));
  EXPECT_TRUE(scope_covers("datasets", "datasets:orders"));
  EXPECT_TRUE(scope_covers("archives", "archives:create"));
  EXPECT_TRUE(scope_covers("datasets:*", "datasets:orders"));
  EXPECT_TRUE(scope_covers("datasets:orders*", "datasets:orders"));
  EXPECT_TRUE(scope_covers("datasets:orders*", "datasets:orders_report"));
  EXPECT_FALSE(scope_covers("datasets:orders*", "datasets:countries"));
  EXPECT_FALSE(scope_covers("datasets:orders", "datasets:orders_report"));
  EXPECT_FALSE(scope_covers("datasets", "datasetsx"));
  EXPECT_FALSE(scope_covers("datasets:orders", "datasets"));
  EXPECT_FALSE(scope_covers("archives:read", "archives:create"));
  EXPECT_FALSE(scope_covers("jobs", "admin"));
  EXPECT_FALSE(scope_covers("cubes:sales", "cubes:sales2"));
  EXPECT_FALSE(scope_covers("files", "archives:read"));
}

TEST(Scopes, CallerMayWhenAnyScopeCovers) {
  Caller caller;
  caller.scopes = {"jobs", "datasets:orders*"};
  EXPECT_TRUE(caller.may("jobs"));
  EXPECT_TRUE(caller.may("datasets:orders_report"));
  EXPECT_FALSE(caller.may("admin"));
  EXPECT_FALSE(Caller{}.may("jobs"));
}

TEST(Scopes, ProblemsNameTheRule) {
  for (const char* good : {"*", "admin", "jobs", "files", "archives:create", "archives:read",
                           "datasets", "datasets:*", "datasets:orders", "datasets:ord*",
                           "cubes", "cubes:sales"}) {
    EXPECT_EQ(scope_problem(good), "") << good;
  }
  EXPECT_NE(scope_problem("dataset:orders"), "");
  EXPECT_NE(scope_problem("datasets:"), "");
  EXPECT_NE(scope_problem("datasets:a*b"), "");
  EXPECT_NE(scope_problem("datasets:a b"), "");
  EXPECT_NE(scope_problem("archives:delete"), "");
  EXPECT_NE(scope_problem(""), "");
}

TokenConfig token(std::string name, const std::string& secret, std::vector<std::string> scopes) {
  TokenConfig config;
  config.name = std::move(name);
  config.sha256 = sha256_hex(secret);
  config.scopes = std::move(scopes);
  return config;
}

TEST(TokenTable, FindsByHashAndHonoursExpiry) {
  const auto now = std::chrono::system_clock::now();
  TokenConfig expiring = token("old", "secret-old", {"jobs"});
  expiring.expires = now + seconds(10);
  TokenConfig limited = token("limited", "secret-limited", {"cubes"});
  limited.requests_per_second = 5;
  RateLimit defaults;
  defaults.requests_per_second = 100;
  defaults.max_streams = 3;
  const TokenTable table({token("ci", "secret-ci", {"datasets:*"}), expiring, limited}, defaults);
  EXPECT_EQ(table.size(), 3u);

  TokenVerdict verdict = TokenVerdict::kUnknown;
  auto caller = table.find("secret-ci", now, verdict);
  ASSERT_EQ(verdict, TokenVerdict::kValid);
  EXPECT_EQ(caller->name, "ci");
  EXPECT_TRUE(caller->authenticated);
  EXPECT_TRUE(caller->may("datasets:orders"));
  EXPECT_EQ(caller->limits.requests_per_second, 100);

  EXPECT_EQ(table.find("secret-limited", now, verdict)->limits.requests_per_second, 5);
  EXPECT_EQ(table.find("secret-limited", now, verdict)->limits.max_streams, 3u);

  EXPECT_EQ(table.find("secret-c", now, verdict), nullptr);
  EXPECT_EQ(verdict, TokenVerdict::kUnknown);
  EXPECT_EQ(table.find(sha256_hex("secret-ci"), now, verdict), nullptr);  // the hash is no token
  EXPECT_EQ(verdict, TokenVerdict::kUnknown);

  EXPECT_NE(table.find("secret-old", now + seconds(9), verdict), nullptr);
  EXPECT_EQ(table.find("secret-old", now + seconds(10), verdict), nullptr);
  EXPECT_EQ(verdict, TokenVerdict::kExpired);
}

TEST(TokenBucket, BurstThenSustainedRate) {
  TokenBucket bucket;
  const auto start = TokenBucket::Clock::now();
  std::int64_t retry_after = 0;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.take(2, 5, start, retry_after)) << i;
  EXPECT_FALSE(bucket.take(2, 5, start, retry_after));
  EXPECT_EQ(retry_after, 1);
  // 2 per second: after 0.5 s one more, not two.
  EXPECT_TRUE(bucket.take(2, 5, start + std::chrono::milliseconds(500), retry_after));
  EXPECT_FALSE(bucket.take(2, 5, start + std::chrono::milliseconds(500), retry_after));
  // Never more than the burst, however long the pause.
  int taken = 0;
  while (bucket.take(2, 5, start + seconds(100), retry_after)) ++taken;
  EXPECT_EQ(taken, 5);
  // A slow rate says how long to wait.
  TokenBucket slow;
  EXPECT_TRUE(slow.take(0.1, 1, start, retry_after));
  EXPECT_FALSE(slow.take(0.1, 1, start, retry_after));
  EXPECT_EQ(retry_after, 10);
}

TEST(ClientLimits, RateAndStreamsPerClient) {
  ClientLimits limits(100);
  RateLimit limit;
  limit.requests_per_second = 1;
  limit.burst = 2;
  limit.max_streams = 2;
  const auto now = TokenBucket::Clock::now();
  std::int64_t retry_after = 0;
  ClientLimits::Slot a;
  ClientLimits::Slot b;
  ClientLimits::Slot c;
  EXPECT_EQ(limits.admit("10.0.0.1", limit, a, retry_after, now), LimitVerdict::kAdmitted);
  EXPECT_EQ(limits.admit("10.0.0.1", limit, b, retry_after, now), LimitVerdict::kAdmitted);
  EXPECT_EQ(limits.admit("10.0.0.1", limit, c, retry_after, now), LimitVerdict::kTooManyStreams);
  // Another client is not affected.
  EXPECT_EQ(limits.admit("10.0.0.2", limit, c, retry_after, now), LimitVerdict::kAdmitted);
  c = ClientLimits::Slot();
  a = ClientLimits::Slot();  // one stream ended; the bucket is still empty
  EXPECT_EQ(limits.admit("10.0.0.1", limit, a, retry_after, now), LimitVerdict::kRateLimited);
  EXPECT_EQ(limits.admit("10.0.0.1", limit, a, retry_after, now + seconds(1)),
            LimitVerdict::kAdmitted);
}

TEST(ClientLimits, EvictsIdleClientsButKeepsThoseInFlight) {
  ClientLimits limits(4);
  RateLimit limit;
  limit.max_streams = 10;
  const auto now = TokenBucket::Clock::now();
  std::int64_t retry_after = 0;
  ClientLimits::Slot held;
  ASSERT_EQ(limits.admit("busy", limit, held, retry_after, now), LimitVerdict::kAdmitted);
  for (int i = 0; i < 1000; ++i) {
    ClientLimits::Slot slot;
    ASSERT_EQ(limits.admit("client" + std::to_string(i), limit, slot, retry_after,
                           now + seconds(2 * i)),
              LimitVerdict::kAdmitted);
    EXPECT_LE(limits.size(), 5u);
  }
  // "busy" was never evicted: its stream still counts.
  ClientLimits::Slot more;
  limit.max_streams = 1;
  EXPECT_EQ(limits.admit("busy", limit, more, retry_after, now), LimitVerdict::kTooManyStreams);
}

TEST(AddressHost, StripsThePort) {
  EXPECT_EQ(address_host("127.0.0.1:5000"), "127.0.0.1");
  EXPECT_EQ(address_host("[::1]:5000"), "::1");
  EXPECT_EQ(address_host(""), "");
}

class TokenFile : public ::testing::Test {
 protected:
  fs::path write(const std::string& text) {
    fs::path file = fs::temp_directory_path() /
                          ("sluice-tokens-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(file) << text;
    files_.push_back(file);
    return file;
  }
  void TearDown() override {
    for (const fs::path& file : files_) fs::remove(file);
  }
  std::vector<fs::path> files_;
};

const std::string kHash(64, 'a');

TEST_F(TokenFile, ReadsTokens) {
  const fs::path file = write("[[tokens]]\nname = \"ci\"\nsha256 = \"" + kHash +
                              "\"\nscopes = [\"datasets:orders*\", \"jobs\"]\n"
                              "expires = 2030-01-02T03:04:05Z\nrequests_per_second = 2.5\n"
                              "max_streams = 4\n\n[[tokens]]\nname = \"b\"\nsha256 = \"" +
                              std::string(64, 'b') + "\"\nscopes = [\"cubes\"]\n"
                              "expires = 2030-01-02\n");
  const std::vector<TokenConfig> tokens = load_tokens_file(file);
  ASSERT_EQ(tokens.size(), 2u);
  EXPECT_EQ(tokens[0].name, "ci");
  EXPECT_EQ(tokens[0].scopes, (std::vector<std::string>{"datasets:orders*", "jobs"}));
  EXPECT_EQ(tokens[0].requests_per_second, 2.5);
  EXPECT_EQ(tokens[0].max_streams, 4u);
  // 2030-01-02T03:04:05Z
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*tokens[0].expires), 1893553445);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*tokens[1].expires), 1893542400);
}

void expect_error(const std::function<void()>& load, const std::string& part) {
  try {
    load();
    ADD_FAILURE() << "no error; expected " << part;
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find(part), std::string::npos) << error.what();
  }
}

TEST_F(TokenFile, ErrorsNameFileLineAndKey) {
  const std::string head = "[[tokens]]\nname = \"ci\"\nsha256 = \"" + kHash + "\"\n";
  fs::path file = write(head + "scopes = [\"datasets:orders\", \"dataset:x\"]\n");
  expect_error([&] { load_tokens_file(file); },
               file.string() + ":4: tokens[0].scopes[1]: \"dataset:x\": unknown scope");
  file = write("[[tokens]]\nname = \"ci\"\nsha256 = \"slu_secret\"\nscopes = []\n");
  expect_error([&] { load_tokens_file(file); }, ":3: tokens[0].sha256: expected the token's SHA-256");
  file = write(head + "scopes = []\n" + head + "scopes = []\n");
  expect_error([&] { load_tokens_file(file); }, ":6: tokens[1].name: duplicate token name \"ci\"");
  file = write(head + "scopes = []\nexpires = 2030-01-01T00:00:00\n");
  expect_error([&] { load_tokens_file(file); }, ":5: tokens[0].expires: give the time with its offset");
  file = write(head + "scopes = []\nowner = \"x\"\n");
  expect_error([&] { load_tokens_file(file); }, ":5: tokens[0].owner: unknown key");
  file = write(head + "scopes = []\n");
  TokenConfig configured;
  configured.name = "other";
  configured.sha256 = kHash;
  expect_error([&] { load_tokens_file(file, {configured}); },
               ":3: tokens[0].sha256: the same token hash as token \"other\"");
}

TEST(AuthConfig, AuthAndLimitsSections) {
  const AccessConfig config = parse_access_config(
      "[auth]\ntokens_file = \"tokens.toml\"\nanonymous_scopes = [\"cubes\"]\n"
      "[[auth.tokens]]\nname = \"ops\"\nsha256 = \"" + kHash + "\"\nscopes = [\"admin\"]\n"
      "burst = 50\n"
      "[limits]\nper_address_requests_per_second = 20\nper_address_burst = 40\n"
      "per_token_max_streams = 8\nmax_addresses = 500\n",
      "/etc/sluice/sluice.toml");
  ASSERT_TRUE(config.auth);
  EXPECT_EQ(config.auth->tokens_file, fs::path("/etc/sluice/tokens.toml"));
  EXPECT_EQ(config.auth->anonymous_scopes, std::vector<std::string>{"cubes"});
  ASSERT_EQ(config.auth->tokens.size(), 1u);
  EXPECT_EQ(config.auth->tokens[0].burst, 50);
  EXPECT_EQ(config.limits.per_address.requests_per_second, 20);
  EXPECT_EQ(config.limits.per_address.burst, 40);
  EXPECT_EQ(config.limits.per_token.max_streams, 8u);
  EXPECT_EQ(config.limits.max_addresses, 500u);
  EXPECT_TRUE(config.limits.any());
  EXPECT_FALSE(parse_access_config("", "/x/s.toml").auth);
  EXPECT_FALSE(parse_access_config("", "/x/s.toml").limits.any());
  expect_error([] { parse_config("[limits]\nper_address_requests_per_second = 0\n", "/x/s.toml"); },
               "/x/s.toml:2: limits.per_address_requests_per_second: must be > 0");
  expect_error([] { parse_config("[auth]\nanonymous_scopes = [\"everything\"]\n", "/x/s.toml"); },
               "/x/s.toml:2: auth.anonymous_scopes[0]: \"everything\": unknown scope");
}

}  // namespace
}  // namespace sluice
