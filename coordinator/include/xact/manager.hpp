// Transaction managers: where the application begins, commits and aborts transactions, and
// where resource managers find the current transaction.
//
// - ThreadTransactionManager (the default, xact::thread_manager()): every thread has its own
//   current transaction. Thread-safe: any thread may use it, each sees only its own transaction
//   and its own synchronizers. Like Python's `transaction.manager`: begin() aborts a
//   transaction left open on this thread, get() begins one when none is open.
// - ExplicitTransactionManager: one current transaction, no implicit behaviour: begin() throws
//   if a transaction is open, get()/commit()/doom()/savepoint() throw if none is. Not
//   synchronized, but not bound to a thread either: one per request or coroutine, used by one
//   thread at a time, moved between threads freely (Boost.Asio coroutine handlers).
// - current_manager() / ManagerBinding / TransactionGuard: <xact/manager_binding.hpp>;
//   Synchronizer: <xact/synchronizer.hpp>. Both are included here.
//
// abort() never throws and is a no-op when no transaction is open, so it is safe in every
// cleanup path. A manager must outlive the transactions it began.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <xact/manager_binding.hpp>
#include <xact/synchronizer.hpp>
#include <xact/transaction.hpp>

namespace xact {

class DecisionLog;

struct ManagerOptions {
  /// Where decisions of transactions with two or more voters are made durable (the forced
  /// commit record). Without one, such a commit is refused (UsageError, before anything is
  /// prepared) unless allow_unlogged_decisions is set.
  std::shared_ptr<DecisionLog> decision_log;
  /// Applied to every transaction at begin (Transaction::set_timeout).
  std::optional<std::chrono::steady_clock::duration> timeout;
  /// Without a decision log, still commit transactions with two or more participants that
  /// can vote (and no last resource carrying the decision), with no commit record at all: a
  /// crash between the decision and the end of phase 2 then leaves some participants
  /// committed and the others rolled back by recovery (presumed abort). For tests and
  /// throw-away data; never in production. Single-participant commits, and commits whose last
  /// resource carries the decision, need no log and are never refused.
  bool allow_unlogged_decisions = false;
};

class TransactionManager {
 public:
  virtual ~TransactionManager() = default;

  /// Begins a transaction and makes it current. UsageError when called from a hook, a
  /// synchronizer or a resource manager of the current transaction (it is still being begun,
  /// committed or aborted).
  virtual Transaction& begin() = 0;
  /// The current transaction (see the class comments for what happens when there is none).
  virtual Transaction& get() = 0;
  /// The current, not yet ended transaction, or null.
  virtual Transaction* current() noexcept = 0;
  virtual CommitOutcome commit() = 0;
  virtual void abort() noexcept = 0;
  virtual void register_synchronizer(std::shared_ptr<Synchronizer> s) = 0;
  virtual void unregister_synchronizer(const Synchronizer& s) = 0;
  virtual bool is_explicit() const noexcept = 0;

  void doom() { get().doom(); }
  bool is_doomed() { return get().is_doomed(); }
  Savepoint savepoint(bool optimistic = false) { return get().savepoint(optimistic); }
};

/// One current transaction; the building block of the other managers. Not synchronized.
class BasicTransactionManager : public TransactionManager {
 public:
  explicit BasicTransactionManager(bool explicit_mode, ManagerOptions options = {});
  ~BasicTransactionManager() override;

  Transaction& begin() override;
  Transaction& get() override;
  Transaction* current() noexcept override;
  CommitOutcome commit() override;
  void abort() noexcept override;
  void register_synchronizer(std::shared_ptr<Synchronizer> s) override;
  void unregister_synchronizer(const Synchronizer& s) override;
  bool is_explicit() const noexcept override { return explicit_; }

  const ManagerOptions& options() const noexcept { return options_; }
  void set_options(ManagerOptions options) { options_ = std::move(options); }

 private:
  bool explicit_;
  ManagerOptions options_;
  std::shared_ptr<Transaction> current_;
  // Copy-on-write so a transaction keeps the list it began with.
  std::shared_ptr<const std::vector<std::weak_ptr<Synchronizer>>> synchronizers_;
};

class ExplicitTransactionManager final : public BasicTransactionManager {
 public:
  explicit ExplicitTransactionManager(ManagerOptions options = {})
      : BasicTransactionManager(true, std::move(options)) {}
};

class ThreadTransactionManager final : public TransactionManager {
 public:
  explicit ThreadTransactionManager(ManagerOptions options = {});
  ~ThreadTransactionManager() override;

  Transaction& begin() override { return local().begin(); }
  Transaction& get() override { return local().get(); }
  Transaction* current() noexcept override;
  CommitOutcome commit() override { return local().commit(); }
  void abort() noexcept override;
  /// Registers for transactions of the calling thread only.
  void register_synchronizer(std::shared_ptr<Synchronizer> s) override {
    local().register_synchronizer(std::move(s));
  }
  void unregister_synchronizer(const Synchronizer& s) override {
    local().unregister_synchronizer(s);
  }
  bool is_explicit() const noexcept override { return false; }

  /// Applies to transactions begun afterwards, on every thread.
  void set_options(ManagerOptions options);
  ManagerOptions options() const;

 private:
  BasicTransactionManager& local();
  BasicTransactionManager* find_local() noexcept;

  const std::uint64_t id_;  // keys the per-thread state; never reused, unlike an address
  mutable std::mutex mutex_;
  ManagerOptions options_;                         // guarded by mutex_
  std::atomic<std::uint64_t> options_version_{0};  // bumped (under mutex_) by set_options
};

/// The process-wide thread-bound manager.
ThreadTransactionManager& thread_manager();

}  // namespace xact
