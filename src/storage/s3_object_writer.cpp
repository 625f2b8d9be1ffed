#include "storage/s3_object_writer.hpp"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/wake_signal.hpp"
#include "storage/s3_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::uint64_t kFirstPartBytes = 8ULL << 20;
constexpr std::uint64_t kMaxPartBytes = 5ULL << 30;
constexpr int kMaxParts = 10000;

// One part on its way to S3, uploaded by a coroutine of its own while the writer fills the
// next part.
struct PartUpload {
  int number = 0;
  std::string body;
  std::string etag;
  std::exception_ptr error;
  bool done = false;
  std::shared_ptr<WakeSignal> wake;
};

asio::awaitable<void> upload(std::shared_ptr<S3Client> client, std::string key,
                             std::string upload_id, std::shared_ptr<PartUpload> part) {
  part->etag = co_await client->upload_part(key, upload_id, part->number, part->body);
}

// What a writer left behind (an upload in flight, an upload id): aborted in the background.
asio::awaitable<void> clean_up(std::shared_ptr<S3Client> client, std::string key,
                               std::string upload_id, std::shared_ptr<PartUpload> part) {
  if (part) {
    while (!part->done) co_await part->wake->wait();
  }
  try {
    co_await client->abort_multipart_upload(key, upload_id);
  } catch (const S3Error&) {
    // Nothing is visible either way; a bucket lifecycle rule removes what an abort missed.
  }
}

class S3ObjectWriter final : public ObjectWriter {
 public:
  S3ObjectWriter(std::shared_ptr<S3Client> client, std::string key)
      : client_(std::move(client)), key_(std::move(key)) {}

  ~S3ObjectWriter() override {
    if (closed_ || upload_id_.empty() || !executor_) return;
    asio::co_spawn(executor_, clean_up(client_, key_, upload_id_, in_flight_), asio::detached);
  }

  asio::awaitable<void> write(std::string_view bytes) override {
    if (closed_) throw StorageError(StorageError::Kind::kIo, "the object writer was closed");
    if (!executor_) executor_ = co_await asio::this_coro::executor;
    while (!bytes.empty()) {
      const std::uint64_t part_bytes = s3_part_size(next_part_);
      if (filling_.capacity() < part_bytes) filling_.reserve(part_bytes);
      const std::size_t take = std::min<std::size_t>(part_bytes - filling_.size(), bytes.size());
      filling_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      written_ += take;
      if (filling_.size() == part_bytes) co_await guarded(ship_part());
    }
  }

  asio::awaitable<ObjectInfo> commit() override {
    if (closed_) throw StorageError(StorageError::Kind::kIo, "the object writer was closed");
    if (!executor_) executor_ = co_await asio::this_coro::executor;
    closed_ = true;
    std::exception_ptr failure;
    try {
      if (upload_id_.empty()) {
        co_await client_->put_object(key_, filling_);
      } else {
        if (!filling_.empty()) co_await ship_part();
        co_await finish_part();
        co_await client_->complete_multipart_upload(key_, upload_id_, parts_);
      }
      filling_ = std::string();
      std::optional<S3ObjectHead> head = co_await client_->head_object(key_);
      if (!head) throw S3Error(404, "NoSuchKey", "S3: the object vanished right after its upload");
      co_return s3_object_info(key_, *head);
    } catch (...) {
      failure = std::current_exception();
    }
    co_await abort();
    rethrow_as_storage_error(failure);
  }

  asio::awaitable<void> abandon() override {
    if (closed_) co_return;
    closed_ = true;
    co_await abort();
  }

  std::uint64_t bytes_written() const override { return written_; }

 private:
  // Runs `step`; on failure the upload is aborted and the writer closed before the error goes
  // on as a StorageError.
  asio::awaitable<void> guarded(asio::awaitable<void> step) {
    std::exception_ptr failure;
    try {
      co_await std::move(step);
      co_return;
    } catch (...) {
      failure = std::current_exception();
    }
    closed_ = true;
    co_await abort();
    rethrow_as_storage_error(failure);
  }

  // Sends the full part: waits for the previous one first, so at most two are in memory.
  asio::awaitable<void> ship_part() {
    if (upload_id_.empty()) upload_id_ = co_await client_->create_multipart_upload(key_);
    co_await finish_part();
    if (next_part_ > kMaxParts) {
      throw StorageError(StorageError::Kind::kIo, "the object exceeds S3's 10,000 parts");
    }
    auto part = std::make_shared<PartUpload>();
    part->number = next_part_++;
    part->body.swap(filling_);
    filling_.swap(spare_);  // the buffer of the part before, reused
    filling_.clear();
    part->wake = std::make_shared<WakeSignal>(executor_);
    in_flight_ = part;
    asio::co_spawn(executor_, upload(client_, key_, upload_id_, part),
                   [part](std::exception_ptr error) {
                     part->error = std::move(error);
                     part->done = true;
                     part->wake->notify();
                   });
  }

  // Waits for the part in flight and records its ETag.
  asio::awaitable<void> finish_part() {
    if (!in_flight_) co_return;
    std::shared_ptr<PartUpload> part = in_flight_;
    while (!part->done) co_await part->wake->wait();
    in_flight_.reset();
    if (part->error) std::rethrow_exception(part->error);
    parts_.push_back(S3CompletedPart{part->number, part->etag});
    spare_ = std::move(part->body);
  }

  asio::awaitable<void> abort() {
    filling_ = std::string();
    spare_ = std::string();
    std::shared_ptr<PartUpload> part = std::move(in_flight_);
    std::string upload_id = std::move(upload_id_);
    upload_id_.clear();
    if (upload_id.empty()) co_return;
    co_await clean_up(client_, key_, std::move(upload_id), std::move(part));
  }

  [[noreturn]] static void rethrow_as_storage_error(std::exception_ptr failure) {
    try {
      std::rethrow_exception(std::move(failure));
    } catch (const S3Error& error) {
      throw storage_error_of(error);
    }
  }

  std::shared_ptr<S3Client> client_;
  std::string key_;
  asio::any_io_executor executor_;
  std::string filling_;
  std::string spare_;
  std::string upload_id_;
  int next_part_ = 1;
  std::shared_ptr<PartUpload> in_flight_;
  std::vector<S3CompletedPart> parts_;
  std::uint64_t written_ = 0;
  bool closed_ = false;
};

}  // namespace

std::uint64_t s3_part_size(int part_number) {
  const int doublings = std::max(part_number - 1, 0) / 1000;
  return std::min(kFirstPartBytes << std::min(doublings, 20), kMaxPartBytes);
}

std::unique_ptr<ObjectWriter> make_s3_object_writer(std::shared_ptr<S3Client> client,
                                                    std::string key) {
  return std::make_unique<S3ObjectWriter>(std::move(client), std::move(key));
}

}  // namespace sluice
