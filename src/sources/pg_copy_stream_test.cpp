#include "sources/pg_copy_stream.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "sources/pg_wire_bytes.hpp"

namespace sluice {
namespace {

using Event = PgCopyStream::Event;

// One backend message: type, length (counting itself), body.
std::string message(char type, const std::string& body) {
  std::string out(1, type);
  put_be32(out, static_cast<std::int64_t>(body.size() + 4));
  return out + body;
}

std::string copy_out_response() { return message('H', std::string("\0\0\1\0\0", 5)); }
std::string row(const std::string& bytes) { return message('d', bytes); }
std::string copy_done() { return message('c', ""); }
std::string command_complete(const std::string& tag) { return message('C', tag + '\0'); }
std::string ready(char status) { return message('Z', std::string(1, status)); }
std::string error_response() {
  static const char kFields[] =
      "SERROR\0VERROR\0C22012\0Mdivision by zero\0Dsome detail\0Hsome hint\0";
  return message('E', std::string(kFields, sizeof kFields));  // the literal's NUL ends the list
}

// What a reader sees when the wire bytes arrive in pieces of `piece` bytes.
struct Seen {
  std::vector<std::string> rows;
  int started = 0;
  bool ended = false;
};

Seen feed(PgCopyStream& stream, const std::string& wire, std::size_t piece) {
  Seen seen;
  std::size_t at = 0;
  for (;;) {
    std::string_view bytes;
    const Event event = stream.next(bytes);
    if (event == Event::kRow) {
      seen.rows.emplace_back(bytes);
    } else if (event == Event::kStarted) {
      ++seen.started;
    } else if (event == Event::kEnd) {
      seen.ended = true;
      return seen;
    } else {
      if (at == wire.size()) return seen;
      const std::span<char> space = stream.space();
      EXPECT_FALSE(space.empty());
      const std::size_t n = std::min({piece, space.size(), wire.size() - at});
      std::memcpy(space.data(), wire.data() + at, n);
      stream.filled(n);
      at += n;
    }
  }
}

TEST(PgCopyStreamTest, RowsInAnySplitOfTheBytes) {
  const std::string wire = copy_out_response() + row("1,a\n") + row("") + row("2,\"b,c\"\n") +
                           message('N', std::string("SNOTICE\0\0", 9)) + message('S', std::string("a\0b\0", 4)) +
                           copy_done() + command_complete("COPY 3") + ready('T');
  for (std::size_t piece : {1, 2, 3, 5, 7, 64, 100000}) {
    PgCopyStream stream;
    const Seen seen = feed(stream, wire, piece);
    EXPECT_EQ(seen.started, 1) << piece;
    ASSERT_TRUE(seen.ended) << piece;
    EXPECT_EQ(seen.rows, (std::vector<std::string>{"1,a\n", "", "2,\"b,c\"\n"})) << piece;
    EXPECT_FALSE(stream.error());
    EXPECT_EQ(stream.transaction_status(), 'T');
    EXPECT_EQ(stream.buffered(), 0u);
  }
}

TEST(PgCopyStreamTest, ARowLargerThanTheBufferGrowsItThenShrinks) {
  const std::string big(PgCopyStream::kBufferBytes * 3 + 17, 'x');
  const std::string wire = copy_out_response() + row("a") + row(big) + row("b") + copy_done() +
                           command_complete("COPY 3") + ready('T');
  PgCopyStream stream;
  const Seen seen = feed(stream, wire, 10000);
  ASSERT_TRUE(seen.ended);
  ASSERT_EQ(seen.rows.size(), 3u);
  EXPECT_EQ(seen.rows[1], big);
  EXPECT_EQ(seen.rows[2], "b");
  stream.shrink();
  EXPECT_EQ(stream.space().size(), PgCopyStream::kBufferBytes);
}

TEST(PgCopyStreamTest, AnErrorBeforeTheCopyEndsTheExchange) {
  PgCopyStream stream;
  const Seen seen = feed(stream, error_response() + ready('E'), 4);
  EXPECT_EQ(seen.started, 0);
  ASSERT_TRUE(seen.ended);
  ASSERT_TRUE(stream.error());
  EXPECT_EQ(stream.error()->sqlstate, "22012");
  EXPECT_EQ(stream.error()->message, "ERROR:  division by zero\nDETAIL:  some detail\nHINT:  some hint");
  EXPECT_EQ(stream.transaction_status(), 'E');
}

TEST(PgCopyStreamTest, AnErrorMidwayKeepsTheRowsBeforeIt) {
  PgCopyStream stream;
  const Seen seen =
      feed(stream, copy_out_response() + row("1\n") + row("2\n") + error_response() + ready('E'), 3);
  EXPECT_EQ(seen.rows, (std::vector<std::string>{"1\n", "2\n"}));
  ASSERT_TRUE(seen.ended);
  ASSERT_TRUE(stream.error());
  EXPECT_EQ(stream.error()->sqlstate, "22012");
}

TEST(PgCopyStreamTest, AnIncompleteMessageWaitsForMore) {
  PgCopyStream stream;
  const std::string wire = copy_out_response() + row("hello");
  const Seen seen = feed(stream, wire.substr(0, wire.size() - 1), 1000);
  EXPECT_EQ(seen.started, 1);
  EXPECT_TRUE(seen.rows.empty());
  EXPECT_FALSE(seen.ended);
  EXPECT_EQ(stream.buffered(), row("hello").size() - 1);
}

TEST(PgCopyStreamTest, ProtocolViolationsThrow) {
  auto violates = [](const std::string& wire) {
    PgCopyStream stream;
    try {
      feed(stream, wire, 1000);
    } catch (const std::runtime_error& error) {
      return std::string(error.what()).find("protocol violation") != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(violates(row("before the start")));
  EXPECT_TRUE(violates(copy_out_response() + copy_out_response()));
  EXPECT_TRUE(violates(copy_out_response() + message('D', "a data row")));
  EXPECT_TRUE(violates(copy_out_response() + std::string("d\0\0\0\3", 5)));  // length < 4
  EXPECT_TRUE(violates(copy_out_response() + std::string("d\xff\xff\xff\xff", 5)));
  EXPECT_TRUE(violates(message('Z', "")));
  EXPECT_TRUE(violates(message('E', "Cunterminated")));
  EXPECT_FALSE(violates(copy_out_response() + copy_done() + command_complete("COPY 0") + ready('I')));
}

TEST(PgCopyStreamTest, BytesAfterReadyForQueryStayBuffered) {
  PgCopyStream stream;
  const Seen seen = feed(stream, copy_out_response() + ready('T') + "x", 1000);
  ASSERT_TRUE(seen.ended);
  EXPECT_EQ(stream.buffered(), 1u);  // PgConnection::finish_copy() reports it
}

}  // namespace
}  // namespace sluice
