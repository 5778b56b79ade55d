#include <xact/sql/sql_resource.hpp>

#include <algorithm>
#include <any>
#include <chrono>
#include <thread>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/transaction.hpp>

namespace xact::sql {

namespace {

template <class E>
bool is_a(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

// One transaction's branch on this database. Lives in the transaction's data slot for this
// resource, so it dies with the transaction.
struct SqlResource::Branch {
  enum class State {
    idle,         // joined; no database transaction yet
    active,       // BEGIN sent; statements may run
    preparing,    // the prepare was sent and did not answer yes
    prepared,     // voted yes; the connection went back to the pool
    finished,     // committed, or ended read-only
    rolled_back,  // rolled back (or left to recovery to roll back)
  };

  State state = State::idle;
  PooledConnection lease;
  std::shared_ptr<Connection> borrowed;  // enlisted by the application
  Xid xid;
  bool used = false;          // a statement ran, or the application got the connection
  std::exception_ptr failed;  // a statement failed and aborted the database transaction
  std::uint64_t epoch = 0;    // grows at every begin; savepoints belong to one epoch
  std::uint64_t savepoints = 0;
  // Work written at commit (add_extension), in the order added.
  std::vector<std::shared_ptr<BranchExtension>> extensions;

  // Tells every extension its pending work is gone, and drops them.
  void extensions_rolled_back(Transaction& txn) noexcept {
    auto gone = std::move(extensions);
    extensions.clear();
    for (auto& e : gone) e->rolled_back(txn);
  }

  Connection* conn() const noexcept { return borrowed ? borrowed.get() : lease.get(); }

  // Gives the pooled connection back (closed if broken) and drops a borrowed one.
  void release() noexcept {
    lease.reset();
    borrowed.reset();
  }

  ~Branch() {
    // A transaction destroyed with its branch still open (normally every path ends it first):
    // closing the connection makes the server roll the branch back.
    if (state == State::active && lease) lease.discard();
  }
};

// A savepoint of one branch: a database savepoint, or "before the branch began".
class SqlResource::BranchSavepoint : public ResourceSavepoint {
 public:
  BranchSavepoint(std::shared_ptr<SqlResource> rm, std::weak_ptr<Branch> branch,
                  std::uint64_t epoch, std::string name, Transaction& txn)
      : rm_(std::move(rm)),
        branch_(std::move(branch)),
        epoch_(epoch),
        name_(std::move(name)),
        txn_(&txn) {
    if (auto b = branch_.lock()) {
      for (auto& e : b->extensions) undo_.emplace_back(e, e->savepoint(txn));
    }
  }

  void rollback() override {
    auto b = branch_.lock();
    if (!b) throw UsageError("savepoint of resource '" + rm_->name_ + "': the transaction ended");
    rollback_database(*b);
    // The extensions' pending work goes back with the branch: those added since the savepoint
    // forget theirs, the others undo what they did since.
    std::vector<std::shared_ptr<BranchExtension>> kept;
    for (auto& [e, undo] : undo_) {
      if (std::find(b->extensions.begin(), b->extensions.end(), e) == b->extensions.end()) continue;
      kept.push_back(e);
      if (undo) undo();
    }
    for (auto& e : b->extensions) {
      if (std::find(kept.begin(), kept.end(), e) == kept.end()) e->rolled_back(*txn_);
    }
    b->extensions = std::move(kept);
  }

 private:
  void rollback_database(Branch& bref) {
    Branch* b = &bref;
    if (name_.empty()) {  // taken before the branch began: undo all of it
      if (b->state == Branch::State::active) {
        auto borrowed = b->borrowed;  // an enlisted connection stays enlisted
        rm_->end_unprepared(*b);
        b->borrowed = std::move(borrowed);
      }
      b->state = Branch::State::idle;
      b->used = false;
      b->failed = nullptr;
      return;
    }
    if (b->state != Branch::State::active || b->epoch != epoch_) {
      throw UsageError("savepoint of resource '" + rm_->name_ +
                       "' is no longer valid: its branch was rolled back or ended");
    }
    rm_->rollback_to_savepoint(*b->conn(), name_);
    b->failed = nullptr;
  }

  std::shared_ptr<SqlResource> rm_;
  std::weak_ptr<Branch> branch_;
  std::uint64_t epoch_;
  std::string name_;  // empty: before the branch began
  Transaction* txn_;  // the savepoint dies with its transaction
  std::vector<std::pair<std::shared_ptr<BranchExtension>, std::function<void()>>> undo_;
};

// ---- construction ----------------------------------------------------------------------------

SqlResource::SqlResource(std::string name, std::shared_ptr<ConnectionPool> pool)
    : name_(std::move(name)), pool_(std::move(pool)) {
  check_branch_name(name_);
  if (!pool_) throw UsageError("SqlResource '" + name_ + "': no connection pool");
}

SqlResource::~SqlResource() = default;

bool SqlResource::branch_wrote(Connection&) { return true; }

// ---- branches ----------------------------------------------------------------------------------

SqlResource::Branch* SqlResource::find_branch(Transaction& txn) const {
  std::any* slot = txn.find_data(this);
  if (slot == nullptr || !slot->has_value()) return nullptr;
  return std::any_cast<std::shared_ptr<Branch>&>(*slot).get();
}

SqlResource::Branch& SqlResource::join_branch(Transaction& txn) {
  if (!txn.has_joined(*this)) txn.join(shared_from_this());
  std::any& slot = txn.data(this);
  if (!slot.has_value()) slot = std::make_shared<Branch>();
  return *std::any_cast<std::shared_ptr<Branch>&>(slot);
}

SqlResource::Branch& SqlResource::begun_branch(Transaction& txn) {
  Branch& b = join_branch(txn);
  switch (b.state) {
    case Branch::State::active: return b;
    case Branch::State::idle: break;
    default:
      throw UsageError("resource '" + name_ +
                       "': the branch of this transaction is already voting or ended; run "
                       "statements before the commit (or from a before-commit hook)");
  }
  if (b.conn() == nullptr) b.lease = pool_->acquire();
  b.xid = txn.xid_for(*this);
  try {
    begin_branch_of(txn, *b.conn(), b.xid);
  } catch (...) {
    if (b.lease && b.lease->broken()) b.lease.discard();
    b.lease.reset();
    throw;
  }
  b.state = Branch::State::active;
  b.used = false;
  b.failed = nullptr;
  ++b.epoch;
  return b;
}

void SqlResource::end_unprepared(Branch& b) noexcept {
  if (b.state == Branch::State::active && b.conn() != nullptr && !b.conn()->broken()) {
    try {
      rollback_branch(*b.conn(), b.xid);
    } catch (...) {
      // A connection that cannot roll back is closed; the server rolls the branch back.
      log(LogLevel::warning, "resource '" + name_ + "': ROLLBACK failed (" +
                                 error_message(std::current_exception()) +
                                 "); the connection is closed, which rolls the branch back");
      if (b.lease) b.lease.discard();
    }
  } else if (b.state == Branch::State::active && b.lease) {
    b.lease.discard();
  }
  b.release();
  b.state = Branch::State::rolled_back;
}

template <class F>
void SqlResource::on_any_connection(F&& f) {
  // A pooled connection may have died since it was checked (a server restart between the
  // health check and the statement): one retry on a fresh connection.
  for (int attempt = 1;; ++attempt) {
    PooledConnection c = pool_->acquire();
    try {
      f(*c);
      return;
    } catch (const ConnectionLost&) {
      c.discard();
      if (attempt >= 2) throw;
    }
  }
}

// ---- the application's calls --------------------------------------------------------------------

Result SqlResource::execute(Transaction& txn, std::string_view sql, const Params& params) {
  Branch& b = begun_branch(txn);
  b.used = true;
  try {
    return b.conn()->execute(sql, params);
  } catch (...) {
    if (failed_statement_aborts_branch() || is_a<ConnectionLost>(std::current_exception())) {
      b.failed = std::current_exception();
    }
    throw;
  }
}

Result SqlResource::execute(std::string_view sql, const Params& params) {
  return execute(current_manager().get(), sql, params);
}

Connection& SqlResource::connection(Transaction& txn) {
  Branch& b = begun_branch(txn);
  b.used = true;
  return *b.conn();
}

Connection& SqlResource::connection() { return connection(current_manager().get()); }

bool SqlResource::has_branch(Transaction& txn) const {
  const Branch* b = find_branch(txn);
  return b != nullptr && b->state == Branch::State::active;
}

void SqlResource::enlist_connection(Transaction& txn, std::shared_ptr<Connection> conn) {
  if (!conn) throw UsageError("resource '" + name_ + "': enlist of a null connection");
  if (conn->broken()) {
    throw ConnectionLost("resource '" + name_ + "': the connection to enlist is broken");
  }
  Branch& b = join_branch(txn);
  if (b.conn() != nullptr || b.state != Branch::State::idle) {
    throw UsageError("resource '" + name_ +
                     "': this transaction's branch already has a connection; enlist before "
                     "the first statement of the transaction");
  }
  b.borrowed = std::move(conn);
}

// ---- the protocol
// ---------------------------------------------------------------------------------

void SqlResource::abort(Transaction& txn) noexcept {
  try {
    Branch* b = find_branch(txn);
    if (b == nullptr) return;
    b->extensions_rolled_back(txn);
    end_unprepared(*b);
    // Joined again later (after a savepoint rollback to before the join), it starts afresh.
    b->state = Branch::State::idle;
    b->used = false;
    b->failed = nullptr;
  } catch (...) {
    txn.report_rollback_failure(*this, std::current_exception());
  }
}

void SqlResource::tpc_begin(Transaction&) {}

void SqlResource::commit(Transaction& txn) {
  Branch* b = find_branch(txn);
  if (b != nullptr && b->state == Branch::State::active && b->failed) {
    // The database aborted this branch at that statement: surface it before anyone prepares.
    std::rethrow_exception(b->failed);
  }
  if (b == nullptr || b->extensions.empty()) return;
  // Deferred work goes into the same branch now, so its SQL errors fail the commit before any
  // participant votes. An extension may add another: index, not iterators (the list may grow),
  // and a copy of the pointer (the extension stays alive while it runs).
  for (std::size_t i = 0; i < b->extensions.size(); ++i) {
    auto e = b->extensions[i];
    e->before_vote(txn, *this);
  }
}

void SqlResource::add_extension(Transaction& txn, std::shared_ptr<BranchExtension> extension) {
  if (!extension) throw UsageError("resource '" + name_ + "': add_extension of null");
  Branch& b = join_branch(txn);
  if (b.state != Branch::State::idle && b.state != Branch::State::active) {
    throw UsageError("resource '" + name_ +
                     "': add_extension on a branch that is already voting or ended");
  }
  if (std::find(b.extensions.begin(), b.extensions.end(), extension) == b.extensions.end()) {
    b.extensions.push_back(std::move(extension));
  }
}

Vote SqlResource::tpc_vote(Transaction& txn) {
  Branch* b = find_branch(txn);
  if (b == nullptr || b->state == Branch::State::idle) {
    if (b != nullptr) {
      b->release();
      b->state = Branch::State::finished;
    }
    return Vote::read_only;
  }
  if (b->state != Branch::State::active) {
    throw UsageError("resource '" + name_ + "': tpc_vote on a branch that is not active");
  }
  if (!b->used || !branch_wrote(*b->conn())) {
    // Nothing to commit: end it here; a read-only voter gets no phase-2 call.
    end_unprepared(*b);
    b->state = Branch::State::finished;
    return Vote::read_only;
  }
  b->state = Branch::State::preparing;
  prepare_branch(*b->conn(), b->xid);
  b->state = Branch::State::prepared;
  // The prepared branch belongs to no session any more: a pooled connection serves others now.
  // (An enlisted one stays until the transaction ends: phase 2 runs on it.)
  b->lease.reset();
  return Vote::yes;
}

void SqlResource::tpc_finish(Transaction& txn) {
  Branch* b = find_branch(txn);
  if (b == nullptr || b->state != Branch::State::prepared) return;  // idempotent
  if (finish_prepared(*b, /*commit=*/true) == Outcome::unknown_id) {
    log(LogLevel::warning, "resource '" + name_ + "': " + b->xid.to_gid() +
                               " was no longer prepared at " +
                               std::string(commit_prepared_statement()) +
                               "; counted as done "
                               "(an earlier attempt committed it, or an administrator "
                               "finished it)");
  }
  b->release();
  b->state = Branch::State::finished;
}

RecoverableResource::Outcome SqlResource::finish_prepared(Branch& b, bool commit) {
  // An enlisted connection is the application's until the transaction ends: phase 2 uses it
  // rather than taking another connection from the pool.
  if (b.borrowed && !b.borrowed->broken()) {
    try {
      if (commit) {
        commit_prepared_branch(*b.borrowed, b.xid);
      } else {
        rollback_prepared_branch(*b.borrowed, b.xid);
      }
      return Outcome::done;
    } catch (const UnknownIdError&) {
      return Outcome::unknown_id;
    } catch (const ConnectionLost&) {
      // on to a pooled connection
    }
  }
  return commit ? commit_prepared(b.xid) : rollback_prepared(b.xid);
}

void SqlResource::tpc_abort(Transaction& txn) noexcept {
  try {
    tpc_abort_branch(txn);
  } catch (...) {
    // A prepared branch that cannot be rolled back now keeps its locks: the coordinator hands
    // it to its re-driver (a rollback by id on a fresh connection, retried until the server
    // answers).
    txn.report_rollback_failure(*this, std::current_exception());
  }
}

void SqlResource::tpc_abort_branch(Transaction& txn) {
  Branch* b = find_branch(txn);
  if (b == nullptr) return;
  b->extensions_rolled_back(txn);
  switch (b->state) {
    case Branch::State::idle:
      b->release();
      b->state = Branch::State::rolled_back;
      return;
    case Branch::State::active: end_unprepared(*b); return;
    case Branch::State::preparing: {
      // The prepare did not answer yes. If its connection still works, the server said no
      // and the branch is not prepared; if the connection broke, it may be: roll it back by
      // id too.
      const bool unknown = b->conn() == nullptr || b->conn()->broken();
      if (unknown && b->conn() != nullptr) {
        // The session that received the PREPARE may still complete it: rollback_prepared
        // waits for that session to end before it takes "no such id" as final.
        std::string session = b->conn()->server_session();
        if (!session.empty()) {
          std::lock_guard lock(lost_prepares_mu_);
          lost_prepares_[b->xid.to_gid()] = std::move(session);
        }
      }
      b->state = Branch::State::active;
      end_unprepared(*b);
      if (!unknown) return;
      [[fallthrough]];
    }
    case Branch::State::prepared: {
      // Released and marked rolled back even when the rollback failed: the branch is the
      // re-driver's then (tpc_abort reports the failure).
      std::exception_ptr failed;
      try {
        finish_prepared(*b, /*commit=*/false);
      } catch (...) {
        failed = std::current_exception();
        log(LogLevel::warning,
            "resource '" + name_ + "': " + std::string(rollback_prepared_statement()) + " of " +
                b->xid.to_gid() + " failed (" + error_message(failed) +
                "); the coordinator's re-driver retries it on a fresh connection");
      }
      b->release();
      b->state = Branch::State::rolled_back;
      if (failed) std::rethrow_exception(failed);
      return;
    }
    case Branch::State::finished:
    case Branch::State::rolled_back: return;
  }
}

void SqlResource::commit_one_phase(Transaction& txn, const CommitRecord* decision) {
  if (decision != nullptr) {
    throw UsageError("resource '" + name_ +
                     "' can prepare: it never commits as a last resource carrying the decision");
  }
  Branch* b = find_branch(txn);
  if (b == nullptr || b->state == Branch::State::idle) return;
  if (b->state != Branch::State::active) {
    throw UsageError("resource '" + name_ + "': one-phase commit of a branch that is not active");
  }
  if (!b->used) {
    end_unprepared(*b);
    b->state = Branch::State::finished;
    return;
  }
  try {
    commit_branch(*b->conn(), b->xid);
  } catch (const InDoubtError&) {
    // Nothing more can be done on this connection; the coordinator reports the doubt.
    if (b->lease) b->lease.discard();
    b->release();
    b->state = Branch::State::finished;
    throw;
  }
  b->release();
  b->state = Branch::State::finished;
}

std::unique_ptr<ResourceSavepoint> SqlResource::savepoint(Transaction& txn) {
  Branch& b = join_branch(txn);
  std::shared_ptr<Branch> owner = std::any_cast<std::shared_ptr<Branch>&>(txn.data(this));
  if (b.state == Branch::State::idle) {
    return std::make_unique<BranchSavepoint>(shared_from_this(), owner, b.epoch, std::string(),
                                             txn);
  }
  if (b.state != Branch::State::active) {
    throw UsageError("resource '" + name_ + "': savepoint of a branch that is not active");
  }
  std::string name = "xact_sp_" + std::to_string(++b.savepoints);
  set_savepoint(*b.conn(), name);
  return std::make_unique<BranchSavepoint>(shared_from_this(), owner, b.epoch, std::move(name),
                                           txn);
}

bool SqlResource::should_retry(const std::exception_ptr& error) const noexcept {
  if (!error) return false;
  const std::exception_ptr mapped = map_error(error, Phase::statement);
  try {
    std::rethrow_exception(mapped);
  } catch (const InDoubtError&) {
    return false;
  } catch (const TransientError&) {
    return true;
  } catch (const ConnectionLost&) {
    return true;
  } catch (...) {
    return false;
  }
}

// ---- recovery
// ---------------------------------------------------------------------------------------

void SqlResource::end_orphaned_prepares(const NodeId& node,
                                        const std::function<bool(const Gtrid&)>& running_here) {
  on_any_connection([&](Connection& c) {
    for (int round = 1;; ++round) {
      std::string still;  // the gids whose session still runs
      for (const auto& s : sessions_preparing(c)) {
        if (s.xid.gtrid.node() != node || s.xid.bqual != name_ || running_here(s.xid.gtrid)) {
          continue;
        }
        if (round == 1) {
          log(LogLevel::warning, "resource '" + name_ + "': the server session " + s.session +
                                     " still runs the PREPARE of " + s.xid.to_gid() +
                                     ", sent by a process that is gone: recovery ends it (or "
                                     "waits for it) before it lists the prepared branches");
        }
        if (server_session_running(c, s.session)) still += " " + s.xid.to_gid();
      }
      if (still.empty()) return;
      if (round == 10) {
        throw ResourceError("resource '" + name_ +
                            "': sessions left running a PREPARE by a process that is gone still "
                            "run after ten tries to end them:" +
                            still);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * round));
    }
  });
}

std::vector<Xid> SqlResource::recover(const NodeId& node) {
  std::vector<Xid> all;
  on_any_connection([&](Connection& c) { all = prepared_branches(c); });
  std::vector<Xid> mine;
  for (auto& xid : all) {
    if (xid.gtrid.node() == node && xid.bqual == name_) mine.push_back(std::move(xid));
  }
  return mine;
}

std::vector<Xid> SqlResource::recover_all_nodes() {
  std::vector<Xid> all;
  on_any_connection([&](Connection& c) { all = prepared_branches(c); });
  std::vector<Xid> ours;
  for (auto& xid : all) {
    if (xid.bqual == name_) ours.push_back(std::move(xid));
  }
  return ours;
}

RecoverableResource::Outcome SqlResource::commit_prepared(const Xid& xid) {
  try {
    on_any_connection([&](Connection& c) { commit_prepared_branch(c, xid); });
  } catch (const UnknownIdError&) {
    return Outcome::unknown_id;
  }
  return Outcome::done;
}

RecoverableResource::Outcome SqlResource::rollback_prepared(const Xid& xid) {
  const std::string gid = xid.to_gid();
  std::string session;  // of a PREPARE that lost its connection, if this is one
  {
    std::lock_guard lock(lost_prepares_mu_);
    if (auto it = lost_prepares_.find(gid); it != lost_prepares_.end()) session = it->second;
  }
  Outcome outcome = Outcome::done;
  try {
    on_any_connection([&](Connection& c) {
      if (!session.empty() && server_session_running(c, session)) {
        throw ResourceError("resource '" + name_ + "': the server session that received the " +
                            "PREPARE of " + gid + " (" + session +
                            ") still runs, so the branch may still become prepared; its " +
                            std::string(rollback_prepared_statement()) +
                            " is tried again once that session has ended");
      }
      rollback_prepared_branch(c, xid);
    });
  } catch (const UnknownIdError&) {
    outcome = Outcome::unknown_id;
  }
  if (!session.empty()) {
    std::lock_guard lock(lost_prepares_mu_);
    lost_prepares_.erase(gid);
  }
  return outcome;
}

}  // namespace xact::sql
