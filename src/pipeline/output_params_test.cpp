#include "pipeline/output_params.hpp"

#include <gtest/gtest.h>

#include "core/api_error.hpp"

namespace sluice {
namespace {

ApiError error_of(Format format, std::string_view key, std::string_view value) {
  try {
    OutputParams params(format, OutputOptions{});
    params.apply(key, value);
  } catch (const ApiError& error) {
    return error;
  }
  return ApiError(0, "", "");
}

TEST(OutputParamsTest, AppliesOverDefaults) {
  OutputParams params(Format::kCsv, OutputOptions{.bom = true});
  params.apply("delimiter", ";");
  params.apply("header", "false");
  params.apply("line_ending", "lf");
  EXPECT_EQ(params.options().delimiter, ';');
  EXPECT_FALSE(params.options().header);
  EXPECT_FALSE(params.options().crlf);
  EXPECT_TRUE(params.options().bom);
  OutputParams tab(Format::kCsv, OutputOptions{});
  tab.apply("delimiter", "\t");
  tab.apply("bom", "true");
  EXPECT_EQ(tab.options().delimiter, '\t');
  EXPECT_TRUE(tab.options().bom);
}

TEST(OutputParamsTest, BadValuesNameTheParameterAndTheAllowedValues) {
  for (auto [key, value] : {std::pair{"header", "yes"}, std::pair{"bom", "1"},
                            std::pair{"line_ending", "cr"}, std::pair{"delimiter", ""},
                            std::pair{"delimiter", ";;"}, std::pair{"delimiter", "\""},
                            std::pair{"delimiter", "\n"}, std::pair{"delimiter", "\xc3"}}) {
    ApiError error = error_of(Format::kCsv, key, value);
    EXPECT_EQ(error.status(), 400) << key << "=" << value;
    EXPECT_EQ(error.code(), "invalid_value") << key << "=" << value;
    EXPECT_NE(std::string(error.what()).find("'" + std::string(key) + "'"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("allowed"), std::string::npos);
  }
}

TEST(OutputParamsTest, CsvOnlyParametersOnOtherFormats) {
  EXPECT_EQ(error_of(Format::kJson, "delimiter", ";").code(), "unsupported_parameter");
  EXPECT_EQ(error_of(Format::kJsonLines, "header", "false").code(), "unsupported_parameter");
  EXPECT_EQ(error_of(Format::kTsv, "bom", "true").code(), "unsupported_parameter");
  EXPECT_EQ(error_of(Format::kTsv, "line_ending", "lf").code(), "unsupported_parameter");
  EXPECT_EQ(error_of(Format::kTsv, "header", "false").status(), 0);  // TSV has a header row
}

TEST(OutputParamsTest, Duplicates) {
  OutputParams params(Format::kCsv, OutputOptions{});
  params.apply("bom", "true");
  EXPECT_THROW(params.apply("bom", "false"), ApiError);
}

}  // namespace
}  // namespace sluice
