// MySqlResource: one MySQL or MariaDB database as a two-phase-commit participant (XA).
//
//   auto orders = xact::mysql::MySqlResource::create(
//       {.connect = {.host = "db", .port = 3306, .user = "app", .password = pw,
//                    .database = "orders"}});
//   xact::run(tm, [&](xact::Transaction& txn) {
//     orders->execute(txn, "UPDATE stock SET n = n - 1 WHERE item = $1", {"book"});
//   });
//
// What it runs (see SqlResource for the protocol, doc/mysql.md for the reasons):
//   connect           SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE (or REPEATABLE
//                     READ), once per connection; optionally innodb_lock_wait_timeout
//   first statement   XA START <xid>
//   commit()          nothing: the statements ran already, their errors surfaced there
//   tpc_vote          read-only when the branch ran no statement; otherwise XA END <xid>;
//                     XA PREPARE <xid>
//   tpc_finish        XA COMMIT <xid> on any pooled connection; 1397 (unknown xid) counts as
//                     done (after a lost connection the first attempt may have committed)
//   tpc_abort         XA END + XA ROLLBACK <xid>, or XA ROLLBACK <xid> after the vote; never
//                     throws
//   only participant  XA END <xid>; XA COMMIT <xid> ONE PHASE (no prepare, no log record)
//   savepoints        SAVEPOINT xact_sp_<n> / ROLLBACK TO SAVEPOINT xact_sp_<n>
//   recover(node)     XA RECOVER: the columns formatID, gtrid_length, bqual_length and data
//                     (binary), which MySQL 5.7/8 and MariaDB all return, parsed with
//                     Xid::from_xa -> the ids of this node and this resource name. (Not
//                     FORMAT='SQL', which is MariaDB's only, nor CONVERT XID, MySQL 8's.)
// An xid is written X'<gtrid hex>',X'<bqual hex>',<formatID>: binary-safe, and only hex digits
// and a number are ever spliced into the statement. MariaDB 10.11 shows a user its own XA
// branches; MySQL 8 needs XA_RECOVER_ADMIN to see other users' (give it to the recovery user,
// or run every resource of a database under one user).
//
// Prepared branches and sessions: MariaDB keeps a prepared XA branch attached to the session that
// prepared it until that session ends; meanwhile other sessions get "unknown xid" (1397) for it,
// and the session itself cannot start another branch. So at the vote the pooled connection hands
// its session, with the prepared branch, to a process-wide table of parked sessions and takes a
// spare session (or connects anew on its next use); phase 2, and recovery in this process, finish
// a parked branch on its own session, which then becomes a spare. A branch prepared by a session
// that is going away (a crashed process's) is waited for: XA COMMIT that meets 1397 while XA
// RECOVER still lists the id tries again for a while. (MySQL 8.0.29+ detaches at prepare.)
//
// Errors, in one place (xact::mysql::map_error): a deadlock (1213) rolled back the whole branch
// on the server; the connection then refuses every further statement of that branch, and the
// DeadlockError is retried by xact::run. A lock wait timeout (1205) rolled back only the
// statement; xact nevertheless fails the branch (the application's unit of work is incomplete,
// and with innodb_rollback_on_timeout=ON the server rolled back everything) unless the
// application rolls back to a savepoint taken before the statement: a retryable
// sql::LockTimeoutError.
//
// Use transactional tables only: MyISAM (and MEMORY, Aria, CSV, ...) ignore ROLLBACK, so what a
// rolled-back branch wrote there stays. require_transactional() checks a table.
//
// Thread-safety: thread-safe; share one instance per database in a process.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/mysql/mysql_connection.hpp>
#include <xact/sql/sql_resource.hpp>

namespace xact::mysql {

struct MySqlOptions {
  /// Where and how to connect; connect.isolation is the branches' isolation level.
  ConnectOptions connect;
  /// The resource name: the branch qualifier of the xids, and how recovery finds this resource.
  /// Stable across restarts, unique per database among the participants, 1..64 bytes.
  /// Default: "mysql:<database>".
  std::string name;
  sql::PoolOptions pool;  ///< pool.name defaults to the resource name
};

class MySqlResource final : public sql::SqlResource {
 public:
  /// Validates the options and creates the pool; connects on first use. Throws UsageError for
  /// bad options (no user, no database, a bad name).
  static std::shared_ptr<MySqlResource> create(MySqlOptions options);

  /// Makes a Connector/C++ connection the application already holds the connection of txn's
  /// branch (before the branch's first statement). It must stay open, in autocommit mode with no
  /// transaction open, until txn ends; xact begins the branch on it (XA START) and ends it at
  /// commit or abort, then it is the application's again.
  void enlist(Transaction& txn, ::sql::Connection& connection);
  /// The same for a MySqlConnection the application opened (MySqlConnection::open / borrow).
  void enlist(Transaction& txn, std::shared_ptr<MySqlConnection> connection);

  /// Checks on a pooled connection that `table` (of the resource's database, or "db.table")
  /// uses a transactional engine; see the free function.
  void require_transactional(std::string_view table);

  const MySqlOptions& options() const noexcept { return options_; }
  /// A new connection with this resource's settings, outside the pool (for tools and tests).
  std::unique_ptr<MySqlConnection> open_connection() const;

 protected:
  void begin_branch(sql::Connection& conn, const Xid& xid) override;
  void prepare_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  std::vector<Xid> prepared_branches(sql::Connection& conn) override;
  void set_savepoint(sql::Connection& conn, const std::string& name) override;
  void rollback_to_savepoint(sql::Connection& conn, const std::string& name) override;
  /// The process list: a session named by id and a TCP client address and port is killed
  /// (KILL CONNECTION) and counts as running until it has gone; one whose client came over a
  /// socket ("localhost": its id may have been given anew after a restart) is waited for.
  bool server_session_running(sql::Connection& conn, const std::string& session) override;
  /// The process list: the other sessions whose statement is an XA PREPARE of an xact id (a
  /// user without the PROCESS privilege sees its own sessions only: connect as the same user).
  std::vector<PreparingSession> sessions_preparing(sql::Connection& conn) override;
  std::exception_ptr map_error(const std::exception_ptr& error,
                               sql::Phase phase) const noexcept override;
  /// MySQL rolls back only the failed statement (a duplicate key, say): the application may
  /// catch it and go on. A deadlock or lock wait timeout poisons the branch instead (see above).
  bool failed_statement_aborts_branch() const noexcept override { return false; }
  std::string_view commit_prepared_statement() const noexcept override { return "XA COMMIT"; }
  std::string_view rollback_prepared_statement() const noexcept override { return "XA ROLLBACK"; }

 private:
  MySqlResource(std::string name, MySqlOptions options, std::shared_ptr<sql::ConnectionPool> pool);
  MySqlConnection& my(sql::Connection& conn) const;
  std::string context() const;
  void finish(sql::Connection& conn, const Xid& xid, bool commit);

  MySqlOptions options_;
  // Sessions that finished a parked branch, ready to be swapped into the next pooled connection
  // that prepares (so that parking costs no reconnect).
  std::mutex spares_mutex_;
  std::vector<std::unique_ptr<MySqlConnection>> spares_;
};

/// "X'<gtrid hex>',X'<bqual hex>',<formatID>": how an xid is written in XA statements.
std::string xa_xid(const Xid& xid);
/// The id of ours that `text` (an XA statement's text, such as "XA PREPARE " + xa_xid(xid))
/// names right after `verb` ("XA PREPARE "); nullopt for any other text.
std::optional<Xid> xid_in_xa_statement(std::string_view text, std::string_view verb);

/// Engines whose tables take part in transactions (ROLLBACK undoes their changes): InnoDB (and
/// XtraDB, which reports itself as InnoDB), MyRocks (ROCKSDB), TokuDB, NDB.
bool is_transactional_engine(std::string_view engine) noexcept;

/// Throws UsageError unless `table` ("name" in the connection's current database, or
/// "db.name") exists and uses a transactional engine. The message names the table and its
/// engine, says why (MyISAM and the like ignore ROLLBACK: a rolled-back transaction would
/// leave its writes there) and how to fix it (ALTER TABLE ... ENGINE=InnoDB).
void require_transactional(sql::Connection& conn, std::string_view table);

}  // namespace xact::mysql
