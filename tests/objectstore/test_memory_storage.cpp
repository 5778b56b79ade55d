// MemoryStorage (memory_storage.cpp): every revision kept in memory, readable as of any tid;
// prepared transactions listed for recovery while the storage object lives.
#include <xact/objectstore/memory_storage.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/objectstore/errors.hpp>

namespace xact::objectstore {
namespace {

CommitRequest write_of(Oid oid, Tid base, std::string data) {
  CommitRequest r;
  r.writes.push_back({oid, base, std::move(data)});
  return r;
}

TEST(MemoryStorage, EveryRevisionIsKeptAndReadAsOfItsTid) {
  MemoryStorage s;
  EXPECT_EQ(s.last_transaction(), kNoTid);
  const Oid oid = s.new_oid();
  EXPECT_NE(oid, kRootOid) << "the root's oid is never handed out";
  const Tid t1 = s.commit_one_phase(write_of(oid, kNoTid, "one"));
  const Tid t2 = s.commit_one_phase(write_of(oid, t1, "two"));
  const Tid t3 = s.commit_one_phase(write_of(oid, t2, "three"));
  ASSERT_LT(t1, t2);
  ASSERT_LT(t2, t3);
  EXPECT_EQ(s.last_transaction(), t3);

  EXPECT_EQ(s.load(oid, t1 - 1), std::nullopt) << "before its first transaction it did not exist";
  EXPECT_EQ(s.load(oid, t1)->data, "one");
  EXPECT_EQ(s.load(oid, t2)->serial, t2);
  EXPECT_EQ(s.load(oid, t3 - 1)->data, "two") << "as of a tid between two revisions";
  EXPECT_EQ(s.load(oid)->data, "three");
  EXPECT_EQ(s.load_serial(oid, t1), "one") << "old revisions are never dropped";
  EXPECT_EQ(s.load_serial(oid, t3), "three");
  EXPECT_EQ(s.load_serial(oid, t3 + 1), std::nullopt);
}

TEST(MemoryStorage, NewOidsAreDistinctAndIncreasing) {
  MemoryStorage s;
  Oid previous = s.new_oid();
  for (int i = 0; i < 100; ++i) {
    const Oid next = s.new_oid();
    EXPECT_GT(next, previous);
    previous = next;
  }
}

TEST(MemoryStorage, APreparedTransactionIsListedForItsNodeUntilDecided) {
  MemoryStorage s;
  const NodeId node = NodeId::random();
  const NodeId other = NodeId::random();
  const Oid oid = s.new_oid();
  CommitRequest r = write_of(oid, kNoTid, "prepared");
  r.xid.gtrid = Gtrid(node, 1, 42);
  r.xid.bqual = "objects:main";
  const Xid xid = r.xid;
  s.prepare(std::move(r));

  EXPECT_EQ(s.recover(node), std::vector<Xid>{xid});
  EXPECT_TRUE(s.recover(other).empty()) << "another coordinator's branches are not ours";
  EXPECT_EQ(s.load(oid), std::nullopt) << "invisible until committed";
  EXPECT_THROW(s.commit_one_phase(write_of(oid, kNoTid, "other")), xact::ConflictError)
      << "a prepared transaction holds its oids";

  EXPECT_EQ(s.commit_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(s.load(oid)->data, "prepared");
  EXPECT_TRUE(s.recover(node).empty());
  EXPECT_EQ(s.commit_prepared(xid), RecoverableResource::Outcome::unknown_id)
      << "deciding twice finds nothing left to decide";
}

TEST(MemoryStorage, ARolledBackPreparedTransactionLeavesNoTraceAndReleasesItsOids) {
  MemoryStorage s;
  const NodeId node = NodeId::random();
  const Oid oid = s.new_oid();
  const Tid before = s.last_transaction();
  CommitRequest r = write_of(oid, kNoTid, "never");
  r.xid.gtrid = Gtrid(node, 1, 7);
  r.xid.bqual = "objects:main";
  const Xid xid = r.xid;
  s.prepare(std::move(r));
  EXPECT_EQ(s.rollback_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(s.last_transaction(), before);
  EXPECT_EQ(s.load(oid), std::nullopt);
  EXPECT_GT(s.commit_one_phase(write_of(oid, kNoTid, "after")), before);
  EXPECT_EQ(s.load(oid)->data, "after");
}

// Expiry (issue 17): an object not written for `expiry` is removed by the sweep, all its
// revisions; the root and an object held by a prepared transaction stay; the listener hears
// of the removal under a tid of its own.
TEST(MemoryStorage, TheSweepRemovesWhatWasNotWrittenForTheExpiry) {
  using namespace std::chrono;
  auto fake_now = system_clock::now();
  MemoryStorageOptions options;
  options.expiry = minutes(30);
  options.clock = [&] { return fake_now; };
  MemoryStorage s(options);
  std::vector<Oid> heard;
  s.set_invalidation_listener([&](Tid, const std::vector<Oid>& oids) {
    heard.insert(heard.end(), oids.begin(), oids.end());
  });
  s.commit_one_phase(write_of(kRootOid, kNoTid, "root"));
  const Oid old_one = s.new_oid();
  const Tid t_old = s.commit_one_phase(write_of(old_one, kNoTid, "old"));
  const Oid held = s.new_oid();
  const Tid t_held = s.commit_one_phase(write_of(held, kNoTid, "held"));
  std::this_thread::sleep_for(milliseconds(3));
  const auto between = system_clock::now();
  std::this_thread::sleep_for(milliseconds(3));
  const Oid fresh = s.new_oid();
  const Tid t_fresh = s.commit_one_phase(write_of(fresh, kNoTid, "fresh"));
  const Tid t_fresh2 = s.commit_one_phase(write_of(fresh, t_fresh, "fresh, again"));
  std::this_thread::sleep_for(milliseconds(3));
  const auto between2 = system_clock::now();
  std::this_thread::sleep_for(milliseconds(3));
  s.commit_one_phase(write_of(fresh, t_fresh2, "fresh, third"));
  CommitRequest lock = write_of(held, t_held, "held, prepared");
  lock.xid.gtrid = Gtrid(NodeId::random(), 1, 7);
  lock.xid.bqual = "objects:sessions";
  const auto id = s.prepare(std::move(lock));

  fake_now = between + minutes(29);
  EXPECT_EQ(s.sweep(), 0u) << "nothing is 30 minutes old yet";
  heard.clear();
  fake_now = between + minutes(30);
  EXPECT_EQ(s.sweep(), 1u);
  EXPECT_EQ(s.load(old_one), std::nullopt);
  EXPECT_EQ(s.load(old_one, t_old), std::nullopt) << "no snapshot sees it again";
  EXPECT_EQ(s.load_serial(old_one, t_old), std::nullopt);
  EXPECT_EQ(heard, std::vector<Oid>{old_one});
  EXPECT_TRUE(s.load(fresh)) << "written after the cut-off";
  EXPECT_EQ(s.load_serial(fresh, t_fresh), "fresh") << "after the cut-off: kept";
  EXPECT_EQ(s.load_serial(kRootOid, s.load(kRootOid)->serial), "root");
  EXPECT_TRUE(s.load(held)) << "held by a prepared transaction";
  // A live object keeps its newest revision before the cut-off and the later ones.
  fake_now = between2 + minutes(30);
  EXPECT_EQ(s.sweep(), 0u);
  EXPECT_EQ(s.load_serial(fresh, t_fresh), std::nullopt) << "no snapshot after the cut-off reads it";
  EXPECT_EQ(s.load_serial(fresh, t_fresh2), "fresh, again");
  EXPECT_EQ(s.load(fresh)->data, "fresh, third");
  s.abort(id);
  EXPECT_EQ(s.expire(system_clock::now() + hours(1)), 2u);
  EXPECT_TRUE(s.load(kRootOid)) << "the root never expires";
  std::size_t left = 0;
  s.for_each_object([&](Oid, Tid, std::string_view) { return ++left, true; });
  EXPECT_EQ(left, 1u);
  std::size_t transactions_with_objects = 0;
  s.iterate(kNoTid, kMaxTid, [&](const TransactionRecord& t) {
    transactions_with_objects += !t.objects.empty();
    return true;
  });
  EXPECT_EQ(transactions_with_objects, 0u) << "iteration forgets what the cut-off dropped";
}

TEST(MemoryStorage, TheBackgroundSweepRunsEveryInterval) {
  using namespace std::chrono;
  MemoryStorageOptions options;
  options.expiry = milliseconds(20);
  options.sweep_interval = milliseconds(5);
  MemoryStorage s(options);
  const Oid oid = s.new_oid();
  s.commit_one_phase(write_of(oid, kNoTid, "short-lived"));
  const auto deadline = steady_clock::now() + seconds(10);
  while (s.load(oid) && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(2));
  EXPECT_EQ(s.load(oid), std::nullopt);
  s.close();  // stops the sweeper
  MemoryStorageOptions bad;
  bad.sweep_interval = milliseconds(5);
  EXPECT_THROW(MemoryStorage{bad}, UsageError) << "an interval without an expiry";
}

}  // namespace
}  // namespace xact::objectstore
