// SqlResource: one SQL database as a participant of xact transactions. The dialect-neutral
// half of every SQL adapter (xact::postgres::PostgresResource, ...): it joins transactions,
// keeps each transaction's branch (a connection with a database transaction open on it), and
// follows the resource-manager protocol (<xact/resource_manager.hpp>); the adapter supplies
// the statements for each step and its error mapping.
//
// The application:
//
//   auto orders = xact::postgres::PostgresResource::create(options);
//   xact::run(tm, [&](xact::Transaction& txn) {
//     orders->execute(txn, "UPDATE stock SET n = n - $1 WHERE item = $2", {1, "book"});
//     auto& conn = orders->connection(txn);   // or run its own SQL in the same branch
//     conn.execute("INSERT INTO audit (what) VALUES ($1)", {"sold a book"});
//   });
//
// - The first execute() or connection() of a transaction joins it and begins the branch:
//   a connection from the pool (or one the application enlisted) and BEGIN with the adapter's
//   fixed isolation level. Every later statement of that transaction runs on the same
//   connection, in the same database transaction.
// - commit() runs the branch's extensions (add_extension(), see BranchExtension: work that is
//   deferred to the commit and written in the same branch, such as xact::sheets' write-back),
//   in the order they were added, before any participant votes; otherwise the statements
//   already ran, so SQL errors surfaced at the statement. A statement that failed and was not
//   rolled back to a savepoint fails the commit with that statement's error (the database has
//   aborted the branch).
// - tpc_vote: a branch that ran no statement votes read-only (the adapter may detect more
//   read-only branches, see branch_wrote()); otherwise the adapter prepares it durably
//   (PREPARE TRANSACTION, XA PREPARE) and the connection goes back to the pool at once.
// - tpc_finish / commit_prepared: commits the prepared branch by id on any pooled connection
//   (on the enlisted one, if the application enlisted one); a broken connection is replaced
//   once; an unknown id counts as done (and is logged). When that fails too, the coordinator's
//   re-driver calls commit_prepared until the server answers: each call takes a pooled
//   connection, whose health check replaces one that died with the server.
// - tpc_abort / abort: roll back (ROLLBACK, or ROLLBACK PREPARED after a yes vote); idempotent.
//   abort never throws (a connection that cannot roll back is closed, which rolls back). A
//   ROLLBACK PREPARED that fails makes tpc_abort throw the mapped error after the branch has
//   ended here, so the coordinator hands the branch to its re-driver (<xact/redriver.hpp>).
// - A PREPARE that lost its connection may still complete on the server: the session that
//   received it runs on until it notices the client is gone. Its rollback by id (tpc_abort,
//   then the re-driver's rollback_prepared) therefore first asks the server whether that
//   session (Connection::server_session) still exists. If the adapter can name it exactly it
//   ends it (pg_terminate_backend, KILL CONNECTION) and waits up to a second for it to go;
//   while it still runs, the rollback throws and the re-driver tries again later. Only once the
//   session is gone does an unknown id mean the branch was never prepared. (A session the
//   adapter cannot name counts as gone: on a MySQL server without a process list table.)
// - One participant alone commits in one phase (plain COMMIT, no prepare, no log record).
// - Savepoints map to the database's savepoints; a savepoint taken before the branch began
//   rolls the whole branch back.
// - should_retry: yes for what maps to a TransientError (serialization failure, deadlock,
//   lock timeout), and for ConnectionLost: commit() only ever throws it before the decision,
//   when the server has rolled the branch back, so running the transaction again is safe.
// - Recovery works on any instance with the same resource name, without a Transaction.
//
// Thread-safety: an SqlResource is thread-safe and meant to be shared: one per database per
// process, used by the transactions of many threads at once. The state of a branch lives in
// its Transaction (Transaction::data), so it follows the transaction's own threading rules.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <xact/resource_manager.hpp>
#include <xact/sql/connection.hpp>
#include <xact/sql/errors.hpp>
#include <xact/sql/pool.hpp>

namespace xact::sql {

class SqlResource;

/// Work that rides on one transaction's branch of one database and is written at commit: the
/// hook through which a module above xact::sql (xact::sheets' per-transaction sheet manager)
/// defers its statements to the end of the transaction, in the same branch, and still fails
/// the commit before anyone prepares. Registered per transaction with
/// SqlResource::add_extension(); the resource keeps it until the branch ends.
///
/// Calls (all on the transaction's thread):
/// - before_vote: at the start of the resource's commit() step (phase one, before any
///   participant votes), in the order of add_extension. Runs its statements through
///   resource.execute(txn, ...) or resource.connection(txn). Throwing fails the commit; the
///   transaction is then aborted and rolled_back() follows.
/// - rolled_back: the branch was rolled back (abort, tpc_abort, or a savepoint rollback to a
///   point before the extension was added): forget every pending write. Must not throw.
/// - savepoint: a savepoint is being taken; returns what undoes the extension's pending
///   changes made after it (called when the transaction rolls back to it), or an empty
///   function when there is nothing to undo. The undo must not throw.
class BranchExtension {
 public:
  virtual ~BranchExtension() = default;
  virtual void before_vote(Transaction& txn, SqlResource& resource) = 0;
  virtual void rolled_back(Transaction& txn) noexcept = 0;
  virtual std::function<void()> savepoint(Transaction& txn) {
    (void)txn;
    return {};
  }
};

class SqlResource : public ResourceManager,
                    public SavepointSupport,
                    public RetryClassifier,
                    public OnePhaseCommit,
                    public RecoverableResource,
                    public std::enable_shared_from_this<SqlResource> {
 public:
  ~SqlResource() override;
  SqlResource(const SqlResource&) = delete;
  SqlResource& operator=(const SqlResource&) = delete;

  // --- for the application --------------------------------------------------------------------
  /// Runs one statement in txn's branch, joining txn and beginning the branch on first use.
  /// Throws the adapter's mapped errors (<xact/sql/errors.hpp>); UsageError when txn can no
  /// longer be joined or its branch is already voting.
  Result execute(Transaction& txn, std::string_view sql, const Params& params = {});
  /// The same in the current transaction of current_manager().
  Result execute(std::string_view sql, const Params& params = {});
  /// The connection of txn's branch (joining and beginning it), for the application's own
  /// SQL: valid until the branch ends. Counts as a statement (the branch is prepared at vote).
  Connection& connection(Transaction& txn);
  Connection& connection();
  /// Adds work written at commit in txn's branch (see BranchExtension), joining txn. The same
  /// extension added twice runs once. UsageError once the branch is voting or ended.
  void add_extension(Transaction& txn, std::shared_ptr<BranchExtension> extension);
  /// Whether txn has begun a branch here.
  bool has_branch(Transaction& txn) const;
  const std::shared_ptr<ConnectionPool>& pool() const noexcept { return pool_; }

  // --- ResourceManager
  // ----------------------------------------------------------------------------
  std::string resource_name() const override { return name_; }
  void abort(Transaction& txn) noexcept override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) noexcept override;
  SavepointSupport* savepoint_support() noexcept override { return this; }
  RetryClassifier* retry_classifier() noexcept override { return this; }
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  RecoverableResource* recoverable() noexcept override { return this; }

  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;
  bool should_retry(const std::exception_ptr& error) const noexcept override;
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;
  /// Ids of this database's prepared branches that belong to `node` and to this resource
  /// (bqual == resource_name()). Throws the mapped error when the database cannot be reached.
  /// Ends the sessions the adapter finds running a PREPARE of this resource's branches of
  /// `node` (sessions_preparing) that are not running here, and waits for them to go (throws
  /// ResourceError after about ten seconds).
  void end_orphaned_prepares(const NodeId& node,
                             const std::function<bool(const Gtrid&)>& running_here) override;
  std::vector<Xid> recover(const NodeId& node) override;
  /// Every node's prepared branches with this resource's name as branch qualifier.
  std::vector<Xid> recover_all_nodes() override;
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;

 protected:
  /// `name` is the resource name (the branch qualifier; 1..64 bytes, stable across restarts,
  /// unique per database among the participants of a transaction). Throws UsageError for a bad
  /// name or a null pool.
  SqlResource(std::string name, std::shared_ptr<ConnectionPool> pool);

  /// Makes `conn` the connection of txn's branch (joining txn). The connection is borrowed: it
  /// is never returned to the pool, and is released when the branch ends (commit, abort, or a
  /// rollback to a savepoint taken before the branch began). UsageError when the branch already
  /// has a connection.
  void enlist_connection(Transaction& txn, std::shared_ptr<Connection> conn);

  // --- the dialect: what the adapter runs for each step -----------------------------------------
  // Each runs on a connection of the adapter's own kind (one its pool's factory made, or one it
  // enlisted) and throws mapped errors only.

  /// Starts the database transaction of the branch (BEGIN ISOLATION LEVEL ...; XA START).
  virtual void begin_branch(Connection& conn, const Xid& xid) = 0;
  /// What the first statement of txn's branch calls; by default begin_branch(). For an adapter
  /// whose begin depends on the rest of the transaction (SQLite: whether it may wait for the
  /// database's write lock while holding other stores' branches).
  virtual void begin_branch_of(Transaction& txn, Connection& conn, const Xid& xid) {
    (void)txn;
    begin_branch(conn, xid);
  }
  /// Asked at vote for a branch that ran statements: false when it changed nothing, so it can
  /// vote read-only (rolled back, no prepare). The default, true, prepares every such branch.
  virtual bool branch_wrote(Connection& conn);
  /// Makes the branch durable under `xid` (PREPARE TRANSACTION, XA END + XA PREPARE). Must
  /// throw unless the branch is now prepared (a branch the database already aborted included).
  virtual void prepare_branch(Connection& conn, const Xid& xid) = 0;
  /// One-phase commit of the only participant. Must throw unless the branch committed
  /// (InDoubtError when the outcome is unknown).
  virtual void commit_branch(Connection& conn, const Xid& xid) = 0;
  /// Rolls back an unprepared branch.
  virtual void rollback_branch(Connection& conn, const Xid& xid) = 0;
  /// Commits / rolls back a prepared branch by id; throws UnknownIdError when there is none.
  virtual void commit_prepared_branch(Connection& conn, const Xid& xid) = 0;
  virtual void rollback_prepared_branch(Connection& conn, const Xid& xid) = 0;
  /// Every xact id this database holds prepared (any node, any resource); others' ids skipped.
  virtual std::vector<Xid> prepared_branches(Connection& conn) = 0;
  virtual void set_savepoint(Connection& conn, const std::string& name) = 0;
  virtual void rollback_to_savepoint(Connection& conn, const std::string& name) = 0;
  /// The adapter's one error mapping (see <xact/sql/errors.hpp>): the native error as xact's;
  /// xact's own errors unchanged.
  virtual std::exception_ptr map_error(const std::exception_ptr& error,
                                       Phase phase) const noexcept = 0;
  /// Whether a failed statement aborts the whole database transaction (PostgreSQL: yes; then
  /// only a savepoint rollback or the end of the branch is possible).
  virtual bool failed_statement_aborts_branch() const noexcept { return true; }
  /// Whether the server session `session` (a Connection::server_session() of a connection to
  /// this database, not empty) still exists, asked on `conn`; the adapter first ends it (and
  /// gives it a moment to go) when `session` names it exactly. After this returns false, the
  /// session runs no statement any more: a PREPARE it received has completed or never will. The
  /// default (false) suits an adapter whose connections have no server sessions.
  virtual bool server_session_running(Connection& conn, const std::string& session) {
    (void)conn;
    (void)session;
    return false;
  }
  /// A server session running a PREPARE (see sessions_preparing).
  struct PreparingSession {
    Xid xid;              ///< of the branch it is preparing
    std::string session;  ///< as server_session_running takes it
  };
  /// The sessions of other connections that are running a PREPARE of an xact branch in this
  /// database now. The default (none) suits an adapter whose connections have no server
  /// sessions.
  virtual std::vector<PreparingSession> sessions_preparing(Connection& conn) {
    (void)conn;
    return {};
  }
  /// The dialect's names of the statements that finish a prepared branch, for messages
  /// (MySQL/MariaDB: XA COMMIT / XA ROLLBACK).
  virtual std::string_view commit_prepared_statement() const noexcept { return "COMMIT PREPARED"; }
  virtual std::string_view rollback_prepared_statement() const noexcept {
    return "ROLLBACK PREPARED";
  }

 private:
  struct Branch;
  class BranchSavepoint;

  Branch& join_branch(Transaction& txn);
  Branch* find_branch(Transaction& txn) const;
  Branch& begun_branch(Transaction& txn);
  void end_unprepared(Branch& b) noexcept;
  void tpc_abort_branch(Transaction& txn);  // tpc_abort's work; throws what it reports
  Outcome finish_prepared(Branch& b, bool commit);
  template <class F>
  void on_any_connection(F&& f);

  std::string name_;
  std::shared_ptr<ConnectionPool> pool_;
  // Branches whose PREPARE lost its connection, by gid: the server session that received it.
  // rollback_prepared waits for the session to end before it takes "no such id" as final.
  std::mutex lost_prepares_mu_;
  std::unordered_map<std::string, std::string> lost_prepares_;
};

}  // namespace xact::sql
