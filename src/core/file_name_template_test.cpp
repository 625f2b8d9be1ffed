#include "core/file_name_template.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

// 2026-11-22 08:15:30 UTC
const std::chrono::system_clock::time_point kNow{std::chrono::seconds(1795335330)};

TEST(FileNameTemplateTest, ExpandsEveryPlaceholderInUtc) {
  EXPECT_EQ(expand_file_name("orders", "orders", kNow), "orders");
  EXPECT_EQ(expand_file_name("orders-{date}", "x", kNow), "orders-2026-11-22");
  EXPECT_EQ(expand_file_name("{dataset}_{datetime}", "orders", kNow),
            "orders_2026-11-22T081530Z");
  EXPECT_EQ(expand_file_name("{timestamp}", "x", kNow), "1795335330");
  EXPECT_EQ(expand_file_name("{date}{date} Bestellungen", "x", kNow),
            "2026-11-222026-11-22 Bestellungen");
}

TEST(FileNameTemplateTest, ProblemsNameWhatIsWrong) {
  EXPECT_EQ(file_name_template_problem("orders-{date}"), "");
  EXPECT_EQ(file_name_template_problem("plain"), "");
  EXPECT_NE(file_name_template_problem("orders-{day}").find("unknown placeholder {day}"),
            std::string::npos);
  EXPECT_NE(file_name_template_problem("a{date").find("without a matching '}'"), std::string::npos);
  EXPECT_NE(file_name_template_problem("a}b").find("without a matching '{'"), std::string::npos);
  EXPECT_NE(file_name_template_problem("{}").find("unknown placeholder {}"), std::string::npos);
  EXPECT_NE(file_name_template_problem("{{date}}").find("unknown placeholder"), std::string::npos);
}

}  // namespace
}  // namespace sluice
