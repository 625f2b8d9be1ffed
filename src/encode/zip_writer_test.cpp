#include "encode/zip_writer.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

#include "core/crc32.hpp"
#include "encode/deflater.hpp"

namespace sluice {
namespace {

std::uint32_t u16(std::string_view bytes, std::size_t at) {
  return static_cast<unsigned char>(bytes[at]) | static_cast<unsigned char>(bytes[at + 1]) << 8;
}
std::uint32_t u32(std::string_view bytes, std::size_t at) {
  return u16(bytes, at) | u16(bytes, at + 2) << 16;
}
std::uint64_t u64(std::string_view bytes, std::size_t at) {
  return u32(bytes, at) | static_cast<std::uint64_t>(u32(bytes, at + 4)) << 32;
}

ZipEntry stored(std::string name, std::string_view data, std::int64_t mtime = 1'700'000'000) {
  return ZipEntry{std::move(name), mtime, ZipMethod::kStore, data.size(), crc32_update(0, data)};
}

// The whole archive of `entries` with their data.
std::string write_archive(const std::vector<std::pair<ZipEntry, std::string>>& entries) {
  ZipWriter zip;
  ByteBuffer out;
  for (const auto& [entry, data] : entries) {
    zip.add_entry(entry, out);
    if (entry.method == ZipMethod::kStore) {
      out.append(data);
      zip.end_entry(entry.crc32, data.size(), data.size(), out);
    } else {
      Deflater deflater;
      ByteBuffer compressed;
      deflater.add(data, compressed);
      deflater.finish(compressed);
      out.append(compressed.view());
      zip.end_entry(crc32_update(0, data), data.size(), compressed.size(), out);
    }
  }
  while (!zip.finish(out, 1 << 20)) {
  }
  EXPECT_EQ(zip.offset(), out.size());
  return std::string(out.view());
}

TEST(ZipWriterTest, EmptyArchiveIsOneEndRecord) {
  std::string zip = write_archive({});
  ASSERT_EQ(zip.size(), 22u);
  EXPECT_EQ(u32(zip, 0), 0x06054b50u);
}

TEST(ZipWriterTest, StoredEntryCarriesCrcAndSizesInItsLocalHeader) {
  std::string zip = write_archive({{stored("a.txt", "hello"), "hello"}});
  EXPECT_EQ(u32(zip, 0), 0x04034b50u);
  EXPECT_EQ(u16(zip, 4), 20u);                      // version needed
  EXPECT_EQ(u16(zip, 6), 1u << 11);                 // UTF-8, no data descriptor
  EXPECT_EQ(u16(zip, 8), 0u);                       // stored
  EXPECT_EQ(u32(zip, 14), crc32_update(0, "hello"));
  EXPECT_EQ(u32(zip, 18), 5u);
  EXPECT_EQ(u32(zip, 22), 5u);
  EXPECT_EQ(u16(zip, 26), 5u);                      // name
  EXPECT_EQ(u16(zip, 28), 9u);                      // extended timestamp only
  EXPECT_EQ(zip.substr(30, 5), "a.txt");
  EXPECT_EQ(u16(zip, 35), 0x5455u);
  EXPECT_EQ(u32(zip, 40), 1'700'000'000u);
  EXPECT_EQ(zip.substr(44, 5), "hello");
  const std::size_t central = 49;
  EXPECT_EQ(u32(zip, central), 0x02014b50u);
  EXPECT_EQ(u16(zip, central + 4), (3u << 8) | 63);  // made by Unix
  EXPECT_EQ(u32(zip, central + 38), 0100644u << 16);
  EXPECT_EQ(u32(zip, central + 42), 0u);             // local header offset
  const std::size_t end = central + 46 + 5 + 9;
  EXPECT_EQ(u32(zip, end), 0x06054b50u);
  EXPECT_EQ(u16(zip, end + 10), 1u);
  EXPECT_EQ(u32(zip, end + 12), 60u);                // central directory size
  EXPECT_EQ(u32(zip, end + 16), central);
  EXPECT_EQ(zip.size(), end + 22);
}

TEST(ZipWriterTest, DeflatedEntryHasBit3AndA16ByteDescriptorThatInflates) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i % 7) + "\n";
  ZipEntry entry{"t.txt", 1'700'000'000, ZipMethod::kDeflate, text.size(), 0};
  std::string zip = write_archive({{entry, text}});
  EXPECT_EQ(u16(zip, 6), (1u << 11) | (1u << 3));
  EXPECT_EQ(u32(zip, 14), 0u);
  EXPECT_EQ(u32(zip, 18), 0u);
  EXPECT_EQ(u32(zip, 22), 0u);
  const std::size_t data = 30 + 5 + 9;
  const std::size_t central = u32(zip, zip.size() - 6);
  const std::size_t descriptor = central - 16;
  EXPECT_EQ(u32(zip, descriptor), 0x08074b50u);
  EXPECT_EQ(u32(zip, descriptor + 4), crc32_update(0, text));
  const std::uint32_t compressed = u32(zip, descriptor + 8);
  EXPECT_EQ(compressed, descriptor - data);
  EXPECT_EQ(u32(zip, descriptor + 12), text.size());
  EXPECT_LT(compressed, text.size() / 4);

  std::string inflated(text.size(), '\0');
  z_stream zs{};
  ASSERT_EQ(inflateInit2(&zs, -15), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(zip.data() + data);
  zs.avail_in = compressed;
  zs.next_out = reinterpret_cast<Bytef*>(inflated.data());
  zs.avail_out = static_cast<uInt>(inflated.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  inflateEnd(&zs);
  EXPECT_EQ(inflated, text);
}

TEST(ZipWriterTest, Zip64OnlyWhenASizeNeedsIt) {
  ZipWriter zip;
  ByteBuffer out;
  ZipEntry big{"big.bin", 0, ZipMethod::kStore, 0x1'0000'0000ULL, 7};
  EXPECT_TRUE(ZipWriter::needs_zip64_header(big));
  EXPECT_FALSE(ZipWriter::needs_zip64_header(ZipEntry{"x", 0, ZipMethod::kStore, 0xFFFFFFFEULL, 0}));
  EXPECT_TRUE(ZipWriter::needs_zip64_header(ZipEntry{"x", 0, ZipMethod::kDeflate, 0xFFFF0000ULL, 0}));
  zip.add_entry(big, out);
  const std::string_view local = out.view();
  EXPECT_EQ(u16(local, 4), 45u);
  EXPECT_EQ(u32(local, 18), 0xFFFFFFFFu);
  EXPECT_EQ(u32(local, 22), 0xFFFFFFFFu);
  EXPECT_EQ(u16(local, 28), 20u + 9u);               // ZIP64 extra, extended timestamp
  EXPECT_EQ(u16(local, 30 + 7), 0x0001u);
  EXPECT_EQ(u64(local, 30 + 7 + 4), big.size);       // uncompressed first
  EXPECT_EQ(u64(local, 30 + 7 + 12), big.size);
  const std::size_t header = out.size();
  out.clear();
  zip.end_entry(7, big.size, big.size, out);
  EXPECT_EQ(out.size(), 0u);
  // A small entry after 4 GiB: only its offset overflows in the central directory.
  zip.add_entry(stored("small.txt", "x"), out);
  zip.end_entry(crc32_update(0, "x"), 1, 1, out);
  out.clear();
  while (!zip.finish(out, 1 << 20)) {
  }
  std::string_view tail = out.view();
  // First central record (big): sizes overflow, offset 0 does not.
  EXPECT_EQ(u32(tail, 20), 0xFFFFFFFFu);
  EXPECT_EQ(u32(tail, 24), 0xFFFFFFFFu);
  EXPECT_EQ(u16(tail, 30), 4u + 16u + 9u);
  const std::size_t second = 46 + 7 + 4 + 16 + 9;
  EXPECT_EQ(u32(tail, second), 0x02014b50u);
  EXPECT_EQ(u32(tail, second + 42), 0xFFFFFFFFu);
  EXPECT_EQ(u16(tail, second + 30), 4u + 8u + 9u);
  EXPECT_EQ(u64(tail, second + 46 + 9 + 4), header + big.size);
  // The directory starts beyond 4 GiB: ZIP64 end record and locator before the end record.
  const std::size_t zip64_end = second + 46 + 9 + 12 + 9;
  EXPECT_EQ(u32(tail, zip64_end), 0x06064b50u);
  EXPECT_EQ(u32(tail, zip64_end + 56), 0x07064b50u);
  EXPECT_EQ(u32(tail, zip64_end + 76), 0x06054b50u);
  EXPECT_EQ(u32(tail, zip64_end + 76 + 16), 0xFFFFFFFFu);
  EXPECT_EQ(tail.size(), zip64_end + 76 + 22);
}

TEST(ZipWriterTest, Zip64EndRecordsFrom65535Entries) {
  for (std::size_t count : {65'534u, 65'535u}) {
    ZipWriter zip;
    ByteBuffer out;
    for (std::size_t i = 0; i < count; ++i) {
      zip.add_entry(stored("f" + std::to_string(i), ""), out);
      zip.end_entry(0, 0, 0, out);
    }
    out.clear();
    std::size_t rounds = 0;
    std::uint64_t total = 0;
    for (bool done = false; !done; ++rounds) {
      done = zip.finish(out, 64 * 1024);
      total += out.size();
      if (!done) out.clear();
    }
    EXPECT_GT(rounds, 10u);  // the directory came in pieces
    const std::string_view tail = out.view();
    const bool zip64 = u32(tail, tail.size() - 98) == 0x06064b50u;
    EXPECT_EQ(zip64, count == 65'535u) << count;
    EXPECT_EQ(u16(tail, tail.size() - 12), count == 65'535u ? 0xFFFFu : count);
  }
}

TEST(ZipWriterTest, DataThatContradictsTheHeaderIsAnError) {
  ZipWriter zip;
  ByteBuffer out;
  zip.add_entry(stored("a", "abc"), out);
  EXPECT_THROW(zip.end_entry(crc32_update(0, "abd"), 3, 3, out), ZipError);
  ZipWriter other;
  other.add_entry(ZipEntry{"d", 0, ZipMethod::kDeflate, 10, 0}, out);
  EXPECT_THROW(other.end_entry(0, 9, 5, out), ZipError);
  EXPECT_THROW(other.add_entry(stored("b", ""), out), ZipError);
}

TEST(ZipWriterTest, SameEntriesGiveTheSameBytes) {
  std::vector<std::pair<ZipEntry, std::string>> entries{
      {stored("x/ü.txt", "data"), "data"}, {stored("y", ""), ""}};
  EXPECT_EQ(write_archive(entries), write_archive(entries));
}

TEST(ZipWriterTest, DosTimeOfMtimeAndClampBefore1980) {
  // 2024-02-29 13:45:58 UTC
  std::string zip = write_archive({{stored("a", "", 1'709'214'358), ""}});
  EXPECT_EQ(u16(zip, 10), (13u << 11) | (45u << 5) | 29u);
  EXPECT_EQ(u16(zip, 12), ((2024u - 1980u) << 9) | (2u << 5) | 29u);
  std::string old = write_archive({{stored("a", "", 100), ""}});
  EXPECT_EQ(u16(old, 12), (1u << 5) | 1u);
}

TEST(DeflaterTest, IncompressibleDataStaysWithinTheBound) {
  std::string noise(8 << 20, '\0');
  std::uint32_t state = 1;
  for (char& c : noise) {
    state = state * 1103515245u + 12345u;
    c = static_cast<char>(state >> 23);
  }
  Deflater deflater;
  ByteBuffer out;
  for (std::size_t at = 0; at < noise.size(); at += 65536) {
    deflater.add(std::string_view(noise).substr(at, 65536), out);
  }
  deflater.finish(out);
  EXPECT_GT(out.size(), noise.size());  // igzip does expand noise a little
  EXPECT_LE(out.size(), Deflater::bound(noise.size()));
  EXPECT_EQ(deflater.bytes_out(), out.size());
  EXPECT_EQ(deflater.bytes_in(), noise.size());
}

}  // namespace
}  // namespace sluice
