#include "storage/object_store.hpp"

namespace sluice {

boost::asio::awaitable<void> ObjectWriter::finish() { co_await commit(); }

}  // namespace sluice
