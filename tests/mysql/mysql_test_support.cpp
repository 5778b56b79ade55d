#include "mysql_test_support.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

namespace xact::mytest {

namespace {

std::string env(const char* name) { return testing::env_or_empty(name); }

}  // namespace

const MyEnv* my_env() {
  static const std::optional<MyEnv> e = []() -> std::optional<MyEnv> {
    if (env("XACT_MYSQL_HOST").empty() || env("XACT_MYSQL_PORT").empty()) return std::nullopt;
    MyEnv m;
    m.connect.host = env("XACT_MYSQL_HOST");
    m.connect.port = static_cast<unsigned>(std::stoul(env("XACT_MYSQL_PORT")));
    m.connect.user = env("XACT_MYSQL_USER");
    m.connect.password = env("XACT_MYSQL_PASSWORD");
    m.connect.database = env("XACT_MYSQL_DB");
    m.db2 = env("XACT_MYSQL_DB2");
    m.servers_script = env("XACT_SERVERS_SCRIPT");
    m.servers_dir = env("XACT_SERVERS_DIR");
    return m;
  }();
  return e ? &*e : nullptr;
}

mysql::ConnectOptions connect_options(const std::string& database) {
  mysql::ConnectOptions o = my_env()->connect;
  if (!database.empty()) o.database = database;
  return o;
}

mysql::MySqlOptions options(std::string name, const std::string& database) {
  mysql::MySqlOptions o;
  o.connect = connect_options(database);
  o.name = name.empty() ? unique_name("my") : std::move(name);
  o.pool.max_size = 4;
  return o;
}

TempTable::TempTable(std::string columns, std::string engine, const std::string& database)
    : database_(database), name_(unique_name("t")) {
  Plain(database_).run("CREATE TABLE " + name_ + " (" + columns + ") ENGINE=" + engine);
}

TempTable::~TempTable() {
  try {
    Plain(database_).run("DROP TABLE IF EXISTS " + name_);
  } catch (...) {
  }
}

Plain::Plain(const std::string& database)
    : conn_(mysql::MySqlConnection::open(connect_options(database), "test reader")) {}

sql::Result Plain::run(const std::string& sql, const sql::Params& params) {
  return conn_->execute(sql, params);
}

std::optional<std::string> Plain::value(const std::string& table, const std::string& key) {
  const auto r = run("SELECT v FROM " + table + " WHERE k = ?", {key});
  if (r.empty()) return std::nullopt;
  return r[0].get<std::optional<std::string>>(0);
}

std::vector<Xid> Plain::xact_branches() {
  std::vector<Xid> out;
  for (const auto& row : conn_->xa_recover()) {
    auto xid = Xid::from_xa(static_cast<std::uint32_t>(row.format_id), row.data,
                            static_cast<std::size_t>(row.gtrid_length),
                            static_cast<std::size_t>(row.bqual_length));
    if (xid) out.push_back(*xid);
  }
  return out;
}

std::vector<Xid> Plain::branches_of(const NodeId& node) {
  std::vector<Xid> out;
  for (auto& x : xact_branches()) {
    if (x.gtrid.node() == node) out.push_back(x);
  }
  return out;
}

void put(mysql::MySqlResource& rm, Transaction& txn, const std::string& table,
         const std::string& key, const std::string& value) {
  rm.execute(txn, "REPLACE INTO " + table + " (k, v) VALUES (?, ?)", {key, value});
}

}  // namespace xact::mytest
