#include "encode/deflater.hpp"

#include <isa-l/igzip_lib.h>

#include <stdexcept>
#include <memory>

namespace sluice {

// Level 1's hash table: "small" (~40 KiB) instead of the default "large" (~276 KiB) keeps a
// thousand concurrent deflating downloads affordable; the ratio differs by about 1%.
constexpr std::size_t kLevelBufferBytes = ISAL_DEF_LVL1_SMALL;

struct Deflater::State {
  isal_zstream stream;
  std::unique_ptr<std::uint8_t[]> level_buf{new std::uint8_t[kLevelBufferBytes]};

  void init() {
    isal_deflate_init(&stream);
    stream.level = 1;
    stream.level_buf = level_buf.get();
    stream.level_buf_size = static_cast<std::uint32_t>(kLevelBufferBytes);
    stream.gzip_flag = IGZIP_DEFLATE;
  }
};

Deflater::Deflater() : state_(std::make_unique<State>()) { state_->init(); }

Deflater::~Deflater() = default;

void Deflater::reset() {
  state_->init();
  bytes_in_ = 0;
  bytes_out_ = 0;
}

void Deflater::add(std::string_view input, ByteBuffer& out) {
  if (!input.empty()) run(input, false, out);
}

void Deflater::finish(ByteBuffer& out) { run({}, true, out); }

void Deflater::run(std::string_view input, bool end, ByteBuffer& out) {
  isal_zstream& zs = state_->stream;
  zs.next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(input.data()));
  zs.avail_in = static_cast<std::uint32_t>(input.size());
  zs.end_of_stream = end ? 1 : 0;
  zs.flush = NO_FLUSH;
  bytes_in_ += input.size();
  // igzip consumes all input when it has output room; at the end it also drains its state.
  for (;;) {
    const std::size_t room = input.size() / 2 + 16 * 1024;
    zs.next_out = reinterpret_cast<std::uint8_t*>(out.tail(room));
    zs.avail_out = static_cast<std::uint32_t>(room);
    if (isal_deflate(&zs) != COMP_OK) throw std::runtime_error("isal_deflate failed");
    const std::size_t produced = room - zs.avail_out;
    out.commit(produced);
    bytes_out_ += produced;
    const bool drained = end ? zs.internal_state.state == ZSTATE_END : zs.avail_in == 0;
    if (drained && zs.avail_out != 0) return;
  }
}

std::uint64_t Deflater::bound(std::uint64_t size) {
  // igzip level 1 expands incompressible data by ~0.07% (measured: DeflaterTest); 1/128 leaves
  // a wide margin, and the constant covers block headers of tiny inputs.
  return size + size / 128 + 4096;
}

}  // namespace sluice
