// zstd (RFC 8878) streams through libzstd's ZSTD_compressStream2.

#include <zstd.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "encode/compressor.hpp"

namespace sluice {
namespace {

struct CCtxFree {
  void operator()(ZSTD_CCtx* context) const { ZSTD_freeCCtx(context); }
};

void check(std::size_t result, const char* what) {
  if (ZSTD_isError(result)) {
    throw std::runtime_error(std::string(what) + ": " + ZSTD_getErrorName(result));
  }
}

class ZstdCompressor final : public Compressor {
 public:
  explicit ZstdCompressor(const ZstdTuning& tuning) : context_(ZSTD_createCCtx()) {
    if (!context_) throw std::bad_alloc();
    set(ZSTD_c_compressionLevel, tuning.level);
    if (tuning.window_log != 0) set(ZSTD_c_windowLog, tuning.window_log);
    if (tuning.hash_log != 0) set(ZSTD_c_hashLog, tuning.hash_log);
    if (tuning.chain_log != 0) set(ZSTD_c_chainLog, tuning.chain_log);
    if (tuning.min_match != 0) set(ZSTD_c_minMatch, tuning.min_match);
    set(ZSTD_c_checksumFlag, 1);  // the frame's XXH64 lets `zstd -t` prove a download whole
  }

  void compress(std::string_view input, ByteBuffer& out, bool flush) override {
    if (input.empty() && !flush) return;
    run(input, flush ? ZSTD_e_flush : ZSTD_e_continue, out);
  }

  void finish(ByteBuffer& out) override { run({}, ZSTD_e_end, out); }

  std::size_t state_bytes() const override { return ZSTD_sizeof_CCtx(context_.get()); }

 private:
  void set(ZSTD_cParameter parameter, int value) {
    check(ZSTD_CCtx_setParameter(context_.get(), parameter, value), "ZSTD_CCtx_setParameter");
  }

  void run(std::string_view input, ZSTD_EndDirective mode, ByteBuffer& out) {
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    for (;;) {
      const std::size_t room = ZSTD_compressBound(input.size() - in.pos) + 1024;
      ZSTD_outBuffer target{out.tail(room), room, 0};
      const std::size_t remaining = ZSTD_compressStream2(context_.get(), &target, &in, mode);
      check(remaining, "ZSTD_compressStream2");
      out.commit(target.pos);
      // e_continue is done once the input is taken; flush and end once nothing is left over.
      if (mode == ZSTD_e_continue ? in.pos == in.size : remaining == 0) return;
    }
  }

  std::unique_ptr<ZSTD_CCtx, CCtxFree> context_;
};

}  // namespace

ZstdTuning export_zstd_tuning() {
  ZstdTuning tuning;
  // Level 3's strategy and search with a 128 KiB window and 16 Ki-entry tables: ~1 MiB per
  // stream instead of ~3.6 MiB, as fast or faster (smaller tables stay in cache), 1.7% larger
  // output (bench/compress_bench.cpp, docs/BENCHMARKS.md).
  tuning.level = 3;
  tuning.window_log = 17;
  tuning.hash_log = 14;
  tuning.chain_log = 14;
  return tuning;
}

std::unique_ptr<Compressor> make_zstd_compressor(const ZstdTuning& tuning) {
  return std::make_unique<ZstdCompressor>(tuning);
}

}  // namespace sluice
