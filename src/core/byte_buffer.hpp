#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace sluice {

// A growable byte buffer that never zero-fills: encoders reserve room at the tail, write into it
// through a raw pointer and commit what they wrote. Capacity is kept across clear(), so a
// stream that reuses one buffer allocates only while it warms up.
// Not thread-safe.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(std::size_t capacity) { reserve(capacity); }
  ByteBuffer(ByteBuffer&&) noexcept = default;
  ByteBuffer& operator=(ByteBuffer&&) noexcept = default;

  const char* data() const { return data_.get(); }
  char* data() { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_.get(), size_}; }
  void clear() { size_ = 0; }

  void reserve(std::size_t capacity) {
    if (capacity <= capacity_) return;
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (size_ != 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = capacity;
  }

  // Returns room for at least `n` more bytes at the tail; valid until the next reserve/append.
  char* tail(std::size_t n) {
    if (capacity_ - size_ < n) reserve(grow_to(size_ + n));
    return data_.get() + size_;
  }
  // REQUIRES: n <= the room returned by the last tail() call.
  void commit(std::size_t n) { size_ += n; }

  void append(std::string_view bytes) {
    char* out = tail(bytes.size());
    if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
    size_ += bytes.size();
  }
  void push_back(char c) {
    *tail(1) = c;
    ++size_;
  }

  // Drops the first `n` bytes (used after a partial flush).
  void consume(std::size_t n) {
    if (n >= size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_.get(), data_.get() + n, size_ - n);
    size_ -= n;
  }

  // Releases memory beyond `keep` bytes of capacity (after an unusually large row).
  void shrink_to(std::size_t keep) {
    if (capacity_ <= keep || size_ > keep) return;
    std::unique_ptr<char[]> smaller(new char[keep]);
    if (size_ != 0) std::memcpy(smaller.get(), data_.get(), size_);
    data_ = std::move(smaller);
    capacity_ = keep;
  }

 private:
  std::size_t grow_to(std::size_t needed) const {
    std::size_t next = capacity_ < 4096 ? 4096 : capacity_ * 2;
    return next < needed ? needed : next;
  }

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace sluice
