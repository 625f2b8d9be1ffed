#include "pipeline/column_transform.hpp"

#include "encode/encoder.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace sluice {
namespace {

ColumnTransformConfig transform(std::string column) {
  ColumnTransformConfig config;
  config.column = std::move(column);
  return config;
}

// Transforms a copy of `batch` (one column per entry of `columns`) in place, as the export
// pipeline does, and encodes it as LF CSV (or `format`), so the expected text is easy to read.
std::string encode(const ColumnTransforms& transforms, const std::vector<Column>& columns,
                   const RowBatch& batch, Format format = Format::kCsv) {
  OutputOptions options;
  options.crlf = false;
  RowTransformer transformer(transforms, columns);
  RowBatch work;
  work.copy_from(batch);
  transformer.apply(work);
  auto encoder = make_encoder(format, options);
  ByteBuffer out;
  encoder->begin(transformer.output_columns(), out);
  encoder->encode(work, out);
  encoder->finish(out);
  return std::string(out.view());
}

TEST(ColumnTransform, TruncateAloneShortensInPlace) {
  const Column note{"note", LogicalType::kText};
  ColumnTransformConfig config = transform("note");
  config.truncate = 3;
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, note));
  RowTransformer transformer(transforms, std::vector<Column>{note});
  RowBatch batch;
  batch.reset(1);
  batch.add_value("héllo");
  batch.add_value("ab");
  const std::size_t arena = batch.arena_bytes();
  transformer.apply(batch);
  EXPECT_EQ(batch.cell(0, 0).value, "hél");
  EXPECT_EQ(batch.cell(1, 0).value, "ab");
  EXPECT_EQ(batch.arena_bytes(), arena);  // nothing copied
}

TEST(ColumnTransform, RenameOnlyKeepsTypeAndPassesBatchesThrough) {
  const Column id{"id", LogicalType::kInt};
  ColumnTransformConfig config = transform("id");
  config.rename = "Order number";
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, id));
  EXPECT_EQ(transforms.output_column(id).name, "Order number");
  EXPECT_EQ(transforms.output_column(id).type, LogicalType::kInt);
  EXPECT_FALSE(transforms.changes_values(std::vector<Column>{id}));
  RowBatch batch;
  batch.reset(1);
  batch.add_value("7");
  EXPECT_EQ(encode(transforms, {id}, batch), "Order number\n7\n");
  EXPECT_EQ(encode(transforms, {id}, batch, Format::kJsonLines), "{\"Order number\":7}\n");
}

TEST(ColumnTransform, ThreeTypicalTransformsAndUntouchedColumns) {
  const std::vector<Column> columns{{"id", LogicalType::kInt},
                                    {"created_at", LogicalType::kTimestamp},
                                    {"email", LogicalType::kText},
                                    {"note", LogicalType::kText}};
  ColumnTransforms transforms;
  ColumnTransformConfig created = transform("created_at");
  created.format = "%d.%m.%Y %H:%M";
  created.time_zone = "Europe/Berlin";
  created.rename = "Created";
  transforms.add(ColumnTransform(created, columns[1]));
  ColumnTransformConfig email = transform("email");
  email.mask = MaskKind::kEmail;
  transforms.add(ColumnTransform(email, columns[2]));
  RowBatch batch;
  batch.reset(4);
  for (const char* value : {"1", "2026-07-01T10:00:00Z", "ann@example.com", "first"}) batch.add_value(value);
  batch.add_value("2");
  batch.add_null();
  batch.add_value("bob@example.org");
  batch.add_null();
  batch.add_value("3");
  batch.add_value("infinity");
  batch.add_value("no-at-sign");
  batch.add_value("x");
  EXPECT_EQ(encode(transforms, columns, batch),
            "id,Created,email,note\n"
            "1,01.07.2026 12:00,a***@example.com,first\n"
            "2,,b***@example.org,\n"
            "3,infinity,***,x\n");
}

TEST(ColumnTransform, NullTextIsTextEvenInNumberColumns) {
  const Column amount{"amount", LogicalType::kDecimal};
  ColumnTransformConfig config = transform("amount");
  config.null_text = "n/a";
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, amount));
  EXPECT_EQ(transforms.output_column(amount).type, LogicalType::kDecimal);
  RowBatch batch;
  batch.reset(1);
  batch.add_value("1.5");
  batch.add_null();
  EXPECT_EQ(encode(transforms, {amount}, batch, Format::kJsonLines),
            "{\"amount\":1.5}\n{\"amount\":\"n/a\"}\n");
}

TEST(ColumnTransform, PlacesWriteNumbersAndPassOthersAsText) {
  const Column amount{"amount", LogicalType::kText};
  ColumnTransformConfig config = transform("amount");
  config.places = 2;
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, amount));
  EXPECT_EQ(transforms.output_column(amount).type, LogicalType::kDecimal);
  RowBatch batch;
  batch.reset(1);
  batch.add_value("9.995");
  batch.add_value("NaN");
  EXPECT_EQ(encode(transforms, {amount}, batch, Format::kJsonLines),
            "{\"amount\":10.00}\n{\"amount\":\"NaN\"}\n");
}

TEST(ColumnTransform, BoolWordsMapsHashCaseTruncate) {
  const std::vector<Column> columns{{"paid", LogicalType::kBool},
                                    {"country", LogicalType::kText},
                                    {"customer", LogicalType::kText},
                                    {"city", LogicalType::kText},
                                    {"note", LogicalType::kText}};
  ColumnTransforms transforms;
  ColumnTransformConfig paid = transform("paid");
  paid.true_text = "yes";
  paid.false_text = "no";
  transforms.add(ColumnTransform(paid, columns[0]));
  ColumnTransformConfig country = transform("country");
  country.map = {{"DE", "Germany"}, {"FR", "France"}};
  country.map_default = "other";
  country.letter_case = LetterCase::kUpper;
  transforms.add(ColumnTransform(country, columns[1]));
  ColumnTransformConfig customer = transform("customer");
  customer.hash_key = "Jefe";
  customer.truncate = 16;
  transforms.add(ColumnTransform(customer, columns[2]));
  ColumnTransformConfig city = transform("city");
  city.letter_case = LetterCase::kUpper;
  city.truncate = 3;
  transforms.add(ColumnTransform(city, columns[3]));
  ColumnTransformConfig note = transform("note");
  note.truncate = 4;
  transforms.add(ColumnTransform(note, columns[4]));
  RowBatch batch;
  batch.reset(5);
  for (const char* value : {"1", "DE", "what do ya want for nothing?", "münchen", "😀😀😀😀😀"}) {
    batch.add_value(value);
  }
  for (const char* value : {"f", "XX", "x", "zü", "abc"}) batch.add_value(value);
  for (const char* value : {"maybe", "FR", "", "", "abcdef"}) batch.add_value(value);
  EXPECT_EQ(encode(transforms, columns, batch),
            "paid,country,customer,city,note\n"
            "yes,GERMANY,5bdcc146bf60754e,MÜN,😀😀😀😀\n"
            "no,OTHER,30c1a252726d9f62,ZÜ,abc\n"
            "maybe,FRANCE,923598ca6d64af2a,\"\",abcd\n");  // "" is the empty text, not NULL
}

TEST(ColumnTransform, MasksKeepLastAndFixed) {
  const std::vector<Column> columns{{"card", LogicalType::kText}, {"secret", LogicalType::kText}};
  ColumnTransforms transforms;
  ColumnTransformConfig card = transform("card");
  card.mask = MaskKind::kKeepLast;
  card.mask_keep = 4;
  transforms.add(ColumnTransform(card, columns[0]));
  ColumnTransformConfig secret = transform("secret");
  secret.mask = MaskKind::kFixed;
  secret.mask_text = "[redacted]";
  transforms.add(ColumnTransform(secret, columns[1]));
  RowBatch batch;
  batch.reset(2);
  batch.add_value("4111111111111111");
  batch.add_value("hunter2");
  batch.add_value("12");
  batch.add_null();
  EXPECT_EQ(encode(transforms, columns, batch),
            "card,secret\n************1111,[redacted]\n**,\n");
}

TEST(ColumnTransform, RefusesTransformsThatDoNotFitTheColumn) {
  auto key_of = [](const ColumnTransformConfig& config, const Column& column) -> std::string {
    try {
      ColumnTransform compiled(config, column);
    } catch (const ColumnTransformError& error) {
      return error.key() + ": " + error.what();
    }
    return "accepted";
  };
  ColumnTransformConfig format = transform("n");
  format.format = "%F";
  EXPECT_EQ(key_of(format, {"n", LogicalType::kInt}).substr(0, 7), "format:");
  EXPECT_EQ(key_of(format, {"n", LogicalType::kText}), "accepted");
  format.format = "%Q";
  EXPECT_EQ(key_of(format, {"n", LogicalType::kTimestamp}).substr(0, 7), "format:");
  format.format = "%F";
  format.time_zone = "Europe/Atlantis";
  EXPECT_EQ(key_of(format, {"n", LogicalType::kTimestamp}).substr(0, 10), "time_zone:");
  ColumnTransformConfig places = transform("n");
  places.places = 2;
  EXPECT_EQ(key_of(places, {"n", LogicalType::kTimestamp}).substr(0, 7), "places:");
  ColumnTransformConfig words = transform("n");
  words.true_text = "y";
  words.false_text = "n";
  EXPECT_EQ(key_of(words, {"n", LogicalType::kDate}).substr(0, 10), "true_text:");
  ColumnTransformConfig upper = transform("n");
  upper.letter_case = LetterCase::kUpper;
  EXPECT_EQ(key_of(upper, {"n", LogicalType::kBytes}).substr(0, 5), "case:");
  ColumnTransformConfig hash = transform("n");
  hash.hash_key = "0123456789abcdef";
  EXPECT_EQ(key_of(hash, {"n", LogicalType::kBytes}), "accepted");
}

TEST(ColumnTransform, LargeBatchesAndRepeatedUse) {
  const Column email{"email", LogicalType::kText};
  ColumnTransformConfig config = transform("email");
  config.mask = MaskKind::kEmail;
  config.letter_case = LetterCase::kUpper;
  ColumnTransforms transforms;
  transforms.add(ColumnTransform(config, email));
  RowTransformer transformer(transforms, std::vector<Column>{email});
  EXPECT_TRUE(transformer.changes_values());
  for (int round = 0; round < 3; ++round) {
    RowBatch batch;
    batch.reset(1);
    for (int i = 0; i < 10'000; ++i) batch.add_value("user" + std::to_string(i) + "@example.com");
    transformer.apply(batch);  // the arena grows many times while cells are rewritten
    ASSERT_EQ(batch.rows(), 10'000u);
    EXPECT_EQ(batch.cell(0, 0).value, "U***@EXAMPLE.COM");
    EXPECT_EQ(batch.cell(9'999, 0).value, "U***@EXAMPLE.COM");
  }
}

}  // namespace
}  // namespace sluice
