#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/object_store.hpp"

namespace sluice {

// CRC-32s of whole objects, keyed by the object's identity (key, size, mtime, S3 ETag), so a Range
// request or a second download does not read an object twice for its checksum. Least recently
// used entries go first once `capacity` is reached (~100 bytes each plus the key).
// Thread-safe.
class CrcCache {
 public:
  explicit CrcCache(std::size_t capacity) : capacity_(capacity) {}

  std::optional<std::uint32_t> find(const ObjectInfo& object);
  void insert(const ObjectInfo& object, std::uint32_t crc32);
  std::size_t size() const;

 private:
  static std::string identity(const ObjectInfo& object);

  using Order = std::list<std::string>;
  struct Slot {
    std::uint32_t crc32;
    Order::iterator position;
  };

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  Order order_;  // most recently used first
  std::unordered_map<std::string, Slot> slots_;
};

}  // namespace sluice
