#include "http/connection_registry.hpp"

#include <boost/asio/post.hpp>

namespace sluice {

ConnectionRegistry::List& ConnectionRegistry::list_of(State state) {
  switch (state) {
    case State::kIdle: return idle_;
    case State::kReading: return reading_;
    case State::kBusy: break;
  }
  return busy_;
}

ConnectionRegistry::Handle ConnectionRegistry::add(boost::asio::any_io_executor executor) {
  auto entry = std::make_shared<Entry>(std::move(executor));
  const std::lock_guard lock(mutex_);
  entry->position_ = idle_.insert(idle_.end(), entry);
  return entry;
}

void ConnectionRegistry::attach(const Handle& entry, std::function<void()> close) {
  entry->close_ = std::move(close);
  if (entry->shed_) entry->close_();
}

void ConnectionRegistry::set(const Handle& entry, State state) {
  entry->current_ = state;
  const std::lock_guard lock(mutex_);
  if (!entry->listed_ || entry->state_ == state) return;
  List& to = list_of(state);
  // Moves the node to the end of its new list: each list stays ordered by when its entries
  // entered that state.
  to.splice(to.end(), list_of(entry->state_), entry->position_);
  entry->state_ = state;
}

void ConnectionRegistry::remove(const Handle& entry) {
  entry->removed_ = true;
  const std::lock_guard lock(mutex_);
  if (entry->listed_) {
    list_of(entry->state_).erase(entry->position_);
    entry->listed_ = false;
  }
}

std::size_t ConnectionRegistry::size() const {
  const std::lock_guard lock(mutex_);
  return idle_.size() + reading_.size() + busy_.size();
}

ConnectionRegistry::Shed ConnectionRegistry::shed_one() {
  Handle victim;
  Shed shed = Shed::kNone;
  {
    const std::lock_guard lock(mutex_);
    List* from = !idle_.empty() ? &idle_ : !reading_.empty() ? &reading_ : nullptr;
    if (from == nullptr) return Shed::kNone;
    shed = from == &idle_ ? Shed::kIdle : Shed::kSlow;
    victim = std::move(from->front());
    from->pop_front();
    victim->listed_ = false;
  }
  boost::asio::post(victim->executor_, [this, victim] {
    if (victim->removed_ || victim->shed_) return;
    if (victim->current_ == State::kBusy) {  // a request came in meanwhile: keep it
      const std::lock_guard lock(mutex_);
      victim->state_ = State::kBusy;
      victim->position_ = busy_.insert(busy_.end(), victim);
      victim->listed_ = true;
      return;
    }
    victim->shed_ = true;
    if (victim->close_) victim->close_();
  });
  return shed;
}

}  // namespace sluice
