// xact::outbox on the servers of scripts/servers.sh: the outbox table on PostgreSQL next to a row
// in MariaDB, and the reverse, in one two-phase transaction each: an aborted transaction posts
// nothing, a committed one is delivered once (key, topic, bytes payload) and marked done.
// Skipped without XACT_PG_* / XACT_MYSQL_* (failed under CI=true).
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/testing/temp_dir.hpp>

#include "../mysql/mysql_test_support.hpp"
#include "../postgres/pg_test_support.hpp"

#include <gtest/gtest.h>

namespace xact::outbox {
namespace {

// The table name: an identifier of at most 48 bytes, unique on the shared server.
std::string table_name() {
  std::string n = testing::unique_name("ob");
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n.substr(0, 40);
}

// Posts through `outbox` and writes a row through `other` in the same transaction; aborts the
// first, commits the second; then delivers.
template <class PutRow>
void abort_then_commit(const std::shared_ptr<Outbox>& outbox, PutRow put_row) {
  testing::TempDir dir;
  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir / "log"));
  pgtest::track_node(log->node_id());
  ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
  {
    auto& txn = tm.begin();
    outbox->post(txn, "mail", "aborted");
    put_row(txn, "aborted");
    txn.abort();
  }
  EXPECT_EQ(outbox->pending_count(), 0u);
  const std::string payload("order\0\xfe", 7);
  const std::string key = xact::run(tm, [&](Transaction& txn) {
    put_row(txn, "committed");
    return outbox->post(txn, "mail.order", payload);
  });
  EXPECT_EQ(outbox->pending_count(), 1u);
  std::vector<Message> got;
  Dispatcher d(outbox, [&](const Message& m) { got.push_back(m); });
  EXPECT_EQ(d.dispatch_once(), 1u);
  EXPECT_EQ(d.dispatch_once(), 0u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, key);
  EXPECT_EQ(got[0].topic, "mail.order");
  EXPECT_EQ(got[0].payload, payload);
  EXPECT_TRUE(outbox->is_done(key));
}

TEST(OutboxServers, OnPostgresNextToAMariaDbRowInOneTwoPhaseTransaction) {
  XACT_REQUIRE_PG();
  XACT_REQUIRE_MYSQL();
  auto pg = postgres::PostgresResource::create(pgtest::options(pgtest::pg_env()->uri));
  auto my = mysql::MySqlResource::create(mytest::options());
  mytest::TempTable rows;
  OutboxOptions o;
  o.table = table_name();
  auto outbox = Outbox::create(pg, o);
  abort_then_commit(outbox, [&](Transaction& txn, const std::string& v) {
    mytest::put(*my, txn, rows.name(), "k", v);
  });
  EXPECT_EQ(mytest::Plain().value(rows.name(), "k"), "committed");
  pgtest::Plain(pgtest::pg_env()->uri).run("DROP TABLE " + o.table);
}

TEST(OutboxServers, OnMariaDbNextToAPostgresRowInOneTwoPhaseTransaction) {
  XACT_REQUIRE_PG();
  XACT_REQUIRE_MYSQL();
  auto pg = postgres::PostgresResource::create(pgtest::options(pgtest::pg_env()->uri));
  auto my = mysql::MySqlResource::create(mytest::options());
  pgtest::TempTable rows(pgtest::pg_env()->uri);
  OutboxOptions o;
  o.table = table_name();
  auto outbox = Outbox::create(my, o);
  abort_then_commit(outbox, [&](Transaction& txn, const std::string& v) {
    pgtest::put(*pg, txn, rows.name(), "k", v);
  });
  EXPECT_EQ(pgtest::Plain(pgtest::pg_env()->uri).value(rows.name(), "k"), "committed");
  mytest::Plain().run("DROP TABLE " + o.table);
}

}  // namespace
}  // namespace xact::outbox
