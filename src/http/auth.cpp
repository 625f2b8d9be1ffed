#include "http/auth.hpp"

#include <openssl/crypto.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "core/api_error.hpp"
#include "core/metrics.hpp"

namespace sluice {
namespace {

struct AuthMetrics {
  Counter& unauthorized;
  Counter& invalid_token;
  Counter& forbidden;
  Counter& rate_limited;
  Counter& too_many_streams;
  Gauge& tokens;
  Counter& reloads_ok;
  Counter& reloads_failed;
};

const AuthMetrics& auth_metrics() {
  static const AuthMetrics counters = [] {
    MetricsRegistry& registry = metrics();
    const std::string rejected = "sluice_auth_rejections_total";
    const std::string help = "Requests refused by authentication, scopes or limits, by reason.";
    const std::string reloads = "sluice_auth_token_reloads_total";
    const std::string reloads_help = "Re-reads of [auth] tokens_file (SIGHUP), by result.";
    return AuthMetrics{
        registry.counter(rejected, help, R"(reason="unauthorized")"),
        registry.counter(rejected, help, R"(reason="invalid_token")"),
        registry.counter(rejected, help, R"(reason="forbidden")"),
        registry.counter(rejected, help, R"(reason="rate_limited")"),
        registry.counter(rejected, help, R"(reason="too_many_streams")"),
        registry.gauge("sluice_auth_tokens", "API tokens in force ([auth] and its tokens_file)."),
        registry.counter(reloads, reloads_help, R"(result="ok")"),
        registry.counter(reloads, reloads_help, R"(result="failed")"),
    };
  }();
  return counters;
}

// The configured limits, for dashboards next to the rejections (0 = unlimited).
void publish_limits(const LimitsConfig& limits) {
  MetricsRegistry& registry = metrics();
  const auto publish = [&registry](const std::string& client, const RateLimit& limit) {
    const std::string labels = "client=\"" + client + "\"";
    registry.gauge("sluice_limit_requests_per_second",
                   "Configured sustained requests per second per client (0: unlimited).", labels)
        .set(static_cast<std::int64_t>(limit.requests_per_second));
    registry.gauge("sluice_limit_burst", "Configured burst per client (requests).", labels)
        .set(static_cast<std::int64_t>(limit.limits_rate() ? limit.bucket_size() : 0));
    registry.gauge("sluice_limit_max_streams",
                   "Configured requests in flight per client (0: unlimited).", labels)
        .set(static_cast<std::int64_t>(limit.max_streams));
  };
  publish("address", limits.per_address);
  publish("token", limits.per_token);
}

ApiError unauthorized(std::string code, const std::string& message) {
  ApiError error(401, std::move(code), message);
  error.with_header("WWW-Authenticate",
                    error.code() == "invalid_token" ? R"(Bearer error="invalid_token")" : "Bearer");
  return error;
}

// Every token table a gatekeeper put in force gets the next number (never 0).
std::uint64_t next_generation() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The last valid token this I/O thread was shown and whose it is: a keep-alive client sends the
// same Authorization header with every request, which then costs one constant-time comparison
// instead of a SHA-256, a hash lookup and the table's lock. Counts only while the token table
// it came from is in force (a reload, another gatekeeper: looked up again).
struct RememberedToken {
  std::uint64_t generation = 0;  // 0: none
  std::string secret;
  std::shared_ptr<const Caller> caller;
};
thread_local RememberedToken remembered;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

bool starts_with_bearer(std::string_view value) {
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if ((value[i] | 0x20) != kScheme[i]) return false;
  }
  return true;
}

}  // namespace

bool may(const HttpRequest& request, std::string_view scope) {
  return request.caller == nullptr || request.caller->may(scope);
}

bool may_read_dataset(const HttpRequest& request, std::string_view name) {
  return may(request, "datasets:" + std::string(name));
}

void require_scope(const HttpRequest& request, std::string_view scope) {
  if (may(request, scope)) return;
  if (!request.caller->authenticated) {
    auth_metrics().unauthorized.add();
    throw unauthorized("unauthorized", "this request needs an API token (Authorization: Bearer "
                                       "TOKEN) with scope " + std::string(scope));
  }
  auth_metrics().forbidden.add();
  throw ApiError(403, "forbidden",
                 "token " + request.caller->name + " lacks scope " + std::string(scope),
                 {{"scope", std::string(scope)}});
}

void check_access(const HttpRequest& request, const Access& access) {
  if (access.kind != Access::Kind::kScope || request.caller == nullptr) return;
  const bool by_segment = access.segment >= 0 &&
                          static_cast<std::size_t>(access.segment) < request.segments.size();
  require_scope(request, by_segment ? access.scope + request.segments[access.segment]
                                    : access.scope);
}

Gatekeeper::Gatekeeper(const AccessConfig& config)
    : auth_(config.auth),
      limits_(config.limits),
      addresses_(config.limits.max_addresses),
      token_limits_(1'000'000) {
  auth_metrics();
  publish_limits(limits_);
  if (!auth_) return;
  auto anonymous = std::make_shared<Caller>();
  anonymous->scopes = auth_->anonymous_scopes;
  anonymous_ = std::move(anonymous);
  tokens_ = load_tokens();
  generation_.store(next_generation(), std::memory_order_release);
}

std::shared_ptr<const TokenTable> Gatekeeper::load_tokens() const {
  std::vector<TokenConfig> all = auth_->tokens;
  if (!auth_->tokens_file.empty()) {
    std::vector<TokenConfig> more = load_tokens_file(auth_->tokens_file, all);
    all.insert(all.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  auto table = std::make_shared<const TokenTable>(all, limits_.per_token);
  auth_metrics().tokens.set(static_cast<std::int64_t>(table->size()));
  return table;
}

std::string Gatekeeper::reload() {
  if (!auth_) return "no [auth] section: no tokens to reload";
  std::shared_ptr<const TokenTable> table;
  try {
    table = load_tokens();
  } catch (const std::exception& error) {
    auth_metrics().reloads_failed.add();
    return error.what();
  }
  {
    const std::lock_guard lock(mutex_);
    tokens_ = std::move(table);
    generation_.store(next_generation(), std::memory_order_release);
  }
  auth_metrics().reloads_ok.add();
  return {};
}

std::shared_ptr<const TokenTable> Gatekeeper::tokens() const {
  const std::lock_guard lock(mutex_);
  return tokens_;
}

std::shared_ptr<const Caller> Gatekeeper::identify(const HttpRequest& request) const {
  if (!auth_) return nullptr;
  const std::string_view authorization = request.header("Authorization");
  if (authorization.empty()) return anonymous_;
  if (!starts_with_bearer(authorization)) {
    auth_metrics().invalid_token.add();
    throw unauthorized("invalid_token", "expected Authorization: Bearer TOKEN");
  }
  std::string_view secret = authorization.substr(7);
  while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
  while (!secret.empty() && secret.back() == ' ') secret.remove_suffix(1);
  const auto now = std::chrono::system_clock::now();
  // Read before the table: a table newer than this number is remembered under the older one
  // (looked up again next time), never the other way round.
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  if (remembered.generation == generation && remembered.secret.size() == secret.size() &&
      CRYPTO_memcmp(remembered.secret.data(), secret.data(), secret.size()) == 0 &&
      (!remembered.caller->expires || now < *remembered.caller->expires)) {
    return remembered.caller;
  }
  TokenVerdict verdict = TokenVerdict::kUnknown;
  std::shared_ptr<const Caller> caller = tokens()->find(secret, now, verdict);
  if (verdict == TokenVerdict::kValid) {
    remembered.generation = generation;
    remembered.secret.assign(secret);
    remembered.caller = caller;
    return caller;
  }
  auth_metrics().invalid_token.add();
  throw unauthorized("invalid_token", verdict == TokenVerdict::kExpired
                                          ? "the API token expired"
                                          : "the API token is not valid");
}

void Gatekeeper::admit(const HttpRequest& request, ClientLimits::Slot& address_slot,
                       ClientLimits::Slot& token_slot) const {
  std::int64_t retry_after = 1;
  LimitVerdict verdict = addresses_.admit(address_host(request.remote), limits_.per_address,
                                          address_slot, retry_after);
  if (verdict == LimitVerdict::kAdmitted && request.caller && request.caller->authenticated) {
    verdict = token_limits_.admit(request.caller->name, request.caller->limits, token_slot,
                                  retry_after);
  }
  if (verdict == LimitVerdict::kAdmitted) return;
  const bool streams = verdict == LimitVerdict::kTooManyStreams;
  (streams ? auth_metrics().too_many_streams : auth_metrics().rate_limited).add();
  ApiError error(429, streams ? "too_many_streams" : "rate_limited",
                 streams ? "too many requests in flight for this client; retry when one ended"
                         : "too many requests for this client; retry after Retry-After seconds");
  error.with_header("Retry-After", std::to_string(retry_after));
  throw error;
}

namespace {

namespace asio = boost::asio;

class AuthenticationStep final : public Middleware {
 public:
  explicit AuthenticationStep(const Gatekeeper& gatekeeper) : gatekeeper_(gatekeeper) {}

  // Not a coroutine when there are no limits: no frame of its own per request.
  asio::awaitable<void> handle(HttpRequest& request, HttpResponder& /*responder*/,
                               Next next) const override {
    request.caller = gatekeeper_.identify(request);
    if (!gatekeeper_.limits_enabled()) return next();
    ClientLimits::Slot address_slot;
    ClientLimits::Slot token_slot;
    gatekeeper_.admit(request, address_slot, token_slot);
    if (!address_slot.held() && !token_slot.held()) return next();  // only rates: no frame
    return limited(std::move(address_slot), std::move(token_slot), next);
  }

 private:
  // Holds the slots (the requests in flight) for as long as the rest of the path runs.
  static asio::awaitable<void> limited([[maybe_unused]] ClientLimits::Slot address_slot,
                                       [[maybe_unused]] ClientLimits::Slot token_slot, Next next) {
    co_await next();
  }

  const Gatekeeper& gatekeeper_;
};

}  // namespace

std::unique_ptr<Middleware> make_authentication_step(const Gatekeeper& gatekeeper) {
  return std::make_unique<AuthenticationStep>(gatekeeper);
}

}  // namespace sluice
