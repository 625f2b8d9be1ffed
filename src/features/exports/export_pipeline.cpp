#include "features/exports/export_pipeline.hpp"

#include <optional>

#include "core/metrics.hpp"

namespace sluice {
namespace {

class Flusher {
 public:
  Flusher(ByteSink& sink, ByteBuffer& buffer, PipelineStats& stats)
      : sink_(sink), buffer_(buffer), stats_(stats) {}

  boost::asio::awaitable<void> flush(std::uint64_t rows) {
    if (buffer_.empty()) co_return;
    co_await sink_.write(buffer_.view());
    Metrics& counters = metrics();
    counters.rows_sent_total.fetch_add(rows, std::memory_order_relaxed);
    stats_.bytes += buffer_.size();
    stats_.rows += rows;
    buffer_.clear();
  }

 private:
  ByteSink& sink_;
  ByteBuffer& buffer_;
  PipelineStats& stats_;
};

}  // namespace

std::unique_ptr<Encoder> encoder_for(const BatchReader& reader, Format format,
                                     const OutputOptions& options) {
  return reader.csv_records() ? make_csv_records_encoder(options) : make_encoder(format, options);
}

boost::asio::awaitable<PipelineStats> run_pipeline(
    BatchReader& reader, RowBatch* first, Encoder& encoder, ByteSink& sink,
    std::size_t flush_bytes, const std::function<void(const PipelineStats&)>& before_finish,
    const ColumnTransforms* transforms) {
  PipelineStats stats;
  ByteBuffer buffer(flush_bytes);  // grows only if one batch encodes larger
  Flusher flusher(sink, buffer, stats);
  std::optional<RowTransformer> transformer;
  if (transforms != nullptr && !transforms->empty()) transformer.emplace(*transforms, reader.columns());
  encoder.begin(transformer ? std::span<const Column>(transformer->output_columns())
                            : std::span<const Column>(reader.columns()),
                buffer);
  std::uint64_t pending_rows = 0;
  bool first_write = true;
  for (RowBatch* batch = first; batch != nullptr;) {
    if (transformer) transformer->apply(*batch);
    encoder.encode(*batch, buffer);
    pending_rows += batch->rows();
    // The first rows leave at once; after that, write when the buffer is full or when the
    // database has nothing ready.
    if (first_write || buffer.size() >= flush_bytes || !reader.ready()) {
      co_await flusher.flush(pending_rows);
      pending_rows = 0;
      first_write = false;
      buffer.shrink_to(flush_bytes * 2);
    }
    batch = co_await reader.next();
  }
  encoder.finish(buffer);
  co_await flusher.flush(pending_rows);
  if (before_finish) before_finish(stats);
  co_await sink.finish();
  co_return stats;
}

}  // namespace sluice
