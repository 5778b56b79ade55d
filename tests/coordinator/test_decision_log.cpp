// The decision log: open, replay, group commit from one thread, fail-stop, rotation, damaged
// files. Crashes at every step are in test_decision_log_crash.cpp, concurrency in
// test_decision_log_concurrency.cpp, the byte format in test_decision_log_format.cpp.
#include <xact/decision_log.hpp>

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>

#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/testing/temp_dir.hpp>

#include "test_decision_log_util.hpp"

namespace xact {
namespace {

using test::kLogDir;
using test::make_commit;
using test::unfinished_set;

class DecisionLogTest : public ::testing::Test {
 protected:
  std::unique_ptr<DecisionLog> open() { return DecisionLog::open(env_, kLogDir, options_); }

  test::CapturedLog captured_log_;
  io::FaultInjectionEnv env_;
  DecisionLogOptions options_ = test::small_options();
};

TEST_F(DecisionLogTest, NewLogCreatesItsDirectoryNodeIdAndFirstEpoch) {
  auto log = open();
  EXPECT_TRUE(log->open_report().created);
  EXPECT_EQ(log->epoch(), 1u);
  EXPECT_EQ(log->dir(), kLogDir);
  // The node id, then the epoch and the sequence of the newest segment written.
  EXPECT_EQ(env_.read_file("/log/node-id"), log->node_id().to_hex() + "\nepoch 1\nsegment 1\n");
  EXPECT_EQ(test::segment_files(env_, kLogDir).size(), 1u);
  EXPECT_TRUE(log->unfinished().empty());
}

TEST_F(DecisionLogTest, ReopenReplaysCommitsThatHaveNoDoneRecord) {
  std::vector<CommitRecord> committed;
  {
    auto log = open();
    for (int i = 0; i < 5; ++i) {
      committed.push_back(make_commit(*log, i + 1));
      log->log_commit(committed.back());
    }
  }
  auto log = open();
  EXPECT_FALSE(log->open_report().created);
  EXPECT_EQ(log->open_report().commits_replayed, 5u);
  EXPECT_EQ(log->unfinished(), committed);  // oldest first, every field
  for (const auto& r : committed) EXPECT_TRUE(log->is_committed(r.gtrid));
}

TEST_F(DecisionLogTest, DoneTransactionsAreForgottenAcrossReopen) {
  Gtrid kept;
  {
    auto log = open();
    const auto a = make_commit(*log);
    const auto b = make_commit(*log);
    log->log_commit(a);
    log->log_commit(b);
    log->log_done(a.gtrid);
    EXPECT_FALSE(log->is_committed(a.gtrid));
    kept = b.gtrid;
  }  // closing writes the pending done record
  auto log = open();
  EXPECT_EQ(unfinished_set(*log), std::set<Gtrid>{kept});
}

TEST_F(DecisionLogTest, LogDoneIsNotForced) {
  auto log = open();
  const auto r = make_commit(*log);
  log->log_commit(r);
  const auto syncs = env_.syncs();
  const auto writes = env_.writes();
  log->log_done(r.gtrid);
  EXPECT_EQ(env_.syncs(), syncs);
  EXPECT_EQ(env_.writes(), writes);
  EXPECT_EQ(log->stats().dones, 1u);
}

TEST_F(DecisionLogTest, DoneRecordsBecomeDurableWithTheNextForcedWrite) {
  auto log = open();
  const auto a = make_commit(*log);
  const auto b = make_commit(*log);
  log->log_commit(a);
  log->log_done(a.gtrid);
  log->log_commit(b);
  env_.crash();
  log.reset();
  log = open();
  EXPECT_EQ(unfinished_set(*log), std::set<Gtrid>{b.gtrid});
}

TEST_F(DecisionLogTest, LogDoneOfAnUnknownTransactionIsIgnored) {
  auto log = open();
  log->log_done(log->new_gtrid());
  log->log_done(Gtrid());
  EXPECT_EQ(log->stats().dones, 0u);
}

TEST_F(DecisionLogTest, ExactlyOneWriteAndOneSyncPerCommitFromOneThread) {
  auto log = open();
  for (int i = 0; i < 20; ++i) {
    const auto writes = env_.writes();
    const auto syncs = env_.syncs();
    const auto dir_syncs = env_.dir_syncs();
    log->log_commit(make_commit(*log));
    EXPECT_EQ(env_.writes() - writes, 1u);
    EXPECT_EQ(env_.syncs() - syncs, 1u);
    EXPECT_EQ(env_.dir_syncs() - dir_syncs, 0u);
  }
  const auto stats = log->stats();
  EXPECT_EQ(stats.commits, 20u);
  EXPECT_EQ(stats.forced_writes, 20u);
  EXPECT_EQ(stats.max_batch, 1u);
  EXPECT_EQ(stats.unfinished, 20u);
}

TEST_F(DecisionLogTest, NodeIdIsStableAcrossReopen) {
  NodeId first;
  {
    auto log = open();
    first = log->node_id();
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(open()->node_id(), first);
}

TEST_F(DecisionLogTest, EpochGrowsAtEveryOpenSoGtridsNeverRepeat) {
  std::set<Gtrid> seen;
  std::uint32_t last_epoch = 0;
  for (int run = 0; run < 4; ++run) {
    auto log = open();
    EXPECT_GT(log->epoch(), last_epoch);
    last_epoch = log->epoch();
    for (int i = 0; i < 10; ++i) {
      const Gtrid g = log->new_gtrid();
      EXPECT_EQ(g.node(), log->node_id());
      EXPECT_EQ(g.epoch(), log->epoch());
      EXPECT_TRUE(seen.insert(g).second);
    }
  }
}

TEST_F(DecisionLogTest, EpochGrowsEvenWhenTheProcessCrashedWithoutClosing) {
  auto log = open();
  const auto epoch = log->epoch();
  env_.crash();
  log.reset();
  EXPECT_GT(open()->epoch(), epoch);
}

TEST_F(DecisionLogTest, SecondOpenInTheSameProcessIsRefusedNamingTheHolder) {
  auto log = open();
  try {
    open();
    FAIL() << "second open succeeded";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'/log'"), std::string::npos) << what;
    EXPECT_NE(what.find("pid " + std::to_string(::getpid()) + " on host "), std::string::npos)
        << what;
  }
  log.reset();
  EXPECT_NO_THROW(open());  // released with the first owner
}

TEST(DecisionLogPosix, SecondProcessIsRefusedNamingTheHolder) {
  testing::TempDir dir;
  const std::string log_dir = io::join_path(dir.path(), "log");
  auto log = DecisionLog::open(io::Env::posix(), log_dir);
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child == 0) {
    int code = 1;
    try {
      DecisionLog::open(io::Env::posix(), log_dir);
      code = 2;  // should have been refused
    } catch (const StorageError& e) {
      const std::string what = e.what();
      if (what.find("pid " + std::to_string(parent) + " on host ") != std::string::npos &&
          what.find(log_dir) != std::string::npos) {
        code = 0;
      }
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: wrong message, 2: not refused, 3: other error";
}

TEST(DecisionLogPosix, LockFileThatCannotBeOpenedIsNotCalledInUse) {
  testing::TempDir dir;
  const std::string log_dir = io::join_path(dir.path(), "log");
  DecisionLog::open(io::Env::posix(), log_dir).reset();
  const std::string lock = io::join_path(log_dir, "LOCK");
  io::Env::posix().remove_file(lock);
  // Root ignores file permissions: a directory in the lock file's place fails the same way
  // a LOCK file this user may not open does.
  io::Env::posix().create_dir(lock);
  try {
    DecisionLog::open(io::Env::posix(), log_dir);
    FAIL() << "opened without its lock";
  } catch (const io::FileLockedError& e) {
    FAIL() << "a lock file that cannot be opened was reported as held: " << e.what();
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find("stop the other"), std::string::npos) << what;
    EXPECT_EQ(what.find("One process owns"), std::string::npos) << what;
    EXPECT_NE(what.find("cannot take its lock"), std::string::npos) << what;
    EXPECT_NE(what.find("Is a directory"), std::string::npos) << what;
    EXPECT_NE(what.find("may create and write files in '" + log_dir + "'"), std::string::npos)
        << what;
  }
}

TEST(DecisionLogPosix, CommitsSurviveReopenOnTheRealFileSystem) {
  testing::TempDir dir;
  const std::string log_dir = io::join_path(dir.path(), "nested-new-dir");
  std::vector<CommitRecord> committed;
  {
    auto log = DecisionLog::open(io::Env::posix(), log_dir);  // default options: 8 MiB, zeros
    for (int i = 0; i < 10; ++i) {
      committed.push_back(make_commit(*log));
      log->log_commit(committed.back());
    }
    for (int i = 0; i < 5; ++i) log->log_done(committed[i].gtrid);
    committed.erase(committed.begin(), committed.begin() + 5);
  }
  auto log = DecisionLog::open(io::Env::posix(), log_dir);
  EXPECT_EQ(log->unfinished(), committed);
  EXPECT_TRUE(log->open_report().scan.clean());
  EXPECT_EQ(log->open_report().scan.zero_tail_bytes > 0, true);
  EXPECT_EQ(io::Env::posix().file_size(
                io::join_path(log_dir, test::segment_files(io::Env::posix(), log_dir).at(0))),
            DecisionLogOptions{}.segment_bytes);
}

TEST_F(DecisionLogTest, CommitRecordNeedsAGtrid) {
  auto log = open();
  CommitRecord r;
  EXPECT_THROW(log->log_commit(r), UsageError);
  EXPECT_FALSE(log->stats().failed);
}

TEST_F(DecisionLogTest, ZeroTimeIsStampedWithTheEnvClock) {
  auto log = open();
  CommitRecord r = make_commit(*log);
  r.time_us = 0;
  const auto before = env_.now_micros();
  log->log_commit(r);
  const auto logged = log->unfinished().at(0).time_us;
  EXPECT_GE(logged, before);
  EXPECT_LE(logged, env_.now_micros());
}

TEST_F(DecisionLogTest, FailedSyncStopsTheLogForGood) {
  auto log = open();
  const auto before = make_commit(*log);
  log->log_commit(before);
  env_.fail_nth_sync(1);
  const auto failing = make_commit(*log);
  EXPECT_THROW(log->log_commit(failing), LogFailedError);
  try {
    log->log_commit(make_commit(*log));  // the disk works again, the log does not
    FAIL() << "commit accepted after a failed sync";
  } catch (const LogFailedError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("Restart the process"), std::string::npos) << what;
    EXPECT_NE(what.find("injected fault"), std::string::npos) << what;  // the cause
  }
  EXPECT_THROW(log->checkpoint(), LogFailedError);
  EXPECT_TRUE(log->stats().failed);
  EXPECT_FALSE(log->is_committed(failing.gtrid));
  log->log_done(before.gtrid);  // ignored, never throws
  EXPECT_TRUE(log->is_committed(before.gtrid));
  // A restart recovers: what was durable before the failure is there.
  env_.crash();
  log.reset();
  log = open();
  EXPECT_TRUE(log->is_committed(before.gtrid));
  EXPECT_FALSE(log->is_committed(failing.gtrid));
}

TEST_F(DecisionLogTest, FailedWriteStopsTheLogForGood) {
  auto log = open();
  env_.fail_nth_write(1, /*torn=*/true);
  EXPECT_THROW(log->log_commit(make_commit(*log)), LogFailedError);
  EXPECT_THROW(log->log_commit(make_commit(*log)), LogFailedError);
  log.reset();  // a restart without a power cut: the torn half is still in the file
  log = open();
  EXPECT_TRUE(log->unfinished().empty());
  EXPECT_GT(log->open_report().scan.cut_off_bytes, 0u);
}

TEST_F(DecisionLogTest, CheckpointForgetsDoneTransactionsAndKeepsUnfinishedOnes) {
  std::set<Gtrid> kept;
  {
    auto log = open();
    for (int i = 0; i < 10; ++i) {
      const auto r = make_commit(*log);
      log->log_commit(r);
      if (i % 2 == 0) {
        log->log_done(r.gtrid);
      } else {
        kept.insert(r.gtrid);
      }
    }
    const auto segments_before = test::segment_files(env_, kLogDir);
    log->checkpoint();
    const auto segments_after = test::segment_files(env_, kLogDir);
    ASSERT_EQ(segments_after.size(), 1u);
    EXPECT_NE(segments_after, segments_before);
    EXPECT_EQ(log->stats().checkpoints, 2u);  // open's and this one
    env_.crash();                             // nothing may depend on an unsynced step
  }
  auto log = open();
  EXPECT_EQ(unfinished_set(*log), kept);
  EXPECT_EQ(log->open_report().commits_replayed, 5u);  // the done ones are not even there
}

TEST_F(DecisionLogTest, FullSegmentRotatesOnItsOwnAndForgetsDoneTransactions) {
  options_.segment_bytes = 4096;
  std::set<Gtrid> kept;
  {
    auto log = open();
    for (int i = 0; i < 300; ++i) {
      const auto r = make_commit(*log);
      log->log_commit(r);
      if (i % 50 == 0) {
        kept.insert(r.gtrid);
      } else {
        log->log_done(r.gtrid);
      }
    }
    EXPECT_GT(log->stats().checkpoints, 5u);
    EXPECT_EQ(test::segment_files(env_, kLogDir).size(), 1u);
    EXPECT_EQ(env_.file_size(io::join_path(kLogDir, test::segment_files(env_, kLogDir)[0])), 4096u);
  }
  auto log = open();
  EXPECT_EQ(unfinished_set(*log), kept);
}

TEST_F(DecisionLogTest, SnapshotLargerThanASegmentGetsARoomierSegment) {
  options_.segment_bytes = 1024;
  auto log = open();
  for (int i = 0; i < 100; ++i) log->log_commit(make_commit(*log));  // never done
  // Without room to spare every commit would rotate; with it, rotations are rare.
  EXPECT_LT(log->stats().checkpoints, 15u);
  EXPECT_EQ(log->stats().unfinished, 100u);
}

TEST_F(DecisionLogTest, StaleTemporariesAndOldSegmentsAreRemovedAtOpen) {
  {
    auto log = open();
    log->log_commit(make_commit(*log));
  }
  env_.new_writable_file("/log/decisions-0000000000000099.log.tmp")->append("half a rotation");
  auto log = open();
  const auto& removed = log->open_report().removed;
  EXPECT_EQ(removed.size(), 2u);  // the temporary and the previous segment
  EXPECT_FALSE(env_.exists("/log/decisions-0000000000000099.log.tmp"));
  EXPECT_EQ(test::segment_files(env_, kLogDir).size(), 1u);
  EXPECT_EQ(log->unfinished().size(), 1u);
}

TEST_F(DecisionLogTest, LeftoverOfAnInterruptedNodeIdCreationIsReplaced) {
  env_.create_dir(kLogDir);
  env_.new_writable_file("/log/node-id.tmp")->append("0123");
  auto log = open();
  EXPECT_TRUE(log->open_report().created);
  EXPECT_FALSE(env_.exists("/log/node-id.tmp"));
  EXPECT_TRUE(env_.read_file("/log/node-id").starts_with(log->node_id().to_hex() + "\n"));
}

TEST_F(DecisionLogTest, MissingNodeIdNextToSegmentsIsRefused) {
  open();
  env_.remove_file("/log/node-id");
  try {
    open();
    FAIL() << "opened without its node id";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("node-id' is missing"), std::string::npos) << e.what();
  }
}

TEST_F(DecisionLogTest, MalformedNodeIdIsRefused) {
  open();
  env_.write_file("/log/node-id", "not a node id\n");
  EXPECT_THROW(open(), StorageError);
}

TEST_F(DecisionLogTest, SegmentOfAnotherNodeIsRefused) {
  open();
  env_.write_file("/log/node-id", NodeId::random().to_hex() + "\n");
  try {
    open();
    FAIL() << "opened another node's segment";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to node"), std::string::npos) << e.what();
  }
}

TEST_F(DecisionLogTest, StatsCountWhatWasWritten) {
  auto log = open();
  const auto at_open = log->stats();
  EXPECT_EQ(at_open.checkpoints, 1u);
  EXPECT_EQ(at_open.syncs, 3u);      // node id, first segment, node id naming that segment
  EXPECT_EQ(at_open.dir_syncs, 4u);  // parent (new dir), and after each of the three
  log->log_commit(make_commit(*log));
  const auto s = log->stats();
  EXPECT_EQ(s.syncs, at_open.syncs + 1);
  EXPECT_EQ(s.records, at_open.records + 1);
  EXPECT_GT(s.bytes, at_open.bytes);
  EXPECT_FALSE(s.failed);
}

// ---------------------------------------------------------------------------------------------
// Damaged files: every test builds a log, then reopens a damaged copy of its files.

class DamagedLogTest : public ::testing::TestWithParam<bool /*preallocate*/> {
 protected:
  void SetUp() override {
    io::MemEnv env;
    auto log = DecisionLog::open(env, kLogDir, test::small_options(GetParam()));
    for (int i = 0; i < 6; ++i) {
      commits_.push_back(make_commit(*log, 1 + i % 3));
      log->log_commit(commits_.back());  // one batch record each
    }
    log.reset();
    node_id_ = env.read_file("/log/node-id");
    segment_name_ = test::segment_files(env, kLogDir).at(0);
    segment_ = env.read_file(io::join_path(kLogDir, segment_name_));
    auto file = env.new_random_access_file(io::join_path(kLogDir, segment_name_));
    io::RecordReader reader(*file);
    while (auto r = reader.next()) records_.push_back(*r);
    ASSERT_EQ(records_.size(), 1 + commits_.size());  // header + one batch per commit
  }

  // A fresh Env holding the node id and `segment` as the log's files.
  std::unique_ptr<io::MemEnv> env_with(const std::string& segment) {
    auto env = std::make_unique<io::MemEnv>();
    env->create_dir(kLogDir);
    for (const auto& [name, contents] :
         {std::pair{std::string("node-id"), node_id_}, std::pair{segment_name_, segment}}) {
      env->new_writable_file(io::join_path(kLogDir, name));
      env->write_file(io::join_path(kLogDir, name), contents);
    }
    return env;
  }

  std::unique_ptr<DecisionLog> open(io::Env& env, bool tolerate = false) {
    auto options = test::small_options(GetParam());
    options.tolerate_corruption = tolerate;
    return DecisionLog::open(env, kLogDir, options);
  }

  // Commits whose batch record lies entirely in bytes that are still intact.
  std::set<Gtrid> intact_before(std::uint64_t cut, bool zero_filled) const {
    std::set<Gtrid> out;
    for (std::size_t i = 0; i < commits_.size(); ++i) {
      const auto& rec = records_[i + 1];
      // In zero-filled space, bytes past the cut that were zero anyway (the top bytes of a
      // trailing length) are intact.
      if (rec.end() <= cut || (zero_filled && segment_.find_first_not_of('\0', cut) >= rec.end())) {
        out.insert(commits_[i].gtrid);
      }
    }
    return out;
  }

  std::set<Gtrid> all_but(std::size_t hit) const {
    std::set<Gtrid> out;
    for (std::size_t i = 0; i < commits_.size(); ++i) {
      if (i != hit) out.insert(commits_[i].gtrid);
    }
    return out;
  }

  test::CapturedLog captured_log_;
  std::vector<CommitRecord> commits_;
  std::vector<io::Record> records_;
  std::string node_id_;
  std::string segment_name_;
  std::string segment_;
};

TEST_P(DamagedLogTest, TruncationAtEveryByteOfTheTailKeepsEveryCompleteRecord) {
  for (std::uint64_t cut = records_[3].offset; cut <= records_.back().end(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    // Preallocated: the write was cut off inside zero-filled space. Otherwise: a short file.
    const std::string damaged =
        GetParam() ? segment_.substr(0, cut) + std::string(segment_.size() - cut, '\0')
                   : segment_.substr(0, cut);
    auto env = env_with(damaged);
    const std::set<Gtrid> expected = intact_before(cut, /*zero_filled=*/GetParam());
    {
      auto log = open(*env);
      EXPECT_EQ(unfinished_set(*log), expected);
      const auto& scan = log->open_report().scan;
      EXPECT_TRUE(scan.corrupt.empty());
      EXPECT_EQ(scan.cut_off_bytes + scan.zero_tail_bytes + scan.end_of_data, damaged.size());
    }
    EXPECT_EQ(unfinished_set(*open(*env)), expected);  // and it stays that way
  }
}

TEST_P(DamagedLogTest, DamageInTheMiddleRefusesToOpenAndSaysWhere) {
  std::string damaged = segment_;
  damaged[records_[2].offset + 12] ^= 0x04;
  auto env = env_with(damaged);
  try {
    open(*env);
    FAIL() << "opened a damaged log";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("offset " + std::to_string(records_[2].offset)), std::string::npos) << what;
    EXPECT_NE(what.find("tolerate_corruption"), std::string::npos) << what;
  }
  // Refusing must not have touched the files.
  EXPECT_EQ(env->read_file(io::join_path(kLogDir, segment_name_)), damaged);
}

TEST_P(DamagedLogTest, ToleratedDamageDropsOnlyTheDamagedBatchAndReportsIt) {
  std::string damaged = segment_;
  damaged[records_[2].offset + 12] ^= 0x04;
  auto env = env_with(damaged);
  auto log = open(*env, /*tolerate=*/true);
  EXPECT_EQ(unfinished_set(*log), all_but(1));
  const auto& corrupt = log->open_report().scan.corrupt;
  ASSERT_EQ(corrupt.size(), 1u);
  EXPECT_EQ(corrupt[0].offset, records_[2].offset);
  EXPECT_EQ(corrupt[0].bytes, records_[2].end() - records_[2].offset);
  EXPECT_NE(log->open_report().describe().find("corrupt"), std::string::npos);
  const auto messages = captured_log_.messages();
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages.back().find("dropped " + std::to_string(corrupt[0].bytes) + " corrupt bytes"),
            std::string::npos)
      << messages.back();
}

TEST_P(DamagedLogTest, RandomBitFlipsNeverInventOrLoseMoreThanTheHitBatch) {
  std::mt19937 rng(GetParam() ? 11 : 12);
  const std::uint64_t first = records_[1].offset;
  const std::uint64_t end = records_.back().end();
  for (int round = 0; round < 150; ++round) {
    const std::uint64_t at = first + rng() % (end - first);
    SCOPED_TRACE("flip at byte " + std::to_string(at));
    std::string damaged = segment_;
    damaged[at] = static_cast<char>(damaged[at] ^ (1 << (rng() % 8)));
    std::size_t hit = 0;
    while (records_[hit + 1].end() <= at) ++hit;
    auto env = env_with(damaged);
    auto log = open(*env, /*tolerate=*/true);
    EXPECT_EQ(unfinished_set(*log), all_but(hit));
  }
}

TEST_P(DamagedLogTest, DamagedSegmentHeaderIsRefusedNamingTheOffsetAndReadPastWhenTolerating) {
  std::string damaged = segment_;
  damaged[10] ^= 0x01;
  auto env = env_with(damaged);
  try {
    open(*env);
    FAIL() << "opened a log with a damaged segment header";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(segment_name_), std::string::npos) << what;
    EXPECT_NE(what.find("at offset 0"), std::string::npos) << what;
    EXPECT_NE(what.find("tolerate_corruption"), std::string::npos) << what;
  }
  // The advice works: the node-id file knows the epoch, and every batch after the header is
  // read.
  auto log = open(*env, /*tolerate=*/true);
  EXPECT_EQ(unfinished_set(*log), all_but(commits_.size()));
  EXPECT_GT(log->epoch(), commits_[0].gtrid.epoch());
  ASSERT_EQ(log->damage().size(), 1u);
  EXPECT_NE(log->damage()[0].description.find("segment header"), std::string::npos);
}

TEST_P(DamagedLogTest, DamagedSegmentHeaderWithAnIdOnlyNodeIdFileDoesNotAdviseTolerating) {
  std::string damaged = segment_;
  damaged[10] ^= 0x01;
  auto env = env_with(damaged);
  // Written by format version 1: the node id alone, so the epoch is only in the header.
  env->write_file("/log/node-id", node_id_.substr(0, 33));
  for (const bool tolerate : {false, true}) {
    try {
      open(*env, tolerate);
      FAIL() << "opened a log whose epoch is unknown";
    } catch (const StorageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("not even with tolerate_corruption"), std::string::npos) << what;
      EXPECT_NE(what.find("restore the segment from a backup"), std::string::npos) << what;
    }
  }
}

TEST_P(DamagedLogTest, MissingSegmentIsRefusedAndToleratingKeepsTheEpochSoIdsNeverRepeat) {
  auto env = env_with(segment_);
  env->remove_file(io::join_path(kLogDir, segment_name_));
  try {
    open(*env);
    FAIL() << "a log whose segment is gone opened as an empty one";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(segment_name_ + "' is missing"), std::string::npos) << what;
    EXPECT_NE(what.find("Restore the file from a backup"), std::string::npos) << what;
    EXPECT_NE(what.find("tolerate_corruption"), std::string::npos) << what;
  }
  EXPECT_FALSE(env->exists(io::join_path(kLogDir, "decisions-0000000000000002.log")))
      << "refusing must not write";
  auto log = open(*env, /*tolerate=*/true);
  EXPECT_TRUE(log->unfinished().empty());
  EXPECT_GT(log->epoch(), commits_[0].gtrid.epoch()) << "the epoch must not restart";
  const Gtrid fresh = log->new_gtrid();
  for (const auto& c : commits_) EXPECT_NE(fresh, c.gtrid);
  ASSERT_EQ(log->damage().size(), 1u);
  EXPECT_EQ(log->damage()[0].up_to_epoch, commits_[0].gtrid.epoch());
  // The note is durable: the next open still has it, and the segment sequence went on.
  log.reset();
  auto again = open(*env);
  EXPECT_EQ(again->damage().size(), 1u);
  EXPECT_EQ(test::segment_files(*env, kLogDir).back(), "decisions-0000000000000003.log");
}

TEST_P(DamagedLogTest, ShortPreallocatedSegmentIsEvidenceOfDamage) {
  const std::uint64_t cut = records_[3].end();  // a record boundary
  auto env = env_with(segment_.substr(0, cut));
  if (!GetParam()) {
    // An appended segment has no size to compare with: a cut at a record boundary looks like
    // a clean end (the documented limit of appended segments).
    EXPECT_EQ(unfinished_set(*open(*env)), intact_before(cut, false));
    return;
  }
  try {
    open(*env);
    FAIL() << "a preallocated segment cut short opened clean";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(segment_name_), std::string::npos) << what;
    EXPECT_NE(what.find("cut at offset " + std::to_string(cut)), std::string::npos) << what;
    EXPECT_NE(what.find("Restore the file from a backup"), std::string::npos) << what;
  }
  auto log = open(*env, /*tolerate=*/true);
  EXPECT_EQ(unfinished_set(*log), intact_before(cut, false));
  EXPECT_EQ(log->damage().size(), 1u);
}

TEST_P(DamagedLogTest, ToleratedDamageIsRecordedDurablyNotDroppedSilently) {
  std::string damaged = segment_;
  damaged[records_[2].offset + 12] ^= 0x04;
  auto env = env_with(damaged);
  open(*env, /*tolerate=*/true).reset();
  auto log = open(*env);  // clean now: the damaged segment was replaced
  ASSERT_EQ(log->damage().size(), 1u);
  const LogDamage d = log->damage()[0];  // a copy: damage() returns a vector by value
  EXPECT_EQ(d.up_to_epoch, commits_[0].gtrid.epoch());
  EXPECT_NE(d.description.find("offset " + std::to_string(records_[2].offset)), std::string::npos)
      << d.description;
}

TEST_P(DamagedLogTest, ReadOnlyOpenWritesNothingEvenWhenTolerating) {
  std::string damaged = segment_;
  damaged[records_[2].offset + 12] ^= 0x04;
  auto env = env_with(damaged);
  auto options = test::small_options(GetParam());
  options.tolerate_corruption = true;
  options.read_only = true;
  {
    auto log = DecisionLog::open(*env, kLogDir, options);
    EXPECT_EQ(unfinished_set(*log), all_but(1));
    EXPECT_EQ(log->damage().size(), 1u) << "a dry run sees the damage it would record";
    EXPECT_EQ(log->epoch(), commits_[0].gtrid.epoch());
    EXPECT_THROW(log->log_commit(make_commit(*log)), UsageError);
    EXPECT_THROW(log->checkpoint(), UsageError);
    EXPECT_THROW(log->new_gtrid(), UsageError);
    log->log_done(commits_[0].gtrid);
  }
  EXPECT_EQ(env->list_dir(kLogDir), (std::vector<std::string>{"LOCK", segment_name_, "node-id"}));
  EXPECT_EQ(env->read_file(io::join_path(kLogDir, segment_name_)), damaged);
  EXPECT_EQ(env->read_file("/log/node-id"), node_id_);
}

INSTANTIATE_TEST_SUITE_P(Segments, DamagedLogTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Preallocated" : "Appended"; });

// ---------------------------------------------------------------------------------------------
// The damage matrix: every file of the log (the newest segment, the node-id file) truncated,
// zeroed, bit-flipped, deleted and replaced by an older copy. Each either opens with every
// commit record, or is refused by a message that names the file, the offset and the way out.

struct Damage {
  std::string file;  // "segment" or "node-id"
  std::string kind;  // truncate, zero, flip, delete, older
};
void PrintTo(const Damage& d, std::ostream* os) { *os << d.file << ' ' << d.kind; }

// Creates or replaces a file with `contents` (durable, as MemEnv::write_file).
void put(io::MemEnv& env, const std::string& path, std::string_view contents) {
  if (!env.exists(path)) env.new_writable_file(path);
  env.write_file(path, contents);
}

class DamageMatrixTest : public ::testing::TestWithParam<std::tuple<bool, Damage>> {
 protected:
  void SetUp() override {
    io::MemEnv env;
    auto options = test::small_options(std::get<0>(GetParam()));
    auto log = DecisionLog::open(env, kLogDir, options);
    for (int i = 0; i < 3; ++i) {
      commits_.push_back(make_commit(*log));
      log->log_commit(commits_.back());
    }
    old_segment_ = env.read_file(io::join_path(kLogDir, test::segment_files(env, kLogDir).back()));
    old_node_id_ = env.read_file("/log/node-id");
    log->checkpoint();  // segment 2 holds the three, then three more
    for (int i = 0; i < 3; ++i) {
      commits_.push_back(make_commit(*log));
      log->log_commit(commits_.back());
    }
    log.reset();
    segment_name_ = test::segment_files(env, kLogDir).back();
    segment_ = env.read_file(io::join_path(kLogDir, segment_name_));
    node_id_ = env.read_file("/log/node-id");
    auto file = env.new_random_access_file(io::join_path(kLogDir, segment_name_));
    io::RecordReader reader(*file);
    while (auto r = reader.next()) records_.push_back(*r);
  }

  test::CapturedLog captured_log_;
  std::vector<CommitRecord> commits_;
  std::vector<io::Record> records_;
  std::string old_segment_, old_node_id_, segment_name_, segment_, node_id_;
};

TEST_P(DamageMatrixTest, EveryCommitRecordIsPresentOrTheRefusalNamesFileOffsetAndWayOut) {
  const bool preallocated = std::get<0>(GetParam());
  const Damage& damage = std::get<1>(GetParam());
  const std::string segment_path = io::join_path(kLogDir, segment_name_);
  const std::string damaged_path = damage.file == "segment" ? segment_path : "/log/node-id";
  std::string contents = damage.file == "segment" ? segment_ : node_id_;
  // The middle of the segment (a batch record with valid ones after it), or of the node-id.
  const std::uint64_t middle = damage.file == "segment" ? records_[2].offset : contents.size() / 2;
  io::MemEnv env;
  env.create_dir(kLogDir);
  put(env, segment_path, segment_);
  put(env, "/log/node-id", node_id_);
  if (damage.kind == "truncate") {
    put(env, damaged_path, contents.substr(0, middle));
    if (damage.file == "segment" && !preallocated) {
      // The documented limit of appended segments (preallocation is the default): a cut at a
      // record boundary looks like a clean end. What opens holds real commit records only.
      auto log = DecisionLog::open(env, kLogDir, test::small_options(preallocated));
      std::set<Gtrid> all;
      for (const auto& c : commits_) all.insert(c.gtrid);
      for (const Gtrid& g : unfinished_set(*log)) EXPECT_EQ(all.count(g), 1u);
      return;
    }
  } else if (damage.kind == "zero") {
    const std::uint64_t n = damage.file == "segment" ? records_[2].end() - middle : contents.size();
    put(env, damaged_path,
        contents.replace(damage.file == "segment" ? middle : 0, n, std::string(n, '\0')));
  } else if (damage.kind == "flip") {
    contents[middle] ^= 0x02;
    put(env, damaged_path, contents);
  } else if (damage.kind == "delete") {
    env.remove_file(damaged_path);
  } else if (damage.kind == "older") {
    if (damage.file == "segment") {
      // The copy of segment 1 under its own name, and in place of segment 2.
      put(env, io::join_path(kLogDir, "decisions-0000000000000001.log"), old_segment_);
      env.remove_file(segment_path);
      std::set<Gtrid> expected;
      try {
        auto log = DecisionLog::open(env, kLogDir, test::small_options(preallocated));
        ADD_FAILURE() << "opened the older segment as the log";
      } catch (const StorageError& e) {
        EXPECT_NE(std::string(e.what()).find(segment_name_ + "' is missing"), std::string::npos)
            << e.what();
      }
      put(env, segment_path, old_segment_);
      env.remove_file(io::join_path(kLogDir, "decisions-0000000000000001.log"));
    } else {
      put(env, damaged_path, old_node_id_);
    }
  }
  const std::string before = env.exists(damaged_path) ? env.read_file(damaged_path) : "";
  try {
    auto log = DecisionLog::open(env, kLogDir, test::small_options(preallocated));
    std::set<Gtrid> all;
    for (const auto& c : commits_) all.insert(c.gtrid);
    EXPECT_EQ(unfinished_set(*log), all) << "opened, but without every commit record";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    SCOPED_TRACE(what);
    const std::string name = damaged_path.substr(damaged_path.rfind('/') + 1);
    EXPECT_NE(what.find(name), std::string::npos) << "names the file";
    EXPECT_NE(what.find("offset"), std::string::npos) << "names the offset";
    EXPECT_NE(what.find("estore"), std::string::npos) << "says the way out";
    EXPECT_EQ(env.exists(damaged_path) ? env.read_file(damaged_path) : "", before)
        << "refusing must not write";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, DamageMatrixTest,
    ::testing::Combine(::testing::Bool(),
                       ::testing::Values(Damage{"segment", "truncate"}, Damage{"segment", "zero"},
                                         Damage{"segment", "flip"}, Damage{"segment", "delete"},
                                         Damage{"segment", "older"}, Damage{"node-id", "truncate"},
                                         Damage{"node-id", "zero"}, Damage{"node-id", "flip"},
                                         Damage{"node-id", "delete"}, Damage{"node-id", "older"})),
    [](const auto& info) {
      std::string name = std::string(std::get<0>(info.param) ? "Preallocated" : "Appended") + "_" +
                         std::get<1>(info.param).file + "_" + std::get<1>(info.param).kind;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

}  // namespace
}  // namespace xact
