#include "core/task_group.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {

namespace asio = boost::asio;

TaskGroup::TaskGroup(asio::any_io_executor executor)
    : executor_(std::move(executor)), wake_(executor_) {}

void TaskGroup::spawn(const asio::any_io_executor& executor, asio::awaitable<void> task,
                      ErrorHandler on_error) {
  Members::iterator member;
  {
    std::lock_guard lock(mutex_);
    member = members_.insert(members_.end(), std::make_shared<Member>(executor));
  }
  // The handler holds the member: its signal outlives the coroutine whose slot refers to it.
  auto done = [this, member, keep = *member, on_error = std::move(on_error)](const std::exception_ptr& error) {
    if (error && on_error) on_error(error);
    leave(member);
  };
  asio::co_spawn(executor, std::move(task),
                 asio::bind_cancellation_slot((*member)->signal.slot(), std::move(done)));
}

void TaskGroup::leave(Members::iterator member) {
  {
    std::lock_guard lock(mutex_);
    members_.erase(member);
  }
  // On the group's executor, after wait_for() checked size() and started waiting (or before it
  // checks): a wake-up is never lost.
  asio::post(executor_, [this] { wake_.cancel(); });
}

void TaskGroup::emit(asio::cancellation_type type) {
  std::lock_guard lock(mutex_);
  for (const auto& member : members_) {
    asio::post(member->executor, [member, type] { member->signal.emit(type); });
  }
}

std::size_t TaskGroup::size() const {
  std::lock_guard lock(mutex_);
  return members_.size();
}

asio::awaitable<bool> TaskGroup::wait_for(std::chrono::steady_clock::duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (size() == 0) co_return true;
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    wake_.expires_at(deadline);
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace sluice
