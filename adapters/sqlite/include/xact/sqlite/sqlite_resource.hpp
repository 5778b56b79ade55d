// SqliteResource: an SQLite database as xact's one-phase LAST RESOURCE.
//
// SQLite cannot prepare a transaction, so it cannot vote and wait. It takes part the one way that
// stays atomic: as the single participant that cannot prepare (OnePhaseCommit::can_prepare()
// false), committed after every other participant voted yes. Its commit carries the decision:
//
//   auto app = xact::sqlite::SqliteResource::create({.path = "/var/lib/app/app.db"});
//   xact::run(tm, [&](xact::Transaction& txn) {
//     orders->execute(txn, "UPDATE stock SET n = n - 1 WHERE item = $1", {"book"});   // MariaDB
//     app->execute(txn, "INSERT INTO shipments (item) VALUES ($1)", {"book"});       // SQLite
//   });
//
// What it runs (see SqlResource for the protocol, doc/sqlite.md for the reasons):
//   connect           journal_mode=WAL and synchronous=FULL, checked (else refused), busy timeout
//   first statement   BEGIN IMMEDIATE (default: the write lock at once, so a busy database waits
//                     its turn instead of failing later with SQLITE_BUSY_SNAPSHOT; see "The
//                     write lock" below), or BEGIN DEFERRED
//   last resource     INSERT INTO xact_decisions (gtrid, ...) -- the commit record -- then
//                     COMMIT, in the same SQLite transaction: the marker exists iff SQLite
//                     committed, and every prepared participant follows it
//   only participant  COMMIT (no marker: nothing else waits for the decision)
//   abort             ROLLBACK
//   savepoints        SAVEPOINT xact_sp_<n> / ROLLBACK TO SAVEPOINT xact_sp_<n>
// As DecisionStore it answers recovery: lookup_decision() says committed when the marker is
// there, not_found when the table has none, and unreadable when the database cannot be opened
// or read (recovery then waits; it never presumes abort). forget_decision() deletes a marker once
// every other participant finished (the coordinator, its re-driver, or recovery calls it); the
// deletion needs no durability (a marker that comes back after a power loss is only kept longer),
// so it runs on a connection of its own with synchronous=NORMAL, costs no fsync, and is batched (32
// markers per DELETE; flush_forgotten() and the destructor delete the rest). A marker awaiting
// deletion still reads as committed, which it is. forget_decisions_before() drops the markers a
// crash left behind; Recovery calls it after its first complete run (see there).
//
// The write lock (BeginMode::immediate with queue_writers, the default; doc/sqlite.md has the
// measurements). SQLite's write lock covers the whole database and a branch holds it from its
// first statement to its commit, so with other stores' row locks a cycle no database sees is
// possible (T1 holds SQLite's lock and waits for a row T2 locked; T2 waits for SQLite's lock);
// SQLite's busy handler would only end it after busy_timeout. So:
//  - this process's branches take the lock in turn (first come, first served) and are woken the
//    moment the holder commits or rolls back, instead of SQLite's sleeping busy handler;
//  - a transaction that already joined other stores and finds the lock held by a transaction
//    still running statements gives way at once: a retryable ConflictError, so its rows are
//    released and the holder can go on. Once the holder's commit has begun it waits its turn.
// Statements still run when called: a SELECT sees the branch's own writes and generated keys
// come back at once (buffering writes until the commit would lose both).
//
// Crash points (XACT_CRASH_AT): "<resource name>.before_commit" (the marker is written, COMMIT
// not sent) and "<resource name>.after_commit" (SQLite committed; nothing told yet).
//
// It holds no prepared state, so it offers no RecoverableResource: Recovery registers it as a
// DecisionStore (Recovery::register_resource accepts either).
//
// Thread-safety: thread-safe; share one instance per database file in a process.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <xact/sql/sql_resource.hpp>
#include <xact/sqlite/sqlite_connection.hpp>

namespace xact::sqlite {

enum class BeginMode {
  /// Default. BEGIN IMMEDIATE: takes the database's write lock at the first statement; another
  /// writer waits up to busy_timeout (then a retryable ConflictError). Writers run one at a time
  /// (as SQLite allows anyway); readers outside xact are never blocked (WAL).
  immediate,
  /// BEGIN DEFERRED: the write lock at the first write. Read-only branches take no lock, but a
  /// branch that read and then writes after another commit gets SQLITE_BUSY_SNAPSHOT at once
  /// (ConflictError; no busy timeout helps): more retries under write contention.
  deferred,
};

struct SqliteOptions {
  /// The database file (or a "file:" URI). Not ":memory:": refused, it cannot be durable.
  std::string path;
  /// The resource name: stable across restarts, 1..64 bytes. Default "sqlite:<file name>".
  std::string name;
  BeginMode begin = BeginMode::immediate;
  std::chrono::milliseconds busy_timeout{5000};
  /// BeginMode::immediate: this process's branches take the write lock in turn, woken when the
  /// holder ends, and a transaction holding other stores' branches gives way to a holder still
  /// running statements (see "The write lock" above). false leaves all waiting to SQLite's busy
  /// handler, as the adapter did before it queued writers (for comparisons:
  /// bench/four_store_bench.cpp).
  bool queue_writers = true;
  /// create() makes the file when it is missing. Connections opened later never create it, so
  /// a file that vanishes reads as "unreadable" to recovery, never as "no decision".
  bool create_if_missing = true;
  /// The marker table (an identifier: letters, digits, _; created by create()).
  std::string decision_table = "xact_decisions";
  /// Open read-only (OpenOptions::read_only), for dry runs of recovery: no file, journal mode
  /// or marker table is made (create_if_missing is ignored). A missing marker table reads as
  /// "no decision": none was ever stored. Commits through the resource fail.
  bool read_only = false;
  sql::PoolOptions pool;  ///< pool.name defaults to the resource name
};

class SqliteResource final : public sql::SqlResource, public DecisionStore {
 public:
  /// Validates the options, opens the database once (creating the file if allowed and the
  /// marker table if missing) to check that it can be made durable, and creates the pool.
  /// Throws UsageError for bad options or a database that cannot be in WAL mode, sql::SqlError
  /// when it cannot be opened.
  static std::shared_ptr<SqliteResource> create(SqliteOptions options);
  ~SqliteResource() override;

  /// Makes an sqlite3 connection the application already holds the connection of txn's branch
  /// (before the branch's first statement). See SqliteConnection::borrow.
  void enlist(Transaction& txn, sqlite3* connection);
  void enlist(Transaction& txn, std::shared_ptr<SqliteConnection> connection);

  /// Deletes the markers of `node`'s transactions from epochs before `epoch`. xact::Recovery
  /// calls it (DecisionStore) after its first run in the process that came back complete(),
  /// with the decision log's node_id() and epoch(): such a run has decided every branch that
  /// earlier runs of this node left prepared, so nobody asks for their markers again. (Markers
  /// of the current epoch stay: transactions in flight may still need them.) Returns how many
  /// it deleted. Throws the mapped error when the database cannot be written.
  std::size_t forget_decisions_before(const NodeId& node, std::uint32_t epoch) override;
  /// The gtrids of the markers the database holds now, after deleting the forgotten ones (for
  /// operators and tests).
  std::vector<Gtrid> decisions();
  /// Deletes the markers forget_decision() queued (it deletes them in batches). Never throws;
  /// also done by the destructor.
  void flush_forgotten() noexcept;

  const SqliteOptions& options() const noexcept { return options_; }
  /// A new connection with this resource's settings, outside the pool (for tools and tests).
  std::unique_ptr<SqliteConnection> open_connection() const;

  // --- OnePhaseCommit: the last resource ---------------------------------------------------
  bool can_prepare() const override { return false; }
  /// Marks the end of txn's statements (see "The write lock").
  void commit(Transaction& txn) override;
  /// With `decision`: writes the marker into the branch's transaction, then COMMIT. Without:
  /// a plain COMMIT.
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;
  // Not recoverable (nothing is ever prepared); a decision store instead.
  RecoverableResource* recoverable() noexcept override { return nullptr; }
  DecisionStore* decision_store() noexcept override { return this; }

  // --- DecisionStore --------------------------------------------------------------------------
  Lookup lookup_decision(const Gtrid& gtrid) override;
  void forget_decision(const Gtrid& gtrid) noexcept override;

 protected:
  void begin_branch(sql::Connection& conn, const Xid& xid) override;
  void begin_branch_of(Transaction& txn, sql::Connection& conn, const Xid& xid) override;
  void prepare_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  std::vector<Xid> prepared_branches(sql::Connection& conn) override;
  void set_savepoint(sql::Connection& conn, const std::string& name) override;
  void rollback_to_savepoint(sql::Connection& conn, const std::string& name) override;
  std::exception_ptr map_error(const std::exception_ptr& error,
                               sql::Phase phase) const noexcept override;
  /// A failed statement (a constraint) rolls back only itself in SQLite; the application may
  /// catch it and go on. (A BUSY inside the transaction poisons the branch instead.)
  bool failed_statement_aborts_branch() const noexcept override { return false; }

 private:
  struct Forgetter;
  struct WriterGate;
  SqliteResource(std::string name, SqliteOptions options,
                 std::shared_ptr<sql::ConnectionPool> pool);
  SqliteConnection& lite(sql::Connection& conn) const;
  std::string context() const;
  void flush_locked(bool wait) noexcept;  // holding forgetter_->mutex

  SqliteOptions options_;
  bool no_decision_table_ = false;  ///< read_only and the marker table does not exist
  std::string insert_marker_;
  std::string select_marker_;
  std::string delete_marker_;
  std::string before_commit_point_;
  std::string after_commit_point_;
  std::unique_ptr<Forgetter> forgetter_;
  std::unique_ptr<WriterGate> gate_;
};

}  // namespace xact::sqlite
