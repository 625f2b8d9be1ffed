// Fuzzes a request from its raw bytes to the export handler's parsing, as the session reads it
// (src/http/session.cpp): the raw head checks (request_head_end, raw_head_problem), Beast's
// parser, the framing check (framing_problem), the target split and percent-decoded as
// parse_target (http/request_head.hpp) does (Boost.URL, '+' as space in the query), then the Router with the server's
// route table and, on the export route, parse_http_export_request and plan_export against a
// real DatasetCatalog. Invariants:
// - request_head_end: npos, or an offset within the input just past a CRLFCRLF, the first one
//   after the leading empty lines; and when Beast finishes a head, it ends exactly there (the
//   obs-fold check saw every byte Beast parsed, and no other);
// - raw_head_problem refuses exactly the heads with a line starting with SP or HTAB;
// - framing_problem matches its documented rules;
// - the router calls the first route whose path and method (HEAD → GET) match, else answers
//   405 with an Allow header listing every method of the path's routes, else 404, once;
// - the export route: parse_http_export_request returns a request whose segment is exactly
//   name.format[.gz|.zst] with a valid name and the query parameters unchanged, or throws an
//   ApiError (400 invalid_dataset_name, 404 unknown_format, 406 not_acceptable) whose message
//   is UTF-8 without control characters (it goes into a JSON body; what() ends at a NUL); plan_export
//   gives a plan for the dataset of that name in the catalog, or throws ApiError 404
//   unknown_dataset exactly when the catalog has none, else ApiError 400. Nothing else escapes.
// SLUICE_FUZZ_VERBOSE=1 prints where each request went (to check what a seed reaches).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include "core/api_error.hpp"
#include "core/config.hpp"
#include "core/utf8.hpp"
#include "features/exports/export_compression.hpp"
#include "features/exports/http_export_request.hpp"
#include "http/request_head.hpp"
#include "http/router.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "pipeline/export_plan.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

[[noreturn]] void fail(const std::string& what, std::string_view input) {
  std::cerr << "invariant broken: " << what << "\ninput (" << input.size() << " bytes): ";
  std::cerr.write(input.data(), static_cast<std::streamsize>(std::min<std::size_t>(input.size(), 400)));
  std::cerr << '\n';
  std::abort();
}

void check(bool ok, const std::string& what, std::string_view input) {
  if (!ok) fail(what, input);
}

// ---- the raw head --------------------------------------------------------------------------

void check_head_end(std::string_view data) {
  const std::size_t end = request_head_end(data);
  std::size_t lead = 0;
  while (lead < data.size() && (data[lead] == '\r' || data[lead] == '\n')) ++lead;
  const std::size_t first = data.find("\r\n\r\n", lead);
  if (end == std::string_view::npos) {
    check(first == std::string_view::npos, "request_head_end missed a CRLFCRLF", data);
    return;
  }
  check(end >= 4 && end <= data.size(), "request_head_end outside the input", data);
  check(data.substr(end - 4, 4) == "\r\n\r\n", "request_head_end not just past CRLFCRLF", data);
  check(end - 4 == first, "request_head_end not at the first blank line after the request line",
        data);
  check(end - 4 >= lead, "request_head_end inside the leading empty lines", data);
}

void check_raw_head_problem(std::string_view head) {
  bool folded = false;
  for (std::size_t i = 0; i + 1 < head.size(); ++i) {
    if (head[i] == '\n' && (head[i + 1] == ' ' || head[i + 1] == '\t')) folded = true;
  }
  const std::optional<std::string> problem = raw_head_problem(head);
  check(problem.has_value() == folded, "raw_head_problem disagrees on obs-fold", head);
  if (problem) check(!problem->empty(), "raw_head_problem: an empty reason", head);
}

void check_framing(const RequestFraming& framing, std::string_view input) {
  const bool refused = (framing.transfer_encodings > 0 && framing.version < 11) ||
                       (framing.transfer_encodings > 0 && !framing.chunked) ||
                       framing.host_fields > 1 ||
                       (framing.host_fields == 0 && framing.version >= 11);
  const std::optional<std::string> problem = framing_problem(framing);
  check(problem.has_value() == refused, "framing_problem disagrees with its rules", input);
  if (problem) check(!problem->empty(), "framing_problem: an empty reason", input);
}

// ---- the router ----------------------------------------------------------------------------

class NullSink final : public ByteSink {
 public:
  asio::awaitable<void> write(std::string_view) override { co_return; }
  asio::awaitable<void> finish() override { co_return; }
};

class RecordingResponder final : public HttpResponder {
 public:
  asio::awaitable<void> send(int status, Headers headers, std::string) override {
    ++sends;
    last_status = status;
    last_headers = std::move(headers);
    co_return;
  }
  asio::awaitable<ByteSink*> start_stream(int, Headers) override {
    ++sends;
    co_return &sink_;
  }
  asio::awaitable<ByteSink*> start_body(int, Headers, std::uint64_t) override {
    ++sends;
    co_return &sink_;
  }
  void abort(std::string_view) noexcept override {}
  bool started() const override { return false; }
  bool client_gone() const override { return false; }

  int sends = 0;
  int last_status = 0;
  Headers last_headers;

 private:
  NullSink sink_;
};

struct RouteShape {
  const char* method;
  std::vector<std::string> path;
};

// The server's routes (app/serve_command.cpp, export_handler.cpp, archive_handler.cpp), in the
// order they are added.
const std::vector<RouteShape>& route_shapes() {
  static const std::vector<RouteShape> shapes = {
      {"GET", {"healthz"}},         {"GET", {"metrics"}},
      {"GET", {"v1", "datasets"}},  {"GET", {"v1", "exports", "*"}},
      {"POST", {"v1", "archives"}}, {"GET", {"v1", "archives", "*"}},
  };
  return shapes;
}
constexpr std::size_t kExportRoute = 3;

bool path_matches(const RouteShape& shape, const std::vector<std::string>& segments) {
  if (shape.path.size() != segments.size()) return false;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (shape.path[i] != "*" && shape.path[i] != segments[i]) return false;
  }
  return true;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

struct Fixture {
  Fixture() {
    char pattern[] = "/tmp/sluice-fuzz-target-XXXXXX";
    const char* made = mkdtemp(pattern);
    if (made == nullptr) std::abort();
    dir = made;
    std::ofstream(dir / "empty.sqlite").flush();  // a file of 0 bytes is an empty database
    const std::string toml = R"(
[sources.db]
kind = "sqlite"
path = "empty.sqlite"
blocking_threads = 1

[[datasets]]
name = "orders"
source = "db"
query = "SELECT 1 AS id, 'DE' AS country, 2.5 AS amount, '2024-01-02' AS day"
sortable = ["id", "country"]
[datasets.filters.country]
type = "text"
operators = ["eq", "in", "prefix"]
[datasets.filters.id]
type = "int"
operators = ["eq", "ne", "in", "lt", "lte", "gt", "gte", "is_null"]

[[datasets]]
name = "Events_2024-x"
source = "db"
query = "SELECT 'a' AS kind"
)";
    config = parse_config(toml, dir / "fuzz.toml");
    catalog = std::make_unique<DatasetCatalog>(config);
    for (std::size_t i = 0; i < route_shapes().size(); ++i) {
      router.add(route_shapes()[i].method, route_shapes()[i].path,
                 [this, i](const HttpRequest& request, HttpResponder&) -> asio::awaitable<void> {
                   called.push_back(i);
                   if (i == kExportRoute) check_export(request);
                   co_return;
                 });
    }
    // Only the catalog's start-up reads the database (no query runs here): nothing left behind.
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  // What the export handler does before the query runs, with its invariants.
  void check_export(const HttpRequest& request) const {
    const std::string& segment = request.segments.back();
    std::optional<HttpExportRequest> parsed;
    try {
      parsed = parse_http_export_request(request);
    } catch (const ApiError& error) {
      static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
      if (verbose) std::cerr << "  parse: " << error.status() << " " << error.what() << '\n';
      const bool known = (error.status() == 400 && error.code() == "invalid_dataset_name") ||
                         (error.status() == 404 && error.code() == "unknown_format") ||
                         (error.status() == 406 && error.code() == "not_acceptable");
      check(known, "parse_http_export_request: unexpected ApiError " + error.code(), input);
      const std::string_view message = error.what();
      check(!message.empty() && valid_utf8(message) &&
                std::none_of(message.begin(), message.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }),
            "the error message is not UTF-8 text without control characters", input);
      if (error.code() == "unknown_format") {  // whole: a NUL in it would end what() early
        check(message.ends_with("(each optionally + .gz or .zst)"), "a cut error message", input);
      }
      if (error.status() == 406) {
        check(split_compression_suffix(segment).second == Compression::kNone,
              "406 although the URL chose the compression", input);
      }
      return;
    } catch (const std::exception& error) {
      fail(std::string("parse_http_export_request threw a non-ApiError: ") + error.what(), input);
    }
    const ExportRequest& export_request = parsed->request;
    const std::string& name = export_request.dataset;
    check(!name.empty() && name.size() <= 64 &&
              std::all_of(name.begin(), name.end(), is_name_char),
          "an invalid dataset name was accepted", input);
    std::string rebuilt = name + "." + std::string(file_extension(export_request.format));
    if (parsed->compressed_file) {
      check(export_request.compression != Compression::kNone, "a compressed file, uncompressed",
            input);
      rebuilt += "." + std::string(compression_suffix(export_request.compression));
    }
    check(rebuilt == segment, "the segment is not name.format[.gz|.zst]: " + rebuilt, input);
    check(export_request.params == request.params, "the query parameters changed", input);

    const Dataset* dataset = catalog->find(name);
    static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
    try {
      ExportPlan plan = plan_export(*catalog, export_request);
      if (verbose) std::cerr << "  plan: " << plan.query.sql << '\n';
      check(dataset != nullptr, "a plan for a dataset the catalog does not have", input);
      check(plan.dataset == dataset && plan.dataset->config->name == name,
            "the plan is for another dataset", input);
      check(plan.format == export_request.format && plan.compression == export_request.compression,
            "the plan changed the format or compression", input);
    } catch (const ApiError& error) {
      if (verbose) std::cerr << "  plan_export: " << error.status() << " " << error.what() << '\n';
      if (dataset == nullptr) {
        check(error.status() == 404 && error.code() == "unknown_dataset",
              "an unknown dataset is not 404 unknown_dataset: " + error.code(), input);
      } else {
        check(error.status() == 400, "plan_export: a known dataset failed with " +
                                         std::to_string(error.status()) + " " + error.code(),
              input);
      }
    } catch (const std::exception& error) {
      fail(std::string("plan_export threw a non-ApiError: ") + error.what(), input);
    }
  }

  std::filesystem::path dir;
  Config config;
  std::unique_ptr<DatasetCatalog> catalog;
  Router router;
  asio::io_context io;
  mutable std::vector<std::size_t> called;
  std::string_view input;
};

void check_routing(Fixture& fixture, const HttpRequest& request) {
  const std::string_view input = fixture.input;
  // The reference: the first route whose path and method match, else 405 with every method of
  // the matching paths, else 404.
  std::optional<std::size_t> expected;
  std::string allow;
  for (std::size_t i = 0; i < route_shapes().size(); ++i) {
    const RouteShape& shape = route_shapes()[i];
    if (!path_matches(shape, request.segments)) continue;
    if (!expected && (request.method == shape.method ||
                      (request.method == "HEAD" && std::string_view(shape.method) == "GET"))) {
      expected = i;
    }
    allow += (allow.empty() ? "" : ", ") + std::string(shape.method);
    if (std::string_view(shape.method) == "GET") allow += ", HEAD";
  }

  fixture.called.clear();
  RecordingResponder responder;
  static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;
  bool done = false;
  std::exception_ptr escaped;
  asio::co_spawn(fixture.io, fixture.router.dispatch(request, responder),
                 [&](std::exception_ptr error) {
                   done = true;
                   escaped = error;
                 });
  fixture.io.restart();
  fixture.io.run();
  check(done, "dispatch did not complete", input);
  if (escaped) {
    try {
      std::rethrow_exception(escaped);
    } catch (const std::exception& error) {
      fail(std::string("an exception escaped the router: ") + error.what(), input);
    }
  }
  if (verbose) {
    std::cerr << request.method << " " << request.target << " -> "
              << (expected ? "route " + std::to_string(*expected)
                           : std::to_string(responder.last_status))
              << '\n';
  }
  if (expected) {
    check(fixture.called.size() == 1 && fixture.called[0] == *expected,
          "the router called another handler than route " + std::to_string(*expected), input);
    check(responder.sends == 0, "the router answered although a handler ran", input);
    return;
  }
  check(fixture.called.empty(), "a handler ran for a request no route takes", input);
  check(responder.sends == 1, "the router did not answer exactly once", input);
  if (allow.empty()) {
    check(responder.last_status == 404, "no matching path but not 404", input);
    return;
  }
  check(responder.last_status == 405, "a matching path with another method but not 405", input);
  std::string sent_allow;
  for (const auto& [key, value] : responder.last_headers) {
    if (key == "Allow") sent_allow = value;
  }
  check(sent_allow == allow, "Allow is '" + sent_allow + "', expected '" + allow + "'", input);
}

}  // namespace
}  // namespace sluice

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  static Fixture* fixture = new Fixture();  // never destroyed: the catalog's pools keep running
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  fixture->input = input;

  // The raw head, as read_request_head checks it.
  check_head_end(input);
  const std::size_t end = request_head_end(input);
  check_raw_head_problem(input);
  if (end == std::string_view::npos) return 0;  // the server reads on (431 at its limit)
  const std::string_view head = input.substr(0, end);
  check_raw_head_problem(head);
  if (raw_head_problem(head)) return 0;  // 400

  // Beast's parser over what was received: its head must end where request_head_end said.
  http::request_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  boost::beast::error_code ec;
  std::size_t used = 0;
  while (!parser.is_header_done() && used < input.size()) {
    const std::size_t n = parser.put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
    used += n;
    if (ec || n == 0) break;
  }
  if (!parser.is_header_done()) return 0;  // 400 (a malformed head) or more to read
  check(used == end, "Beast's head ends at " + std::to_string(used) + ", request_head_end at " +
                         std::to_string(end),
        input);

  const auto& message = parser.get();
  const RequestFraming framing{static_cast<int>(message.version()),
                               static_cast<std::size_t>(message.count(http::field::host)),
                               static_cast<std::size_t>(message.count(http::field::transfer_encoding)),
                               parser.chunked()};
  check_framing(framing, input);
  if (framing_problem(framing)) return 0;  // 400

  // to_request + parse_target, as the session builds the request.
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.version = static_cast<int>(message.version());
  request.request_id = "fuzz";
  request.target_ok = parse_target(request);
  if (!request.target_ok) return 0;  // the request path answers 400 bad_target
  check_routing(*fixture, request);
  return 0;
}
