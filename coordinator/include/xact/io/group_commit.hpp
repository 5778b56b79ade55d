// GroupCommitQueue: many writers, one write and one sync for all of them (group commit), as
// in LevelDB's DBImpl::Write. The decision log, the file storage and any other log that must
// make records durable before a caller goes on (a session store's compensation log) use it.
//
// A writer puts its record in the queue and waits. The writer at the front is the leader: it
// takes as many queued writers as its Handler selects (a batch), writes and syncs them with
// the owner's mutex released - more writers queue up meanwhile for the next batch - then
// publishes the batch, wakes each of its writers on a mutex and condition variable of the
// writer's own (a woken writer does not queue for the owner's mutex behind everyone else) and
// hands the front to the next writer, which leads the next batch.
//
// Fail-stop: when a batch's write or sync fails, nobody can tell which of its records reached
// the disk, and a later sync that succeeds proves nothing about them. So the queue stops for
// good: the failed batch and every writer queued behind it get the error, every later submit
// throws it at once, and nothing is acknowledged any more. The owner reopens (restarts) to find
// out what is durable.
//
// Locking: the queue has no mutex of its own. It is guarded by the owner's mutex (the one that
// also guards the owner's state, so queueing a record and reserving its place, e.g. its file
// offset, is one step), given to the constructor; the functions that say "mu held" need it.
// The Handler's select, complete, abandon and failure run with it held, write with it released.
// Only one batch is in flight at a time: state that only write() touches (the open file, the
// write offset) needs no lock.
//
// Writers are held by std::shared_ptr: the leader may still be waking one after that writer's
// own thread could have returned, so neither may own it alone.
//
// Thread-safety: as described; every function but the constructor needs the owner's mutex.
#pragma once

#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace xact::io {

/// One caller's place in a GroupCommitQueue. Derive the record type from it (the queue only
/// uses this part: the wake-up and the outcome).
class GroupCommitWriter {
 public:
  GroupCommitWriter() = default;
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

 protected:
  ~GroupCommitWriter() = default;

 private:
  friend class GroupCommitQueueBase;
  enum class State { kWaiting, kLeading, kDone };
  // kWaiting -> kLeading (this writer now leads a batch) or kDone (another writer wrote it).
  void set(State s);
  State await();

  // Not std::atomic::wait: libstdc++ spins on sched_yield before sleeping, which with dozens of
  // waiters on few cores burnt a third of the CPU in the decision-log benchmark.
  std::mutex m_;
  std::condition_variable cv_;
  State state_ = State::kWaiting;  // guarded by m_
  std::exception_ptr error_;       // set by the leader before it publishes kDone
};

/// A run of queued writers, front first, as the Handler sees them: valid while the call that
/// received it runs.
template <std::derived_from<GroupCommitWriter> W>
class GroupCommitBatch {
 public:
  using Slots = std::span<const std::shared_ptr<GroupCommitWriter>>;

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = W;
    using difference_type = std::ptrdiff_t;
    using pointer = W*;
    using reference = W&;
    iterator() = default;
    explicit iterator(Slots::iterator it) : it_(it) {}
    W& operator*() const { return static_cast<W&>(**it_); }
    W* operator->() const { return &**this; }
    iterator& operator++() {
      ++it_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++it_;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    Slots::iterator it_{};
  };

  explicit GroupCommitBatch(Slots slots) : slots_(slots) {}
  std::size_t size() const { return slots_.size(); }
  bool empty() const { return slots_.empty(); }
  W& operator[](std::size_t i) const { return static_cast<W&>(*slots_[i]); }
  W& front() const { return (*this)[0]; }
  iterator begin() const { return iterator(slots_.begin()); }
  iterator end() const { return iterator(slots_.end()); }
  /// Whether `w` is one of them (by identity).
  bool contains(const W& w) const {
    for (const auto& s : slots_) {
      if (s.get() == &w) return true;
    }
    return false;
  }

 private:
  Slots slots_;
};

/// The type-independent part of GroupCommitQueue<W> (group_commit.cpp): use that.
class GroupCommitQueueBase {
 public:
  GroupCommitQueueBase(const GroupCommitQueueBase&) = delete;
  GroupCommitQueueBase& operator=(const GroupCommitQueueBase&) = delete;

  /// mu held: writers queued or being written.
  std::size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  /// mu held: waits (releasing `lock` meanwhile) until no writer is queued or being written.
  /// To pause writes (for a maintenance step that needs the file to itself), make submitters
  /// wait on a condition of the owner's before they submit, then call this.
  void wait_idle(std::unique_lock<std::mutex>& lock);

  /// mu held: whether the queue stopped (fail-stop), and the error every writer gets since.
  bool failed() const { return failure_ != nullptr; }
  std::exception_ptr failure() const { return failure_; }
  /// mu held: stops the queue as a failed write would, for a failure the owner found outside
  /// it (a sync of the same file in a maintenance step): every later submit throws `error`,
  /// and writers already queued are abandoned with it rather than written. A batch being
  /// written meanwhile is not acknowledged either. The first failure stays; a null `error`
  /// is ignored.
  void fail_stop(std::exception_ptr error);

 protected:
  using Slot = std::shared_ptr<GroupCommitWriter>;
  using Slots = std::span<const Slot>;

  explicit GroupCommitQueueBase(std::mutex& mu) : mu_(mu) {}
  ~GroupCommitQueueBase() = default;

  void submit(std::unique_lock<std::mutex>& lock, Slot writer);

  virtual std::size_t select(Slots queued) = 0;
  virtual void write(Slots batch) = 0;
  virtual void complete(Slots batch) = 0;
  virtual void abandon(Slots writers) = 0;
  virtual std::exception_ptr failure_error(std::exception_ptr cause) = 0;

 private:
  void lead(const Slot& self);

  std::mutex& mu_;
  std::vector<Slot> queue_;          // guarded by mu_; the front one leads
  std::exception_ptr failure_;       // guarded by mu_; set once
  std::condition_variable idle_cv_;  // with mu_: the queue became empty
};

/// The queue of writers of type W (derived from GroupCommitWriter), and what its leader does
/// with a batch (the Handler).
template <std::derived_from<GroupCommitWriter> W>
class GroupCommitQueue final : public GroupCommitQueueBase {
 public:
  using Batch = GroupCommitBatch<W>;

  /// What a leader does. Implemented by the queue's owner; called in whichever writer's
  /// thread leads, one batch at a time.
  class Handler {
   public:
    using Batch = GroupCommitBatch<W>;
    /// mu held. How many writers from the front of `queued` (never empty) form the next batch:
    /// at least 1 (a larger figure is cut to the queue's size). It may also prepare what the
    /// write needs (state only the leader touches). Throwing fails the queue like a write.
    virtual std::size_t select(Batch queued) = 0;
    /// mu released. Writes and syncs the batch; throws on failure (the queue then stops). Must
    /// not touch state that others read under mu: complete() is where the batch takes effect.
    virtual void write(Batch batch) = 0;
    /// mu held. The batch is durable: make its effect visible (index, counters). Must not
    /// throw. Its writers are woken after it returns, each returning from submit().
    virtual void complete(Batch batch) = 0;
    /// mu held, once the queue has stopped. `writers` will not be written (the failed batch
    /// and those queued behind it, or those queued when fail_stop was called): undo what
    /// queueing them did (locks, reservations). Each then throws the queue's error. Must not
    /// throw.
    virtual void abandon(Batch writers) = 0;
    /// mu held, at the first failure of a write (or select): the error the batch, every writer
    /// queued and every later submit throw, built from the I/O error `cause` (the owner's
    /// message: what stopped and what to do). Must not throw.
    virtual std::exception_ptr failure_error(std::exception_ptr cause) = 0;

   protected:
    ~Handler() = default;
  };

  GroupCommitQueue(std::mutex& mu, Handler& handler) : GroupCommitQueueBase(mu), h_(handler) {}

  /// mu held by `lock` (released when this returns or throws). Queues `writer` and returns once
  /// it is durable (written by whichever writer led its batch, perhaps this one). Throws the
  /// queue's error (see Handler::failure_error) when the queue failed: before `writer` was
  /// queued (then it never was, and abandon() does not see it), or with or before its batch.
  void submit(std::unique_lock<std::mutex>& lock, std::shared_ptr<W> writer) {
    GroupCommitQueueBase::submit(lock, std::move(writer));
  }

 private:
  std::size_t select(Slots queued) override { return h_.select(Batch(queued)); }
  void write(Slots batch) override { h_.write(Batch(batch)); }
  void complete(Slots batch) override { h_.complete(Batch(batch)); }
  void abandon(Slots writers) override { h_.abandon(Batch(writers)); }
  std::exception_ptr failure_error(std::exception_ptr cause) override {
    return h_.failure_error(std::move(cause));
  }

  Handler& h_;
};

}  // namespace xact::io
