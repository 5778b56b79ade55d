// The resource-manager protocol: what the transaction manager calls on every participant of
// a transaction, in which order, what each call may do, and what its failure means.
//
// This header is the protocol's reference (after Zope's `transaction.interfaces`, with what
// that leaves vague written down). It stands alone: a new store is written against it and
// <xact/transaction.hpp> (the calls an RM makes back: xid_for, doom, report_rollback_failure,
// report_heuristic). An implementation that follows it can be checked with the conformance
// suite (<xact/testing/conformance.hpp>).
//
// ---------------------------------------------------------------------------------------------
// The calls at a glance
// ---------------------------------------------------------------------------------------------
//   call                    may throw?               noexcept  idempotent  durable before return
//   resource_name,sort_key  no (stable values)       -         yes         -
//   abort                   no: reports instead      yes       yes         no (nothing prepared)
//   tpc_begin               yes: fails the commit    -         -           no
//   commit                  yes: fails the commit    -         -           no (staged only)
//   tpc_vote                yes: a no vote           -         -           YES for Vote::yes
//   tpc_finish              I/O only: pending        -         yes         yes (see below)
//   tpc_abort               no: reports instead      yes       yes         no (presumed abort)
//   commit_one_phase        yes; InDoubtError: in    -         -           YES (it is the
//                           doubt, else rolled back                        decision)
//   can_prepare             no                       -         yes         -
//   savepoint               yes: fails the txn       -         -           no
//   ResourceSavepoint::     yes: poisons the txn     -         yes         no
//     rollback
//   should_retry            no                       yes       yes         -
//   recover,                yes: unreachable, owed   -         yes         -
//     recover_all_nodes     (default: UsageError)
//   commit_prepared,        yes: unreachable, owed   -         yes: then   yes
//     rollback_prepared     and retried                        unknown_id
//   lookup_decision         no: return unreadable    -         yes         -
//                           (a throw is read so)
//   forget_decision         no                       yes       yes         no
//   forget_decisions_before yes: logged, retried     -         yes         no
//
// ---------------------------------------------------------------------------------------------
// Joining
// ---------------------------------------------------------------------------------------------
// A resource manager (RM) joins a transaction with Transaction::join() the first time the
// application changes something through it. Joining the same RM twice is a no-op. Two distinct
// RMs with equal sort keys or equal resource names in one transaction are refused (UsageError):
// sort keys must be unique so the commit order is deterministic, and resource names must be
// unique because they become the branch qualifiers of the transaction ids.
//
// An RM whose OnePhaseCommit::can_prepare() is false (a last resource, below) is refused at
// join() when another one already joined; the error names both.
//
// Joins are accepted while the transaction is active or doomed, from synchronizers'
// new_transaction and before_completion, and from before-commit hooks. A join once phase 1 has
// started is a "late join", refused with UsageError and counted (Counters::late_joins):
// - before the decision (from an RM's tpc_begin, commit or tpc_vote) it fails the commit, also
//   when the RM catches the UsageError: the late joiner's work would otherwise be dropped
//   while the rest commits;
// - after the decision (from tpc_finish, an after-commit hook or after_completion) the
//   transaction is committed without that work: the refusal is logged as an error.
// What else hooks, synchronizers and RMs may call on the transaction they are called for is
// tabled in <xact/transaction.hpp>; in short, an RM never commits, aborts or begins from a
// protocol call, and doom() or abort() from phase 1 fails the commit.
//
// ---------------------------------------------------------------------------------------------
// Call order (RMs sorted by sort_key(), ascending; each RM sees each call at most once)
// ---------------------------------------------------------------------------------------------
//
//   tpc_begin(txn) -> commit(txn) -> tpc_vote(txn) -> tpc_finish(txn)     success
//                                                 \-> tpc_abort(txn)      failure before the
//                                                 decision
//   abort(txn)                                                            abort before tpc_begin
//
// Phase 1 calls tpc_begin on every RM, then commit on every RM, then tpc_vote on every RM.
// The decision is made once every RM voted. Phase 2 calls tpc_finish on every RM that voted
// yes. Precisely:
//
// - abort(txn) is called only on an RM that never got tpc_begin(txn): on Transaction::abort()
//   of an active or doomed transaction, on a commit that failed before this RM's tpc_begin,
//   and on a savepoint rollback to a savepoint taken before this RM joined. It is NEVER called
//   after tpc_begin (Zope does; its own interface forbids it): tpc_abort is that path.
// - tpc_abort(txn) is called on every RM that got tpc_begin (also when its own tpc_begin threw)
//   and did not vote read-only, when
//   the transaction fails before the decision (an exception from any tpc_begin, commit or
//   tpc_vote, from a before-commit hook or synchronizer, or a no vote).
// - A read-only vote (Vote::read_only) means the RM has nothing to commit and has already
//   released everything it held for the transaction: it gets no phase-2 call at all.
// - tpc_finish(txn) is called on every RM that voted yes, once the decision is commit.
//
// ---------------------------------------------------------------------------------------------
// Failures and what they mean
// ---------------------------------------------------------------------------------------------
// - tpc_begin, commit: may throw anything; the transaction fails and is rolled back everywhere.
//   commit() stages the work (e.g. runs the SQL); errors that SQL can raise must surface here,
//   before any prepare.
// - InDoubtError means "the outcome of the whole transaction is unknown; recovery decides". It
//   can only come from the decision step (the forced commit record, a last resource's
//   commit_one_phase, a single participant's commit_one_phase) or later. Thrown from
//   tpc_begin, commit or tpc_vote (or a before-commit hook) it counts as a no vote like any
//   other exception: tpc_abort on every begun RM (the thrower included), abort() on the others,
//   abort hooks, and commit() throws a TransientError (retryable) with the InDoubtError nested.
//   An RM that lost its connection during PREPARE does not know whether its branch is prepared:
//   its tpc_abort rolls it back by id on a fresh connection (ROLLBACK PREPARED, XA ROLLBACK;
//   an unknown id is fine once the server session that received the PREPARE has ended, since
//   until then it may still complete it: xact::sql ends that session first), and recovery
//   rolls back what it cannot reach (presumed abort).
// - tpc_vote: returning Vote::yes is a promise: the RM's work is DURABLE and it can commit or
//   roll back later on request, even after a crash of the RM's process or server or of the
//   coordinator (PREPARE TRANSACTION, XA PREPARE, a prepared record in a storage file).
//   Throwing is a "no" vote: the transaction fails and is rolled back everywhere.
// - tpc_finish: must not fail for a logical reason (it must not refuse to commit what it
//   prepared). It may fail for an I/O reason (server gone): then the transaction is STILL
//   COMMITTED. The coordinator goes on finishing the others, and the RM's branch is reported
//   as a pending completion (CommitOutcome::pending) that the coordinator's re-driver
//   (<xact/redriver.hpp>) finishes with commit_prepared(xid), called from its own thread until
//   it succeeds (recovery does, after a restart). commit() does not throw for it, with one
//   exception: a sole voter (no commit record was needed) whose tpc_finish fails makes the
//   coordinator write a commit record then, so recovery never presumes abort for a branch
//   reported committed; if that write fails too, commit() throws InDoubtError (do not retry;
//   recovery decides after a restart). Without a decision log the pending completion is known
//   only to this process (logged as an error). tpc_finish must be idempotent, and durable
//   before it returns unless txn.decision_recorded() (a commit record in the decision log or a
//   last resource's decision table holds the decision, so recovery commits the branch even if
//   the RM's own commit mark is lost): for a sole voter nothing else records the commit, and a
//   commit mark lost in a crash would turn a reported commit into a presumed abort. (The file
//   storage syncs its commit mark exactly then.)
// - tpc_abort and abort are noexcept and idempotent. A rollback that fails (I/O) is reported
//   with txn.report_rollback_failure(*this, error): the coordinator logs it and carries on with
//   the other RMs; after a tpc_abort of a recoverable RM, or an abort of one that drew the
//   transaction's id (txn.xid_for: a compensating store fences its writes with it), it hands
//   the branch, which may still be prepared and hold its locks, or still hold its writes, to
//   the re-driver (rollback_prepared(xid) until it succeeds); anything left is rolled back by
//   recovery (presumed abort: no commit record means roll back). The failed commit's own error
//   is not replaced. An abort that fails while a savepoint is rolled back (the RM joined after
//   the savepoint) fails the transaction: it could not go on without committing what was left.
// - "Heuristic" outcome: reserved for an RM that decided on its own (rolled back what the log
//   says is committed, or the reverse) and for a compensation that found someone else's value.
//   Not an I/O error. Found by recovery or the re-driver, it is the Outcome of commit_prepared
//   or rollback_prepared; found during a live tpc_abort, abort or savepoint rollback, the RM
//   reports it with txn.report_heuristic(*this, detail, outcome). Either way it is logged,
//   counted, recorded in the decision log (`xact heuristics list`) until an operator forgets
//   it, and (live) listed by Transaction::heuristics().
//
// ---------------------------------------------------------------------------------------------
// One-phase commit that fails
// ---------------------------------------------------------------------------------------------
// commit_one_phase is the decision. It throws InDoubtError when the RM cannot tell whether its
// commit happened (the connection broke during COMMIT): commit() then throws InDoubtError, no
// RM is called again, and (with a last resource) the voters stay prepared until recovery asks
// the last resource's DecisionStore whether the decision marker committed. Any other exception
// means "not committed": every begun RM gets tpc_abort (the one-phase RM too) and commit()
// throws that exception. A sole participant's failed one-phase commit leaves nothing prepared,
// so recovery has nothing to do for it; the application must not retry after InDoubtError.
//
// ---------------------------------------------------------------------------------------------
// Transaction ids, durability of the decision, one-phase commit
// ---------------------------------------------------------------------------------------------
// Each RM's branch is named by txn.xid_for(rm) (see <xact/xid.hpp>): the global id shared by
// the whole transaction plus the RM's resource_name() as branch qualifier. Presumed abort:
// nothing is written by the coordinator before the decision. With two or more yes votes the
// coordinator forces a commit record to its decision log before the first tpc_finish. With
// exactly one yes vote (the others read-only) no record is needed: until tpc_finish the RM is
// merely prepared, and a crash rolls it back.
//
// A manager without a decision log refuses (UsageError, before tpc_begin: every RM gets
// abort()) a commit with two or more participants that can vote and no last resource: the
// votes are not known yet, so read-only voters count. The message names the fixes: give the
// manager a DecisionLog (ManagerOptions::decision_log), or set
// ManagerOptions::allow_unlogged_decisions = true, which commits with no record at all (a crash
// in phase 2 then leaves the participants disagreeing; for tests and throw-away data).
//
// OnePhaseCommit (optional): an RM that can commit without a prepare. When it is the only
// participant, the coordinator calls tpc_begin, commit, commit_one_phase instead of
// tpc_vote + tpc_finish. An RM whose can_prepare() is false (SQLite) is a "last resource": at
// most one may join a transaction; it is committed in one phase after every other RM voted
// yes, and its commit carries the decision: it must store `decision` (the commit record) in
// the same local transaction, so that recovery can ask it (DecisionStore) whether the
// transaction committed. If commit_one_phase throws InDoubtError the prepared RMs are left
// prepared for recovery; any other exception rolls everything back.
//
// ---------------------------------------------------------------------------------------------
// Order of the clean-up calls after a failure
// ---------------------------------------------------------------------------------------------
// - Commit: tpc_finish on every RM, synchronizers' after_completion, after-commit hooks (told
//   true).
// - Failed commit: before-abort hooks; then every RM in sort-key order (the commit order, also
//   when the failure came from a before-commit hook, before phase 1): abort() if it never got
//   tpc_begin, tpc_abort() if it did, nothing after a read-only vote; then after-abort hooks,
//   synchronizers' after_completion, after-commit hooks (told false). In doubt (a failure of the
//   decision step): no RM call at all; after_completion and after-commit hooks (false) only.
// - Transaction::abort(): before-abort hooks, synchronizers' before_completion, abort() on every
//   RM in joining order, after-abort hooks, after_completion.
// - Savepoint rollback: ResourceSavepoint::rollback() of the savepoint's RMs in joining order;
//   then abort() on the RMs that joined after the savepoint, in joining order (they leave the
//   transaction; one whose abort fails fails the transaction, which rolls back as a failed
//   commit does, without asking it twice).
// These are the Zope `transaction` package's orders, where Zope calls each once; what xact does
// differently, and why, is listed in tests/conformance/test_zope_traces.cpp, which compares the
// two packages' call traces.
// abort and tpc_abort never throw; a failure they report is logged and the clean-up goes on
// with the next RM.
//
// ---------------------------------------------------------------------------------------------
// Threading
// ---------------------------------------------------------------------------------------------
// The transaction manager calls an RM for one transaction from one thread at a time, and never
// concurrently for the same transaction. An RM that is shared between transactions of several
// threads (a storage) must synchronize itself. Calls for a transaction may come from different
// threads over its lifetime (coroutines move between threads).
//
// ---------------------------------------------------------------------------------------------
// Doom and timeouts
// ---------------------------------------------------------------------------------------------
// An RM may call txn.doom() (or txn.abort()) from tpc_begin, commit or tpc_vote: the commit
// then fails before the decision with DoomedTransactionError and every RM is rolled back as
// after any failure. From tpc_finish (after the decision) doom() is a UsageError. A
// transaction's timeout (Transaction::set_timeout, ManagerOptions::timeout) is checked at
// join() and at the start of commit(): past it they throw TransactionTimeoutError and the
// transaction is doomed; a commit already in phase 1 is not interrupted, and no RM gets a call
// for the timeout itself, only the abort() that follows. An RM's own time limits (lock waits,
// statement timeouts) surface as exceptions from its calls.
//
// ---------------------------------------------------------------------------------------------
// Recovery and the re-driver (<xact/recovery.hpp>, <xact/redriver.hpp>)
// ---------------------------------------------------------------------------------------------
// Recovery needs only a RecoveryTarget: the resource name, the RecoverableResource and, for a
// last resource, the DecisionStore (Recovery::register_resource also takes a whole RM). Order
// of one run: (1) every commit record without a done record is re-driven: commit_prepared on
// each of its branches (unknown_id counts as done), then the done record; (2) every other id
// an RM lists by recover(node) is committed when a registered DecisionStore holds its decision,
// left waiting when one is unreadable, rolled back otherwise (presumed abort); (3) heuristic
// outcomes are recorded; (4) the decision markers of finished transactions are forgotten, and
// after the first complete run those of earlier epochs (forget_decisions_before).
// commit_prepared and rollback_prepared are idempotent: a second call for the same id returns
// unknown_id. They are called from recovery's and the re-driver's threads while live
// transactions use the same RM for other ids, so they must be thread-safe; never for the id of
// a transaction still running in this process, and never by both for the same branch at once
// (DecisionLog::in_flight). lookup_decision should return unreadable rather than throw;
// recovery treats an exception as unreadable (the branch waits, never presumed aborted).
//
// ---------------------------------------------------------------------------------------------
// A compensating participant (a store that cannot prepare, made to look as if it could)
// ---------------------------------------------------------------------------------------------
// - tpc_vote applies the change and returns Vote::yes only once its undo log (what to put back)
//   is durable: that is the promise of a yes vote.
// - tpc_finish / commit_prepared drop the undo log (idempotent).
// - tpc_abort / rollback_prepared compensate: write back the old values from the undo log, then
//   drop it (idempotent: a second call finds no undo log, unknown_id).
// - Heuristic: when compensating finds a value there that is neither its own nor the old one
//   (someone else wrote meanwhile), it leaves that value and says so: heuristic_commit (its
//   work stays) or heuristic_mixed (partly undone) from rollback_prepared, or
//   txn.report_heuristic(*this, detail, outcome) during a live tpc_abort, abort or a savepoint's
//   rollback. Its changes are visible to others before the decision: it is not isolated.
//
// ---------------------------------------------------------------------------------------------
// Crash points (for the crash harness, <xact/crash_point.hpp>): coordinator side
// ---------------------------------------------------------------------------------------------
//   coordinator.before_tpc_begin     hooks ran; no participant was told anything
//   coordinator.after_tpc_begin      every participant began
//   coordinator.after_commit         every participant staged its work
//   coordinator.after_vote           after each yes/read-only vote (hit N = Nth vote)
//   coordinator.before_commit_record every vote yes; nothing logged
//   coordinator.after_commit_record  the decision is durable; nobody finished
//   coordinator.after_last_resource  the last resource committed with the decision
//   coordinator.after_finish         after each tpc_finish (hit N = Nth finish)
//   coordinator.after_done_record    every participant finished; done record queued
// RMs name their own "<resource>.<step>" (the kv store: .after_prepare, .after_commit_prepared,
// .after_one_phase). At each, a restart followed by recovery must leave every RM committed or
// rolled back together.
#pragma once

#include <compare>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <xact/commit_record.hpp>
#include <xact/xid.hpp>

namespace xact {

class Transaction;
class SavepointSupport;
class RetryClassifier;
class OnePhaseCommit;
class RecoverableResource;
class DecisionStore;

/// A typed sort key. Integers order before strings; within a kind the natural order applies.
/// Mixed kinds never crash the sort (Zope's string-only sortKey did). Value type.
class SortKey {
 public:
  SortKey(std::int64_t n) : v_(n) {}                    // NOLINT: implicit on purpose
  SortKey(int n) : v_(static_cast<std::int64_t>(n)) {}  // NOLINT
  SortKey(std::string s) : v_(std::move(s)) {}          // NOLINT
  SortKey(const char* s) : v_(std::string(s)) {}        // NOLINT
  std::strong_ordering operator<=>(const SortKey& other) const;
  bool operator==(const SortKey& other) const = default;
  std::string to_string() const;

 private:
  std::variant<std::int64_t, std::string> v_;
};

enum class Vote {
  yes,        ///< prepared and durable: will commit or roll back on request
  read_only,  ///< nothing to commit; released; no phase-2 call follows
};

/// The participant interface. See the protocol above for the call order and failure rules.
class ResourceManager {
 public:
  virtual ~ResourceManager() = default;

  /// Stable name of this resource across restarts ("pg:orders", "objects:main"). It is the
  /// branch qualifier of this RM's transaction ids, so it must be 1..64 bytes and unique among
  /// the RMs of one transaction; recovery finds the RM by it.
  virtual std::string resource_name() const = 0;
  /// Commit order; must be unique within a transaction. Defaults to the resource name.
  virtual SortKey sort_key() const { return SortKey(resource_name()); }

  /// noexcept: a rollback that fails is reported (Transaction::report_rollback_failure) and left
  /// to the re-driver or recovery, never thrown.
  virtual void abort(Transaction& txn) noexcept = 0;
  virtual void tpc_begin(Transaction& txn) = 0;
  virtual void commit(Transaction& txn) = 0;
  virtual Vote tpc_vote(Transaction& txn) = 0;
  virtual void tpc_finish(Transaction& txn) = 0;
  virtual void tpc_abort(Transaction& txn) noexcept = 0;

  // Optional capabilities (separate interfaces below). An RM that implements one returns
  // `this` from the matching accessor; the default is "not supported". The transaction asks
  // once, at join.
  virtual SavepointSupport* savepoint_support() noexcept { return nullptr; }
  virtual RetryClassifier* retry_classifier() noexcept { return nullptr; }
  virtual OnePhaseCommit* one_phase_commit() noexcept { return nullptr; }
  virtual RecoverableResource* recoverable() noexcept { return nullptr; }
  virtual DecisionStore* decision_store() noexcept { return nullptr; }
};

/// One RM's savepoint. rollback() restores the RM's state as of the savepoint; it may be called
/// more than once. Throwing from rollback poisons the transaction (it must then be aborted).
class ResourceSavepoint {
 public:
  virtual ~ResourceSavepoint() = default;
  virtual void rollback() = 0;
};

/// Optional capability: savepoints. An RM without it makes Transaction::savepoint() fail,
/// unless an optimistic savepoint is asked for (which then cannot be rolled back).
class SavepointSupport {
 public:
  virtual ~SavepointSupport() = default;
  virtual std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) = 0;
};

/// Optional capability: retry classification. Asked by the retry helpers, before the abort
/// drops the RM from the transaction, whether an error is worth retrying the transaction for
/// (e.g. an RM-specific lock timeout). An InDoubtError is never retried, whatever this says.
class RetryClassifier {
 public:
  virtual ~RetryClassifier() = default;
  virtual bool should_retry(const std::exception_ptr& error) const noexcept = 0;
};

/// Optional capability: one-phase commit (see "one-phase commit" above).
class OnePhaseCommit {
 public:
  virtual ~OnePhaseCommit() = default;
  /// Commits without a prepare. `decision` is null when this RM is the only participant;
  /// otherwise it is the commit record, to be stored atomically with the commit.
  virtual void commit_one_phase(Transaction& txn, const CommitRecord* decision) = 0;
  /// False for a last resource that cannot prepare: tpc_vote is then never called.
  virtual bool can_prepare() const { return true; }
};

/// Optional capability of a last resource: it can answer, for recovery, whether a transaction
/// whose decision it carried committed.
class DecisionStore {
 public:
  enum class Lookup { committed, not_found, unreadable };
  virtual ~DecisionStore() = default;
  /// `unreadable` (the store cannot be read now) makes recovery wait; it never presumes abort.
  /// Should not throw; recovery reads an exception as `unreadable`.
  virtual Lookup lookup_decision(const Gtrid& gtrid) = 0;
  /// Drops the marker once every other participant finished. Must not throw.
  virtual void forget_decision(const Gtrid& gtrid) noexcept = 0;
  /// Drops every marker of `node`'s transactions from epochs before `epoch` (those a crash left
  /// behind). Recovery calls it after its first complete run in a process, which has decided
  /// every branch that earlier runs of the node left prepared in the registered resources.
  /// Returns how many it dropped; may throw (recovery logs it and tries again after its next
  /// complete run). The default keeps nothing to drop.
  virtual std::size_t forget_decisions_before(const NodeId& node, std::uint32_t epoch) {
    (void)node;
    (void)epoch;
    return 0;
  }
};

/// Optional capability: recovery. Implemented by every RM whose yes vote survives a crash.
/// Recovery (and the re-driving of pending completions) works on a fresh instance of the RM,
/// found by resource name, without any Transaction object.
class RecoverableResource {
 public:
  enum class Outcome {
    done,                ///< the branch is now committed (or rolled back), as asked
    unknown_id,          ///< the RM has no such prepared id: already finished, or finished by
                         ///< an administrator; counted as done and reported
    heuristic_commit,    ///< the branch had been committed on its own (asked to roll back)
    heuristic_rollback,  ///< the branch had been rolled back on its own (asked to commit)
    heuristic_mixed,     ///< the branch had been partly committed, partly rolled back
  };
  virtual ~RecoverableResource() = default;
  /// Called by recovery (not in a dry run) just before recover(node). A session on the RM's
  /// server that is still running a PREPARE of a branch of `node` for this RM, of a
  /// transaction `running_here` says is not running in this process, was left by a process
  /// that died in the middle of it (or lost its connection): it may complete the PREPARE
  /// after recover() listed the prepared ids, and the branch would stay prepared until the
  /// next run. The RM ends such sessions and waits for them to go; it throws when some still
  /// run (recovery logs it and goes on). The default does nothing: for an RM whose prepare
  /// runs in the calling process.
  virtual void end_orphaned_prepares(const NodeId& node,
                                     const std::function<bool(const Gtrid&)>& running_here) {
    (void)node;
    (void)running_here;
  }
  /// Ids this RM holds prepared whose gtrid belongs to `node`. Throws when unreachable.
  virtual std::vector<Xid> recover(const NodeId& node) = 0;
  /// Ids this RM holds prepared for any node, with this RM's branch qualifier: what an
  /// operator inspects when a coordinator's log is lost (Recovery::list_foreign). The default
  /// throws UsageError ("cannot list"), which recovery reports rather than reading it as
  /// "none". Throws when unreachable.
  virtual std::vector<Xid> recover_all_nodes();
  virtual Outcome commit_prepared(const Xid& xid) = 0;
  virtual Outcome rollback_prepared(const Xid& xid) = 0;
};

/// "done", "unknown id", "heuristic commit", ...: how logs and heuristic records name it.
std::string_view to_string(RecoverableResource::Outcome outcome) noexcept;

}  // namespace xact
