// FileStorage beyond the Storage contract: reopen, torn tails, damage, the index, the file
// lock, fail-stop, sync counts, recovery after a crash, pack, backup, verify and dump.
#include <xact/objectstore/file_storage.hpp>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <span>
#include <thread>

#include <gtest/gtest.h>
#include <boost/endian/conversion.hpp>

#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/testing/crash_harness.hpp>

namespace xact::objectstore {
namespace {

std::string obj(std::int64_t value, const std::vector<Oid>& refs = {}) {
  std::string out;
  encode_header(out, "test.Thing", 1);
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

CommitRequest request(std::vector<ObjectWrite> writes) {
  CommitRequest r;
  r.meta.user = "tester";
  r.writes = std::move(writes);
  return r;
}

Tid put(Storage& s, Oid oid, std::int64_t value, const std::vector<Oid>& refs = {}) {
  auto cur = s.load(oid);
  return s.commit_one_phase(request({{oid, cur ? cur->serial : kNoTid, obj(value, refs)}}));
}

// Every object's value, for comparing a storage before and after something.
std::map<Oid, std::pair<Tid, std::int64_t>> contents(const Storage& s) {
  std::map<Oid, std::pair<Tid, std::int64_t>> out;
  s.for_each_object([&](Oid oid, Tid serial, std::string_view data) {
    out[oid] = {serial, value_of(data)};
    return true;
  });
  return out;
}

FileStorageOptions mem_options(io::Env& env) {
  FileStorageOptions o;
  o.env = &env;
  o.preallocate_bytes = 0;
  return o;
}

const std::string kPath = "/db/data.xfs";

// A file with exactly these bytes, durable.
void put_file(io::Env& env, const std::string& path, std::string_view contents) {
  auto f = env.new_writable_file(path);
  f->append(contents);
  f->sync();
  f->close();
}

class FileStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.create_dir("/db");
    env_.sync_dir("/");
  }
  std::unique_ptr<FileStorage> open(FileStorageOptions o) { return FileStorage::open(kPath, o); }
  std::unique_ptr<FileStorage> open() { return open(mem_options(env_)); }
  io::FaultInjectionEnv env_;
};

TEST_F(FileStorageTest, ReopenKeepsObjectsHistoryTidsAndOids) {
  Tid t1, t2, last;
  Oid oid;
  std::map<Oid, std::pair<Tid, std::int64_t>> before;
  {
    auto s = open();
    t1 = put(*s, kRootOid, 1);
    t2 = put(*s, kRootOid, 2);
    oid = s->new_oid();
    put(*s, oid, 3);
    last = s->last_transaction();
    before = contents(*s);
  }
  auto s = open();
  EXPECT_EQ(s->last_transaction(), last);
  EXPECT_EQ(contents(*s), before);
  EXPECT_EQ(value_of(*s->load_serial(kRootOid, t1)), 1);
  EXPECT_EQ(s->load(kRootOid, t2)->serial, t2);
  EXPECT_GT(s->new_oid(), oid);
  EXPECT_GT(put(*s, kRootOid, 4), last);
}

TEST_F(FileStorageTest, CleanReopenUsesTheIndexAndScansOnlyTheTail) {
  {
    auto s = open();
    for (int i = 0; i < 50; ++i) put(*s, static_cast<Oid>(i), i);
  }
  auto s = open();
  EXPECT_TRUE(s->open_report().index_used) << s->open_report().describe();
  EXPECT_EQ(s->open_report().scanned_bytes, 0u);
  EXPECT_EQ(contents(*s).size(), 50u);
}

TEST_F(FileStorageTest, OlderIndexIsValidAndOnlyTheRecordsAfterItAreScanned) {
  std::string old_index;
  std::map<Oid, std::pair<Tid, std::int64_t>> before;
  {
    auto s = open();
    for (int i = 0; i < 10; ++i) put(*s, static_cast<Oid>(i), i);
    s->save_index();
    old_index = env_.read_file(kPath + ".index");
    for (int i = 0; i < 10; ++i) put(*s, static_cast<Oid>(i), 100 + i);
    before = contents(*s);
  }
  env_.write_file(kPath + ".index", old_index);
  auto s = open();
  EXPECT_TRUE(s->open_report().index_used);
  EXPECT_GT(s->open_report().scanned_bytes, 0u);
  EXPECT_EQ(contents(*s), before);
}

TEST_F(FileStorageTest, MissingDamagedOrForeignIndexIsRebuiltByAFullScan) {
  std::map<Oid, std::pair<Tid, std::int64_t>> before;
  {
    auto s = open();
    for (int i = 0; i < 10; ++i) put(*s, static_cast<Oid>(i), i);
    before = contents(*s);
  }
  const std::string good = env_.read_file(kPath + ".index");
  // Damaged.
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x10;
  env_.write_file(kPath + ".index", bad);
  {
    auto s = open();
    EXPECT_FALSE(s->open_report().index_used);
    EXPECT_NE(s->open_report().index_problem, "");
    EXPECT_EQ(contents(*s), before);
  }
  // Missing.
  env_.remove_file(kPath + ".index");
  {
    auto s = open();
    EXPECT_FALSE(s->open_report().index_used);
    EXPECT_EQ(s->open_report().index_problem, "no index file");
    EXPECT_EQ(contents(*s), before);
  }
  // Of another file (same path, a new file).
  env_.remove_file(kPath);
  env_.remove_file(kPath + ".index");
  { auto s = open(); }
  env_.write_file(kPath + ".index", good);
  auto s = open();
  EXPECT_FALSE(s->open_report().index_used);
  EXPECT_TRUE(contents(*s).empty());
}

// Builds a storage whose last transactions are known, then cuts the file at every byte of
// them: open keeps every complete transaction and moves the rest into a side file.
TEST_F(FileStorageTest, TruncationAtEveryByteOfTheLastTransactionsKeepsCompleteOnes) {
  std::vector<std::pair<std::uint64_t, std::map<Oid, std::pair<Tid, std::int64_t>>>> states;
  Storage::PreparedId id = 0;
  {
    FileStorageOptions o = mem_options(env_);
    o.use_index = false;
    auto s = open(o);
    for (int i = 0; i < 5; ++i) put(*s, static_cast<Oid>(i % 3), i);
    states.emplace_back(s->stats().end_of_data, contents(*s));
    put(*s, 1, 50);
    states.emplace_back(s->stats().end_of_data, contents(*s));
    id = s->prepare(request({{2, s->load(2)->serial, obj(60)}}));
    states.emplace_back(s->stats().end_of_data, contents(*s));
    s->finish(id);
    states.emplace_back(s->stats().end_of_data, contents(*s));
    put(*s, 7, 70);
    states.emplace_back(s->stats().end_of_data, contents(*s));
  }
  const std::string full = env_.read_file(kPath);
  ASSERT_EQ(full.size(), states.back().first);
  for (std::uint64_t cut = states.front().first; cut <= full.size(); ++cut) {
    io::MemEnv env;
    env.create_dir("/db");
    put_file(env, kPath, std::string_view(full).substr(0, cut));
    FileStorageOptions o = mem_options(env);
    auto s = FileStorage::open(kPath, o);
    // The newest state whose records all fit before the cut.
    const auto* expected = &states.front();
    for (const auto& st : states) {
      if (st.first <= cut) expected = &st;
    }
    ASSERT_EQ(contents(*s), expected->second) << "cut at " << cut;
    // The side file holds the cut-off bytes up to the last non-zero one (trailing zeros are
    // indistinguishable from preallocated space, so they are not data).
    std::string tail = full.substr(expected->first, cut - expected->first);
    while (!tail.empty() && tail.back() == '\0') tail.pop_back();
    EXPECT_EQ(s->open_report().cut_off_bytes, tail.size()) << "cut at " << cut;
    if (!tail.empty()) {
      ASSERT_FALSE(s->open_report().tail_file.empty());
      EXPECT_EQ(env.read_file(s->open_report().tail_file), tail) << "cut at " << cut;
    }
    // The prepared record alone (its mark cut off) is handed to recovery, and keeps its lock.
    const bool prepared_only = expected == &states[2];
    EXPECT_EQ(s->open_report().prepared, prepared_only ? 1u : 0u) << "cut at " << cut;
    if (prepared_only) {
      EXPECT_THROW(put(*s, 2, 99), InDoubtLockError);
    }
    // Writing goes on after the cut, and a second open is clean.
    put(*s, 9, 1);
    const auto after = contents(*s);
    s.reset();
    auto again = FileStorage::open(kPath, o);
    EXPECT_EQ(again->open_report().cut_off_bytes, 0u);
    EXPECT_EQ(contents(*again), after);
  }
}

TEST_F(FileStorageTest, RandomBitFlipsNeverCrashAndKeepWhatPrecedesTheDamage) {
  std::vector<std::pair<std::uint64_t, std::map<Oid, std::pair<Tid, std::int64_t>>>> states;
  {
    FileStorageOptions o = mem_options(env_);
    o.use_index = false;
    auto s = open(o);
    states.emplace_back(s->stats().end_of_data, contents(*s));
    for (int i = 0; i < 12; ++i) {
      put(*s, static_cast<Oid>(i % 4), i);
      states.emplace_back(s->stats().end_of_data, contents(*s));
    }
  }
  const std::string full = env_.read_file(kPath);
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    std::string damaged = full;
    const std::size_t at = rng() % damaged.size();
    damaged[at] = static_cast<char>(damaged[at] ^ (1 << (rng() % 8)));
    io::MemEnv env;
    env.create_dir("/db");
    put_file(env, kPath, damaged);
    FileStorageOptions o = mem_options(env);
    o.use_index = false;
    try {
      auto s = FileStorage::open(kPath, o);
      // Opened: every transaction that ends before the damaged byte is there.
      const auto* expected = &states.front();
      for (const auto& st : states) {
        if (st.first <= at) expected = &st;
      }
      const auto now = contents(*s);
      for (const auto& [oid, v] : expected->second) {
        if (now.contains(oid)) {
          EXPECT_GE(now.at(oid).first, v.first) << "flip at " << at;
        }
      }
      EXPECT_GE(s->last_transaction(),
                expected->second.empty()
                    ? kNoTid
                    : std::max_element(expected->second.begin(), expected->second.end(),
                                       [](const auto& a, const auto& b) {
                                         return a.second.first < b.second.first;
                                       })
                          ->second.first)
          << "flip at " << at;
    } catch (const StorageError& e) {
      EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
    }
  }
}

TEST_F(FileStorageTest, DamageFollowedByValidRecordsIsAnErrorNamingTheOffsetUnlessSalvaging) {
  std::uint64_t second = 0;
  {
    auto s = open();
    put(*s, 1, 1);
    second = s->stats().end_of_data;
    put(*s, 2, 2);
    put(*s, 3, 3);
  }
  env_.remove_file(kPath + ".index");
  std::string data = env_.read_file(kPath);
  data[second + 20] ^= 0x40;  // inside the second transaction
  env_.write_file(kPath, data);
  try {
    open();
    FAIL() << "expected a corruption error";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("offset " + std::to_string(second)), std::string::npos)
        << e.what();
  }
  FileStorageOptions o = mem_options(env_);
  o.salvage = true;
  o.read_only = true;
  auto s = open(o);
  EXPECT_EQ(s->open_report().salvaged.size(), 1u);
  EXPECT_TRUE(s->load(1));
  EXPECT_FALSE(s->load(2));
  EXPECT_TRUE(s->load(3));
}

TEST_F(FileStorageTest, ZeroedRangeFollowedByRecordsClaimingItDurableIsRefused) {
  // Zeros where fsynced, acknowledged commits were: the later records say the file was synced
  // beyond the zeros, so this is damage, not the end of data (which would drop them all).
  std::uint64_t first_end = 0;
  std::uint64_t second_end = 0;
  {
    auto s = open();
    put(*s, 1, 1);
    first_end = s->stats().end_of_data;
    put(*s, 2, std::int64_t{1} << 40);
    second_end = s->stats().end_of_data;
    put(*s, 3, 3);
  }
  env_.remove_file(kPath + ".index");
  std::string data = env_.read_file(kPath);
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(first_end),
            data.begin() + static_cast<std::ptrdiff_t>(second_end), '\0');
  env_.write_file(kPath, data);
  try {
    open();
    FAIL() << "expected the damage to be refused";
  } catch (const StorageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("offset " + std::to_string(first_end)), std::string::npos) << message;
    EXPECT_NE(message.find(kPath), std::string::npos) << message;
    EXPECT_NE(message.find("salvage"), std::string::npos) << message;
  }
  FileStorageOptions o = mem_options(env_);
  o.salvage = true;
  auto s = open(o);
  EXPECT_TRUE(s->load(1));
  EXPECT_FALSE(s->load(2));
  EXPECT_TRUE(s->load(3));
}

TEST(FileStorageLock, SecondOpenIsRefusedNamingTheHolderButReadOnlyOpensCoexist) {
  testing::TempDir dir;
  const std::string path = dir / "data.xfs";
  auto first = FileStorage::open(path);
  put(*first, 1, 1);
  try {
    FileStorage::open(path);
    FAIL() << "expected the lock to refuse a second open";
  } catch (const StorageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("pid " + std::to_string(::getpid())), std::string::npos) << message;
    EXPECT_NE(message.find("read-only"), std::string::npos) << message;
  }
  FileStorageOptions ro;
  ro.read_only = true;
  auto reader = FileStorage::open(path, ro);
  EXPECT_EQ(value_of(reader->load(1)->data), 1);
  EXPECT_THROW(put(*reader, 2, 2), UsageError);
  first->close();
  EXPECT_NO_THROW(FileStorage::open(path));
}

TEST_F(FileStorageTest, AFailedSyncMakesTheStorageFailStop) {
  auto s = open();
  put(*s, 1, 1);
  env_.fail_nth_sync(1);
  EXPECT_THROW(put(*s, 2, 2), StorageError);
  EXPECT_TRUE(s->stats().failed);
  // Every later write fails, even though the file system works again.
  EXPECT_THROW(put(*s, 3, 3), StorageError);
  EXPECT_THROW(s->prepare(request({{4, kNoTid, obj(4)}})), StorageError);
  // Reads go on, and nothing of the failed commit is visible.
  EXPECT_EQ(value_of(s->load(1)->data), 1);
  EXPECT_FALSE(s->load(2));
  s.reset();
  env_.crash();
  auto again = open();
  EXPECT_EQ(value_of(again->load(1)->data), 1);
  EXPECT_NO_THROW(put(*again, 3, 3));
}

TEST_F(FileStorageTest, OnePhaseCommitCostsOneWriteAndOneSync) {
  FileStorageOptions o = mem_options(env_);
  o.preallocate_bytes = 1u << 20;
  auto s = open(o);
  put(*s, 1, 1);  // the first commit may grow the file
  const auto writes = env_.writes();
  const auto syncs = env_.syncs();
  for (int i = 0; i < 20; ++i) put(*s, 1, i);
  EXPECT_EQ(env_.syncs() - syncs, 20u);
  EXPECT_EQ(env_.writes() - writes, 20u);
}

TEST_F(FileStorageTest, PrepareSyncsButFinishOfARecordedDecisionDoesNot) {
  auto s = open();
  const auto syncs = env_.syncs();
  const auto id = s->prepare(request({{1, kNoTid, obj(1)}}));
  EXPECT_EQ(env_.syncs() - syncs, 1u);
  s->finish(id, /*durable=*/false);
  EXPECT_EQ(env_.syncs() - syncs, 1u);
}

// Rule: a finish whose decision nothing else records (a sole voter) is durable when it returns;
// a crash right after it keeps the commit.
TEST_F(FileStorageTest, ADurableFinishSyncsItsCommitMarkAndSurvivesACrash) {
  {
    auto s = open();
    const auto id = s->prepare(request({{1, kNoTid, obj(1)}}));
    const auto syncs = env_.syncs();
    s->finish(id);  // durable by default
    EXPECT_EQ(env_.syncs() - syncs, 1u);
    s->set_invalidation_listener({});
    env_.crash();
  }
  auto s = open();
  EXPECT_EQ(s->open_report().prepared, 0u);
  EXPECT_EQ(value_of(s->load(1)->data), 1);
}

TEST_F(FileStorageTest, ConcurrentCommittersShareSyncs) {
  env_.set_sync_delay(std::chrono::milliseconds(2));
  auto s = open();
  constexpr int kThreads = 8;
  constexpr int kCommits = 15;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < kCommits; ++j) put(*s, static_cast<Oid>(100 + i), j);
    });
  }
  for (auto& t : threads) t.join();
  const auto st = s->stats();
  EXPECT_EQ(st.commits, static_cast<std::uint64_t>(kThreads * kCommits));
  EXPECT_LT(st.syncs, st.commits);
  EXPECT_GT(st.max_batch, 1u);
}

TEST_F(FileStorageTest, ACommitMarkLostInACrashLeavesThePreparedTransactionToRecovery) {
  const NodeId node = NodeId::random();
  Xid xid;
  xid.gtrid = Gtrid(node, 1, 7);
  xid.bqual = "objects";
  {
    auto s = open();
    put(*s, 1, 1);
    CommitRequest r = request({{1, s->load(1)->serial, obj(2)}, {2, kNoTid, obj(2)}});
    r.xid = xid;
    s->finish(s->prepare(r), /*durable=*/false);  // the decision is in a coordinator's log
    s->set_invalidation_listener({});
    // No close: the process dies; the unsynced commit mark is lost.
    env_.crash();
  }
  auto s = open();
  EXPECT_EQ(s->open_report().prepared, 1u);
  EXPECT_EQ(value_of(s->load(1)->data), 1);
  EXPECT_THROW(put(*s, 1, 5), InDoubtLockError);  // still locked, until recovery
  EXPECT_EQ(s->recover(node), std::vector<Xid>{xid});
  EXPECT_EQ(s->commit_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(value_of(s->load(1)->data), 2);
  EXPECT_EQ(value_of(s->load(2)->data), 2);
  // commit_prepared's mark is durable.
  env_.crash();
  auto again = open();
  EXPECT_EQ(again->open_report().prepared, 0u);
  EXPECT_EQ(value_of(again->load(1)->data), 2);
}

TEST_F(FileStorageTest, ALaterDurableCommitMakesAnEarlierCommitMarkDurable) {
  {
    auto s = open();
    const auto id = s->prepare(request({{1, kNoTid, obj(1)}}));
    s->finish(id, /*durable=*/false);
    put(*s, 2, 2);  // synced: covers the mark before it
    env_.crash();
  }
  auto s = open();
  EXPECT_EQ(s->open_report().prepared, 0u);
  EXPECT_EQ(value_of(s->load(1)->data), 1);
}

TEST_F(FileStorageTest, PreparedTransactionSurvivesReopenAndRollbackReleasesIt) {
  const NodeId node = NodeId::random();
  Xid xid;
  xid.gtrid = Gtrid(node, 1, 9);
  xid.bqual = "objects";
  {
    auto s = open();
    put(*s, 1, 1);
    CommitRequest r = request({{1, s->load(1)->serial, obj(2)}});
    r.xid = xid;
    s->prepare(r);
  }  // a clean close: the prepared transaction stays prepared (also through the index)
  auto s = open();
  EXPECT_TRUE(s->open_report().index_used);
  EXPECT_EQ(s->recover(node), std::vector<Xid>{xid});
  EXPECT_TRUE(s->recover(NodeId::random()).empty());
  EXPECT_THROW(put(*s, 1, 3), InDoubtLockError);
  EXPECT_EQ(s->rollback_prepared(xid), RecoverableResource::Outcome::done);
  EXPECT_EQ(s->rollback_prepared(xid), RecoverableResource::Outcome::unknown_id);
  EXPECT_EQ(value_of(s->load(1)->data), 1);
  EXPECT_NO_THROW(put(*s, 1, 3));
}

// --- pack ------------------------------------------------------------------------------------

TEST_F(FileStorageTest, PackDropsOldRevisionsAndUnreachableObjectsAndKeepsReferencesIntact) {
  auto s = open();
  const Tid r1 = put(*s, kRootOid, 1, {1});
  put(*s, 1, 10, {2});
  put(*s, 2, 20);
  put(*s, 3, 30);  // never reachable
  const Tid old2 = put(*s, 2, 21);
  const Tid pack_at = put(*s, 2, 22);
  const Tid after = put(*s, 1, 11, {2, 4});  // after the pack time: kept
  put(*s, 4, 40);
  const auto before = contents(*s);
  const auto report = s->pack(pack_at);
  EXPECT_EQ(report.objects_dropped, 1u);
  EXPECT_LT(report.new_bytes, report.old_bytes);
  auto now = contents(*s);
  auto expected = before;
  expected.erase(3);
  EXPECT_EQ(now, expected);
  EXPECT_FALSE(s->load_serial(2, old2));
  EXPECT_TRUE(s->load_serial(2, pack_at));
  EXPECT_TRUE(s->load_serial(kRootOid, r1));  // current as of the pack time
  EXPECT_EQ(value_of(s->load(1, pack_at)->data), 10);
  EXPECT_EQ(value_of(s->load(1, after)->data), 11);
  EXPECT_FALSE(s->load(3));
  // Writing goes on in the packed file, and it reopens (index and full scan alike).
  put(*s, 5, 50);
  expected = contents(*s);
  s.reset();
  EXPECT_TRUE(FileStorage::verify(kPath, &env_).ok())
      << FileStorage::verify(kPath, &env_).describe();
  EXPECT_TRUE(env_.exists(kPath + ".old"));
  {
    auto again = open();
    EXPECT_EQ(contents(*again), expected);
  }
  env_.remove_file(kPath + ".index");
  auto scanned = open();
  EXPECT_EQ(contents(*scanned), expected);
}

TEST_F(FileStorageTest, PackKeepsPreparedTransactionsWhichCanStillBeFinished) {
  auto s = open();
  put(*s, kRootOid, 1, {1});
  put(*s, 1, 1);
  put(*s, 1, 2);
  const auto id = s->prepare(request({{1, s->load(1)->serial, obj(3)}}));
  s->pack(s->last_transaction());
  EXPECT_THROW(put(*s, 1, 9), ConflictError);
  s->finish(id);
  EXPECT_EQ(value_of(s->load(1)->data), 3);
  const auto expected = contents(*s);
  s.reset();
  auto again = open();
  EXPECT_EQ(contents(*again), expected);
}

TEST_F(FileStorageTest, CommitsDuringAPackAreNotLost) {
  auto s = open();
  put(*s, kRootOid, 0, {1, 2, 3, 4});
  for (Oid o = 1; o <= 4; ++o) put(*s, o, 0);
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::thread writer([&] {
    for (int i = 1; !stop; ++i) {
      put(*s, 1 + static_cast<Oid>(i % 4), i);
      ++committed;
    }
  });
  for (int i = 0; i < 5; ++i) {
    const int seen = committed;
    while (committed < seen + 5) std::this_thread::yield();
    s->pack(s->last_transaction());
  }
  stop = true;
  writer.join();
  const auto expected = contents(*s);
  int total = 0;
  s->iterate(kNoTid, kMaxTid, [&](const TransactionRecord&) { return ++total > 0; });
  s.reset();
  auto again = open();
  EXPECT_EQ(contents(*again), expected);
  EXPECT_GT(committed.load(), 0);
}

TEST_F(FileStorageTest, PackInterruptedAtAnyStepLosesNothing) {
  bool completed = false;
  for (std::uint64_t k = 0; !completed && k < 200; ++k) {
    io::FaultInjectionEnv env;
    env.create_dir("/db");
    env.sync_dir("/");
    std::map<Oid, std::pair<Tid, std::int64_t>> expected;
    {
      auto s = FileStorage::open(kPath, mem_options(env));
      put(*s, kRootOid, 1, {1});
      put(*s, 1, 1);
      put(*s, 1, 2);
      put(*s, 2, 2);  // unreachable
      expected = contents(*s);
      env.halt_after(k);
      try {
        s->pack(s->last_transaction());
        completed = !env.halted();
      } catch (const StorageError&) {
      }
    }
    env.crash();
    auto s = FileStorage::open(kPath, mem_options(env));
    auto now = contents(*s);
    if (now.size() == 2) expected.erase(2);  // the pack got through
    EXPECT_EQ(now, expected) << "halted after " << k << " operations";
    EXPECT_NO_THROW(put(*s, 5, 5)) << "halted after " << k << " operations";
  }
  EXPECT_TRUE(completed);
}

TEST(FileStoragePackCrash, KilledBetweenTheRenamesOpensWithThePackedFile) {
  for (const char* point :
       {"file_storage.pack_before_rename", "file_storage.pack_between_renames"}) {
    testing::TempDir dir;
    const std::string path = dir / "data.xfs";
    {
      auto s = FileStorage::open(path);
      put(*s, kRootOid, 1, {1});
      put(*s, 1, 1);
      put(*s, 2, 2);
    }
    auto run = testing::run_in_child(
        [&] {
          auto s = FileStorage::open(path);
          s->pack(s->last_transaction());
          return 0;
        },
        point);
    EXPECT_TRUE(run.killed) << point << ": " << run.describe();
    auto s = FileStorage::open(path);
    EXPECT_EQ(value_of(s->load(1)->data), 1) << point;
    EXPECT_FALSE(s->open_report().repaired.empty()) << point;
    EXPECT_FALSE(std::filesystem::exists(path + ".pack")) << point;
  }
}

// --- backup, verify, dump --------------------------------------------------------------------

// A plain copy racing the writer may read a region before it is written and a later one after
// a synced write behind it: the later records then prove the hole was durable, so open refuses
// it (naming the salvage option). Either way it never shows a half-applied state.
TEST(FileStorageBackup, ACopyTakenWithPlainCopyDuringWritesOpensConsistentOrIsRefused) {
  testing::TempDir dir;
  const std::string path = dir / "data.xfs";
  auto s = FileStorage::open(path);
  put(*s, kRootOid, 0, {1, 2});
  put(*s, 1, 0);
  put(*s, 2, 0);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 1; !stop; ++i) {
      // Both objects always hold the same value: a copy must never show them apart.
      auto a = s->load(1);
      auto b = s->load(2);
      s->commit_one_phase(request({{1, a->serial, obj(i)}, {2, b->serial, obj(i)}}));
    }
  });
  for (int round = 0; round < 10; ++round) {
    const std::string copy = dir / ("copy" + std::to_string(round) + ".xfs");
    std::filesystem::copy_file(path, copy);
    for (bool read_only : {true, false}) {
      FileStorageOptions o;
      o.read_only = read_only;
      try {
        auto c = FileStorage::open(copy, o);
        EXPECT_EQ(value_of(c->load(1)->data), value_of(c->load(2)->data));
      } catch (const StorageError& e) {
        EXPECT_NE(std::string(e.what()).find("salvage"), std::string::npos) << e.what();
      }
    }
    const std::string online = dir / ("online" + std::to_string(round) + ".xfs");
    s->backup(online);
    auto b = FileStorage::open(online);
    EXPECT_EQ(b->open_report().cut_off_bytes, 0u);
    EXPECT_EQ(value_of(b->load(1)->data), value_of(b->load(2)->data));
  }
  stop = true;
  writer.join();
}

TEST_F(FileStorageTest, VerifyFindsACleanFileOkAndReportsADanglingReference) {
  {
    auto s = open();
    put(*s, kRootOid, 1, {1});
    put(*s, 1, 1);
    s->prepare(request({{5, kNoTid, obj(5)}}));
  }
  auto report = FileStorage::verify(kPath, &env_);
  EXPECT_TRUE(report.ok()) << report.describe();
  EXPECT_EQ(report.transactions, 2u);
  EXPECT_EQ(report.prepared, 1u);
  EXPECT_EQ(report.objects, 2u);
  {
    auto s = open();
    put(*s, 1, 2, {77});
  }
  report = FileStorage::verify(kPath, &env_);
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.describe().find("0x4d"), std::string::npos) << report.describe();
}

TEST_F(FileStorageTest, DumpShowsEveryRecordInFileOrder) {
  {
    auto s = open();
    put(*s, 1, 1);
    const auto id = s->prepare(request({{2, kNoTid, obj(2)}}));
    s->finish(id);
    s->abort(s->prepare(request({{3, kNoTid, obj(3)}})));
  }
  std::vector<FileRecordInfo::Kind> kinds;
  FileStorage::dump(
      kPath,
      [&](const FileRecordInfo& r) {
        kinds.push_back(r.kind);
        return true;
      },
      &env_);
  using K = FileRecordInfo::Kind;
  EXPECT_EQ(kinds, (std::vector<K>{K::header, K::committed, K::prepared, K::commit_mark,
                                   K::prepared, K::abort_mark}));
}

}  // namespace
}  // namespace xact::objectstore

namespace xact::objectstore {
namespace {

TEST(FileStorageOpen, OpenWithoutCreateOfAMissingFileLeavesNoLockFileBehind) {
  testing::TempDir dir;
  FileStorageOptions o;
  o.create = false;
  EXPECT_THROW(FileStorage::open(dir / "missing.xfs", o), StorageError);
  EXPECT_FALSE(std::filesystem::exists(dir / "missing.xfs.lock"));
}

// --- what proves a write durable (issue 13) ---------------------------------------------------

std::string refusal(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const StorageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a refusal";
  return {};
}

void zero(std::string& data, std::uint64_t from, std::uint64_t n) {
  std::fill(data.begin() + static_cast<std::ptrdiff_t>(from),
            data.begin() + static_cast<std::ptrdiff_t>(from + n), '\0');
}

TEST_F(FileStorageTest, DamageInTheLastUnsyncedWritesIsATornTailEvenWithValidRecordsAfterIt) {
  // Two commit marks, each its own batch, neither synced: a crash may keep the second and
  // lose the first (pages reach the disk in any order). Both claim only what was durable
  // before them, so the damage is the end of data, not corruption.
  std::uint64_t mark1 = 0;
  {
    auto s = open();
    put(*s, 1, 1);
    const auto p1 = s->prepare(request({{2, kNoTid, obj(2)}}));
    const auto p2 = s->prepare(request({{3, kNoTid, obj(3)}}));
    mark1 = s->stats().end_of_data;
    s->finish(p1, /*durable=*/false);
    s->finish(p2, /*durable=*/false);
  }
  std::string data = env_.read_file(kPath);
  zero(data, mark1, io::kRecordOverhead + 24);  // the first mark: durable end, offset, tid
  env_.write_file(kPath, data);
  env_.remove_file(kPath + ".index");
  auto s = open();
  EXPECT_EQ(s->open_report().prepared, 2u) << s->open_report().describe();
  EXPECT_GT(s->open_report().cut_off_bytes, 0u);
  EXPECT_EQ(value_of(s->load(1)->data), 1);
}

TEST_F(FileStorageTest, DamageBelowTheDurableEndALaterRecordClaimsIsRefusedNamingTheOffset) {
  // 200 synced one-phase commits, a 512-byte block zeroed early on, no index (as after any
  // crash): every later record says the file was synced past the block.
  std::uint64_t at = 0;
  {
    auto s = open();
    for (int i = 0; i < 200; ++i) {
      put(*s, static_cast<Oid>(i % 7), i);
      if (i == 30) at = s->stats().end_of_data;
    }
  }
  env_.remove_file(kPath + ".index");
  std::string data = env_.read_file(kPath);
  zero(data, at + 3, 512);
  env_.write_file(kPath, data);
  const std::string message = refusal([&] { open(); });
  EXPECT_NE(message.find(kPath), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(at)), std::string::npos) << message;
  EXPECT_NE(message.find("salvage"), std::string::npos) << message;
  // Read-only (as backup opens) refuses too, and nothing was moved aside.
  FileStorageOptions ro = mem_options(env_);
  ro.read_only = true;
  refusal([&] { open(ro); });
  EXPECT_EQ(env_.read_file(kPath), data);
}

TEST_F(FileStorageTest, AnIndexCoveringMoreThanTheFileHoldsIsRefusedNotRescanned) {
  std::uint64_t half = 0;
  {
    auto s = open();
    for (int i = 0; i < 20; ++i) {
      put(*s, static_cast<Oid>(i), i);
      if (i == 9) half = s->stats().end_of_data;
    }
  }
  // Truncated at a record boundary: without the index it would open as a clean, older file.
  env_.write_file(kPath, env_.read_file(kPath).substr(0, half));
  const std::string message = refusal([&] { open(); });
  EXPECT_NE(message.find(kPath + ".index"), std::string::npos) << message;
  EXPECT_NE(message.find("salvage"), std::string::npos) << message;
  FileStorageOptions o = mem_options(env_);
  o.use_index = false;  // evidence all the same
  refusal([&] { open(o); });
  o.salvage = true;
  auto s = open(o);
  EXPECT_EQ(contents(*s).size(), 10u);
}

TEST_F(FileStorageTest, ADamagedLastRecordTheIndexVouchesForIsRefusedNotDroppedAsTorn) {
  std::uint64_t last = 0;
  {
    auto s = open();
    for (int i = 0; i < 5; ++i) {
      last = s->stats().end_of_data;
      put(*s, static_cast<Oid>(i), i);
    }
  }
  std::string data = env_.read_file(kPath);
  data[last + 30] ^= 0x08;
  env_.write_file(kPath, data);
  const std::string message = refusal([&] { open(); });
  EXPECT_NE(message.find("is damaged at offset"), std::string::npos) << message;
}

TEST_F(FileStorageTest, TheIndexIsWrittenOnlyAfterTheDataItCoversIsSynced) {
  // SyncMode::none never syncs commits, but close syncs before writing the index: a crash
  // after it loses nothing the index covers.
  FileStorageOptions o = mem_options(env_);
  o.sync = SyncMode::none;
  {
    auto s = open(o);
    for (int i = 0; i < 5; ++i) put(*s, static_cast<Oid>(i), i);
  }
  env_.crash();
  auto s = open(o);
  EXPECT_EQ(contents(*s).size(), 5u) << s->open_report().describe();
}

TEST_F(FileStorageTest, ATruncatedPreallocatedFileIsRefusedEvenAtARecordBoundary) {
  FileStorageOptions o = mem_options(env_);
  o.preallocate_bytes = 64 * 1024;
  std::vector<std::uint64_t> ends;
  {
    auto s = open(o);
    for (int i = 0; i < 20; ++i) {
      put(*s, static_cast<Oid>(i), i);
      ends.push_back(s->stats().end_of_data);
    }
  }
  env_.remove_file(kPath + ".index");
  const std::string full = env_.read_file(kPath);
  ASSERT_EQ(full.size() % o.preallocate_bytes, 0u);
  for (std::uint64_t cut : {ends[10], ends[10] + 7, ends[19]}) {
    env_.write_file(kPath, full.substr(0, cut));
    const std::string message = refusal([&] { open(o); });
    EXPECT_NE(message.find("truncated"), std::string::npos) << cut << ": " << message;
  }
  env_.write_file(kPath, full);
  EXPECT_EQ(contents(*open(o)).size(), 20u);
}

// A chunk smaller than the header record (89 bytes): the new file is padded to a whole chunk
// too, or its size alone reads as a truncation at the next open (noticed while fuzzing).
TEST_F(FileStorageTest, ANewFileWithAChunkSmallerThanItsHeaderOpensAgain) {
  FileStorageOptions o = mem_options(env_);
  for (const std::uint64_t chunk : {7u, 50u}) {
    SCOPED_TRACE(chunk);
    for (const auto& f : {kPath, kPath + ".index"}) {
      if (env_.exists(f)) env_.remove_file(f);
    }
    o.preallocate_bytes = chunk;
    open(o)->close();
    EXPECT_EQ(env_.read_file(kPath).size() % chunk, 0u);
    env_.remove_file(kPath + ".index");
    {
      auto s = open(o);
      put(*s, 1, 1);
    }
    EXPECT_EQ(contents(*open(o)).size(), 1u);
  }
}

TEST_F(FileStorageTest, AFileMovedAwayAfterACompletedPackIsNotReplacedByItsOldCopy) {
  {
    auto s = open();
    put(*s, kRootOid, 1);
    put(*s, kRootOid, 2);
    s->pack(s->last_transaction());
  }
  env_.rename_file(kPath, "/db/elsewhere.xfs");
  env_.remove_file(kPath + ".index");
  const std::string message = refusal([&] { open(); });
  EXPECT_NE(message.find(kPath + ".old"), std::string::npos) << message;
  EXPECT_FALSE(env_.exists(kPath)) << "the old copy was put in place";
  // The index alone is evidence too: the data file is missing, not new.
  env_.rename_file("/db/elsewhere.xfs", kPath);
  { auto s = open(); }
  env_.remove_file(kPath + ".old");
  env_.rename_file(kPath, "/db/elsewhere.xfs");
  const std::string missing = refusal([&] { open(); });
  EXPECT_NE(missing.find(kPath + ".index"), std::string::npos) << missing;
  EXPECT_FALSE(env_.exists(kPath)) << "an empty storage was created";
}

TEST_F(FileStorageTest, AStrayPackFileBesideAnOldCopyIsNotTakenForAnInterruptedPack) {
  {
    auto s = open();
    put(*s, kRootOid, 1);
    s->pack(s->last_transaction());  // FILE.old: the file before this pack
  }
  // A FILE.pack that was not made from FILE.old (here: a copy of FILE.old itself).
  put_file(env_, kPath + ".pack", env_.read_file(kPath + ".old"));
  env_.rename_file(kPath, "/db/elsewhere.xfs");
  refusal([&] { open(); });
  EXPECT_FALSE(env_.exists(kPath));
}

TEST_F(FileStorageTest, TheHighestOidSurvivesPackAndALostIndex) {
  Oid high = 0;
  {
    auto s = open();
    put(*s, kRootOid, 1);
    for (int i = 0; i < 40; ++i) high = s->new_oid();
    put(*s, high, 2);  // unreachable from the root: pack drops it
    put(*s, kRootOid, 3);
    s->pack(s->last_transaction());
    EXPECT_FALSE(s->load(high));
  }
  env_.remove_file(kPath + ".index");
  auto s = open();
  EXPECT_GT(s->new_oid(), high);
}

// Re-frames the index header after `edit` changed its payload.
void edit_index_header(io::Env& env, const std::string& path,
                       const std::function<void(std::string&)>& edit) {
  const std::string ipath = path + ".index";
  std::string bytes;
  {
    auto f = env.new_random_access_file(ipath);
    bytes.resize(f->size());
    bytes.resize(f->read(0, bytes));
    auto first = io::read_record_at(*f, 0);
    ASSERT_TRUE(first);
    std::string payload = first->payload;
    edit(payload);
    bytes = io::encode_record(first->type, payload) + bytes.substr(first->end());
  }
  env.remove_file(ipath);
  put_file(env, ipath, bytes);
}

TEST_F(FileStorageTest, AnIndexClaimingMoreEntriesThanItsSizeIsNotUsedAndAllocatesNothing) {
  {
    auto s = open();
    for (int i = 0; i < 10; ++i) put(*s, static_cast<Oid>(i), i);
  }
  // "XACTOIDX", version, file id, covered end, crc, last tid, next oid: the count is at 56.
  edit_index_header(env_, kPath, [](std::string& p) {
    char b[8];
    boost::endian::store_little_u64(reinterpret_cast<unsigned char*>(b), std::uint64_t{1} << 40);
    p.replace(56, 8, b, 8);
  });
  auto s = open();  // used to escape as std::bad_alloc
  EXPECT_FALSE(s->open_report().index_used);
  EXPECT_NE(s->open_report().index_problem.find("entries"), std::string::npos)
      << s->open_report().index_problem;
  EXPECT_EQ(contents(*s).size(), 10u);
}

TEST_F(FileStorageTest, AFileOfFormatVersionOneIsRefusedSayingWhatToDo) {
  { auto s = open(); }
  std::string data = env_.read_file(kPath);
  auto f = env_.new_random_access_file(kPath);
  auto header = io::read_record_at(*f, 0);
  ASSERT_TRUE(header);
  std::string payload = header->payload;
  payload[8] = 1;  // the version field, after the magic
  data.replace(0, header->end(), io::encode_record(header->type, payload));
  env_.write_file(kPath, data);
  env_.remove_file(kPath + ".index");
  const std::string message = refusal([&] { open(); });
  EXPECT_NE(message.find("format version 1"), std::string::npos) << message;
  EXPECT_NE(message.find("copy its objects"), std::string::npos) << message;
}

// Counts the bytes a scan reads, to check it is linear in the file size (no clock involved).
class CountingFile : public io::RandomAccessFile {
 public:
  explicit CountingFile(std::string data) : data_(std::move(data)) {}
  std::size_t read(std::uint64_t offset, std::span<char> out) const override {
    if (offset >= data_.size()) return 0;
    const std::size_t n = std::min<std::size_t>(out.size(), data_.size() - offset);
    std::memcpy(out.data(), data_.data() + offset, n);
    bytes_read += n;
    return n;
  }
  std::uint64_t size() const override { return data_.size(); }
  const std::string& path() const override { return path_; }
  mutable std::uint64_t bytes_read = 0;

 private:
  std::string data_;
  std::string path_ = "counting";
};

TEST(FileStorageScan, ALongRunOfOneByteValueWithAFlipIsScannedInLinearTime) {
  // 0x01 everywhere looks like a record of 16 MiB at every offset (type 1, a length that
  // fits, a matching trailer): a resynchronising scan that checksums each would read 16 MiB
  // per byte of the file. One flipped byte makes the first offset fail.
  std::string data(20u << 20, '\x01');
  data[5] = '\x02';
  CountingFile file(data);
  io::RecordReader reader(file);
  while (reader.next()) {
  }
  EXPECT_TRUE(reader.report().resync_gave_up);
  ASSERT_EQ(reader.report().corrupt.size(), 1u);
  EXPECT_EQ(reader.report().corrupt[0].offset, 0u);
  EXPECT_LE(file.bytes_read, 8 * data.size() + (128u << 20)) << "not linear";
}

}  // namespace
}  // namespace xact::objectstore
