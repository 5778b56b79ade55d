// An SQLite database connection (the sqlite3 C API) as an xact::sql::Connection.
//
// Statements are compiled once per connection and kept (up to 64), one statement per call,
// every argument a bound parameter (placeholders `$n`, sent as `?n`; or SQLite's own `?`, `?NNN`).
// Parameters: NULL, integers, doubles, text, bytes (BLOB), booleans (as 0/1). Results come back by
// the storage class of each value: INTEGER as int64, REAL as double, TEXT as text, BLOB as bytes,
// NULL.
//
// Every connection is checked when it opens, because the last-resource commit must be durable:
//  - journal_mode=WAL is set (it is persistent in the file); a database that cannot be in WAL
//    mode (":memory:", a temporary database, a read-only file) is refused with a message;
//  - synchronous=FULL is set (per connection): in WAL mode NORMAL can lose the last commits on
//    power loss, and a lost commit would lose a decision marker;
//  - extended result codes on, and a busy timeout: a connection waits that long for another
//    one's write lock, then fails with a retryable ConflictError.
//
// Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <xact/sql/connection.hpp>
#include <xact/sql/errors.hpp>

struct sqlite3;

namespace xact::sqlite {

class SqliteResource;

struct OpenOptions {
  /// How long a statement waits for another connection's lock before SQLITE_BUSY.
  std::chrono::milliseconds busy_timeout{5000};
  /// Create the database file when it does not exist. Off by default: a decision store whose
  /// file vanished must read as "cannot be read", never as "holds no decision".
  bool create_if_missing = false;
  /// Open read-only, for dry runs: nothing is created or written (no file, no journal mode, no
  /// -wal or -shm file where there is none) and the WAL/synchronous check is skipped. A file
  /// with no -wal file beside it (closed cleanly: everything is in the file) is opened
  /// immutable; one with a -wal file (a writer still running, or crashed) through that WAL.
  bool read_only = false;
};

class SqliteConnection final : public sql::Connection {
 public:
  /// Opens `path` (a file name, or a "file:" URI) read-write and checks it (see above). Throws
  /// sql::SqlError when it cannot be opened, UsageError when it cannot be made durable (no WAL).
  /// `context` names the connection in messages ("resource 'sqlite:app'").
  static std::unique_ptr<SqliteConnection> open(const std::string& path,
                                                const OpenOptions& options = {},
                                                std::string context = "sqlite");
  /// Wraps a connection the application holds, without owning it: it must outlive the wrapper
  /// and have no transaction open while xact uses it. Puts it in WAL mode with synchronous=FULL
  /// and extended result codes, and sets the busy timeout (for good); refuses it like open().
  static std::shared_ptr<SqliteConnection> borrow(sqlite3* native,
                                                  std::chrono::milliseconds busy_timeout,
                                                  std::string context = "sqlite");
  ~SqliteConnection() override;
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  sql::Result execute(std::string_view sql, const sql::Params& params = {}) override;
  /// There is no server to lose: false only after an error that makes the connection worthless
  /// (I/O error, corruption).
  bool looks_alive() noexcept override;
  /// Reads the schema (a read of the file); false (and broken) when that fails.
  bool ping() noexcept override;
  bool broken() const noexcept override;
  std::string_view dialect() const noexcept override { return "sqlite"; }

  sqlite3* native() noexcept;
  /// Whether a transaction is open (sqlite3_get_autocommit() is 0). SQLite ends a transaction
  /// on its own after some errors (disk full, I/O error); the adapter checks before COMMIT.
  bool in_transaction() const noexcept;

 private:
  friend class SqliteResource;
  struct Impl;
  explicit SqliteConnection(std::unique_ptr<Impl> impl);

  /// A statement xact itself composed (BEGIN IMMEDIATE, COMMIT, SAVEPOINT xact_sp_1, ...).
  void run_protocol(std::string_view sql, sql::Phase phase);
  /// Throws the retryable conflict that ended the branch's usefulness (a BUSY inside the
  /// transaction), if any.
  void check_usable() const;
  void clear_poison() noexcept;
  /// The code and message of the last failure, for mapping it in another phase.
  int last_error_code() const noexcept;
  const std::string& last_error_message() const noexcept;
  const std::string& context() const noexcept;

  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::sqlite
