#include <gtest/gtest.h>

#include "encode/encoder.hpp"

namespace sluice {
namespace {

TEST(CsvRecordsEncoderTest, WritesTheHeaderThenRecordsWithCrlf) {
  std::vector<Column> columns{{"id", LogicalType::kInt}, {"note, quoted", LogicalType::kText}};
  auto encoder = make_csv_records_encoder();
  ByteBuffer out;
  encoder->begin(columns, out);
  RowBatch batch;
  batch.reset(1);
  batch.add_value("1,\"a\nb\"\n");  // LF inside quotes is data; only the last one ends the record
  batch.add_value("2,\n");
  batch.add_value("3,\"\"");         // no LF at the end: still one record
  encoder->encode(batch, out);
  encoder->finish(out);
  EXPECT_EQ(out.view(), "id,\"note, quoted\"\r\n1,\"a\nb\"\r\n2,\r\n3,\"\"\r\n");
}

}  // namespace
}  // namespace sluice
