#include "http/request_head.hpp"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(RequestHeadTest, TheHeadEndsAtItsBlankLine) {
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), 27u);
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\nHost: x\r\n"), std::string_view::npos);
  EXPECT_EQ(request_head_end("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 22u);  // leading empty lines
  EXPECT_EQ(request_head_end(""), std::string_view::npos);
}

TEST(RequestHeadTest, ObsFoldIsRefused) {
  EXPECT_FALSE(raw_head_problem("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n"));
  EXPECT_TRUE(raw_head_problem("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n"));
  EXPECT_TRUE(raw_head_problem("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\tc\r\n\r\n"));
  EXPECT_TRUE(raw_head_problem("GET / HTTP/1.1\r\n Host: x\r\n\r\n"));
}

TEST(RequestHeadTest, FramingThatCouldHideAnotherRequestIsRefused) {
  EXPECT_FALSE(framing_problem({11, 1, 0, false}));
  EXPECT_FALSE(framing_problem({11, 1, 1, true}));        // Transfer-Encoding: chunked
  EXPECT_TRUE(framing_problem({11, 1, 1, false}));        // xchunked, "chunked, identity"
  EXPECT_TRUE(framing_problem({10, 1, 1, true}));         // chunked on HTTP/1.0
  EXPECT_TRUE(framing_problem({11, 0, 0, false}));        // HTTP/1.1 without Host
  EXPECT_TRUE(framing_problem({11, 2, 0, false}));        // two Host fields
  EXPECT_FALSE(framing_problem({10, 0, 0, false}));       // HTTP/1.0 needs no Host
  EXPECT_EQ(*framing_problem({11, 1, 1, false}), "Transfer-Encoding must end with chunked");
}

}  // namespace
}  // namespace sluice
