#pragma once

// Internal to src/http: the connection coroutine, shared by server.cpp and session.cpp.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/config.hpp"
#include "http/router.hpp"

namespace sluice {

// The server's view of one connection, for shutdown. `stream` and `busy` are touched only on
// the connection's strand (`executor`).
struct SessionHandle {
  boost::asio::any_io_executor executor;
  boost::beast::tcp_stream* stream = nullptr;
  bool busy = false;  // a request is being answered
};

struct SessionContext {
  const ServerConfig& config;
  const Router& router;
  const std::atomic<bool>& stopping;
};

// Reads requests and answers them until the peer closes, keep-alive ends, a stream is aborted
// or the server stops. Expected outcomes (peer gone, timeouts) return normally.
boost::asio::awaitable<void> run_session(boost::beast::tcp_stream& stream, SessionHandle& handle,
                                         const SessionContext& context);

}  // namespace sluice
