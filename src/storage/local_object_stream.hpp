#pragma once

#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <vector>

#include "storage/object_store.hpp"

namespace sluice {

// The local store's ObjectStream: a job on the store's blocking pool reads the plan in order
// into the budget's recycled buffers (pread; CRC-32 of whole objects on the way) and wakes the
// consumer. A job that finds no free buffer returns its thread to the pool and is posted again
// when the consumer frees one, so a slow client parks no thread. Small objects share a buffer,
// so a plan of many small files costs one wake-up per buffer, not per file.
// The state is owned jointly by the consumer and the job: a consumer that leaves never frees
// what a pool thread still uses, and the job closes its file as soon as it sees the cancel.
std::unique_ptr<ObjectStream> make_local_object_stream(int root_fd, std::vector<ReadStep> plan,
                                                       ReadAheadBudget budget,
                                                       boost::asio::thread_pool& pool,
                                                       const boost::asio::any_io_executor& executor);

}  // namespace sluice
