#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/access.hpp"
#include "http/handler.hpp"
#include "http/middleware.hpp"

namespace sluice {

// What a route requires of its caller (Router::add), checked by the router once the path
// matched, before the handler runs.
struct Access {
  enum class Kind : std::uint8_t {
    kOpen,     // anyone (/healthz)
    kScope,    // `scope` (+ the path segment `segment`: "cubes:" + name)
    kHandler,  // the handler decides, by the request (the dataset of an export, a signed link)
  };
  Kind kind = Kind::kScope;
  std::string scope = "admin";
  int segment = -1;

  static Access open() { return {Kind::kOpen, {}, -1}; }
  static Access needs(std::string scope, int segment = -1) {
    return {Kind::kScope, std::move(scope), segment};
  }
  static Access by_handler() { return {Kind::kHandler, {}, -1}; }
};

// Whether the request's caller holds `scope`: always true without access control (no [auth]:
// HttpRequest::caller is null).
bool may(const HttpRequest& request, std::string_view scope);
// Whether the caller may read (export, list, queue a job of) dataset `name`.
bool may_read_dataset(const HttpRequest& request, std::string_view name);
// Throws unless may(request, scope): ApiError 401 `unauthorized` (with WWW-Authenticate: Bearer)
// when no token was presented, 403 `forbidden` naming the missing scope otherwise.
void require_scope(const HttpRequest& request, std::string_view scope);
// The check of a route's Access for this request (nothing for kOpen and kHandler).
void check_access(const HttpRequest& request, const Access& access);

// Identifies callers by their bearer token and admits them under [limits]; one per server,
// shared by every I/O thread. The tokens of [auth] tokens_file can be re-read (SIGHUP) while
// requests run. Thread-safe.
class Gatekeeper {
 public:
  // Reads [auth] tokens_file (throws ConfigError naming the file, line and key).
  explicit Gatekeeper(const AccessConfig& config);

  bool auth_enabled() const { return auth_.has_value(); }
  bool limits_enabled() const { return limits_.any(); }

  // The caller of `request`: null without [auth] (no access control), the anonymous caller
  // (anonymous_scopes) without an Authorization header, else the token's. Throws ApiError 401
  // `invalid_token` for an unknown, expired or malformed token.
  std::shared_ptr<const Caller> identify(const HttpRequest& request) const;

  // Admits the request under the per-address and per-token limits; the slots hold its place
  // among the caller's requests in flight until destroyed. Throws ApiError 429 `rate_limited`
  // or `too_many_streams` (with Retry-After).
  void admit(const HttpRequest& request, ClientLimits::Slot& address_slot,
             ClientLimits::Slot& token_slot) const;

  // Re-reads the tokens file. A file that fails to load keeps the tokens in force; the result
  // is the error (file:line: key: problem), or "" when the new tokens are in force.
  std::string reload();

 private:
  std::shared_ptr<const TokenTable> tokens() const;
  std::shared_ptr<const TokenTable> load_tokens() const;

  std::optional<AuthConfig> auth_;
  LimitsConfig limits_;
  std::shared_ptr<const Caller> anonymous_;
  mutable std::mutex mutex_;  // guards tokens_ (the pointer, not the table)
  std::shared_ptr<const TokenTable> tokens_;
  // Which table is in force, unique across gatekeepers: an I/O thread's remembered token
  // (identify()) counts only while it is unchanged. Set under mutex_ after tokens_.
  std::atomic<std::uint64_t> generation_{0};
  mutable ClientLimits addresses_;
  mutable ClientLimits token_limits_;
};

// The request path's step that identifies the caller (HttpRequest::caller) and applies the
// limits.
std::unique_ptr<Middleware> make_authentication_step(const Gatekeeper& gatekeeper);

}  // namespace sluice
