#include "pipeline/export_pipeline.hpp"

#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <optional>

#include "pipeline/pipeline_metrics.hpp"
#include "encode/compressing_sink.hpp"
#include "pipeline/column_transform.hpp"
#include "pipeline/output_params.hpp"

namespace sluice {
namespace {

// How long encoded bytes may wait in a part-filled buffer for more rows of a flowing stream.
constexpr std::chrono::milliseconds kMaxHold{10};

// The encoder for the plan's format, or the pass-through one when the reader delivers the
// database's own CSV records. Without the UTF-8 check when the source vouches for its text and
// no transform rewrites it.
std::unique_ptr<Encoder> encoder_for(const BatchReader& reader, const ExportPlan& plan,
                                     bool transformed) {
  const Utf8Check check =
      reader.text_valid_utf8() && !transformed ? Utf8Check::kTrusted : Utf8Check::kCheck;
  if (!reader.csv_records()) return make_encoder(plan.format, plan.output, check);
  return make_csv_records_encoder(
      plan.output, check,
      reader.csv_records_finished() ? CsvRecords::kFinished : CsvRecords::kAsMade);
}

}  // namespace

boost::asio::awaitable<std::unique_ptr<ExportPipeline>> ExportPipeline::open(ExportPlan plan,
                                                                             StreamBudget budget) {
  std::unique_ptr<ExportPipeline> pipeline(new ExportPipeline(std::move(plan), budget));
  ExportPlan& opened = pipeline->plan_;
  auto executor = co_await boost::asio::this_coro::executor;
  pipeline->reader_ = co_await opened.dataset->source->open(opened.query, budget.read(), executor,
                                                            opened.columns);
  pipeline->first_ = pipeline->taken(co_await pipeline->reader_->next());
  check_first_batch_utf8(pipeline->first_, pipeline->reader_->columns(), opened.format,
                         opened.output, pipeline->reader_->csv_records());
  co_return pipeline;
}

ExportPipeline::~ExportPipeline() {
  if (reader_ && !done_) reader_->cancel();
  pipeline_metrics().rows_discarded.add(rows_taken_ - rows_sent_);
}

void ExportPipeline::cancel() noexcept {
  if (reader_) reader_->cancel();
}

RowBatch* ExportPipeline::taken(RowBatch* batch) {
  if (batch != nullptr) rows_taken_ += batch->rows();
  return batch;
}

boost::asio::awaitable<PipelineStats> ExportPipeline::run(
    ByteSink& sink, const std::function<void(const PipelineStats&)>& before_finish) {
  BatchReader& reader = *reader_;
  std::optional<CompressingSink> compressing;
  ByteSink* out = &sink;
  if (plan_.compression != Compression::kNone) {
    compressing.emplace(sink, make_compressor(plan_.compression), budget_.interactive);
    out = &*compressing;
  }
  const std::size_t flush_bytes = budget_.flush_bytes();
  const std::size_t buffer_bytes = budget_.output_bytes();
  PipelineStats stats;
  ByteBuffer buffer(buffer_bytes);  // grows only if one batch encodes larger
  std::uint64_t pending_rows = 0;
  auto flush = [&]() -> boost::asio::awaitable<void> {
    if (!buffer.empty()) {
      co_await out->write(buffer.view());
      stats.bytes += buffer.size();
      buffer.clear();
    }
    stats.rows += pending_rows;
    rows_sent_ += pending_rows;
    pipeline_metrics().rows_sent.add(pending_rows);
    pending_rows = 0;
  };

  std::optional<RowTransformer> transformer;
  const ColumnTransforms& transforms = plan_.dataset->transforms;
  if (!transforms.empty()) transformer.emplace(transforms, reader.columns());
  std::unique_ptr<Encoder> encoder = encoder_for(reader, plan_, transformer.has_value());
  encoder->begin(transformer ? std::span<const Column>(transformer->output_columns())
                             : std::span<const Column>(reader.columns()),
                 buffer);
  bool first_write = true;
  // When the buffer's oldest unwritten batch was encoded; empty right after a write.
  std::optional<std::chrono::steady_clock::time_point> held_since;
  for (RowBatch* batch = std::exchange(first_, nullptr); batch != nullptr;) {
    if (transformer) transformer->apply(*batch);
    const std::size_t before = buffer.size();
    encoder->encode(*batch, buffer);
    const std::size_t encoded = buffer.size() - before;
    pending_rows += batch->rows();
    // The first rows leave at once; after that, write when the buffer is full or when the
    // database has nothing coming soon. Bytes are held while rows flow (a fast stream writes
    // large pieces: fewer system calls and wake-ups for the client and for Sluice), never
    // longer than kMaxHold, and never into more memory: a buffer that would overflow with
    // another batch like this one is written now.
    const auto now = std::chrono::steady_clock::now();
    if (!held_since) held_since = now;
    bool write = buffer.size() >= flush_bytes || buffer.size() + encoded > buffer_bytes;
    if (!write && budget_.interactive) {
      write = first_write || now - *held_since >= kMaxHold;
      if (!write) write = !(co_await reader.ready_soon());
    }
    if (write) {
      co_await flush();
      first_write = false;
      held_since.reset();
      buffer.shrink_to(buffer_bytes);
    }
    // A query that fails midway still delivers the rows before the failure (the transfer is
    // cut after them, never ended as if whole).
    std::exception_ptr failure;
    try {
      batch = taken(co_await reader.next());
    } catch (const SourceError&) {
      failure = std::current_exception();
    }
    if (failure) {
      co_await flush();
      std::rethrow_exception(failure);
    }
  }
  encoder->finish(buffer);
  co_await flush();
  done_ = true;
  stats.bytes_out = compressing ? compressing->bytes_out() : stats.bytes;
  if (before_finish) before_finish(stats);
  co_await out->finish();
  if (compressing) stats.bytes_out = compressing->bytes_out();  // with the gzip/zstd end
  co_return stats;
}

}  // namespace sluice
