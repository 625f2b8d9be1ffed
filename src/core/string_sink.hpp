#pragma once

#include <stdexcept>
#include <string>

#include "core/byte_sink.hpp"

namespace sluice {

// A ByteSink that keeps what it is given, for tests. With `fail_at` it throws on that write
// (0-based), as a client that leaves does: run an operation with fail_at = 0, 1, 2 … until it
// succeeds and every error path has run (Beast's fail_count).
// Not thread-safe.
class StringSink final : public ByteSink {
 public:
  explicit StringSink(int fail_at = -1) : fail_at_(fail_at) {}

  boost::asio::awaitable<void> write(std::string_view bytes) override {
    if (writes_++ == fail_at_) throw std::runtime_error("client gone");
    body.append(bytes);
    co_return;
  }
  boost::asio::awaitable<void> finish() override {
    finished = true;
    co_return;
  }
  int writes() const { return writes_; }

  std::string body;
  bool finished = false;

 private:
  int fail_at_;
  int writes_ = 0;
};

}  // namespace sluice
