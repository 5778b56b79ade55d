// PersistentMap and PersistentList (containers.cpp): their rules on their own, and that a
// change through them is committed like any persistent object's.
#include <xact/objectstore/containers.hpp>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/memory_storage.hpp>

namespace xact::objectstore {
namespace {

TEST(PersistentMap, KeysAreSortedAndEraseSaysWhetherTheKeyWasThere) {
  PersistentMap m;
  m.set("b", 1);
  m.set("a", 2);
  m.set("c", "three");
  EXPECT_EQ(m.keys(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(m.erase("a"));
  EXPECT_FALSE(m.erase("a"));
  EXPECT_FALSE(m.contains("a"));
  EXPECT_EQ(m.find("a"), nullptr);
  EXPECT_THROW(m.at("a"), UsageError) << "a missing key is an error, not a default value";
  EXPECT_EQ(m.size(), 2u);
  m.set("b", 20);
  EXPECT_EQ(m.at("b").as_int(), 20) << "set replaces";
  m.clear_all();
  EXPECT_TRUE(m.empty());
}

TEST(PersistentList, AnIndexOutOfRangeIsAUsageErrorAndChangesNothing) {
  PersistentList l;
  l.push_back(1);
  l.push_back(2);
  EXPECT_THROW(l.at(2), UsageError);
  EXPECT_THROW(l.set(2, 9), UsageError);
  EXPECT_THROW(l.erase(2), UsageError);
  EXPECT_THROW(l.insert(3, 9), UsageError);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l.at(0).as_int(), 1);
  EXPECT_EQ(l.at(1).as_int(), 2);
  l.insert(2, 3);  // at the end: allowed
  l.insert(0, 0);
  l.erase(1);
  std::vector<std::int64_t> got;
  for (const auto& v : l.items()) got.push_back(v.as_int());
  EXPECT_EQ(got, (std::vector<std::int64_t>{0, 2, 3}));
}

TEST(Containers, AChangeToAStoredContainerIsCommittedAndSeenByAnotherConnection) {
  auto db = DB::open(std::make_shared<MemoryStorage>());
  ExplicitTransactionManager tm;
  ConnectionOptions co;
  co.manager = &tm;
  auto c = db->open(co);
  tm.begin();
  auto list = std::make_shared<PersistentList>();
  auto map = std::make_shared<PersistentMap>();
  c->root()->set("list", list);
  c->root()->set("map", map);
  tm.commit();

  tm.begin();
  list->push_back("x");
  map->set("k", 1);
  EXPECT_TRUE(list->is_changed());
  EXPECT_TRUE(map->is_changed());
  tm.commit();
  EXPECT_FALSE(list->is_changed());

  ExplicitTransactionManager tm2;
  ConnectionOptions co2;
  co2.manager = &tm2;
  auto c2 = db->open(co2);
  EXPECT_EQ(c2->root()->get<PersistentList>("list")->at(0).as_string(), "x");
  EXPECT_EQ(c2->root()->get<PersistentMap>("map")->at("k").as_int(), 1);

  tm.begin();
  map->erase("k");
  tm.abort();
  EXPECT_TRUE(map->contains("k")) << "an aborted change is undone";
}

}  // namespace
}  // namespace xact::objectstore
