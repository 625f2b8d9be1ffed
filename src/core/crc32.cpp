#include "core/crc32.hpp"

#include <libdeflate.h>

namespace sluice {

// libdeflate's PCLMUL/AVX folding: ~20x zlib 1.2.13's table CRC on this machine and on par
// with ISA-L's crc32_gzip_refl (figures in docs/BENCHMARKS.md).
std::uint32_t crc32_update(std::uint32_t crc, std::string_view bytes) {
  return libdeflate_crc32(crc, bytes.data(), bytes.size());
}

}  // namespace sluice
