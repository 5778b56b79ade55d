// PostgreSQL and MariaDB resources from a configuration file, against the real servers of
// scripts/servers.sh (skipped without them; CI=true makes that a failure): the URI built with
// ${VAR}, the password from password_env and from an owner-only password_file, one transaction
// across both servers, a file storage and SQLite, and a wrong password that no message shows.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/mysql/mysql_resource.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/retry.hpp>
#include <xact/sheets/sheet_owner.hpp>
#include <xact/testing/crash_harness.hpp>

namespace xact::config {
namespace {

using testing::TempDir;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class ConfigServers : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("XACT_PG_HOST") == nullptr || std::getenv("XACT_MYSQL_HOST") == nullptr) {
      const char* ci = std::getenv("CI");
      if (ci != nullptr && std::string(ci) == "true") {
        FAIL() << "CI=true but XACT_PG_*/XACT_MYSQL_* are not set";
      }
      GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
    }
    table_ = "cfgs_" + std::to_string(::getpid());
  }

  // The file: PostgreSQL's password from the environment, MariaDB's from a file.
  std::string write_config(const std::string& mysql_password) {
    const std::string secret = dir_ / "mysql.password";
    std::ofstream(secret) << mysql_password << "\n";
    ::chmod(secret.c_str(), 0600);
    const std::string file = dir_ / "app.toml";
    std::ofstream(file)
        << "[decision_log]\ndirectory = \"" << (dir_ / "xact") << "\"\n\n"
        << "[[database]]\nname = \"main\"\nstorage = \"file:" << (dir_ / "main.fs") << "\"\n\n"
        << "[[sql]]\nname = \"orders\"\nkind = \"postgres\"\n"
           "uri = \"postgresql://${XACT_PG_USER}@${XACT_PG_HOST}:${XACT_PG_PORT}/${XACT_PG_DB}\"\n"
           "password_env = \"XACT_PG_PASSWORD\"\npool_size = 2\n\n"
        << "[[sql]]\nname = \"stock\"\nkind = \"mariadb\"\n"
           "uri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:${XACT_MYSQL_PORT}/"
           "${XACT_MYSQL_DB}\"\npassword_file = \""
        << secret << "\"\n\n"
        << "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"" << (dir_ / "app.db") << "\"\n";
    return file;
  }

  TempDir dir_;
  std::string table_;
};

TEST_F(ConfigServers, OneTransactionAcrossEveryKindOfResource) {
  const std::string file = write_config(std::getenv("XACT_MYSQL_PASSWORD"));
  {
    Application app = load(file);
    ASSERT_TRUE(app.recovery_report.complete()) << app.recovery_report.describe();
    auto& orders = dynamic_cast<postgres::PostgresResource&>(app.sql_resource("orders"));
    auto& stock = dynamic_cast<mysql::MySqlResource&>(app.sql_resource("stock"));
    EXPECT_EQ(orders.options().pool.max_size, 2u);
    EXPECT_EQ(stock.options().connect.port,
              static_cast<unsigned>(std::atoi(std::getenv("XACT_MYSQL_PORT"))));
    orders.open_connection()->execute("CREATE TABLE " + table_ + " (k TEXT PRIMARY KEY)");
    stock.open_connection()->execute("CREATE TABLE " + table_ +
                                     " (k VARCHAR(64) PRIMARY KEY) ENGINE=InnoDB");
    run(*app.manager, [&](Transaction& txn) {
      app.sql_resource("app").execute(txn, "CREATE TABLE t (k TEXT PRIMARY KEY)");
    });
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto conn = app.database("main").open(o);
    run(*app.manager, [&](Transaction& txn) {
      conn->root()->set("k", 1);
      orders.execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
      stock.execute(txn, "INSERT INTO " + table_ + " VALUES ('k')");
      app.sql_resource("app").execute(txn, "INSERT INTO t VALUES ('k')");
    });
  }
  Application app = load(file);
  EXPECT_TRUE(app.recovery_report.actions.empty()) << app.recovery_report.describe();
  objectstore::ConnectionOptions o;
  o.manager = app.manager.get();
  auto conn = app.database("main").open(o);
  run(*app.manager, [&](Transaction& txn) {
    EXPECT_EQ(conn->root()->at("k").as_int(), 1);
    EXPECT_EQ(app.sql_resource("orders").execute(txn, "SELECT k FROM " + table_).size(), 1u);
    EXPECT_EQ(app.sql_resource("stock").execute(txn, "SELECT k FROM " + table_).size(), 1u);
    EXPECT_EQ(app.sql_resource("app").execute(txn, "SELECT k FROM t").size(), 1u);
  });
  dynamic_cast<postgres::PostgresResource&>(app.sql_resource("orders"))
      .open_connection()
      ->execute("DROP TABLE " + table_);
  dynamic_cast<mysql::MySqlResource&>(app.sql_resource("stock"))
      .open_connection()
      ->execute("DROP TABLE " + table_);
}

TEST_F(ConfigServers, AWrongPasswordIsRefusedAndNeverShown) {
  const std::string wrong = "n0t-th3-Passw0rd-" + std::to_string(::getpid());
  const std::string file = write_config(wrong);
  Application app = load(file);  // MariaDB is asked by recovery: it refuses, the work is owed
  EXPECT_FALSE(app.recovery_report.complete());
  EXPECT_FALSE(has(app.recovery_report.describe(), wrong)) << app.recovery_report.describe();
  bool refused = false;
  try {
    run(*app.manager, [&](Transaction& txn) {
      app.sql_resource("stock").execute(txn, "SELECT 1");
    });
  } catch (const std::exception& e) {
    refused = true;
    EXPECT_FALSE(has(e.what(), wrong)) << e.what();
  }
  EXPECT_TRUE(refused);
}

class Card : public sheets::SheetOwner {
 public:
  void save(objectstore::StateWriter& out) const override { save_sheets(out); }
  void load(objectstore::StateReader& in, std::uint32_t) override { load_sheets(in); }
};
XACT_PERSISTENT_TYPE(Card, "test.config_servers.Card");

// [[sheet_store]] on the PostgreSQL and the MariaDB resource: an object with a sheet on each
// commits across the file storage and both servers (two-phase), and a second load reads them.
TEST_F(ConfigServers, SheetStoresOnPostgresAndMariaDb) {
  const std::string file = write_config(std::getenv("XACT_MYSQL_PASSWORD"));
  std::ofstream(file, std::ios::app) << "\n[[sheet_store]]\nsql = \"orders\"\n"
                                     << "\n[[sheet_store]]\nsql = \"stock\"\n";
  const std::string pg_sheet = table_ + "_pg", my_sheet = table_ + "_my";
  const auto define = [&](Application& app) {
    sheets::Property title;
    title.name = "title";
    app.sheet_store("orders").define({pg_sheet, {title}});
    app.sheet_store("stock").define({my_sheet, {title}});
  };
  objectstore::Oid oid = 0;
  {
    Application app = load(file);
    ASSERT_EQ(app.sheet_stores.size(), 2u);
    EXPECT_EQ(app.sheet_store("orders").dialect(), "postgresql");
    EXPECT_EQ(app.sheet_store("stock").dialect(), "mysql");
    EXPECT_EQ(app.sheet_store("stock").resource().get(), &app.sql_resource("stock"));
    define(app);
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto conn = app.database("main").open(o);
    run(*app.manager, [&](Transaction& txn) {
      auto card = std::make_shared<Card>();
      card->add_sheet(pg_sheet, txn, &*conn).set("title", "on postgres");
      card->add_sheet(my_sheet, txn, &*conn).set("title", "on mariadb");
      conn->root()->set("card", card);
      oid = card->oid();
    });
  }
  Application app = load(file);
  define(app);
  objectstore::ConnectionOptions o;
  o.manager = app.manager.get();
  auto conn = app.database("main").open(o);
  run(*app.manager, [&](Transaction& txn) {
    auto card = conn->get<Card>(oid);
    EXPECT_EQ(card->sheet(pg_sheet, txn).get<std::string>("title"), "on postgres");
    EXPECT_EQ(card->sheet(my_sheet, txn).get<std::string>("title"), "on mariadb");
  });
  for (const auto& [sql, sheet] : {std::pair{"orders", pg_sheet}, std::pair{"stock", my_sheet}}) {
    auto c = app.sql_resource(sql).pool()->acquire();
    c->execute("DROP TABLE " + sheet);
    c->execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1", {sheet});
  }
}

TEST_F(ConfigServers, ASheetStoreWhoseServerRefusesNamesItsLineAndNoPassword) {
  const std::string wrong = "n0t-th3-Passw0rd-" + std::to_string(::getpid());
  const std::string file = write_config(wrong);
  std::ofstream(file, std::ios::app) << "\n[[sheet_store]]\nsql = \"stock\"\n";
  try {
    load(file);
    FAIL() << "loaded with a sheet store on a server that refuses the password";
  } catch (const std::exception& e) {
    EXPECT_TRUE(has(e.what(), "[[sheet_store]] on 'stock': cannot reach its database")) << e.what();
    EXPECT_TRUE(has(e.what(), file + ":")) << e.what();
    EXPECT_FALSE(has(e.what(), wrong)) << e.what();
  }
}

}  // namespace
}  // namespace xact::config
