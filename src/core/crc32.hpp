#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

// CRC-32 as ZIP and gzip use it (IEEE 802.3, reflected, initial value 0, final xor inside).
// Backed by the fastest of zlib, libdeflate and ISA-L on this machine — see
// bench/archive_codec_bench.cpp and docs/BENCHMARKS.md. It lives in core because both the
// object store (checksum passes on the blocking pool) and the ZIP writer use it.
// Thread-safe (a pure function).
//
// crc32_update(crc32_update(0, a), b) == crc32_update(0, a + b).
std::uint32_t crc32_update(std::uint32_t crc, std::string_view bytes);

}  // namespace sluice
