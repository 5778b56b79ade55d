// An XA PREPARE whose connection broke while the server still had it (see
// tests/postgres/test_lost_prepare.cpp for PostgreSQL). A TcpProxy between the resource and the
// server forwards XA END, holds XA PREPARE back and closes the client's side; the server's
// session stays open. Rule: the branch is never left prepared because its rollback by id found
// no such branch before the prepare completed: the rollback kills the session that received the
// PREPARE (named exactly by its id and the client's address and port) and stays owed until that
// session has gone; the same on a connection the application enlisted. And start-up recovery
// ends a session that a process which died left running an XA PREPARE, before it lists the
// prepared branches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include <cppconn/connection.h>
#include <cppconn/statement.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/tcp_proxy.hpp>
#include <xact/testing/temp_dir.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

using namespace std::chrono_literals;
using mysql::MySqlResource;

// Commits a transaction over `rm` (its connection through `proxy`, enlisted by `enlist` when
// given) and a second database with XA PREPARE held back and the client cut; then lets the
// server have the PREPARE, and checks that nothing of the branch is left, prepared or written.
void commit_with_lost_prepare_leaves_nothing(testing::TcpProxy& proxy, MySqlResource& rm,
                                             const std::function<void(Transaction&)>& enlist = {}) {
  TempTable t1;
  TempTable t2("k VARCHAR(64) PRIMARY KEY, v VARCHAR(255)", "InnoDB", my_env()->db2);
  auto rm2 = MySqlResource::create(options({}, my_env()->db2));
  ExplicitTransactionManager tm{ManagerOptions{.allow_unlogged_decisions = true}};

  Transaction& txn = tm.begin();
  if (enlist) enlist(txn);
  put(rm, txn, t1.name(), "k", "lost");
  put(*rm2, txn, t2.name(), "k", "lost");
  const Xid xid = txn.xid_for(rm);
  ASSERT_EQ(proxy.links(), 1u) << "the branch's connection should be the proxy's first";
  proxy.cut_at_send(0, /*forward_first=*/1);  // XA END goes through, XA PREPARE is held
  EXPECT_THROW(tm.commit(), Error);
  ASSERT_TRUE(proxy.wait_cut(0, 10s));

  // The server now gets the XA PREPARE, then its end of file: left alone, the session prepares
  // the branch, which nobody would roll back until a recovery run, because the rollback by id
  // already found no such branch. (The rollback kills such a session instead, and stays owed
  // until it has gone.)
  proxy.deliver_held(0);
  ASSERT_TRUE(proxy.wait_server_closed(0, 10s)) << "the session of the lost PREPARE never ended";
  ASSERT_TRUE(Redriver::process().wait_idle(30s));
  const auto branches = Plain().xact_branches();
  EXPECT_EQ(std::count(branches.begin(), branches.end(), xid), 0)
      << xid.to_gid() << " was left prepared";
  if (std::count(branches.begin(), branches.end(), xid) != 0) rm.rollback_prepared(xid);
  EXPECT_EQ(Plain().value(t1.name(), "k"), std::nullopt);
  EXPECT_EQ(Plain(my_env()->db2).value(t2.name(), "k"), std::nullopt);
}

mysql::ConnectOptions through(const testing::TcpProxy& proxy) {
  mysql::ConnectOptions o = connect_options();
  o.host = "127.0.0.1";
  o.port = proxy.port();
  o.unix_socket.clear();
  return o;
}

std::string server_host() {
  return my_env()->connect.host == "localhost" ? "127.0.0.1" : my_env()->connect.host;
}

TEST(MySqlLostPrepareTest, AnXaPrepareThatArrivesAfterTheClientGaveUpIsNeverLeftPrepared) {
  XACT_REQUIRE_MYSQL();
  testing::TcpProxy proxy(my_env()->connect.port, server_host());
  mysql::MySqlOptions o = options();
  o.connect = through(proxy);
  auto rm = MySqlResource::create(o);
  commit_with_lost_prepare_leaves_nothing(proxy, *rm);
}

TEST(MySqlLostPrepareTest, OnAConnectionTheApplicationEnlistedToo) {
  XACT_REQUIRE_MYSQL();
  testing::TcpProxy proxy(my_env()->connect.port, server_host());
  auto rm = MySqlResource::create(options());
  auto own = mysql::MySqlConnection::open(through(proxy), "the application's connection");
  commit_with_lost_prepare_leaves_nothing(
      proxy, *rm, [&](Transaction& txn) { rm->enlist(txn, own->native()); });
}

// MariaDB's BACKUP STAGE BLOCK_COMMIT held by the server's root over its socket (the test user
// lacks RELOAD; scripts/servers.sh runs the server as this machine's root): commits and XA
// PREPAREs of every session wait until release(). Unlike FLUSH TABLES WITH READ LOCK it flushes
// no table, so it does not wait for other tests' running statements.
class CommitBlock {
 public:
  CommitBlock() {
    const char* sock = std::getenv("XACT_MYSQL_SOCKET");
    if (sock == nullptr) return;
    root_ = "mariadb --no-defaults -uroot -S '" + std::string(sock) + "'";
    // -n: each result is written as soon as it comes, so the id arrives once commits are blocked.
    holder_ =
        popen((root_ +
               " -n -N -e 'BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT; SELECT CONNECTION_ID(); "
               "SELECT SLEEP(60)' 2>/dev/null")
                  .c_str(),
              "r");
    char line[64] = {};
    if (holder_ != nullptr && std::fgets(line, sizeof line, holder_) != nullptr) {
      id_ = std::atol(line);
    }
  }
  ~CommitBlock() { release(); }
  CommitBlock(const CommitBlock&) = delete;
  CommitBlock& operator=(const CommitBlock&) = delete;
  bool held() const { return id_ > 0; }
  void release() {
    if (id_ > 0) {
      const std::string kill = root_ + " -e 'KILL " + std::to_string(id_) + "' >/dev/null 2>&1";
      (void)std::system(kill.c_str());
      id_ = 0;
    }
    if (holder_ != nullptr) pclose(holder_);
    holder_ = nullptr;
  }

 private:
  std::string root_;
  FILE* holder_ = nullptr;
  long id_ = 0;
};

TEST(MySqlLostPrepareTest, StartUpRecoveryEndsASessionLeftRunningAnXaPrepareByAProcessThatDied) {
  XACT_REQUIRE_MYSQL();
  TempTable t;
  testing::TempDir dir;
  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir.path()));
  auto rm = MySqlResource::create(options());

  // The process that died: a branch of this node, written and ended, its XA PREPARE sent and
  // still running on the server (waiting for the commit block: an XA PREPARE runs no user
  // code, but may wait for the disk as long). Its transaction is not running here (released),
  // as after a restart. It came over TCP, so its session is named exactly.
  const Gtrid gtrid = log->new_gtrid();
  log->release(gtrid);
  const Xid xid{Xid::kFormatId, gtrid, rm->resource_name()};
  const std::string id = mysql::xa_xid(xid);
  mysql::ConnectOptions tcp = connect_options();
  tcp.host = server_host();
  tcp.unix_socket.clear();
  auto orphan_conn = mysql::MySqlConnection::open(tcp, "the process that died");
  std::unique_ptr<::sql::Statement> orphan_st(orphan_conn->native().createStatement());
  orphan_st->execute("XA START " + id);
  orphan_st->execute("INSERT INTO " + t.name() + " (k, v) VALUES ('k', 'orphan')");
  orphan_st->execute("XA END " + id);
  CommitBlock lock;
  if (!lock.held()) {
    if (under_ci()) FAIL() << "cannot run BACKUP STAGE BLOCK_COMMIT as root over XACT_MYSQL_SOCKET";
    GTEST_SKIP() << "needs root on the server's socket (XACT_MYSQL_SOCKET)";
  }
  std::thread orphan([&] {
    try {
      orphan_st->execute("XA PREPARE " + id);
    } catch (const std::exception&) {
      // killed by recovery
    }
  });
  Plain plain;
  const auto preparing = [&] {
    return plain
        .run("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = $1",
             {"XA PREPARE " + id})
        .one()
        .get<std::int64_t>(0);
  };
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (preparing() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(preparing(), 1) << "the XA PREPARE should be waiting for the commit block";

  Recovery recovery(log);
  recovery.register_resource(rm);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  lock.release();  // had the session been left alone, its XA PREPARE completes now
  orphan.join();
  orphan_st.reset();
  orphan_conn.reset();  // a branch it prepared is detached now, so it can be cleaned up below
  const auto branches = plain.xact_branches();
  EXPECT_EQ(std::count(branches.begin(), branches.end(), xid), 0)
      << xid.to_gid() << " was left prepared after recovery";
  if (std::count(branches.begin(), branches.end(), xid) != 0) rm->rollback_prepared(xid);
  EXPECT_EQ(plain.value(t.name(), "k"), std::nullopt);
}

TEST(MySqlXid, IsReadBackFromTheTextOfAnXaStatement) {
  NodeId node;
  node.bytes.fill(0xab);
  const Xid xid{Xid::kFormatId, Gtrid(node, 7, 9), "db'1"};
  EXPECT_EQ(mysql::xid_in_xa_statement("XA PREPARE " + mysql::xa_xid(xid), "XA PREPARE "), xid);
  EXPECT_EQ(mysql::xid_in_xa_statement("XA COMMIT " + mysql::xa_xid(xid), "XA PREPARE "),
            std::nullopt);
  for (const std::string& bad : std::vector<std::string>{
           "XA PREPARE X'zz',X'00',30817", "XA PREPARE X'00',X'00'", "XA PREPARE 'p1'",
           "XA PREPARE X'" + std::string(56, '0') + "',X'6462',", "XA PREPARE "}) {
    EXPECT_EQ(mysql::xid_in_xa_statement(bad, "XA PREPARE "), std::nullopt) << bad;
  }
  Xid other = xid;
  other.format_id = 1;  // another program's id
  EXPECT_EQ(mysql::xid_in_xa_statement("XA PREPARE " + mysql::xa_xid(other), "XA PREPARE "),
            std::nullopt);
}

}  // namespace
}  // namespace xact::mytest
