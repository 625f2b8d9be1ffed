#include "encode/compressing_sink.hpp"

#include <algorithm>

namespace sluice {

boost::asio::awaitable<void> CompressingSink::write(std::string_view bytes) {
  if (bytes.empty()) co_return;
  bytes_in_ += bytes.size();
  if (flush_each_write_) {
    compressor_->compress(bytes, out_, true);
    co_await send();
    co_return;
  }
  while (!bytes.empty()) {
    const std::size_t take = std::min(bytes.size(), kBlockBytes - pending_.size());
    pending_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (pending_.size() < kBlockBytes) break;
    compressor_->compress(pending_, out_, false);
    pending_.clear();
    if (out_.size() >= kBlockBytes) co_await send();
  }
}

boost::asio::awaitable<void> CompressingSink::finish() {
  if (!pending_.empty()) compressor_->compress(pending_, out_, false);
  pending_.clear();
  compressor_->finish(out_);
  co_await send();
  co_await inner_.finish();
}

boost::asio::awaitable<void> CompressingSink::send() {
  if (!out_.empty()) {
    co_await inner_.write(out_.view());
    bytes_out_ += out_.size();
  }
  out_.clear();
  // A burst of incompressible bytes can grow the buffer; keep a stream's memory at one write.
  out_.shrink_to(256 * 1024);
}

}  // namespace sluice
