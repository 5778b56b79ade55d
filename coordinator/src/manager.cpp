#include <xact/manager.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>

namespace xact {

namespace {

bool is_open(const std::shared_ptr<Transaction>& t) {
  return t && t->status() != TransactionStatus::committed &&
         t->status() != TransactionStatus::aborted;
}

// Synchronizer::new_transaction, whose exception is logged and ignored.
void tell_new_transaction(Synchronizer& s, Transaction& txn) noexcept {
  try {
    s.new_transaction(txn);
  } catch (...) {
    log(LogLevel::error,
        "synchronizer new_transaction failed: " + error_message(std::current_exception()));
  }
}

}  // namespace

// ---- BasicTransactionManager -------------------------------------------------------------

BasicTransactionManager::BasicTransactionManager(bool explicit_mode, ManagerOptions options)
    : explicit_(explicit_mode), options_(std::move(options)) {}

BasicTransactionManager::~BasicTransactionManager() {
  abort();
  // Whoever registered a synchronizer may outlive this manager (an object-store connection
  // whose handle is closed later): tell them, so they never call a destroyed manager.
  if (synchronizers_) {
    for (const auto& weak : *synchronizers_) {
      if (auto s = weak.lock()) s->manager_destroyed();
    }
  }
}

Transaction& BasicTransactionManager::begin() {
  if (current_ && current_->phase_ != Transaction::Phase::idle) {
    // From a hook or synchronizer of the current transaction: a new one would replace it
    // while its begin(), commit() or abort() is still running.
    throw UsageError("begin() called while the current " + current_->describe() +
                     " is inside its begin(), commit() or abort() (from a hook, a synchronizer "
                     "or a resource manager); begin the next transaction after that call "
                     "returns, or use a separate ExplicitTransactionManager for independent "
                     "work");
  }
  if (is_open(current_)) {
    if (explicit_) {
      throw UsageError("begin(): a transaction is already open (status " +
                       std::string(to_string(current_->status())) + "); commit or abort it first");
    }
    current_->abort();
  }
  current_ = std::shared_ptr<Transaction>(
      new Transaction(synchronizers_, options_.decision_log, options_.timeout));
  current_->allow_unlogged_decisions_ = options_.allow_unlogged_decisions;
  if (synchronizers_) {
    auto txn = current_;  // kept even if a synchronizer misbehaves
    txn->phase_ = Transaction::Phase::beginning;
    for (const auto& weak : *synchronizers_) {
      if (auto s = weak.lock()) tell_new_transaction(*s, *txn);
    }
    txn->phase_ = Transaction::Phase::idle;
  }
  return *current_;
}

Transaction* BasicTransactionManager::current() noexcept {
  return is_open(current_) ? current_.get() : nullptr;
}

Transaction& BasicTransactionManager::get() {
  if (Transaction* t = current()) return *t;
  if (explicit_) throw NoTransactionError("no transaction is open: call begin() first");
  return begin();
}

CommitOutcome BasicTransactionManager::commit() { return get().commit(); }

void BasicTransactionManager::abort() noexcept {
  if (Transaction* t = current()) t->abort();
}

void BasicTransactionManager::register_synchronizer(std::shared_ptr<Synchronizer> s) {
  auto next = std::make_shared<std::vector<std::weak_ptr<Synchronizer>>>();
  if (synchronizers_) {
    for (const auto& w : *synchronizers_) {
      auto locked = w.lock();
      if (!locked) continue;
      if (locked == s) return;  // already registered
      next->push_back(w);
    }
  }
  next->push_back(s);
  synchronizers_ = std::move(next);
  // As in Zope, a synchronizer registered while a transaction is open hears of that
  // transaction: new_transaction now, then its completion. (From a callback of the running
  // begin(), commit() or abort() it starts with the next transaction.)
  if (is_open(current_) && current_->phase_ == Transaction::Phase::idle) {
    current_->synchronizers_ = synchronizers_;
    auto txn = current_;
    txn->phase_ = Transaction::Phase::beginning;
    tell_new_transaction(*s, *txn);
    txn->phase_ = Transaction::Phase::idle;
  }
}

void BasicTransactionManager::unregister_synchronizer(const Synchronizer& s) {
  if (!synchronizers_) return;
  auto next = std::make_shared<std::vector<std::weak_ptr<Synchronizer>>>();
  for (const auto& w : *synchronizers_) {
    auto locked = w.lock();
    if (locked && locked.get() != &s) next->push_back(w);
  }
  synchronizers_ = std::move(next);
  // Nor is it told of the open transaction's completion (as in Zope), unless a callback of
  // that transaction's begin(), commit() or abort() unregisters it.
  if (is_open(current_) && current_->phase_ == Transaction::Phase::idle) {
    current_->synchronizers_ = synchronizers_;
  }
}

// ---- ThreadTransactionManager ------------------------------------------------------------

namespace {

std::atomic<std::uint64_t> next_manager_id{1};

struct ThreadSlot {
  std::uint64_t manager_id;
  std::uint64_t options_version;
  std::unique_ptr<BasicTransactionManager> manager;
};

// Per thread: the state of each ThreadTransactionManager used on this thread. Keyed by a
// never-reused id, so a slot of a destroyed manager is never picked up by a new one.
thread_local std::vector<ThreadSlot> thread_slots;

thread_local TransactionManager* bound_manager = nullptr;

}  // namespace

ThreadTransactionManager::ThreadTransactionManager(ManagerOptions options)
    : id_(next_manager_id.fetch_add(1)), options_(std::move(options)) {}

ThreadTransactionManager::~ThreadTransactionManager() {
  // Only this thread's slot can be reached; other threads' slots die with their threads.
  auto it = std::find_if(thread_slots.begin(), thread_slots.end(),
                         [&](const ThreadSlot& s) { return s.manager_id == id_; });
  if (it != thread_slots.end()) thread_slots.erase(it);
}

BasicTransactionManager* ThreadTransactionManager::find_local() noexcept {
  for (auto& slot : thread_slots) {
    if (slot.manager_id == id_) return slot.manager.get();
  }
  return nullptr;
}

BasicTransactionManager& ThreadTransactionManager::local() {
  // The common case takes no lock: this thread's slot exists and its options are current.
  const std::uint64_t version = options_version_.load(std::memory_order_acquire);
  for (auto& slot : thread_slots) {
    if (slot.manager_id != id_) continue;
    if (slot.options_version != version) {
      std::lock_guard lock(mutex_);
      slot.manager->set_options(options_);
      slot.options_version = options_version_.load(std::memory_order_relaxed);
    }
    return *slot.manager;
  }
  std::lock_guard lock(mutex_);
  thread_slots.push_back({id_, options_version_.load(std::memory_order_relaxed),
                          std::make_unique<BasicTransactionManager>(false, options_)});
  return *thread_slots.back().manager;
}

Transaction* ThreadTransactionManager::current() noexcept {
  BasicTransactionManager* m = find_local();
  return m ? m->current() : nullptr;
}

void ThreadTransactionManager::abort() noexcept {
  if (BasicTransactionManager* m = find_local()) m->abort();
}

void ThreadTransactionManager::set_options(ManagerOptions options) {
  std::lock_guard lock(mutex_);
  options_ = std::move(options);
  options_version_.fetch_add(1, std::memory_order_release);
}

ManagerOptions ThreadTransactionManager::options() const {
  std::lock_guard lock(mutex_);
  return options_;
}

ThreadTransactionManager& thread_manager() {
  // Never destroyed: at exit the main thread's thread_local slots are gone before static
  // destructors run, and a destructor would reach into them. The slots themselves (with any
  // transaction left open) die with their threads.
  static auto* manager = new ThreadTransactionManager();
  return *manager;
}

TransactionManager& current_manager() noexcept {
  return bound_manager ? *bound_manager : thread_manager();
}

ManagerBinding::ManagerBinding(TransactionManager& manager) noexcept
    : previous_(bound_manager),
      thread_(std::this_thread::get_id()),
      uncaught_(std::uncaught_exceptions()) {
  bound_manager = &manager;
}

ManagerBinding::~ManagerBinding() noexcept(false) {
  if (std::this_thread::get_id() != thread_) {
    // This thread's binding is not ours to restore, and the making thread's cannot be
    // restored from here: that thread goes on seeing this manager as current.
    constexpr const char* kMessage =
        "xact::ManagerBinding destroyed on another thread than the one that made it (a "
        "coroutine that resumed elsewhere while holding it?): the binding belongs to a thread; "
        "pass the manager explicitly across suspensions, or bind again after each resumption";
    if (std::uncaught_exceptions() > uncaught_) {
      log(LogLevel::error, kMessage);  // unwinding already: a throw would terminate
      return;
    }
    throw UsageError(kMessage);
  }
  bound_manager = previous_;
}

// ---- TransactionGuard ----------------------------------------------------------------------

TransactionGuard::TransactionGuard(TransactionManager& manager)
    : txn_(manager.begin().shared_from_this()) {}

TransactionGuard::~TransactionGuard() { txn_->abort(); }

CommitOutcome TransactionGuard::commit() { return txn_->commit(); }

void TransactionGuard::abort() noexcept { txn_->abort(); }

}  // namespace xact
