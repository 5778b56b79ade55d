// ManagerBinding and current_manager(): which manager code that is not handed one uses; and
// TransactionGuard, a transaction begun on a manager and aborted at scope exit unless committed.
//
// Code that does not get a manager passed (a resource manager deep in a call chain) asks
// current_manager(), which is the manager bound on this thread by the innermost live
// ManagerBinding, or thread_manager(). A coroutine that moves between threads passes its manager
// explicitly, or re-binds after each resumption.
#pragma once

#include <memory>
#include <thread>

#include <xact/transaction.hpp>

namespace xact {

class TransactionManager;

/// The manager bound on this thread by the innermost ManagerBinding, or thread_manager().
TransactionManager& current_manager() noexcept;

/// Binds a manager to this thread for the binding's lifetime (see current_manager()). A binding
/// belongs to the thread that made it: destroyed on another thread (a coroutine that resumed
/// elsewhere while holding one) it throws UsageError (logs it, when already unwinding) and
/// unbinds nothing.
class ManagerBinding {
 public:
  explicit ManagerBinding(TransactionManager& manager) noexcept;
  ~ManagerBinding() noexcept(false);
  ManagerBinding(const ManagerBinding&) = delete;
  ManagerBinding& operator=(const ManagerBinding&) = delete;

 private:
  TransactionManager* previous_;
  std::thread::id thread_;
  int uncaught_;
};

/// RAII: begins a transaction; aborts it at scope exit unless commit() was called.
///   { xact::TransactionGuard g(tm); ...; g.commit(); }
class TransactionGuard {
 public:
  explicit TransactionGuard(TransactionManager& manager = current_manager());
  ~TransactionGuard();
  TransactionGuard(const TransactionGuard&) = delete;
  TransactionGuard& operator=(const TransactionGuard&) = delete;

  Transaction& transaction() noexcept { return *txn_; }
  Transaction* operator->() noexcept { return txn_.get(); }
  /// Commits; if the commit throws, the guard still aborts at scope exit.
  CommitOutcome commit();
  void abort() noexcept;

 private:
  std::shared_ptr<Transaction> txn_;
};

}  // namespace xact
