// xact::postgres::PgConnection against a server: values both ways, bound parameters only,
// one statement per call, the session settings, and noticing a dead connection without a
// round trip; the pool of a PostgresResource replacing connections the server terminated.
#include <xact/postgres/pg_connection.hpp>

#include <cmath>
#include <thread>

#include <xact/diagnostics.hpp>
#include <xact/manager.hpp>
#include <xact/postgres/postgres_resource.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

using postgres::PgConnection;
using sql::Bytes;
using sql::Type;
using sql::Value;
using namespace std::chrono_literals;

class PgConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_PG();
    conn_ = PgConnection::open(pg_env()->uri);
  }
  std::unique_ptr<PgConnection> conn_;
};

TEST_F(PgConnectionTest, ValuesRoundTripWithTheirTypes) {
  const Bytes bytes{0, 1, 0xfe, 0xff, '\\', 'x'};
  const auto r = conn_->execute(
      "SELECT $1::int8 AS i, $2::float8 AS d, $3::text AS t, $4::bytea AS b, $5::bool AS f, "
      "$6::text AS n, $7::int4 AS small, $8::numeric AS num, $9::float8 AS inf",
      {std::int64_t{-9223372036854775807} - 1, 0.1, "h\u00e9llo", bytes, true, nullptr, 42,
       "12345678901234567890.5", -HUGE_VAL});
  const auto& row = r.one();
  EXPECT_EQ(row["i"].type(), Type::int64);
  EXPECT_EQ(row.get<std::int64_t>("i"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(row["d"].type(), Type::float64);
  EXPECT_EQ(row.get<double>("d"), 0.1) << "doubles travel in their shortest exact form";
  EXPECT_EQ(row.get<std::string>("t"), "h\u00e9llo");
  EXPECT_EQ(row["b"].type(), Type::bytes);
  EXPECT_EQ(row.get<Bytes>("b"), bytes);
  EXPECT_EQ(row["f"].type(), Type::boolean);
  EXPECT_TRUE(row.get<bool>("f"));
  EXPECT_TRUE(row["n"].is_null());
  EXPECT_EQ(row.get<int>("small"), 42);
  EXPECT_EQ(row["num"].type(), Type::text) << "numeric keeps every digit as text";
  EXPECT_EQ(row.get<std::string>("num"), "12345678901234567890.5");
  EXPECT_EQ(row.get<double>("inf"), -HUGE_VAL);
}

TEST_F(PgConnectionTest, ParametersAreBoundNeverSpliced) {
  TempTable t(pg_env()->uri);
  const std::string evil = "x'); DROP TABLE " + t.name() + "; --";
  conn_->execute("INSERT INTO " + t.name() + " (k, v) VALUES ($1, $2)", {"k", evil});
  const auto r = conn_->execute("SELECT v FROM " + t.name() + " WHERE k = $1", {"k"});
  EXPECT_EQ(r.one().get<std::string>(0), evil);
}

TEST_F(PgConnectionTest, OneStatementPerCall) {
  EXPECT_THROW(conn_->execute("SELECT 1; SELECT 2"), sql::SqlError);
  EXPECT_FALSE(conn_->broken()) << "a refused statement does not break the connection";
  EXPECT_EQ(conn_->execute("SELECT 3").one().get<int>(0), 3);
}

TEST_F(PgConnectionTest, TextWithANulByteIsRefusedBeforeItIsSent) {
  EXPECT_THROW(conn_->execute("SELECT $1::text", {std::string("a\0b", 3)}), UsageError);
}

TEST_F(PgConnectionTest, ReturningGivesGeneratedKeysAndAffectedRowsAreCounted) {
  TempTable t(pg_env()->uri, "id bigserial PRIMARY KEY, v text");
  const auto first =
      conn_->execute("INSERT INTO " + t.name() + " (v) VALUES ($1) RETURNING id", {"a"});
  const auto second =
      conn_->execute("INSERT INTO " + t.name() + " (v) VALUES ($1), ($2) RETURNING id", {"b", "c"});
  EXPECT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].get<std::int64_t>("id"), first.one().get<std::int64_t>("id") + 1);
  const auto updated = conn_->execute("UPDATE " + t.name() + " SET v = $1 WHERE id > $2",
                                      {"z", first.one().get<std::int64_t>("id")});
  EXPECT_EQ(updated.affected_rows(), 2);
  EXPECT_TRUE(updated.columns().empty());
}

TEST_F(PgConnectionTest, SessionSettingsAreMadeAtOpen) {
  postgres::SessionSettings s;
  s.lock_timeout = 1500ms;
  s.application_name = "xact-settings-test";
  auto c = PgConnection::open(pg_env()->uri, s);
  const auto r = c->execute(
      "SELECT current_setting('lock_timeout'), current_setting('application_name'), "
      "current_setting('bytea_output')");
  EXPECT_EQ(r.one().get<std::string>(0), "1500ms");
  EXPECT_EQ(r.one().get<std::string>(1), "xact-settings-test");
  EXPECT_EQ(r.one().get<std::string>(2), "hex");
  EXPECT_GE(c->server_version(), 100000);
}

TEST_F(PgConnectionTest, AnUnreachableServerIsConnectionLostAndTheMessageHasNoPassword) {
  try {
    PgConnection::open("postgresql://xact:s3cr3t-pw@127.0.0.1:1/nowhere?connect_timeout=2");
    FAIL() << "port 1 has no server";
  } catch (const sql::ConnectionLost& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("s3cr3t-pw"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot connect"), std::string::npos) << what;
  }
}

TEST_F(PgConnectionTest, ATerminatedBackendIsNoticedWithoutARoundTrip) {
  EXPECT_TRUE(conn_->looks_alive());
  const int pid = conn_->execute("SELECT pg_backend_pid()").one().get<int>(0);
  Plain admin(pg_env()->uri);
  admin.run("SELECT pg_terminate_backend(" + std::to_string(pid) + ", 5000)");
  // The server sends its "terminating connection" notice and closes the socket.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (conn_->looks_alive() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_FALSE(conn_->looks_alive());
  EXPECT_TRUE(conn_->broken());
  EXPECT_THROW(conn_->execute("SELECT 1"), sql::ConnectionLost);
  EXPECT_FALSE(conn_->ping());
}

TEST_F(PgConnectionTest, ServerNoticesGoToTheLogAtDebugLevel) {
  std::vector<std::string> debug;
  set_log_level(LogLevel::debug);
  set_log_sink([&](LogLevel level, std::string_view m) {
    if (level == LogLevel::debug) debug.emplace_back(m);
  });
  conn_->execute("DO $$ BEGIN RAISE WARNING 'xact notice test'; END $$");
  set_log_sink({});
  set_log_level(LogLevel::info);
  ASSERT_EQ(debug.size(), 1u);
  EXPECT_NE(debug[0].find("xact notice test"), std::string::npos) << debug[0];
}

TEST(PostgresResourcePool, TerminatedConnectionsAreReplacedAndRequestsDoNotConnect) {
  XACT_REQUIRE_PG();
  TempTable t(pg_env()->uri);
  auto o = options(pg_env()->uri);
  o.application_name = unique_name("pool");
  auto rm = postgres::PostgresResource::create(o);
  ExplicitTransactionManager tm;
  for (int i = 0; i < 20; ++i) {
    put(*rm, tm.begin(), t.name(), "k", std::to_string(i));
    tm.commit();
  }
  EXPECT_EQ(rm->pool()->stats().created, 1u) << "one connection served 20 transactions";

  Plain admin(pg_env()->uri);
  admin.run(
      "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = " +
      admin.conn().quote(o.application_name));
  put(*rm, tm.begin(), t.name(), "k", "after");
  tm.commit();
  EXPECT_EQ(admin.value(t.name(), "k"), "after");
  EXPECT_EQ(rm->pool()->stats().discarded, 1u);
  EXPECT_EQ(rm->pool()->stats().created, 2u);
}

TEST(PostgresResourceName, DefaultsToPgAndTheDatabaseName) {
  XACT_REQUIRE_PG();
  postgres::PostgresOptions o;
  o.conninfo = pg_env()->uri;
  EXPECT_EQ(postgres::PostgresResource::create(o)->resource_name(), "pg:" + pg_env()->db);
  o.conninfo = pg_env()->uri2;
  EXPECT_EQ(postgres::PostgresResource::create(o)->resource_name(), "pg:" + pg_env()->db2);
  o.conninfo = "host=127.0.0.1 dbname=orders";
  EXPECT_EQ(postgres::PostgresResource::create(o)->resource_name(), "pg:orders")
      << "named from the connection string, without connecting";
  o.conninfo = "not a = valid = conninfo '";
  EXPECT_THROW(postgres::PostgresResource::create(o), UsageError);
}

}  // namespace
}  // namespace xact::pgtest
