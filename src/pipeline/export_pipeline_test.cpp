#include "pipeline/export_pipeline.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <string>

#include "core/api_error.hpp"
#include "core/string_sink.hpp"
#include "pipeline/pipeline_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

// A source whose reader hands out `batches` batches of `rows_per_batch` rows (id, name), or
// fails: at open(), or at the n-th next(). Records what happened to its last reader.
class FakeSource final : public Source {
 public:
  struct Log {
    bool cancelled = false;
    int nexts = 0;
  };
  int batches = 3;
  std::size_t rows_per_batch = 100;
  bool fail_open = false;
  int fail_at_next = -1;  // 0 = the first next()
  bool flowing = false;     // ready_soon(): rows always come soon
  std::chrono::milliseconds batch_delay{0};  // each next() after the first waits this long
  bool valid_utf8 = false;  // text_valid_utf8()
  std::string name_prefix = "name-";
  std::shared_ptr<Log> log = std::make_shared<Log>();

  std::string placeholder(std::size_t, FilterType) const override { return "?"; }
  std::vector<Column> describe(const std::string&) override { return columns(); }
  static std::vector<Column> columns() {
    return {{"id", LogicalType::kInt}, {"name", LogicalType::kText}};
  }

  asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec, ReadBudget, asio::any_io_executor,
                                                     std::vector<Column> columns) override {
    if (fail_open) throw SourceError(SourceError::Kind::kUnavailable, "cannot connect");
    log = std::make_shared<Log>();
    co_return std::make_unique<Reader>(*this, std::move(columns));
  }

 private:
  class Reader final : public BatchReader {
   public:
    Reader(const FakeSource& source, std::vector<Column> columns)
        : source_(source), log_(source.log), columns_(std::move(columns)) {}
    const std::vector<Column>& columns() const override { return columns_; }
    asio::awaitable<RowBatch*> next() override {
      const int call = log_->nexts++;
      if (log_->cancelled) throw SourceError(SourceError::Kind::kCancelled, "query cancelled");
      if (call == source_.fail_at_next) throw SourceError("the disk is on fire");
      if (produced_ == source_.batches) co_return nullptr;
      if (produced_ > 0 && source_.batch_delay.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, source_.batch_delay);
        co_await timer.async_wait(asio::use_awaitable);
      }
      batch_.reset(2);
      for (std::size_t r = 0; r < source_.rows_per_batch; ++r) {
        const std::uint64_t id = next_id_++;
        batch_.add_value(std::to_string(id));
        batch_.add_value(source_.name_prefix + std::to_string(id));
      }
      ++produced_;
      co_return &batch_;
    }
    bool ready() const override { return produced_ % 2 == 0; }  // sometimes "would wait"
    asio::awaitable<bool> ready_soon() override { co_return source_.flowing || ready(); }
    bool text_valid_utf8() const override { return source_.valid_utf8; }
    void cancel() noexcept override { log_->cancelled = true; }

   private:
    const FakeSource& source_;
    std::shared_ptr<Log> log_;
    std::vector<Column> columns_;
    RowBatch batch_;
    int produced_ = 0;
    std::uint64_t next_id_ = 1;
  };
};


struct Outcome {
  std::exception_ptr error;
  PipelineStats stats;
};

std::string message_of(const std::exception_ptr& error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string gunzip(const std::string& in) {
  z_stream z{};
  inflateInit2(&z, 16 + MAX_WBITS);
  std::string out;
  char buffer[65536];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buffer);
    z.avail_out = sizeof buffer;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return "<incomplete gzip: " + std::to_string(rc) + ">" + out;
  return out;
}

class ExportPipelineTest : public ::testing::Test {
 protected:
  ExportPipelineTest() {
    config_.name = "things";
    config_.query = "SELECT id, name FROM things";
    dataset_.config = &config_;
    dataset_.source = &source_;
    dataset_.columns = FakeSource::columns();
  }

  ExportPlan plan(Format format = Format::kCsv, Compression compression = Compression::kNone) {
    ExportPlan planned = plan_export(dataset_, format, {});
    planned.compression = compression;
    return planned;
  }

  // Opens and runs one pipeline into `sink` on a fresh io_context.
  Outcome run(ExportPlan planned, StringSink& sink, StreamBudget budget = {}) {
    Outcome outcome;
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<PipelineStats> {
          auto pipeline = co_await ExportPipeline::open(std::move(planned), budget);
          co_return co_await pipeline->run(sink);
        },
        [&](std::exception_ptr error, PipelineStats stats) {
          outcome.error = error;
          outcome.stats = stats;
        });
    io.run();
    return outcome;
  }

  std::string expected_csv() const {
    std::string csv = "id,name\r\n";
    const std::size_t rows = static_cast<std::size_t>(source_.batches) * source_.rows_per_batch;
    for (std::size_t id = 1; id <= rows; ++id) {
      csv += std::to_string(id) + "," + source_.name_prefix + std::to_string(id) + "\r\n";
    }
    return csv;
  }

  DatasetConfig config_;
  FakeSource source_;
  Dataset dataset_;
};

TEST_F(ExportPipelineTest, WritesEveryRowThenFinishes) {
  StringSink sink;
  const std::uint64_t sent_before = pipeline_metrics().rows_sent.value();
  Outcome outcome = run(plan(), sink);
  ASSERT_FALSE(outcome.error) << message_of(outcome.error);
  EXPECT_EQ(sink.body, expected_csv());
  EXPECT_TRUE(sink.finished);
  EXPECT_EQ(outcome.stats.rows, 300u);
  EXPECT_EQ(outcome.stats.bytes, sink.body.size());
  EXPECT_EQ(outcome.stats.bytes_out, sink.body.size());
  EXPECT_EQ(pipeline_metrics().rows_sent.value() - sent_before, 300u);
  EXPECT_FALSE(source_.log->cancelled);
}

TEST_F(ExportPipelineTest, TheFirstRowsLeaveAtOnceThenWritesAreGathered) {
  source_.batches = 40;
  StringSink sink;
  Outcome outcome = run(plan(), sink, StreamBudget{1024 * 1024});
  ASSERT_FALSE(outcome.error) << message_of(outcome.error);
  EXPECT_EQ(sink.body, expected_csv());
  // One write for the first batch, then one per batch only when the reader would wait
  // (every other batch here), never one per batch.
  EXPECT_GE(sink.writes(), 2);
  EXPECT_LE(sink.writes(), 22);
}

TEST_F(ExportPipelineTest, WhileRowsFlowBytesAreHeldUntilTheBufferIsFull) {
  source_.batches = 40;  // ~60 KB of CSV, under the 256 KiB flush size of a 1 MiB budget
  source_.flowing = true;
  StringSink sink;
  Outcome outcome = run(plan(), sink, StreamBudget{1024 * 1024});
  ASSERT_FALSE(outcome.error) << message_of(outcome.error);
  EXPECT_EQ(sink.body, expected_csv());
  EXPECT_LE(sink.writes(), 3);  // the first batch, the rest at the end (and the end itself)
}

TEST_F(ExportPipelineTest, HeldBytesWaitNoLongerThanTheHoldLimit) {
  // 20 batches 3 ms apart (60 ms or more), rows always "coming soon": without the 10 ms limit
  // they would leave in two writes (the first batch, then the rest at the end).
  source_.batches = 20;
  source_.flowing = true;
  source_.batch_delay = std::chrono::milliseconds(3);
  StringSink sink;
  Outcome outcome = run(plan(), sink, StreamBudget{1024 * 1024});
  ASSERT_FALSE(outcome.error) << message_of(outcome.error);
  EXPECT_EQ(sink.body, expected_csv());
  EXPECT_GE(sink.writes(), 5);
}

TEST_F(ExportPipelineTest, TextTheSourceVouchesForIsWrittenWithoutAnotherUtf8Check) {
  // A reader that says its text is valid UTF-8 (PostgreSQL's, which checked it on input) is
  // taken at its word: the check's cost per batch is spared. A lie shows as the raw byte.
  source_.valid_utf8 = true;
  source_.name_prefix = "n\xff-";
  StringSink trusted;
  ASSERT_FALSE(run(plan(), trusted).error);
  EXPECT_EQ(trusted.body, expected_csv());
  // Unvouched, the same bytes are repaired (U+FFFD).
  source_.valid_utf8 = false;
  StringSink checked;
  ASSERT_FALSE(run(plan(), checked).error);
  EXPECT_EQ(checked.body.find('\xff'), std::string::npos);
  EXPECT_NE(checked.body.find("n\xef\xbf\xbd-1"), std::string::npos);
  // A transform in between voids the promise: the transformed rows are checked.
  source_.valid_utf8 = true;
  ColumnTransformConfig rename;
  rename.column = "name";
  rename.rename = "label";
  dataset_.transforms.add(ColumnTransform(rename, FakeSource::columns()[1]));
  StringSink transformed;
  ASSERT_FALSE(run(plan(), transformed).error);
  EXPECT_EQ(transformed.body.rfind("id,label\r\n", 0), 0u);
  EXPECT_EQ(transformed.body.find('\xff'), std::string::npos);
}

TEST_F(ExportPipelineTest, AFailedWriteAtAnyPointStopsTheReaderAndNeverFinishes) {
  StringSink complete;
  ASSERT_FALSE(run(plan(), complete).error);
  const int writes = complete.writes();
  ASSERT_GT(writes, 1);
  for (int n = 0; n < writes; ++n) {
    StringSink sink(n);
    const std::uint64_t read_before = pipeline_metrics().rows_sent.value() +
                                      pipeline_metrics().rows_discarded.value();
    Outcome outcome = run(plan(), sink);
    ASSERT_TRUE(outcome.error) << "write " << n;
    EXPECT_EQ(message_of(outcome.error), "client gone");
    EXPECT_FALSE(sink.finished) << "write " << n;
    EXPECT_TRUE(source_.log->cancelled) << "write " << n << ": the reader was not cancelled";
    EXPECT_TRUE(complete.body.starts_with(sink.body));
    EXPECT_LT(sink.body.size(), complete.body.size());
    // Every row the reader handed out is either sent or counted as discarded.
    const std::uint64_t accounted = pipeline_metrics().rows_sent.value() +
                                    pipeline_metrics().rows_discarded.value() - read_before;
    EXPECT_EQ(accounted % source_.rows_per_batch, 0u) << "write " << n;
    EXPECT_GE(accounted, source_.rows_per_batch) << "write " << n;
  }
}

TEST_F(ExportPipelineTest, CompressedOutputIsCompleteOnlyWhenFinished) {
  StringSink sink;
  Outcome outcome = run(plan(Format::kCsv, Compression::kGzip), sink);
  ASSERT_FALSE(outcome.error) << message_of(outcome.error);
  EXPECT_EQ(gunzip(sink.body), expected_csv());
  EXPECT_EQ(outcome.stats.bytes, expected_csv().size());
  EXPECT_EQ(outcome.stats.bytes_out, sink.body.size());
  const int writes = sink.writes();
  for (int n = 0; n < writes; ++n) {
    StringSink cut(n);
    ASSERT_TRUE(run(plan(Format::kCsv, Compression::kGzip), cut).error) << "write " << n;
    EXPECT_FALSE(cut.finished);
    // What arrived decodes (each write is flushed) but is never a complete gzip member.
    const std::string decoded = gunzip(cut.body);
    EXPECT_TRUE(decoded.starts_with("<incomplete gzip")) << "write " << n;
  }
}

TEST_F(ExportPipelineTest, AReaderErrorMidwayThrowsAndNeverFinishes) {
  for (int n = 1; n <= source_.batches; ++n) {
    source_.fail_at_next = n;
    StringSink sink;
    Outcome outcome = run(plan(), sink);
    ASSERT_TRUE(outcome.error) << "next " << n;
    EXPECT_EQ(message_of(outcome.error), "the disk is on fire");
    EXPECT_FALSE(sink.finished);
  }
}

TEST_F(ExportPipelineTest, OpenFailsBeforeAnyByteWhenTheQueryOrItsFirstBatchFails) {
  source_.fail_open = true;
  StringSink sink;
  Outcome outcome = run(plan(), sink);
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(message_of(outcome.error), "cannot connect");
  EXPECT_EQ(sink.writes(), 0);

  source_.fail_open = false;
  source_.fail_at_next = 0;
  StringSink second;
  outcome = run(plan(), second);
  ASSERT_TRUE(outcome.error);
  EXPECT_EQ(second.writes(), 0);
}

TEST_F(ExportPipelineTest, InvalidUtf8InTheFirstBatchFailsOpenWhenTheDatasetSaysFail) {
  config_.output.invalid_utf8 = InvalidUtf8::kFail;
  class BadSource final : public Source {
   public:
    std::string placeholder(std::size_t, FilterType) const override { return "?"; }
    std::vector<Column> describe(const std::string&) override { return {}; }
    asio::awaitable<std::unique_ptr<BatchReader>> open(QuerySpec, ReadBudget,
                                                       asio::any_io_executor,
                                                       std::vector<Column> columns) override {
      class Reader final : public BatchReader {
       public:
        explicit Reader(std::vector<Column> columns) : columns_(std::move(columns)) {
          batch_.reset(2);
          batch_.add_value("1");
          batch_.add_value("caf\xe9");
        }
        const std::vector<Column>& columns() const override { return columns_; }
        asio::awaitable<RowBatch*> next() override { co_return std::exchange(next_, nullptr); }
        bool ready() const override { return true; }
        void cancel() noexcept override {}

       private:
        std::vector<Column> columns_;
        RowBatch batch_;
        RowBatch* next_ = &batch_;
      };
      co_return std::make_unique<Reader>(std::move(columns));
    }
  } bad;
  dataset_.source = &bad;
  StringSink sink;
  Outcome outcome = run(plan(), sink);
  ASSERT_TRUE(outcome.error);
  try {
    std::rethrow_exception(outcome.error);
  } catch (const ApiError& error) {
    EXPECT_EQ(error.code(), "invalid_utf8");
  }
  EXPECT_EQ(sink.writes(), 0);
}

}  // namespace
}  // namespace sluice
