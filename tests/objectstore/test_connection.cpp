// Persistent objects, connections and the DB over the in-memory storage: identity map, cache,
// MVCC snapshots, conflicts and their resolution, read-current, historical connections,
// savepoints, and two-phase commit next to other participants.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include <xact/io/fault_injection_env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/objectstore/schema.hpp>
#include <xact/retry.hpp>
#include <xact/testing/conformance.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/recording_resource.hpp>

#include "objectstore_test_types.hpp"

namespace xact::objectstore {
namespace {

using test::Account;
using test::Counter;
using test::Person;

class ConnectionTest : public ::testing::Test {
 protected:
  ConnectionTest() {
    storage_ = std::make_shared<MemoryStorage>();
    db_ = DB::open(storage_);
  }
  ConnectionHandle open(TransactionManager& tm) {
    ConnectionOptions o;
    o.manager = &tm;
    return db_->open(o);
  }
  // Stores a new Counter under `key` and returns its oid.
  Oid make_counter(const std::string& key, std::int64_t value = 0) {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    auto counter = std::make_shared<Counter>();
    counter->add(value);
    c->root()->set(key, counter);
    tm.commit();
    return counter->oid();
  }

  std::shared_ptr<MemoryStorage> storage_;
  std::shared_ptr<DB> db_;
};

// --- objects, references, identity -----------------------------------------------------------

TEST_F(ConnectionTest, RootIsCreatedEmptyInANewStorage) {
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto root = c->root();
  EXPECT_EQ(root->oid(), kRootOid);
  EXPECT_TRUE(root->empty());
  EXPECT_NE(storage_->last_transaction(), kNoTid);
}

TEST_F(ConnectionTest, CommittedObjectsAreReadByAnotherConnection) {
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  auto alice = std::make_shared<Person>("alice");
  auto acct = std::make_shared<Account>();
  acct->deposit(42);
  acct->set_owner(alice);
  c->root()->set("acct", acct);
  tm.commit();
  EXPECT_NE(acct->oid(), kNoTid);
  EXPECT_NE(alice->oid(), kNoTid) << "objects reached by reference are added at commit";

  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  tm2.begin();
  auto a2 = c2->root()->get<Account>("acct");
  ASSERT_TRUE(a2);
  EXPECT_NE(a2.get(), acct.get());
  EXPECT_EQ(a2->balance(), 42);
  EXPECT_EQ(a2->owner()->name(), "alice");
  tm2.abort();
}

TEST_F(ConnectionTest, OneObjectPerOidPerConnection) {
  const Oid oid = make_counter("c", 1);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto a = c->get<Counter>(oid);
  auto b = c->get<Counter>(oid);
  auto via_root = c->root()->get<Counter>("c");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(a.get(), via_root.get());
}

TEST_F(ConnectionTest, ReferenceLoadsItsTargetOnFirstUseNotWithItsHolder) {
  {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    auto acct = std::make_shared<Account>();
    acct->set_owner(std::make_shared<Person>("bob"));
    c->root()->set("acct", acct);
    tm.commit();
  }
  ExplicitTransactionManager tm;
  auto c = db_->open({.read_only = true, .manager = &tm});
  auto acct = c->root()->get<Account>("acct");
  const auto loads = c->stats().loads;
  auto owner_ref = acct->owner_ref();
  EXPECT_EQ(c->stats().loads, loads) << "holding a Ref loads nothing";
  EXPECT_EQ(owner_ref->name(), "bob");
  EXPECT_EQ(c->stats().loads, loads + 1);
}

TEST_F(ConnectionTest, DanglingReferenceRaisesObjectNotFound) {
  ExplicitTransactionManager tm;
  auto c = open(tm);
  EXPECT_THROW(c->get(987654), ObjectNotFoundError);
}

TEST_F(ConnectionTest, ReferenceToTheWrongTypeRaisesStateError) {
  const Oid oid = make_counter("c");
  ExplicitTransactionManager tm;
  auto c = open(tm);
  EXPECT_THROW(c->get<Person>(oid)->name(), StateError);
}

TEST_F(ConnectionTest, UnregisteredTypeCannotBeAdded) {
  struct Unregistered : Persistent {
    void save(StateWriter&) const override {}
    void load(StateReader&, std::uint32_t) override {}
  };
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  EXPECT_THROW(c->add(std::make_shared<Unregistered>()), UsageError);
  tm.abort();
}

TEST_F(ConnectionTest, FirstChangeJoinsTheCurrentTransaction) {
  const Oid oid = make_counter("c");
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto& txn = tm.begin();
  auto counter = c->get<Counter>(oid);
  EXPECT_EQ(counter->value(), 0);
  EXPECT_FALSE(txn.has_joined(*c));
  counter->add(1);
  EXPECT_TRUE(txn.has_joined(*c));
  EXPECT_TRUE(counter->is_changed());
  tm.commit();
  EXPECT_EQ(counter->state(), ObjectState::up_to_date);
  EXPECT_GT(counter->serial(), kNoTid);
}

TEST_F(ConnectionTest, AbortTurnsChangedObjectsBackIntoGhosts) {
  const Oid oid = make_counter("c", 5);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  auto counter = c->get<Counter>(oid);
  counter->add(10);
  EXPECT_EQ(counter->value(), 15);
  tm.abort();
  EXPECT_TRUE(counter->is_ghost());
  EXPECT_EQ(counter->value(), 5) << "a ghost reloads the committed state";
}

TEST_F(ConnectionTest, AbortDetachesObjectsAddedInTheTransaction) {
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  auto counter = std::make_shared<Counter>();
  const Oid oid = c->add(counter);
  tm.abort();
  EXPECT_EQ(counter->state(), ObjectState::unsaved);
  EXPECT_EQ(counter->connection(), nullptr);
  EXPECT_THROW(c->get(oid), ObjectNotFoundError);
}

TEST_F(ConnectionTest, ReadOnlyConnectionRefusesChanges) {
  const Oid oid = make_counter("c");
  ExplicitTransactionManager tm;
  auto c = db_->open({.read_only = true, .manager = &tm});
  tm.begin();
  auto counter = c->get<Counter>(oid);
  EXPECT_THROW(counter->add(1), UsageError);
  tm.abort();
}

TEST_F(ConnectionTest, ChangeWithoutATransactionOnAnExplicitManagerIsAUsageError) {
  const Oid oid = make_counter("c");
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto counter = c->get<Counter>(oid);
  EXPECT_THROW(counter->add(1), NoTransactionError);
}

TEST_F(ConnectionTest, ThreadManagerIsTheDefault) {
  auto c = db_->open();
  {
    TransactionGuard g(thread_manager());
    c->root()->set("x", 7);
    g.commit();
  }
  auto c2 = db_->open();
  thread_manager().begin();
  EXPECT_EQ(c2->root()->at("x").as_int(), 7);
  thread_manager().abort();
}

// --- containers ------------------------------------------------------------------------------

TEST_F(ConnectionTest, MapAndListKeepEveryKindOfValue) {
  ExplicitTransactionManager tm;
  {
    auto c = open(tm);
    tm.begin();
    auto list = std::make_shared<PersistentList>();
    list->push_back(1);
    list->push_back("two");
    list->push_back(3.5);
    list->push_back(Bytes{std::string("\0\1", 2)});
    list->push_back(Value::List{Value(true), Value()});
    list->insert(0, std::make_shared<Person>("carol"));
    c->root()->set("list", list);
    tm.commit();
  }
  ExplicitTransactionManager tm2;
  auto c = open(tm2);
  auto list = c->root()->get<PersistentList>("list");
  ASSERT_EQ(list->size(), 6u);
  EXPECT_EQ(list->at(0).as_object<Person>()->name(), "carol");
  EXPECT_EQ(list->at(1).as_int(), 1);
  EXPECT_EQ(list->at(2).as_string(), "two");
  EXPECT_EQ(list->at(3).as_double(), 3.5);
  EXPECT_EQ(list->at(4).as_bytes().data, std::string("\0\1", 2));
  EXPECT_TRUE(list->at(5).as_list()[0].as_bool());
  EXPECT_TRUE(list->at(5).as_list()[1].is_none());
  EXPECT_THROW(list->at(6), UsageError);
  EXPECT_THROW(list->at(1).as_string(), UsageError);
}

// --- cache -----------------------------------------------------------------------------------

TEST_F(ConnectionTest, CacheTurnsUnusedObjectsIntoGhostsDownToItsTarget) {
  ExplicitTransactionManager tm;
  auto c = open(tm);
  c->set_cache_size(10);
  tm.begin();
  auto list = std::make_shared<PersistentList>();
  for (int i = 0; i < 100; ++i) list->push_back(std::make_shared<Counter>());
  c->root()->set("many", list);
  tm.commit();
  list.reset();
  EXPECT_LE(c->stats().non_ghosts, 10u);

  tm.begin();
  auto l = c->root()->get<PersistentList>("many");
  for (std::size_t i = 0; i < l->size(); ++i) EXPECT_EQ(l->at(i).as_object<Counter>()->value(), 0);
  l.reset();
  tm.commit();
  EXPECT_LE(c->stats().non_ghosts, 10u);
  EXPECT_GT(c->stats().evictions, 0u);
}

TEST_F(ConnectionTest, CacheNeverGhostifiesAHeldObject) {
  const Oid oid = make_counter("c", 3);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  c->set_cache_size(0);
  auto held = c->get<Counter>(oid);
  held->value();
  const std::int64_t* field = &held->value_ref();  // a reference into the object's state
  c->cache_minimize();
  c->cache_gc();
  EXPECT_EQ(held->state(), ObjectState::up_to_date);
  EXPECT_EQ(*field, 3) << "read through a reference into a held object (ASan checks it)";
  EXPECT_EQ(c->get<Counter>(oid).get(), held.get());
}

TEST_F(ConnectionTest, HeldObjectsStateStaysReadableThroughCacheGcUnderASan) {
  const std::string long_name(200, 'x');  // on the heap, freed by Person::clear()
  {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    c->root()->set("p", std::make_shared<Person>(long_name));
    tm.commit();
  }
  ExplicitTransactionManager tm;
  auto c = open(tm);
  c->set_cache_size(0);
  auto held = c->root()->get<Person>("p");
  const std::string& name = held->name();
  for (int i = 0; i < 3; ++i) {
    tm.begin();
    tm.commit();  // cache_gc after each transaction
    c->cache_minimize();
  }
  EXPECT_EQ(name, long_name);  // ASan reports a heap-use-after-free if it was cleared
  EXPECT_FALSE(held->is_ghost());
}

TEST_F(ConnectionTest, CacheNeverGhostifiesAChangedObject) {
  const Oid oid = make_counter("c", 3);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  c->set_cache_size(0);
  tm.begin();
  c->get<Counter>(oid)->add(1);  // nobody holds it but the connection
  c->cache_minimize();
  EXPECT_EQ(c->get<Counter>(oid)->value(), 4);
  tm.commit();
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  EXPECT_EQ(c2->get<Counter>(oid)->value(), 4);
}

TEST_F(ConnectionTest, UnheldObjectsAreFreedAndReloaded) {
  const Oid oid = make_counter("c", 9);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  std::weak_ptr<Counter> weak = c->get<Counter>(oid);
  c->cache_minimize();
  EXPECT_TRUE(weak.expired()) << "an unheld object is freed";
  EXPECT_EQ(c->get<Counter>(oid)->value(), 9);
}

TEST_F(ConnectionTest, RefStaysUsableAcrossEvictions) {
  {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    auto acct = std::make_shared<Account>();
    acct->set_owner(std::make_shared<Person>("dan"));
    c->root()->set("acct", acct);
    tm.commit();
  }
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto acct = c->root()->get<Account>("acct");
  Ref<Person> owner = acct->owner_ref();
  EXPECT_EQ(owner->name(), "dan");
  c->cache_minimize();  // frees the person (held by nobody but the connection)
  EXPECT_EQ(owner->name(), "dan");
}

TEST_F(ConnectionTest, DebugWritesCatchesAChangeWithoutMarkChanged) {
  auto db = DB::open(std::make_shared<MemoryStorage>(), {.debug_writes = true});
  ExplicitTransactionManager tm;
  auto c = db->open({.manager = &tm});
  tm.begin();
  c->root()->set("c", std::make_shared<Counter>());
  tm.commit();

  tm.begin();
  auto counter = c->root()->get<Counter>("c");
  counter->add_without_marking(5);
  try {
    tm.commit();
    FAIL() << "the unmarked change went unnoticed";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("without mark_changed"), std::string::npos) << e.what();
  }
  tm.abort();
}

// --- MVCC ------------------------------------------------------------------------------------

TEST_F(ConnectionTest, TransactionReadsTheSnapshotAsOfItsStart) {
  const Oid oid = make_counter("c", 1);
  ExplicitTransactionManager reader_tm;
  auto reader = open(reader_tm);
  reader_tm.begin();
  auto seen = reader->get<Counter>(oid);
  EXPECT_EQ(seen->value(), 1);

  ExplicitTransactionManager writer_tm;
  auto writer = open(writer_tm);
  writer_tm.begin();
  writer->get<Counter>(oid)->add(10);
  writer->root()->set("new", 1);
  writer_tm.commit();

  EXPECT_EQ(seen->value(), 1) << "the reader's transaction keeps its snapshot";
  EXPECT_FALSE(reader->root()->contains("new"));
  reader_tm.commit();

  reader_tm.begin();
  EXPECT_EQ(seen->value(), 11) << "the next transaction sees the commit";
  EXPECT_TRUE(reader->root()->contains("new"));
  reader_tm.abort();
}

TEST_F(ConnectionTest, SnapshotIsolationHoldsUnderConcurrentWriters) {
  // Two counters always change together (a += n, b -= n): every snapshot must see a + b == 0.
  {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    c->root()->set("a", std::make_shared<Counter>());
    c->root()->set("b", std::make_shared<Counter>());
    tm.commit();
  }
  // The reader reads until both writers are done (and at least 500 times), whatever the
  // scheduler does: a reader that stopped the writers after a fixed number of reads could, on a
  // loaded machine, finish before either had committed once.
  std::atomic<int> writing{2};
  std::atomic<int> commits{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      ExplicitTransactionManager tm;
      auto c = open(tm);
      for (int i = 0; i < 20; ++i) {
        try {
          xact::run(tm, [&](Transaction&) {
            c->root()->get<Counter>("a")->add(t + 1);
            c->root()->get<Counter>("b")->add(-(t + 1));
          });
          ++commits;
        } catch (const TransientError&) {
        }
      }
      --writing;
    });
  }
  int reads = 0;
  std::thread reader([&] {
    ExplicitTransactionManager tm;
    auto c = db_->open({.read_only = true, .manager = &tm});
    for (; reads < 500 || writing > 0; ++reads) {
      tm.begin();
      const auto a = c->root()->get<Counter>("a")->value();
      std::this_thread::yield();
      const auto b = c->root()->get<Counter>("b")->value();
      EXPECT_EQ(a + b, 0) << "a snapshot mixed two commits";
      tm.abort();
    }
  });
  reader.join();
  for (auto& w : writers) w.join();
  EXPECT_GT(commits.load(), 0) << "no writer committed (" << reads << " reads)";
}

TEST_F(ConnectionTest, HistoricalConnectionReadsAsOfAnOldTransaction) {
  const Oid oid = make_counter("c", 1);
  const Tid before = storage_->last_transaction();
  {
    ExplicitTransactionManager tm;
    auto c = open(tm);
    tm.begin();
    c->get<Counter>(oid)->add(100);
    tm.commit();
  }
  auto old = db_->open_historical(before);
  EXPECT_EQ(old->get<Counter>(oid)->value(), 1);
  EXPECT_TRUE(old->historical());
  ExplicitTransactionManager tm;
  tm.begin();
  EXPECT_THROW(old->get<Counter>(oid)->add(1), UsageError);
  tm.abort();
  auto now = db_->open_historical(storage_->last_transaction());
  EXPECT_EQ(now->get<Counter>(oid)->value(), 101);
}

// --- conflicts -------------------------------------------------------------------------------

TEST_F(ConnectionTest, ConcurrentWriteRaisesConflictErrorWithOidTypeAndSerials) {
  ExplicitTransactionManager tm0;
  Oid oid;
  {
    auto c = open(tm0);
    tm0.begin();
    auto p = std::make_shared<Person>("erin");
    c->root()->set("p", p);
    tm0.commit();
    oid = p->oid();
  }
  ExplicitTransactionManager tm1, tm2;
  auto c1 = open(tm1);
  auto c2 = open(tm2);
  tm1.begin();
  tm2.begin();
  auto p1 = c1->get<Person>(oid);
  auto p2 = c2->get<Person>(oid);
  const Tid read = p2->serial();
  p1->rename("e1");
  p2->rename("e2");
  tm1.commit();
  try {
    tm2.commit();
    FAIL() << "no conflict";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.oid(), oid);
    EXPECT_EQ(e.type_name(), "test.Person");
    EXPECT_EQ(e.read_serial(), read);
    EXPECT_EQ(e.committed_serial(), p1->serial());
    EXPECT_FALSE(e.locked());
  }
  tm2.abort();
  EXPECT_EQ(p2->name(), "e1") << "after the abort the next read sees the winner";
}

TEST_F(ConnectionTest, CounterConflictsAreResolvedByItsHook) {
  const Oid oid = make_counter("c", 10);
  ExplicitTransactionManager tm1, tm2;
  auto c1 = open(tm1);
  auto c2 = open(tm2);
  tm1.begin();
  tm2.begin();
  c1->get<Counter>(oid)->add(5);
  c2->get<Counter>(oid)->add(7);
  tm1.commit();
  tm2.commit();  // resolved: 10 + 5 + 7
  EXPECT_EQ(c2->stats().conflicts_resolved, 1u);
  ExplicitTransactionManager tm3;
  auto c3 = open(tm3);
  EXPECT_EQ(c3->get<Counter>(oid)->value(), 22);
  tm2.begin();
  EXPECT_EQ(c2->get<Counter>(oid)->value(), 22) << "the resolving connection reloads the merge";
  tm2.abort();
}

TEST_F(ConnectionTest, ManyThreadsIncrementingACounterLoseNothing) {
  const Oid oid = make_counter("c", 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      ExplicitTransactionManager tm;
      auto c = open(tm);
      for (int i = 0; i < 100; ++i) {
        xact::run(
            tm, [&](Transaction&) { c->get<Counter>(oid)->add(1); }, RetryPolicy{.attempts = 1000});
      }
    });
  }
  for (auto& t : threads) t.join();
  ExplicitTransactionManager tm;
  auto c = open(tm);
  EXPECT_EQ(c->get<Counter>(oid)->value(), 400);
}

TEST_F(ConnectionTest, ReadCurrentRaisesReadConflictWhenTheObjectChanged) {
  const Oid a = make_counter("a", 1);
  const Oid b = make_counter("b", 1);
  ExplicitTransactionManager tm1, tm2;
  auto c1 = open(tm1);
  auto c2 = open(tm2);
  tm1.begin();
  auto ca = c1->get<Counter>(a);
  EXPECT_EQ(ca->value(), 1);
  c1->read_current(*ca);
  c1->get<Counter>(b)->add(1);  // writes b based on having read a

  tm2.begin();
  c2->get<Counter>(a)->add(1);
  tm2.commit();

  EXPECT_THROW(tm1.commit(), ReadConflictError);
  tm1.abort();
}

TEST_F(ConnectionTest, ReadCurrentPassesWhenNothingChanged) {
  const Oid a = make_counter("a", 1);
  const Oid b = make_counter("b", 1);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  c->read_current(*c->get<Counter>(a));
  c->get<Counter>(b)->add(1);
  EXPECT_NO_THROW(tm.commit());
}

TEST_F(ConnectionTest, XactRunRetriesAReadConflictAndTheCoordinatorsTypeCatchesIt) {
  const Oid a = make_counter("a", 1);
  const Oid b = make_counter("b", 1);
  ExplicitTransactionManager tm1, tm2;
  auto c1 = open(tm1);
  auto c2 = open(tm2);
  std::vector<std::exception_ptr> retried;
  RetryPolicy policy;
  policy.attempts = 3;
  policy.on_retry = [&](const RetryEvent& e) { retried.push_back(e.error); };
  int calls = 0;
  const auto seen = xact::run(
      tm1,
      [&](Transaction&) {
        ++calls;
        auto ca = c1->get<Counter>(a);
        const auto value = ca->value();
        c1->read_current(*ca);
        c1->get<Counter>(b)->add(value);
        if (calls == 1) {  // a changes after this attempt read it
          tm2.begin();
          c2->get<Counter>(a)->add(1);
          tm2.commit();
        }
        return value;
      },
      policy);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(seen, 2) << "the second attempt read a's new value";
  ASSERT_EQ(retried.size(), 1u);
  try {
    std::rethrow_exception(retried[0]);
  } catch (const xact::ReadConflictError& e) {
    const auto* details = dynamic_cast<const ConflictError*>(&e);
    ASSERT_NE(details, nullptr);
    EXPECT_EQ(details->oid(), a);
    EXPECT_EQ(details->type_name(), "test.Counter");
  } catch (...) {
    ADD_FAILURE() << "not an xact::ReadConflictError: " << error_message(retried[0]);
  }
  ExplicitTransactionManager tm3;
  auto c3 = open(tm3);
  EXPECT_EQ(c3->get<Counter>(b)->value(), 3);
}

// --- savepoints -------------------------------------------------------------------------------

TEST_F(ConnectionTest, SavepointRollbackRestoresStatesAndDropsLaterObjects) {
  const Oid oid = make_counter("c", 1);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  tm.begin();
  auto counter = c->get<Counter>(oid);
  counter->add(1);  // 2
  auto sp = tm.savepoint();
  counter->add(10);  // 12
  auto later = std::make_shared<Person>("later");
  c->root()->set("later", later);
  sp.rollback();
  EXPECT_EQ(counter->value(), 2);
  EXPECT_FALSE(c->root()->contains("later"));
  EXPECT_EQ(later->state(), ObjectState::unsaved);
  tm.commit();
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  EXPECT_EQ(c2->get<Counter>(oid)->value(), 2);
  EXPECT_FALSE(c2->root()->contains("later"));
}

// --- two-phase commit with other participants --------------------------------------------------

TEST_F(ConnectionTest, ObjectsAndARecordingParticipantCommitTogether) {
  const Oid oid = make_counter("c", 0);
  auto log = std::make_shared<testing::CallLog>();
  auto other = std::make_shared<testing::RecordingResource>("rec", log);
  ExplicitTransactionManager tm(ManagerOptions{.allow_unlogged_decisions = true});
  auto c = open(tm);
  auto& txn = tm.begin();
  c->get<Counter>(oid)->add(3);
  other->set(txn, "v");
  const auto outcome = tm.commit();
  EXPECT_TRUE(outcome.complete());
  EXPECT_EQ(other->committed(), "v");
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  EXPECT_EQ(c2->get<Counter>(oid)->value(), 3);
}

// Rule: a commit reported to the caller survives a crash. With a read-only second participant
// the file storage is the sole voter: no commit record is written anywhere, so its commit mark
// is the decision and must be durable before commit() returns (a lost mark would leave the
// transaction prepared, and recovery would presume abort).
TEST(ConnectionSoleVoter, ACommitWithAReadOnlyVoterSurvivesACrashRightAfterIt) {
  io::FaultInjectionEnv env;
  env.create_dir("/db");
  env.sync_dir("/");
  FileStorageOptions fo;
  fo.env = &env;
  fo.preallocate_bytes = 0;
  const std::string path = "/db/sole.xfs";
  Oid oid = kRootOid;
  {
    auto db = DB::open(std::shared_ptr<Storage>(FileStorage::open(path, fo)));
    auto log = std::make_shared<testing::CallLog>();
    auto reader = std::make_shared<testing::RecordingResource>(
        "reader", log, testing::RecordingOptions{.read_only = true});
    ExplicitTransactionManager tm(ManagerOptions{.allow_unlogged_decisions = true});
    ConnectionOptions co;
    co.manager = &tm;
    auto c = db->open(co);
    auto& txn = tm.begin();
    auto counter = std::make_shared<Counter>();
    counter->add(7);
    c->root()->set("c", counter);
    reader->set(txn, "only read");
    const auto outcome = tm.commit();
    ASSERT_TRUE(outcome.complete());
    EXPECT_FALSE(outcome.decision_logged);
    oid = counter->oid();
    env.crash();  // the process dies: nothing unsynced survives
  }
  auto db = DB::open(std::shared_ptr<Storage>(FileStorage::open(path, fo)));
  ExplicitTransactionManager tm;
  ConnectionOptions co;
  co.manager = &tm;
  auto c = db->open(co);
  EXPECT_EQ(c->get<Counter>(oid)->value(), 7);
}

TEST_F(ConnectionTest, AFailingParticipantRollsTheObjectsBack) {
  const Oid oid = make_counter("c", 0);
  auto log = std::make_shared<testing::CallLog>();
  auto other = std::make_shared<testing::RecordingResource>(
      "rec", log, testing::RecordingOptions{.fail_at = testing::Step::tpc_vote});
  ExplicitTransactionManager tm(ManagerOptions{.allow_unlogged_decisions = true});
  auto c = open(tm);
  auto& txn = tm.begin();
  auto counter = c->get<Counter>(oid);
  counter->add(3);
  other->set(txn, "v");
  EXPECT_THROW(tm.commit(), ResourceError);
  tm.abort();
  EXPECT_FALSE(other->committed().has_value());
  EXPECT_EQ(counter->value(), 0);
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  EXPECT_EQ(c2->get<Counter>(oid)->value(), 0);
  // Nothing stays locked: another writer commits the object.
  tm2.begin();
  c2->get<Counter>(oid)->add(1);
  EXPECT_NO_THROW(tm2.commit());
}

// A retried attempt commits the object store's changes, whatever step of another participant
// failed the attempt before (the object store prepared already when the failure is at a later
// participant's vote).
class RetriedAttemptTest : public ConnectionTest,
                           public ::testing::WithParamInterface<testing::Step> {};

TEST_P(RetriedAttemptTest, CommitsTheObjectsOfTheAttemptThatSucceeds) {
  auto log = std::make_shared<testing::CallLog>();
  testing::RecordingOptions flaky;
  flaky.fail_at = GetParam();
  flaky.fail_times = 2;
  flaky.thrower = [](testing::Step) { throw xact::ConflictError("injected"); };
  auto other = std::make_shared<testing::RecordingResource>("rec", log, flaky);
  ExplicitTransactionManager tm(ManagerOptions{.allow_unlogged_decisions = true});
  auto c = open(tm);
  int attempts = 0;
  run(tm, [&](Transaction& txn) {
    ++attempts;
    c->root()->set("k", attempts);
    other->set(txn, std::to_string(attempts));
  });
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(other->committed(), "3");
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  ASSERT_TRUE(c2->root()->contains("k")) << "the object store's part was committed";
  EXPECT_EQ(c2->root()->at("k").as_int(), 3);
}

INSTANTIATE_TEST_SUITE_P(Steps, RetriedAttemptTest,
                         ::testing::Values(testing::Step::tpc_begin, testing::Step::commit,
                                           testing::Step::tpc_vote),
                         [](const auto& info) {
                           switch (info.param) {
                             case testing::Step::tpc_begin: return std::string("tpc_begin");
                             case testing::Step::commit: return std::string("commit");
                             default: return std::string("tpc_vote");
                           }
                         });

TEST_F(ConnectionTest, PreparedObjectsAreLockedAgainstOtherWriters) {
  const Oid oid = make_counter("c", 0);
  // Drive our connection's phase 1 by hand and hold it prepared.
  ExplicitTransactionManager tm2;
  auto c2 = open(tm2);
  ExplicitTransactionManager tm;
  auto c = open(tm);
  auto& txn = tm.begin();
  c->get<Counter>(oid)->add(1);
  c->commit(txn);
  c->tpc_begin(txn);
  (void)c->tpc_vote(txn);
  tm2.begin();
  c2->get<Counter>(oid)->add(1);
  try {
    tm2.commit();
    FAIL() << "a prepared object was written";
  } catch (const ConflictError& e) {
    EXPECT_TRUE(e.locked());
  }
  tm2.abort();
  c->tpc_abort(txn);
  tm.abort();
}

TEST_F(ConnectionTest, HandleGoesBackToThePool) {
  ExplicitTransactionManager tm;
  { auto c = open(tm); }
  EXPECT_EQ(db_->pool_idle(), 1u);
  auto c = open(tm);
  EXPECT_EQ(db_->pool_idle(), 0u);
}

// --- closed connections, detached objects, managers and databases ------------------------------

// The value of the counter under `key`, read through a fresh connection.
std::int64_t committed_value(DB& db, const std::string& key) {
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  auto c = db.open(o);
  return c->root()->get<Counter>(key)->value();
}

TEST(ClosedConnection, ObjectOfAConnectionClosedWithNoPoolRefusesChangesInsteadOfLosingThem) {
  DBOptions options;
  options.pool_size = 0;  // the connection is destroyed when its handle closes
  auto db = DB::open(std::make_shared<MemoryStorage>(), options);
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  std::shared_ptr<Counter> kept;
  {
    auto c = db->open(o);
    tm.begin();
    kept = std::make_shared<Counter>();
    c->root()->set("c", kept);
    tm.commit();
  }
  EXPECT_EQ(db->pool_idle(), 0u);
  tm.begin();
  try {
    kept->add(5);
    FAIL() << "a change to an object of a closed connection was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("oad the object again"), std::string::npos) << e.what();
  }
  tm.commit();
  EXPECT_EQ(kept->value(), 0) << "the refused change must not have been applied in memory";
  EXPECT_EQ(committed_value(*db, "c"), 0);
}

TEST(ClosedConnection, ObjectOfAClosedHistoricalConnectionRefusesChanges) {
  auto db = DB::open(std::make_shared<MemoryStorage>());
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  {
    auto c = db->open(o);
    tm.begin();
    c->root()->set("c", std::make_shared<Counter>());
    tm.commit();
  }
  std::shared_ptr<Counter> kept;
  {
    auto old = db->open_historical(db->last_transaction());
    kept = old->root()->get<Counter>("c");
    EXPECT_EQ(kept->value(), 0);
  }
  tm.begin();
  EXPECT_THROW(kept->add(1), UsageError);
  tm.commit();
  EXPECT_EQ(committed_value(*db, "c"), 0);
}

TEST_F(ConnectionTest, HandleClosedWhileItsObjectsAreUsedDoesNotCommitThroughThePooledConnection) {
  const Oid oid = make_counter("c", 1);
  ExplicitTransactionManager tm;
  std::shared_ptr<Counter> kept;
  {
    auto c = open(tm);
    kept = c->get<Counter>(oid);
  }
  ASSERT_EQ(db_->pool_idle(), 1u) << "the connection went back to the pool";
  tm.begin();
  EXPECT_THROW(kept->add(10), UsageError);
  tm.commit();
  EXPECT_EQ(committed_value(*db_, "c"), 1);

  // Handed out again, the connection serves its new user normally.
  auto again = open(tm);
  tm.begin();
  again->get<Counter>(oid)->add(2);
  tm.commit();
  EXPECT_EQ(committed_value(*db_, "c"), 3);
}

TEST_F(ConnectionTest, HandleClosedDuringItsTransactionLetsThatTransactionCommit) {
  const Oid oid = make_counter("c", 1);
  ExplicitTransactionManager tm;
  tm.begin();
  std::shared_ptr<Counter> kept;
  {
    auto c = open(tm);
    kept = c->get<Counter>(oid);
    kept->add(1);
  }
  kept->add(1);  // same transaction, still joined: allowed
  tm.commit();
  EXPECT_EQ(committed_value(*db_, "c"), 3);
  tm.begin();
  EXPECT_THROW(kept->add(1), UsageError) << "after its transaction the connection is closed";
  tm.abort();
}

TEST_F(ConnectionTest, DestroyingTheManagerBeforeTheConnectionIsSafe) {
  const Oid oid = make_counter("c", 1);
  ConnectionHandle c;
  std::shared_ptr<Counter> kept;
  {
    auto tm = std::make_unique<ExplicitTransactionManager>();
    c = open(*tm);
    tm->begin();
    kept = c->get<Counter>(oid);
    kept->add(1);  // joined: the manager's destructor aborts it
    tm.reset();
  }
  EXPECT_THROW(kept->add(1), UsageError);
  try {
    c->root();
    kept->add(1);
    FAIL() << "a connection whose manager is gone accepted a change";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("manager"), std::string::npos) << e.what();
  }
  c.close();  // must not call the destroyed manager
  EXPECT_EQ(committed_value(*db_, "c"), 1);
}

TEST(CrossDatabaseReference, RefToAnObjectOfAnotherDatabaseIsRefusedAtCommit) {
  auto db_a = DB::open(std::make_shared<MemoryStorage>(), DBOptions{.name = "a"});
  auto db_b = DB::open(std::make_shared<MemoryStorage>(), DBOptions{.name = "b"});
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  auto a = db_a->open(o);
  auto b = db_b->open(o);
  tm.begin();
  auto in_a = std::make_shared<Person>("alice");
  a->root()->set("alice", in_a);
  tm.commit();

  tm.begin();
  auto acct = std::make_shared<Account>();
  acct->set_owner(in_a);  // a saved object of database a
  b->root()->set("acct", acct);
  try {
    tm.commit();
    FAIL() << "a reference into another database was stored";
  } catch (const InvalidObjectReference& e) {
    EXPECT_NE(std::string(e.what()).find("objects:b"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("another database"), std::string::npos) << e.what();
  }
  tm.abort();
  tm.begin();
  EXPECT_FALSE(b->root()->contains("acct"));
  tm.abort();
}

TEST(FileStorageLock, LockFileThatCannotBeOpenedIsNotCalledInUse) {
  xact::testing::TempDir dir;
  const std::string path = dir / "data.xfs";
  FileStorage::open(path).reset();
  io::Env::posix().remove_file(path + ".lock");
  io::Env::posix().create_dir(path + ".lock");  // as root, what "permission denied" is for others
  try {
    FileStorage::open(path);
    FAIL() << "opened without its lock";
  } catch (const io::FileLockedError& e) {
    FAIL() << "reported as in use: " << e.what();
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("in use"), std::string::npos) << what;
    EXPECT_EQ(what.find("close the other process"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot be locked"), std::string::npos) << what;
  }
}

// --- schema evolution ---------------------------------------------------------------------------

TEST(SchemaEvolution, RenamedTypeLoadsThroughItsAliasAndOldStatesUpgrade) {
  auto storage = std::make_shared<MemoryStorage>();
  TypeRegistry old_types;
  old_types.add<test::ItemV1>("old.Item");
  TypeRegistry new_types;
  new_types.add<test::ItemV2>("shop.Item", {.version = 2, .aliases = {"old.Item"}});
  {
    auto db = DB::open(storage, {.registry = &old_types});
    ExplicitTransactionManager tm;
    auto c = db->open({.manager = &tm});
    tm.begin();
    for (int i = 0; i < 5; ++i) {
      auto item = std::make_shared<test::ItemV1>();
      item->price_cents = 100 * (i + 1);
      c->root()->set("item" + std::to_string(i), item);
    }
    tm.commit();
  }
  auto db = DB::open(storage, {.registry = &new_types});
  EXPECT_EQ(scan_type(*storage, "shop.Item", new_types).size(), 5u);
  {
    ExplicitTransactionManager tm;
    auto c = db->open({.manager = &tm});
    auto item = c->root()->get<test::ItemV2>("item1");
    EXPECT_EQ(item->price, 2.0) << "version 1 state (cents) upgraded by load()";
    EXPECT_EQ(item->currency, "EUR");
  }
  const auto report = rewrite_type(*db, "shop.Item", {.batch_size = 2});
  EXPECT_EQ(report.objects, 5u);
  EXPECT_EQ(report.transactions, 3u);
  int rewritten = 0;
  storage->for_each_object([&](Oid, Tid, std::string_view data) {
    const auto h = decode_header(data);
    if (h.type_name == "shop.Item") {
      EXPECT_EQ(h.version, 2u);
      ++rewritten;
    }
    EXPECT_NE(h.type_name, "old.Item");
    return true;
  });
  EXPECT_EQ(rewritten, 5);
}

TEST(SchemaEvolution, UnknownTypeNameIsAStateErrorThatSaysWhatToDo) {
  auto storage = std::make_shared<MemoryStorage>();
  TypeRegistry old_types;
  old_types.add<test::ItemV1>("old.Item");
  {
    auto db = DB::open(storage, {.registry = &old_types});
    ExplicitTransactionManager tm;
    auto c = db->open({.manager = &tm});
    tm.begin();
    c->root()->set("i", std::make_shared<test::ItemV1>());
    tm.commit();
  }
  TypeRegistry other;
  auto db = DB::open(storage, {.registry = &other});
  ExplicitTransactionManager tm;
  auto c = db->open({.manager = &tm});
  try {
    c->root()->get<test::ItemV1>("i");
    FAIL();
  } catch (const StateError& e) {
    EXPECT_NE(std::string(e.what()).find("alias"), std::string::npos) << e.what();
  }
}

TEST(SchemaEvolution, NewerStateVersionThanTheProgramIsRefused) {
  auto storage = std::make_shared<MemoryStorage>();
  TypeRegistry newer;
  newer.add<test::ItemV2>("shop.Item", {.version = 3});
  {
    auto db = DB::open(storage, {.registry = &newer});
    ExplicitTransactionManager tm;
    auto c = db->open({.manager = &tm});
    tm.begin();
    c->root()->set("i", std::make_shared<test::ItemV2>());
    tm.commit();
  }
  TypeRegistry older;
  older.add<test::ItemV2>("shop.Item", {.version = 2});
  auto db = DB::open(storage, {.registry = &older});
  ExplicitTransactionManager tm;
  auto c = db->open({.manager = &tm});
  EXPECT_THROW(c->root()->get<test::ItemV2>("i")->price, StateError);
}

}  // namespace
}  // namespace xact::objectstore

// --- the resource-manager conformance suite ------------------------------------------------------

namespace xact::testing {
namespace {

using namespace xact::objectstore;

class ObjectStoreTarget : public ConformanceTarget {
 public:
  explicit ObjectStoreTarget(bool file)
      : storage_(file ? std::shared_ptr<Storage>(FileStorage::open(dir_ / "data.xfs"))
                      : std::shared_ptr<Storage>(std::make_shared<MemoryStorage>())),
        db_(DB::open(storage_)) {}
  std::shared_ptr<ResourceManager> open() override {
    handles_.push_back(db_->open({.manager = &tm_}));
    return handles_.back().get();
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    auto& c = static_cast<Connection&>(rm);
    c.join_transaction(txn);
    c.root()->set(key, value);
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    auto c = db_->open({.read_only = true, .manager = &tm_});
    c->sync();
    const Value* v = c->root()->find(key);
    if (!v) return std::nullopt;
    return v->as_string();
  }

 private:
  TempDir dir_;
  ExplicitTransactionManager tm_;
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<DB> db_;
  std::vector<ConnectionHandle> handles_;
};

INSTANTIATE_TEST_SUITE_P(
    ObjectStore, ResourceManagerConformance,
    ::testing::Values(
        ConformanceParam{"memory", [] { return std::make_unique<ObjectStoreTarget>(false); }},
        ConformanceParam{"file", [] { return std::make_unique<ObjectStoreTarget>(true); }}),
    conformance_name);

}  // namespace
}  // namespace xact::testing
