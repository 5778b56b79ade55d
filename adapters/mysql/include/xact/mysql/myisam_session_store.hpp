// A session store in one MySQL/MariaDB MyISAM table, shared by several processes and machines.
//
// MyISAM is the seed's case: a non-transactional table that many application processes share.
// The store never opens an XA branch: every statement runs on an autocommit connection, and a
// single-row statement on MyISAM is atomic (the table lock), nothing more. So each protocol step
// is one statement:
//  - a write by SessionResource is ONE compare-and-set statement that stores the new value and
//    its compensation in the same row: `UPDATE ... WHERE sid = ? AND name = ? AND version = ?
//    AND owner_gtrid <=> ?` (or an INSERT for a new value) sets value, version, the owner (node
//    and transaction id), the before-image and its version, and fenced_at. A crash can never
//    separate a write from its compensation, and no local log (no fsync) is needed; recovery
//    finds a dead process's rows by owner node (an index);
//  - the fence works across processes: it is the owner column;
//  - a commit is one UPDATE over the transaction's sessions that drops its fences and refreshes
//    the sessions' expiry (plus one DELETE when it erased values).
//
// The table (created when missing; `table` is a plain identifier):
//   sid VARBINARY(128), name VARBINARY(255)      PRIMARY KEY (sid, name)
//   value LONGBLOB NULL                          NULL: erased by the fence's owner (tombstone)
//   version BIGINT, expires_us BIGINT            wall-clock microseconds since the Unix epoch
//   owner_node BINARY(16) NULL, owner_gtrid BINARY(28) NULL, owner_version BIGINT NULL
//   before_value LONGBLOB NULL, before_version BIGINT NULL, fenced_at_us BIGINT NULL
//   KEY owner (owner_node, owner_gtrid)
// Expiry is kept per row; every committed write and touch() refreshes all rows of the session,
// so they expire together. Machines sharing a table need synchronized clocks (NTP).
//
// MyISAM is not crash-safe: a server killed while writing can leave the table marked crashed.
// Those errors (126, 127, 130, 145, 1034, 1194, 1195, and 1030 naming one of the engine's
// numbers) are reported as ResourceError saying to run `REPAIR TABLE`, never worked around.
//
// Thread-safety: safe from many threads (a pool of autocommit connections).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <xact/mysql/mysql_connection.hpp>
#include <xact/sessions/session_store.hpp>

namespace xact::mysql {

struct MyIsamSessionStoreOptions {
  ConnectOptions connect;
  /// Table name (letters, digits, underscore; at most 64).
  std::string table = "xact_sessions";
  std::chrono::microseconds idle_timeout = std::chrono::minutes(30);
  /// Connections at most (one per concurrent call).
  std::size_t connections = 8;
  /// CREATE TABLE IF NOT EXISTS at open.
  bool create_table = true;
};

/// Whether a MySQL/MariaDB error number means a crashed or damaged MyISAM table.
bool is_crashed_table_error(int native_code, const std::string& message) noexcept;

class MyIsamSessionStore final : public sessions::SessionStore {
 public:
  /// Connects (one connection, more on demand) and creates the table when asked. Throws
  /// sql::ConnectionLost or sql::SqlError like MySqlConnection::open; UsageError for a bad name.
  static std::shared_ptr<MyIsamSessionStore> open(MyIsamSessionStoreOptions options);
  ~MyIsamSessionStore() override;
  MyIsamSessionStore(const MyIsamSessionStore&) = delete;
  MyIsamSessionStore& operator=(const MyIsamSessionStore&) = delete;

  std::string describe() const override;
  std::chrono::microseconds idle_timeout() const noexcept override;
  /// A connection that failed or was lost (sql::ConnectionLost): the server was out of reach.
  bool is_transient(const std::exception_ptr& error) const noexcept override;
  const std::string& table() const noexcept;

  std::optional<std::string> get(const std::string& session_id, const std::string& name) override;
  std::map<std::string, std::string> get_all(const std::string& session_id) override;
  void set(const std::string& session_id, const std::string& name,
           const std::string& value) override;
  void erase(const std::string& session_id, const std::string& name) override;
  bool touch(const std::string& session_id) override;
  void invalidate(const std::string& session_id) override;
  std::size_t sweep_expired() override;

  std::optional<sessions::Entry> read_entry(const std::string& session_id,
                                            const std::string& name) override;
  std::map<std::string, sessions::Entry> read_session(const std::string& session_id) override;
  bool compare_and_swap(const std::string& session_id, const std::string& name,
                        const std::optional<sessions::Entry>& seen,
                        const std::optional<sessions::Entry>& next) override;
  /// On MariaDB 10.5 and later one `INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING`: the
  /// before-image is computed in the row, the fence checked in the same statement and the row
  /// as it then is returned (no SELECT first). On MySQL (no RETURNING) the default: a SELECT
  /// and the compare-and-set.
  FencedWrite write_fenced(const std::string& session_id, const std::string& name,
                           const std::string& value, const Gtrid& owner, std::int64_t now,
                           sessions::Entry& result,
                           std::optional<sessions::Entry>& before) override;
  std::size_t clear_fences(const Gtrid& owner, const std::vector<std::string>& session_ids,
                           bool tombstones) override;
  std::vector<sessions::FencedEntry> list_fenced(const std::optional<NodeId>& node) override;
  std::vector<sessions::FencedEntry> list_fenced_by(const Gtrid& owner) override;

  /// Runs one statement on a pooled autocommit connection, with the crashed-table mapping. For
  /// tests and tools (e.g. the bench's bare UPDATE baseline).
  sql::Result execute(const std::string& statement, const sql::Params& params = {});

 private:
  struct Impl;
  explicit MyIsamSessionStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::mysql
