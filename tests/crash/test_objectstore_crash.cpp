// Crash recovery of the object store through the coordinator, proven by killing: a child
// process commits one transaction that changes objects in a FileStorage-backed DB and writes a
// durable kv store, and is SIGKILLed at a named crash point; the parent opens the decision log,
// the storage and the kv store again, runs recovery, and checks that both committed or
// neither did, that nothing is left prepared, and that the same objects commit again (no stale
// lock). Plus the object store alone, committing one-phase in a loop, killed at random instants:
// every acknowledged commit survives and the counter counts the commits.
//
// FileStorage defines no crash points of its own (none in resources/objectstore/src): the
// storage's side is covered by the coordinator's points around its prepare and finish, and by
// the random kills.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/recovery.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/kv_resource.hpp>

namespace xact {
namespace {

using objectstore::ConnectionOptions;
using objectstore::DB;
using objectstore::FileStorage;
using objectstore::PersistentMap;
using testing::KvOptions;
using testing::KvResource;
using testing::KvStore;
using testing::TempDir;

// The state every case starts from: a counter object (a map holding "n") under the root's
// "counter", at 0.
void create_objects(const std::string& path) {
  auto storage = std::shared_ptr<FileStorage>(FileStorage::open(path));
  {
    auto db = DB::open(storage);
    ExplicitTransactionManager tm;
    ConnectionOptions o;
    o.manager = &tm;
    auto conn = db->open(o);
    tm.begin();
    auto counter = std::make_shared<PersistentMap>();
    counter->set("n", 0);
    conn->root()->set("counter", counter);
    tm.commit();
  }
  storage->close();
}

// Everything a process opens, from the files in `dir`.
struct World {
  World(const TempDir& dir, bool kv_is_last_resource) {
    log = DecisionLog::open(io::Env::posix(), dir / "log");
    storage = std::shared_ptr<FileStorage>(FileStorage::open(dir / "data.xfs"));
    db = DB::open(storage);
    KvOptions o;
    o.last_resource = kv_is_last_resource;
    kv = std::make_shared<KvResource>("kv", KvStore::open_file(io::Env::posix(), dir / "kv.kv"), o);
  }
  ~World() {
    db.reset();
    storage->close();
  }

  // One transaction: the counter goes up by one, the root gets an entry, the kv store a key.
  void commit_change(const std::string& value) {
    ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
    ConnectionOptions o;
    o.manager = &tm;
    auto conn = db->open(o);
    auto& txn = tm.begin();
    auto counter = conn->root()->get<PersistentMap>("counter");
    counter->set("n", counter->at("n").as_int() + 1);
    conn->root()->set("entry", value);
    kv->put(txn, "k", value);
    tm.commit();
  }

  struct Seen {
    std::int64_t counter = -1;
    std::string entry;  // empty: none
  };
  Seen objects() {
    ExplicitTransactionManager tm;
    ConnectionOptions o;
    o.manager = &tm;
    auto conn = db->open(o);
    tm.begin();
    Seen seen;
    seen.counter = conn->root()->get<PersistentMap>("counter")->at("n").as_int();
    if (const auto* v = conn->root()->find("entry")) seen.entry = v->as_string();
    tm.abort();
    return seen;
  }

  std::shared_ptr<DecisionLog> log;
  std::shared_ptr<FileStorage> storage;
  std::shared_ptr<DB> db;
  std::shared_ptr<KvResource> kv;
};

struct CrashCase {
  const char* point;
  unsigned hit;
  bool kv_is_last_resource;
  enum Expect { rolled_back, committed, not_reached } expect;
};

std::string case_name(const ::testing::TestParamInfo<CrashCase>& info) {
  std::string n = std::string(info.param.kv_is_last_resource ? "last_" : "") + info.param.point +
                  "_" + std::to_string(info.param.hit);
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

class ObjectStoreCrashPoint : public ::testing::TestWithParam<CrashCase> {};

TEST_P(ObjectStoreCrashPoint, RecoveryCommitsObjectsAndKvTogetherOrNeitherAndLeavesNoLock) {
  const CrashCase c = GetParam();
  TempDir dir;
  create_objects(dir / "data.xfs");
  auto run = testing::run_in_child(
      [&] {
        World w(dir, c.kv_is_last_resource);
        w.commit_change("first");
        return 0;
      },
      c.point, c.hit);
  if (c.expect == CrashCase::not_reached) {
    ASSERT_EQ(run.exit_code, 0) << run.describe();
  } else {
    ASSERT_TRUE(run.killed) << "the crash point was not reached: " << run.describe();
  }

  // A fresh start: open everything from disk and recover.
  World w(dir, c.kv_is_last_resource);
  Recovery recovery(w.log);
  recovery.register_resource(w.db->recovery_target());
  recovery.register_resource(w.kv);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();

  const World::Seen seen = w.objects();
  const bool objects_committed = seen.counter == 1 && seen.entry == "first";
  const bool objects_untouched = seen.counter == 0 && seen.entry.empty();
  ASSERT_TRUE(objects_committed || objects_untouched)
      << "half a transaction in the object store: counter " << seen.counter << ", entry '"
      << seen.entry << "'";
  const bool kv_committed = w.kv->store()->get("k") == "first";
  ASSERT_EQ(objects_committed, kv_committed)
      << "atomicity violated: objects " << (objects_committed ? "committed" : "rolled back")
      << ", kv " << (kv_committed ? "committed" : "rolled back") << '\n'
      << report.describe();
  EXPECT_EQ(objects_committed, c.expect != CrashCase::rolled_back) << report.describe();
  EXPECT_TRUE(w.storage->recover(w.log->node_id()).empty()) << "the storage is still prepared";
  EXPECT_TRUE(w.kv->store()->prepared_gids().empty()) << "the kv store is still prepared";

  // Recovery is idempotent, and the same objects commit again: no stale lock.
  const RecoveryReport again = recovery.run();
  EXPECT_TRUE(again.actions.empty()) << again.describe();
  ASSERT_NO_THROW(w.commit_change("second"));
  const World::Seen after = w.objects();
  EXPECT_EQ(after.counter, seen.counter + 1);
  EXPECT_EQ(after.entry, "second");
  EXPECT_EQ(w.kv->store()->get("k"), "second");
}

constexpr auto RB = CrashCase::rolled_back;
constexpr auto CO = CrashCase::committed;
constexpr auto NR = CrashCase::not_reached;

// Participants in commit order: "kv" before "objects:main".
const CrashCase kTwoVoters[] = {
    {"coordinator.before_tpc_begin", 1, false, RB},
    {"coordinator.after_tpc_begin", 1, false, RB},
    {"coordinator.after_commit", 1, false, RB},
    {"kv.after_prepare", 1, false, RB},
    {"coordinator.after_vote", 1, false, RB},
    {"file_storage.after_write", 1, false, RB},  // prepared record written, not synced
    {"file_storage.after_sync", 1, false, RB},   // prepared record durable
    {"coordinator.after_vote", 2, false, RB},    // the object store voted yes (prepared)
    {"coordinator.before_commit_record", 1, false, RB},
    {"coordinator.after_commit_record", 1, false, CO},
    {"kv.after_commit_prepared", 1, false, CO},
    {"coordinator.after_finish", 1, false, CO},
    {"file_storage.after_write", 2, false, CO},  // commit mark written, not synced
    {"file_storage.after_sync", 2, false, CO},   // ... (marks are not synced: same point)
    {"coordinator.after_finish", 2, false, CO},  // the object store finished
    {"coordinator.after_done_record", 1, false, CO},
    {"coordinator.after_last_resource", 1, false, NR},
};

// The kv store as the last resource: the object store is the only voter and the kv store's
// one-phase commit carries the decision.
const CrashCase kKvAsLastResource[] = {
    {"coordinator.after_commit", 1, true, RB},         {"coordinator.after_vote", 1, true, RB},
    {"coordinator.before_commit_record", 1, true, RB}, {"kv.after_one_phase", 1, true, CO},
    {"coordinator.after_last_resource", 1, true, CO},  {"coordinator.after_finish", 1, true, CO},
    {"file_storage.after_write", 1, true, RB},         {"file_storage.after_sync", 1, true, RB},
    {"file_storage.after_write", 2, true, CO},         {"file_storage.after_sync", 2, true, CO},
};

INSTANTIATE_TEST_SUITE_P(TwoVoters, ObjectStoreCrashPoint, ::testing::ValuesIn(kTwoVoters),
                         case_name);
INSTANTIATE_TEST_SUITE_P(KvAsLastResource, ObjectStoreCrashPoint,
                         ::testing::ValuesIn(kKvAsLastResource), case_name);

TEST(ObjectStoreCrashPoints, EveryCoordinatorCrashPointIsKilledAtWithTheObjectStore) {
  std::vector<CrashCase> all(std::begin(kTwoVoters), std::end(kTwoVoters));
  all.insert(all.end(), std::begin(kKvAsLastResource), std::end(kKvAsLastResource));
  for (auto point : kCoordinatorCrashPoints) {
    const bool killed_there = std::any_of(all.begin(), all.end(), [&](const CrashCase& c) {
      return point == c.point && c.expect != CrashCase::not_reached;
    });
    EXPECT_TRUE(killed_there) << point << " has no crash case";
  }
}

// --- one participant, killed at random ----------------------------------------------------------

// The child appends each acknowledged count as 8 bytes. A write() reaches the kernel before
// the next commit starts, and a SIGKILL does not lose what the kernel holds, so no sync is
// needed (this test kills processes, not machines).
std::vector<std::int64_t> read_acks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::int64_t> acks;
  std::int64_t n = 0;
  while (in.read(reinterpret_cast<char*>(&n), sizeof n)) acks.push_back(n);
  return acks;
}

// The child: opens the storage and commits counter increments until it is killed (or, with
// `stop_after` > 0, exits after that many), appending each acknowledged count to `acks_path`.
// After the first acknowledged commit it writes a byte to `report_fd` (when >= 0): the parent
// kills it only after that.
int commit_in_a_loop(const std::string& data, const std::string& acks_path, std::int64_t stop_after,
                     int report_fd = -1) {
  const int acks = ::open(acks_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (acks < 0) return 3;
  auto storage = std::shared_ptr<FileStorage>(FileStorage::open(data));
  auto db = DB::open(storage);
  ExplicitTransactionManager tm;
  ConnectionOptions o;
  o.manager = &tm;
  auto conn = db->open(o);
  for (std::int64_t i = 0; stop_after == 0 || i < stop_after; ++i) {
    tm.begin();
    auto counter = conn->root()->get<PersistentMap>("counter");
    const std::int64_t next = counter->at("n").as_int() + 1;
    counter->set("n", next);
    tm.commit();  // the only participant: a one-phase commit, one durable write
    if (::write(acks, &next, sizeof next) != static_cast<ssize_t>(sizeof next)) return 4;
    if (report_fd >= 0 && i == 0 && ::write(report_fd, "c", 1) != 1) return 5;
  }
  return 0;
}

TEST(ObjectStoreRandomCrash, EveryAcknowledgedOnePhaseCommitSurvivesAndTheCounterCountsCommits) {
  // The kills fall at random while commits are running: after the child acknowledged its first
  // commit (however long a sanitizer build takes to get there), 0-200 ms later.
  std::mt19937 rng(20261123);
  std::int64_t acked_total = 0;
  for (int round = 0; round < 6; ++round) {
    TempDir dir;
    const std::string data = dir / "data.xfs";
    const std::string acks_path = dir / "acks";
    create_objects(data);
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<>(0, 200)(rng));
    auto run = testing::run_and_kill_after_report(
        [&](int report_fd) { return commit_in_a_loop(data, acks_path, 0, report_fd); }, delay);
    ASSERT_TRUE(run.killed) << "round " << round << ": " << run.describe();

    const std::vector<std::int64_t> acks = read_acks(acks_path);
    for (std::size_t i = 0; i < acks.size(); ++i) {
      ASSERT_EQ(acks[i], static_cast<std::int64_t>(i + 1)) << "round " << round;
    }
    const auto acked = static_cast<std::int64_t>(acks.size());
    EXPECT_GT(acked, 0) << "round " << round << ": the child reported a commit it did not ack";

    auto storage = std::shared_ptr<FileStorage>(FileStorage::open(data));
    // The committed transactions after the setup (root creation and counter creation).
    std::int64_t commits = -2;
    storage->iterate(objectstore::kNoTid, objectstore::kMaxTid,
                     [&](const objectstore::TransactionRecord&) {
                       ++commits;
                       return true;
                     });
    {
      auto db = DB::open(storage);
      ExplicitTransactionManager tm;
      ConnectionOptions o;
      o.manager = &tm;
      auto conn = db->open(o);
      tm.begin();
      auto counter = conn->root()->get<PersistentMap>("counter");
      const std::int64_t n = counter->at("n").as_int();
      EXPECT_GE(n, acked) << "round " << round << ": an acknowledged commit was lost";
      EXPECT_LE(n, acked + 1) << "round " << round << ": more commits than were attempted";
      EXPECT_EQ(n, commits) << "round " << round << ": the counter is not the number of commits";

      // The storage takes the next commit on the same object.
      counter->set("n", n + 1);
      ASSERT_NO_THROW(tm.commit());
      tm.begin();
      EXPECT_EQ(conn->root()->get<PersistentMap>("counter")->at("n").as_int(), n + 1);
      tm.abort();
    }
    storage->close();
    EXPECT_TRUE(FileStorage::verify(data).ok()) << FileStorage::verify(data).describe();
    acked_total += acked;
  }
  EXPECT_GT(acked_total, 0) << "no commit was acknowledged before the kills: the test proved "
                               "nothing";
}

}  // namespace
}  // namespace xact
