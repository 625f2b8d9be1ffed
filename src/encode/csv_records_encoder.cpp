#include <cstring>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

// Rows that are already CSV records made by the database (PostgreSQL's COPY CSV quotes exactly
// as RFC 4180 and our CSV encoder do) pass through; only the LF that ends each record becomes
// CRLF, so the download is the same bytes whichever path made it.
class CsvRecordsEncoder final : public Encoder {
 public:
  void begin(std::span<const Column> columns, ByteBuffer& out) override {
    header_->begin(columns, out);
  }

  void encode(const RowBatch& batch, ByteBuffer& out) override {
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      std::string_view record = batch.cell(row, 0).value;
      if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
      char* tail = out.tail(record.size() + 2);
      std::memcpy(tail, record.data(), record.size());
      tail[record.size()] = '\r';
      tail[record.size() + 1] = '\n';
      out.commit(record.size() + 2);
    }
  }

  void finish(ByteBuffer& /*out*/) override {}

 private:
  std::unique_ptr<Encoder> header_ = make_csv_encoder();
};

}  // namespace

std::unique_ptr<Encoder> make_csv_records_encoder() { return std::make_unique<CsvRecordsEncoder>(); }

}  // namespace sluice
