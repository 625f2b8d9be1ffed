#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>

#include "core/byte_sink.hpp"
#include "features/archives/archive_layout.hpp"
#include "features/archives/archive_manifest.hpp"
#include "http/byte_range.hpp"
#include "features/archives/crc_cache.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The per-download byte budget: read-ahead buffers plus the output buffer that gathers headers
// and small objects into large writes.
struct ArchiveBudget {
  ReadAheadBudget read_ahead;
  std::size_t flush_bytes = 32 * 1024;
};

// Splits the server's per-stream budget (`[server] stream_buffer_bytes`): two read-ahead
// buffers of 1/4 each and an output buffer of 1/8 — 5/8 in all, so 1,000 slow clients of the
// default 256 KiB budget hold ~160 MiB.
ArchiveBudget archive_budget_for(std::size_t stream_buffer_bytes);

// Writes bytes [window.start, window.end) of the archive to `sink`, then calls
// sink.finish(). For a deflated archive (no layout) the window must be the whole archive
// (pass {0, UINT64_MAX}).
// The objects are read by one ObjectStream that runs ahead of the sink by at most the budget:
// the next object is opened and read while the current one is sent, nothing is read faster
// than the sink takes it, and a stored entry whose CRC-32 is neither cached nor computable
// from the bytes already buffered gets a checksum pass just before its data (the pass runs
// ahead too, while earlier data is still being sent). CRCs learnt go into `crcs`.
// Throws what the store or the sink throw, and ZipError when an object's bytes contradict its
// header (it changed while being read); the caller then aborts the transfer.
// Counts archive_bytes_sent_total.
boost::asio::awaitable<std::uint64_t> stream_archive(const ArchiveManifest& manifest,
                                                     const std::optional<ArchiveLayout>& layout,
                                                     ByteWindow window, ObjectStore& store,
                                                     CrcCache& crcs, ByteSink& sink,
                                                     ArchiveBudget budget);

}  // namespace sluice
