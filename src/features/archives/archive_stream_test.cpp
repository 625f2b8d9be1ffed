#include "features/archives/archive_stream.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/crc32.hpp"
#include "core/string_sink.hpp"
#include "storage/storage_metrics.hpp"
#include "storage/local_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;


class ArchiveStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sluice-archive-stream-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    store_ = make_local_object_store(root_, 2);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  ManifestEntry add_object(const std::string& key, std::size_t size, ZipMethod method,
                           std::mt19937_64& random) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(method == ZipMethod::kStore ? random() : 'a' + random() % 3);
    std::ofstream(root_ / key, std::ios::binary) << bytes;
    contents_[key] = bytes;
    struct stat st {};
    ::stat((root_ / key).c_str(), &st);
    return ManifestEntry{key, key, size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec, method};
  }

  std::string stream(const ArchiveManifest& manifest, ByteWindow window, CrcCache& crcs,
                     StringSink& sink, std::size_t budget_bytes = 64 * 1024) {
    std::optional<ArchiveLayout> layout = plan_layout(manifest);
    asio::io_context& io = io_;
    io.restart();
    std::exception_ptr error;
    asio::co_spawn(io,
                   stream_archive(manifest, layout, window, *store_, crcs, sink,
                                  archive_budget_for(budget_bytes)),
                   [&](std::exception_ptr e, std::uint64_t) { error = e; });
    io.run();
    if (error) std::rethrow_exception(error);
    return sink.body;
  }

  // Declared before the store: the store's pool is joined (TearDown) while the context whose
  // timers the read jobs' WakeSignals use still exists.
  asio::io_context io_;
  fs::path root_;
  std::unique_ptr<ObjectStore> store_;
  std::map<std::string, std::string> contents_;
};

TEST_F(ArchiveStreamTest, RangesStitchedTogetherEqualTheWholeForRandomManifests) {
  std::mt19937_64 random(7);
  for (int round = 0; round < 6; ++round) {
    ArchiveManifest manifest;
    manifest.id = "r" + std::to_string(round);
    const int count = 1 + static_cast<int>(random() % 12);
    for (int i = 0; i < count; ++i) {
      const std::size_t sizes[] = {0, 1, 100, 5000, 16 * 1024, 16 * 1024 + 1, 70'000, 200'000};
      const std::size_t size = sizes[random() % 8];
      manifest.entries.push_back(add_object("o" + std::to_string(round) + "_" + std::to_string(i),
                                            size, ZipMethod::kStore, random));
    }
    const ArchiveLayout layout = *plan_layout(manifest);
    CrcCache cold(0);  // never remembers: every CRC is computed
    StringSink whole_sink;
    const std::string whole = stream(manifest, {0, layout.length}, cold, whole_sink);
    ASSERT_EQ(whole.size(), layout.length);
    EXPECT_TRUE(whole_sink.finished);
    CrcCache warm(1000);
    for (int piece = 0; piece < 8; ++piece) {
      std::uint64_t a = random() % layout.length;
      std::uint64_t b = a + 1 + random() % (layout.length - a);
      StringSink sink;
      EXPECT_EQ(stream(manifest, {a, b}, piece % 2 ? warm : cold, sink), whole.substr(a, b - a))
          << "round " << round << " range " << a << "-" << b;
    }
    // Consecutive ranges cover it exactly, as a resumed download does.
    std::string stitched;
    for (std::uint64_t at = 0; at < layout.length;) {
      const std::uint64_t end = std::min<std::uint64_t>(layout.length, at + 1 + random() % 90'000);
      StringSink sink;
      stitched += stream(manifest, {at, end}, warm, sink);
      at = end;
    }
    EXPECT_EQ(stitched, whole);
    // Each entry's bytes sit where the layout says, with the CRC the local header carries.
    for (std::size_t i = 0; i < manifest.entries.size(); ++i) {
      const std::string& data = contents_[manifest.entries[i].key];
      EXPECT_EQ(whole.substr(layout.data_offsets[i], data.size()), data);
      std::uint32_t crc = 0;
      std::memcpy(&crc, whole.data() + layout.header_offsets[i] + 14, 4);
      EXPECT_EQ(crc, crc32_update(0, data));
    }
  }
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
}

TEST_F(ArchiveStreamTest, DeflatedArchiveIsWholeAndSmaller) {
  std::mt19937_64 random(3);
  ArchiveManifest manifest;
  manifest.entries.push_back(add_object("text", 300'000, ZipMethod::kDeflate, random));
  manifest.entries.push_back(add_object("empty", 0, ZipMethod::kDeflate, random));
  manifest.entries.push_back(add_object("photo", 50'000, ZipMethod::kStore, random));
  CrcCache crcs(10);
  StringSink sink;
  const std::string zip = stream(manifest, {0, UINT64_MAX}, crcs, sink);
  EXPECT_LT(zip.size(), 300'000u);
  EXPECT_GT(zip.size(), 50'000u);
  EXPECT_EQ(zip.substr(zip.size() - 22, 4), std::string("PK\x05\x06", 4));
}

TEST_F(ArchiveStreamTest, AChangedObjectAbortsAndAFailingSinkStopsReads) {
  std::mt19937_64 random(5);
  ArchiveManifest manifest;
  for (int i = 0; i < 4; ++i) {
    manifest.entries.push_back(add_object("f" + std::to_string(i), 150'000, ZipMethod::kStore, random));
  }
  const std::uint64_t length = plan_layout(manifest)->length;
  // Fail the n-th write for every n until the stream succeeds: every exit path runs.
  for (int fail_at = 0;; ++fail_at) {
    CrcCache crcs(10);
    StringSink sink(fail_at);
    try {
      stream(manifest, {0, length}, crcs, sink);
      EXPECT_EQ(sink.body.size(), length);
      break;
    } catch (const std::runtime_error& error) {
      EXPECT_STREQ(error.what(), "client gone");
      EXPECT_FALSE(sink.finished);
    }
    ASSERT_LT(fail_at, 1000);
  }
  std::ofstream(root_ / "f2", std::ios::binary) << "changed";
  CrcCache crcs(10);
  StringSink sink;
  EXPECT_THROW(stream(manifest, {0, length}, crcs, sink), StorageError);
  EXPECT_FALSE(sink.finished);
  EXPECT_LT(sink.body.size(), length);
  for (int i = 0; i < 200 && storage_metrics().busy_reads.value() != 0; ++i) ::usleep(5000);
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
  EXPECT_EQ(storage_metrics().busy_reads.value(), 0);
}

}  // namespace
}  // namespace sluice
