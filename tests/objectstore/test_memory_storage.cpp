// MemoryStorage (memory_storage.cpp): every revision kept in memory, readable as of any tid;
// prepared transactions listed for recovery while the storage object lives.
#include <xact/objectstore/memory_storage.hpp>

#include <string>
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

}  // namespace
}  // namespace xact::objectstore
