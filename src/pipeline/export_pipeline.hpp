#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/byte_sink.hpp"
#include "pipeline/export_plan.hpp"
#include "pipeline/stream_budget.hpp"

namespace sluice {

struct PipelineStats {
  std::uint64_t rows = 0;       // rows encoded and written
  std::uint64_t bytes = 0;      // bytes the encoder wrote (before compression)
  std::uint64_t bytes_out = 0;  // bytes the sink took (after compression; before_finish sees
                                // them without the compressor's end)
};

// One export, from its plan to a sink:
//
//   reader ─batches─▶ column transforms ─▶ UTF-8 check ─▶ encoder ─bytes─▶ [compressor] ─▶ sink
//
// The one assembly every consumer uses: the HTTP export handler, `sluice export`, and the job
// worker. Pull-based: a batch is read only after the bytes of the previous ones went into the
// sink, so the sink's pace is the database's pace; nothing is held beyond the StreamBudget.
// Bytes are gathered up to the budget's flush size before a write, but never held while the
// reader waits for the database (a slow query still delivers its rows as they come).
//
// Two steps, so that an HTTP handler can still answer with an error status before its headers
// go out: open() starts the query and takes the first (small) batch; run() does the rest.
// Not thread-safe: one coroutine, on the executor open() ran on; cancel() from that executor.
class ExportPipeline {
 public:
  // Starts `plan`'s query and takes its first batch. Throws SourceError when the query fails,
  // ApiError(500, "invalid_utf8") when the first batch holds invalid UTF-8 and the dataset's
  // output.invalid_utf8 is "fail".
  static boost::asio::awaitable<std::unique_ptr<ExportPipeline>> open(ExportPlan plan,
                                                                      StreamBudget budget);
  // Stops the database work unless run() completed. Rows taken from the reader and never
  // written count as discarded (metrics).
  ~ExportPipeline();
  ExportPipeline(const ExportPipeline&) = delete;
  ExportPipeline& operator=(const ExportPipeline&) = delete;

  const ExportPlan& plan() const { return plan_; }
  // Rows encoded and taken by the sink so far (progress of a running export).
  std::uint64_t rows_sent() const { return rows_sent_; }

  // Stops the database work now (client gone, shutdown): a pending or later run() throws.
  void cancel() noexcept;

  // Writes every row into `sink` (compressed first when the plan says so), then finishes it.
  // `before_finish` sees the final figures just before: trailers are set there. Throws what the
  // reader or the sink throws; the caller aborts its transfer then.
  // REQUIRES: called at most once.
  boost::asio::awaitable<PipelineStats> run(
      ByteSink& sink, const std::function<void(const PipelineStats&)>& before_finish = {});

 private:
  ExportPipeline(ExportPlan plan, StreamBudget budget) : plan_(std::move(plan)), budget_(budget) {}
  // Counts the rows of a batch the reader handed out (or nullptr at the end).
  RowBatch* taken(RowBatch* batch);

  ExportPlan plan_;
  StreamBudget budget_;
  std::unique_ptr<BatchReader> reader_;
  RowBatch* first_ = nullptr;
  std::uint64_t rows_taken_ = 0;  // handed out by the reader
  std::uint64_t rows_sent_ = 0;   // encoded and taken by the sink
  bool done_ = false;
};

}  // namespace sluice
