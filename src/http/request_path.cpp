#include "http/request_path.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/system_error.hpp>
#include <exception>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "http/access_log.hpp"
#include "core/access.hpp"
#include "http/auth.hpp"
#include "http/http_metrics.hpp"
#include "http/request_id.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

class RequestIdStep final : public Middleware {
 public:
  asio::awaitable<void> handle(HttpRequest& request, HttpResponder&, Next next) const override {
    request.request_id = make_request_id(request.header("X-Request-Id"));
    return next();
  }
};

class AccessLogStep final : public Middleware {
 public:
  asio::awaitable<void> handle(HttpRequest& request, HttpResponder& responder,
                               Next next) const override {
    const auto wall = std::chrono::system_clock::now();
    const auto start = std::chrono::steady_clock::now();
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    std::exception_ptr error;
    try {
      co_await next();
    } catch (...) {
      error = std::current_exception();  // a cancelled request is logged too
    }
    const AccessRecord record{
        wall, request.remote, request.method, request.target, responder.status(),
        responder.body_bytes(),
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                              start),
        request.request_id, responder.abort_reason(),
        request.caller ? std::string_view(request.caller->name) : std::string_view()};
    log_access(record, executor);  // buffered: written once this thread's ready work is done
    if (error) std::rethrow_exception(error);
  }
};

class MetricsStep final : public Middleware {
 public:
  asio::awaitable<void> handle(HttpRequest&, HttpResponder& responder,
                               Next next) const override {
    const HttpMetrics& counters = http_metrics();
    counters.requests.add();
    std::exception_ptr error;
    try {
      co_await next();
    } catch (...) {
      error = std::current_exception();
    }
    if (responder.status() != 0) counters.responses_of(responder.status()).add();
    if (!responder.abort_reason().empty()) counters.aborted.add();
    if (error) std::rethrow_exception(error);
  }
};

// The exception to map: awaitable operators throw multiple_exceptions when every branch failed
// (a WebSocket's `sender() || ws->receive()` cancelled at shutdown); the first one is the one
// that counts.
std::exception_ptr first_failure(std::exception_ptr error) {
  for (;;) {
    try {
      std::rethrow_exception(error);
    } catch (const asio::multiple_exceptions& several) {
      if (!several.first_exception()) return error;
      error = several.first_exception();
    } catch (...) {
      return error;
    }
  }
}

class ErrorMappingStep final : public Middleware {
 public:
  asio::awaitable<void> handle(HttpRequest& request, HttpResponder& responder,
                               Next next) const override {
    // co_await is not allowed inside a catch block: remember the error, answer after it.
    int status = 0;
    std::string code;
    std::string message;
    ApiError::Fields fields;
    ApiError::Fields extra_headers;
    std::string reason;  // for the log when the transfer is cut
    bool cancelled = false;
    std::exception_ptr failure;
    try {
      co_await next();
    } catch (...) {
      failure = first_failure(std::current_exception());
    }
    if (failure) {
      try {
        std::rethrow_exception(failure);
      } catch (const boost::system::system_error& error) {
        // The session cancelled the handler: the client left, or the shutdown grace ended.
        // Nothing can be sent any more (every co_await of a cancelled coroutine fails).
        cancelled = error.code() == asio::error::operation_aborted;
        if (!cancelled) internal(request, error.code().message(), status, code, message);
        reason = error.code().message();
      } catch (const ApiError& error) {
        status = error.status();
        code = error.code();
        message = error.what();
        fields = error.fields();
        extra_headers = error.headers();
        reason = message;
      } catch (const std::exception& error) {
        internal(request, error.what(), status, code, message);
        reason = error.what();
      }
    }
    if (cancelled || (status != 0 && (responder.started() || responder.client_gone()))) {
      // After the headers went out an error can only cut the transfer: never a 500 inside a
      // 200, never a short body that looks whole.
      responder.abort(reason);
      co_return;
    }
    if (status == 0) co_return;
    Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    if (status == 503) headers.emplace_back("Retry-After", "1");
    for (auto& header : extra_headers) headers.push_back(std::move(header));
    co_await responder.send(status, std::move(headers),
                            json_error_body(code, message, request.request_id, fields));
  }

 private:
  // The details go to the log, not to the client.
  static void internal(const HttpRequest& request, const std::string& what, int& status,
                       std::string& code, std::string& message) {
    status = 500;
    code = "internal_error";
    message = "internal error; the server log has the details under this request id";
    log_event("request " + request.request_id + " failed: " + what);
  }
};

}  // namespace

asio::awaitable<void> RequestPath::handle(HttpRequest& request, HttpResponder& responder) const {
  return run(0, request, responder);
}

asio::awaitable<void> RequestPath::run(std::size_t step, HttpRequest& request,
                                       HttpResponder& responder) const {
  if (step == steps_.size()) {
    // Thrown where the last step calls next(): inside its error mapping.
    if (!request.target_ok) throw ApiError(400, "bad_target", "malformed request target");
    return router_.dispatch(request, responder);
  }
  return steps_[step]->handle(request, responder, Next(*this, step + 1, request, responder));
}

asio::awaitable<void> Next::operator()() const { return path_->run(step_, *request_, *responder_); }

// The request path, in order. Each step sees what the ones before it did, and what the ones
// after it threw.
std::unique_ptr<RequestPath> make_request_path(const ServerConfig& /*config*/,
                                               const Router& router) {
  std::vector<std::unique_ptr<Middleware>> steps;
  // First, so that every response, log line and error body carries the id the client can
  // quote (its own X-Request-Id when it sent a usable one).
  steps.push_back(std::make_unique<RequestIdStep>());
  // Outside everything that can fail, so that every request gets its one line, with the
  // status and bytes that really went out and why a transfer was cut.
  steps.push_back(std::make_unique<AccessLogStep>());
  // Counts requests and responses by status class for /metrics, seeing the mapped status.
  steps.push_back(std::make_unique<MetricsStep>());
  // Errors become responses in one place (ApiError → its status and JSON body; anything else
  // → 500), or an aborted transfer once the headers went out.
  steps.push_back(std::make_unique<ErrorMappingStep>());
  // Last before the router, inside the error mapping (its 401/429 are ApiErrors): who is
  // asking (HttpRequest::caller, whose scopes the router checks per route) and whether the
  // limits admit them. A request that may not proceed costs no feature any work.
  if (router.gatekeeper() != nullptr) {
    steps.push_back(make_authentication_step(*router.gatekeeper()));
  }
  return std::make_unique<RequestPath>(std::move(steps), router);
}

}  // namespace sluice
