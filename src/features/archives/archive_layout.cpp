#include "features/archives/archive_layout.hpp"

#include <array>
#include <cstdio>

namespace sluice {
namespace {

// FNV-1a, 64 bits: the ETag only has to change when the bytes would.
class Fnv64 {
 public:
  void add(std::string_view bytes) {
    for (char c : bytes) {
      hash_ ^= static_cast<unsigned char>(c);
      hash_ *= 0x100000001b3ULL;
    }
    hash_ ^= 0xFF;  // field separator
    hash_ *= 0x100000001b3ULL;
  }
  void add(std::uint64_t value) { add(std::to_string(value)); }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

}  // namespace

ZipEntry zip_entry_for(const ManifestEntry& entry, std::uint32_t crc32) {
  // Floor division, so times before 1970 do not round towards the epoch.
  std::int64_t seconds = entry.mtime_ns / 1'000'000'000;
  if (entry.mtime_ns % 1'000'000'000 < 0) --seconds;
  return ZipEntry{entry.name, seconds, entry.method, entry.size, crc32};
}

std::optional<ArchiveLayout> plan_layout(const ArchiveManifest& manifest) {
  if (!manifest.all_stored()) return std::nullopt;
  ArchiveLayout layout;
  layout.header_offsets.reserve(manifest.entries.size());
  layout.data_offsets.reserve(manifest.entries.size());
  ZipWriter writer;
  ByteBuffer scratch(64 * 1024);
  for (const ManifestEntry& entry : manifest.entries) {
    layout.header_offsets.push_back(writer.offset());
    writer.add_entry(zip_entry_for(entry, 0), scratch);
    layout.data_offsets.push_back(writer.offset());
    writer.end_entry(0, entry.size, entry.size, scratch);
    scratch.clear();
  }
  layout.central_offset = writer.offset();
  while (!writer.finish(scratch, 64 * 1024)) scratch.clear();
  layout.length = writer.offset();
  return layout;
}

std::string archive_etag(const ArchiveManifest& manifest) {
  Fnv64 hash;
  hash.add(manifest.id);
  for (const ManifestEntry& entry : manifest.entries) {
    hash.add(entry.key);
    hash.add(entry.name);
    hash.add(entry.size);
    hash.add(static_cast<std::uint64_t>(entry.mtime_ns));
    if (!entry.etag.empty()) hash.add(entry.etag);  // local archives keep their ETags
    hash.add(static_cast<std::uint64_t>(entry.method));
  }
  std::array<char, 24> hex{};
  std::snprintf(hex.data(), hex.size(), "%016llx", static_cast<unsigned long long>(hash.value()));
  return "\"" + manifest.id + "-" + hex.data() + "\"";
}

}  // namespace sluice
