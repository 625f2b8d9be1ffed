#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <unistd.h>

#include "app/commands.hpp"
#include "app/export_progress.hpp"
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

// Counts what goes through and redraws the progress line (at most every 250 ms).
class ProgressSink final : public ByteSink {
 public:
  ProgressSink(ByteSink& next, const ExportPipeline& pipeline, ExportProgress& progress)
      : next_(next), pipeline_(pipeline), progress_(progress) {}
  asio::awaitable<void> write(std::string_view bytes) override {
    co_await next_.write(bytes);
    bytes_ += bytes.size();
    progress_.update(pipeline_.rows_sent(), bytes_);
  }
  asio::awaitable<void> finish() override { co_await next_.finish(); }

 private:
  ByteSink& next_;
  const ExportPipeline& pipeline_;
  ExportProgress& progress_;
  std::uint64_t bytes_ = 0;
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

std::filesystem::path output_name(const ExportOptions& options) {
  return options.to_store ? std::filesystem::path(*options.to_store) : options.output.value_or("");
}

// --format, else the output's suffix before any .gz/.zst (orders.jsonl.gz: jsonl), else csv;
// --format contradicting a known suffix is an error naming both.
Format output_format(const ExportOptions& options) {
  std::filesystem::path name = output_name(options);
  if (name.has_extension() && compression_for_suffix(name.extension().string().substr(1))) {
    name.replace_extension();
  }
  std::optional<Format> by_suffix;
  if (name.has_extension()) by_suffix = parse_format(name.extension().string().substr(1));
  if (!options.format) return by_suffix.value_or(Format::kCsv);
  const std::optional<Format> chosen = parse_format(*options.format);
  if (!chosen) throw std::runtime_error("--format: expected csv, tsv, jsonl or json");
  if (by_suffix && *by_suffix != *chosen) {
    throw std::runtime_error("--format " + *options.format + " contradicts the output name " +
                             output_name(options).filename().string() + " (." +
                             std::string(file_extension(*by_suffix)) +
                             "): change one or leave --format out");
  }
  return *chosen;
}

// --compress, else the output file's suffix (orders.csv.gz); a contradiction is an error.
Compression output_compression(const ExportOptions& options) {
  std::optional<Compression> by_suffix;
  const std::filesystem::path name = output_name(options);
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

asio::awaitable<PipelineStats> run_export(ExportPlan plan, StreamBudget budget, ByteSink& sink,
                                          ExportProgress& progress) {
  auto pipeline = co_await ExportPipeline::open(std::move(plan), budget);
  ProgressSink counted(sink, *pipeline, progress);
  co_return co_await pipeline->run(counted);
}

// Into the store: the pipeline finishes the writer (commit) after the last byte; on any failure
// the writer is abandoned, so nothing appears and no upload stays open.
asio::awaitable<PipelineStats> run_export_to_store(ExportPlan plan, StreamBudget budget,
                                                   ObjectStore& store, std::string key,
                                                   ExportProgress& progress) {
  std::unique_ptr<ObjectWriter> writer = co_await store.write(std::move(key));
  std::exception_ptr failure;
  try {
    co_return co_await run_export(std::move(plan), budget, *writer, progress);
  } catch (...) {
    failure = std::current_exception();
  }
  co_await writer->abandon();
  std::rethrow_exception(failure);
}

// The summary after a complete export: rows, bytes, time and rate.
void print_summary(const PipelineStats& stats, const ExportProgress& progress,
                   const std::string& where) {
  const double seconds = std::chrono::duration<double>(progress.elapsed()).count();
  std::clog << "exported " << stats.rows << " rows, " << stats.bytes << " bytes";
  if (stats.bytes_out != stats.bytes) std::clog << " (" << stats.bytes_out << " compressed)";
  std::clog << where;
  std::array<char, 64> timing{};
  const double rate = seconds > 0 ? static_cast<double>(stats.bytes_out) / seconds : 0;
  std::snprintf(timing.data(), timing.size(), " in %.1f s (", seconds);
  std::clog << timing.data() << human_bytes(static_cast<std::uint64_t>(rate)) << "/s)\n";
}

int export_to_store(const Config& config, asio::io_context& io, ExportPlan plan,
                    const std::string& key, ExportProgress& progress, bool quiet) {
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
                                     StreamBudget{config.server.stream_buffer_bytes}, *store, key,
                                     progress),
                 [&](std::exception_ptr error, PipelineStats result) {
                   failure = std::move(error);
                   stats = result;
                 });
  io.run();
  progress.clear();
  if (failure) std::rethrow_exception(failure);
  if (!quiet) print_summary(stats, progress, " into " + key);
  return 0;
}

// The flags as the one ExportRequest the HTTP endpoint would also build; throws naming the flag.
ExportRequest export_request(const ExportOptions& options) {
  ExportRequest request;
  request.dataset = options.dataset;
  request.format = output_format(options);
  request.compression = output_compression(options);
  request.params = filter_params(options.filters);
  // The same parameters as in a URL: a --filter columns=… besides --columns is a duplicate.
  if (options.columns) request.params.emplace_back("columns", *options.columns);
  if (options.order) request.params.emplace_back("order", *options.order);
  if (options.limit) request.params.emplace_back("limit", std::to_string(*options.limit));
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
    throw std::runtime_error(unknown_dataset(catalog, options.dataset).what());
  }
  const ExportRequest request = export_request(options);
  ExportPlan plan;
  try {
    plan = plan_export(catalog, request);
  } catch (const ApiError& error) {
    throw std::runtime_error(error.what());
  }
  // A progress line only for a person watching: stderr a terminal, and not --quiet.
  ExportProgress progress(!options.quiet && isatty(fileno(stderr)) != 0 ? stderr : nullptr);
  if (options.to_store) {
    return export_to_store(config, io, std::move(plan), *options.to_store, progress, options.quiet);
  }

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
      io, run_export(std::move(plan), StreamBudget{config.server.stream_buffer_bytes}, file_sink,
                     progress),
      [&](std::exception_ptr error, PipelineStats result) {
        failure = std::move(error);
        stats = result;
      });
  io.run();
  progress.clear();
  if (options.output) {
    std::fclose(file);
    if (!in_place && failure) std::filesystem::remove(temporary);
    if (!in_place && !failure) std::filesystem::rename(temporary, *options.output);
  }
  if (failure) std::rethrow_exception(failure);
  if (!options.quiet) print_summary(stats, progress, "");
  return 0;
}

}  // namespace sluice
