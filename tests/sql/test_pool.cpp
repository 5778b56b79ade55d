// xact::sql::ConnectionPool: reuse, the size limit and its timeout, the health check on
// checkout, and concurrent use.
#include <xact/sql/pool.hpp>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "fake_sql.hpp"

namespace xact::sql {
namespace {

using fake::FakeConnection;
using fake::FakeDb;
using namespace std::chrono_literals;

class PoolTest : public ::testing::Test {
 protected:
  std::shared_ptr<ConnectionPool> make(PoolOptions options = {}) {
    options.name = "test-pool";
    return ConnectionPool::create(
        [this]() -> std::unique_ptr<Connection> {
          if (factory_failures_ > 0) {
            --factory_failures_;
            throw ConnectionLost("fake: cannot connect");
          }
          return std::make_unique<FakeConnection>(db_);
        },
        options);
  }
  std::shared_ptr<FakeDb> db_ = std::make_shared<FakeDb>();
  int factory_failures_ = 0;
};

TEST_F(PoolTest, IdleConnectionsAreReusedSoRequestsDoNotConnect) {
  auto pool = make();
  for (int i = 0; i < 100; ++i) {
    auto c = pool->acquire();
    c->execute("put", {"k", std::to_string(i)});
  }
  EXPECT_EQ(db_->connections_made(), 1);
  const PoolStats s = pool->stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 99u);
  EXPECT_EQ(s.open, 1u);
  EXPECT_EQ(s.idle, 1u);
}

TEST_F(PoolTest, TheSizeLimitMakesAcquireWaitThenFailWithAClearError) {
  PoolOptions o;
  o.max_size = 2;
  auto pool = make(o);
  auto a = pool->acquire();
  auto b = pool->acquire();
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)pool->acquire(50ms);
    FAIL() << "a third connection must not be made";
  } catch (const PoolTimeoutError& e) {
    EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
    const std::string what = e.what();
    EXPECT_NE(what.find("test-pool"), std::string::npos) << what;
    EXPECT_NE(what.find("max_size"), std::string::npos) << what;
  }
  EXPECT_EQ(pool->stats().timeouts, 1u);
  EXPECT_EQ(db_->connections_made(), 2);
}

TEST_F(PoolTest, AWaitingAcquireGetsTheConnectionThatComesBack) {
  PoolOptions o;
  o.max_size = 1;
  auto pool = make(o);
  auto held = pool->acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto c = pool->acquire(5s);
    got = static_cast<bool>(c);
  });
  while (pool->stats().waiting == 0) std::this_thread::sleep_for(1ms);
  held.reset();
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(db_->connections_made(), 1);
}

TEST_F(PoolTest, ADeadIdleConnectionIsDiscardedOnCheckoutAndReplaced) {
  auto pool = make();
  { auto c = pool->acquire(); }
  db_->kill_connections();  // e.g. the server restarted
  auto c = pool->acquire();
  EXPECT_NO_THROW(c->execute("put", {"k", "v"}));
  EXPECT_EQ(db_->connections_made(), 2);
  EXPECT_EQ(pool->stats().discarded, 1u);
  EXPECT_EQ(pool->stats().open, 1u);
}

TEST_F(PoolTest, OnlyConnectionsIdleLongerThanTheThresholdArePinged) {
  PoolOptions o;
  o.ping_after_idle = std::chrono::hours(1);
  auto pool = make(o);
  for (int i = 0; i < 3; ++i) pool->acquire();
  EXPECT_EQ(pool->stats().pings, 0u);

  PoolOptions always;
  always.ping_after_idle = 0ms;
  auto pinging = make(always);
  for (int i = 0; i < 3; ++i) pinging->acquire();
  EXPECT_EQ(pinging->stats().pings, 2u) << "every checkout of an idle connection pings";
}

TEST_F(PoolTest, AConnectionThatBrokeInUseIsClosedWhenItComesBack) {
  auto pool = make();
  {
    auto c = pool->acquire();
    db_->kill_connections();
    EXPECT_THROW(c->execute("put", {"k", "v"}), ConnectionLost);
    EXPECT_TRUE(c->broken());
  }
  EXPECT_EQ(pool->stats().open, 0u);
  EXPECT_EQ(pool->stats().discarded, 1u);
}

TEST_F(PoolTest, DiscardClosesInsteadOfReturning) {
  auto pool = make();
  auto c = pool->acquire();
  c.discard();
  EXPECT_FALSE(c);
  EXPECT_EQ(pool->stats().open, 0u);
  EXPECT_EQ(pool->stats().idle, 0u);
}

TEST_F(PoolTest, AFailingFactoryFreesItsSlotAndTheErrorReachesTheCaller) {
  PoolOptions o;
  o.max_size = 1;
  auto pool = make(o);
  factory_failures_ = 1;
  EXPECT_THROW(pool->acquire(), ConnectionLost);
  EXPECT_EQ(pool->stats().open, 0u);
  EXPECT_NO_THROW(pool->acquire(10ms)) << "the slot of the failed connect is free again";
}

TEST_F(PoolTest, ClearIdleClosesIdleConnections) {
  auto pool = make();
  { auto a = pool->acquire(), b = pool->acquire(); }
  EXPECT_EQ(pool->stats().idle, 2u);
  pool->clear_idle();
  EXPECT_EQ(pool->stats().idle, 0u);
  EXPECT_EQ(pool->stats().open, 0u);
}

TEST_F(PoolTest, ALeaseKeepsThePoolAlive) {
  auto pool = make();
  auto c = pool->acquire();
  pool.reset();
  EXPECT_NO_THROW(c->execute("put", {"k", "v"}));
  c.reset();  // returns to the pool, which then goes away
}

TEST_F(PoolTest, ConcurrentUseNeverExceedsTheLimit) {
  PoolOptions o;
  o.max_size = 3;
  auto pool = make(o);
  std::atomic<int> in_use{0};
  std::atomic<int> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto c = pool->acquire(5s);
        const int now = ++in_use;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::yield();
        --in_use;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_LE(db_->connections_made(), 3);
  EXPECT_EQ(pool->stats().open, pool->stats().idle);
}

TEST(PoolOptionsCheck, AZeroSizeOrNoFactoryIsAUsageError) {
  PoolOptions o;
  o.max_size = 0;
  EXPECT_THROW(ConnectionPool::create([]() -> std::unique_ptr<Connection> { return nullptr; }, o),
               UsageError);
  EXPECT_THROW(ConnectionPool::create(nullptr), UsageError);
}

}  // namespace
}  // namespace xact::sql
