// The Storage contract (<xact/objectstore/storage.hpp>), run against every storage:
// MemoryStorage and FileStorage (real files in a temporary directory).
#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/objectstore/storage.hpp>
#include <xact/testing/crash_harness.hpp>

namespace xact::objectstore {
namespace {

// An object record: type name, one integer, then a list of references.
std::string obj(std::string_view type, std::int64_t value, const std::vector<Oid>& refs = {}) {
  std::string out;
  encode_header(out, type, 1);
  StateWriter w(out);
  w.write(value);
  w.begin_list(refs.size());
  for (Oid r : refs) w.write_ref(r);
  return out;
}

std::int64_t value_of(std::string_view data) {
  const RecordHeader h = decode_header(data);
  StateReader r(data.substr(h.state_offset));
  return r.read_int();
}

CommitRequest request(std::vector<ObjectWrite> writes, std::vector<ReadCheck> checks = {}) {
  CommitRequest r;
  r.meta.user = "tester";
  r.meta.description = "test commit";
  r.writes = std::move(writes);
  r.read_checks = std::move(checks);
  return r;
}

Xid xid_for(const NodeId& node, std::uint64_t seq) {
  Xid x;
  x.gtrid = Gtrid(node, 1, seq);
  x.bqual = "objects:main";
  return x;
}

struct StorageFactory {
  std::string name;
  std::function<std::unique_ptr<Storage>(const std::string& dir)> make;
};

class StorageContract : public ::testing::TestWithParam<StorageFactory> {
 protected:
  void SetUp() override { storage_ = GetParam().make(dir_.path()); }
  void TearDown() override {
    if (storage_) storage_->close();
  }
  Tid put(Oid oid, std::int64_t value, Tid base, const std::vector<Oid>& refs = {}) {
    return storage_->commit_one_phase(request({{oid, base, obj("test.Thing", value, refs)}}));
  }

  testing::TempDir dir_;
  std::unique_ptr<Storage> storage_;
};

TEST_P(StorageContract, EmptyStorageHasNoTransactionAndNoObject) {
  EXPECT_EQ(storage_->last_transaction(), kNoTid);
  EXPECT_FALSE(storage_->load(kRootOid).has_value());
  int n = 0;
  storage_->for_each_object([&](Oid, Tid, std::string_view) { return ++n > 0; });
  EXPECT_EQ(n, 0);
}

TEST_P(StorageContract, OnePhaseCommitIsVisibleWithItsTidAsSerial) {
  const Tid tid = put(kRootOid, 7, kNoTid);
  EXPECT_NE(tid, kNoTid);
  EXPECT_EQ(storage_->last_transaction(), tid);
  auto rev = storage_->load(kRootOid);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev->serial, tid);
  EXPECT_EQ(value_of(rev->data), 7);
}

TEST_P(StorageContract, LoadAsOfReturnsTheNewestRevisionAtOrBeforeTheTid) {
  const Tid t1 = put(1, 10, kNoTid);
  const Tid t2 = put(1, 20, t1);
  const Tid t3 = put(2, 99, kNoTid);
  const Tid t4 = put(1, 30, t2);
  ASSERT_LT(t1, t2);
  ASSERT_LT(t2, t3);
  ASSERT_LT(t3, t4);
  EXPECT_FALSE(storage_->load(1, t1 - 1).has_value());
  EXPECT_EQ(value_of(storage_->load(1, t1)->data), 10);
  EXPECT_EQ(storage_->load(1, t2)->serial, t2);
  EXPECT_EQ(value_of(storage_->load(1, t3)->data), 20);
  EXPECT_EQ(value_of(storage_->load(1, t4)->data), 30);
  EXPECT_EQ(value_of(storage_->load(1)->data), 30);
  EXPECT_FALSE(storage_->load(2, t2).has_value());
}

TEST_P(StorageContract, LoadSerialFindsEveryRevisionAndNothingElse) {
  const Tid t1 = put(1, 10, kNoTid);
  const Tid t2 = put(1, 20, t1);
  const Tid t3 = put(1, 30, t2);
  EXPECT_EQ(value_of(*storage_->load_serial(1, t1)), 10);
  EXPECT_EQ(value_of(*storage_->load_serial(1, t2)), 20);
  EXPECT_EQ(value_of(*storage_->load_serial(1, t3)), 30);
  EXPECT_FALSE(storage_->load_serial(1, t2 + 1 == t3 ? t3 + 1 : t2 + 1).has_value());
  EXPECT_FALSE(storage_->load_serial(5, t1).has_value());
}

TEST_P(StorageContract, NewOidsAreUniqueAndNeverTheRoot) {
  std::vector<Oid> oids;
  for (int i = 0; i < 1000; ++i) oids.push_back(storage_->new_oid());
  std::sort(oids.begin(), oids.end());
  EXPECT_EQ(std::adjacent_find(oids.begin(), oids.end()), oids.end());
  EXPECT_NE(oids.front(), kRootOid);
}

TEST_P(StorageContract, NewOidIsAboveEveryCommittedOid) {
  put(500, 1, kNoTid);
  EXPECT_GT(storage_->new_oid(), 500u);
}

TEST_P(StorageContract, PreparedTransactionIsInvisibleUntilFinish) {
  const Tid t0 = put(1, 1, kNoTid);
  const auto id = storage_->prepare(request({{1, t0, obj("test.Thing", 2)}}));
  EXPECT_EQ(value_of(storage_->load(1)->data), 1);
  EXPECT_EQ(storage_->last_transaction(), t0);
  const Tid t1 = storage_->finish(id);
  EXPECT_GT(t1, t0);
  EXPECT_EQ(storage_->last_transaction(), t1);
  EXPECT_EQ(storage_->load(1)->serial, t1);
  EXPECT_EQ(value_of(storage_->load(1)->data), 2);
}

TEST_P(StorageContract, AbortDropsThePreparedTransactionAndReleasesItsLocks) {
  const Tid t0 = put(1, 1, kNoTid);
  const auto id = storage_->prepare(request({{1, t0, obj("test.Thing", 2)}}));
  storage_->abort(id);
  storage_->abort(id);  // idempotent
  EXPECT_EQ(value_of(storage_->load(1)->data), 1);
  EXPECT_EQ(storage_->last_transaction(), t0);
  EXPECT_NO_THROW(put(1, 3, t0));
}

TEST_P(StorageContract, WriteOnAStaleBaseRaisesConflictCarryingBothSerials) {
  const Tid t1 = put(1, 1, kNoTid);
  const Tid t2 = put(1, 2, t1);
  try {
    put(1, 3, t1);
    FAIL() << "expected a conflict";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.oid(), 1u);
    EXPECT_EQ(e.committed_serial(), t2);
    EXPECT_EQ(e.read_serial(), t1);
    EXPECT_EQ(e.type_name(), "test.Thing");
    EXPECT_FALSE(e.locked());
  }
  EXPECT_THROW(storage_->prepare(request({{1, t1, obj("test.Thing", 3)}})), ConflictError);
  EXPECT_EQ(value_of(storage_->load(1)->data), 2);
}

TEST_P(StorageContract, NewObjectWithABaseOrExistingObjectWithoutOneConflicts) {
  const Tid t1 = put(1, 1, kNoTid);
  EXPECT_THROW(put(1, 5, kNoTid), ConflictError);
  EXPECT_THROW(put(2, 5, t1), ConflictError);
}

TEST_P(StorageContract, ObjectLockedByAPreparedTransactionConflictsAtOnce) {
  const Tid t1 = put(1, 1, kNoTid);
  const auto id = storage_->prepare(request({{1, t1, obj("test.Thing", 2)}}));
  try {
    put(1, 3, t1);
    FAIL() << "expected a conflict";
  } catch (const ConflictError& e) {
    EXPECT_TRUE(e.locked());
    EXPECT_EQ(e.committed_serial(), kNoTid);
    EXPECT_EQ(e.read_serial(), t1);
  }
  EXPECT_THROW(storage_->prepare(request({{1, t1, obj("test.Thing", 3)}})), ConflictError);
  // A read check of a locked oid fails too.
  EXPECT_THROW(storage_->prepare(request({{2, kNoTid, obj("test.Thing", 1)}}, {{1, t1}})),
               ConflictError);
  storage_->finish(id);
}

TEST_P(StorageContract, ReadCheckOfAChangedObjectRaisesReadConflict) {
  const Tid t1 = put(1, 1, kNoTid);
  const Tid t2 = put(1, 2, t1);
  try {
    storage_->commit_one_phase(request({{2, kNoTid, obj("test.Thing", 1)}}, {{1, t1}}));
    FAIL() << "expected a read conflict";
  } catch (const ReadConflictError& e) {
    EXPECT_EQ(e.oid(), 1u);
    EXPECT_EQ(e.committed_serial(), t2);
    EXPECT_EQ(e.read_serial(), t1);
  }
  EXPECT_FALSE(storage_->load(2).has_value());
  EXPECT_NO_THROW(storage_->commit_one_phase(request({{2, kNoTid, obj("test.Thing", 1)}}, {{1, t2}})));
}

TEST_P(StorageContract, ReadCheckedObjectIsLockedUntilFinish) {
  const Tid t1 = put(1, 1, kNoTid);
  const auto id = storage_->prepare(request({{2, kNoTid, obj("test.Thing", 1)}}, {{1, t1}}));
  EXPECT_THROW(put(1, 2, t1), ConflictError);
  storage_->finish(id);
  EXPECT_NO_THROW(put(1, 2, t1));
}

TEST_P(StorageContract, FailedPrepareLocksAndWritesNothing) {
  const Tid t1 = put(1, 1, kNoTid);
  const Tid t2 = put(2, 1, kNoTid);
  // Object 1 is fine, object 2's base is stale: nothing of the request may stick.
  EXPECT_THROW(storage_->prepare(request({{1, t1, obj("test.Thing", 5)}, {2, t1, obj("test.Thing", 5)}})),
               ConflictError);
  EXPECT_NO_THROW(put(1, 2, t1));
  EXPECT_EQ(storage_->load(2)->serial, t2);
}

TEST_P(StorageContract, DisjointPreparedTransactionsCoexistAndFinishInAnyOrder) {
  const auto a = storage_->prepare(request({{1, kNoTid, obj("test.Thing", 1)}}));
  const auto b = storage_->prepare(request({{2, kNoTid, obj("test.Thing", 2)}}));
  // A prepared transaction waiting for its decision blocks no unrelated commit.
  const Tid tc = put(3, 3, kNoTid);
  const Tid tb = storage_->finish(b);
  const Tid ta = storage_->finish(a);
  EXPECT_LT(tc, tb);
  EXPECT_LT(tb, ta);  // tids follow commit order, not prepare order
  EXPECT_EQ(storage_->last_transaction(), ta);
  EXPECT_EQ(storage_->load(1)->serial, ta);
  EXPECT_EQ(storage_->load(2)->serial, tb);
}

TEST_P(StorageContract, FinishOfAnUnknownIdIsAUsageError) {
  EXPECT_THROW(storage_->finish(12345), UsageError);
  storage_->abort(12345);  // never throws
}

TEST_P(StorageContract, IterateYieldsCommittedTransactionsInTidOrderWithinBounds) {
  const Tid t1 = put(1, 1, kNoTid);
  const auto id = storage_->prepare(request({{2, kNoTid, obj("test.Thing", 2)}}));
  const Tid t2 = put(3, 3, kNoTid);
  const Tid t3 = storage_->finish(id);
  CommitRequest r = request({{1, t1, obj("test.Thing", 4)}, {4, kNoTid, obj("test.Thing", 5)}});
  r.meta.extension = {{"k", "v"}};
  const Tid t4 = storage_->commit_one_phase(r);
  std::vector<TransactionRecord> seen;
  storage_->iterate(kNoTid, kMaxTid, [&](const TransactionRecord& t) {
    seen.push_back(t);
    return true;
  });
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].tid, t1);
  EXPECT_EQ(seen[1].tid, t2);
  EXPECT_EQ(seen[2].tid, t3);
  EXPECT_EQ(seen[2].objects.at(0).first, 2u);
  EXPECT_EQ(seen[3].tid, t4);
  EXPECT_EQ(seen[3].meta.user, "tester");
  EXPECT_EQ(seen[3].meta.description, "test commit");
  ASSERT_EQ(seen[3].meta.extension.size(), 1u);
  EXPECT_EQ(seen[3].meta.extension[0].second, "v");
  ASSERT_EQ(seen[3].objects.size(), 2u);
  EXPECT_EQ(seen[3].objects[1].first, 4u);
  EXPECT_EQ(value_of(seen[3].objects[1].second), 5);

  std::vector<Tid> middle;
  storage_->iterate(t2, t3, [&](const TransactionRecord& t) {
    middle.push_back(t.tid);
    return true;
  });
  EXPECT_EQ(middle, (std::vector<Tid>{t2, t3}));
  int calls = 0;
  storage_->iterate(kNoTid, kMaxTid, [&](const TransactionRecord&) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
}

TEST_P(StorageContract, ForEachObjectVisitsEveryCurrentRevisionOnce) {
  const Tid t1 = put(1, 1, kNoTid);
  put(1, 2, t1);
  put(2, 3, kNoTid);
  std::map<Oid, std::int64_t> seen;
  storage_->for_each_object([&](Oid oid, Tid serial, std::string_view data) {
    EXPECT_EQ(serial, storage_->load(oid)->serial);
    seen[oid] = value_of(data);
    return true;
  });
  EXPECT_EQ(seen, (std::map<Oid, std::int64_t>{{1, 2}, {2, 3}}));
}

TEST_P(StorageContract, ListenerIsToldEveryCommitInTidOrder) {
  std::mutex m;
  std::vector<std::pair<Tid, std::vector<Oid>>> told;
  storage_->set_invalidation_listener([&](Tid tid, const std::vector<Oid>& oids) {
    std::lock_guard g(m);
    told.emplace_back(tid, oids);
  });
  const auto id = storage_->prepare(request({{5, kNoTid, obj("test.Thing", 1)}}));
  const Tid t1 = put(1, 1, kNoTid);
  const Tid t2 = storage_->finish(id);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 10; ++j) put(100 + static_cast<Oid>(i * 10 + j), j, kNoTid);
    });
  }
  for (auto& t : threads) t.join();
  // Read before taking m: the listener runs with the storage's lock held, so calling the
  // storage while holding m would invert the lock order.
  const Tid last = storage_->last_transaction();
  std::lock_guard g(m);
  ASSERT_EQ(told.size(), 42u);
  EXPECT_EQ(told[0], (std::pair<Tid, std::vector<Oid>>{t1, {1}}));
  EXPECT_EQ(told[1], (std::pair<Tid, std::vector<Oid>>{t2, {5}}));
  for (std::size_t i = 1; i < told.size(); ++i) EXPECT_LT(told[i - 1].first, told[i].first);
  EXPECT_EQ(told.back().first, last);
}

TEST_P(StorageContract, RecoverListsPreparedXidsOfTheNodeAndDecidesThem) {
  const NodeId mine = NodeId::random();
  const NodeId other = NodeId::random();
  CommitRequest a = request({{1, kNoTid, obj("test.Thing", 1)}});
  a.xid = xid_for(mine, 1);
  CommitRequest b = request({{2, kNoTid, obj("test.Thing", 2)}});
  b.xid = xid_for(mine, 2);
  CommitRequest c = request({{3, kNoTid, obj("test.Thing", 3)}});
  c.xid = xid_for(other, 1);
  storage_->prepare(a);
  storage_->prepare(b);
  storage_->prepare(c);
  auto listed = storage_->recover(mine);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, (std::vector<Xid>{a.xid, b.xid}));
  EXPECT_EQ(storage_->commit_prepared(a.xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(storage_->rollback_prepared(b.xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(storage_->commit_prepared(a.xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(storage_->rollback_prepared(b.xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(value_of(storage_->load(1)->data), 1);
  EXPECT_FALSE(storage_->load(2).has_value());
  EXPECT_TRUE(storage_->recover(mine).empty());
  EXPECT_EQ(storage_->recover(other), (std::vector<Xid>{c.xid}));
  EXPECT_NO_THROW(put(2, 5, kNoTid));
}

TEST_P(StorageContract, ConcurrentCommittersOnSharedObjectsLoseNoUpdate) {
  constexpr int kThreads = 6;
  constexpr int kIncrements = 40;
  put(1, 0, kNoTid);
  put(2, 0, kNoTid);
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int done = 0; done < kIncrements;) {
        const Oid oid = 1 + static_cast<Oid>((i + done) % 2);
        auto rev = storage_->load(oid);
        try {
          if ((i + done) % 3 == 0) {
            const auto id = storage_->prepare(
                request({{oid, rev->serial, obj("test.Thing", value_of(rev->data) + 1)}}));
            storage_->finish(id);
          } else {
            storage_->commit_one_phase(
                request({{oid, rev->serial, obj("test.Thing", value_of(rev->data) + 1)}}));
          }
          ++done;
        } catch (const ConflictError&) {
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(value_of(storage_->load(1)->data) + value_of(storage_->load(2)->data),
            kThreads * kIncrements);
  int transactions = 0;
  storage_->iterate(kNoTid, kMaxTid, [&](const TransactionRecord&) { return ++transactions > 0; });
  EXPECT_EQ(transactions, 2 + kThreads * kIncrements);
}

TEST_P(StorageContract, EveryCallAfterCloseIsAUsageError) {
  const Tid t1 = put(1, 1, kNoTid);
  storage_->close();
  storage_->close();  // idempotent
  EXPECT_THROW(storage_->last_transaction(), UsageError);
  EXPECT_THROW(storage_->load(1), UsageError);
  EXPECT_THROW(storage_->load_serial(1, t1), UsageError);
  EXPECT_THROW(storage_->new_oid(), UsageError);
  EXPECT_THROW(put(2, 1, kNoTid), UsageError);
  EXPECT_THROW(storage_->prepare(request({{2, kNoTid, obj("test.Thing", 1)}})), UsageError);
  EXPECT_THROW(storage_->iterate(kNoTid, kMaxTid, [](const TransactionRecord&) { return true; }),
               UsageError);
  EXPECT_THROW(storage_->for_each_object([](Oid, Tid, std::string_view) { return true; }),
               UsageError);
  EXPECT_THROW(storage_->recover(NodeId::random()), UsageError);
}

INSTANTIATE_TEST_SUITE_P(
    Storages, StorageContract,
    ::testing::Values(
        StorageFactory{"memory",
                       [](const std::string&) -> std::unique_ptr<Storage> {
                         return std::make_unique<MemoryStorage>();
                       }},
        StorageFactory{"file",
                       [](const std::string& dir) -> std::unique_ptr<Storage> {
                         FileStorageOptions o;
                         o.preallocate_bytes = 1u << 20;
                         return FileStorage::open(dir + "/data.xfs", o);
                       }}),
    [](const ::testing::TestParamInfo<StorageFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace xact::objectstore
