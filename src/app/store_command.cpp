#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "app/commands.hpp"
#include "storage/object_key.hpp"
#include "storage/open_object_store.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kFileChunkBytes = 4 << 20;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

asio::awaitable<void> put(ObjectStore& store, const StoreOptions& options) {
  File file(std::fopen(options.file.c_str(), "rb"));
  if (!file) throw std::runtime_error("cannot read " + options.file);
  std::unique_ptr<ObjectWriter> writer = co_await store.write(options.key);
  std::exception_ptr failure;
  try {
    std::string chunk(kFileChunkBytes, '\0');
    for (;;) {
      const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), file.get());
      if (got > 0) co_await writer->write(std::string_view(chunk.data(), got));
      if (got < chunk.size()) break;
    }
    if (std::ferror(file.get()) != 0) throw std::runtime_error("cannot read " + options.file);
    const ObjectInfo stored = co_await writer->commit();
    std::clog << "stored " << stored.key << " (" << stored.size << " bytes)\n";
    co_return;
  } catch (...) {
    failure = std::current_exception();
  }
  co_await writer->abandon();  // nothing becomes visible, no upload stays open
  std::rethrow_exception(failure);
}

asio::awaitable<void> get(ObjectStore& store, const StoreOptions& options, std::FILE* out) {
  const std::optional<ObjectInfo> object = co_await store.head(options.key);
  if (!object) throw std::runtime_error("no object " + options.key);
  ReadStep step;
  step.object = *object;
  step.length = object->size;
  // (Named first: g++ 12 miscompiles braced lists inside a co_await expression.)
  std::vector<ReadStep> plan{step};
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::unique_ptr<ObjectStream> stream =
      store.read(std::move(plan), ReadAheadBudget{4, 1 << 20}, executor);
  std::uint64_t written = 0;
  while (std::optional<ReadPiece> piece = co_await stream->next()) {
    if (std::fwrite(piece->bytes.data(), 1, piece->bytes.size(), out) != piece->bytes.size()) {
      throw std::runtime_error("cannot write " + options.file);
    }
    written += piece->bytes.size();
  }
  if (written != object->size) throw std::runtime_error("the object ended early");
}

asio::awaitable<void> list(ObjectStore& store, const StoreOptions& options) {
  std::string after;
  for (;;) {
    ObjectPage page = co_await store.list_page(options.key, after, 1000);
    for (const ObjectInfo& object : page.objects) {
      std::cout << object.size << '\t' << object.key << '\n';
    }
    if (!page.next_after) break;
    after = *page.next_after;
  }
}

asio::awaitable<void> remove(ObjectStore& store, const StoreOptions& options) {
  const bool removed = co_await store.remove(options.key);
  if (!removed) throw std::runtime_error("no object " + options.key);
}

// get into FILE.partial, renamed when complete; "-" writes to stdout.
asio::awaitable<void> get_into_file(ObjectStore& store, const StoreOptions& options) {
  if (options.file == "-") {
    co_await get(store, options, stdout);
    if (std::fflush(stdout) != 0) throw std::runtime_error("cannot write stdout");
    co_return;
  }
  const std::string partial = options.file + ".partial";
  std::exception_ptr failure;
  {
    File out(std::fopen(partial.c_str(), "wb"));
    if (!out) throw std::runtime_error("cannot write " + partial);
    try {
      co_await get(store, options, out.get());
      if (std::fflush(out.get()) != 0) throw std::runtime_error("cannot write " + partial);
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (failure) {
    std::filesystem::remove(partial);
    std::rethrow_exception(failure);
  }
  std::filesystem::rename(partial, options.file);
}

asio::awaitable<void> run(ObjectStore& store, const StoreOptions& options) {
  if (options.action == "put") co_await put(store, options);
  if (options.action == "get") co_await get_into_file(store, options);
  if (options.action == "ls") co_await list(store, options);
  if (options.action == "rm") co_await remove(store, options);
}

}  // namespace

int store_command(const StoreOptions& options) {
  const Config config = load_config(options.config_file);
  if (!config.storage) {
    throw std::invalid_argument(config.file.string() + ": no [storage] section");
  }
  const bool listing = options.action == "ls";
  const std::optional<std::string> problem =
      listing ? prefix_problem(options.key) : key_problem(options.key);
  if (problem) throw std::invalid_argument("the object key " + *problem);
  asio::io_context io;  // before the store: its connections belong to this context
  std::unique_ptr<ObjectStore> store = open_object_store(*config.storage);
  std::exception_ptr failure;
  asio::co_spawn(io, run(*store, options),
                 [&failure](std::exception_ptr error) { failure = std::move(error); });
  io.run();
  store->close_idle();
  if (failure) std::rethrow_exception(failure);
  return 0;
}

}  // namespace sluice
