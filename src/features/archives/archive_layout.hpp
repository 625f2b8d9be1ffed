#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "encode/zip_writer.hpp"
#include "features/archives/archive_manifest.hpp"

namespace sluice {

// Where everything of an all-stored archive lies, computed from the manifest alone (the CRC
// values do not change any length): what Content-Length and Range need before the first byte.
struct ArchiveLayout {
  std::uint64_t length = 0;
  std::vector<std::uint64_t> header_offsets;  // per entry: its local header
  std::vector<std::uint64_t> data_offsets;    // per entry: its first data byte
  std::uint64_t central_offset = 0;           // the central directory, then the end records
};

// The layout of `manifest`, or nothing when an entry is deflated (its size is unknown until
// it has been compressed: such archives are sent chunked). Runs the same ZipWriter that
// writes the archive, so the plan and the bytes cannot disagree.
std::optional<ArchiveLayout> plan_layout(const ArchiveManifest& manifest);

// The ZIP entry for a manifest entry; `crc32` matters for stored entries only.
ZipEntry zip_entry_for(const ManifestEntry& entry, std::uint32_t crc32);

// A strong ETag for the archive's bytes: the id and a hash of what decides them.
std::string archive_etag(const ArchiveManifest& manifest);

}  // namespace sluice
