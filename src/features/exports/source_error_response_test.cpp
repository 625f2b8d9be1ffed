#include "features/exports/source_error_response.hpp"

#include <gtest/gtest.h>

#include "sources/pg_pool.hpp"

namespace sluice {
namespace {

TEST(SourceErrorTest, KindFollowsTheSqlstate) {
  using Kind = SourceError::Kind;
  EXPECT_EQ(SourceError("x", "57014").kind(), Kind::kTimeout);
  EXPECT_EQ(SourceError("x", "08006").kind(), Kind::kUnavailable);
  EXPECT_EQ(SourceError("x", "53300").kind(), Kind::kUnavailable);
  EXPECT_EQ(SourceError("x", "57P01").kind(), Kind::kUnavailable);
  EXPECT_EQ(SourceError("x", "40001").kind(), Kind::kUnavailable);
  EXPECT_EQ(SourceError("x", "22P02").kind(), Kind::kInvalidValue);
  EXPECT_EQ(SourceError("x", "42P01").kind(), Kind::kFailed);
  EXPECT_EQ(SourceError("x").kind(), Kind::kFailed);
  EXPECT_EQ(PoolExhausted("all 2 connections busy").kind(), Kind::kBusy);
}

TEST(SourceErrorResponseTest, StatusCodeAndSqlstateByKind) {
  struct Case {
    SourceError error;
    int status;
    const char* code;
  };
  const Case cases[] = {
      {SourceError("canceling statement due to statement timeout", "57014"), 503, "query_timeout"},
      {SourceError("server closed the connection", "08006"), 503, "database_unavailable"},
      {SourceError(SourceError::Kind::kBusy, "all 2 connections are busy"), 503, "database_busy"},
      {SourceError(SourceError::Kind::kCancelled, "query cancelled"), 503, "query_cancelled"},
      {SourceError("invalid input syntax for type integer", "22P02"), 400, "invalid_value"},
      {SourceError("relation \"nowhere\" does not exist", "42P01"), 500, "query_failed"},
  };
  for (const Case& c : cases) {
    const ApiError error = api_error_from(c.error);
    EXPECT_EQ(error.status(), c.status) << c.code;
    EXPECT_EQ(error.code(), c.code);
    EXPECT_NE(std::string(error.what()).find(c.error.what()), std::string::npos) << error.what();
    if (c.error.sqlstate().empty()) {
      EXPECT_TRUE(error.fields().empty()) << c.code;
    } else {
      ASSERT_EQ(error.fields().size(), 1u) << c.code;
      EXPECT_EQ(error.fields()[0].first, "sqlstate");
      EXPECT_EQ(error.fields()[0].second, c.error.sqlstate());
    }
  }
}

}  // namespace
}  // namespace sluice
