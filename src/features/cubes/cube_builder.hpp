#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "sources/source.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// A build that cannot go on: the message names the cube and what is wrong (a column the query
// lacks, a value outside a declared dictionary, two rows for one cell, a metric that does not
// parse), and nothing was published.
class CubeBuildError : public std::runtime_error {
 public:
  explicit CubeBuildError(const std::string& message, bool retryable = false)
      : std::runtime_error(message), retryable_(retryable) {}
  // The database or the store was unavailable (worth trying again), not the data or the query.
  bool retryable() const { return retryable_; }

 private:
  bool retryable_;
};

struct CubeBuildStats {
  std::string version;
  std::uint64_t rows = 0;           // the query's rows
  std::uint64_t cells = 0;          // records with data
  std::uint64_t files = 0;
  std::uint64_t files_written = 0;  // the others are unchanged files of the previous version
  std::uint64_t bytes_written = 0;
  std::uint64_t bytes_stored = 0;   // every file of the version, reused ones included
  std::uint32_t record_size = 0;
  bool incremental = false;         // only changed_query's path combinations were read
  bool unchanged = false;           // changed_query named none: nothing published
  double query_seconds = 0;         // running the query and taking its rows in
  double write_seconds = 0;         // laying out and storing the files, publishing
  std::vector<std::string> deleted_versions;
};

// Builds a new version of `cube`: runs its query on `source`, lays out one file per combination
// of the path dimensions' values, stores them (a file whose bytes equal the current version's
// file for the same path is not written again: the new manifest refers to the old object),
// writes the version's manifest and then switches the cube's pointer to it in one put, so a
// reader sees the old version or the new one, never a mix. Versions replaced more than
// cube.keep_versions ago are deleted afterwards (objects still referred to are kept). A query
// that returns no rows publishes nothing. Throws CubeBuildError, SourceError or StorageError;
// the objects this build wrote are deleted then.
enum class CubeBuildMode : std::uint8_t { kIncremental, kFull };
//
// kIncremental with a changed_query and a current version: only the path combinations that
// changed_query returns are read (the cube's query limited to them) and their files written;
// the others are kept as they are, as are the layout and dictionaries. When the changed rows do
// not fit that layout (a value outside the dictionaries, a value wider than its field, a fuller
// record), or more than 30,000 parameters would be needed, the build runs in full instead.
boost::asio::awaitable<CubeBuildStats> build_cube(const CubeConfig& cube, Source& source,
                                                  ObjectStore& store,
                                                  CubeBuildMode mode = CubeBuildMode::kIncremental);

}  // namespace sluice
