// Synchronizer: told about every transaction of the manager it is registered with
// (TransactionManager::register_synchronizer, <xact/manager.hpp>).
#pragma once

namespace xact {

class Transaction;

/// Told about the transactions of the manager it is registered with; registered while a
/// transaction is open, it is told new_transaction at once and then that transaction's
/// completion, and unregistered while one is open, it hears no more of it (Zope's rules). Must
/// not throw; an exception is logged and ignored (except from before_completion at commit: it
/// fails the commit).
/// What a callback may call on the transaction (and on the manager) is tabled in
/// <xact/transaction.hpp>: e.g. new_transaction and before_completion may join and doom, no
/// callback may commit or begin().
class Synchronizer {
 public:
  virtual ~Synchronizer() = default;
  virtual void new_transaction(Transaction&) {}
  /// Before commit (after the before-commit hooks) and before abort, once per transaction; a
  /// commit that fails in a before-commit hook, or a savepoint rollback that fails, rolls the
  /// transaction back at once and tells it then.
  virtual void before_completion(Transaction&) {}
  /// After commit, failed commit or abort: exactly once per transaction.
  virtual void after_completion(Transaction&) {}
  /// The manager it is registered with is being destroyed (after aborting its open
  /// transaction): forget the manager, it must not be called again.
  virtual void manager_destroyed() noexcept {}
};

}  // namespace xact
