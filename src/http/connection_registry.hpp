#pragma once

// Internal to src/http: the open connections and what each is doing, so that the server stays
// under max_connections by closing the least useful connection instead of running out of
// descriptors (then nobody, not even /healthz, gets in).

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace sluice {

class ConnectionRegistry {
 public:
  enum class State {
    kIdle,     // keep-alive: waiting for the next request (or for the first one)
    kReading,  // a request started and is not read yet
    kBusy,     // a request is answered (a download runs): never shed
  };
  class Entry;
  using Handle = std::shared_ptr<Entry>;

  // A new connection, idle, served on `executor`. Called by the acceptor.
  Handle add(boost::asio::any_io_executor executor);
  // On the connection's executor: `close` is what shedding it does there (cancel and close the
  // socket); if it was shed before this, `close` runs at once.
  void attach(const Handle& entry, std::function<void()> close);
  void set(const Handle& entry, State state);
  // On the connection's executor, when it ends.
  void remove(const Handle& entry);

  // Connections counted against the limit (those being shed no longer count).
  std::size_t size() const;

  enum class Shed { kIdle, kSlow, kNone };
  // Makes room for one more: closes the connection idle the longest, else the one that has been
  // reading its request the longest (a slow or stalled client); a connection answering a
  // request is never closed (one that began to meanwhile is kept and listed again). The close
  // runs on the victim's executor.
  Shed shed_one();

 private:
  using List = std::list<Handle>;
  List& list_of(State state);

  mutable std::mutex mutex_;
  List idle_;     // oldest first: entries are appended when they enter a state
  List reading_;
  List busy_;
};

class ConnectionRegistry::Entry {
 public:
  explicit Entry(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

 private:
  friend class ConnectionRegistry;
  boost::asio::any_io_executor executor_;
  // Only on executor_:
  std::function<void()> close_;
  bool shed_ = false;     // a close was posted
  bool removed_ = false;  // the connection ended
  State current_ = State::kIdle;  // what it does now (the lists may lag behind)
  // Under the registry's mutex:
  State state_ = State::kIdle;
  bool listed_ = true;  // on one of the lists (false once shed or removed)
  std::list<Handle>::iterator position_;
};

}  // namespace sluice
