#include "encode/compressing_sink.hpp"

namespace sluice {

boost::asio::awaitable<void> CompressingSink::write(std::string_view bytes) {
  if (bytes.empty()) co_return;
  compressor_->compress(bytes, out_, flush_each_write_);
  bytes_in_ += bytes.size();
  co_await send();
}

boost::asio::awaitable<void> CompressingSink::finish() {
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
