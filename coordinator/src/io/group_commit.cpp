// GroupCommitQueue: the queue, the leader's turn and the fail-stop (group_commit.hpp).
#include <xact/io/group_commit.hpp>

#include <algorithm>

namespace xact::io {

void GroupCommitWriter::set(State s) {
  {
    std::lock_guard guard(m_);
    state_ = s;
  }
  // Outside m_: the woken writer does not wake into a held mutex. The writer cannot vanish
  // meanwhile: the leader holds a shared_ptr to it.
  cv_.notify_one();
}

GroupCommitWriter::State GroupCommitWriter::await() {
  std::unique_lock lock(m_);
  cv_.wait(lock, [&] { return state_ != State::kWaiting; });
  return state_;
}

void GroupCommitQueueBase::wait_idle(std::unique_lock<std::mutex>& lock) {
  idle_cv_.wait(lock, [&] { return queue_.empty(); });
}

void GroupCommitQueueBase::fail_stop(std::exception_ptr error) {
  if (!error || failure_) return;
  failure_ = std::move(error);
  // The writers queued now are abandoned by the leader of their turn (the front one is
  // writing, or about to be woken to lead): it sees the failure and writes nothing.
}

void GroupCommitQueueBase::submit(std::unique_lock<std::mutex>& lock, Slot writer) {
  if (failure_) {
    const std::exception_ptr error = failure_;
    lock.unlock();
    std::rethrow_exception(error);
  }
  queue_.push_back(writer);
  const bool leading = queue_.size() == 1;
  lock.unlock();
  if (leading || writer->await() == GroupCommitWriter::State::kLeading) lead(writer);
  // Read without m_: set by this thread as leader, or before the leader's set() (whose m_
  // this thread's await() took since).
  if (writer->error_) std::rethrow_exception(writer->error_);
}

// Runs in the writer at the front of the queue: selects a batch, writes it with mu_ released
// (so more writers queue up meanwhile for the next batch), then publishes it, removes it from
// the queue, wakes its writers and hands the front to the next writer.
void GroupCommitQueueBase::lead(const Slot& self) {
  std::vector<Slot> batch;
  std::exception_ptr error;

  std::unique_lock l(mu_);
  if (failure_) {
    error = failure_;  // fail_stop() while this writer waited: write nothing
  } else {
    try {
      const std::size_t n = std::clamp<std::size_t>(select(queue_), 1, queue_.size());
      batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (!error) {
    l.unlock();
    try {
      write(batch);
    } catch (...) {
      error = std::current_exception();
    }
    l.lock();
    // fail_stop() during the write: a sync that failed elsewhere may have lost what this one
    // would claim durable.
    if (!error && failure_) error = failure_;
  }

  Slot next;
  if (error) {
    if (!failure_) {
      failure_ = failure_error(error);
      if (!failure_) failure_ = error;
    }
    // Nothing after a failed sync can be trusted: everyone queued fails with the batch.
    batch.swap(queue_);
    queue_.clear();
    abandon(batch);
    for (const Slot& w : batch) w->error_ = failure_;
  } else {
    complete(batch);
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(batch.size()));
    if (!queue_.empty()) next = queue_.front();
  }
  if (queue_.empty()) idle_cv_.notify_all();
  l.unlock();

  // Wake outside mu_: woken writers do not collide with this one on it.
  for (const Slot& w : batch) {
    if (w != self) w->set(GroupCommitWriter::State::kDone);
  }
  if (next) next->set(GroupCommitWriter::State::kLeading);
}

}  // namespace xact::io
