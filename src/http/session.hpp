#pragma once

// Internal to src/http: the connection coroutine, shared by server.cpp and session.cpp.

#include <atomic>
#include <memory>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/config.hpp"
#include "http/connection_registry.hpp"
#include "http/request_path.hpp"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

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

// The same over TLS: the handshake first (under read_timeout; a failure is logged in one line),
// then requests as above; a complete last response ends with close_notify, an aborted one
// without (the TCP connection is cut: a cut body never looks whole). `tls` is kept alive for
// as long as the connection lasts (a reload replaces the server's, not this one's).
boost::asio::awaitable<void> run_tls_session(boost::beast::tcp_stream stream,
                                             std::shared_ptr<boost::asio::ssl::context> tls,
                                             const SessionContext& context,
                                             ConnectionRegistry::Handle entry);

}  // namespace sluice
