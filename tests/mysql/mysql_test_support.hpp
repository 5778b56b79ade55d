// What the MySQL/MariaDB integration tests share: the server's settings (XACT_MYSQL_*, written
// by scripts/servers.sh), skipping or failing when they are missing, InnoDB tables of their own,
// plain reads outside xact, and the XA branches the server holds.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/mysql/mysql_resource.hpp>
#include <xact/testing/servers.hpp>
#include <xact/xid.hpp>

namespace xact::mytest {

struct MyEnv {
  mysql::ConnectOptions connect;  // database XACT_MYSQL_DB
  std::string db2;                // XACT_MYSQL_DB2
  std::string servers_script;     // XACT_SERVERS_SCRIPT, empty when not available
  std::string servers_dir;
};

/// The settings, or null when XACT_MYSQL_HOST / XACT_MYSQL_PORT are not set.
const MyEnv* my_env();
using testing::under_ci;
using testing::unique_name;

/// Skips the test (fails it under CI=true) when no server is configured.
#define XACT_REQUIRE_MYSQL()                                                               \
  do {                                                                                     \
    if (::xact::mytest::my_env() == nullptr) {                                             \
      if (::xact::mytest::under_ci()) {                                                    \
        FAIL() << "CI=true but XACT_MYSQL_HOST/XACT_MYSQL_PORT are not set: start the "    \
                  "servers (scripts/servers.sh start DIR; source DIR/env.sh) or run "      \
                  "scripts/test.sh";                                                       \
      }                                                                                    \
      GTEST_SKIP() << "no MySQL/MariaDB: set XACT_MYSQL_* (scripts/servers.sh start DIR; " \
                      "source DIR/env.sh)";                                                \
    }                                                                                      \
  } while (0)

/// Connect options for `database` (default: XACT_MYSQL_DB).
mysql::ConnectOptions connect_options(const std::string& database = {});
/// Options for a MySqlResource with a name of its own (unless `name` is given).
mysql::MySqlOptions options(std::string name = {}, const std::string& database = {});

/// A table of its own, created at construction and dropped at destruction:
/// k VARCHAR(64) PRIMARY KEY, v VARCHAR(255), ENGINE=InnoDB (or the given definition).
class TempTable {
 public:
  explicit TempTable(std::string columns = "k VARCHAR(64) PRIMARY KEY, v VARCHAR(255)",
                     std::string engine = "InnoDB", const std::string& database = {});
  ~TempTable();
  TempTable(const TempTable&) = delete;
  TempTable& operator=(const TempTable&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string database_;
  std::string name_;
};

/// A plain connection outside xact (autocommit), for reading committed data and setting up.
class Plain {
 public:
  explicit Plain(const std::string& database = {});
  sql::Result run(const std::string& sql, const sql::Params& params = {});
  std::optional<std::string> value(const std::string& table, const std::string& key);
  /// Every xact XA branch the server holds (XA RECOVER), any node.
  std::vector<Xid> xact_branches();
  std::vector<Xid> branches_of(const NodeId& node);
  mysql::MySqlConnection& conn() { return *conn_; }

 private:
  std::unique_ptr<mysql::MySqlConnection> conn_;
};

/// Inserts or replaces k = v through `rm` in `txn`.
void put(mysql::MySqlResource& rm, Transaction& txn, const std::string& table,
         const std::string& key, const std::string& value);

/// Runs `XACT_SERVERS_SCRIPT <command> XACT_SERVERS_DIR` (kill-mysql, restart-mysql).
inline bool servers(const std::string& command) { return testing::run_servers_script(command); }

}  // namespace xact::mytest
