#include "features/jobs/job_feature.hpp"

#include <boost/json.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <csignal>
#include <thread>

#include "core/api_error.hpp"
#include "core/log.hpp"
#include "core/utf8.hpp"
#include "http/auth.hpp"
#include "features/files/file_handler.hpp"
#include "features/jobs/job_metrics.hpp"
#include "features/jobs/job_runner.hpp"
#include "features/jobs/job_service.hpp"
#include "pipeline/export_plan.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

constexpr auto kKeepAlive = std::chrono::seconds(15);
using EventPage = JobService::EventPage;

ApiError job_not_found() { return ApiError(404, "job_not_found", "no job with this id"); }

std::string job_id_of(const HttpRequest& request) {
  if (request.segments.size() < 3 || !is_job_id(request.segments[2])) throw job_not_found();
  return request.segments[2];
}

asio::awaitable<void> pause(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

std::optional<std::uint64_t> parse_event_id(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

class JobFeatureImpl final : public JobFeature {
 public:
  JobFeatureImpl(const Config& config, JobQueue& queue, ObjectStore& store,
                 const DatasetCatalog& catalog, StreamLimiter& limiter, unsigned workers)
      : service_(config, queue, store, catalog),
        files_{store, LinkSecrets{}, config.server, limiter} {
    job_metrics();  // every series is listed from the start
    runner_ = std::make_unique<JobRunner>(service_, workers, std::string());
    runner_->start();
  }

  ~JobFeatureImpl() override {
    if (runner_) {
      runner_->begin_shutdown(std::chrono::milliseconds(0));
      runner_->join();
    }
  }

  void add_routes(Router& router) {
    router.add("POST", {"v1", "jobs"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return submit_body(request, responder);
    }, Access::needs("jobs"));
    router.add("GET", {"v1", "jobs"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return list(request, responder);
    }, Access::needs("jobs"));
    router.add("POST", {"v1", "cubes", "*", "builds"},
               [this](const HttpRequest& request, HttpResponder& responder) {
                 return submit_cube_build(request, responder);
               });
    router.add("GET", {"v1", "jobs", "*"}, [this](const HttpRequest& request, HttpResponder& responder) {
      return status(request, responder);
    }, Access::needs("jobs"));
    router.add("DELETE", {"v1", "jobs", "*"},
               [this](const HttpRequest& request, HttpResponder& responder) {
                 return cancel(request, responder);
               }, Access::needs("jobs"));
    router.add("GET", {"v1", "jobs", "*", "events"},
               [this](const HttpRequest& request, HttpResponder& responder) {
                 return events(request, responder);
               }, Access::needs("jobs"));
    for (const char* method : {"GET", "HEAD"}) {
      router.add(method, {"v1", "jobs", "*", "result"},
                 [this](const HttpRequest& request, HttpResponder& responder) {
                   return result(request, responder);
                 }, Access::needs("jobs"));
    }
  }

  asio::awaitable<void> respond_async(ExportRequest request, const HttpRequest& http,
                                      HttpResponder& responder) override {
    JobSubmission submission;
    submission.request = std::move(request);
    co_await submitted(std::move(submission), http, responder);
  }

  void begin_shutdown(std::chrono::milliseconds grace) override {
    if (runner_) runner_->begin_shutdown(grace);
  }
  void join() override {
    if (runner_) runner_->join();
  }

 private:
  asio::awaitable<void> submit_body(const HttpRequest& request, HttpResponder& responder) {
    JobSubmission submission = parse_job_body(request.body);
    co_await submitted(std::move(submission), request, responder);
  }

  // POST /v1/cubes/{cube}/builds: POST /v1/jobs with {"cube": "{cube}"} and the body's fields
  // (full, priority, run_at, max_attempts); an empty body is {}.
  asio::awaitable<void> submit_cube_build(const HttpRequest& request, HttpResponder& responder) {
    const std::string& cube = request.segments[2];
    boost::json::object body;
    if (!request.body.empty()) {
      boost::system::error_code ec;
      boost::json::value parsed = boost::json::parse(request.body, ec);
      if (ec || !parsed.is_object()) throw ApiError(400, "invalid_json", "the body must be a JSON object (or empty)");
      body = std::move(parsed.get_object());
    }
    if (const boost::json::value* named = body.if_contains("cube"); named != nullptr && *named != cube.c_str()) {
      throw ApiError(400, "invalid_field", "cube: the URL names \"" + cube + "\"", {{"field", "cube"}});
    }
    body["cube"] = cube;
    JobSubmission submission = parse_job_body(boost::json::serialize(body));
    co_await submitted(std::move(submission), request, responder);
  }

  asio::awaitable<void> submitted(JobSubmission submission, const HttpRequest& request,
                                  HttpResponder& responder) {
    // A job reads its dataset later, without the caller: it may ask only for what it may read.
    require_scope(request, "jobs");
    require_scope(request, submission.cube.empty() ? "datasets:" + submission.request.dataset
                                                   : std::string("admin"));
    if (submission.cube.empty() && service_.catalog().find(submission.request.dataset) == nullptr) {
      throw unknown_dataset(service_.catalog(), submission.request.dataset,
                            [&request](std::string_view name) { return may_read_dataset(request, name); });
    }
    const std::string key(request.header("Idempotency-Key"));
    if (key.size() > 255 || std::any_of(key.begin(), key.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e;
        })) {
      throw ApiError(400, "invalid_idempotency_key",
                     "Idempotency-Key: at most 255 visible ASCII characters");
    }
    const Enqueued enqueued =
        co_await service_.submit(std::move(submission), key, request.request_id);
    if (!enqueued.created) {
      job_metrics().replayed.add();
    } else {
      job_metrics().submitted.add();
      if (enqueued.job.state == JobState::kSucceeded) job_metrics().reused.add();
    }
    const std::string location = "/v1/jobs/" + enqueued.job.id;
    Headers headers;
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Content-Location", location);
    headers.emplace_back("Location", location);
    headers.emplace_back("Cache-Control", "no-store");
    if (!enqueued.created) headers.emplace_back("Idempotent-Replayed", "true");
    co_await responder.send(202, std::move(headers), service_.job_json(enqueued.job));
  }

  asio::awaitable<JobRecord> find(const std::string& id) {
    JobQueue& queue = service_.queue();
    auto get_job = [&queue, id] { return queue.get(id); };
    std::optional<JobRecord> job = co_await service_.call(std::move(get_job));
    if (!job) throw job_not_found();
    co_return std::move(*job);
  }

  asio::awaitable<void> status(const HttpRequest& request, HttpResponder& responder) {
    const JobRecord job = co_await find(job_id_of(request));
    Headers headers;
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Cache-Control", "no-store");
    int code = 200;
    if (!is_final(job.state)) {
      // The FHIR bulk-data poll: 202 while in progress, with how far it got and when to ask
      // again.
      code = 202;
      headers.emplace_back("X-Progress", std::string(to_string(job.state)) + ": " +
                                             std::to_string(job.rows) + " rows, " +
                                             std::to_string(job.bytes) + " bytes");
      headers.emplace_back("Retry-After", job.state == JobState::kRunning ? "1" : "2");
    }
    co_await responder.send(code, std::move(headers), service_.job_json(job));
  }

  asio::awaitable<void> list(const HttpRequest& request, HttpResponder& responder) {
    JobFilter filter;
    filter.limit = 100;
    for (const auto& [name, value] : request.params) {
      if (name == "state") {
        filter.state = parse_job_state(value);
        if (!filter.state) {
          throw ApiError(400, "invalid_parameter",
                         "state: expected one of queued, running, succeeded, failed, cancelled, "
                         "expired");
        }
      } else if (name == "dataset") {
        if (!valid_utf8(value)) throw ApiError(400, "invalid_parameter", "dataset: not UTF-8");
        filter.dataset = value;
      } else if (name == "before") {
        if (!is_job_id(value)) throw ApiError(400, "invalid_parameter", "before: expected a job id");
        filter.before_id = value;
      } else if (name == "limit") {
        const std::optional<std::uint64_t> limit = parse_event_id(value);
        if (!limit || *limit < 1 || *limit > 1000) {
          throw ApiError(400, "invalid_parameter", "limit: expected 1 to 1000");
        }
        filter.limit = *limit;
      } else {
        throw ApiError(400, "unknown_parameter",
                       "unknown parameter '" + name + "' (expected: state, dataset, before, limit)");
      }
    }
    JobQueue& queue = service_.queue();
    auto list_jobs = [&queue, filter] { return queue.list(filter); };
    const std::vector<JobRecord> jobs =
        co_await service_.call(std::move(list_jobs));
    std::string body = "{\"jobs\":[";
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (i > 0) body += ',';
      body += service_.job_json(jobs[i]);
    }
    body += "],\"next\":";
    if (jobs.size() == filter.limit) {
      std::string next = "/v1/jobs?before=" + jobs.back().id + "&limit=" + std::to_string(filter.limit);
      if (filter.state) next += "&state=" + std::string(to_string(*filter.state));
      // Dataset names are [A-Za-z0-9_-]: nothing to escape, in the URL or in JSON. Anything
      // else matches no job, and is left out of the link rather than escaped.
      if (!filter.dataset.empty() &&
          std::all_of(filter.dataset.begin(), filter.dataset.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
          })) {
        next += "&dataset=" + filter.dataset;
      }
      body += "\"" + next + "\"";
    } else {
      body += "null";
    }
    body += "}";
    Headers headers;
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Cache-Control", "no-store");
    co_await responder.send(200, std::move(headers), std::move(body));
  }

  asio::awaitable<void> cancel(const HttpRequest& request, HttpResponder& responder) {
    const std::string id = job_id_of(request);
    JobQueue& queue = service_.queue();
    auto cancel_job = [&queue, id] { return queue.cancel(id); };
    std::optional<JobRecord> job = co_await service_.call(std::move(cancel_job));
    if (!job) throw job_not_found();
    if (job->state != JobState::kCancelled) {
      throw ApiError(409, "job_finished",
                     "the job already ended: " + std::string(to_string(job->state)),
                     {{"state", std::string(to_string(job->state))}});
    }
    Headers headers;
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Cache-Control", "no-store");
    co_await responder.send(200, std::move(headers), service_.job_json(*job));
  }

  asio::awaitable<void> result(const HttpRequest& request, HttpResponder& responder) {
    const JobRecord job = co_await find(job_id_of(request));
    if (job.state == JobState::kExpired) {
      throw ApiError(410, "result_expired", "the job's result expired and was deleted");
    }
    if (job.state != JobState::kSucceeded || !job.result) {
      throw ApiError(409, "job_not_succeeded",
                     "the job has no result: it is " + std::string(to_string(job.state)),
                     {{"state", std::string(to_string(job.state))}});
    }
    if (job.dataset.starts_with("cube:")) {
      throw ApiError(409, "no_result_file",
                     "a cube build has no file: its version is served at /v1/cubes/" + job.dataset.substr(5));
    }
    if (std::optional<std::string> url = service_.presigned_result_url(job)) {
      Headers headers;
      headers.emplace_back("Location", *url);
      headers.emplace_back("Cache-Control", "no-store");
      co_await responder.send(303, std::move(headers), std::string());
      co_return;
    }
    const std::int64_t left = std::max<std::int64_t>(0, (job.result->expires_at - system_now_ms()) / 1000);
    co_await send_stored_object(files_, job.result->key, left, request, responder,
                                JobService::result_file_name(job));
  }

  std::uint64_t resume_point(const HttpRequest& request) {
    std::string_view text = request.header("Last-Event-ID");
    for (const auto& [name, value] : request.params) {
      if (name == "last_event_id") text = value;
    }
    if (text.empty()) return 0;
    const std::optional<std::uint64_t> seq = parse_event_id(text);
    if (!seq) throw ApiError(400, "invalid_last_event_id", "Last-Event-ID: expected an event id (a number)");
    return *seq;
  }

  asio::awaitable<void> events(const HttpRequest& request, HttpResponder& responder) {
    const std::string id = job_id_of(request);
    (void)co_await find(id);
    std::uint64_t last = resume_point(request);
    auto signal = std::make_shared<WakeSignal>(co_await asio::this_coro::executor);
    service_.watch(id, signal);
    struct Unwatch {
      JobService& service;
      const std::string& id;
      std::shared_ptr<WakeSignal>& signal;
      ~Unwatch() { service.unwatch(id, signal); }
    } unwatch{service_, id, signal};
    if (is_websocket_upgrade(request)) {
      std::unique_ptr<WebSocket> socket = co_await responder.accept_websocket(request);
      co_await (send_websocket(*socket, id, last, signal) || drain(*socket));
      co_await socket->close();
      co_return;
    }
    EventPage page = co_await service_.events_after(id, last);
    if (page.events.empty() && page.ended) {
      // A client that reconnects after the final event (EventSource does, when a stream ends):
      // 204 tells it to stop.
      Headers none;
      none.emplace_back("Cache-Control", "no-store");
      co_await responder.send(204, std::move(none), std::string());
      co_return;
    }
    Headers headers;
    headers.emplace_back("Content-Type", "text/event-stream");
    headers.emplace_back("Cache-Control", "no-store");
    headers.emplace_back("X-Accel-Buffering", "no");
    ByteSink* sink = co_await responder.start_stream(200, std::move(headers));
    co_await sink->write("retry: 1000\n\n");
    auto idle_since = std::chrono::steady_clock::now();
    for (;;) {
      std::string out;
      for (const JobEvent& event : page.events) {
        out += "id: " + std::to_string(event.seq) + "\nevent: " + event.type + "\ndata: " + event.data + "\n\n";
        last = event.seq;
      }
      if (!out.empty()) {
        co_await sink->write(out);
        idle_since = std::chrono::steady_clock::now();
      }
      if (page.ended) break;
      if (std::chrono::steady_clock::now() - idle_since > kKeepAlive) {
        co_await sink->write(": keep-alive\n\n");
        idle_since = std::chrono::steady_clock::now();
      }
      co_await (signal->wait() || pause(service_.queue_config().poll_interval));
      page = co_await service_.events_after(id, last);
    }
    co_await sink->finish();
  }

  // Returns (never throws) when the stream ends, the client left or the queue failed: `a || b`
  // waits for the first branch that succeeds, and drain() ends only when the client closes.
  asio::awaitable<void> send_websocket(WebSocket& socket, const std::string& id, std::uint64_t last,
                                       std::shared_ptr<WakeSignal> signal) {
    try {
      co_await send_websocket_events(socket, id, last, std::move(signal));
    } catch (const std::exception& error) {
      log_event("jobs: " + id + ": event stream ended: " + describe_failure(error));
    }
  }

  asio::awaitable<void> send_websocket_events(WebSocket& socket, const std::string& id,
                                              std::uint64_t last,
                                              std::shared_ptr<WakeSignal> signal) {
    for (;;) {
      const EventPage page = co_await service_.events_after(id, last);
      for (const JobEvent& event : page.events) {
        co_await socket.send_text("{\"id\":" + std::to_string(event.seq) + ",\"event\":\"" +
                                  event.type + "\",\"data\":" + event.data + "}");
        last = event.seq;
      }
      if (page.ended) co_return;
      co_await (signal->wait() || pause(service_.queue_config().poll_interval));
    }
  }

  // Reads (and ignores) what the client sends, until it closes.
  static asio::awaitable<void> drain(WebSocket& socket) {
    for (;;) {
      std::optional<std::string> message = co_await socket.receive();
      if (!message) co_return;
    }
  }

  JobService service_;
  FileService files_;
  std::unique_ptr<JobRunner> runner_;
};

}  // namespace

std::unique_ptr<JobFeature> make_job_feature(const Config& config, JobQueue& queue,
                                             ObjectStore& store, const DatasetCatalog& catalog,
                                             StreamLimiter& limiter, Router& router,
                                             unsigned workers) {
  auto feature = std::make_unique<JobFeatureImpl>(config, queue, store, catalog, limiter, workers);
  feature->add_routes(router);
  return feature;
}

int run_job_workers(const Config& config, JobQueue& queue, ObjectStore& store,
                    const DatasetCatalog& catalog, unsigned workers,
                    const std::function<void()>& after_join) {
  JobService service(config, queue, store, catalog);
  JobRunner runner(service, std::max(1u, workers), std::string());
  runner.start();
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    log_event("jobs: shutting down: no new jobs; running jobs may finish for " +
              std::to_string(config.server.shutdown_grace.count()) + " ms");
    runner.begin_shutdown(config.server.shutdown_grace);
  });
  std::thread waiter([&] {
    runner.join();
    asio::post(signals_io, [&] { signals.cancel(); });
  });
  signals_io.run();
  waiter.join();
  if (after_join) after_join();
  log_event("stopped");
  return 0;
}

}  // namespace sluice
