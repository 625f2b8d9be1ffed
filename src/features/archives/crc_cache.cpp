#include "features/archives/crc_cache.hpp"

namespace sluice {

std::string CrcCache::identity(const ObjectInfo& object) {
  std::string id = object.key;
  id += '\0';
  id += std::to_string(object.size);
  id += '\0';
  id += std::to_string(object.mtime_ns);
  id += '\0';
  id += object.etag;  // S3: the content's own tag
  return id;
}

std::optional<std::uint32_t> CrcCache::find(const ObjectInfo& object) {
  const std::string id = identity(object);
  std::lock_guard lock(mutex_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return std::nullopt;
  order_.splice(order_.begin(), order_, it->second.position);
  return it->second.crc32;
}

void CrcCache::insert(const ObjectInfo& object, std::uint32_t crc32) {
  if (capacity_ == 0) return;
  std::string id = identity(object);
  std::lock_guard lock(mutex_);
  auto it = slots_.find(id);
  if (it != slots_.end()) {
    it->second.crc32 = crc32;
    order_.splice(order_.begin(), order_, it->second.position);
    return;
  }
  if (slots_.size() == capacity_) {
    slots_.erase(order_.back());
    order_.pop_back();
  }
  order_.push_front(id);
  slots_.emplace(std::move(id), Slot{crc32, order_.begin()});
}

std::size_t CrcCache::size() const {
  std::lock_guard lock(mutex_);
  return slots_.size();
}

}  // namespace sluice
