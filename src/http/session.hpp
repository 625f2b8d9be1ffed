#pragma once

// Internal to src/http: the connection coroutine, shared by server.cpp and session.cpp.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/config.hpp"
#include "http/connection_registry.hpp"
#include "http/request_path.hpp"

namespace sluice {

struct SessionContext {
  const ServerConfig& config;
  const RequestPath& path;
  const std::atomic<bool>& stopping;
  ConnectionRegistry& connections;
};

// Reads requests and answers them until the peer closes, keep-alive ends, a stream is aborted
// or the server stops; then closes the connection. The coroutine owns the stream (its frame
// holds the connection). Expected outcomes (peer gone, timeouts) return normally.
// Cancellation (a TaskGroup member): `total` ends a connection that waits for its next request;
// `terminal` ends whatever it does. `entry` (registered by the acceptor) follows what the
// connection does, and is removed when it ends; shedding it closes the socket.
boost::asio::awaitable<void> run_session(boost::beast::tcp_stream stream,
                                         const SessionContext& context,
                                         ConnectionRegistry::Handle entry);

}  // namespace sluice
