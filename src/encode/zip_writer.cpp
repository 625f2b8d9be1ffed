#include "encode/zip_writer.hpp"

#include <chrono>

#include "encode/deflater.hpp"

namespace sluice {
namespace {

constexpr std::uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr std::uint32_t kDataDescriptorSignature = 0x08074b50;
constexpr std::uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr std::uint32_t kEndSignature = 0x06054b50;

constexpr std::uint32_t kMax32 = 0xFFFFFFFF;
constexpr std::uint16_t kMax16 = 0xFFFF;
constexpr std::uint16_t kFlagDataDescriptor = 1u << 3;
constexpr std::uint16_t kFlagUtf8 = 1u << 11;
constexpr std::uint16_t kVersionDefault = 20;  // 2.0: deflate, folders
constexpr std::uint16_t kVersionZip64 = 45;    // 4.5
constexpr std::uint16_t kMadeByUnix = (3u << 8) | 63;  // Unix, APPNOTE 6.3
constexpr std::uint32_t kRegularFile0644 = 0100644u << 16;
constexpr std::uint16_t kZip64ExtraId = 0x0001;
constexpr std::uint16_t kTimestampExtraId = 0x5455;

// Little-endian field writers.
void put16(ByteBuffer& out, std::uint16_t value) {
  char bytes[2] = {static_cast<char>(value), static_cast<char>(value >> 8)};
  out.append(std::string_view(bytes, 2));
}
void put32(ByteBuffer& out, std::uint32_t value) {
  put16(out, static_cast<std::uint16_t>(value));
  put16(out, static_cast<std::uint16_t>(value >> 16));
}
void put64(ByteBuffer& out, std::uint64_t value) {
  put32(out, static_cast<std::uint32_t>(value));
  put32(out, static_cast<std::uint32_t>(value >> 32));
}
std::uint32_t clamp32(std::uint64_t value) {
  return value >= kMax32 ? kMax32 : static_cast<std::uint32_t>(value);
}

struct DosTime {
  std::uint16_t time = 0;
  std::uint16_t date = (0 << 9) | (1 << 5) | 1;  // 1980-01-01
};

// MS-DOS date and time of `mtime` (UTC), clamped to 1980..2107.
DosTime dos_time(std::int64_t mtime) {
  using namespace std::chrono;
  const sys_seconds time{seconds{mtime}};
  const auto day = floor<days>(time);
  const year_month_day ymd{day};
  const int year = static_cast<int>(ymd.year());
  if (year < 1980) return {};
  if (year > 2107) return {static_cast<std::uint16_t>((23 << 11) | (59 << 5) | 29),
                           static_cast<std::uint16_t>((127 << 9) | (12 << 5) | 31)};
  const hh_mm_ss hms{time - day};
  DosTime dos;
  dos.time = static_cast<std::uint16_t>((hms.hours().count() << 11) |
                                        (hms.minutes().count() << 5) |
                                        (hms.seconds().count() / 2));
  dos.date = static_cast<std::uint16_t>(((year - 1980) << 9) |
                                        (static_cast<unsigned>(ymd.month()) << 5) |
                                        static_cast<unsigned>(ymd.day()));
  return dos;
}

bool has_unix_time(std::int64_t mtime) { return mtime >= 0 && mtime <= 0x7FFFFFFF; }

void put_timestamp_extra(ByteBuffer& out, std::int64_t mtime) {
  if (!has_unix_time(mtime)) return;
  put16(out, kTimestampExtraId);
  put16(out, 5);
  out.push_back(1);  // flags: modification time present
  put32(out, static_cast<std::uint32_t>(mtime));
}

std::uint16_t timestamp_extra_size(std::int64_t mtime) { return has_unix_time(mtime) ? 9 : 0; }

std::uint16_t name_length(const std::string& name) {
  if (name.empty() || name.size() > kMax16) throw ZipError("a ZIP entry name is 1 to 65535 bytes");
  return static_cast<std::uint16_t>(name.size());
}

}  // namespace

bool ZipWriter::needs_zip64_header(const ZipEntry& entry) {
  if (entry.method == ZipMethod::kStore) return entry.size >= kMax32;
  return entry.size >= kMax32 || Deflater::bound(entry.size) >= kMax32;
}

void ZipWriter::add_entry(const ZipEntry& entry, ByteBuffer& out) {
  if (open_ || finished_) throw ZipError("add_entry: an entry is open or the archive is finished");
  const bool stored = entry.method == ZipMethod::kStore;
  const bool zip64 = needs_zip64_header(entry);
  Record record{entry.name, entry.mtime, offset_, entry.size, stored ? entry.size : 0,
                stored ? entry.crc32 : 0, entry.method, zip64};
  const DosTime dos = dos_time(entry.mtime);
  const std::size_t before = out.size();
  put32(out, kLocalHeaderSignature);
  put16(out, zip64 ? kVersionZip64 : kVersionDefault);
  put16(out, static_cast<std::uint16_t>(kFlagUtf8 | (stored ? 0 : kFlagDataDescriptor)));
  put16(out, static_cast<std::uint16_t>(entry.method));
  put16(out, dos.time);
  put16(out, dos.date);
  // Sizes of a stored entry are known; a deflated one's come in its data descriptor (bit 3:
  // zero here). ZIP64 moves both sizes into the extra field and marks them 0xFFFFFFFF.
  put32(out, record.crc32);
  put32(out, zip64 ? kMax32 : clamp32(record.compressed_size));
  put32(out, zip64 ? kMax32 : clamp32(stored ? entry.size : 0));
  put16(out, name_length(entry.name));
  put16(out, static_cast<std::uint16_t>((zip64 ? 20 : 0) + timestamp_extra_size(entry.mtime)));
  out.append(entry.name);
  if (zip64) {  // APPNOTE 4.5.3: in a local header both sizes, uncompressed first
    put16(out, kZip64ExtraId);
    put16(out, 16);
    put64(out, stored ? entry.size : 0);
    put64(out, record.compressed_size);
  }
  put_timestamp_extra(out, entry.mtime);
  offset_ += out.size() - before;
  records_.push_back(std::move(record));
  open_ = true;
}

void ZipWriter::end_entry(std::uint32_t crc32, std::uint64_t size, std::uint64_t compressed_size,
                          ByteBuffer& out) {
  if (!open_) throw ZipError("end_entry: no entry is open");
  Record& record = records_.back();
  if (size != record.size) {
    throw ZipError("entry '" + record.name + "' has " + std::to_string(size) + " bytes, not the " +
                   std::to_string(record.size) + " announced");
  }
  offset_ += compressed_size;
  open_ = false;
  if (record.method == ZipMethod::kStore) {
    if (crc32 != record.crc32 || compressed_size != size) {
      throw ZipError("entry '" + record.name + "' does not match its CRC-32 or size");
    }
    return;
  }
  if (!record.zip64_header && compressed_size >= kMax32) {
    throw ZipError("entry '" + record.name + "' compressed beyond its ZIP64 decision");
  }
  record.crc32 = crc32;
  record.compressed_size = compressed_size;
  const std::size_t before = out.size();
  put32(out, kDataDescriptorSignature);
  put32(out, crc32);
  if (record.zip64_header) {
    put64(out, compressed_size);
    put64(out, size);
  } else {
    put32(out, static_cast<std::uint32_t>(compressed_size));
    put32(out, static_cast<std::uint32_t>(size));
  }
  offset_ += out.size() - before;
}

void ZipWriter::append_central_record(const Record& record, ByteBuffer& out) const {
  // APPNOTE 4.5.3: only the fields that overflow go into the ZIP64 extra, in this order.
  const bool big_size = record.size >= kMax32;
  const bool big_compressed = record.compressed_size >= kMax32;
  const bool big_offset = record.offset >= kMax32;
  const std::uint16_t zip64_data =
      static_cast<std::uint16_t>(8 * (big_size + big_compressed + big_offset));
  const bool zip64 = zip64_data != 0 || record.zip64_header;
  const DosTime dos = dos_time(record.mtime);
  const bool stored = record.method == ZipMethod::kStore;
  put32(out, kCentralHeaderSignature);
  put16(out, kMadeByUnix);
  put16(out, zip64 ? kVersionZip64 : kVersionDefault);
  put16(out, static_cast<std::uint16_t>(kFlagUtf8 | (stored ? 0 : kFlagDataDescriptor)));
  put16(out, static_cast<std::uint16_t>(record.method));
  put16(out, dos.time);
  put16(out, dos.date);
  put32(out, record.crc32);
  put32(out, clamp32(record.compressed_size));
  put32(out, clamp32(record.size));
  put16(out, static_cast<std::uint16_t>(record.name.size()));
  const std::uint16_t zip64_extra = zip64_data == 0 ? 0 : static_cast<std::uint16_t>(4 + zip64_data);
  put16(out, static_cast<std::uint16_t>(zip64_extra + timestamp_extra_size(record.mtime)));
  put16(out, 0);  // comment
  put16(out, 0);  // disk number
  put16(out, 0);  // internal attributes
  put32(out, kRegularFile0644);
  put32(out, clamp32(record.offset));
  out.append(record.name);
  if (zip64_data != 0) {
    put16(out, kZip64ExtraId);
    put16(out, zip64_data);
    if (big_size) put64(out, record.size);
    if (big_compressed) put64(out, record.compressed_size);
    if (big_offset) put64(out, record.offset);
  }
  put_timestamp_extra(out, record.mtime);
}

void ZipWriter::append_end_records(ByteBuffer& out) const {
  const std::uint64_t count = records_.size();
  const std::uint64_t central_size = offset_ - central_offset_;
  const bool zip64 = count >= kMax16 || central_size >= kMax32 || central_offset_ >= kMax32;
  if (zip64) {
    const std::uint64_t zip64_end_offset = offset_;
    put32(out, kZip64EndSignature);
    put64(out, 44);  // size of the rest of this record
    put16(out, (3u << 8) | kVersionZip64);
    put16(out, kVersionZip64);
    put32(out, 0);  // this disk
    put32(out, 0);  // disk with the central directory
    put64(out, count);
    put64(out, count);
    put64(out, central_size);
    put64(out, central_offset_);
    put32(out, kZip64LocatorSignature);
    put32(out, 0);
    put64(out, zip64_end_offset);
    put32(out, 1);  // disks
  }
  put32(out, kEndSignature);
  put16(out, 0);
  put16(out, 0);
  const auto count16 = static_cast<std::uint16_t>(count >= kMax16 ? kMax16 : count);
  put16(out, count16);
  put16(out, count16);
  put32(out, clamp32(central_size));
  put32(out, clamp32(central_offset_));
  put16(out, 0);  // comment
}

bool ZipWriter::finish(ByteBuffer& out, std::size_t max_bytes) {
  if (open_) throw ZipError("finish: an entry is still open");
  if (finished_) return true;
  if (central_written_ == 0) central_offset_ = offset_;
  const std::size_t before = out.size();
  while (central_written_ < records_.size() && out.size() < max_bytes) {
    append_central_record(records_[central_written_++], out);
  }
  offset_ += out.size() - before;
  if (central_written_ < records_.size()) return false;
  const std::size_t end_before = out.size();
  append_end_records(out);
  offset_ += out.size() - end_before;
  finished_ = true;
  return true;
}

void ZipWriter::abandon() {
  records_.clear();
  open_ = false;
  finished_ = true;
}

}  // namespace sluice
