#include "http/access_log.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

namespace sluice {
namespace {

AccessRecord record() {
  AccessRecord r;
  r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'796'594'109'123));
  r.client = "127.0.0.1:51234";
  r.method = "GET";
  r.target = "/v1/exports/orders.csv?country=DE";
  r.status = 200;
  r.bytes = 8'388'608;
  r.duration = std::chrono::microseconds(1'523'400);
  r.request_id = "2f1c7e0a";
  return r;
}

TEST(AccessLogTest, TextLine) {
  EXPECT_EQ(format_access_record(record(), LogFormat::kText),
            "2026-12-06T21:55:09.123Z 127.0.0.1:51234 \"GET /v1/exports/orders.csv?country=DE\" "
            "200 8388608 1523.4ms id=2f1c7e0a");
  AccessRecord cut = record();
  cut.aborted = "the client left";
  EXPECT_TRUE(format_access_record(cut, LogFormat::kText)
                  .ends_with(" 1523.4ms id=2f1c7e0a aborted=\"the client left\""));
}

TEST(AccessLogTest, TokenName) {
  AccessRecord named = record();
  named.token = "ci-nightly";
  named.aborted = "shutdown";
  EXPECT_TRUE(format_access_record(named, LogFormat::kText)
                  .ends_with(" id=2f1c7e0a token=ci-nightly aborted=\"shutdown\""));
  const boost::json::value json =
      boost::json::parse(format_access_record(named, LogFormat::kJson));
  EXPECT_EQ(json.at("token").as_string(), "ci-nightly");
  EXPECT_FALSE(boost::json::parse(format_access_record(record(), LogFormat::kJson))
                   .as_object()
                   .contains("token"));
}

TEST(AccessLogTest, ATargetCannotForgeALine) {
  AccessRecord hostile = record();
  hostile.target = "/x\r\n2026-01-01T00:00:00.000Z 1.2.3.4:5 \"GET /admin\" 200 0 0.0ms id=x\"\x01";
  const std::string line = format_access_record(hostile, LogFormat::kText);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_NE(line.find("/x\\r\\n2026"), std::string::npos) << line;
  EXPECT_NE(line.find("id=x\\\"\\x01\""), std::string::npos) << line;
  const std::string long_target(5000, 'a');  // (the record holds a view of it)
  hostile.target = long_target;
  EXPECT_LT(format_access_record(hostile, LogFormat::kText).size(), 2200u);
  EXPECT_NE(format_access_record(hostile, LogFormat::kText).find(std::string(2000, 'a') + "...\""),
            std::string::npos);
  const std::string long_link = "/v1/files/k?sig=" + std::string(3000, 's') + "&x=" +
                                std::string(3000, 'x');
  hostile.target = long_link;
  EXPECT_NE(format_access_record(hostile, LogFormat::kText)
                .find("\"GET /v1/files/k?sig=REDACTED&x=" + std::string(1973, 'x') + "...\""),
            std::string::npos);
}

TEST(AccessLogTest, DurationIsWrittenAsPrintfWroteIt) {
  AccessRecord r = record();
  for (const std::int64_t micros : {0LL, 1LL, 49LL, 50LL, 51LL, 99LL, 950LL, 1'050LL, 2'250LL,
                                    1'523'400LL, 1'523'449LL, 1'523'450LL, 1'523'451LL,
                                    86'400'000'050LL}) {
    r.duration = std::chrono::microseconds(micros);
    char expected[64];
    std::snprintf(expected, sizeof expected, " %.1fms ", static_cast<double>(micros) / 1000.0);
    EXPECT_NE(format_access_record(r, LogFormat::kText).find(expected), std::string::npos)
        << micros << ": " << format_access_record(r, LogFormat::kText);
  }
}

TEST(AccessLogTest, LinkSignaturesAreRedacted) {
  AccessRecord link = record();
  link.target = "/v1/files/a/b.txt?expires=1700000000&sig=0123abcd&x=1";
  EXPECT_NE(format_access_record(link, LogFormat::kText)
                .find("\"GET /v1/files/a/b.txt?expires=1700000000&sig=REDACTED&x=1\""),
            std::string::npos);
  link.target = "/v1/files/a?sig=1&sig=2&signal=3";
  EXPECT_NE(format_access_record(link, LogFormat::kJson)
                .find("\"target\":\"/v1/files/a?sig=REDACTED&sig=REDACTED&signal=3\""),
            std::string::npos);
}

TEST(AccessLogTest, JsonLineIsOneValidObject) {
  AccessRecord r = record();
  r.target = "/t?q=\"\xff\"\n";  // a quote, invalid UTF-8, a newline
  r.aborted = "shutdown";
  const std::string line = format_access_record(r, LogFormat::kJson);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const boost::json::object parsed = boost::json::parse(line).as_object();
  EXPECT_EQ(parsed.at("time"), "2026-12-06T21:55:09.123Z");
  EXPECT_EQ(parsed.at("client"), "127.0.0.1:51234");
  EXPECT_EQ(parsed.at("target"), "/t?q=\"\u00ff\"\n");
  EXPECT_EQ(parsed.at("status").as_int64(), 200);
  EXPECT_EQ(parsed.at("bytes").as_int64(), 8'388'608);
  EXPECT_DOUBLE_EQ(parsed.at("duration_ms").to_number<double>(), 1523.4);
  EXPECT_EQ(parsed.at("request_id"), "2f1c7e0a");
  EXPECT_EQ(parsed.at("aborted"), "shutdown");
  EXPECT_FALSE(boost::json::parse(format_access_record(record(), LogFormat::kJson))
                   .as_object()
                   .contains("aborted"));
}

// Runs `body` with stderr (the server log) redirected to a file; returns what was written.
template <typename Body>
std::string captured_log(Body body) {
  std::FILE* file = std::tmpfile();
  EXPECT_NE(file, nullptr);
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(::fileno(file), STDERR_FILENO);
  body();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string text;
  std::rewind(file);
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text += static_cast<char>(c);
  std::fclose(file);
  return text;
}

TEST(AccessLogTest, LinesWaitForTheThreadsReadyWorkThenGoOutTogether) {
  boost::asio::io_context io;
  std::string seen_before_flush;
  const std::string text = captured_log([&] {
    boost::asio::post(io, [&] {
      AccessRecord r = record();
      r.request_id = "first";
      log_access(r, io.get_executor());
      r.request_id = "second";
      log_access(r, io.get_executor());
    });
    // Ready before the flush that the first line posted: the lines are not written yet.
    boost::asio::post(io, [&] { seen_before_flush = this_thread_log_buffer().lines; });
    io.run();
  });
  EXPECT_NE(seen_before_flush.find("id=first\n"), std::string::npos) << seen_before_flush;
  EXPECT_NE(seen_before_flush.find("id=second\n"), std::string::npos) << seen_before_flush;
  EXPECT_TRUE(this_thread_log_buffer().lines.empty());
  EXPECT_EQ(text, format_access_record([] {
                    AccessRecord r = record();
                    r.request_id = "first";
                    return r;
                  }(), LogFormat::kText) +
                      "\n" +
                      format_access_record([] {
                        AccessRecord r = record();
                        r.request_id = "second";
                        return r;
                      }(), LogFormat::kText) +
                      "\n");
}

TEST(AccessLogTest, AnEventLineComesAfterTheAccessLinesBufferedBeforeIt) {
  boost::asio::io_context io;  // never run: the posted flush does not happen
  const std::string text = captured_log([&] {
    log_access(record(), io.get_executor());
    log_event("shutting down");
  });
  const std::size_t access = text.find("id=2f1c7e0a\n");
  const std::size_t event = text.find(" shutting down\n");
  ASSERT_NE(access, std::string::npos) << text;
  ASSERT_NE(event, std::string::npos) << text;
  EXPECT_LT(access, event);
  EXPECT_TRUE(this_thread_log_buffer().lines.empty());
}

TEST(AccessLogTest, FlushLogBuffersWritesTheLinesOfEveryThread) {
  boost::asio::io_context io;  // never run: only flush_log_buffers() writes the line
  std::promise<void> appended;
  std::promise<void> release;
  std::thread other([&] {
    AccessRecord r = record();
    r.request_id = "other-thread";
    log_access(r, io.get_executor());
    appended.set_value();
    release.get_future().wait();
  });
  appended.get_future().wait();
  const std::string text = captured_log([] { flush_log_buffers(); });
  release.set_value();
  other.join();
  EXPECT_NE(text.find("id=other-thread\n"), std::string::npos) << text;
}

TEST(AccessLogTest, Rfc3339Utc) {
  EXPECT_EQ(rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(5))),
            "1970-01-01T00:00:00.005Z");
}

}  // namespace
}  // namespace sluice
