// PostgresResource: one PostgreSQL database as a two-phase-commit participant.
//
//   xact::postgres::PostgresOptions options;
//   options.conninfo = "postgresql://app@db/orders";
//   options.lock_timeout = std::chrono::seconds(5);
//   auto orders = xact::postgres::PostgresResource::create(options);   // "pg:orders"
//   xact::run(tm, [&](xact::Transaction& txn) {
//     orders->execute(txn, "UPDATE stock SET n = n - 1 WHERE item = $1", {"book"});
//   });
//
// What it runs (see SqlResource for the protocol, doc/postgres.md for the reasons):
//   first statement   BEGIN ISOLATION LEVEL REPEATABLE READ (or SERIALIZABLE)
//   commit()          nothing: the statements ran already, their errors surfaced there
//   tpc_vote          read-only when the branch ran no statement (and, with detect_read_only,
//                     when the server assigned it no transaction id: it changed nothing);
//                     otherwise SELECT 1; PREPARE TRANSACTION '<gid>' (one round trip; in a
//                     branch the server had aborted the SELECT fails, where PREPARE would
//                     quietly roll back)
//   tpc_finish        COMMIT PREPARED '<gid>' on any pooled connection; 42704 (no such gid)
//                     after a lost connection counts as done
//   tpc_abort         ROLLBACK, or ROLLBACK PREPARED '<gid>' after the vote; never throws
//   only participant  SELECT 1; COMMIT (one phase; a branch the server aborted fails the
//                     SELECT instead of being "committed" as a silent rollback)
//   savepoints        SAVEPOINT xact_sp_<n> / ROLLBACK TO SAVEPOINT xact_sp_<n>
//   recover(node)     SELECT gid FROM pg_prepared_xacts WHERE database = current_database()
//                     -> the ids of this node and this resource name
// The gid is Xid::to_gid(): "xact-<format>-<gtrid>-<bqual>" in hex, so two databases of one
// cluster (two resources, two names) have distinct gids, and recovery of one database never
// touches the other's.
//
// Every connection is checked when it opens: max_prepared_transactions = 0 is refused with a
// message saying how to fix it.
//
// The prepared-transaction statements cannot take the gid as a bound parameter; it is
// spliced in after checking that it consists of [0-9a-z-] only, as every xact gid does.
//
// Thread-safety: thread-safe; share one instance per database in a process.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <xact/postgres/pg_connection.hpp>
#include <xact/sql/sql_resource.hpp>

namespace pqxx {
class connection_base;
}

namespace xact::postgres {

enum class Isolation {
  /// Default. A snapshot per transaction; a write to a row someone else changed since fails at
  /// once with a serialization failure (40001), which xact::run retries. Never a lost update.
  repeatable_read,
  /// REPEATABLE READ plus PostgreSQL's serializable snapshot isolation: also catches
  /// read/write cycles (write skew), at the price of more 40001 retries.
  serializable,
};

struct PostgresOptions {
  /// libpq connection string or URI. Never appears in a message.
  std::string conninfo;
  /// The resource name: the branch qualifier of the gids, and how recovery finds this
  /// resource. Stable across restarts, unique per database among the participants, 1..64
  /// bytes. Default: "pg:<dbname>", dbname from conninfo (or, when conninfo names none, asked
  /// from the server at create()).
  std::string name;
  Isolation isolation = Isolation::repeatable_read;
  /// Session lock_timeout (see SessionSettings). A branch left prepared by a crash holds its
  /// row locks until recovery decides it; with a timeout, writers of those rows get a
  /// retryable LockTimeoutError instead of waiting.
  std::optional<std::chrono::milliseconds> lock_timeout;
  /// At vote, ask the server whether a branch that ran statements changed anything
  /// (pg_current_xact_id_if_assigned(): no id, no change), and vote read-only if not: no
  /// PREPARE, no COMMIT PREPARED, and no decision record when it leaves one voter. Costs one
  /// round trip per writing branch. Off: a branch that ran any statement is prepared.
  bool detect_read_only = false;
  std::string application_name = "xact";
  sql::PoolOptions pool;  ///< pool.name defaults to the resource name
};

class PostgresResource final : public sql::SqlResource {
 public:
  /// Validates the options and creates the pool; connects only when it has to learn the
  /// database name (no name given, no dbname in conninfo). Throws UsageError for bad options.
  static std::shared_ptr<PostgresResource> create(PostgresOptions options);

  /// Makes a libpqxx connection the application already holds the connection of txn's branch
  /// (before the branch's first statement). It must stay open, with no libpqxx transaction
  /// object on it, until txn ends; xact begins the branch on it and ends it at commit or
  /// abort, then it is the application's again. Its reactivation is inhibited.
  void enlist(Transaction& txn, pqxx::connection_base& connection);
  /// The same for a PgConnection the application opened (PgConnection::open / borrow).
  void enlist(Transaction& txn, std::shared_ptr<PgConnection> connection);

  const PostgresOptions& options() const noexcept { return options_; }
  /// A new connection with this resource's settings, outside the pool (for tools and tests).
  std::unique_ptr<PgConnection> open_connection() const;

 protected:
  void begin_branch(sql::Connection& conn, const Xid& xid) override;
  bool branch_wrote(sql::Connection& conn) override;
  void prepare_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_branch(sql::Connection& conn, const Xid& xid) override;
  void commit_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  void rollback_prepared_branch(sql::Connection& conn, const Xid& xid) override;
  std::vector<Xid> prepared_branches(sql::Connection& conn) override;
  void set_savepoint(sql::Connection& conn, const std::string& name) override;
  void rollback_to_savepoint(sql::Connection& conn, const std::string& name) override;
  /// pg_stat_activity: a backend named by pid and start is terminated (pg_terminate_backend)
  /// and counts as running until it has gone; one named by pid alone is waited for.
  bool server_session_running(sql::Connection& conn, const std::string& session) override;
  /// pg_stat_activity: the active backends of this database whose statement is xact's
  /// PREPARE TRANSACTION (readable for backends of one's own role).
  std::vector<PreparingSession> sessions_preparing(sql::Connection& conn) override;
  std::exception_ptr map_error(const std::exception_ptr& error,
                               sql::Phase phase) const noexcept override;

 private:
  PostgresResource(std::string name, PostgresOptions options,
                   std::shared_ptr<sql::ConnectionPool> pool);
  PgConnection& pg(sql::Connection& conn) const;
  std::string context() const;

  PostgresOptions options_;
};

}  // namespace xact::postgres
