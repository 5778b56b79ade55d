// A MySQL or MariaDB connection (MySQL Connector/C++ 1.1) as an xact::sql::Connection.
//
// Statements run as server-side prepared statements: one statement per call, every argument a
// bound parameter (placeholders `$n`, sent as `?` with the parameters in order; or `?` alone). Each
// connection keeps its most recently used prepared statements (up to 64), so a statement run again
// costs one round trip. Parameters: NULL, integers, doubles, text, bytes (as a BLOB), booleans.
// Results come back typed by column type: integer types as int64 (an UNSIGNED BIGINT above
// INT64_MAX as text), FLOAT/DOUBLE as double, BINARY/VARBINARY/BLOB as bytes, everything else
// (DECIMAL, dates, JSON, text) as text.
//
// Every connection xact opens
//  - never reconnects on its own (OPT_RECONNECT off): a silent reconnect in the middle of a
//    branch would run the rest of it outside its XA transaction. A lost connection stays lost
//    (broken()) and the pool replaces it;
//  - sets the session's transaction isolation level (and, if asked, innodb_lock_wait_timeout)
//    once, when it opens: XA START then begins every branch at that level.
//
// After a deadlock (1213) the server has rolled the whole branch back: the connection refuses
// every further statement of the branch (throwing the DeadlockError again without sending
// anything) until the branch ends. After a lock wait timeout (1205) the same holds until a
// rollback to a savepoint or the end of the branch (see doc/mysql.md for why).
//
// Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/sql/connection.hpp>
#include <xact/sql/errors.hpp>
#include <xact/xid.hpp>

namespace sql {
class Connection;  // Connector/C++
}

namespace xact::mysql {

class MySqlResource;

enum class Isolation {
  /// Default. InnoDB's SERIALIZABLE: plain SELECTs inside a branch take shared locks, so a
  /// read-modify-write that races another one ends in a deadlock (retried by xact::run) instead
  /// of a silent lost update. What MariaDB's documentation recommends for XA.
  serializable,
  /// InnoDB's REPEATABLE READ: non-locking snapshot reads; UPDATE/DELETE and locking reads
  /// (SELECT ... FOR UPDATE) see the newest committed rows. The least XA allows.
  repeatable_read,
};
std::string_view to_string(Isolation isolation);

struct ConnectOptions {
  std::string host = "127.0.0.1";
  unsigned port = 3306;
  /// Connect through this Unix socket instead of host and port (when not empty).
  std::string unix_socket;
  std::string user;
  std::string password;  ///< never appears in a message
  std::string database;
  Isolation isolation = Isolation::serializable;
  /// innodb_lock_wait_timeout of the session (whole seconds, at least 1). nullopt keeps the
  /// server's (50 s by default). A branch left prepared by a crash holds its row locks until
  /// recovery decides it; a short timeout turns waiting on them into a retryable error.
  std::optional<std::chrono::seconds> lock_wait_timeout;
  std::chrono::seconds connect_timeout{10};
  /// How long a statement may take to answer before the connection counts as lost (0: no
  /// limit). Keep it well above the lock wait timeout.
  std::chrono::seconds read_timeout{0};
};

class MySqlConnection final : public sql::Connection {
 public:
  /// Connects and makes the session settings (isolation level, lock wait timeout). Throws
  /// sql::ConnectionLost when the server cannot be reached, sql::SqlError when it refuses
  /// (wrong password, unknown database). `context` names the connection in messages
  /// ("resource 'mysql:orders'").
  static std::unique_ptr<MySqlConnection> open(const ConnectOptions& options,
                                               std::string context = "mysql");
  /// Wraps a Connector/C++ connection the application holds, without owning it: it must outlive
  /// the wrapper and stay in autocommit mode with no transaction open while xact uses it. Sets
  /// the session's isolation level to `isolation` (for good) and turns reconnection off.
  static std::shared_ptr<MySqlConnection> borrow(::sql::Connection& native,
                                                 Isolation isolation = Isolation::serializable,
                                                 std::string context = "mysql");
  ~MySqlConnection() override;
  MySqlConnection(const MySqlConnection&) = delete;
  MySqlConnection& operator=(const MySqlConnection&) = delete;

  sql::Result execute(std::string_view sql, const sql::Params& params = {}) override;
  /// Open and not known to be broken (Connector/C++ gives no way to look at the socket without a
  /// round trip; the pool pings connections that were idle for a while).
  bool looks_alive() noexcept override;
  bool ping() noexcept override;
  bool broken() const noexcept override;
  std::string_view dialect() const noexcept override { return "mysql"; }
  /// "id=N host=H": the connection id and the client's address as the server's process list
  /// shows it ("127.0.0.1:40312" over TCP, "localhost" over a socket), read when xact
  /// connected or borrowed it; empty when the server has no information_schema.PROCESSLIST.
  std::string server_session() const override;
  /// server_session()'s notation for a process-list entry.
  static std::string session_name(std::uint64_t id, std::string_view host);

  /// The Connector/C++ connection, for what xact::sql does not cover. Inside a branch, never
  /// run transaction control on it (COMMIT, ROLLBACK, XA ..., setAutoCommit).
  ::sql::Connection& native() noexcept;
  /// "10.11.19-MariaDB-0+deb12u1", "8.0.36".
  std::string server_version();
  /// True for a MariaDB server.
  bool is_mariadb();
  /// True when the server has INSERT/DELETE ... RETURNING (MariaDB 10.5 and later; MySQL has
  /// none).
  bool has_returning();

  /// One row of plain `XA RECOVER`: the columns MySQL 5.7/8 and MariaDB all return. `data` is
  /// the gtrid's bytes followed by the bqual's, read binary-safely.
  struct XaRow {
    long long format_id = 0;
    long long gtrid_length = 0;
    long long bqual_length = 0;
    std::string data;
  };
  /// Every prepared XA branch the server shows this user (any program's; Xid::from_xa picks
  /// xact's). Throws the mapped error.
  std::vector<XaRow> xa_recover();

 private:
  friend class MySqlResource;
  struct Impl;
  explicit MySqlConnection(std::unique_ptr<Impl> impl);

  /// A protocol statement xact itself composed (XA START X'..',X'..',n; SAVEPOINT xact_sp_3),
  /// run as a plain statement: the XA statements cannot be prepared. Never application text.
  void run_protocol(const std::string& sql, sql::Phase phase);
  /// Throws the error that poisoned the branch (deadlock, lock wait timeout), if any.
  void check_usable() const;
  /// The branch ended (or was rolled back to a savepoint: `lock_timeout_only`).
  void clear_poison(bool lock_timeout_only = false) noexcept;
  bool deadlocked() const noexcept;
  /// Replaces a connection that was lost before its branch began (XA START failed): only for
  /// connections xact opened itself.
  bool can_reconnect() const noexcept;
  void set_pooled() noexcept;
  /// A connection that connects on first use (for the resource's session swaps).
  static std::unique_ptr<MySqlConnection> lazy(const ConnectOptions& options, std::string context);
  /// Exchanges the server sessions (and everything that belongs to them) of two connections.
  void swap_session(MySqlConnection& other) noexcept;
  /// XA COMMIT/ROLLBACK <id> here; when the server answers "unknown xid" (1397) while XA RECOVER
  /// still lists the id, the branch is attached to another session that is going away (MariaDB
  /// detaches a prepared branch only when its session ends): waits and tries again, up to
  /// `patience`, then throws sql::ConnectionLost (the branch stays prepared for recovery).
  void finish_by_id(const std::string& xa_id, const Xid& xid, bool commit,
                    std::chrono::milliseconds patience);
  void reconnect();
  const std::string& context() const noexcept;

  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::mysql
