#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>

#include "core/byte_sink.hpp"
#include "encode/encoder.hpp"
#include "sources/source.hpp"
#include "transform/column_transform.hpp"

namespace sluice {

struct PipelineStats {
  std::uint64_t rows = 0;
  std::uint64_t bytes = 0;
};

// Source → Encoder → Sink, pull-based: a batch is read only after the bytes of the previous
// ones went into the sink, so the sink's pace is the database's pace. Bytes are gathered up
// to `flush_bytes` before a write, but never held while the reader has to wait for the
// database (a slow query still delivers its rows as they come).
// `first` is the reader's first batch (already taken, to learn of errors before the headers
// went out), or nullptr for an empty result. Throws what the reader or the sink throws; the
// caller aborts the transfer then. Counts rows_sent_total (the HTTP handler counts
// bytes_sent_total at the socket, after compression).
// The encoder for `format`, or the pass-through one when the reader delivers CSV records.
std::unique_ptr<Encoder> encoder_for(const BatchReader& reader, Format format,
                                     const OutputOptions& options = {});

// `before_finish` (optional) sees the final figures before the sink is finished.
// `transforms` (optional, may be empty): the dataset's column transforms, applied to each batch
// in place before it is encoded; the encoder's header gets the output names.
boost::asio::awaitable<PipelineStats> run_pipeline(
    BatchReader& reader, RowBatch* first, Encoder& encoder, ByteSink& sink,
    std::size_t flush_bytes, const std::function<void(const PipelineStats&)>& before_finish = {},
    const ColumnTransforms* transforms = nullptr);

}  // namespace sluice
