// An XA PREPARE whose connection broke while the server still had it (see
// tests/postgres/test_lost_prepare.cpp for PostgreSQL). A TcpProxy between the resource and the
// server forwards XA END, holds XA PREPARE back and closes the client's side; the server's
// session stays open. Rule: the branch is never left prepared because its rollback by id found
// no such branch before the prepare completed: the rollback kills the session that received the
// PREPARE (named exactly by its id and the client's address and port) and stays owed until that
// session has gone; the same on a connection the application enlisted.
#include <algorithm>
#include <chrono>
#include <functional>

#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/testing/tcp_proxy.hpp>

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

}  // namespace
}  // namespace xact::mytest
