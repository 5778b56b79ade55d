// TypeRegistry (registry.cpp): one stored name per type, aliases, versions, conflict hooks.
// Each test uses a registry of its own, not the process-wide one.
#include <xact/objectstore/registry.hpp>

#include <string>
#include <typeindex>
#include <vector>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/objectstore/containers.hpp>

namespace xact::objectstore {
namespace {

class Plain : public Persistent {
 public:
  void save(StateWriter&) const override {}
  void load(StateReader&, std::uint32_t) override {}
};
class Other : public Plain {};
class Merging : public Plain {
 public:
  static bool resolve_conflict(const Merging&, const Merging&, Merging&) { return true; }
};

TypeOptions with_aliases(std::vector<std::string> aliases) {
  TypeOptions o;
  o.aliases = std::move(aliases);
  return o;
}

TEST(TypeRegistry, AFreshRegistryKnowsTheContainersAndNothingElse) {
  TypeRegistry r;
  const TypeInfo* map = r.find(PersistentMap::kTypeName);
  ASSERT_NE(map, nullptr);
  EXPECT_EQ(map->cpp_type, std::type_index(typeid(PersistentMap)));
  ASSERT_NE(r.find(typeid(PersistentList)), nullptr);
  EXPECT_EQ(r.find(typeid(PersistentList))->name, PersistentList::kTypeName);
  EXPECT_EQ(r.find("t.Plain"), nullptr);
  EXPECT_EQ(r.find(typeid(Plain)), nullptr);
}

TEST(TypeRegistry, EachStoredNameDenotesOneTypeAndARefusalChangesNothing) {
  TypeRegistry r;
  r.add<Plain>("t.Plain", with_aliases({"t.OldPlain"}));
  EXPECT_THROW(r.add<Other>("t.Plain"), UsageError);
  EXPECT_THROW(r.add<Other>("t.OldPlain"), UsageError);
  EXPECT_THROW(r.add<Other>("t.Other", with_aliases({"t.Plain"})), UsageError);
  EXPECT_EQ(r.find("t.Other"), nullptr);
  EXPECT_EQ(r.find(typeid(Other)), nullptr);
  ASSERT_NE(r.find("t.OldPlain"), nullptr);
  EXPECT_EQ(r.find("t.OldPlain")->name, "t.Plain");
  EXPECT_EQ(r.find("t.OldPlain"), r.find(typeid(Plain)));
}

TEST(TypeRegistry, ATypeHasOneNameAndRegisteringItAgainIsANoOp) {
  TypeRegistry r;
  const TypeInfo& first = r.add<Plain>("t.Plain");
  const TypeInfo& again = r.add<Plain>("t.Plain");
  EXPECT_EQ(&first, &again);
  EXPECT_THROW(r.add<Plain>("t.Renamed"), UsageError) << "old names are aliases, not new types";
  EXPECT_EQ(r.find("t.Renamed"), nullptr);
}

TEST(TypeRegistry, NamesAreOneTo255BytesAndVersionsStartAtOne) {
  TypeRegistry r;
  EXPECT_THROW(r.add<Plain>(""), UsageError);
  EXPECT_THROW(r.add<Plain>(std::string(256, 'x')), UsageError);
  TypeOptions v0;
  v0.version = 0;
  EXPECT_THROW(r.add<Plain>("t.Plain", v0), UsageError);
  EXPECT_EQ(r.find(typeid(Plain)), nullptr);
  TypeOptions v3;
  v3.version = 3;
  EXPECT_EQ(r.add<Plain>(std::string(255, 'x'), v3).version, 3u);
}

TEST(TypeRegistry, NamesOfGivesTheNameThenItsAliasesAndAnUnknownNameAsItself) {
  TypeRegistry r;
  r.add<Plain>("t.Plain", with_aliases({"t.V1", "t.V0"}));
  const std::vector<std::string> all{"t.Plain", "t.V1", "t.V0"};
  EXPECT_EQ(r.names_of("t.Plain"), all);
  EXPECT_EQ(r.names_of("t.V0"), all);
  EXPECT_EQ(r.names_of("t.Nope"), std::vector<std::string>{"t.Nope"});
}

TEST(TypeRegistry, TheConflictHookIsFoundOnTheTypeOrGivenExplicitly) {
  TypeRegistry r;
  EXPECT_TRUE(static_cast<bool>(r.add<Merging>("t.Merging").resolve));
  EXPECT_FALSE(static_cast<bool>(r.add<Plain>("t.Plain").resolve));
  int calls = 0;
  TypeOptions o;
  o.resolve = [&](const Persistent&, const Persistent&, Persistent&) {
    ++calls;
    return false;
  };
  const TypeInfo& other = r.add<Other>("t.Other", o);
  Other old_state, committed, mine;
  EXPECT_FALSE(other.resolve(old_state, committed, mine));
  EXPECT_EQ(calls, 1);
}

TEST(TypeRegistry, TheFactoryMakesAFreshInstanceOfTheRegisteredType) {
  TypeRegistry r;
  const TypeInfo& t = r.add<Other>("t.Other");
  const auto a = t.factory();
  const auto b = t.factory();
  ASSERT_NE(a, nullptr);
  EXPECT_NE(dynamic_cast<Other*>(a.get()), nullptr);
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->connection(), nullptr) << "not saved anywhere yet";
}

}  // namespace
}  // namespace xact::objectstore
