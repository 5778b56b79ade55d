// xact::outbox on the servers of scripts/servers.sh: the outbox table on PostgreSQL next to a row
// in MariaDB, and the reverse, in one two-phase transaction each: an aborted transaction posts
// nothing, a committed one is delivered once (key, topic, bytes payload) and marked done. And on
// each server: claims racing from several threads (each its own connection) on the same message
// give it to exactly one; two dispatchers with their own pools deliver each message once; a
// poison message goes dead and is requeued.
// Skipped without XACT_PG_* / XACT_MYSQL_* (failed under CI=true).
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/testing/temp_dir.hpp>

#include "../mysql/mysql_test_support.hpp"
#include "../postgres/pg_test_support.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

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

// Several threads, each with its own transaction manager (and so its own pooled connection in
// the branch), claim the same message as they all read it: the database's row lock makes the
// conditional UPDATE succeed for exactly one of them, for every message.
void racing_claims_give_each_message_to_one(const std::shared_ptr<Outbox>& outbox) {
  ExplicitTransactionManager tm;
  constexpr int kMessages = 20, kThreads = 4;
  for (int i = 0; i < kMessages; ++i) {
    xact::run(tm, [&](Transaction& txn) { outbox->post(txn, "race", std::to_string(i)); });
  }
  const auto seen = outbox->due(kMessages);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kMessages));
  std::atomic<int> claimed{0}, taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ExplicitTransactionManager mine;
      for (const Message& m : seen) {
        const auto now = Outbox::Clock::now();
        const ClaimResult r = xact::run(mine, [&](Transaction& txn) {
          return outbox->claim(txn, m, "t" + std::to_string(t), now + std::chrono::minutes(1), now,
                               5);
        });
        ++(r == ClaimResult::claimed ? claimed : taken);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.load(), kMessages);
  EXPECT_EQ(taken.load(), kMessages * (kThreads - 1));
  EXPECT_TRUE(outbox->due(kMessages).empty());  // all leased
}

void two_dispatchers_deliver_each_message_once(const std::shared_ptr<Outbox>& a_outbox,
                                               const std::shared_ptr<Outbox>& b_outbox) {
  std::mutex mutex;
  std::map<std::string, int> deliveries;
  const Handler count = [&](const Message& m) {
    std::lock_guard lock(mutex);
    ++deliveries[m.key];
  };
  DispatcherOptions o;
  o.poll_interval = std::chrono::milliseconds(5);
  o.batch = 8;
  Dispatcher a(a_outbox, count, o), b(b_outbox, count, o);
  a.start();
  b.start();
  ExplicitTransactionManager tm;
  std::vector<std::string> keys;
  for (int i = 0; i < 60; ++i) {
    keys.push_back(xact::run(
        tm, [&](Transaction& txn) { return a_outbox->post(txn, "m", std::to_string(i)); }));
  }
  EXPECT_TRUE(a.drain(std::chrono::seconds(60)));
  a.stop();
  b.stop();
  std::lock_guard lock(mutex);
  EXPECT_EQ(deliveries.size(), keys.size());
  for (const auto& key : keys) EXPECT_EQ(deliveries[key], 1) << key;
  EXPECT_EQ(a.stats().delivered + b.stats().delivered, keys.size());
}

void a_poison_message_goes_dead_and_is_requeued(const std::shared_ptr<Outbox>& outbox) {
  ExplicitTransactionManager tm;
  const std::string key =
      xact::run(tm, [&](Transaction& txn) { return outbox->post(txn, "poison", "p"); });
  bool healed = false;
  int calls = 0;
  DispatcherOptions o;
  o.max_attempts = 2;
  o.backoff_initial = std::chrono::milliseconds(1);
  Dispatcher d(
      outbox,
      [&](const Message&) {
        ++calls;
        if (!healed) throw std::runtime_error("refused");
      },
      o);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!outbox->is_dead(key) && std::chrono::steady_clock::now() < end) d.dispatch_once();
  ASSERT_TRUE(outbox->is_dead(key));
  EXPECT_EQ(calls, 2);
  const auto dead = outbox->dead();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attempts, 2u);
  EXPECT_EQ(dead[0].last_error, "refused");
  EXPECT_EQ(d.dispatch_once(), 0u);
  healed = true;
  EXPECT_TRUE(outbox->requeue(key));
  EXPECT_EQ(d.dispatch_once(), 1u);
  EXPECT_TRUE(outbox->is_done(key));
  EXPECT_EQ(outbox->dead_count(), 0u);
}

TEST(OutboxServers, OnPostgresClaimsDeadMessagesAndTwoDispatchers) {
  XACT_REQUIRE_PG();
  OutboxOptions o;
  o.table = table_name();
  auto pg = [] {
    return postgres::PostgresResource::create(pgtest::options(pgtest::pg_env()->uri));
  };
  auto outbox = Outbox::create(pg(), o);
  racing_claims_give_each_message_to_one(outbox);
  pgtest::Plain(pgtest::pg_env()->uri).run("DELETE FROM " + o.table);
  two_dispatchers_deliver_each_message_once(outbox, Outbox::create(pg(), o));
  pgtest::Plain(pgtest::pg_env()->uri).run("DELETE FROM " + o.table);
  a_poison_message_goes_dead_and_is_requeued(outbox);
  pgtest::Plain(pgtest::pg_env()->uri).run("DROP TABLE " + o.table);
}

TEST(OutboxServers, OnMariaDbClaimsDeadMessagesAndTwoDispatchers) {
  XACT_REQUIRE_MYSQL();
  OutboxOptions o;
  o.table = table_name();
  auto my = [] { return mysql::MySqlResource::create(mytest::options()); };
  auto outbox = Outbox::create(my(), o);
  racing_claims_give_each_message_to_one(outbox);
  mytest::Plain().run("DELETE FROM " + o.table);
  two_dispatchers_deliver_each_message_once(outbox, Outbox::create(my(), o));
  mytest::Plain().run("DELETE FROM " + o.table);
  a_poison_message_goes_dead_and_is_requeued(outbox);
  mytest::Plain().run("DROP TABLE " + o.table);
}

}  // namespace
}  // namespace xact::outbox
