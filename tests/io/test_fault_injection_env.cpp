#include <xact/io/fault_injection_env.hpp>

#include <gtest/gtest.h>

#include <chrono>

#include <xact/errors.hpp>

namespace xact::io {
namespace {

class FaultInjectionEnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.create_dir("/d");
    env_.sync_dir("/");
  }

  // A file with `synced` durable and `unsynced` written after the last sync.
  void make_file(const std::string& path, const std::string& synced, const std::string& unsynced,
                 bool sync_dir) {
    auto file = env_.new_writable_file(path);
    file->append(synced);
    file->sync();
    file->append(unsynced);
    if (sync_dir) env_.sync_dir("/d");
  }

  FaultInjectionEnv env_;
};

TEST_F(FaultInjectionEnvTest, CrashDropsBytesThatWereNotSynced) {
  make_file("/d/f", "durable", " lost", /*sync_dir=*/true);
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), "durable");
}

TEST_F(FaultInjectionEnvTest, CrashDropsAnOverwriteThatWasNotSynced) {
  auto file = env_.new_writable_file("/d/f");
  file->append(std::string(8, '\0'));
  file->sync();
  env_.sync_dir("/d");
  file->write_at(2, "xy");
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), std::string(8, '\0'));
}

TEST_F(FaultInjectionEnvTest, CrashDropsANewFileWhoseDirectoryWasNotSynced) {
  make_file("/d/f", "synced data", "", /*sync_dir=*/false);
  env_.crash();
  EXPECT_FALSE(env_.exists("/d/f"));
}

TEST_F(FaultInjectionEnvTest, SyncedDirectoryKeepsTheNameButNotUnsyncedBytes) {
  auto file = env_.new_writable_file("/d/f");
  file->append("never synced");
  env_.sync_dir("/d");
  env_.crash();
  EXPECT_TRUE(env_.exists("/d/f"));
  EXPECT_EQ(env_.read_file("/d/f"), "");
}

TEST_F(FaultInjectionEnvTest, CrashUndoesARenameWhoseDirectoryWasNotSynced) {
  make_file("/d/tmp", "new", "", /*sync_dir=*/true);
  make_file("/d/final", "old", "", /*sync_dir=*/true);
  env_.rename_file("/d/tmp", "/d/final");
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/final"), "old");
  EXPECT_EQ(env_.read_file("/d/tmp"), "new");
}

TEST_F(FaultInjectionEnvTest, SyncedRenameSurvivesTheCrash) {
  make_file("/d/tmp", "new", "", /*sync_dir=*/true);
  make_file("/d/final", "old", "", /*sync_dir=*/true);
  env_.rename_file("/d/tmp", "/d/final");
  env_.sync_dir("/d");
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/final"), "new");
  EXPECT_FALSE(env_.exists("/d/tmp"));
}

TEST_F(FaultInjectionEnvTest, CrashUndoesARemoveWhoseDirectoryWasNotSynced) {
  make_file("/d/f", "data", "", /*sync_dir=*/true);
  env_.remove_file("/d/f");
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), "data");
  env_.remove_file("/d/f");
  env_.sync_dir("/d");
  env_.crash();
  EXPECT_FALSE(env_.exists("/d/f"));
}

TEST_F(FaultInjectionEnvTest, CrashDropsADirectoryWhoseParentWasNotSynced) {
  env_.create_dir("/d/sub");
  make_file("/d/sub/f", "x", "", /*sync_dir=*/false);
  env_.sync_dir("/d/sub");  // the file's name is durable in sub, but sub is not in d
  env_.crash();
  EXPECT_FALSE(env_.exists("/d/sub"));
}

TEST_F(FaultInjectionEnvTest, CrashUndoesATruncateThatWasNotSynced) {
  make_file("/d/f", "0123456789", "", /*sync_dir=*/true);
  env_.truncate_file("/d/f", 3);
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), "0123456789");
  env_.truncate_file("/d/f", 3);
  env_.new_appendable_file("/d/f")->sync();
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), "012");
}

TEST_F(FaultInjectionEnvTest, HandlesFromBeforeTheCrashAreDead) {
  auto file = env_.new_writable_file("/d/f");
  env_.sync_dir("/d");
  auto reader = env_.new_random_access_file("/d/f");
  env_.crash();
  EXPECT_THROW(file->append("x"), StorageError);
  EXPECT_THROW(file->sync(), StorageError);
  char c;
  EXPECT_THROW(reader->read(0, std::span<char>(&c, 1)), StorageError);
}

TEST_F(FaultInjectionEnvTest, CrashReleasesLocksAndOldLockObjectsStayHarmless) {
  auto old_lock = env_.lock_file("/d/LOCK");
  env_.crash();
  auto new_lock = env_.lock_file("/d/LOCK");
  old_lock.reset();  // must not release the new holder's lock
  EXPECT_THROW(env_.lock_file("/d/LOCK"), StorageError);
}

TEST_F(FaultInjectionEnvTest, NthWriteFailsOnce) {
  auto file = env_.new_writable_file("/d/f");
  env_.fail_nth_write(2);
  file->append("a");
  EXPECT_THROW(file->append("b"), StorageError);
  file->append("c");
  EXPECT_EQ(env_.read_file("/d/f"), "ac");
}

TEST_F(FaultInjectionEnvTest, TornWriteStoresTheFirstHalf) {
  auto file = env_.new_writable_file("/d/f");
  env_.fail_nth_write(1, /*torn=*/true);
  try {
    file->append("abcdef");
    FAIL() << "no exception";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("/d/f"), std::string::npos);
  }
  EXPECT_EQ(env_.read_file("/d/f"), "abc");
}

TEST_F(FaultInjectionEnvTest, FailedSyncMakesNothingDurable) {
  auto file = env_.new_writable_file("/d/f");
  env_.sync_dir("/d");
  file->append("data");
  env_.fail_nth_sync(1);
  EXPECT_THROW(file->sync(), StorageError);
  env_.crash();
  EXPECT_EQ(env_.read_file("/d/f"), "");
}

TEST_F(FaultInjectionEnvTest, FailedDirSyncMakesNoNameDurable) {
  make_file("/d/f", "x", "", /*sync_dir=*/false);
  env_.fail_nth_dir_sync(1);
  EXPECT_THROW(env_.sync_dir("/d"), StorageError);
  env_.crash();
  EXPECT_FALSE(env_.exists("/d/f"));
}

TEST_F(FaultInjectionEnvTest, HaltFailsEveryOperationAfterTheBudgetUntilTheCrash) {
  auto file = env_.new_writable_file("/d/f");
  env_.halt_after(2);
  file->append("1");
  file->sync();
  EXPECT_FALSE(env_.halted());
  EXPECT_THROW(file->append("2"), StorageError);
  EXPECT_TRUE(env_.halted());
  EXPECT_THROW(env_.sync_dir("/d"), StorageError);
  EXPECT_THROW(env_.new_writable_file("/d/g"), StorageError);
  env_.crash();
  EXPECT_FALSE(env_.halted());
  EXPECT_NO_THROW(env_.new_writable_file("/d/g"));
}

TEST_F(FaultInjectionEnvTest, CountsWritesSyncsAndDirectorySyncs) {
  const auto mutations = env_.mutations();
  auto file = env_.new_writable_file("/d/f");
  file->append("a");
  file->write_at(0, "b");
  file->sync();
  env_.sync_dir("/d");
  EXPECT_EQ(env_.writes(), 2u);
  EXPECT_EQ(env_.syncs(), 1u);
  EXPECT_EQ(env_.dir_syncs(), 2u);  // one in SetUp
  EXPECT_EQ(env_.mutations() - mutations, 5u);
}

TEST_F(FaultInjectionEnvTest, SyncDelayMakesSyncsTakeAtLeastThatLong) {
  auto file = env_.new_writable_file("/d/f");
  env_.set_sync_delay(std::chrono::milliseconds(20));
  const auto start = std::chrono::steady_clock::now();
  file->sync();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
}

}  // namespace
}  // namespace xact::io
