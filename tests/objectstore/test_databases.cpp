// Several named databases (issue 17): the registry, get_connection, one transaction over
// two file storages (2PC and the decision log), snapshots of a connection set taken together.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/testing/crash_harness.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Counter;

class DatabasesTest : public ::testing::Test {
 protected:
  DatabasesTest() { open_all(); }

  void open_all() {
    dbs_ = Databases::create();
    DBOptions main;
    main.name = "main";
    dbs_->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "main.xfs")), main));
    DBOptions catalog;
    catalog.name = "catalog";
    dbs_->add(
        DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "catalog.xfs")), catalog));
  }
  void close_all() { dbs_.reset(); }

  ManagerOptions logged() {
    if (!log_) log_ = DecisionLog::open(io::Env::posix(), dir_ / "log");
    ManagerOptions o;
    o.decision_log = log_;
    return o;
  }
  ConnectionHandle open(TransactionManager& tm) {
    ConnectionOptions o;
    o.manager = &tm;
    return dbs_->open(o);
  }

  testing::TempDir dir_;
  std::shared_ptr<DecisionLog> log_;
  std::shared_ptr<Databases> dbs_;
};

// Rule: the first database added is the default; names are unique; an unknown name is a
// UsageError naming the registered ones.
TEST_F(DatabasesTest, TheFirstDatabaseIsTheDefaultAndNamesAreChecked) {
  EXPECT_EQ(dbs_->default_database()->name(), "main");
  EXPECT_EQ(dbs_->names(), (std::vector<std::string>{"main", "catalog"}));
  DBOptions dup;
  dup.name = "catalog";
  EXPECT_THROW(dbs_->add(DB::open(std::shared_ptr<Storage>(FileStorage::open(dir_ / "x.xfs")),
                                  dup)),
               UsageError);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  try {
    c->get_connection("sessions");
    FAIL() << "no UsageError for an unknown database";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("main, catalog"), std::string::npos) << e.what();
  }
}

// Rule: get_connection gives the set's connection to the other database, the same one every
// time, with the same manager; its own name gives the connection itself; database_name()
// answers where an object lives.
TEST_F(DatabasesTest, GetConnectionGivesTheSetsConnection) {
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  Connection& cat = c->get_connection("catalog");
  EXPECT_EQ(&cat, &c->get_connection("catalog"));
  EXPECT_EQ(&cat.get_connection("main"), &*c);
  EXPECT_EQ(&c->get_connection("main"), &*c);
  EXPECT_EQ(cat.db().name(), "catalog");
  tm.begin();
  auto a = std::make_shared<Counter>();
  auto b = std::make_shared<Counter>();
  c->root()->set("a", a);
  cat.root()->set("b", b);
  tm.commit();
  EXPECT_EQ(a->database_name(), "main");
  EXPECT_EQ(b->database_name(), "catalog");
  EXPECT_EQ(std::make_shared<Counter>()->database_name(), "");
}

// Rule: changes in two databases of one set commit in one transaction, through the 2PC with
// a durable commit record in the decision log, and both are there after reopening the files.
TEST_F(DatabasesTest, ChangesInTwoDatabasesCommitTogetherThroughTheDecisionLog) {
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    c->root()->set("n", std::int64_t{1});
    c->get_connection("catalog").root()->set("n", std::int64_t{1});
    const auto outcome = tm.commit();
    EXPECT_TRUE(outcome.complete());
    EXPECT_TRUE(outcome.decision_logged);
  }
  close_all();
  open_all();
  ExplicitTransactionManager tm;
  auto c = open(tm);
  EXPECT_EQ(c->root()->at("n").as_int(), 1);
  EXPECT_EQ(c->get_connection("catalog").root()->at("n").as_int(), 1);
}

// Rule: a commit that fails in the second database (a write conflict there) leaves neither
// database changed.
TEST_F(DatabasesTest, AFailedCommitChangesNeitherDatabase) {
  Oid person = 0;
  {
    ExplicitTransactionManager setup(logged());
    auto s = open(setup);
    setup.begin();
    auto p = std::make_shared<test::Person>("ann");
    s->get_connection("catalog").root()->set("p", p);
    setup.commit();
    person = p->oid();
  }
  ExplicitTransactionManager tm(logged());
  auto c = open(tm);
  tm.begin();
  c->root()->set("n", std::int64_t{1});
  c->get_connection("catalog").get<test::Person>(person)->rename("bob");
  {
    ExplicitTransactionManager other(logged());
    auto o = open(other);
    other.begin();
    o->get_connection("catalog").get<test::Person>(person)->rename("eve");
    other.commit();
  }
  EXPECT_THROW(tm.commit(), ConflictError);
  tm.abort();
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  tm2.begin();
  EXPECT_FALSE(c2->root()->contains("n"));
  EXPECT_EQ(c2->get_connection("catalog").get<test::Person>(person)->name(), "eve");
}

// Rule: two connections of one database cannot join one transaction; the error says so at
// join time and says what to do.
TEST_F(DatabasesTest, TwoConnectionsOfOneDatabaseInOneTransactionIsAClearUsageError) {
  ExplicitTransactionManager tm(logged());
  auto c1 = open(tm);
  auto c2 = open(tm);
  tm.begin();
  c1->root()->set("x", std::int64_t{1});
  try {
    c2->root()->set("y", std::int64_t{1});
    FAIL() << "no UsageError";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("second connection to database 'main'"), std::string::npos) << what;
    EXPECT_NE(what.find("get_connection"), std::string::npos) << what;
  }
  tm.abort();
}

// Rule: a set's snapshots are taken together. Writers commit +1 to their counter in both
// databases in one transaction; readers, each transaction, read every counter in both
// databases through one connection set and must see equal values (a transaction is visible
// in both databases or in neither).
TEST_F(DatabasesTest, ReadersSeeATwoDatabaseCommitInBothOrNeither) {
  constexpr int kWriters = 3;
  constexpr int kCommits = 60;
  constexpr int kReaders = 2;
  std::vector<Oid> main_oids(kWriters), cat_oids(kWriters);
  {
    ExplicitTransactionManager tm(logged());
    auto c = open(tm);
    tm.begin();
    for (int i = 0; i < kWriters; ++i) {
      auto a = std::make_shared<Counter>();
      auto b = std::make_shared<Counter>();
      c->root()->set("w" + std::to_string(i), a);
      c->get_connection("catalog").root()->set("w" + std::to_string(i), b);
      main_oids[i] = c->add(a);
      cat_oids[i] = c->get_connection("catalog").add(b);
    }
    tm.commit();
  }
  std::atomic<int> writers_done{0};
  std::atomic<long> reads{0};
  std::atomic<long> mismatches{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      ExplicitTransactionManager tm(logged());
      auto c = open(tm);
      for (int i = 0; i < kCommits; ++i) {
        tm.begin();
        c->get<Counter>(main_oids[w])->add(1);
        c->get_connection("catalog").get<Counter>(cat_oids[w])->add(1);
        tm.commit();
      }
      ++writers_done;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      ExplicitTransactionManager tm;
      auto c = open(tm);
      while (writers_done.load() < kWriters) {
        tm.begin();
        Connection& cat = c->get_connection("catalog");
        for (int w = 0; w < kWriters; ++w) {
          const auto a = c->get<Counter>(main_oids[w])->value();
          const auto b = cat.get<Counter>(cat_oids[w])->value();
          if (a != b) ++mismatches;
        }
        ++reads;
        tm.abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 0);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_EQ(c->get<Counter>(main_oids[w])->value(), kCommits);
    EXPECT_EQ(c->get_connection("catalog").get<Counter>(cat_oids[w])->value(), kCommits);
  }
}

}  // namespace
}  // namespace xact::objectstore
