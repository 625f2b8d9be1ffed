#include "storage/open_object_store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <stdexcept>

#include "s3/s3_client.hpp"
#include "storage/local_object_store.hpp"
#include "storage/s3_object_store.hpp"

namespace sluice {
namespace {

std::unique_ptr<ObjectStore> open_s3(const S3StorageConfig& config) {
  try {
    S3ClientOptions options;
    options.connect_timeout = std::chrono::milliseconds(config.connect_timeout_ms);
    options.request_timeout = std::chrono::milliseconds(config.request_timeout_ms);
    options.max_attempts = config.max_attempts;
    options.max_idle_connections = static_cast<std::size_t>(config.max_connections);
    options.ca_file = config.ca_file.string();
    auto client = std::make_shared<S3Client>(make_s3_endpoint(config),
                                             s3_credentials_from_env(config), options);
    return make_s3_object_store(std::move(client));
  } catch (const std::invalid_argument& error) {
    throw StorageError(StorageError::Kind::kIo, error.what());
  } catch (const S3Error& error) {
    throw storage_error_of(error);
  }
}

}  // namespace

std::unique_ptr<ObjectStore> open_object_store(const StorageConfig& config) {
  if (config.kind == "s3" && config.s3) return open_s3(*config.s3);
  if (config.kind != "local") {
    throw StorageError(StorageError::Kind::kIo, "unsupported storage kind '" + config.kind + "'");
  }
  return make_local_object_store(config.path);
}

void verify_object_store(ObjectStore& store, boost::asio::io_context& io, bool write_probe) {
  std::exception_ptr failure;
  auto check = [&store, write_probe]() -> boost::asio::awaitable<void> {
    if (write_probe) {
      co_await check_object_store(store);
    } else {
      try {
        co_await store.list_page("", "", 1);
      } catch (const std::exception& error) {
        throw StorageError(StorageError::Kind::kIo,
                           std::string("cannot list the objects: ") + error.what());
      }
    }
  };
  boost::asio::co_spawn(io, check(),
                        [&failure](std::exception_ptr error) { failure = std::move(error); });
  io.restart();
  io.run();
  store.close_idle();  // they belong to `io`
  if (failure) std::rethrow_exception(failure);
}

}  // namespace sluice
