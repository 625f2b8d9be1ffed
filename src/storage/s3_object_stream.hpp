#pragma once

#include <memory>
#include <vector>

#include "s3/s3_client.hpp"
#include "storage/object_store.hpp"

namespace sluice {

// The S3 store's ObjectStream: a coroutine on the consumer's executor reads each step with a
// ranged GET (If-Match the planned ETag; the next step's GET is sent while the current body
// streams, so its first-byte latency overlaps) into the budget's recycled buffers, CRC-32 of whole
// objects on the way, and waits when they are full, so nothing is read from S3 faster than the
// consumer takes it beyond the budget (TCP holds the rest). A body cut short is asked for again
// from where it broke (If-Match); only the client's attempts of breaks in a row, with no byte in
// between, fail the step. kFileRange steps are delivered
// as bytes. cancel() or destruction stops the reader at its current wait, socket reads included.
std::unique_ptr<ObjectStream> make_s3_object_stream(std::shared_ptr<S3Client> client,
                                                    std::vector<ReadStep> plan,
                                                    ReadAheadBudget budget,
                                                    const boost::asio::any_io_executor& executor);

}  // namespace sluice
