// SessionResource: a session store as a participant of xact transactions, through compensation.
//
// The store is not transactional, so a write goes through at once (other requests see it, as
// with any session store). What makes it undoable is the fence written in the same atomic step
// (SessionStore::compare_and_swap): the owner transaction, the version its write produced and
// the before-image. Hence:
//  - a write is a compare-and-set against the version this transaction read (or, for a blind
//    write, the version it finds): a value changed since it was read -> ConflictError;
//  - a value fenced by another unfinished xact transaction: writing it -> ConflictError at once
//    (retry); reading it -> the before-image, so nobody builds on a value that may be
//    compensated away. A fence older than `fence_lease` may be broken by a writer; that is
//    recorded as a heuristic outcome for the old owner;
//  - abort, tpc_abort, savepoint rollback (and so a conflict retry, which aborts) undo the
//    writes newest first, each only where the stored value is still the one this transaction
//    wrote; a value already equal to the before-image counts as undone; any other value (a
//    writer outside xact changed it) is a heuristic outcome recorded in the decision log
//    (`xact heuristics list`), never overwritten. An expired (or invalidated) session is never
//    revived by an undo;
//  - tpc_vote says yes (the compensation is already stored with the write: there is nothing it
//    could not undo), or read-only when the transaction wrote nothing; tpc_finish drops the
//    transaction's fences in one batch per store call and refreshes the sessions' expiry;
//  - recovery (RecoverableResource): recover() lists the owners of this node's fences;
//    commit_prepared drops the fences, rollback_prepared compensates them from the before-images
//    (presumed abort: the decision log decides).
// abort and tpc_abort never throw: a store that fails during an undo leaves the fences, which
// the transaction's re-driver compensates from the before-images (rollback_prepared) as soon as
// the store answers, and recovery after a restart.
//
// Thread-safety: one SessionResource serves any number of transactions on any threads; each
// transaction's state lives in the transaction (Transaction::data).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <xact/resource_manager.hpp>
#include <xact/sessions/session_store.hpp>

namespace xact {
class DecisionLog;
}

namespace xact::sessions {

struct SessionResourceOptions {
  /// The resource name: the branch qualifier of its transaction ids, and what recovery finds it
  /// by. Unique among the transaction's participants.
  std::string name = "sessions";
  /// Where heuristic outcomes (a compensation that found someone else's value, a broken fence)
  /// are recorded, for `xact heuristics list`. Without one they are only logged (as errors).
  std::shared_ptr<DecisionLog> decision_log;
  /// A fence older than this may be broken by another transaction's write (recorded as a
  /// heuristic outcome for its owner). Keep it well above the transaction timeout.
  std::chrono::microseconds fence_lease = std::chrono::minutes(10);
};

class SessionResource final : public ResourceManager,
                              public SavepointSupport,
                              public RecoverableResource,
                              public RetryClassifier,
                              public std::enable_shared_from_this<SessionResource> {
 public:
  static std::shared_ptr<SessionResource> create(std::shared_ptr<SessionStore> store,
                                                 SessionResourceOptions options = {});
  ~SessionResource() override;

  // --- the application's calls (inside a transaction) ----------------------------------------
  /// The value this transaction sees: its own write, else the committed value (the before-image
  /// of a value another unfinished transaction wrote); none when absent. Remembers the version
  /// for the compare-and-set of a later write.
  std::optional<std::string> get(Transaction& txn, const std::string& session_id,
                                 const std::string& name);
  /// Every value of the session as this transaction sees it.
  std::map<std::string, std::string> get_all(Transaction& txn, const std::string& session_id);
  /// Writes through to the store at once, fenced. Joins the transaction. ConflictError when the
  /// value changed since this transaction read it or another transaction's write is fenced on
  /// it; the store's errors (ResourceError) otherwise.
  void set(Transaction& txn, const std::string& session_id, const std::string& name,
           const std::string& value);
  /// Removes the value (a fenced tombstone until the transaction ends). Like set().
  void erase(Transaction& txn, const std::string& session_id, const std::string& name);

  SessionStore& store() noexcept { return *store_; }

  // --- ResourceManager --------------------------------------------------------------------------
  std::string resource_name() const override { return options_.name; }
  void abort(Transaction& txn) noexcept override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) noexcept override;
  SavepointSupport* savepoint_support() noexcept override { return this; }
  RecoverableResource* recoverable() noexcept override { return this; }
  RetryClassifier* retry_classifier() noexcept override { return this; }

  // --- RetryClassifier --------------------------------------------------------------------------
  /// The store's answer (SessionStore::is_transient): a store out of reach for a moment.
  bool should_retry(const std::exception_ptr& error) const noexcept override;

  // --- SavepointSupport -------------------------------------------------------------------------
  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;

  // --- RecoverableResource ----------------------------------------------------------------------
  std::vector<Xid> recover(const NodeId& node) override;
  std::vector<Xid> recover_all_nodes() override;
  Outcome commit_prepared(const Xid& xid) override;
  /// Compensates every fence of the transaction. Values someone else changed are recorded as a
  /// heuristic outcome (with what was found) by this resource and left as found; the branch
  /// then counts as done.
  Outcome rollback_prepared(const Xid& xid) override;

  struct TxnState;

 private:
  SessionResource(std::shared_ptr<SessionStore> store, SessionResourceOptions options);
  TxnState& state(Transaction& txn);
  TxnState* find_state(Transaction& txn) noexcept;
  std::optional<Entry> observe(TxnState& st, const std::string& sid, const std::string& name);
  /// In a catch block of a read: a read does not join, but one that failed because the store was
  /// out of reach joins, so that the transaction asks this resource whether to retry it.
  void join_for_retry(Transaction& txn) noexcept;
  void write(Transaction& txn, const std::string& sid, const std::string& name,
             std::optional<std::string> value);
  /// Undoes the transaction's writes from index `from` on, newest first.
  void undo_from(TxnState& st, std::size_t from);
  /// Compensates every entry `owner` still fences (recovery, or a write whose store call failed
  /// and may have landed). False when there was none.
  bool compensate_fenced(const Gtrid& owner, std::vector<std::string>& heuristics);
  /// Restores `prev` where the store still holds what `owner` wrote (`written`); otherwise
  /// describes the mismatch in `heuristics`.
  void compensate(const Gtrid& owner, const std::string& sid, const std::string& name,
                  const Entry& written, const std::optional<Entry>& prev,
                  std::vector<std::string>& heuristics);
  void roll_back(Transaction& txn) noexcept;
  void finish_state(Transaction& txn) noexcept;
  /// Records a heuristic outcome in options().decision_log: for a broken fence (another
  /// transaction's), for recovery, and for a live one when the manager has no log of its own
  /// (live ones go through Transaction::report_heuristic first). Never throws.
  void record_heuristic(const Gtrid& gtrid, const std::string& outcome,
                        const std::string& detail) noexcept;

  std::shared_ptr<SessionStore> store_;
  SessionResourceOptions options_;
};

}  // namespace xact::sessions
