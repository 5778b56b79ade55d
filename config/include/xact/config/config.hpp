// xact::config: one TOML file declares an application's resources (doc/config.md).
//
//   [decision_log]
//   directory = "/var/lib/app/xact"
//
//   [[database]]                       # an object database ("objects:main"), the default
//   name = "main"
//   storage = "file:/var/lib/app/main.fs"
//
//   [[database]]                       # a volatile one: objects not written for 30m go
//   name = "sessions"
//   storage = "memory:"
//   expiry = "30m"
//   xrefs = "allow"                    # allow | check | forbid (the default)
//
//   [[sql]]
//   name = "orders"
//   kind = "postgres"
//   uri = "postgresql://app@db/orders"
//   password_env = "ORDERS_PASSWORD"
//
//   [[sql]]
//   name = "app"
//   kind = "sqlite"
//   path = "/var/lib/app/app.db"
//   last_resource = true
//
//   [[sheet_store]]                    # property sheets (xact::sheets) in the "app" database
//   sql = "app"
//
//   auto app = xact::config::load("/etc/app/xact.toml");
//   xact::run(*app.manager, [&](xact::Transaction& txn) { ... app.sql_resource("app") ... });
//
// load() parses the file, opens the decision log, the object databases, the SQL resources, the
// session stores and the sheet stores (app.sheet_store("app")), registers every resource with
// an xact::Recovery and runs it once (an application starts by finishing what a crash left). parse() only reads the file, for tools (`xact recover --config`)
// that open the resources their own way.
//
// Errors: ConfigError, whose message names the file, the line and the key, and says what to
// do. Every string value may use ${VAR} (expanded from the environment; an unset variable is an
// error naming it). A password comes from password_env (a variable) or password_file (a file
// readable by its owner only, mode 0600 or 0400) and never appears in a message or a log line.
// A key the loader does not know is an error naming it (a typo must not be ignored).
//
// The module sits above the adapters: it links xact::postgres and xact::mysql when they are
// built (a file naming a kind this build lacks gets a ConfigError saying so); a program that
// links only xact::coordinator pulls in none of them.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/recovery.hpp>
#include <xact/sessions/session_resource.hpp>
#include <xact/sheets/sheet_store.hpp>
#include <xact/sql/sql_resource.hpp>
#include <xact/xid.hpp>

namespace xact::config {

/// A file that cannot be used: the message names the file, the line and the key.
class ConfigError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// Where a value came from, for messages: "app.toml:12".
struct Origin {
  std::string file;
  std::size_t line = 0;
  std::string where() const { return file + ":" + std::to_string(line); }
};

struct DecisionLogSpec {
  std::string directory;
  /// The node id the directory must hold (32 hex digits), when the file says: guards against
  /// a configuration pointed at another node's log.
  std::optional<NodeId> node;
  Origin origin;
};

struct DatabaseSpec {
  enum class StorageKind { file, memory };
  std::string name;  ///< resource name "objects:<name>"
  StorageKind storage = StorageKind::file;
  std::string path;  ///< file storage only
  std::size_t cache_size = 10000;
  std::size_t pool_size = 8;
  /// The seat belt: cross-database references from this database's objects.
  objectstore::XrefPolicy xrefs = objectstore::XrefPolicy::forbid;
  /// Memory storage only: objects not written for this long are swept away (a background
  /// sweep runs every expiry/4, at most every minute).
  std::optional<std::chrono::seconds> expiry;
  Origin origin;
  std::string resource_name() const { return "objects:" + name; }
};

enum class SqlKind { postgres, mysql, sqlite };
std::string_view to_string(SqlKind kind);

struct SqlSpec {
  std::string name;  ///< the resource name (branch qualifier of every id): stable
  SqlKind kind = SqlKind::sqlite;
  std::string uri;   ///< postgres: libpq URI or key=value string; mysql: mysql://user@host:port/db
  std::string path;  ///< sqlite: the database file
  std::optional<std::string> password;  ///< from password_env / password_file; never printed
  bool last_resource = false;
  std::optional<std::size_t> pool_size;  ///< the connection pool's maximum size
  Origin origin;
  std::string resource_name() const { return name; }
};

/// A session store wrapped in a compensating SessionResource (doc/config.md, [[session_store]]).
struct SessionStoreSpec {
  enum class Kind { memory, myisam };
  std::string name;  ///< the resource name (branch qualifier of every id): stable
  Kind kind = Kind::memory;
  std::string uri;   ///< myisam: mysql://user@host:port/db
  std::optional<std::string> password;  ///< from password_env / password_file; never printed
  std::string table = "xact_sessions";  ///< myisam
  std::chrono::seconds idle_timeout = std::chrono::minutes(30);
  std::chrono::seconds fence_lease = std::chrono::minutes(10);
  std::optional<std::size_t> connections;  ///< myisam: connections at most
  Origin origin;
  std::string resource_name() const { return name; }
};

/// Property sheets kept in the database of one [[sql]] resource (doc/config.md,
/// [[sheet_store]]; doc/sheets.md). The sheet definitions are the application's code
/// (SheetStore::define); the file says where their tables live.
struct SheetStoreSpec {
  std::string sql;  ///< the [[sql]] resource (by name) whose database holds the sheet tables
  Origin origin;
};

struct Config {
  std::string file;
  DecisionLogSpec decision_log;
  std::vector<DatabaseSpec> databases;
  std::vector<SqlSpec> sql;
  std::vector<SessionStoreSpec> session_stores;
  std::vector<SheetStoreSpec> sheet_stores;
  /// The [[sql]] spec named `name`, or null.
  const SqlSpec* find_sql(std::string_view name) const;
};

/// Looks up an environment variable; nullopt when unset.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;

struct ParseOptions {
  /// Where ${VAR} and password_env are looked up; empty: the process environment.
  Environment environment;
};

/// Reads and checks `path`. Throws ConfigError.
Config parse_file(const std::string& path, const ParseOptions& options = {});
/// The same for text already read; `file` names it in messages.
Config parse_string(std::string_view text, const std::string& file,
                    const ParseOptions& options = {});

struct OpenOptions {
  /// The file system of file storages; nullptr: io::Env::posix().
  io::Env* env = nullptr;
  /// Create missing file storages and SQLite files. Off (recovery tools): a missing file is an
  /// error, so a wrong path cannot pass for an empty resource.
  bool create = true;
  /// Open file storages read-only (dry runs: nothing is written, not even a repaired tail).
  bool read_only = false;
};

/// Opens one object database of the file. Throws what the storage throws.
std::shared_ptr<objectstore::DB> open_database(const DatabaseSpec& spec,
                                               const OpenOptions& options = {});
/// Opens every object database of the file into one registry (the first is the default), in
/// the file's order. Throws what open_database throws.
std::shared_ptr<objectstore::Databases> open_databases(const Config& config,
                                                       const OpenOptions& options = {});
/// Creates one SQL resource of the file (PostgreSQL and MySQL connect on first use; SQLite
/// opens its file). Throws ConfigError for a kind this build lacks, else what the adapter does.
std::shared_ptr<sql::SqlResource> open_sql(const SqlSpec& spec, const OpenOptions& options = {});

/// Opens one session store of the file and wraps it in a SessionResource recording heuristic
/// outcomes in `log` (may be null). A MyISAM store connects at once; its table is created only
/// when options.create is set and options.read_only is not. Throws ConfigError for a kind this
/// build lacks, else what the store throws.
std::shared_ptr<sessions::SessionResource> open_session_store(
    const SessionStoreSpec& spec, const OpenOptions& options = {},
    std::shared_ptr<DecisionLog> log = nullptr);

/// A SheetStore on `resource` (the resource of spec.sql). It asks the resource for a connection
/// at once (to learn its dialect) and creates nothing: tables are made when the application
/// defines its sheets and uses them. Throws what the adapter throws, prefixed with the file's
/// line.
std::shared_ptr<sheets::SheetStore> open_sheet_store(const SheetStoreSpec& spec,
                                                     std::shared_ptr<sql::SqlResource> resource);

/// What load() opened. Destroyed in the right order (recovery first, the log last).
struct Application {
  Config config;
  std::shared_ptr<DecisionLog> decision_log;
  std::shared_ptr<ThreadTransactionManager> manager;
  std::map<std::string, std::shared_ptr<objectstore::DB>> databases;  ///< by config name
  /// The same databases as one registry (get_connection, cross-database references, the seat
  /// belt); the file's first [[database]] is its default. Null when the file has none.
  std::shared_ptr<objectstore::Databases> registry;
  std::map<std::string, std::shared_ptr<sql::SqlResource>> sql;       ///< by config name
  std::map<std::string, std::shared_ptr<sessions::SessionResource>> session_stores;  ///< by name
  /// By the name of the [[sql]] resource that hosts them.
  std::map<std::string, std::shared_ptr<sheets::SheetStore>> sheet_stores;
  std::unique_ptr<Recovery> recovery;  ///< every resource registered
  RecoveryReport recovery_report;      ///< of the run load() made (empty when it made none)

  /// The database / SQL resource the file calls `name`; ConfigError naming the file otherwise.
  objectstore::DB& database(const std::string& name) const;
  sql::SqlResource& sql_resource(const std::string& name) const;
  sessions::SessionResource& session_store(const std::string& name) const;
  /// The sheet store on the [[sql]] resource named `sql`.
  sheets::SheetStore& sheet_store(const std::string& sql) const;
};

struct LoadOptions {
  ParseOptions parse;
  OpenOptions open;
  DecisionLogOptions decision_log;
  /// Run recovery once before returning (the report is in Application::recovery_report).
  bool run_recovery = true;
};

/// Parses `path`, opens the decision log (its directory is created when missing), the
/// databases, the SQL resources, the session stores and the sheet stores, makes a
/// ThreadTransactionManager logging to the decision log, registers every resource with a
/// Recovery and (by default) runs it. Throws ConfigError
/// for a bad file, StorageError/sql errors when a resource cannot be opened (the message names
/// the resource and the file's line).
Application load(const std::string& path, LoadOptions options = {});

}  // namespace xact::config
