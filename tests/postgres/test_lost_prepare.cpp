// A PREPARE TRANSACTION whose connection broke while the server still had it. The server may
// complete the prepare after the client gave up: the backend that received it runs on until it
// notices its client is gone. A TcpProxy between the resource and the server holds the PREPARE
// back and closes the client's side; the server's side stays open. Rule: the branch is never
// left prepared (holding its locks until a recovery run) because its rollback by id found no
// such id before the prepare completed: the rollback waits for that backend to end, and ends it
// itself when it can name it exactly. And start-up recovery ends a backend that a process which
// died left running a PREPARE, before it lists the prepared branches.
#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/tcp_proxy.hpp>
#include <xact/testing/temp_dir.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

using namespace std::chrono_literals;
using postgres::PostgresResource;

// `uri` ("postgresql://user:pw@host:port/db") with its host and port replaced by the proxy's.
std::string through_proxy(const std::string& uri, std::uint16_t port) {
  const auto at = uri.rfind('@');
  const auto slash = uri.find('/', at);
  return uri.substr(0, at + 1) + "127.0.0.1:" + std::to_string(port) + uri.substr(slash);
}

std::uint16_t port_of(const std::string& uri) {
  const auto at = uri.rfind('@');
  const auto colon = uri.find(':', at);
  return static_cast<std::uint16_t>(std::stoi(uri.substr(colon + 1)));
}

class PostgresLostPrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_PG();
    t1_ = std::make_unique<TempTable>(pg_env()->uri);
    t2_ = std::make_unique<TempTable>(pg_env()->uri2);
    db1_ = std::make_unique<Plain>(pg_env()->uri);
    proxy_ = std::make_unique<testing::TcpProxy>(port_of(pg_env()->uri));
    proxied_uri_ = through_proxy(pg_env()->uri, proxy_->port());
    rm2_ = PostgresResource::create(options(pg_env()->uri2));
  }
  void TearDown() override {
    tm_.abort();
    EXPECT_TRUE(Redriver::process().wait_idle(30s));
  }

  bool prepared(const std::string& gid) {
    const auto gids = db1_->prepared_gids();
    return std::find(gids.begin(), gids.end(), gid) != gids.end();
  }
  std::size_t owed_to(const std::string& resource) {
    std::size_t n = 0;
    for (const auto& o : Redriver::process().owed()) n += o.resource == resource ? 1 : 0;
    return n;
  }

  // Writes k through `rm` (behind the proxy) and on the second database, and commits with the
  // PREPARE on the proxy's link 0 held back and its client cut: the commit must fail (the vote
  // was lost). `enlist`, when given, enlists the branch's connection first. Returns the gid of
  // rm's branch.
  std::string commit_with_lost_prepare(PostgresResource& rm,
                                       const std::function<void(Transaction&)>& enlist = {}) {
    Transaction& txn = tm_.begin();
    if (enlist) enlist(txn);
    put(rm, txn, t1_->name(), "k", "lost");
    put(*rm2_, txn, t2_->name(), "k", "lost");
    const std::string gid = txn.xid_for(rm).to_gid();
    EXPECT_EQ(proxy_->links(), 1u) << "the branch's connection should be the proxy's first";
    proxy_->cut_at_send(0);  // the next statement on it is the PREPARE
    EXPECT_THROW(tm_.commit(), Error);
    EXPECT_TRUE(proxy_->wait_cut(0, 10s));
    return gid;
  }
  // Once the held PREPARE went to the server: its backend ends, the re-driver owes nothing, and
  // nothing of the branch is left, prepared or written. (A branch left prepared is rolled back
  // here, or TempTable's DROP would wait for its lock.)
  void expect_nothing_left(PostgresResource& rm, const std::string& gid) {
    ASSERT_TRUE(proxy_->wait_server_closed(0, 10s))
        << "the backend of the lost PREPARE never ended";
    ASSERT_TRUE(Redriver::process().wait_idle(30s));
    EXPECT_FALSE(prepared(gid)) << gid << " was left prepared";
    if (prepared(gid)) rm.rollback_prepared(*Xid::from_gid(gid));
    EXPECT_EQ(db1_->value(t1_->name(), "k"), std::nullopt);
    EXPECT_EQ(Plain(pg_env()->uri2).value(t2_->name(), "k"), std::nullopt);
  }

  std::unique_ptr<TempTable> t1_, t2_;
  std::unique_ptr<Plain> db1_;
  std::unique_ptr<testing::TcpProxy> proxy_;
  std::string proxied_uri_;
  std::shared_ptr<PostgresResource> rm2_;
  ExplicitTransactionManager tm_{ManagerOptions{.allow_unlogged_decisions = true}};
};

TEST_F(PostgresLostPrepareTest, APrepareThatArrivesAfterTheClientGaveUpIsNeverLeftPrepared) {
  auto rm = PostgresResource::create(options(proxied_uri_));
  const std::string gid = commit_with_lost_prepare(*rm);
  // The backend of the lost connection has not received the PREPARE yet and still runs. Now
  // it gets it, then its end of file: left alone, it prepares the branch, which nobody would
  // roll back until a recovery run, because the rollback by id already found no such id. (The
  // rollback terminates such a backend instead, and stays owed until it has gone.)
  proxy_->deliver_held(0);
  expect_nothing_left(*rm, gid);
}

TEST_F(PostgresLostPrepareTest, ABackendKnownOnlyByItsPidIsWaitedForAndWhatItPreparedRolledBack) {
  // An enlisted libpqxx connection: xact knows its backend's pid, not its start, so it never
  // terminates the backend (the pid may name another one by now) and waits for it to end.
  auto rm = PostgresResource::create(options(pg_env()->uri));
  pqxx::connection native(proxied_uri_);
  const std::string gid =
      commit_with_lost_prepare(*rm, [&](Transaction& txn) { rm->enlist(txn, native); });

  // The backend still runs (idle, its PREPARE not received): the rollback stays owed.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(proxy_->server_open(0));
  EXPECT_EQ(owed_to(rm->resource_name()), 1u)
      << "the rollback took 'no such id' as final while the backend could still prepare";

  // The backend now prepares the branch and ends: the owed rollback finds it and rolls it back.
  proxy_->deliver_held(0);
  expect_nothing_left(*rm, gid);
}

TEST_F(PostgresLostPrepareTest, StartUpRecoveryEndsABackendLeftRunningAPrepareByAProcessThatDied) {
  // A PREPARE that takes a while: a deferred constraint trigger sleeps when it fires, which is
  // at PREPARE TRANSACTION.
  const std::string fn = unique_name("slow_prepare");
  db1_->run("CREATE FUNCTION " + fn +
            "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; "
            "END $$");
  db1_->run("CREATE CONSTRAINT TRIGGER " + fn + " AFTER INSERT ON " + t1_->name() +
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION " + fn + "()");
  testing::TempDir dir;
  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir.path()));
  track_node(log->node_id());
  auto rm = PostgresResource::create(options(pg_env()->uri));

  // The process that died: a branch of this node, written, its PREPARE sent and still running
  // on the server. Its transaction is not running here (released), as after a restart.
  const Gtrid gtrid = log->new_gtrid();
  log->release(gtrid);
  const Xid xid{Xid::kFormatId, gtrid, rm->resource_name()};
  const std::string gid = xid.to_gid();
  std::thread orphan([&] {
    try {
      pqxx::connection c(pg_env()->uri);
      pqxx::nontransaction tx(c);
      tx.exec("BEGIN");
      tx.exec("INSERT INTO " + t1_->name() + " (k, v) VALUES ('k', 'orphan')");
      tx.exec("SELECT 1; PREPARE TRANSACTION '" + gid + "'");
    } catch (const std::exception&) {
      // terminated by recovery
    }
  });
  const auto preparing = [&] {
    return db1_->count(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
        "query LIKE '%PREPARE TRANSACTION ''" +
        gid + "''%'");
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (preparing() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(preparing(), 1);

  Recovery recovery(log);
  recovery.register_resource(rm);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  orphan.join();  // had the backend been left alone, its PREPARE completes now
  EXPECT_FALSE(prepared(gid)) << gid << " was left prepared after recovery";
  if (prepared(gid)) rm->rollback_prepared(xid);
  EXPECT_EQ(db1_->value(t1_->name(), "k"), std::nullopt);
  db1_->run("DROP TRIGGER " + fn + " ON " + t1_->name());
  db1_->run("DROP FUNCTION " + fn + "()");
}

}  // namespace
}  // namespace xact::pgtest
