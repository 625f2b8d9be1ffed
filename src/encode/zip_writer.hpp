#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/byte_buffer.hpp"

namespace sluice {

enum class ZipMethod : std::uint16_t { kStore = 0, kDeflate = 8 };

struct ZipEntry {
  std::string name;            // UTF-8, '/'-separated, already sanitised (zip_names.hpp)
  std::int64_t mtime = 0;      // seconds since the epoch (UTC)
  ZipMethod method = ZipMethod::kStore;
  std::uint64_t size = 0;      // uncompressed size, known before the data (it decides ZIP64)
  std::uint32_t crc32 = 0;     // kStore: the data's CRC-32, REQUIRED before add_entry
};

// The data contradicts what the entry's header already promised (an object changed while it
// was read), or the writer was used out of order.
class ZipError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes a ZIP archive front to back (PKWARE APPNOTE 6.3.x) without seeking, so it can go
// straight into an HTTP response. The entry data itself does not pass through the writer:
// the caller writes it between add_entry() and end_entry() and reports its size, so stored
// bytes go from the read buffer to the socket untouched.
//
//   ZipWriter zip;
//   for each entry: zip.add_entry(entry, out); <write the data>; zip.end_entry(crc, size,
//                   compressed, out);
//   while (!zip.finish(out, 64 KiB)) <flush out>;      — or zip.abandon() after a failure
//
// - Stored entries carry CRC-32 and sizes in the local header (never bit 3 with zero sizes).
// - Deflated entries set bit 3 and are followed by a data descriptor with its signature; its
//   sizes are 8 bytes exactly when the local header has a ZIP64 extra field.
// - ZIP64 is used only when needed: a size or offset >= 0xFFFFFFFF, >= 65,535 entries, or a
//   central directory size/offset >= 0xFFFFFFFF. A deflated entry must decide in its local
//   header, before its compressed size is known: it uses ZIP64 when Deflater::bound(size) can
//   reach 0xFFFFFFFF.
// - Names are UTF-8 (bit 11); "version made by" is Unix so extractors restore mode 0644;
//   DOS time plus an extended-timestamp extra field (0x5455) with the exact mtime.
// Everything the writer appends depends only on the entries, sizes and CRCs, so writing the
// same entries again gives the same bytes (what Range requests rely on).
// Not thread-safe.
class ZipWriter {
 public:
  // Appends `entry`'s local file header to `out`. REQUIRES: no entry open, not finished.
  void add_entry(const ZipEntry& entry, ByteBuffer& out);
  // Ends the open entry after the caller wrote `compressed_size` bytes of data, whose CRC-32
  // is `crc32` and uncompressed size `size`; appends the data descriptor of a deflated entry.
  // Throws ZipError when these contradict the local header.
  void end_entry(std::uint32_t crc32, std::uint64_t size, std::uint64_t compressed_size,
                 ByteBuffer& out);
  // Appends the central directory and the end records, stopping once `out` holds at least
  // `max_bytes` (so a directory of 100,000 entries need not be in memory at once). Returns
  // true when everything was written. REQUIRES: no entry open.
  bool finish(ByteBuffer& out, std::size_t max_bytes);
  // Forgets everything; the archive written so far stays incomplete (no central directory).
  void abandon();

  std::uint64_t offset() const { return offset_; }  // archive bytes so far, data included
  std::size_t entries() const { return records_.size(); }
  bool entry_open() const { return open_; }

  // Whether `entry`'s local header gets a ZIP64 extra field.
  static bool needs_zip64_header(const ZipEntry& entry);

 private:
  struct Record {
    std::string name;
    std::int64_t mtime = 0;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    std::uint64_t compressed_size = 0;
    std::uint32_t crc32 = 0;
    ZipMethod method = ZipMethod::kStore;
    bool zip64_header = false;
  };

  void append_central_record(const Record& record, ByteBuffer& out) const;
  void append_end_records(ByteBuffer& out) const;

  std::vector<Record> records_;
  std::uint64_t offset_ = 0;
  bool open_ = false;
  bool finished_ = false;
  std::size_t central_written_ = 0;    // records of the central directory appended so far
  std::uint64_t central_offset_ = 0;   // where the central directory starts
};

}  // namespace sluice
