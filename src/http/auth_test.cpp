#include "http/auth.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/api_error.hpp"

namespace sluice {
namespace {

const std::string kSecret = "slu_unit-test-token";

AccessConfig access_config() {
  AccessConfig config;
  config.auth.emplace();
  config.auth->anonymous_scopes = {"cubes"};
  TokenConfig token;
  token.name = "ci";
  token.sha256 = sha256_hex(kSecret);
  token.scopes = {"datasets:orders*", "jobs"};
  config.auth->tokens.push_back(token);
  return config;
}

HttpRequest request_with(std::string authorization) {
  HttpRequest request;
  request.remote = "10.1.2.3:4567";
  request.segments = {"v1", "cubes", "sales"};
  if (!authorization.empty()) request.headers.emplace_back("Authorization", std::move(authorization));
  return request;
}

ApiError thrown(const std::function<void()>& call) {
  try {
    call();
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "no ApiError";
  return ApiError(0, "", "");
}

std::string header(const ApiError& error, std::string_view name) {
  for (const auto& [key, value] : error.headers()) {
    if (key == name) return value;
  }
  return {};
}

TEST(Gatekeeper, IdentifiesCallers) {
  const Gatekeeper gatekeeper(access_config());
  HttpRequest request = request_with("Bearer " + kSecret);
  std::shared_ptr<const Caller> caller = gatekeeper.identify(request);
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->name, "ci");
  EXPECT_TRUE(caller->authenticated);

  caller = gatekeeper.identify(request_with(""));
  ASSERT_TRUE(caller);
  EXPECT_FALSE(caller->authenticated);
  EXPECT_TRUE(caller->may("cubes:sales"));

  ApiError error = thrown([&] { gatekeeper.identify(request_with("Bearer slu_wrong")); });
  EXPECT_EQ(error.status(), 401);
  EXPECT_EQ(error.code(), "invalid_token");
  EXPECT_EQ(header(error, "WWW-Authenticate"), R"(Bearer error="invalid_token")");
  EXPECT_EQ(thrown([&] { gatekeeper.identify(request_with("Basic " + kSecret)); }).code(),
            "invalid_token");
  // Without [auth]: no caller, no access control.
  EXPECT_EQ(Gatekeeper(AccessConfig{}).identify(request), nullptr);
}

// identify() remembers the last valid token per thread: a reload that drops it, or another
// gatekeeper without it, must not let it through.
TEST(Gatekeeper, ARememberedTokenCountsOnlyWhileItsTableIsInForce) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("sluice-auth-test-" + std::to_string(::getpid()) + ".toml");
  const auto write_tokens = [&file](const std::string& secret) {
    std::ofstream(file) << "[[tokens]]\nname = \"file\"\nsha256 = \"" << sha256_hex(secret)
                        << "\"\nscopes = [\"jobs\"]\n";
  };
  write_tokens("slu_first-secret");
  AccessConfig config = access_config();
  config.auth->tokens_file = file;
  Gatekeeper gatekeeper(config);
  const HttpRequest first = request_with("Bearer slu_first-secret");
  ASSERT_TRUE(gatekeeper.identify(first));
  ASSERT_TRUE(gatekeeper.identify(first));  // (now remembered)
  EXPECT_EQ(thrown([&] { gatekeeper.identify(request_with("Bearer slu_first-secreT")); }).code(),
            "invalid_token");

  // Another gatekeeper on the same thread, whose tables lack the token.
  const Gatekeeper other(access_config());
  EXPECT_EQ(thrown([&] { other.identify(first); }).code(), "invalid_token");

  ASSERT_TRUE(gatekeeper.identify(first));
  write_tokens("slu_second-secret");
  ASSERT_EQ(gatekeeper.reload(), "");
  EXPECT_EQ(thrown([&] { gatekeeper.identify(first); }).code(), "invalid_token");
  EXPECT_TRUE(gatekeeper.identify(request_with("Bearer slu_second-secret")));
  std::filesystem::remove(file);
}

TEST(Gatekeeper, ScopesPerRoute) {
  const Gatekeeper gatekeeper(access_config());
  HttpRequest anonymous = request_with("");
  anonymous.caller = gatekeeper.identify(anonymous);
  HttpRequest ci = request_with("Bearer " + kSecret);
  ci.caller = gatekeeper.identify(ci);

  check_access(anonymous, Access::needs("cubes:", 2));  // anonymous may read cubes
  check_access(anonymous, Access::open());
  ApiError error = thrown([&] { check_access(anonymous, Access::needs("jobs")); });
  EXPECT_EQ(error.status(), 401);
  EXPECT_EQ(error.code(), "unauthorized");
  EXPECT_EQ(header(error, "WWW-Authenticate"), "Bearer");

  check_access(ci, Access::needs("jobs"));
  error = thrown([&] { check_access(ci, Access::needs("cubes:", 2)); });
  EXPECT_EQ(error.status(), 403);
  EXPECT_EQ(error.code(), "forbidden");
  EXPECT_NE(std::string(error.what()).find("cubes:sales"), std::string::npos);
  EXPECT_EQ(error.fields().at(0).second, "cubes:sales");
  error = thrown([&] { check_access(ci, Access{}); });  // the default: admin
  EXPECT_EQ(error.fields().at(0).second, "admin");

  EXPECT_TRUE(may(ci, "datasets:orders_report"));
  EXPECT_FALSE(may(ci, "datasets:countries"));
  HttpRequest open = request_with("");  // no caller: no access control
  EXPECT_TRUE(may(open, "admin"));
  check_access(open, Access::needs("admin"));
}

TEST(Gatekeeper, LimitsPerAddressAndToken) {
  AccessConfig config = access_config();
  config.limits.per_address.requests_per_second = 1;
  config.limits.per_address.burst = 3;
  config.limits.per_token.max_streams = 1;
  const Gatekeeper gatekeeper(config);
  ASSERT_TRUE(gatekeeper.limits_enabled());
  HttpRequest ci = request_with("Bearer " + kSecret);
  ci.caller = gatekeeper.identify(ci);
  ClientLimits::Slot address;
  ClientLimits::Slot token;
  gatekeeper.admit(ci, address, token);
  ClientLimits::Slot address2;
  ClientLimits::Slot token2;
  ApiError error = thrown([&] { gatekeeper.admit(ci, address2, token2); });
  EXPECT_EQ(error.status(), 429);
  EXPECT_EQ(error.code(), "too_many_streams");
  EXPECT_EQ(header(error, "Retry-After"), "1");
  token = ClientLimits::Slot();  // the token's request ended
  gatekeeper.admit(ci, address2, token2);  // the third of the address's burst
  HttpRequest other = request_with("");
  other.caller = gatekeeper.identify(other);
  ClientLimits::Slot address3;
  ClientLimits::Slot token3;
  error = thrown([&] { gatekeeper.admit(other, address3, token3); });  // same address
  EXPECT_EQ(error.code(), "rate_limited");
  other.remote = "10.9.9.9:1";
  gatekeeper.admit(other, address3, token3);  // another address is served
}

}  // namespace
}  // namespace sluice
