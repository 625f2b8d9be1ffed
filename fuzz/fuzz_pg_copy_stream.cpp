// Fuzzes the parser of a COPY's wire bytes (PgCopyStream): any bytes either parse or throw
// std::runtime_error, never read out of bounds; the events do not depend on how the bytes are
// split into reads (one piece, or pieces of the size the first byte gives); rows come only after
// CopyOutResponse and are slices of the input.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sources/pg_copy_stream.hpp"

namespace {

// The events of `wire` read `piece` bytes at a time: "S" started, "R<row>" rows, "E" end,
// "X" a violation (then nothing more).
std::vector<std::string> events(std::string_view wire, std::size_t piece) {
  sluice::PgCopyStream stream;
  std::vector<std::string> out;
  std::size_t at = 0;
  bool started = false;
  try {
    for (;;) {
      std::string_view row;
      const sluice::PgCopyStream::Event event = stream.next(row);
      if (event == sluice::PgCopyStream::Event::kRow) {
        if (!started) std::abort();
        if (row.size() > wire.size()) std::abort();
        out.push_back("R" + std::string(row));
      } else if (event == sluice::PgCopyStream::Event::kStarted) {
        started = true;
        out.emplace_back("S");
      } else if (event == sluice::PgCopyStream::Event::kEnd) {
        out.emplace_back(stream.error() ? "E" + stream.error()->sqlstate : "E");
        return out;
      } else {
        if (at == wire.size()) return out;
        const std::span<char> space = stream.space();
        if (space.empty()) std::abort();
        const std::size_t n = std::min({piece, space.size(), wire.size() - at});
        std::memcpy(space.data(), wire.data() + at, n);
        stream.filled(n);
        at += n;
      }
    }
  } catch (const std::runtime_error&) {
    out.emplace_back("X");
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t piece = 1 + data[0] % 16;
  const std::string_view wire(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (events(wire, piece) != events(wire, wire.size() + 1)) std::abort();
  return 0;
}
