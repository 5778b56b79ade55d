// A transaction: the unit of work that the resource managers joined to it commit or roll back
// together. Obtained from a TransactionManager (<xact/manager.hpp>), never constructed by the
// application.
//
// Thread-safety: a Transaction is used by one thread at a time (it may move between threads,
// as coroutine handlers do). Nothing in it is synchronized.
//
// Lifecycle (status()):
//   active ──doom()──> doomed ──abort()──> aborted
//     │                  │
//     │ commit()         └─commit() throws DoomedTransactionError (stays doomed)
//     v
//   committing ──> committed            every participant voted yes and the decision is made
//        └───────> commit_failed        something failed before the decision; every participant
//                                       was rolled back (or, in doubt, left to recovery);
//                                       abort() is the only call accepted
//
// Hooks run exactly once each: before-commit hooks at commit() (they may still join RMs);
// after-commit hooks after a commit, told whether it succeeded (their errors are logged, never
// undo a commit); before-abort and after-abort hooks on every abort path: abort() of an active
// or doomed transaction, and a failed commit (whose later abort() runs no hooks again).
//
// What hooks, synchronizers and resource managers may call
// ---------------------------------------------------------
// Hooks and synchronizer callbacks run inside the manager's begin() or the transaction's
// commit() or abort(), and resource managers are called inside commit() and abort(). What they
// may do with that same transaction depends on how far it got, never on who calls:
//
//                      new_transaction  before-commit hook,   phase 1    after-commit hook(true),
//                                       before_completion     (RMs:      tpc_finish,
//                                       (at commit)           begin..    after_completion
//                                                             vote)      (after a commit)
//   doom()             dooms            dooms: commit fails   dooms:     UsageError
//                                                             fails
//   abort()            dooms            dooms: commit fails   dooms:     ignored (logged):
//                                                             fails      it committed
//   commit()           UsageError       UsageError            UsageError UsageError
//   join()             joins            joins                 refused,   refused, logged as an
//                                                             fails the  error and counted
//                                                             commit     (Counters::late_joins)
//   savepoint(),       allowed          allowed               UsageError UsageError
//   rollback()
//   manager.begin()    UsageError       UsageError            UsageError UsageError
//
// While the transaction is rolled back (before-abort and after-abort hooks, before_completion
// at abort, after_completion after an abort or a failed commit, after-commit hooks told false,
// and an RM's abort or tpc_abort): doom() and abort() are no-ops (it is being aborted already),
// commit(), join(), savepoint(), a savepoint's rollback() and manager.begin() throw UsageError.
//
// - "Dooms" means the call cannot end the transaction where it is made (the running begin()
//   or commit() is still on the stack): the transaction can then only be aborted. A commit in
//   progress fails before the decision with DoomedTransactionError, rolls back every
//   participant and runs the abort hooks like any failed commit (status commit_failed). From
//   new_transaction, begin() returns the transaction doomed.
// - commit() is never re-entered: the outer commit goes on unchanged when the UsageError is
//   caught, and fails with it when it is not (a before-commit hook's exception fails the
//   commit).
// - A join refused before the decision fails the commit even when the RM swallows the
//   UsageError (its work would otherwise be lost silently). A UsageError thrown by any other
//   refused call fails the commit only if it escapes (from a before-commit hook,
//   before_completion, or an RM's phase-1 call); everywhere else it is logged.
// - manager.begin() from a callback of the manager's current transaction would replace the
//   transaction still being begun, committed or aborted; begin the next one after the call
//   returns, or use a separate ExplicitTransactionManager for independent work.
//
// The order of the clean-up calls after a failure (failed commit, abort, savepoint rollback)
// is in <xact/resource_manager.hpp>.
#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <xact/resource_manager.hpp>
#include <xact/xid.hpp>

namespace xact {

class DecisionLog;
class BasicTransactionManager;
class Synchronizer;
namespace detail {
struct SavepointState;
struct Participant;
}  // namespace detail

/// A transaction's state (Transaction::status()).
enum class TransactionStatus { active, doomed, committing, committed, commit_failed, aborted };
std::string_view to_string(TransactionStatus status);
/// The former name, kept for code written against it.
using Status [[deprecated("use TransactionStatus")]] = TransactionStatus;

/// A branch that was told to commit and failed for an I/O reason. The transaction IS
/// committed; recovery re-drives the branch (see <xact/resource_manager.hpp>).
struct PendingCompletion {
  std::string resource;
  Xid xid;
  std::string error;
};

/// What commit() returns. Committed is always true when commit() returns (a failure throws);
/// `pending` lists branches still to be finished by recovery.
struct CommitOutcome {
  bool committed = false;
  /// True when the decision was recorded durably (commit record in the decision log, or in the
  /// last resource's own store); false for one-phase and single-voter commits that need none,
  /// unless a single voter's tpc_finish failed and the record was written for recovery.
  bool decision_logged = false;
  std::vector<PendingCompletion> pending;
  bool complete() const { return committed && pending.empty(); }
};

/// A heuristic outcome a participant found during a live rollback (its tpc_abort or abort, or
/// a savepoint's rollback) and reported with Transaction::report_heuristic: it could not put
/// back what it was asked to (a compensation found someone else's value there, a branch had
/// been committed on its own).
struct HeuristicOutcome {
  std::string resource;
  Xid xid;
  RecoverableResource::Outcome outcome = RecoverableResource::Outcome::heuristic_mixed;
  std::string detail;
  /// Recorded durably in the manager's decision log (shown by `xact heuristics list` until an
  /// operator forgets it); false without a decision log, or when the record failed (logged).
  bool recorded = false;
};

/// A savepoint over every participant of a transaction. Value type (cheap to copy); rollback()
/// restores every participant's state as of the savepoint, aborts participants that joined
/// after it, and invalidates savepoints taken after it. Thread-safety: as the Transaction.
class Savepoint {
 public:
  Savepoint() = default;
  /// Throws UsageError if the savepoint is no longer valid (a rollback to an earlier one, or the
  /// transaction ended) or was optimistic over an RM without savepoint support. A participant
  /// whose rollback fails, or one that joined after the savepoint and whose abort fails (it
  /// reported a failed rollback), poisons the transaction (commit_failed: everything is rolled
  /// back) and the error is rethrown.
  void rollback();
  bool valid() const noexcept;

 private:
  friend class Transaction;
  explicit Savepoint(std::shared_ptr<detail::SavepointState> s) : state_(std::move(s)) {}
  std::shared_ptr<detail::SavepointState> state_;
};

class Transaction : public std::enable_shared_from_this<Transaction> {
 public:
  using Clock = std::chrono::steady_clock;

  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // --- resource managers -------------------------------------------------------------------
  /// Adds a participant (no-op when already joined). Throws UsageError for a late join (once
  /// the commit started: it also fails that commit, or after the decision is logged and
  /// counted), a duplicate sort key or resource name, a second last resource (naming both), a
  /// bad resource name, or a transaction that already ended; TransactionTimeoutError once the
  /// timeout passed.
  void join(std::shared_ptr<ResourceManager> rm);
  bool has_joined(const ResourceManager& rm) const noexcept;
  /// Whether a participant with this resource name joined (another instance of one resource
  /// would be refused by join()).
  bool has_participant_named(std::string_view name) const noexcept;
  std::size_t participant_count() const noexcept;

  // --- completion ----------------------------------------------------------------------------
  /// Runs the two-phase commit. Returns only when committed; throws the error that made the
  /// commit fail (every participant rolled back, status commit_failed: abort() next), or
  /// InDoubtError when the outcome is left to recovery: only from the decision step on (the
  /// commit record, a last resource's one-phase commit). An InDoubtError from a participant or
  /// a hook before the decision counts as a no vote: commit() then throws a TransientError
  /// (retry) with the original nested. UsageError when called from a hook, a synchronizer or
  /// a resource manager of this transaction (see the table above). See
  /// <xact/resource_manager.hpp>.
  CommitOutcome commit();
  /// Rolls back every participant. Never throws; a no-op on an ended transaction. Called from
  /// inside begin() or commit() before the decision it dooms the transaction instead (see the
  /// table above).
  void abort() noexcept;
  /// Marks the transaction so that it can only be aborted; up to the decision also from inside
  /// commit(), which then fails. UsageError once the decision is made or the transaction ended.
  void doom();
  bool is_doomed() const noexcept;
  TransactionStatus status() const noexcept { return status_; }
  /// Whether `error` is worth retrying the whole transaction for: a TransientError, or an error
  /// some participant's RetryClassifier says yes to; never an InDoubtError.
  bool is_retryable(const std::exception_ptr& error) const noexcept;

  // --- reports from resource managers ---------------------------------------------------------
  /// For a participant whose rollback failed (an I/O error) inside its tpc_abort or abort,
  /// which are noexcept: the failure is logged, and after a tpc_abort of a recoverable RM the
  /// branch (which may still be prepared, holding its locks) is handed to the re-driver, which
  /// rolls it back by id (RecoverableResource::rollback_prepared) until it succeeds; recovery
  /// rolls back whatever is left after a restart (presumed abort). Never throws; the caller's
  /// error (the failed commit's) is not changed.
  void report_rollback_failure(ResourceManager& rm, std::exception_ptr error) noexcept;
  void report_rollback_failure(ResourceManager& rm, std::string message) noexcept;
  /// For a participant that found, during a live rollback (tpc_abort, abort or a savepoint's
  /// rollback), that it could not undo what it was asked to: `outcome` says what it found
  /// (heuristic_commit: its work stays; heuristic_mixed: partly), `detail` what it expected
  /// and what was there. Like a heuristic outcome found by recovery, it is logged as an error,
  /// counted (Counters::heuristics) and recorded durably in the decision log when the manager
  /// has one (`xact heuristics list`); heuristics() lists it for the caller. Never throws.
  void report_heuristic(ResourceManager& rm, std::string detail,
                        RecoverableResource::Outcome outcome) noexcept;
  /// The heuristic outcomes reported during this transaction, oldest first: after a failed
  /// commit (before abort()) or a savepoint rollback, the caller reads them here.
  const std::vector<HeuristicOutcome>& heuristics() const noexcept { return heuristics_; }
  /// For tpc_finish: true when the commit decision is recorded durably outside the participant
  /// being finished (a commit record forced to the decision log, or a last resource's decision
  /// table), so recovery commits its branch after a crash even if its own commit mark is lost.
  /// False for a sole voter (the others voted read-only) and for unlogged commits: tpc_finish
  /// must then be durable before it returns, or a crash would turn a reported commit into a
  /// presumed abort.
  bool decision_recorded() const noexcept { return decision_recorded_; }

  // --- savepoints -------------------------------------------------------------------------------
  /// A savepoint over every participant. Throws UsageError naming the first participant without
  /// savepoint support unless `optimistic` (then that savepoint cannot be rolled back).
  Savepoint savepoint(bool optimistic = false);

  // --- metadata --------------------------------------------------------------------------------
  const std::string& user() const noexcept { return user_; }
  void set_user(std::string user) { user_ = std::move(user); }
  const std::string& description() const noexcept { return description_; }
  /// Appends a line to the description.
  void note(std::string_view text);
  const std::map<std::string, std::string>& extension() const noexcept { return extension_; }
  void set_extension(std::string key, std::string value);

  // --- per-transaction data for resource managers ----------------------------------------------
  /// The slot for `key` (an RM's address, typically), created empty on first use.
  std::any& data(const void* key);
  /// The slot for `key`, or null.
  std::any* find_data(const void* key) noexcept;

  // --- timeout ---------------------------------------------------------------------------------
  /// Sets the deadline to now + timeout. Past it, commit() and join() throw
  /// TransactionTimeoutError and is_doomed() is true: the transaction must be aborted.
  void set_timeout(Clock::duration timeout);
  std::optional<Clock::time_point> deadline() const noexcept { return deadline_; }
  bool timed_out() const noexcept;

  // --- hooks -----------------------------------------------------------------------------------
  void add_before_commit_hook(std::function<void()> hook);
  void add_after_commit_hook(std::function<void(bool committed)> hook);
  void add_before_abort_hook(std::function<void()> hook);
  void add_after_abort_hook(std::function<void()> hook);

  // --- ids -------------------------------------------------------------------------------------
  /// The global transaction id (assigned on first use).
  const Gtrid& gtrid();
  /// The id of `rm`'s branch: the gtrid plus rm.resource_name() as branch qualifier.
  Xid xid_for(const ResourceManager& rm);

  /// The error that made the commit fail (null unless status() is commit_failed).
  std::exception_ptr failure() const noexcept { return failure_; }

 private:
  friend class BasicTransactionManager;
  friend class Savepoint;
  Transaction(std::shared_ptr<const std::vector<std::weak_ptr<Synchronizer>>> synchronizers,
              std::shared_ptr<DecisionLog> log, std::optional<Clock::duration> timeout);

  // What the transaction is doing right now; decides which calls a hook, a synchronizer or a
  // resource manager may make (the table in the header comment).
  enum class Phase {
    idle,           // no begin(), commit() or abort() of this transaction is running
    beginning,      // the manager's begin(): synchronizers' new_transaction
    before_commit,  // commit(): before-commit hooks, synchronizers' before_completion
    voting,         // commit(): tpc_begin, commit, tpc_vote (phase 1, before the decision)
    decided,        // commit(): from the decision step on (phase 2, after-commit hooks, ...)
    rolling_back,   // abort(), or the clean-up of a failed commit
  };

  void check_joinable(const ResourceManager& rm);
  detail::Participant* find_participant(const ResourceManager& rm) noexcept;
  void doom_during_commit(std::string reason) noexcept;
  void check_before_decision();
  void run_before_commit_hooks();
  // The two-phase commit of the participants (commit() after the hooks), in its three steps.
  CommitOutcome commit_participants();
  // Phase one: refuses a commit whose decision could not be made durable, then tpc_begin and
  // commit on each participant, then the votes of all but the last resource. Returns false when
  // the only participant committed in one phase instead (that was the decision); otherwise fills
  // `voters` (those that voted yes) and leaves the decision to decide().
  bool phase_one(detail::Participant* last, std::vector<detail::Participant*>& voters);
  // The decision: the last resource's one-phase commit, or the forced commit record. Returns
  // whether a commit record was logged.
  bool decide(detail::Participant* last, const std::vector<detail::Participant*>& voters,
              CommitOutcome& outcome);
  // Phase two: tpc_finish on every voter; failures become pending completions for the
  // re-driver; then the done record.
  void phase_two(detail::Participant* last, const std::vector<detail::Participant*>& voters,
                 bool logged, CommitOutcome& outcome);
  std::exception_ptr fail_commit(std::exception_ptr error) noexcept;
  void release_gtrid() noexcept;
  void rollback_to(detail::SavepointState& sp);
  void invalidate_savepoints_from(std::size_t index) noexcept;
  void notify_synchronizers(bool before) noexcept;
  void run_abort_hooks(bool before) noexcept;
  void run_after_commit_hooks(bool committed) noexcept;
  std::string describe() const;

  std::shared_ptr<const std::vector<std::weak_ptr<Synchronizer>>> synchronizers_;
  std::shared_ptr<DecisionLog> log_;
  TransactionStatus status_ = TransactionStatus::active;
  Phase phase_ = Phase::idle;
  bool doom_pending_ = false;            // doomed (or aborted) while status_ is committing
  bool completion_announced_ = false;    // the synchronizers were told before_completion
  std::vector<std::string> late_joins_;  // refused during phase 1: they fail the commit
  std::vector<std::unique_ptr<detail::Participant>> participants_;
  std::vector<std::shared_ptr<detail::SavepointState>> savepoints_;
  std::vector<std::function<void()>> before_commit_;
  std::vector<std::function<void(bool)>> after_commit_;
  std::vector<std::function<void()>> before_abort_;
  std::vector<std::function<void()>> after_abort_;
  std::string user_;
  std::string description_;
  std::map<std::string, std::string> extension_;
  std::unordered_map<const void*, std::any> data_;
  std::optional<Clock::time_point> deadline_;
  Gtrid gtrid_;
  std::exception_ptr failure_;
  std::string doom_reason_;
  std::vector<HeuristicOutcome> heuristics_;
  bool decision_recorded_ = false;
  bool allow_unlogged_decisions_ = false;  // ManagerOptions::allow_unlogged_decisions
};

}  // namespace xact
