// Schema evolution helpers (schema.cpp): scan_type finds every instance under its name or an
// alias; rewrite_type stores them all again under the current name, in batches.
#include <xact/objectstore/schema.hpp>

#include <algorithm>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/memory_storage.hpp>

namespace xact::objectstore {
namespace {

class Item : public Persistent {
 public:
  std::int64_t n() const {
    read_access();
    return n_;
  }
  void set(std::int64_t v) {
    write_access();
    n_ = v;
  }
  void save(StateWriter& out) const override { out.write(n_); }
  void load(StateReader& in, std::uint32_t) override { in.read(n_); }

 private:
  std::int64_t n_ = 0;
};
class Thing : public Item {};

// Three Items stored as "s.OldItem" and one Thing as "s.Thing" by a program of the past; today's
// program calls Item "s.Item", with "s.OldItem" as its alias.
class SchemaTest : public ::testing::Test {
 protected:
  SchemaTest() {
    old_names_.add<Item>("s.OldItem");
    old_names_.add<Thing>("s.Thing");
    TypeOptions o;
    o.aliases = {"s.OldItem"};
    new_names_.add<Item>("s.Item", o);
    new_names_.add<Thing>("s.Thing");

    DBOptions before;
    before.registry = &old_names_;
    auto db = DB::open(storage_, before);
    ExplicitTransactionManager tm;
    ConnectionOptions co;
    co.manager = &tm;
    auto c = db->open(co);
    tm.begin();
    for (int i = 0; i < 3; ++i) {
      auto item = std::make_shared<Item>();
      item->set(i);
      c->root()->set("item" + std::to_string(i), item);
    }
    c->root()->set("thing", std::make_shared<Thing>());
    tm.commit();
  }

  // How many live objects the storage holds under each stored type name.
  std::map<std::string, int> stored_names() const {
    std::map<std::string, int> out;
    storage_->for_each_object([&](Oid, Tid, std::string_view data) {
      ++out[record_type_name(data)];
      return true;
    });
    return out;
  }

  std::shared_ptr<DB> today() {
    DBOptions now;
    now.registry = &new_names_;
    return DB::open(storage_, now);
  }

  std::shared_ptr<MemoryStorage> storage_ = std::make_shared<MemoryStorage>();
  TypeRegistry old_names_;
  TypeRegistry new_names_;
};

TEST_F(SchemaTest, ScanTypeFindsEveryInstanceUnderItsNameOrAnAliasInOidOrder) {
  const auto items = scan_type(*storage_, "s.Item", new_names_);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(std::is_sorted(items.begin(), items.end()));
  EXPECT_EQ(scan_type(*storage_, "s.OldItem", new_names_), items) << "an alias means its type";
  EXPECT_EQ(scan_type(*storage_, "s.Thing", new_names_).size(), 1u);
  EXPECT_TRUE(scan_type(*storage_, "s.Item", old_names_).empty())
      << "a registry that does not know the new name matches it literally";
  EXPECT_TRUE(scan_type(*storage_, "s.Nothing", new_names_).empty());
}

TEST_F(SchemaTest, RewriteTypeStoresEveryInstanceUnderItsCurrentNameInBatches) {
  ASSERT_EQ(stored_names()["s.OldItem"], 3);
  auto db = today();
  RewriteOptions options;
  options.batch_size = 2;
  int visited = 0;
  options.visit = [&](Persistent& p) {
    ++visited;
    auto& item = dynamic_cast<Item&>(p);
    item.set(item.n() + 100);
  };
  const Tid before = storage_->last_transaction();
  const RewriteReport report = rewrite_type(*db, "s.Item", options);
  EXPECT_EQ(report.objects, 3u);
  EXPECT_EQ(report.transactions, 2u) << "3 objects, 2 per transaction";
  EXPECT_EQ(visited, 3);
  int commits = 0;
  storage_->iterate(before + 1, kMaxTid, [&](const TransactionRecord&) {
    ++commits;
    return true;
  });
  EXPECT_EQ(commits, 2);

  const auto names = stored_names();
  EXPECT_EQ(names.count("s.OldItem"), 0u);
  EXPECT_EQ(names.at("s.Item"), 3);
  EXPECT_EQ(names.at("s.Thing"), 1) << "other types are left alone";

  ExplicitTransactionManager tm;
  ConnectionOptions co;
  co.manager = &tm;
  auto c = db->open(co);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c->root()->get<Item>("item" + std::to_string(i))->n(), 100 + i);
  }
}

TEST_F(SchemaTest, ABatchSizeOfZeroRewritesOneObjectPerTransaction) {
  auto db = today();
  RewriteOptions options;
  options.batch_size = 0;
  const RewriteReport report = rewrite_type(*db, "s.OldItem", options);
  EXPECT_EQ(report.objects, 3u);
  EXPECT_EQ(report.transactions, 3u);
  EXPECT_EQ(stored_names().at("s.Item"), 3);
}

}  // namespace
}  // namespace xact::objectstore
