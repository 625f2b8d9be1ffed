#include "http/router.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/api_error.hpp"
#include "http/request_id.hpp"
#include "http/request_path.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

class RecordingSink final : public ByteSink {
 public:
  asio::awaitable<void> write(std::string_view bytes) override {
    written += bytes;
    co_return;
  }
  asio::awaitable<void> finish() override {
    finished = true;
    co_return;
  }

  std::string written;
  bool finished = false;
};

// Records what the router and the handlers did with the response.
class FakeResponder final : public HttpResponder {
 public:
  struct Sent {
    int status;
    Headers headers;
    std::string body;
  };

  asio::awaitable<void> send(int status, Headers headers, std::string body) override {
    sent.push_back(Sent{status, std::move(headers), std::move(body)});
    co_return;
  }
  asio::awaitable<ByteSink*> start_stream(int status, Headers headers) override {
    started_ = true;
    stream_status = status;
    stream_headers = std::move(headers);
    co_return &sink;
  }
  asio::awaitable<ByteSink*> start_body(int status, Headers headers,
                                        std::uint64_t content_length) override {
    started_ = true;
    stream_status = status;
    stream_headers = std::move(headers);
    body_length = content_length;
    co_return &sink;
  }
  void abort(std::string_view) noexcept override { ++aborts; }
  bool started() const override { return started_; }
  bool client_gone() const override { return false; }
  std::function<void()> gone_callback;

  // The one value of header `name` in the only response sent, or "" when absent.
  std::string header(std::string_view name) const {
    std::string found;
    for (const auto& [key, value] : sent.at(0).headers) {
      if (key == name) {
        EXPECT_TRUE(found.empty()) << "header " << name << " twice";
        found = value;
      }
    }
    return found;
  }

  std::vector<Sent> sent;
  int stream_status = 0;
  Headers stream_headers;
  std::uint64_t body_length = 0;
  RecordingSink sink;
  int aborts = 0;

 private:
  bool started_ = false;
};

HttpRequest request(std::string method, std::vector<std::string> segments,
                    std::string request_id = "req-1") {
  HttpRequest result;
  result.method = std::move(method);
  for (const std::string& segment : segments) result.target += "/" + segment;
  result.segments = std::move(segments);
  // The request path's first step takes the id from here, as from a client.
  result.headers.emplace_back("X-Request-Id", std::move(request_id));
  return result;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    router_.add("GET", {"healthz"}, [this](const HttpRequest& r, HttpResponder& responder) {
      return answer("healthz", r, responder);
    });
    router_.add("GET", {"v1", "datasets"}, [this](const HttpRequest& r, HttpResponder& responder) {
      return answer("datasets", r, responder);
    });
    router_.add("GET", {"v1", "exports", "*"},
                [this](const HttpRequest& r, HttpResponder& responder) {
                  return answer("export", r, responder);
                });
    router_.add("POST", {"v1", "jobs"}, [this](const HttpRequest& r, HttpResponder& responder) {
      return answer("jobs", r, responder);
    });
  }

  asio::awaitable<void> answer(std::string name, const HttpRequest& r, HttpResponder& responder) {
    calls_.push_back(name + " " + r.method + " " + r.target);
    co_await responder.send(200, {}, name);
  }

  // Sends `r` through the server's request path (id, log, metrics, error mapping, router) to
  // completion (bounded) and rethrows what escaped it.
  void dispatch(HttpRequest r, FakeResponder& responder) {
    bool done = false;
    std::exception_ptr escaped;
    if (!path_) path_ = make_request_path(ServerConfig{}, router_);
    asio::co_spawn(io_, path_->handle(r, responder), [&](std::exception_ptr error) {
      done = true;
      escaped = error;
    });
    io_.restart();
    io_.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(done) << "dispatch did not complete";
    if (escaped) std::rethrow_exception(escaped);
  }

  asio::io_context io_;
  Router router_;
  std::unique_ptr<RequestPath> path_;
  std::vector<std::string> calls_;
};

// The fields of the JSON error body of the only response sent, as strings.
std::map<std::string, std::string> error_body(const FakeResponder& responder) {
  EXPECT_EQ(responder.sent.size(), 1u);
  boost::json::value body = boost::json::parse(responder.sent.at(0).body);
  std::map<std::string, std::string> fields;
  for (const auto& [key, value] : body.at("error").as_object()) {
    fields[std::string(key)] = std::string(value.as_string());
  }
  EXPECT_EQ(body.as_object().size(), 1u);
  EXPECT_EQ(fields.size(), 3u);
  return fields;
}

TEST_F(RouterTest, ExactPathReachesItsHandler) {
  FakeResponder responder;
  dispatch(request("GET", {"v1", "datasets"}), responder);
  EXPECT_EQ(calls_, std::vector<std::string>{"datasets GET /v1/datasets"});
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 200);
  EXPECT_EQ(responder.sent[0].body, "datasets");
  EXPECT_EQ(responder.aborts, 0);
}

TEST_F(RouterTest, StarMatchesAnyOneSegment) {
  FakeResponder first;
  dispatch(request("GET", {"v1", "exports", "orders.csv"}), first);
  FakeResponder second;
  dispatch(request("GET", {"v1", "exports", ".."}), second);
  EXPECT_EQ(calls_, (std::vector<std::string>{"export GET /v1/exports/orders.csv",
                                              "export GET /v1/exports/.."}));
  EXPECT_EQ(first.sent.at(0).body, "export");
}

TEST_F(RouterTest, FinalDoubleStarMatchesOneOrMoreSegments) {
  router_.add("GET", {"v1", "files", "**"}, [this](const HttpRequest& r, HttpResponder& responder) {
    return answer("files", r, responder);
  });
  for (const std::vector<std::string>& segments : std::vector<std::vector<std::string>>{
           {"v1", "files", "a"}, {"v1", "files", "a", "b", "c.txt"}, {"v1", "files", ""}}) {
    FakeResponder responder;
    dispatch(request("GET", segments), responder);
    EXPECT_EQ(responder.sent.at(0).status, 200);
    EXPECT_EQ(responder.sent.at(0).body, "files");
  }
  EXPECT_EQ(calls_.size(), 3u);
  // Not zero segments, and the fixed segments before it must match.
  for (const std::vector<std::string>& segments :
       std::vector<std::vector<std::string>>{{"v1", "files"}, {"v1", "filez", "a", "b"}, {"v1"}}) {
    FakeResponder responder;
    dispatch(request("GET", segments), responder);
    EXPECT_EQ(responder.sent.at(0).status, 404);
  }
  FakeResponder post;
  dispatch(request("POST", {"v1", "files", "a", "b"}), post);
  EXPECT_EQ(post.sent.at(0).status, 405);
  EXPECT_EQ(post.header("Allow"), "GET, HEAD");
  EXPECT_EQ(calls_.size(), 3u);
}

TEST_F(RouterTest, UnknownPathIs404) {
  for (const std::vector<std::string>& segments :
       std::vector<std::vector<std::string>>{{"v1", "exports"},
                                             {"v1", "exports", "orders.csv", "x"},
                                             {"v1"},
                                             {},
                                             {"V1", "datasets"},
                                             {"v2", "datasets"},
                                             {"healthz", ""}}) {
    FakeResponder responder;
    dispatch(request("GET", segments, "id-404"), responder);
    ASSERT_EQ(responder.sent.size(), 1u);
    EXPECT_EQ(responder.sent[0].status, 404);
    EXPECT_EQ(responder.header("Content-Type"), "application/json");
    EXPECT_EQ(responder.header("Cache-Control"), "no-store");
    std::map<std::string, std::string> error = error_body(responder);
    EXPECT_EQ(error.at("code"), "not_found");
    EXPECT_EQ(error.at("message"), "no such endpoint");
    EXPECT_EQ(error.at("request_id"), "id-404");
  }
  EXPECT_TRUE(calls_.empty());
}

TEST_F(RouterTest, KnownPathWithOtherMethodIs405) {
  FakeResponder responder;
  dispatch(request("POST", {"v1", "exports", "orders.csv"}, "id-405"), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 405);
  std::map<std::string, std::string> error = error_body(responder);
  EXPECT_EQ(error.at("code"), "method_not_allowed");
  EXPECT_EQ(error.at("message"), "method POST is not allowed here; allowed: GET, HEAD");
  EXPECT_EQ(error.at("request_id"), "id-405");
  EXPECT_EQ(responder.header("Allow"), "GET, HEAD");

  FakeResponder get_on_post;
  dispatch(request("GET", {"v1", "jobs"}), get_on_post);
  EXPECT_EQ(get_on_post.sent.at(0).status, 405);
  EXPECT_TRUE(calls_.empty());
}

TEST_F(RouterTest, HeadIsRoutedToGet) {
  FakeResponder responder;
  dispatch(request("HEAD", {"v1", "exports", "orders.jsonl"}), responder);
  EXPECT_EQ(calls_, std::vector<std::string>{"export HEAD /v1/exports/orders.jsonl"});
  // ... but not to other methods.
  FakeResponder head_on_post;
  dispatch(request("HEAD", {"v1", "jobs"}), head_on_post);
  EXPECT_EQ(head_on_post.sent.at(0).status, 405);
  EXPECT_EQ(calls_.size(), 1u);
}

TEST_F(RouterTest, ApiErrorBecomesItsStatusAndCode) {
  router_.add("GET", {"fail"}, [](const HttpRequest&, HttpResponder&) -> asio::awaitable<void> {
    throw ApiError(400, "unknown_filter", "unknown parameter 'colour'");
    co_return;
  });
  FakeResponder responder;
  dispatch(request("GET", {"fail"}, "id-400"), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 400);
  EXPECT_EQ(responder.header("Retry-After"), "");
  EXPECT_EQ(responder.header("Content-Type"), "application/json");
  std::map<std::string, std::string> error = error_body(responder);
  EXPECT_EQ(error.at("code"), "unknown_filter");
  EXPECT_EQ(error.at("message"), "unknown parameter 'colour'");
  EXPECT_EQ(error.at("request_id"), "id-400");
  EXPECT_EQ(responder.aborts, 0);
}

TEST_F(RouterTest, ApiErrorThrownAfterAnAwaitIsMappedToo) {
  router_.add("GET", {"late"},
              [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
                co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
                (void)responder;
                throw ApiError(404, "unknown_dataset", "no dataset named 'x'");
              });
  FakeResponder responder;
  dispatch(request("GET", {"late"}), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 404);
  EXPECT_EQ(error_body(responder).at("code"), "unknown_dataset");
}

TEST_F(RouterTest, ServiceUnavailableCarriesRetryAfter) {
  router_.add("GET", {"busy"}, [](const HttpRequest&, HttpResponder&) -> asio::awaitable<void> {
    throw ApiError(503, "too_many_streams", "the server is at its limit");
    co_return;
  });
  FakeResponder responder;
  dispatch(request("GET", {"busy"}), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 503);
  EXPECT_EQ(responder.header("Retry-After"), "1");
  EXPECT_EQ(responder.header("Content-Type"), "application/json");
  EXPECT_EQ(error_body(responder).at("code"), "too_many_streams");
}

TEST_F(RouterTest, ApiErrorHeadersReachTheResponse) {
  router_.add("GET", {"picky"}, [](const HttpRequest&, HttpResponder&) -> asio::awaitable<void> {
    throw ApiError(406, "not_acceptable", "no coding").with_header("Vary", "Accept-Encoding");
    co_return;
  });
  FakeResponder responder;
  dispatch(request("GET", {"picky"}), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 406);
  EXPECT_EQ(responder.header("Vary"), "Accept-Encoding");
  EXPECT_EQ(responder.header("Content-Type"), "application/json");
}

TEST_F(RouterTest, OtherExceptionsBecome500) {
  router_.add("GET", {"bug"}, [](const HttpRequest&, HttpResponder&) -> asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  });
  FakeResponder responder;
  dispatch(request("GET", {"bug"}, "id-500"), responder);
  ASSERT_EQ(responder.sent.size(), 1u);
  EXPECT_EQ(responder.sent[0].status, 500);
  EXPECT_EQ(responder.header("Retry-After"), "");
  std::map<std::string, std::string> error = error_body(responder);
  EXPECT_EQ(error.at("code"), "internal_error");
  EXPECT_EQ(error.at("message").find("boom"), std::string::npos);  // details stay in the log
  EXPECT_EQ(error.at("request_id"), "id-500");
  EXPECT_EQ(responder.aborts, 0);
}

TEST_F(RouterTest, ErrorAfterTheStreamStartedAbortsWithoutSending) {
  router_.add("GET", {"stream"},
              [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
                Headers headers;
                headers.emplace_back("Content-Type", "text/csv");
                ByteSink* sink = co_await responder.start_stream(200, std::move(headers));
                co_await sink->write("id\r\n1\r\n");
                throw std::runtime_error("database went away");
              });
  router_.add("GET", {"stream-api"},
              [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
                co_await responder.start_stream(200, {});
                throw ApiError(500, "query_failed", "too late for a status");
              });

  FakeResponder responder;
  dispatch(request("GET", {"stream"}), responder);
  EXPECT_EQ(responder.stream_status, 200);
  EXPECT_EQ(responder.sink.written, "id\r\n1\r\n");
  EXPECT_FALSE(responder.sink.finished);
  EXPECT_EQ(responder.aborts, 1);
  EXPECT_TRUE(responder.sent.empty());

  FakeResponder api;
  dispatch(request("GET", {"stream-api"}), api);
  EXPECT_EQ(api.aborts, 1);
  EXPECT_TRUE(api.sent.empty());

  router_.add("GET", {"sized"},
              [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
                ByteSink* sink = co_await responder.start_body(200, {}, 100);
                co_await sink->write("short");
                throw std::runtime_error("source failed");
              });
  FakeResponder sized;
  dispatch(request("GET", {"sized"}), sized);
  EXPECT_EQ(sized.body_length, 100u);
  EXPECT_EQ(sized.aborts, 1);
  EXPECT_TRUE(sized.sent.empty());
}

TEST_F(RouterTest, FirstMatchingRouteWins) {
  router_.add("GET", {"v1", "exports", "special"},
              [this](const HttpRequest& r, HttpResponder& responder) {
                return answer("special", r, responder);
              });
  FakeResponder responder;
  dispatch(request("GET", {"v1", "exports", "special"}), responder);
  EXPECT_EQ(calls_, std::vector<std::string>{"export GET /v1/exports/special"});
}

// ---- make_request_id ----------------------------------------------------------------------

bool is_fresh_id(const std::string& id) {
  return id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(RequestIdTest, SafeIdsAreEchoed) {
  EXPECT_EQ(make_request_id("abc"), "abc");
  EXPECT_EQ(make_request_id("A-Za_z.09"), "A-Za_z.09");
  EXPECT_EQ(make_request_id("3f2a9c0d51e4b7a8"), "3f2a9c0d51e4b7a8");
  EXPECT_EQ(make_request_id("x"), "x");
  std::string longest(64, 'k');
  EXPECT_EQ(make_request_id(longest), longest);
}

TEST(RequestIdTest, UnsafeLongOrEmptyIdsAreReplaced) {
  for (const std::string& offered :
       {std::string(), std::string(65, 'k'), std::string("a b"), std::string("a/b"),
        std::string("a\r\nX-Evil: 1"), std::string("\"quoted\""), std::string("caf\xC3\xA9"),
        std::string("a\0b", 3), std::string("id;rm"), std::string("a:b"), std::string("a+b")}) {
    std::string id = make_request_id(offered);
    EXPECT_TRUE(is_fresh_id(id)) << "'" << offered << "' gave '" << id << "'";
    EXPECT_NE(id, offered);
  }
}

TEST(RequestIdTest, FreshIdsDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = make_request_id("");
    ASSERT_TRUE(is_fresh_id(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace sluice
