#include "app/demo_objects.hpp"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <stdexcept>
#include <string>

namespace sluice {
namespace {

namespace fs = std::filesystem;

constexpr int kPhotos = 50;
constexpr std::uint64_t kSeed = 0x5111'ce00'0000'00a1ULL;
constexpr const char* kMarker = ".sluice/demo-objects-v1";

// splitmix64, as for the demo orders: the same bytes on every machine.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e37'79b9'7f4a'7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58'476d'1ce4'e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d0'49bb'1331'11ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
};

void write_file(const fs::path& file, const std::string& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

std::string photo(Rng& rng) {
  const std::size_t size = (1u << 20) + rng.next() % (2u << 20);
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    const std::uint64_t word = rng.next();
    for (int b = 0; b < 8; ++b) bytes[i + b] = static_cast<char>(word >> (8 * b));
  }
  bytes.replace(0, 4, "\xFF\xD8\xFF\xE0");  // a JPEG's first bytes, for file(1) and browsers
  return bytes;
}

std::string text(Rng& rng, int lines) {
  static const char* kWords[] = {"delivery", "archive", "stream", "sluice", "album", "photo",
                                 "download", "bytes", "zip", "order"};
  std::string out;
  for (int line = 1; line <= lines; ++line) {
    out += "Line " + std::to_string(line) + ":";
    for (int w = 0; w < 8; ++w) out += std::string(" ") + kWords[rng.next() % 10];
    out += "\n";
  }
  return out;
}

}  // namespace

void prepare_demo_objects(const fs::path& folder, std::ostream& log) {
  std::error_code ec;
  if (fs::exists(folder / kMarker, ec)) {
    log << "demo: reusing objects in " << folder.string() << "\n";
    return;
  }
  log << "demo: writing sample objects into " << folder.string() << "\n";
  Rng rng(kSeed);
  for (int i = 1; i <= kPhotos; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "album/IMG_%04d.jpg", i);
    write_file(folder / name, photo(rng));
  }
  write_file(folder / "docs/readme.txt",
             "Sample objects of the Sluice demo. Try:\n"
             "  curl -X POST localhost:8080/v1/archives -d '{\"name\":\"album\",\"prefix\":\"album/\"}'\n");
  for (int i = 1; i <= 5; ++i) write_file(folder / ("docs/notes-" + std::to_string(i) + ".txt"), text(rng, 2000 * i));
  write_file(folder / "docs/Grüße aus Köln – 東京.txt", "Viele Grüße! よろしく 📦\n");
  write_file(folder / kMarker, "complete\n");
}

}  // namespace sluice
