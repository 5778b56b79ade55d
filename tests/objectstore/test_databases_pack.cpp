// The multi-database pack (issue 17): a pack of one database of a registry keeps what another
// database references (a mark over every database's roots), including a reference committed
// while the pack runs, and reports how many objects it kept for that reason. Each case has
// its control: the same pack without the registry drops the object.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/testing/temp_dir.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Person;

// A one-shot gate: the pack's after_mark hook waits on it while the test commits.
class Gate {
 public:
  void arrive_and_wait() {
    std::unique_lock l(mu_);
    arrived_ = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return opened_; });
  }
  void wait_arrived() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return arrived_; });
  }
  void open() {
    std::lock_guard l(mu_);
    opened_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool arrived_ = false;
  bool opened_ = false;
};

class DatabasesPackTest : public ::testing::Test {
 protected:
  DatabasesPackTest() {
    main_ = std::shared_ptr<FileStorage>(FileStorage::open(dir_ / "main.xfs"));
    catalog_ = std::shared_ptr<FileStorage>(FileStorage::open(dir_ / "catalog.xfs"));
    dbs_ = Databases::create();
    DBOptions m;
    m.name = "main";
    m.xrefs = XrefPolicy::allow;
    dbs_->add(DB::open(main_, m));
    DBOptions c;
    c.name = "catalog";
    c.xrefs = XrefPolicy::allow;
    dbs_->add(DB::open(catalog_, c));
    log_ = DecisionLog::open(io::Env::posix(), dir_ / "log");
  }
  ManagerOptions logged() {
    ManagerOptions o;
    o.decision_log = log_;
    return o;
  }
  ConnectionHandle open(TransactionManager& tm) { return dbs_->open({.manager = &tm}); }

  // main.root[key] = a map holding a Person (two objects); catalog.root[key] refers to the
  // map when `from_catalog`; then main.root[key] is removed: the map and the person are
  // reachable only from the catalog. Returns (map oid, person oid).
  std::pair<Oid, Oid> object_only_the_catalog_reaches(const std::string& key,
                                                      bool from_catalog = true) {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    auto folder = std::make_shared<PersistentMap>();
    auto person = std::make_shared<Person>(key);
    folder->set("person", person);
    c->root()->set(key, folder);
    tm.commit();
    tm.begin();
    if (from_catalog) c->get_connection("catalog").root()->set(key, folder);
    c->root()->erase(key);
    tm.commit();
    return {folder->oid(), person->oid()};
  }

  testing::TempDir dir_;
  std::shared_ptr<FileStorage> main_, catalog_;
  std::shared_ptr<Databases> dbs_;
  std::shared_ptr<DecisionLog> log_;
};

// Rule: an object of main reachable only from the catalog (and what it reaches in main)
// survives main's pack, and the report counts the objects kept for that reason.
TEST_F(DatabasesPackTest, AnObjectOnlyAnotherDatabaseReachesSurvivesThePack) {
  const auto [folder, person] = object_only_the_catalog_reaches("ann");
  const auto [gone_folder, gone_person] = object_only_the_catalog_reaches("bob", false);

  const PackReport report = dbs_->pack("main");
  EXPECT_EQ(report.objects_kept_for_extra_roots, 2u) << report.describe();
  EXPECT_EQ(report.objects_dropped, 2u) << report.describe();  // bob's: nobody refers to them
  EXPECT_NE(report.describe().find("2 objects kept only for extra roots"), std::string::npos);
  EXPECT_TRUE(main_->load(folder));
  EXPECT_TRUE(main_->load(person));
  EXPECT_FALSE(main_->load(gone_folder));
  EXPECT_FALSE(main_->load(gone_person));

  ExplicitTransactionManager tm;
  auto cat = dbs_->get("catalog")->open({.manager = &tm});
  tm.begin();
  auto p = cat->root()->get<PersistentMap>("ann")->get<Person>("person");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name(), "ann");
  EXPECT_EQ(p->database_name(), "main");
  tm.abort();

  // The control: the file storage's own pack knows nothing of the catalog and drops them,
  // and the catalog's reference then dangles.
  const PackReport alone = main_->pack(kMaxTid);
  EXPECT_EQ(alone.objects_kept_for_extra_roots, 0u);
  EXPECT_EQ(alone.objects_dropped, 2u);
  EXPECT_FALSE(main_->load(folder));
  ExplicitTransactionManager tm2;
  auto cat2 = dbs_->get("catalog")->open({.manager = &tm2});
  tm2.begin();
  EXPECT_THROW(cat2->root()->get<PersistentMap>("ann"), DanglingReferenceError);
}

// Rule: the mark crosses databases both ways: main's root -> an index in the catalog (not in
// the catalog's root) -> a person in main keeps the person, whom only the index refers to.
TEST_F(DatabasesPackTest, TheMarkFollowsReferencesThroughOtherDatabases) {
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  auto person = std::make_shared<Person>("cy");
  c->add(person);
  auto index = std::make_shared<PersistentMap>();
  index->set("cy", person);
  c->get_connection("catalog").add(index);  // not in the catalog's root
  c->root()->set("index", index);
  tm.commit();
  const PackReport report = dbs_->pack("main");
  EXPECT_EQ(report.objects_kept_for_extra_roots, 1u) << report.describe();
  EXPECT_TRUE(main_->load(person->oid()));
}

// Rule: a reference committed in the catalog while main's pack runs (after its mark, before
// its decision) keeps its target: the pack hears of it and starts over with it as a root.
TEST_F(DatabasesPackTest, AReferenceCommittedDuringThePackKeepsItsTarget) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("dan", std::make_shared<Person>("dan"));
    tm.commit();
  }
  // A transaction that read dan before main dropped him from its root...
  ExplicitTransactionManager reader(logged());
  auto r = open(reader);
  reader.begin();
  auto dan = r->root()->get<Person>("dan");
  const Oid oid = dan->oid();
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->erase("dan");
    tm.commit();
  }
  // ...commits a catalog reference to him while main's pack is paused after its mark.
  Gate gate;
  PackReport report;
  std::thread packer([&] {
    report = dbs_->pack("main", kMaxTid, {.after_mark = [&] { gate.arrive_and_wait(); }});
  });
  gate.wait_arrived();
  r->get_connection("catalog").root()->set("dan", dan);
  reader.commit();
  gate.open();
  packer.join();
  EXPECT_EQ(report.restarts, 1u) << report.describe();
  EXPECT_EQ(report.objects_kept_for_extra_roots, 1u) << report.describe();
  EXPECT_EQ(report.objects_dropped, 0u) << report.describe();
  ASSERT_TRUE(main_->load(oid));

  ExplicitTransactionManager tm;
  auto cat = dbs_->get("catalog")->open({.manager = &tm});
  tm.begin();
  EXPECT_EQ(cat->root()->get<Person>("dan")->name(), "dan");
}

// The control of the case above: the same interleaving against the file storage's own pack
// (no registry) drops the target, and the reference committed meanwhile dangles.
TEST_F(DatabasesPackTest, WithoutTheRegistryTheReferenceCommittedDuringThePackDangles) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("eve", std::make_shared<Person>("eve"));
    tm.commit();
  }
  ExplicitTransactionManager reader(logged());
  auto r = open(reader);
  reader.begin();
  auto eve = r->root()->get<Person>("eve");
  const Oid oid = eve->oid();
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->erase("eve");
    tm.commit();
  }
  Gate gate;
  std::thread packer([&] {
    PackOptions o;
    o.after_mark = [&] { gate.arrive_and_wait(); };
    main_->pack(kMaxTid, o);
  });
  gate.wait_arrived();
  r->get_connection("catalog").root()->set("eve", eve);
  reader.commit();
  gate.open();
  packer.join();
  EXPECT_FALSE(main_->load(oid));
  ExplicitTransactionManager tm;
  auto cat = dbs_->get("catalog")->open({.manager = &tm});
  tm.begin();
  EXPECT_THROW(cat->root()->get<Person>("eve"), DanglingReferenceError);
}

// Rule: after the pack, a transaction that held an object the pack dropped cannot commit a
// reference to it: DanglingReferenceError before anything is written (the file storage's own
// pack, above, lets the reference be committed dangling).
TEST_F(DatabasesPackTest, AReferenceToAnObjectThePackDroppedIsRefusedAtCommit) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("fay", std::make_shared<Person>("fay"));
    tm.commit();
  }
  ExplicitTransactionManager reader(logged());
  auto r = open(reader);
  reader.begin();
  auto fay = r->root()->get<Person>("fay");
  const Oid oid = fay->oid();
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->erase("fay");
    tm.commit();
  }
  const PackReport report = dbs_->pack("main");
  EXPECT_EQ(report.objects_dropped, 1u) << report.describe();
  ASSERT_FALSE(main_->load(oid));
  const Tid catalog_before = catalog_->last_transaction();
  r->get_connection("catalog").root()->set("fay", fay);
  try {
    reader.commit();
    FAIL() << "the dangling reference was committed";
  } catch (const DanglingReferenceError& e) {
    EXPECT_EQ(e.database(), "main");
    EXPECT_EQ(e.oid(), oid);
  }
  EXPECT_EQ(catalog_->last_transaction(), catalog_before);
}

// Rule: a reference announced after the pack took its last word waits for the pack to end,
// and is then refused if the pack dropped its target.
TEST_F(DatabasesPackTest, AReferenceAnnouncedAfterThePackDecidedWaitsAndIsRefused) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("gus", std::make_shared<Person>("gus"));
    tm.commit();
  }
  ExplicitTransactionManager reader(logged());
  auto r = open(reader);
  reader.begin();
  auto gus = r->root()->get<Person>("gus");
  const Oid oid = gus->oid();
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->erase("gus");
    tm.commit();
  }
  r->get_connection("catalog").root()->set("gus", gus);
  Gate gate;
  std::thread packer(
      [&] { dbs_->pack("main", kMaxTid, {.after_decision = [&] { gate.arrive_and_wait(); }}); });
  gate.wait_arrived();
  std::atomic<bool> finished{false};
  std::string error;
  std::thread committer([&] {
    try {
      reader.commit();
    } catch (const DanglingReferenceError& e) {
      error = e.what();
    }
    finished = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(finished) << "the commit did not wait for the pack's end";
  gate.open();
  packer.join();
  committer.join();
  EXPECT_NE(error.find(oid_repr(oid)), std::string::npos) << error;
  EXPECT_FALSE(main_->load(oid));
}

// Rule: a database on another storage than a file storage, or an unknown name, is refused
// with a UsageError.
TEST_F(DatabasesPackTest, OnlyAFileStorageIsPacked) {
  DBOptions s;
  s.name = "sessions";
  dbs_->add(DB::open(std::make_shared<MemoryStorage>(), s));
  EXPECT_THROW(dbs_->pack("sessions"), UsageError);
  EXPECT_THROW(dbs_->pack("nowhere"), UsageError);
}

}  // namespace
}  // namespace xact::objectstore
