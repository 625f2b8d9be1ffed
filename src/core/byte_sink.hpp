#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string_view>

#include "core/metrics.hpp"

namespace sluice {

// Where a pipeline's bytes go: an HTTP chunked body, a file, stdout, later an object-store
// upload. write() completes only when the bytes are handed on (to the kernel for a socket), so
// awaiting it is the pipeline's only pacing: a slow client slows the database read.
// A sink that fails throws; the pipeline then stops and the caller aborts the transfer.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // REQUIRES: `bytes` stays valid until the returned awaitable completes.
  virtual boost::asio::awaitable<void> write(std::string_view bytes) = 0;
  // Marks a complete body (the last chunk for HTTP). Never called after a failure.
  virtual boost::asio::awaitable<void> finish() = 0;
  // Writes `length` bytes of the open file `fd` from `offset`, exactly as write() would with
  // those bytes. An HTTP sink sends them with sendfile(2), without copying them through user
  // space (archives of stored files); this default reads them into a buffer and calls write().
  // REQUIRES: `fd` stays open until the returned awaitable completes. Throws when the file
  // ends early.
  virtual boost::asio::awaitable<void> write_file(int fd, std::uint64_t offset,
                                                  std::uint64_t length);
};

// Passes bytes on to `inner` and adds each write's size to `counter` once `inner` took it
// (the bytes_sent_total metric, counted where the bytes meet the socket).
class CountingSink final : public ByteSink {
 public:
  CountingSink(ByteSink& inner, Counter& counter)
      : inner_(inner), counter_(counter) {}
  boost::asio::awaitable<void> write(std::string_view bytes) override;
  boost::asio::awaitable<void> finish() override;

 private:
  ByteSink& inner_;
  Counter& counter_;
};

}  // namespace sluice
