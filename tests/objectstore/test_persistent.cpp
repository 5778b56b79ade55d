// Persistent objects and references (persistent.cpp): the life of an object (unsaved, changed,
// up to date, ghost), its registered type name, and what a reference compares.
#include <xact/objectstore/persistent.hpp>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/memory_storage.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Counter;
using test::Person;

class Unregistered : public Persistent {
 public:
  void save(StateWriter&) const override {}
  void load(StateReader&, std::uint32_t) override {}
};

class PersistentTest : public ::testing::Test {
 protected:
  PersistentTest() {
    ConnectionOptions co;
    co.manager = &tm_;
    conn_ = db_->open(co);
  }
  std::shared_ptr<MemoryStorage> storage_ = std::make_shared<MemoryStorage>();
  std::shared_ptr<DB> db_ = DB::open(storage_);
  ExplicitTransactionManager tm_;
  ConnectionHandle conn_;
};

TEST_F(PersistentTest, AnObjectIsUnsavedUntilCommittedThenUpToDateWithItsTransactionAsSerial) {
  auto counter = std::make_shared<Counter>();
  EXPECT_EQ(counter->state(), ObjectState::unsaved);
  EXPECT_EQ(counter->connection(), nullptr);
  counter->add(2);  // no connection to tell: nothing joins, nothing fails
  EXPECT_EQ(counter->state(), ObjectState::unsaved);

  tm_.begin();
  conn_->root()->set("c", counter);
  tm_.commit();
  EXPECT_NE(counter->oid(), kRootOid);
  EXPECT_EQ(counter->state(), ObjectState::up_to_date);
  EXPECT_EQ(counter->serial(), storage_->last_transaction());
  EXPECT_EQ(counter->connection(), &*conn_);

  tm_.begin();
  counter->add(1);
  EXPECT_EQ(counter->state(), ObjectState::changed);
  tm_.commit();
  EXPECT_EQ(counter->state(), ObjectState::up_to_date);
  EXPECT_EQ(counter->serial(), storage_->last_transaction());
  EXPECT_EQ(storage_->load(counter->oid())->serial, counter->serial());
}

TEST_F(PersistentTest, OnlyUnheldObjectsBecomeGhostsAndAGhostReloadsItsState) {
  tm_.begin();
  auto held = std::make_shared<Counter>();
  auto dropped = std::make_shared<Counter>();
  held->add(1);
  dropped->add(5);
  conn_->root()->set("held", held);
  conn_->root()->set("dropped", dropped);
  tm_.commit();
  const Oid dropped_oid = dropped->oid();
  dropped.reset();
  const auto evictions = conn_->stats().evictions;
  conn_->cache_minimize();
  EXPECT_FALSE(held->is_ghost()) << "an object the application holds keeps its state";
  EXPECT_GT(conn_->stats().evictions, evictions);
  auto again = conn_->get<Counter>(dropped_oid);
  EXPECT_EQ(again->value(), 5) << "loaded again from the storage";
  EXPECT_EQ(again->state(), ObjectState::up_to_date);
}

TEST_F(PersistentTest, TheTypeNameIsTheRegisteredOneAndAnUnregisteredTypeHasNone) {
  EXPECT_EQ(Counter().type_name(), "test.Counter");
  EXPECT_EQ(PersistentMap().type_name(), PersistentMap::kTypeName);
  EXPECT_THROW(Unregistered().type_name(), UsageError);
}

TEST_F(PersistentTest, AReferenceComparesByTargetAndANullOneHasNone) {
  auto alice = std::make_shared<Person>("alice");
  auto bob = std::make_shared<Person>("bob");
  const Ref<Person> none;
  EXPECT_FALSE(static_cast<bool>(none));
  EXPECT_EQ(none.get(), nullptr);
  EXPECT_EQ(Ref<Person>(alice), Ref<Person>(alice));
  EXPECT_NE(Ref<Person>(alice), Ref<Person>(bob));
  EXPECT_NE(Ref<Person>(alice), none);
  EXPECT_EQ(Ref<Person>(alice).get(), alice);
}

}  // namespace
}  // namespace xact::objectstore
