#include "storage/local_object_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/crc32.hpp"
#include "storage/storage_metrics.hpp"

namespace sluice {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// One io_context for the whole test binary: the store's pool jobs may release their
// WakeSignals (whose timers belong to the context) just after a run completes, so the context
// must outlive every store. Runs `work` to completion; rethrows what it threw.
asio::io_context& test_context() {
  static asio::io_context* context = new asio::io_context;  // never destroyed
  return *context;
}

template <typename T>
T run(asio::awaitable<T> work) {
  asio::io_context& io = test_context();
  io.restart();
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result.emplace(std::move(value));
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

class LocalObjectStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("sluice-store-test-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "album");
    write("album/a.jpg", std::string(100'000, 'a'));
    write("album/b.jpg", "bee");
    write("album/empty.jpg", "");
    write("docs/readme.txt", "hello");
    write(".sluice/archives/x.json", "{}");
    fs::create_symlink("/etc/hostname", root_ / "album/escape.jpg");
    store_ = make_local_object_store(root_, 2);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }
  void write(const std::string& key, const std::string& bytes) {
    fs::create_directories((root_ / key).parent_path());
    std::ofstream(root_ / key, std::ios::binary) << bytes;
  }
  ObjectInfo head(const std::string& key) {
    auto info = run(store_->head(key));
    EXPECT_TRUE(info.has_value()) << key;
    return info.value_or(ObjectInfo{});
  }

  // Reads `plan` to the end; returns the bytes per step and the CRCs reported.
  struct Read {
    std::vector<std::string> bytes;
    std::vector<std::optional<std::uint32_t>> crcs;
    std::size_t pieces = 0;
  };
  Read read_all(std::vector<ReadStep> plan, ReadAheadBudget budget) {
    const std::size_t steps = plan.size();
    return run([&]() -> asio::awaitable<Read> {
      Read out;
      out.bytes.resize(steps);
      out.crcs.resize(steps);
      auto stream = store_->read(plan, budget, co_await asio::this_coro::executor);
      while (auto piece = co_await stream->next()) {
        out.bytes[piece->step] += piece->bytes;
        if (piece->last) out.crcs[piece->step] = piece->crc32;
        ++out.pieces;
      }
      co_return out;
    }());
  }

  fs::path root_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(LocalObjectStoreTest, HeadGivesSizeAndMtime) {
  ObjectInfo info = head("album/a.jpg");
  EXPECT_EQ(info.size, 100'000u);
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "album/a.jpg").c_str(), &st), 0);
  EXPECT_EQ(info.mtime_ns, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec);
  EXPECT_FALSE(run(store_->head("album/missing.jpg")).has_value());
  EXPECT_FALSE(run(store_->head("album")).has_value());           // a folder is no object
  EXPECT_FALSE(run(store_->head("album/escape.jpg")).has_value());  // leaves the root
  EXPECT_THROW(run(store_->head("../etc/passwd")), StorageError);
  auto many = run(store_->head_many({"album/b.jpg", "nope", "docs/readme.txt"}));
  ASSERT_EQ(many.size(), 3u);
  EXPECT_EQ(many[0]->size, 3u);
  EXPECT_FALSE(many[1].has_value());
  EXPECT_EQ(many[2]->size, 5u);
}

TEST_F(LocalObjectStoreTest, ListsByPrefixSortedWithoutReservedOrSymlinks) {
  auto keys = [&](const std::string& prefix) {
    std::vector<std::string> out;
    for (const ObjectInfo& info : run(store_->list(prefix, 100))) out.push_back(info.key);
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(keys("album/"), (V{"album/a.jpg", "album/b.jpg", "album/empty.jpg"}));
  EXPECT_EQ(keys("album/b"), (V{"album/b.jpg"}));
  EXPECT_EQ(keys(""), (V{"album/a.jpg", "album/b.jpg", "album/empty.jpg", "docs/readme.txt"}));
  EXPECT_EQ(keys("nothing/"), V{});
  EXPECT_THROW(run(store_->list("", 2)), StorageError);
  EXPECT_THROW(run(store_->list("../", 10)), StorageError);
}

TEST_F(LocalObjectStoreTest, PutAndGetSmallObjects) {
  run([&]() -> asio::awaitable<bool> {
    co_await store_->put(".sluice/archives/new.json", "{\"a\":1}");
    co_return true;
  }());
  EXPECT_EQ(run(store_->get(".sluice/archives/new.json", 100)), "{\"a\":1}");
  EXPECT_FALSE(run(store_->get(".sluice/archives/none.json", 100)).has_value());
  EXPECT_THROW(run(store_->get("album/a.jpg", 10)), StorageError);
}

TEST_F(LocalObjectStoreTest, ReadRangeSeesReplacedAndDeletedObjectsLikeAnOpenWould) {
  auto put = [&](std::string bytes) {
    run([&]() -> asio::awaitable<bool> {
      co_await store_->put(".sluice/cubes/c/v1/000000.cube", std::move(bytes));
      co_return true;
    }());
  };
  const std::string key = ".sluice/cubes/c/v1/000000.cube";
  put("0123456789");
  EXPECT_EQ(run(store_->read_range(key, 2, 3)), "234");
  EXPECT_EQ(run(store_->read_range(key, 7, 3)), "789");  // the open file is kept
  put("abcdefghij");  // replaced (a new inode under the key): opened again
  EXPECT_EQ(run(store_->read_range(key, 2, 3)), "cde");
  try {
    run(store_->read_range(key, 8, 3));  // past the end
    ADD_FAILURE() << "a range past the end was read";
  } catch (const StorageError& error) {
    EXPECT_EQ(error.kind(), StorageError::Kind::kChanged);
  }
  EXPECT_TRUE(run(store_->remove(key)));
  try {
    run(store_->read_range(key, 0, 1));
    ADD_FAILURE() << "a deleted object was read";
  } catch (const StorageError& error) {
    EXPECT_EQ(error.kind(), StorageError::Kind::kGone);
  }
}

TEST_F(LocalObjectStoreTest, ReadsAPlanInOrderWithCrcsOfWholeObjects) {
  ObjectInfo a = head("album/a.jpg");
  ObjectInfo b = head("album/b.jpg");
  ObjectInfo empty = head("album/empty.jpg");
  using Delivery = ReadStep::Delivery;
  std::vector<ReadStep> plan{
      {a, 0, 0, Delivery::kNone, true},            // checksum only
      {a, 0, a.size, Delivery::kBytes, true},      // whole, across several 4 KiB buffers
      {b, 0, b.size, Delivery::kOneBuffer, true},  // small, in one buffer
      {empty, 0, 0, Delivery::kBytes, true},
      {a, 10, 20, Delivery::kBytes, false},        // a range: no CRC
      {b, 0, b.size, Delivery::kBytes, false},     // whole, but no CRC asked for
  };
  Read read = read_all(plan, ReadAheadBudget{2, 4096});
  const std::string all_a(100'000, 'a');
  EXPECT_EQ(read.bytes[0], "");
  EXPECT_EQ(read.crcs[0], crc32_update(0, all_a));
  EXPECT_EQ(read.bytes[1], all_a);
  EXPECT_EQ(read.crcs[1], crc32_update(0, all_a));
  EXPECT_EQ(read.bytes[2], "bee");
  EXPECT_EQ(read.crcs[2], crc32_update(0, "bee"));
  EXPECT_EQ(read.bytes[3], "");
  EXPECT_EQ(read.crcs[3], 0u);
  EXPECT_EQ(read.bytes[4], std::string(20, 'a'));
  EXPECT_EQ(read.crcs[4], std::nullopt);
  EXPECT_EQ(read.bytes[5], "bee");
  EXPECT_EQ(read.crcs[5], std::nullopt);
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
}

TEST_F(LocalObjectStoreTest, ByReferenceStepsNameTheOpenFile) {
  ObjectInfo a = head("album/a.jpg");
  const ReadStep step{a, 100, 90'000, ReadStep::Delivery::kFileRange};
  const std::vector<ReadStep> plan{step};
  std::string bytes;
  std::size_t pieces = 0;
  run([&]() -> asio::awaitable<bool> {
    auto executor = co_await asio::this_coro::executor;
    auto stream = store_->read(plan, ReadAheadBudget{2, 4096}, executor);
    while (auto piece = co_await stream->next()) {
      EXPECT_GE(piece->file, 0);
      EXPECT_TRUE(piece->bytes.empty());
      std::string part(piece->file_length, '\0');
      EXPECT_EQ(::pread(piece->file, part.data(), part.size(), static_cast<off_t>(piece->file_offset)),
                static_cast<ssize_t>(part.size()));
      bytes += part;
      ++pieces;
    }
    co_return true;
  }());
  EXPECT_EQ(bytes, std::string(90'000, 'a'));
  EXPECT_EQ(pieces, 2u);  // 16 buffers' worth per piece: 65,536 + 24,464
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
}

TEST_F(LocalObjectStoreTest, ChangedOrVanishedObjectsFailTheRead) {
  ObjectInfo b = head("album/b.jpg");
  write("album/b.jpg", "bees!");
  EXPECT_THROW(read_all({{b, 0, b.size}}, {}), StorageError);
  ObjectInfo c = head("docs/readme.txt");
  fs::remove(root_ / "docs/readme.txt");
  try {
    read_all({{c, 0, c.size}}, {});
    FAIL() << "no error";
  } catch (const StorageError& error) {
    EXPECT_EQ(error.kind(), StorageError::Kind::kGone);
  }
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
}

TEST_F(LocalObjectStoreTest, ConsumerThatLeavesClosesFilesAndStopsReading) {
  ObjectInfo a = head("album/a.jpg");
  std::vector<ReadStep> plan(50, ReadStep{a, 0, a.size});
  run([&]() -> asio::awaitable<bool> {
    auto stream = store_->read(plan, ReadAheadBudget{2, 4096}, co_await asio::this_coro::executor);
    auto piece = co_await stream->next();
    EXPECT_TRUE(piece.has_value());
    co_return true;  // the stream is destroyed mid-object
  }());
  for (int i = 0; i < 200 && (storage_metrics().open_files.value() != 0 ||
                              storage_metrics().busy_reads.value() != 0);
       ++i) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(storage_metrics().open_files.value(), 0);
  EXPECT_EQ(storage_metrics().busy_reads.value(), 0);
}


// The temporary files of writers in flight; none may be visible as objects.
std::size_t temporary_files(const fs::path& root) {
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator(root / ".sluice/tmp")) count += entry.is_regular_file();
  return count;
}

TEST_F(LocalObjectStoreTest, AWrittenObjectAppearsWholeOnlyAtCommit) {
  auto writer = run(store_->write("results/2026/orders.csv"));
  run([&]() -> asio::awaitable<bool> {
    co_await writer->write("id,name\n");
    co_await writer->write("1,a\n");
    co_return true;
  }());
  EXPECT_EQ(temporary_files(root_), 1u);
  EXPECT_FALSE(run(store_->head("results/2026/orders.csv")).has_value());  // not yet
  EXPECT_TRUE(run(store_->list("results/", 10)).empty());
  ObjectInfo stored = run(writer->commit());
  EXPECT_EQ(stored.key, "results/2026/orders.csv");
  EXPECT_EQ(stored.size, 12u);
  EXPECT_EQ(writer->bytes_written(), 12u);
  EXPECT_EQ(run(store_->get("results/2026/orders.csv", 100)), "id,name\n1,a\n");
  ObjectInfo listed = run(store_->head("results/2026/orders.csv")).value();
  EXPECT_EQ(listed.mtime_ns, stored.mtime_ns);
  EXPECT_EQ(temporary_files(root_), 0u);
  // Committing replaces an existing object in one step.
  auto again = run(store_->write("album/b.jpg"));
  run([&]() -> asio::awaitable<bool> {
    co_await again->write("wasp");
    co_await again->finish();  // a pipeline's end of body is commit()
    co_return true;
  }());
  EXPECT_EQ(run(store_->get("album/b.jpg", 100)), "wasp");
}

TEST_F(LocalObjectStoreTest, AbandonedOrDroppedWritersLeaveNothing) {
  auto abandoned = run(store_->write("results/a.csv"));
  run([&]() -> asio::awaitable<bool> {
    co_await abandoned->write("half");
    co_await abandoned->abandon();
    co_await abandoned->abandon();  // idempotent
    co_return true;
  }());
  {
    auto dropped = run(store_->write("results/b.csv"));
    run([&]() -> asio::awaitable<bool> {
      co_await dropped->write("half");
      co_return true;
    }());
  }  // destroyed without commit
  EXPECT_FALSE(run(store_->head("results/a.csv")).has_value());
  EXPECT_FALSE(run(store_->head("results/b.csv")).has_value());
  EXPECT_EQ(temporary_files(root_), 0u);
  EXPECT_THROW(run(abandoned->commit()), StorageError);
}

TEST_F(LocalObjectStoreTest, WritesNeverFollowALinkOutOfTheRoot) {
  const fs::path outside = root_.string() + "-outside";
  fs::create_directories(outside);
  fs::create_directory_symlink(outside, root_ / "link");
  auto writer = run(store_->write("link/evil.txt"));
  run([&]() -> asio::awaitable<bool> {
    co_await writer->write("x");
    co_return true;
  }());
  EXPECT_THROW(run(writer->commit()), StorageError);
  EXPECT_FALSE(fs::exists(outside / "evil.txt"));
  EXPECT_EQ(temporary_files(root_), 0u);
  EXPECT_THROW(run(store_->write("../escape.txt")), StorageError);
  fs::remove_all(outside);
}

TEST_F(LocalObjectStoreTest, RemoveDeletesFilesOnly) {
  EXPECT_TRUE(run(store_->remove("album/b.jpg")));
  EXPECT_FALSE(run(store_->head("album/b.jpg")).has_value());
  EXPECT_FALSE(run(store_->remove("album/b.jpg")));      // gone already
  EXPECT_FALSE(run(store_->remove("album")));            // a folder
  EXPECT_FALSE(run(store_->remove("album/escape.jpg")));  // a link
  EXPECT_TRUE(fs::is_symlink(root_ / "album/escape.jpg"));
  EXPECT_FALSE(run(store_->remove("nowhere/x")));
  EXPECT_TRUE(fs::exists("/etc/hostname"));
}

TEST_F(LocalObjectStoreTest, ListingPageByPage) {
  for (int i = 0; i < 7; ++i) write("pages/" + std::to_string(i) + ".txt", "p");
  std::vector<std::string> keys;
  std::string after;
  int pages = 0;
  for (;;) {
    ObjectPage page = run(store_->list_page("pages/", after, 3));
    ++pages;
    for (const ObjectInfo& object : page.objects) keys.push_back(object.key);
    if (!page.next_after) break;
    EXPECT_EQ(page.objects.size(), 3u);
    after = *page.next_after;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_EQ(keys.front(), "pages/0.txt");
  EXPECT_EQ(keys.back(), "pages/6.txt");
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  // The whole store, reserved keys and links left out, in one page.
  ObjectPage all = run(store_->list_page("", "", 1000));
  EXPECT_FALSE(all.next_after);
  for (const ObjectInfo& object : all.objects) {
    EXPECT_FALSE(object.key.starts_with(".sluice")) << object.key;
    EXPECT_NE(object.key, "album/escape.jpg");
  }
}


TEST_F(LocalObjectStoreTest, ListingsNeverFollowALinkToAFolder) {
  const fs::path outside = root_.string() + "-outside";
  fs::create_directories(outside / "deep");
  std::ofstream(outside / "secret.txt") << "s";
  std::ofstream(outside / "deep/more.txt") << "m";
  fs::create_directory_symlink(outside, root_ / "etc_link");
  fs::create_directory_symlink("/", root_ / "album/root_link");
  fs::create_directory_symlink(root_ / "docs", root_ / "alias");  // even one that stays inside
  EXPECT_TRUE(run(store_->list("etc_link/", 1000)).empty());
  EXPECT_TRUE(run(store_->list("etc_link/deep/", 1000)).empty());
  EXPECT_TRUE(run(store_->list("album/root_link/", 1000)).empty());
  EXPECT_TRUE(run(store_->list("alias/", 1000)).empty());
  std::vector<std::string> keys;
  for (const ObjectInfo& object : run(store_->list("", 100'000))) keys.push_back(object.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"album/a.jpg", "album/b.jpg", "album/empty.jpg",
                                            "docs/readme.txt"}));
  EXPECT_FALSE(run(store_->head("etc_link/secret.txt")).has_value());
  fs::remove_all(outside);
}


TEST_F(LocalObjectStoreTest, AFileRangeSentAfterTheObjectChangedInPlaceFailsTheCheck) {
  ObjectInfo a = head("album/a.jpg");
  const std::vector<ReadStep> plan{ReadStep{a, 0, a.size, ReadStep::Delivery::kFileRange}};
  for (const bool overwrite : {false, true}) {
    run([&]() -> asio::awaitable<bool> {
      auto stream = store_->read(plan, ReadAheadBudget{2, 4096}, co_await asio::this_coro::executor);
      for (;;) {
        std::optional<ReadPiece> piece = co_await stream->next();
        EXPECT_TRUE(piece.has_value());
        if (!piece || !piece->last) continue;
        if (overwrite) {
          // The same size, other bytes, written in place (the descriptor sees it), later mtime.
          std::this_thread::sleep_for(10ms);
          std::fstream file(root_ / "album/a.jpg", std::ios::in | std::ios::out | std::ios::binary);
          file.seekp(5000);
          file.write("XYZ", 3);
          file.close();
          EXPECT_THROW(stream->check_sent(*piece), StorageError);
        } else {
          EXPECT_NO_THROW(stream->check_sent(*piece));
        }
        break;
      }
      co_return true;
    }());
  }
}

}  // namespace
}  // namespace sluice
