#include <xact/transaction.hpp>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <mutex>

#include <pthread.h>
#include <unistd.h>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>

#include "participant.hpp"

namespace xact {

// ---- SortKey -------------------------------------------------------------------------------

std::strong_ordering SortKey::operator<=>(const SortKey& other) const {
  if (v_.index() != other.v_.index()) return v_.index() <=> other.v_.index();
  if (auto* n = std::get_if<std::int64_t>(&v_)) return *n <=> std::get<std::int64_t>(other.v_);
  const int c = std::get<std::string>(v_).compare(std::get<std::string>(other.v_));
  return c < 0 ? std::strong_ordering::less
               : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
}

std::string SortKey::to_string() const {
  if (auto* n = std::get_if<std::int64_t>(&v_)) return std::to_string(*n);
  return "'" + std::get<std::string>(v_) + "'";
}

std::string_view to_string(TransactionStatus status) {
  switch (status) {
    case TransactionStatus::active: return "active";
    case TransactionStatus::doomed: return "doomed";
    case TransactionStatus::committing: return "committing";
    case TransactionStatus::committed: return "committed";
    case TransactionStatus::commit_failed: return "commit_failed";
    case TransactionStatus::aborted: return "aborted";
  }
  return "unknown";
}

namespace {

bool is_a_transient(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const TransientError&) {
    return true;
  } catch (...) {
    return false;
  }
}

bool is_in_doubt(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const InDoubtError&) {
    return true;
  } catch (...) {
    return false;
  }
}

// Transactions of managers without a decision log still need ids that do not collide with
// another run's: a random node id and epoch per process. Per process, not per program image: a
// child made by fork() (a prefork server's workers) inherits the parent's statics and would
// hand out the parent's ids again (MariaDB then refuses the second XA START with 1440), so the
// first id drawn in a new process picks a new node id.
struct EphemeralIds {
  // False in a new process: the first id drawn there picks a new node id and epoch. node and
  // epoch change only under the mutex before `drawn` is published (or in a fork()ed child,
  // which has one thread), so readers that saw `drawn` read them without the lock.
  std::atomic<bool> drawn{false};
  NodeId node;
  std::uint32_t epoch = 0;
  std::atomic<std::uint64_t> sequence{0};
};

std::mutex& ephemeral_mutex() {
  static std::mutex mu;
  return mu;
}

EphemeralIds& ephemeral_ids() {
  static EphemeralIds ids;
  return ids;
}

// fork() marks the ids as not drawn in the child (getpid() on every id was a system call per
// transaction, a tenth of a session write's time). The mutex is held across fork(), so the
// child never inherits it locked by a thread that does not exist there.
void register_ephemeral_fork_handlers() {
  static const int registered =
      ::pthread_atfork([] { ephemeral_mutex().lock(); }, [] { ephemeral_mutex().unlock(); },
                       [] {
                         ephemeral_ids().drawn.store(false, std::memory_order_relaxed);
                         ephemeral_mutex().unlock();
                       });
  (void)registered;
}

// Lock-free once drawn: a process-wide mutex here made many threads' transactions queue.
Gtrid ephemeral_gtrid() {
  EphemeralIds& ids = ephemeral_ids();
  register_ephemeral_fork_handlers();
  if (!ids.drawn.load(std::memory_order_acquire)) {
    std::lock_guard guard(ephemeral_mutex());
    if (!ids.drawn.load(std::memory_order_relaxed)) {
      ids.node = NodeId::random();
      const NodeId r = NodeId::random();
      ids.epoch = static_cast<std::uint32_t>(r.bytes[0]) << 24 |
                  static_cast<std::uint32_t>(r.bytes[1]) << 16 |
                  static_cast<std::uint32_t>(r.bytes[2]) << 8 | r.bytes[3];
      ids.sequence.store(0, std::memory_order_relaxed);
      ids.drawn.store(true, std::memory_order_release);
    }
  }
  return Gtrid(ids.node, ids.epoch, ids.sequence.fetch_add(1, std::memory_order_relaxed) + 1);
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Who finishes what a transaction could not: its decision log's re-driver, or the process's.
Redriver& redriver_of(const std::shared_ptr<DecisionLog>& log) {
  return log ? log->redriver() : Redriver::process();
}

// After `p`'s abort or tpc_abort reported a failed rollback: when a rollback by id can still
// finish it (the RM is recoverable and the transaction drew an id, under which whatever was left
// behind lies), its branch goes to `unrolled`, for the re-driver, which calls rollback_prepared
// until the resource answers (a prepared branch keeps its locks, a compensating one its fences
// and the values it wrote). Otherwise recovery rolls it back after a restart.
void collect_unrolled(Transaction& txn, const Gtrid& gtrid, const detail::Participant& p,
                      std::vector<Redriver::Branch>& unrolled) noexcept {
  if (!p.rollback_failure || gtrid.empty() || p.rm->recoverable() == nullptr) return;
  try {
    const bool joined = p.state == detail::Participant::State::joined;
    unrolled.push_back({p.rm, txn.xid_for(*p.rm),
                        std::string(joined ? "abort" : "tpc_abort") +
                            " failed: " + error_message(p.rollback_failure)});
  } catch (...) {  // out of memory: recovery rolls it back after a restart
  }
}

}  // namespace

// ---- Transaction ----------------------------------------------------------------------------

Transaction::Transaction(
    std::shared_ptr<const std::vector<std::weak_ptr<Synchronizer>>> synchronizers,
    std::shared_ptr<DecisionLog> log, std::optional<Clock::duration> timeout)
    : synchronizers_(std::move(synchronizers)), log_(std::move(log)) {
  if (timeout) set_timeout(*timeout);
}

Transaction::~Transaction() { release_gtrid(); }

void Transaction::release_gtrid() noexcept {
  // Recovery in this process leaves the branches of a running transaction alone; once it
  // ended (or was left in doubt and aborted) they are recovery's to decide.
  if (log_ && !gtrid_.empty()) log_->release(gtrid_);
}

std::string Transaction::describe() const {
  std::string s = "transaction";
  if (!gtrid_.empty()) s += " " + gtrid_.to_hex();
  return s + " (status " + std::string(to_string(status_)) + ")";
}

void Transaction::check_joinable(const ResourceManager& rm) {
  switch (phase_) {
    case Phase::idle:
    case Phase::beginning:
    case Phase::before_commit: break;
    case Phase::voting:
      // Before the decision: the work would be lost, so the commit fails even if the RM
      // swallows this exception (check_before_decision).
      detail::count(detail::Counter::late_joins);
      late_joins_.push_back(rm.resource_name());
      throw UsageError("late join: resource '" + rm.resource_name() +
                       "' tried to join while the transaction is committing (phase 1); the "
                       "commit fails. Join before commit() or from a before-commit hook");
    case Phase::decided: {
      detail::count(detail::Counter::late_joins);
      std::string message = "late join: resource '" + rm.resource_name() + "' tried to join " +
                            describe() +
                            " after its decision; its work is not part of the committed "
                            "transaction. Join before commit(), or begin a new transaction "
                            "after commit() returns";
      log(LogLevel::error, message);
      throw UsageError(message);
    }
    case Phase::rolling_back:
      throw UsageError("resource '" + rm.resource_name() + "' cannot join " + describe() +
                       " while it is being rolled back; begin a new transaction after abort() "
                       "returns");
  }
  switch (status_) {
    case TransactionStatus::active:
    case TransactionStatus::doomed: break;
    case TransactionStatus::committing:  // only in a phase handled above
      throw UsageError("resource '" + rm.resource_name() + "' cannot join a committing " +
                       describe());
    case TransactionStatus::commit_failed:
      throw TransactionFailedError("resource '" + rm.resource_name() +
                                   "' cannot join: the commit of this transaction failed (" +
                                   error_message(failure_) + "); call abort() and begin a new one");
    case TransactionStatus::committed:
    case TransactionStatus::aborted:
      throw UsageError("resource '" + rm.resource_name() + "' cannot join an ended " + describe() +
                       "; begin a new transaction");
  }
  if (timed_out()) {
    throw TransactionTimeoutError("resource '" + rm.resource_name() +
                                  "' cannot join: the transaction ran past its timeout; abort "
                                  "it (retry with a longer timeout if the work is legitimate)");
  }
}

void Transaction::join(std::shared_ptr<ResourceManager> rm) {
  if (!rm) throw UsageError("Transaction::join: null resource manager");
  // A participant joining again from its own protocol calls is no late joiner: its work is in.
  if ((phase_ == Phase::voting || phase_ == Phase::decided) && has_joined(*rm)) return;
  check_joinable(*rm);
  if (has_joined(*rm)) return;
  auto p = std::make_unique<detail::Participant>();
  p->name = rm->resource_name();
  check_branch_name(p->name);
  p->key = rm->sort_key();
  p->savepoints = rm->savepoint_support();
  p->retry = rm->retry_classifier();
  p->one_phase = rm->one_phase_commit();
  p->last_resource = p->one_phase != nullptr && !p->one_phase->can_prepare();
  for (const auto& other : participants_) {
    if (p->last_resource && other->last_resource) {
      throw UsageError("resources '" + other->name + "' and '" + p->name +
                       "' both cannot prepare (one-phase only): at most one such last resource "
                       "can take part in a transaction, since only one can carry the decision. "
                       "Commit the second in a transaction of its own");
    }
    if (other->key == p->key) {
      throw UsageError("resources '" + other->name + "' and '" + p->name +
                       "' have the same sort key " + p->key.to_string() +
                       "; sort keys must be unique within a transaction so the commit order is "
                       "deterministic: include an instance name in sort_key()");
    }
    if (other->name == p->name) {
      throw UsageError("two resources named '" + p->name +
                       "' joined one transaction; resource names are branch qualifiers and "
                       "must be unique: give each instance its own name");
    }
  }
  p->rm = std::move(rm);
  participants_.push_back(std::move(p));
}

bool Transaction::has_joined(const ResourceManager& rm) const noexcept {
  return std::any_of(participants_.begin(), participants_.end(),
                     [&](const auto& p) { return p->rm.get() == &rm; });
}

bool Transaction::has_participant_named(std::string_view name) const noexcept {
  return std::any_of(participants_.begin(), participants_.end(),
                     [&](const auto& p) { return p->name == name; });
}

std::size_t Transaction::participant_count() const noexcept { return participants_.size(); }

void Transaction::doom() {
  switch (phase_) {
    case Phase::rolling_back: return;  // it is being rolled back already: the promise holds
    case Phase::decided:
      throw UsageError("doom(): " + describe() + " is past its decision and commits");
    case Phase::voting: doom_during_commit("doom() was called during commit()"); return;
    case Phase::idle:
    case Phase::beginning:
    case Phase::before_commit: break;
  }
  switch (status_) {
    case TransactionStatus::active: status_ = TransactionStatus::doomed; return;
    case TransactionStatus::doomed: return;
    default: throw UsageError("doom(): the " + describe() + " can no longer be doomed");
  }
}

bool Transaction::is_doomed() const noexcept {
  return status_ == TransactionStatus::doomed || doom_pending_ ||
         ((status_ == TransactionStatus::active) && timed_out());
}

void Transaction::doom_during_commit(std::string reason) noexcept {
  if (status_ == TransactionStatus::active) status_ = TransactionStatus::doomed;
  if (status_ == TransactionStatus::committing) doom_pending_ = true;
  if (doom_reason_.empty()) doom_reason_ = std::move(reason);
}

void Transaction::check_before_decision() {
  if (status_ == TransactionStatus::commit_failed) {
    throw TransactionFailedError("commit(): " + describe() +
                                 " failed inside a before-commit hook (" + error_message(failure_) +
                                 "); call abort()");
  }
  if (!late_joins_.empty()) {
    std::string names;
    for (const auto& n : late_joins_) names += (names.empty() ? "'" : ", '") + n + "'";
    throw UsageError("late join: resource " + names + " tried to join " + describe() +
                     " during phase 1 of its commit; the commit fails rather than drop that "
                     "work. Join before commit() or from a before-commit hook");
  }
  if (status_ == TransactionStatus::doomed || doom_pending_) {
    throw DoomedTransactionError("commit(): the transaction was doomed during commit() (" +
                                 doom_reason_ +
                                 "); nothing was committed and every participant was rolled "
                                 "back; abort it");
  }
}

void Transaction::set_timeout(Clock::duration timeout) { deadline_ = Clock::now() + timeout; }

bool Transaction::timed_out() const noexcept { return deadline_ && Clock::now() > *deadline_; }

void Transaction::note(std::string_view text) {
  if (!description_.empty()) description_ += '\n';
  description_ += text;
}

void Transaction::set_extension(std::string key, std::string value) {
  extension_[std::move(key)] = std::move(value);
}

std::any& Transaction::data(const void* key) { return data_[key]; }

std::any* Transaction::find_data(const void* key) noexcept {
  auto it = data_.find(key);
  return it == data_.end() ? nullptr : &it->second;
}

void Transaction::add_before_commit_hook(std::function<void()> hook) {
  before_commit_.push_back(std::move(hook));
}
void Transaction::add_after_commit_hook(std::function<void(bool)> hook) {
  after_commit_.push_back(std::move(hook));
}
void Transaction::add_before_abort_hook(std::function<void()> hook) {
  before_abort_.push_back(std::move(hook));
}
void Transaction::add_after_abort_hook(std::function<void()> hook) {
  after_abort_.push_back(std::move(hook));
}

const Gtrid& Transaction::gtrid() {
  if (gtrid_.empty()) gtrid_ = log_ ? log_->new_gtrid() : ephemeral_gtrid();
  return gtrid_;
}

Xid Transaction::xid_for(const ResourceManager& rm) {
  Xid xid;
  xid.gtrid = gtrid();
  xid.bqual = rm.resource_name();
  return xid;
}

bool Transaction::is_retryable(const std::exception_ptr& error) const noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const InDoubtError&) {
    return false;  // the commit may have happened: never run it twice
  } catch (const TransientError&) {
    return true;
  } catch (...) {
  }
  return std::any_of(participants_.begin(), participants_.end(), [&](const auto& p) {
    return p->retry != nullptr && p->retry->should_retry(error);
  });
}

// ---- hooks and synchronizers -----------------------------------------------------------------

void Transaction::run_before_commit_hooks() {
  // A hook may add hooks (and join RMs); each runs exactly once.
  while (!before_commit_.empty()) {
    auto hooks = std::move(before_commit_);
    before_commit_.clear();
    for (auto& hook : hooks) hook();
  }
}

void Transaction::run_after_commit_hooks(bool committed) noexcept {
  // A hook may add hooks: they run too, each exactly once (as Zope runs them).
  while (!after_commit_.empty()) {
    auto hooks = std::move(after_commit_);
    after_commit_.clear();
    for (auto& hook : hooks) {
      try {
        hook(committed);
      } catch (...) {
        log(LogLevel::error, "after-commit hook failed (the outcome stands): " +
                                 error_message(std::current_exception()));
      }
    }
  }
}

void Transaction::run_abort_hooks(bool before) noexcept {
  auto& pending = before ? before_abort_ : after_abort_;
  while (!pending.empty()) {  // hooks added by a hook run too
    auto hooks = std::move(pending);
    pending.clear();
    for (auto& hook : hooks) {
      try {
        hook();
      } catch (...) {
        log(LogLevel::error, std::string(before ? "before" : "after") +
                                 "-abort hook failed (the abort goes on): " +
                                 error_message(std::current_exception()));
      }
    }
  }
}

void Transaction::notify_synchronizers(bool before) noexcept {
  if (!synchronizers_) return;
  for (const auto& weak : *synchronizers_) {
    if (auto s = weak.lock()) {
      try {
        before ? s->before_completion(*this) : s->after_completion(*this);
      } catch (...) {
        log(LogLevel::error, "synchronizer failed: " + error_message(std::current_exception()));
      }
    }
  }
}

// ---- commit -------------------------------------------------------------------------------------

CommitOutcome Transaction::commit() {
  if (phase_ != Phase::idle) {
    throw UsageError("commit() called from inside " +
                     std::string(phase_ == Phase::beginning      ? "begin()"
                                 : phase_ == Phase::rolling_back ? "abort()"
                                                                 : "commit()") +
                     " of the same " + describe() +
                     " (a hook, a synchronizer or a resource manager): a transaction is "
                     "committed once, by the code that began it");
  }
  switch (status_) {
    case TransactionStatus::active: break;
    case TransactionStatus::doomed:
      throw DoomedTransactionError("commit(): the transaction is doomed" +
                                   (doom_reason_.empty() ? "" : " (" + doom_reason_ + ")") +
                                   "; abort it");
    case TransactionStatus::committing:
      throw UsageError(
          "commit() called while the transaction is already committing (from a "
          "hook or a resource manager?)");
    case TransactionStatus::commit_failed:
      throw TransactionFailedError("commit(): an earlier commit of this transaction failed (" +
                                   error_message(failure_) +
                                   "); call abort() and begin a new transaction");
    case TransactionStatus::committed:
    case TransactionStatus::aborted:
      throw UsageError("commit(): the " + describe() + " has ended; begin a new transaction");
  }
  if (timed_out()) {
    status_ = TransactionStatus::doomed;
    doom_reason_ = "it ran past its timeout";
    throw TransactionTimeoutError(
        "commit(): the transaction ran past its timeout and was not committed; abort it (and "
        "retry with a longer timeout if the work is legitimate)");
  }
  auto keep_alive = shared_from_this();  // a hook may make the manager drop this transaction
  try {
    phase_ = Phase::before_commit;
    run_before_commit_hooks();
    completion_announced_ = true;
    if (synchronizers_) {
      for (const auto& weak : *synchronizers_) {
        if (auto s = weak.lock()) s->before_completion(*this);
      }
    }
    check_before_decision();  // a hook or synchronizer may have doomed or aborted it
    phase_ = Phase::voting;
    status_ = TransactionStatus::committing;
    invalidate_savepoints_from(0);
    CommitOutcome outcome = commit_participants();
    status_ = TransactionStatus::committed;
    detail::count(detail::Counter::commits);
    release_gtrid();
    // Synchronizers first, then the after-commit hooks: Zope's order.
    notify_synchronizers(false);
    run_after_commit_hooks(true);
    participants_.clear();
    phase_ = Phase::idle;
    return outcome;
  } catch (...) {
    auto error = fail_commit(std::current_exception());
    phase_ = Phase::idle;
    std::rethrow_exception(error);
  }
}

namespace {

CommitRecord make_commit_record(Transaction& txn,
                                const std::vector<detail::Participant*>& branches) {
  CommitRecord record;
  record.gtrid = txn.gtrid();
  record.time_us = now_us();
  record.participants.reserve(branches.size());
  for (const auto* p : branches) record.participants.push_back({p->name, p->name});
  return record;
}

}  // namespace

CommitOutcome Transaction::commit_participants() {
  CommitOutcome outcome;
  std::sort(participants_.begin(), participants_.end(),
            [](const auto& a, const auto& b) { return a->key < b->key; });

  detail::Participant* last = nullptr;  // join() admits at most one
  for (auto& p : participants_) {
    if (p->last_resource) last = p.get();
  }

  std::vector<detail::Participant*> voters;
  if (!phase_one(last, voters)) {
    outcome.committed = true;
    return outcome;
  }
  const bool logged = decide(last, voters, outcome);
  phase_two(last, voters, logged, outcome);
  return outcome;
}

bool Transaction::phase_one(detail::Participant* last, std::vector<detail::Participant*>& voters) {
  if (!log_ && !allow_unlogged_decisions_ && last == nullptr && participants_.size() >= 2) {
    // Two or more may vote yes, and nothing would make the decision durable: refused before
    // anyone is told anything (the votes are not known yet; read-only voters count too).
    std::string names;
    for (const auto& p : participants_) names += (names.empty() ? "'" : ", '") + p->name + "'";
    throw UsageError(
        "commit(): " + describe() + " has " + std::to_string(participants_.size()) +
        " participants that can vote (" + names +
        ") and its manager has no decision log, so the commit decision could not be made "
        "durable: a crash during phase 2 would leave them disagreeing. Give the manager a "
        "DecisionLog (ManagerOptions::decision_log), or set "
        "ManagerOptions::allow_unlogged_decisions = true to accept that risk");
  }
  XACT_CRASH_POINT("coordinator.before_tpc_begin");
  for (auto& p : participants_) {
    // Begun before the call: an RM whose tpc_begin throws may have started something, and it
    // must never see abort() after tpc_begin.
    p->state = detail::Participant::State::begun;
    p->rm->tpc_begin(*this);
  }
  XACT_CRASH_POINT("coordinator.after_tpc_begin");
  for (auto& p : participants_) p->rm->commit(*this);
  XACT_CRASH_POINT("coordinator.after_commit");

  // One participant that can commit in one phase: no prepare, no log.
  if (participants_.size() == 1 && participants_[0]->one_phase != nullptr) {
    auto& p = *participants_[0];
    check_before_decision();
    phase_ = Phase::decided;  // the one-phase commit is the decision
    p.one_phase->commit_one_phase(*this, nullptr);
    p.state = detail::Participant::State::finished;
    return false;
  }

  for (auto& p : participants_) {
    if (p.get() == last) continue;
    if (p->rm->tpc_vote(*this) == Vote::yes) {
      p->state = detail::Participant::State::voted_yes;
      voters.push_back(p.get());
    } else {
      p->state = detail::Participant::State::voted_read_only;
    }
    XACT_CRASH_POINT("coordinator.after_vote");
  }
  XACT_CRASH_POINT("coordinator.before_commit_record");
  check_before_decision();  // an RM may have doomed the transaction or tried a late join
  return true;
}

bool Transaction::decide(detail::Participant* last, const std::vector<detail::Participant*>& voters,
                         CommitOutcome& outcome) {
  // The decision. Past this point a failure no longer rolls anything back, and an
  // InDoubtError means what it says.
  phase_ = Phase::decided;
  bool logged = false;
  if (last != nullptr) {
    if (voters.empty()) {
      last->one_phase->commit_one_phase(*this, nullptr);
    } else {
      const CommitRecord record = make_commit_record(*this, voters);
      last->one_phase->commit_one_phase(*this, &record);
      outcome.decision_logged = true;
    }
    last->state = detail::Participant::State::finished;
    XACT_CRASH_POINT("coordinator.after_last_resource");
  } else if (voters.size() >= 2) {
    if (log_) {
      try {
        log_->log_commit(make_commit_record(*this, voters));
      } catch (...) {
        // The record may or may not be on disk: only recovery, reading the log after a
        // restart, can tell. Leave every voter prepared.
        throw InDoubtError("the commit record of " + describe() + " could not be made durable (" +
                           error_message(std::current_exception()) +
                           "); the participants stay prepared and recovery decides after a "
                           "restart. Do not retry.");
      }
      logged = true;
      outcome.decision_logged = true;
      detail::count(detail::Counter::decisions_logged);
      XACT_CRASH_POINT("coordinator.after_commit_record");
    }
  }
  status_ = TransactionStatus::committed;
  outcome.committed = true;
  decision_recorded_ = outcome.decision_logged;
  return logged;
}

void Transaction::phase_two(detail::Participant* last,
                            const std::vector<detail::Participant*>& voters, bool logged,
                            CommitOutcome& outcome) {
  // Phase 2: every voter is told, whatever happens to the others.
  std::vector<detail::Participant*> unfinished;
  for (auto* p : voters) {
    try {
      p->rm->tpc_finish(*this);
      p->state = detail::Participant::State::finished;
      XACT_CRASH_POINT("coordinator.after_finish");
    } catch (...) {
      outcome.pending.push_back(
          {p->name, xid_for(*p->rm), error_message(std::current_exception())});
      unfinished.push_back(p);
    }
  }

  if (!outcome.pending.empty()) {
    detail::count(detail::Counter::pending_completions, outcome.pending.size());
    // Single voter or last-resource commit: no record in the log yet, but recovery must not
    // presume abort for a branch this commit reported committed.
    if (log_ && !logged) {
      try {
        log_->log_commit(make_commit_record(*this, unfinished));
        logged = true;
        outcome.decision_logged = true;
        detail::count(detail::Counter::decisions_logged);
      } catch (...) {
        if (!outcome.decision_logged) {
          throw InDoubtError("resource '" + unfinished.front()->name +
                             "' failed to finish the commit of " + describe() + " (" +
                             outcome.pending.front().error +
                             ") and the decision log could not record it (" +
                             error_message(std::current_exception()) +
                             "); recovery decides after a restart. Do not retry.");
        }
      }
    }
    for (const auto& pc : outcome.pending) {
      log(LogLevel::warning, "committed " + describe() + ", but resource '" + pc.resource +
                                 "' failed to finish (" + pc.error +
                                 "); its completion is pending and the re-driver finishes it");
    }
    if (!log_) {
      log(LogLevel::error, "no decision log: the pending completions of " + describe() +
                               " are known only to this process");
    }
    std::vector<Redriver::Branch> owed;
    for (std::size_t i = 0; i < unfinished.size(); ++i) {
      owed.push_back({unfinished[i]->rm, outcome.pending[i].xid, outcome.pending[i].error});
    }
    redriver_of(log_).hand_off(gtrid_, /*commit=*/true, std::move(owed),
                               last != nullptr && !voters.empty() ? last->rm : nullptr);
  } else {
    if (logged) {
      try {
        log_->log_done(gtrid_);
        XACT_CRASH_POINT("coordinator.after_done_record");
      } catch (...) {
        // Not forced and not needed for correctness: recovery re-drives idempotently.
        log(LogLevel::warning, "could not write the done record of " + describe() + ": " +
                                   error_message(std::current_exception()));
      }
    }
    if (last != nullptr && !voters.empty()) {
      if (auto* store = last->rm->decision_store()) store->forget_decision(gtrid_);
    }
  }
}

namespace {

// An InDoubtError from before the decision (a participant lost its connection during tpc_vote,
// say) cannot mean the transaction may have committed: no decision exists. It is a no vote, and
// the application gets a retryable error with the participant's own nested.
std::exception_ptr no_vote_from_in_doubt(const std::exception_ptr& error) noexcept {
  try {
    try {
      std::rethrow_exception(error);
    } catch (...) {
      std::throw_with_nested(TransientError(
          "commit(): a participant reported an unknown outcome before the decision (" +
          error_message(error) +
          "); that counts as a no vote: every participant was rolled back (a branch that "
          "cannot be reached now is rolled back by recovery). Retry the transaction"));
    }
  } catch (...) {
    return std::current_exception();
  }
}

}  // namespace

std::exception_ptr Transaction::fail_commit(std::exception_ptr error) noexcept {
  if (status_ == TransactionStatus::commit_failed) {
    // Cleaned up already: a savepoint failed inside a before-commit hook, and the commit that
    // ran the hook now fails too.
    phase_ = Phase::idle;
    return error;
  }
  const Phase outer = phase_;
  const bool decided = phase_ == Phase::decided;
  phase_ = Phase::rolling_back;
  const bool transient = is_a_transient(error);
  bool in_doubt = is_in_doubt(error);
  if (in_doubt && !decided) {
    error = no_vote_from_in_doubt(error);
    in_doubt = false;
  }
  status_ = TransactionStatus::commit_failed;
  doom_pending_ = false;
  late_joins_.clear();
  failure_ = error;
  invalidate_savepoints_from(0);
  detail::count(detail::Counter::commit_failures);
  if (transient) detail::count(detail::Counter::conflicts);
  if (in_doubt) {
    // Nothing is rolled back: the participants stay prepared until recovery decides.
    detail::count(detail::Counter::in_doubt);
    log(LogLevel::error, "in doubt: " + error_message(error));
    notify_synchronizers(false);
    run_after_commit_hooks(false);
    phase_ = Phase::idle;
    return error;
  }
  detail::count(detail::Counter::aborts);
  run_abort_hooks(true);
  // The synchronizers hear before_completion before the rollback, as in abort(), if a failed
  // before-commit hook or savepoint rollback ended the transaction before they heard it.
  if (!completion_announced_) notify_synchronizers(true);
  completion_announced_ = true;
  // In commit order, whatever the order of joining (a failure in a before-commit hook comes
  // before the sort in commit_participants).
  std::stable_sort(participants_.begin(), participants_.end(),
                   [](const auto& a, const auto& b) { return a->key < b->key; });
  std::vector<Redriver::Branch> unrolled;
  for (auto& p : participants_) {
    using S = detail::Participant::State;
    switch (p->state) {
      case S::joined:
        // One whose abort already failed (a savepoint rollback) is not asked again.
        if (!p->rollback_failure) p->rm->abort(*this);
        collect_unrolled(*this, gtrid_, *p, unrolled);
        break;
      case S::begun:
      case S::voted_yes:
        p->rollback_failure = nullptr;
        p->rm->tpc_abort(*this);  // noexcept: a failure is reported (report_rollback_failure)
        collect_unrolled(*this, gtrid_, *p, unrolled);
        break;
      case S::voted_read_only:
      case S::finished: break;
    }
  }
  if (!unrolled.empty()) redriver_of(log_).hand_off(gtrid_, /*commit=*/false, std::move(unrolled));
  // The order of Zope's failed commit followed by its abort(), each call once: after-abort
  // hooks, after_completion, after-commit hooks (told false).
  run_abort_hooks(false);
  notify_synchronizers(false);
  run_after_commit_hooks(false);
  // Inside a before-commit hook the running commit() still has to fail (and end the phase).
  phase_ = outer == Phase::before_commit ? Phase::rolling_back : Phase::idle;
  return error;
}

// ---- abort
// ----------------------------------------------------------------------------------------

void Transaction::abort() noexcept {
  switch (phase_) {
    case Phase::idle: break;
    case Phase::beginning:
    case Phase::before_commit:
    case Phase::voting:
      // The running begin() or commit() cannot be unwound from here; doomed, the transaction
      // can only be aborted: the commit fails and rolls everything back.
      doom_during_commit(phase_ == Phase::beginning
                             ? "abort() was called from a synchronizer's new_transaction"
                             : "abort() was called during commit(), before the decision");
      return;
    case Phase::decided:
      log(LogLevel::error, "abort() called after the decision of " + describe() +
                               ": ignored, the transaction commits");
      return;
    case Phase::rolling_back: return;  // being rolled back already
  }
  switch (status_) {
    case TransactionStatus::committed:
    case TransactionStatus::aborted: return;
    case TransactionStatus::committing: return;  // only in a phase handled above
    case TransactionStatus::commit_failed:
      // Everything was rolled back (or left to recovery) when the commit failed, and the hooks
      // ran then; this only ends the transaction.
      status_ = TransactionStatus::aborted;
      participants_.clear();
      release_gtrid();
      return;
    case TransactionStatus::active:
    case TransactionStatus::doomed: break;
  }
  auto keep_alive = shared_from_this();
  phase_ = Phase::rolling_back;
  invalidate_savepoints_from(0);
  run_abort_hooks(true);
  completion_announced_ = true;
  notify_synchronizers(true);
  std::vector<Redriver::Branch> unrolled;
  for (auto& p : participants_) {
    p->rollback_failure = nullptr;
    p->rm->abort(*this);
    collect_unrolled(*this, gtrid_, *p, unrolled);
  }
  if (!unrolled.empty()) redriver_of(log_).hand_off(gtrid_, /*commit=*/false, std::move(unrolled));
  status_ = TransactionStatus::aborted;
  participants_.clear();
  release_gtrid();
  detail::count(detail::Counter::aborts);
  run_abort_hooks(false);
  notify_synchronizers(false);
  phase_ = Phase::idle;
}

// ---- reports from resource managers
// ---------------------------------------------------------------------

detail::Participant* Transaction::find_participant(const ResourceManager& rm) noexcept {
  for (auto& p : participants_) {
    if (p->rm.get() == &rm) return p.get();
  }
  return nullptr;
}

void Transaction::report_rollback_failure(ResourceManager& rm, std::exception_ptr error) noexcept {
  try {
    detail::Participant* p = find_participant(rm);
    const std::string name = p != nullptr ? p->name : rm.resource_name();
    if (!error) error = std::make_exception_ptr(ResourceError("rollback failed"));
    const bool handed_over = p != nullptr && !gtrid_.empty() && rm.recoverable() != nullptr;
    // Handed over, the rollback is still on its way (a lost PREPARE's session that has not
    // ended yet, a server restarting): a warning. Left for a restart: an error.
    log(handed_over ? LogLevel::warning : LogLevel::error,
        "resource '" + name + "': rollback of " + describe() + " failed: " + error_message(error) +
            (handed_over ? " (the re-driver rolls back by id what was left behind)"
                         : " (recovery rolls back what was left behind, after a restart)"));
    if (p != nullptr) p->rollback_failure = error;
  } catch (...) {  // out of memory: the branch is recovery's after a restart
  }
}

void Transaction::report_rollback_failure(ResourceManager& rm, std::string message) noexcept {
  try {
    report_rollback_failure(rm, std::make_exception_ptr(ResourceError(std::move(message))));
  } catch (...) {
  }
}

void Transaction::report_heuristic(ResourceManager& rm, std::string what,
                                   RecoverableResource::Outcome outcome) noexcept {
  try {
    HeuristicOutcome h;
    detail::Participant* p = find_participant(rm);
    h.resource = p != nullptr ? p->name : rm.resource_name();
    h.xid = xid_for(rm);
    h.outcome = outcome;
    h.detail = std::move(what);
    detail::count(detail::Counter::heuristics);
    if (log_) {
      try {
        HeuristicRecord record;
        record.gtrid = h.xid.gtrid;
        record.resource = h.resource;
        record.bqual = h.xid.bqual;
        record.outcome = std::string(to_string(outcome));
        record.detail = "found during the rollback of a live transaction: " + h.detail;
        log_->log_heuristic(record);
        h.recorded = true;
      } catch (...) {
        log(LogLevel::error, "could not record the heuristic outcome of resource '" + h.resource +
                                 "' for " + h.xid.to_gid() + " in the decision log (" +
                                 error_message(std::current_exception()) + ")");
      }
    }
    log(LogLevel::error, "heuristic outcome on resource '" + h.resource + "' for " +
                             h.xid.to_gid() + " during the rollback of " + describe() + ": " +
                             std::string(to_string(outcome)) + ": " + h.detail +
                             (h.recorded ? "; recorded until an operator forgets it"
                                         : "; not recorded (no decision log)"));
    heuristics_.push_back(std::move(h));
  } catch (...) {
  }
}

// ---- savepoints
// -------------------------------------------------------------------------------------

Savepoint Transaction::savepoint(bool optimistic) {
  if (phase_ == Phase::rolling_back && status_ != TransactionStatus::commit_failed) {
    throw UsageError("savepoint(): " + describe() + " is being aborted");
  }
  if (status_ == TransactionStatus::commit_failed) {
    throw TransactionFailedError("savepoint(): the commit of this transaction failed (" +
                                 error_message(failure_) + "); call abort()");
  }
  if (status_ != TransactionStatus::active && status_ != TransactionStatus::doomed) {
    throw UsageError("savepoint(): not possible on a " + describe());
  }
  auto sp = std::make_shared<detail::SavepointState>();
  for (const auto& p : participants_) {
    if (p->savepoints == nullptr) {
      if (!optimistic) {
        throw UsageError("savepoint(): resource '" + p->name +
                         "' does not support savepoints; ask for an optimistic savepoint "
                         "(which cannot be rolled back) or do without");
      }
      if (sp->unsupported.empty()) sp->unsupported = p->name;
    }
  }
  sp->rm_savepoints.reserve(participants_.size());
  for (const auto& p : participants_) {
    if (p->savepoints == nullptr) {
      sp->rm_savepoints.push_back(nullptr);
      continue;
    }
    try {
      sp->rm_savepoints.push_back(p->savepoints->savepoint(*this));
    } catch (...) {
      // The participants' state is unknown now.
      std::rethrow_exception(fail_commit(std::current_exception()));
    }
  }
  sp->txn = weak_from_this();
  sp->index = savepoints_.size();
  sp->participants_at = participants_.size();
  savepoints_.push_back(sp);
  return Savepoint(std::move(sp));
}

void Transaction::invalidate_savepoints_from(std::size_t index) noexcept {
  for (std::size_t i = index; i < savepoints_.size(); ++i) savepoints_[i]->valid = false;
  if (index < savepoints_.size()) savepoints_.resize(index);
}

void Transaction::rollback_to(detail::SavepointState& sp) {
  if (status_ == TransactionStatus::commit_failed) {
    throw TransactionFailedError("savepoint rollback: the transaction failed (" +
                                 error_message(failure_) + "); call abort()");
  }
  if (!sp.unsupported.empty()) {
    throw UsageError("savepoint rollback: resource '" + sp.unsupported +
                     "' has no savepoint support (the savepoint was optimistic); abort the "
                     "transaction instead");
  }
  // Zope's order: the savepoint's participants roll back in joining order, then those that
  // joined after it (they had nothing to do as of it) are aborted, in joining order, and leave.
  for (auto& rsp : sp.rm_savepoints) {
    if (!rsp) continue;
    try {
      rsp->rollback();
    } catch (...) {
      std::rethrow_exception(fail_commit(std::current_exception()));
    }
  }
  std::exception_ptr abort_failure;
  for (std::size_t i = sp.participants_at; i < participants_.size(); ++i) {
    detail::Participant& p = *participants_[i];
    p.rollback_failure = nullptr;
    p.rm->abort(*this);
    if (p.rollback_failure && !abort_failure) abort_failure = p.rollback_failure;
  }
  if (abort_failure) {
    // What a later joiner wrote may still be there: the transaction cannot go on (it would
    // commit it, or its rollback by id would undo what comes next). It fails and rolls back;
    // the joiners whose abort failed stay participants so that theirs is re-driven, the others
    // leave (aborted once).
    participants_.erase(
        std::remove_if(participants_.begin() + sp.participants_at, participants_.end(),
                       [](const auto& p) { return !p->rollback_failure; }),
        participants_.end());
    std::rethrow_exception(fail_commit(abort_failure));
  }
  participants_.resize(sp.participants_at);
  invalidate_savepoints_from(sp.index + 1);
}

void Savepoint::rollback() {
  if (!state_) throw UsageError("Savepoint::rollback(): empty savepoint");
  auto txn = state_->txn.lock();
  if (!txn || !state_->valid) {
    throw UsageError(
        "Savepoint::rollback(): the savepoint is no longer valid (the transaction "
        "ended, committed, or rolled back to an earlier savepoint)");
  }
  txn->rollback_to(*state_);
}

bool Savepoint::valid() const noexcept { return state_ && state_->valid && !state_->txn.expired(); }

}  // namespace xact
