#include "http/access_log.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

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

TEST(AccessLogTest, ATargetCannotForgeALine) {
  AccessRecord hostile = record();
  hostile.target = "/x\r\n2026-01-01T00:00:00.000Z 1.2.3.4:5 \"GET /admin\" 200 0 0.0ms id=x\"\x01";
  const std::string line = format_access_record(hostile, LogFormat::kText);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_NE(line.find("/x\\r\\n2026"), std::string::npos) << line;
  EXPECT_NE(line.find("id=x\\\"\\x01\""), std::string::npos) << line;
  hostile.target = std::string(5000, 'a');
  EXPECT_LT(format_access_record(hostile, LogFormat::kText).size(), 2200u);
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

TEST(AccessLogTest, Rfc3339Utc) {
  EXPECT_EQ(rfc3339_utc(std::chrono::system_clock::time_point(std::chrono::milliseconds(5))),
            "1970-01-01T00:00:00.005Z");
}

}  // namespace
}  // namespace sluice
