#include "core/byte_sink.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace sluice {

boost::asio::awaitable<void> ByteSink::write_file(int fd, std::uint64_t offset,
                                                  std::uint64_t length) {
  constexpr std::size_t kChunk = 64 * 1024;
  std::unique_ptr<char[]> buffer(new char[kChunk]);
  while (length > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length, kChunk));
    const ssize_t got = ::pread(fd, buffer.get(), want, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::system_error(errno, std::generic_category(), "pread");
    if (got == 0) throw std::runtime_error("file ended before the bytes to send");
    co_await write(std::string_view(buffer.get(), static_cast<std::size_t>(got)));
    offset += static_cast<std::uint64_t>(got);
    length -= static_cast<std::uint64_t>(got);
  }
}

boost::asio::awaitable<void> CountingSink::write(std::string_view bytes) {
  co_await inner_.write(bytes);
  counter_.add(bytes.size());
}

boost::asio::awaitable<void> CountingSink::finish() {
  co_await inner_.finish();
}

}  // namespace sluice
