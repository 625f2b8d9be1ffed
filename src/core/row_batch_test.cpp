#include "core/row_batch.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace sluice {
namespace {

using namespace std::string_literals;

TEST(LogicalTypeTest, NamesRoundTrip) {
  for (LogicalType type : {LogicalType::kInt, LogicalType::kDecimal, LogicalType::kFloat,
                           LogicalType::kBool, LogicalType::kText, LogicalType::kTimestamp,
                           LogicalType::kDate, LogicalType::kJson, LogicalType::kBytes}) {
    EXPECT_EQ(parse_logical_type(to_string(type)), type) << to_string(type);
  }
  EXPECT_EQ(to_string(LogicalType::kTimestamp), "timestamp");
  EXPECT_EQ(to_string(LogicalType::kBytes), "bytes");
}

TEST(LogicalTypeTest, UnknownNamesAreRejected) {
  EXPECT_EQ(parse_logical_type("integer"), std::nullopt);
  EXPECT_EQ(parse_logical_type("INT"), std::nullopt);
  EXPECT_EQ(parse_logical_type(""), std::nullopt);
  EXPECT_EQ(parse_logical_type("text "), std::nullopt);
}

TEST(RowBatchTest, StartsEmpty) {
  RowBatch batch;
  EXPECT_EQ(batch.columns(), 0u);
  EXPECT_EQ(batch.rows(), 0u);
  EXPECT_EQ(batch.arena_bytes(), 0u);
}

TEST(RowBatchTest, CellsComeBackWithTheirFlags) {
  RowBatch batch;
  batch.reset(3);
  batch.add_value("1");
  batch.add_null();
  batch.add_value("", false);
  batch.add_value("x", true);
  batch.add_value("\0bin\xff"s);
  batch.add_null();
  ASSERT_EQ(batch.rows(), 2u);

  EXPECT_EQ(batch.cell(0, 0).value, "1");
  EXPECT_FALSE(batch.cell(0, 0).null);
  EXPECT_FALSE(batch.cell(0, 0).as_text);

  EXPECT_TRUE(batch.cell(0, 1).null);
  EXPECT_TRUE(batch.cell(0, 1).value.empty());

  // The empty string is a value, not NULL.
  EXPECT_FALSE(batch.cell(0, 2).null);
  EXPECT_EQ(batch.cell(0, 2).value, "");

  EXPECT_EQ(batch.cell(1, 0).value, "x");
  EXPECT_TRUE(batch.cell(1, 0).as_text);
  EXPECT_FALSE(batch.cell(1, 0).null);

  EXPECT_EQ(batch.cell(1, 1).value, "\0bin\xff"s);
  EXPECT_FALSE(batch.cell(1, 1).as_text);
  EXPECT_TRUE(batch.cell(1, 2).null);
  EXPECT_FALSE(batch.cell(1, 2).as_text);

  EXPECT_EQ(batch.arena_bytes(), 1u + 0u + 1u + 5u);
}

TEST(RowBatchTest, PartialRowIsNotCounted) {
  RowBatch batch;
  batch.reset(2);
  batch.add_value("a");
  EXPECT_EQ(batch.rows(), 0u);
  batch.add_value("b");
  EXPECT_EQ(batch.rows(), 1u);
  batch.add_value("c");
  EXPECT_EQ(batch.rows(), 1u);
}

TEST(RowBatchTest, ZeroColumnsHasNoRows) {
  RowBatch batch;
  batch.reset(0);
  EXPECT_EQ(batch.rows(), 0u);
}

TEST(RowBatchTest, ValuesSurviveArenaGrowth) {
  RowBatch batch;
  batch.reset(1);
  std::vector<std::string> values;
  for (int i = 0; i < 5000; ++i) {
    values.push_back(
        std::string(static_cast<std::size_t>(i % 97), static_cast<char>('a' + i % 26)) +
        std::to_string(i));
    batch.add_value(values.back());
  }
  ASSERT_EQ(batch.rows(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(batch.cell(i, 0).value, values[i]);
}

TEST(RowBatchTest, ResetEmptiesButKeepsMemory) {
  RowBatch batch;
  batch.reset(2);
  for (int i = 0; i < 1000; ++i) batch.add_value("some value " + std::to_string(i));
  const std::size_t memory = batch.memory_bytes();
  EXPECT_GT(memory, 0u);
  batch.reset(4);
  EXPECT_EQ(batch.columns(), 4u);
  EXPECT_EQ(batch.rows(), 0u);
  EXPECT_EQ(batch.arena_bytes(), 0u);
  EXPECT_EQ(batch.memory_bytes(), memory);
  batch.add_value("a");
  batch.add_null();
  batch.add_value("b", true);
  batch.add_value("c");
  ASSERT_EQ(batch.rows(), 1u);
  EXPECT_EQ(batch.cell(0, 0).value, "a");
  EXPECT_TRUE(batch.cell(0, 1).null);
  EXPECT_TRUE(batch.cell(0, 2).as_text);
  EXPECT_EQ(batch.cell(0, 3).value, "c");
}

TEST(RowBatchTest, ShrinkReleasesMemoryAndKeepsCells) {
  RowBatch batch;
  batch.reset(1);
  batch.add_value(std::string(1 << 20, 'x'));
  batch.reset(1);
  batch.add_value("kept");
  const std::size_t before = batch.memory_bytes();
  batch.shrink_to(4096, 16);
  EXPECT_LT(batch.memory_bytes(), before);
  EXPECT_LE(batch.memory_bytes(), 4096u + 16 * 8u);
  ASSERT_EQ(batch.rows(), 1u);
  EXPECT_EQ(batch.cell(0, 0).value, "kept");
}

TEST(RowBatchTest, ShrinkNeverDropsLiveData) {
  RowBatch batch;
  batch.reset(1);
  const std::string big(10000, 'y');
  batch.add_value(big);
  batch.shrink_to(16, 0);  // smaller than what is held: must keep it
  ASSERT_EQ(batch.rows(), 1u);
  EXPECT_EQ(batch.cell(0, 0).value, big);
}

TEST(RowBatchTest, LargeCell) {
  RowBatch batch;
  batch.reset(2);
  const std::string big(16u << 20, 'z');
  batch.add_value(big);
  batch.add_value("after", true);
  EXPECT_EQ(batch.cell(0, 0).value.size(), big.size());
  EXPECT_TRUE(batch.cell(0, 0).value == big);
  EXPECT_EQ(batch.cell(0, 1).value, "after");
  EXPECT_TRUE(batch.cell(0, 1).as_text);
  EXPECT_EQ(batch.arena_bytes(), big.size() + 5);
}


TEST(RowBatchTest, AddRowFromCopiesValuesNullsAndTextMarks) {
  RowBatch source;
  source.reset(3);
  source.add_value("a");
  source.add_null();
  source.add_value("12x", true);
  source.add_value("");
  source.add_value("b");
  source.add_null();
  RowBatch copy;
  copy.reset(3);
  copy.add_row_from(source, 1);
  copy.add_row_from(source, 0);
  ASSERT_EQ(copy.rows(), 2u);
  EXPECT_EQ(copy.cell(0, 0).value, "");
  EXPECT_FALSE(copy.cell(0, 0).null);
  EXPECT_EQ(copy.cell(0, 1).value, "b");
  EXPECT_TRUE(copy.cell(0, 2).null);
  EXPECT_EQ(copy.cell(1, 0).value, "a");
  EXPECT_TRUE(copy.cell(1, 1).null);
  EXPECT_EQ(copy.cell(1, 2).value, "12x");
  EXPECT_TRUE(copy.cell(1, 2).as_text);
  EXPECT_FALSE(copy.cell(1, 0).as_text);
}

// A cell written in pieces keeps every piece, also when the arena moves between them.
TEST(RowBatchTest, CellWrittenInPiecesSurvivesArenaGrowth) {
  RowBatch batch;
  batch.reset(1);
  batch.add_value("first");
  const std::size_t start = batch.piece_start();
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    const std::string piece(static_cast<std::size_t>(i * 37 % 900 + 1),
                            static_cast<char>('a' + i % 26));
    std::memcpy(batch.piece_room(piece.size()), piece.data(), piece.size());
    batch.commit_piece(piece.size());
    expected += piece;
  }
  batch.end_pieces(start);
  ASSERT_EQ(batch.rows(), 2u);
  EXPECT_EQ(batch.cell(0, 0).value, "first");
  EXPECT_EQ(batch.cell(1, 0).value, expected);
  EXPECT_FALSE(batch.cell(1, 0).null);
}

}  // namespace
}  // namespace sluice
