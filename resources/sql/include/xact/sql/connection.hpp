// A connection to one SQL database, as the SQL participants and the application see it.
//
// It runs one statement at a time with bound parameters; there is deliberately no call that
// takes values spliced into the SQL text. Placeholders are $1, $2, ... for every dialect (one
// statement text serves all SQL stores; each adapter translates them, see
// <xact/sql/placeholders.hpp>); MySQL's and SQLite's own ? also work, on their own.
//
// Inside an xact transaction the application gets the connection of its branch from
// SqlResource::connection(txn): what it runs there commits or rolls back with the transaction.
// Transaction control (BEGIN, COMMIT, PREPARE, savepoints) belongs to the resource manager:
// running it on a branch's connection breaks the branch.
//
// Errors: execute() throws the adapter's mapping of the driver's errors (<xact/sql/errors.hpp>):
// SqlError, SerializationFailure, DeadlockError, LockTimeoutError, ConnectionLost, UsageError.
//
// Thread-safety: a Connection is used by one thread at a time.
#pragma once

#include <string>
#include <string_view>

#include <xact/sql/result.hpp>
#include <xact/sql/value.hpp>

namespace xact::sql {

class Connection {
 public:
  virtual ~Connection() = default;

  /// Runs one statement. Throws the mapped error (see above); after a ConnectionLost the
  /// connection is broken() for good.
  virtual Result execute(std::string_view sql, const Params& params = {}) = 0;

  /// Whether the connection looks usable, without a round trip to the server: open, and
  /// nothing unexpected waiting on the socket (a server that went away leaves an end of file
  /// or a termination notice there). Marks the connection broken when it is not.
  virtual bool looks_alive() noexcept = 0;
  /// A round trip to the server; false (and broken) when it fails.
  virtual bool ping() noexcept = 0;
  /// True once the connection is known to be unusable; a pool closes it instead of reusing it.
  virtual bool broken() const noexcept = 0;

  /// "postgresql", "mysql", "sqlite".
  virtual std::string_view dialect() const noexcept = 0;

  /// This connection's session on the server, in its adapter's own notation, taken when it
  /// connected (PostgreSQL: the backend's pid and start time; MySQL/MariaDB: the connection id
  /// and the client's address as the server saw it); empty when unknown. Still valid after the
  /// connection broke: a resource whose PREPARE lost its connection asks the server whether
  /// that session still runs, i.e. whether the prepare may still complete
  /// (SqlResource::rollback_prepared).
  virtual std::string server_session() const { return {}; }
};

}  // namespace xact::sql
