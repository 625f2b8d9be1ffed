#include "storage/s3_object_store.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/wake_signal.hpp"
#include "storage/object_key.hpp"
#include "storage/s3_object_stream.hpp"
#include "storage/s3_object_writer.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kHeadConcurrency = 16;
constexpr int kListPageKeys = 1000;  // S3's maximum

void require_key(std::string_view key) {
  if (auto problem = key_problem(key)) {
    throw StorageError(StorageError::Kind::kIo, "invalid object key: " + *problem);
  }
}

void require_prefix(std::string_view prefix) {
  if (auto problem = prefix_problem(prefix)) {
    throw StorageError(StorageError::Kind::kIo, "invalid prefix: " + *problem);
  }
}

// Last-Modified has whole seconds, listings milliseconds: both are compared in seconds.
std::int64_t whole_seconds(std::int64_t ns) {
  return ns - ns % 1'000'000'000;
}

// head() of many keys, kHeadConcurrency at a time, all on the caller's (single-threaded)
// executor.
struct HeadMany {
  std::vector<std::string> keys;
  std::vector<std::optional<ObjectInfo>> found;
  std::size_t next = 0;
  std::size_t running = 0;
  std::exception_ptr error;
};

class S3ObjectStore final : public ObjectStore {
 public:
  explicit S3ObjectStore(std::shared_ptr<S3Client> client) : client_(std::move(client)) {}

  asio::awaitable<std::optional<ObjectInfo>> head(std::string key) override {
    require_key(key);
    std::optional<S3ObjectHead> head;
    try {
      head = co_await client_->head_object(key);
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
    if (!head) co_return std::nullopt;
    co_return s3_object_info(std::move(key), *head);
  }

  asio::awaitable<std::vector<std::optional<ObjectInfo>>> head_many(
      std::vector<std::string> keys) override {
    for (const std::string& key : keys) require_key(key);
    auto executor = co_await asio::this_coro::executor;
    auto wake = std::make_shared<WakeSignal>(executor);
    auto state = std::make_shared<HeadMany>();
    state->found.resize(keys.size());
    state->keys = std::move(keys);
    const std::size_t workers = std::min(kHeadConcurrency, state->keys.size());
    for (std::size_t i = 0; i < workers; ++i) {
      ++state->running;
      asio::co_spawn(executor, head_worker(state), [state, wake](const std::exception_ptr& error) {
        if (error && !state->error) state->error = error;
        --state->running;
        wake->notify();
      });
    }
    while (state->running > 0) co_await wake->wait();
    if (state->error) std::rethrow_exception(state->error);
    co_return std::move(state->found);
  }

  asio::awaitable<std::vector<ObjectInfo>> list(std::string prefix, std::size_t limit) override {
    std::vector<ObjectInfo> found;
    std::string after;
    for (;;) {
      ObjectPage page = co_await list_page(prefix, after, kListPageKeys);
      for (ObjectInfo& object : page.objects) {
        if (found.size() == limit) {
          throw StorageError(StorageError::Kind::kIo, "more than " + std::to_string(limit) +
                                                          " objects under '" + prefix + "'");
        }
        found.push_back(std::move(object));
      }
      if (!page.next_after) break;
      after = std::move(*page.next_after);
    }
    co_return found;
  }

  asio::awaitable<ObjectPage> list_page(std::string prefix, std::string after,
                                        std::size_t max) override {
    require_prefix(prefix);
    max = std::max<std::size_t>(max, 1);
    ObjectPage page;
    std::string continuation;
    // Pages of S3's may be all reserved or invalid keys: read on until one object or the end.
    for (;;) {
      const int ask =
          static_cast<int>(std::min<std::size_t>(max - page.objects.size(), kListPageKeys));
      S3ListPage listed;
      try {
        listed = co_await client_->list_objects(prefix, after, continuation, ask);
      } catch (const S3Error& error) {
        throw storage_error_of(error);
      }
      for (S3ListedObject& object : listed.objects) {
        after = object.key;
        if (key_problem(object.key) || (is_reserved_key(object.key) && !is_reserved_key(prefix))) {
          continue;
        }
        page.objects.push_back(ObjectInfo{std::move(object.key), object.size,
                                          whole_seconds(object.mtime_ns), std::move(object.etag)});
      }
      if (!listed.truncated) co_return page;
      if (page.objects.size() >= max) break;
      continuation = std::move(listed.next_continuation_token);
    }
    page.next_after = after;
    co_return page;
  }

  asio::awaitable<std::optional<std::string>> get(std::string key, std::size_t max_bytes) override {
    require_key(key);
    try {
      co_return co_await client_->get_object(key, max_bytes);
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
  }

  asio::awaitable<std::string> read_range(std::string key, std::uint64_t offset,
                                          std::size_t length) override {
    require_key(key);
    std::string bytes(length, '\0');
    try {
      std::unique_ptr<S3Download> download = co_await client_->open_download(key, offset, length, "");
      if (!download) throw StorageError(StorageError::Kind::kGone, "no object " + key);
      std::size_t done = 0;
      while (done < length) {
        const std::size_t got = co_await download->read_some(std::span<char>(bytes.data() + done, length - done));
        if (got == 0) break;
        done += got;
      }
      if (done != length) {
        throw StorageError(StorageError::Kind::kChanged, "object " + key + " ended before the range");
      }
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
    co_return bytes;
  }

  asio::awaitable<void> put(std::string key, std::string bytes) override {
    require_key(key);
    try {
      co_await client_->put_object(key, bytes);  // S3 replaces whole objects atomically
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
  }

  asio::awaitable<std::unique_ptr<ObjectWriter>> write(std::string key) override {
    require_key(key);
    co_return make_s3_object_writer(client_, std::move(key));
  }

  asio::awaitable<bool> remove(std::string key) override {
    require_key(key);
    try {
      // DeleteObject answers 204 whether or not there was an object: HEAD tells which.
      const bool existed = (co_await client_->head_object(key)).has_value();
      if (existed) co_await client_->delete_object(key);
      co_return existed;
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
  }

  std::unique_ptr<ObjectStream> read(std::vector<ReadStep> plan, ReadAheadBudget budget,
                                     asio::any_io_executor executor) override {
    for (const ReadStep& step : plan) require_key(step.object.key);
    return make_s3_object_stream(client_, std::move(plan), budget, executor);
  }

  void close_idle() noexcept override { client_->close_idle(); }

  std::optional<std::string> presign_get(std::string_view key, std::chrono::seconds expires,
                                         std::string_view content_disposition) const override {
    require_key(key);
    return client_->presign_get(key, expires, content_disposition);
  }

 private:
  asio::awaitable<void> head_worker(std::shared_ptr<HeadMany> state) {
    while (state->next < state->keys.size() && !state->error) {
      const std::size_t i = state->next++;
      state->found[i] = co_await head(state->keys[i]);
    }
  }

  std::shared_ptr<S3Client> client_;
};

}  // namespace

ObjectInfo s3_object_info(std::string key, const S3ObjectHead& head) {
  return ObjectInfo{std::move(key), head.size, whole_seconds(head.mtime_ns), head.etag};
}

StorageError storage_error_of(const S3Error& error) {
  StorageError::Kind kind = StorageError::Kind::kIo;
  if (error.code() == "PreconditionFailed") kind = StorageError::Kind::kChanged;
  if (error.code() == "NoSuchKey" || error.code() == "NotFound") kind = StorageError::Kind::kGone;
  return StorageError(kind, error.what());
}

std::unique_ptr<ObjectStore> make_s3_object_store(std::shared_ptr<S3Client> client) {
  return std::make_unique<S3ObjectStore>(std::move(client));
}

}  // namespace sluice
