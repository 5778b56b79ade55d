// DB (db.cpp): the root, the resource name, the connection pool, historical connections.
#include <xact/objectstore/db.hpp>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/memory_storage.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Counter;

ConnectionOptions on(TransactionManager& tm) {
  ConnectionOptions co;
  co.manager = &tm;
  return co;
}

TEST(DB, OpeningCreatesTheRootOnceAndReopeningKeepsIt) {
  auto storage = std::make_shared<MemoryStorage>();
  ASSERT_EQ(storage->load(kRootOid), std::nullopt);
  auto first = DB::open(storage);
  ASSERT_TRUE(storage->load(kRootOid).has_value());
  const Tid created = storage->last_transaction();
  EXPECT_NE(created, kNoTid);
  first.reset();
  auto second = DB::open(storage);
  EXPECT_EQ(storage->last_transaction(), created) << "an existing root is not written again";
  EXPECT_EQ(second->last_transaction(), created);
}

TEST(DB, ItsConnectionsAreTheResourceObjectsColonItsName) {
  DBOptions options;
  options.name = "orders";
  auto db = DB::open(std::make_shared<MemoryStorage>(), options);
  EXPECT_EQ(db->name(), "orders");
  EXPECT_EQ(db->resource_name(), "objects:orders");
  EXPECT_EQ(db->recovery_target().name, "objects:orders");
}

TEST(DB, AClosedConnectionGoesBackToThePoolUpToItsSize) {
  DBOptions options;
  options.pool_size = 1;
  auto db = DB::open(std::make_shared<MemoryStorage>(), options);
  ExplicitTransactionManager tm;
  auto a = db->open(on(tm));
  auto b = db->open(on(tm));
  const Connection* first = a.get().get();
  EXPECT_EQ(db->pool_idle(), 0u);
  a.close();
  EXPECT_EQ(db->pool_idle(), 1u);
  b.close();
  EXPECT_EQ(db->pool_idle(), 1u) << "one more than pool_size is closed, not kept";
  auto c = db->open(on(tm));
  EXPECT_EQ(db->pool_idle(), 0u);
  EXPECT_EQ(c.get().get(), first) << "the idle connection is reused";
}

TEST(DB, AHistoricalConnectionReadsAsOfItsTidAndRefusesChanges) {
  auto db = DB::open(std::make_shared<MemoryStorage>());
  ExplicitTransactionManager tm;
  auto c = db->open(on(tm));
  tm.begin();
  auto counter = std::make_shared<Counter>();
  counter->add(1);
  c->root()->set("n", counter);
  tm.commit();
  const Tid then = db->last_transaction();
  tm.begin();
  counter->add(1);
  tm.commit();
  ASSERT_GT(db->last_transaction(), then);

  auto past = db->open_historical(then);
  auto old = past->root()->get<Counter>("n");
  EXPECT_EQ(old->value(), 1);
  EXPECT_EQ(counter->value(), 2);
  EXPECT_ANY_THROW(old->add(5)) << "a historical connection is read-only";
}

}  // namespace
}  // namespace xact::objectstore
