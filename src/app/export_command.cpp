#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <iostream>

#include "app/commands.hpp"
#include "core/api_error.hpp"
#include "pipeline/export_pipeline.hpp"
#include "storage/object_key.hpp"
#include "storage/open_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// Writes to a stdio stream; blocking is fine for the command line.
class FileSink final : public ByteSink {
 public:
  explicit FileSink(std::FILE* file) : file_(file) {}
  asio::awaitable<void> write(std::string_view bytes) override {
    if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
      throw std::runtime_error("write failed");
    }
    co_return;
  }
  asio::awaitable<void> finish() override {
    if (std::fflush(file_) != 0) throw std::runtime_error("write failed");
    co_return;
  }

 private:
  std::FILE* file_;
};

QueryParams filter_params(const std::vector<std::string>& filters) {
  QueryParams params;
  for (const std::string& filter : filters) {
    std::size_t equals = filter.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw std::runtime_error("--filter '" + filter + "': expected name=value or name.op=value");
    }
    params.emplace_back(filter.substr(0, equals), filter.substr(equals + 1));
  }
  return params;
}

// --compress, else the output file's suffix (orders.csv.gz); a contradiction is an error.
Compression output_compression(const ExportOptions& options) {
  std::optional<Compression> by_suffix;
  const std::filesystem::path name =
      options.to_store ? std::filesystem::path(*options.to_store) : options.output.value_or("");
  if (name.has_extension()) {
    by_suffix = compression_for_suffix(name.extension().string().substr(1));
  }
  if (!options.compress) return by_suffix.value_or(Compression::kNone);
  Compression chosen = parse_compression(*options.compress).value_or(Compression::kNone);
  if (by_suffix && *by_suffix != chosen) {
    throw std::runtime_error("--compress " + *options.compress + " contradicts the output name " +
                             name.filename().string());
  }
  return chosen;
}

asio::awaitable<PipelineStats> run_export(ExportPlan plan, StreamBudget budget, ByteSink& sink) {
  auto pipeline = co_await ExportPipeline::open(std::move(plan), budget);
  co_return co_await pipeline->run(sink);
}

// Into the store: the pipeline finishes the writer (commit) after the last byte; on any failure
// the writer is abandoned, so nothing appears and no upload stays open.
asio::awaitable<PipelineStats> run_export_to_store(ExportPlan plan, StreamBudget budget,
                                                   ObjectStore& store, std::string key) {
  std::unique_ptr<ObjectWriter> writer = co_await store.write(std::move(key));
  std::exception_ptr failure;
  try {
    co_return co_await run_export(std::move(plan), budget, *writer);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await writer->abandon();
  std::rethrow_exception(failure);
}

int export_to_store(const Config& config, asio::io_context& io, ExportPlan plan,
                    const std::string& key) {
  if (!config.storage) {
    throw std::runtime_error("--to-store: " + config.file.string() + " has no [storage] section");
  }
  if (const std::optional<std::string> problem = key_problem(key)) {
    throw std::runtime_error("--to-store: the object key " + *problem);
  }
  std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
  std::exception_ptr failure;
  PipelineStats stats;
  asio::co_spawn(io,
                 run_export_to_store(std::move(plan),
                                     StreamBudget{config.server.stream_buffer_bytes}, *store, key),
                 [&](std::exception_ptr error, PipelineStats result) {
                   failure = std::move(error);
                   stats = result;
                 });
  io.run();
  if (failure) std::rethrow_exception(failure);
  std::clog << "exported " << stats.rows << " rows, " << stats.bytes_out << " bytes into " << key
            << '\n';
  return 0;
}

// The flags as the one ExportRequest the HTTP endpoint would also build; throws naming the flag.
ExportRequest export_request(const ExportOptions& options) {
  ExportRequest request;
  request.dataset = options.dataset;
  std::optional<Format> format = parse_format(options.format);
  if (!format) throw std::runtime_error("--format: expected csv, tsv, jsonl or json");
  request.format = *format;
  request.compression = output_compression(options);
  request.params = filter_params(options.filters);
  if (options.delimiter) {
    const std::string& d = *options.delimiter;
    request.params.emplace_back("delimiter", d == "tab" || d == "\\t" ? std::string("\t") : d);
  }
  if (options.no_header) request.params.emplace_back("header", "false");
  if (options.bom) request.params.emplace_back("bom", "true");
  if (options.lf) request.params.emplace_back("line_ending", "lf");
  request.request_id = "cli";
  return request;
}

}  // namespace

int export_command(const ExportOptions& options) {
  Config config = load_config(options.config_file);
  asio::io_context io;  // before the catalog: pooled connections close while it exists
  DatasetCatalog catalog(config);
  if (catalog.find(options.dataset) == nullptr) {
    throw std::runtime_error("no dataset named '" + options.dataset + "'");
  }
  const ExportRequest request = export_request(options);
  ExportPlan plan;
  try {
    plan = plan_export(catalog, request);
  } catch (const ApiError& error) {
    throw std::runtime_error(error.what());
  }
  if (options.to_store) return export_to_store(config, io, std::move(plan), *options.to_store);

  // A file is written as FILE.partial and renamed when complete. A path that exists and is not
  // a regular file (/dev/null, a FIFO, a terminal) is written in place: a rename would replace
  // the device or pipe with a regular file.
  std::filesystem::path temporary;
  std::FILE* file = stdout;
  bool in_place = false;
  if (options.output) {
    std::error_code ec;
    const auto status = std::filesystem::status(*options.output, ec);
    in_place = !ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status);
    temporary =
        in_place ? *options.output : std::filesystem::path(options.output->string() + ".partial");
    file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) throw std::runtime_error("cannot write " + temporary.string());
  }
  FileSink file_sink(file);
  std::exception_ptr failure;
  PipelineStats stats;
  asio::co_spawn(
      io, run_export(std::move(plan), StreamBudget{config.server.stream_buffer_bytes}, file_sink),
      [&](std::exception_ptr error, PipelineStats result) {
        failure = std::move(error);
        stats = result;
      });
  io.run();
  if (options.output) {
    std::fclose(file);
    if (!in_place && failure) std::filesystem::remove(temporary);
    if (!in_place && !failure) std::filesystem::rename(temporary, *options.output);
  }
  if (failure) std::rethrow_exception(failure);
  std::clog << "exported " << stats.rows << " rows, " << stats.bytes << " bytes";
  if (stats.bytes_out != stats.bytes) std::clog << " (" << stats.bytes_out << " compressed)";
  std::clog << '\n';
  return 0;
}

}  // namespace sluice
