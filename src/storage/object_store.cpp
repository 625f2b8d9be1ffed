#include "storage/object_store.hpp"

#include <chrono>

#include "storage/object_key.hpp"

namespace sluice {

boost::asio::awaitable<void> ObjectWriter::finish() {
  co_await commit();
}

namespace {

[[noreturn]] void fail_step(const std::string& step, const std::exception& error) {
  throw StorageError(StorageError::Kind::kIo, step + ": " + error.what());
}

}  // namespace

boost::asio::awaitable<void> check_object_store(ObjectStore& store) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const std::string key =
      std::string(kReservedKeyPrefix) + "check/" +
      std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  const std::string probe = "sluice check-config probe\n";
  std::string step = "list the objects";
  try {
    co_await store.list_page("", "", 1);
    step = "write a probe object " + key;
    std::unique_ptr<ObjectWriter> writer = co_await store.write(key);
    co_await writer->write(probe);
    co_await writer->commit();
    step = "read the probe object back";
    std::optional<std::string> back = co_await store.get(key, 1024);
    if (back != probe) throw StorageError(StorageError::Kind::kIo, "other bytes came back");
    step = "delete the probe object";
    if (!co_await store.remove(key)) {
      throw StorageError(StorageError::Kind::kIo, "it was not there to delete");
    }
  } catch (const std::exception& error) {
    fail_step("cannot " + step, error);
  }
}

}  // namespace sluice
