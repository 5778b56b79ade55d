// A PostgreSQL connection (libpqxx) as an xact::sql::Connection.
//
// Statements run through libpqxx's exec_params: the extended query protocol, one statement per
// call, every argument a bound parameter. Parameters go as text: NULL, integers, doubles
// (shortest exact form; NaN and Infinity spelled as PostgreSQL spells them), text (no NUL
// bytes: pass Bytes instead), bytes (bytea hex form, "\x..."), booleans. Results come back
// typed by column type: bool, int2/int4/int8/oid, float4/float8, bytea; every other type
// (numeric, dates, json, ...) as its text form.
//
// libpqxx 6.4 would silently reconnect a broken connection ("reactivation"); between the
// statements of a branch that would run the rest of the branch outside its transaction. Every
// connection xact opens or is given has reactivation inhibited: a lost connection stays lost
// (broken()), and the pool replaces it.
//
// Server notices (warnings) go to xact's log at debug level.
//
// Thread-safety: one thread at a time, like the libpqxx connection under it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <xact/sql/connection.hpp>
#include <xact/sql/errors.hpp>

namespace pqxx {
class connection_base;
}

namespace xact::postgres {

class PostgresResource;

/// Session settings made when a connection opens (one round trip, bound parameters).
struct SessionSettings {
  /// lock_timeout of the session: how long a statement waits for a row or table lock before
  /// failing with sql::LockTimeoutError. nullopt keeps the server's setting (PostgreSQL's
  /// default waits forever).
  std::optional<std::chrono::milliseconds> lock_timeout;
  std::string application_name = "xact";
};

class PgConnection final : public sql::Connection {
 public:
  /// Connects with a libpq connection string or URI ("host=... dbname=..." or
  /// "postgresql://user:pw@host:port/db"), inhibits reactivation, then in one round trip reads
  /// max_prepared_transactions (0 is refused: check_max_prepared_transactions) and makes the
  /// session settings. Throws sql::ConnectionLost when the server cannot be reached,
  /// ResourceError for a server that cannot prepare. `context` names the connection in
  /// messages ("resource 'pg:orders'"); the connection string never appears in one.
  static std::unique_ptr<PgConnection> open(const std::string& conninfo,
                                            const SessionSettings& settings = {},
                                            std::string context = "postgresql");
  /// Wraps a libpqxx connection the application holds, without owning it: it must outlive
  /// the wrapper and have no libpqxx transaction object open while xact uses it. Inhibits its
  /// reactivation (for good).
  static std::shared_ptr<PgConnection> borrow(pqxx::connection_base& native,
                                              std::string context = "postgresql");
  ~PgConnection() override;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  sql::Result execute(std::string_view sql, const sql::Params& params = {}) override;
  bool looks_alive() noexcept override;
  bool ping() noexcept override;
  bool broken() const noexcept override;
  std::string_view dialect() const noexcept override { return "postgresql"; }
  /// "pid=P start=S": the backend's pid and its start in microseconds since the epoch, read
  /// when open() connected (the pair names one backend exactly); "pid=P" for a borrowed
  /// connection (libpq knows the pid; its start would cost a round trip per enlistment).
  std::string server_session() const override;

  /// The libpqxx connection, for what xact::sql does not cover. Inside a branch run statements
  /// only through a pqxx::nontransaction (a pqxx::work would send a second BEGIN and commit the
  /// branch behind xact's back).
  pqxx::connection_base& native() noexcept;
  /// The server version as libpq reports it (150004 for 15.4); 0 when not connected.
  int server_version() const noexcept;

 private:
  friend class PostgresResource;
  struct Impl;
  explicit PgConnection(std::unique_ptr<Impl> impl);

  /// server_session()'s notation for a backend: "pid=P start=S", or "pid=P" without a start.
  static std::string session_name(std::int64_t pid, std::optional<std::int64_t> start);

  /// A protocol statement xact itself composed (BEGIN ..., PREPARE TRANSACTION '<gid>', ...),
  /// sent as a simple query: several statements may follow each other. Never application
  /// text: the only values in it are ids xact made and checked.
  sql::Result run_protocol(const std::string& sql, sql::Phase phase);
  [[noreturn]] void fail(sql::Phase phase);

  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::postgres
