#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <iostream>
#include <thread>

#include "app/commands.hpp"
#include "app/demo_data.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "features/archives/archive_feature.hpp"
#include "features/cubes/cube_feature.hpp"
#include "features/exports/export_handler.hpp"
#include "features/files/file_feature.hpp"
#include "features/jobs/job_feature.hpp"
#include "queue/open_job_queue.hpp"
#include "http/auth.hpp"
#include "http/server.hpp"
#include "pipeline/dataset_catalog.hpp"
#include "storage/open_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// /healthz and /metrics; only /healthz when `metrics` is false (the main listener's when
// [server] ops_listen serves /metrics).
void add_operations_routes(Router& router, bool with_metrics = true) {
  router.add("GET", {"healthz"},
             [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
               // Built outside co_await: g++ 12 miscompiles braced pair lists inside it.
               Headers headers{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
               co_await responder.send(200, std::move(headers), R"({"status":"ok"})");
             },
             Access::open());
  if (!with_metrics) return;
  router.add("GET", {"metrics"},
             [](const HttpRequest&, HttpResponder& responder) -> asio::awaitable<void> {
               Headers headers{{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"},
                               {"Cache-Control", "no-store"}};
               co_await responder.send(200, std::move(headers), metrics().render_prometheus());
             });
}

// SIGHUP re-reads [auth] tokens_file, on a thread of its own (a bad file keeps the tokens in
// force; the log names its file, line and key, never a token).
class TokenReloader {
 public:
  explicit TokenReloader(Gatekeeper& gatekeeper) : gatekeeper_(gatekeeper), signals_(io_, SIGHUP) {
    wait();
    thread_ = std::thread([this] { io_.run(); });
  }
  TokenReloader(const TokenReloader&) = delete;
  TokenReloader& operator=(const TokenReloader&) = delete;
  ~TokenReloader() {
    io_.stop();
    thread_.join();
  }

 private:
  void wait() {
    signals_.async_wait([this](const boost::system::error_code& error, int) {
      if (error) return;
      const std::string problem = gatekeeper_.reload();
      log_event(problem.empty() ? "SIGHUP: API tokens reloaded"
                                : "SIGHUP: API tokens NOT reloaded, the previous ones stay in "
                                  "force: " + problem);
      wait();
    });
  }

  Gatekeeper& gatekeeper_;
  asio::io_context io_;
  asio::signal_set signals_;
  std::thread thread_;
};

// 127.0.0.0/8, ::1 and localhost: only this machine can connect.
bool is_loopback_listen(std::string_view listen) {
  const std::string_view host = address_host(listen);
  return host.starts_with("127.") || host == "::1" || host == "localhost";
}

}  // namespace

int serve_command(const Config& config, const std::optional<std::string>& listen,
                  const std::vector<std::string>& banner_paths,
                  const std::vector<std::string>& banner_lines) {
  // Before anything logs (the job workers start before the server).
  set_log_format(config.server.log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  DatasetCatalog catalog(config);
  metrics()
      .gauge("sluice_stream_budget_bytes", "Per-stream byte budget of the export pipeline.")
      .set(static_cast<std::int64_t>(config.server.stream_buffer_bytes));
  StreamLimiter limiter(config.server.max_streams);  // one limit for every streaming response
  const std::string address = listen.value_or(config.server.listen);
  const AccessConfig access = load_access_config(config.file);
  if (!access.auth && !is_loopback_listen(address)) {
    throw std::runtime_error(
        "refusing to listen on " + address + " without an [auth] section: anyone who can "
        "connect could read every dataset. Add [auth] with API tokens (or, for an open server "
        "on purpose, [auth] anonymous_scopes = [\"*\"]), or listen on 127.0.0.1");
  }
  if (!access.auth) {
    log_event("no [auth] section: access control is off, every request may do everything "
              "(loopback listen only)");
  }
  Gatekeeper gatekeeper(access);  // reads [auth] tokens_file: a bad one stops the start
  std::optional<TokenReloader> reloader;
  if (access.auth) reloader.emplace(gatekeeper);
  Router router;
  router.set_gatekeeper(&gatekeeper);
  add_operations_routes(router, config.server.ops_listen.empty());
  Router ops_router;  // [server] ops_listen: no access control (an internal address)
  add_operations_routes(ops_router);
  // The object store of [storage], one for every feature that stores or reads objects; archives
  // exist only with it. Declared before the server so both outlive every download.
  boost::asio::io_context check_io;  // the start's check of the store; outlives the store
  std::unique_ptr<ObjectStore> store;
  std::unique_ptr<ArchiveFeature> archives;
  std::unique_ptr<FileFeature> files;
  std::unique_ptr<JobQueue> queue;
  std::unique_ptr<JobFeature> jobs;
  std::unique_ptr<CubeFeature> cubes;
  if (config.storage) {
    store = open_object_store(*config.storage);
    // A bucket that cannot be reached, or credentials S3 refuses, stop the start with S3's
    // reason instead of failing every later request.
    if (config.storage->kind == "s3") verify_object_store(*store, check_io, false);
    archives = make_archive_feature(*store, config.archives, config.server, limiter, router);
    files = make_file_feature(*store, *config.storage, config.server, limiter, router);
    queue = open_job_queue(*config.queue);
    jobs = make_job_feature(config, *queue, *store, catalog, limiter, router, config.queue->workers);
    cubes = make_cube_feature(config, *store, router);
  }
  AsyncExportHandler async;
  if (jobs) {
    async = [&jobs](ExportRequest request, const HttpRequest& http, HttpResponder& responder) {
      return jobs->respond_async(std::move(request), http, responder);
    };
  }
  add_export_routes(router, catalog, config.server, limiter, std::move(async));
  HttpServer server(config.server, router);
  if (jobs) {
    server.on_shutdown([&jobs, grace = config.server.shutdown_grace] { jobs->begin_shutdown(grace); });
  }
  if (files && !files->links_enabled()) {  // (after the server chose the log format)
    log_event("presigned file links disabled: environment variable " +
              config.storage->link_secret_env + " is not set");
  }
  const std::string scheme = config.server.tls ? "https://" : "http://";
  std::string bound = server.listen(address);
  if (!config.server.ops_listen.empty()) {
    std::cout << "operations (/healthz, /metrics) on http://"
              << server.listen_ops(config.server.ops_listen, ops_router) << '\n';
  }
  std::cout << "listening on " << scheme << bound << std::endl;
  for (const std::string& path : banner_paths) std::cout << "  " << scheme << bound << path << '\n';
  for (std::string line : banner_lines) {
    for (std::size_t at = line.find("{base}"); at != std::string::npos; at = line.find("{base}")) {
      line.replace(at, 6, scheme + bound);
    }
    std::cout << line << '\n';
  }
  std::cout << std::flush;
  server.run();
  if (jobs) {
    jobs->begin_shutdown(config.server.shutdown_grace);  // (a stop without a signal)
    jobs->join();
  }
  // Joins the object store's pool while the server's io_context still exists: a read job that
  // outlived its download holds a WakeSignal whose timer belongs to that context.
  if (cubes) cubes->stop();
  cubes.reset();
  files.reset();
  archives.reset();
  store.reset();  // (before the job runner's I/O contexts go: its writes' pool jobs wake them)
  catalog.close();  // while the server's I/O context, where connections are registered, exists
  jobs.reset();     // the runner's contexts, where job connections are registered, go after
  queue.reset();
  log_event("stopped");
  return 0;
}

int demo_command(const DemoCommandOptions& options) {
  DemoSetup setup = prepare_demo(DemoOptions{options.dir, options.rows, options.listen}, std::clog);
  Config config = load_config(setup.config_file);
  // The sales cube, built from the orders once (again when the database was generated anew).
  if (const CubeConfig* cube = config.find_cube("sales");
      cube != nullptr && (setup.created || !std::filesystem::exists(setup.objects / ".sluice" / "cubes" /
                                                                     "sales" / "current.json"))) {
    build_cubes(config, {cube}, std::clog);
  }
  std::cout << "demo folder " << options.dir.string() << " (" << setup.rows << " orders, config "
            << setup.config_file.string() << ")\ntry:\n";
  return serve_command(
      config, options.listen,
      {"/v1/datasets", "/v1/exports/orders.csv", "/v1/exports/orders.jsonl?country=DE,FR",
       "/v1/exports/orders.csv?status=paid&columns=id,email,amount&limit=100",
       "/v1/exports/orders_report.csv?country=DE&limit=100", "/v1/exports/countries.jsonl",
       "/v1/cubes/sales", "/v1/cubes/sales/DE/2024-11?status=paid&day=3",
       "/v1/cubes/sales/DE/2024-11?status=delivered&day=1..30", "/metrics", "/healthz"},
      {"background job: curl -si -X POST {base}/v1/jobs -H 'Content-Type: application/json' -d '{\"dataset\": \"orders\", "
       "\"format\": \"csv\", \"compression\": \"gzip\", \"filters\": {\"country\": \"DE\"}}'",
       "  then: curl -s {base}/v1/jobs/JOB_ID (poll), curl -N {base}/v1/jobs/JOB_ID/events "
       "(live), curl -OJ {base}/v1/jobs/JOB_ID/result"});
}

int worker_command(const std::filesystem::path& config_file, std::optional<unsigned> workers) {
  Config config = load_config(config_file);
  set_log_format(config.server.log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  if (!config.queue) {
    throw std::runtime_error(config_file.string() +
                             ": no [storage] section: jobs write their results there");
  }
  DatasetCatalog catalog(config);
  boost::asio::io_context check_io;  // outlives the store
  std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
  if (config.storage->kind == "s3") verify_object_store(*store, check_io, false);
  std::unique_ptr<JobQueue> queue = open_job_queue(*config.queue);
  const unsigned slots = workers.value_or(std::max(1u, config.queue->workers));
  // Once the workers stopped, and before their I/O contexts go: the store's pool jobs and the
  // sources' pooled connections belong to those contexts.
  const int status = run_job_workers(config, *queue, *store, catalog, slots, [&] {
    store.reset();
    catalog.close();
  });
  queue.reset();
  return status;
}

int check_config_command(const std::filesystem::path& file) {
  Config config = load_config(file);
  DatasetCatalog catalog(config);  // also prepares every query against its source
  std::string storage = "no storage";
  if (config.storage) {
    boost::asio::io_context io;  // before the store: it must outlive the store's pool jobs
    std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
    verify_object_store(*store, io, true);
    storage = config.storage->kind == "s3"
                  ? "S3 bucket " + config.storage->s3->bucket + " listed, written, read, deleted"
                  : "folder " + config.storage->path.string() + " listed, written, read, deleted";
  }
  std::string jobs;
  if (config.queue) {
    std::unique_ptr<JobQueue> queue = open_job_queue(*config.queue);
    jobs = config.queue->kind == "postgres" ? ", job queue in PostgreSQL reachable"
                                            : ", job queue " + config.queue->path.string();
  }
  std::cout << file.string() << ": ok (" << config.sources.size() << " source(s), "
            << config.datasets.size() << " dataset(s), " << storage << jobs << ")\n";
  return 0;
}

}  // namespace sluice
