// The Env contract, run against every Env: PosixEnv (in a fresh temporary directory) and
// MemEnv. FaultInjectionEnv and the POSIX-only behaviour have their own test files.
#include <xact/io/env.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/testing/temp_dir.hpp>

namespace xact::io {
namespace {

// One Env under test plus a directory to work in.
struct Subject {
  virtual ~Subject() = default;
  virtual Env& env() = 0;
  virtual std::string root() = 0;
};

struct PosixSubject : Subject {
  testing::TempDir dir;
  Env& env() override { return Env::posix(); }
  std::string root() override { return dir.path(); }
};

struct MemSubject : Subject {
  MemEnv mem;
  MemSubject() { mem.create_dir("/root"); }
  Env& env() override { return mem; }
  std::string root() override { return "/root"; }
};

struct FaultInjectionSubject : Subject {
  FaultInjectionEnv fault;
  FaultInjectionSubject() { fault.create_dir("/root"); }
  Env& env() override { return fault; }
  std::string root() override { return "/root"; }
};

struct Factory {
  const char* name;
  std::function<std::unique_ptr<Subject>()> make;
};

class EnvConformance : public ::testing::TestWithParam<Factory> {
 protected:
  void SetUp() override { subject_ = GetParam().make(); }
  Env& env() { return subject_->env(); }
  std::string at(std::string_view name) { return join_path(subject_->root(), name); }

  std::string read_all(const std::string& path) {
    auto file = env().new_random_access_file(path);
    std::string out(file->size(), '\0');
    out.resize(file->read(0, out));
    return out;
  }

  std::unique_ptr<Subject> subject_;
};

TEST_P(EnvConformance, WrittenBytesReadBack) {
  auto file = env().new_writable_file(at("f"));
  file->append("hello ");
  file->append("world");
  file->sync();
  EXPECT_EQ(file->size(), 11u);
  file->close();
  EXPECT_EQ(read_all(at("f")), "hello world");
  EXPECT_EQ(env().file_size(at("f")), 11u);
}

TEST_P(EnvConformance, NewWritableFileTruncates) {
  env().new_writable_file(at("f"))->append("old contents");
  auto file = env().new_writable_file(at("f"));
  file->append("new");
  file->close();
  EXPECT_EQ(read_all(at("f")), "new");
}

TEST_P(EnvConformance, AppendableFileAppendsAfterExistingContents) {
  env().new_writable_file(at("f"))->append("abc");
  auto file = env().new_appendable_file(at("f"));
  EXPECT_EQ(file->size(), 3u);
  file->append("def");
  file->close();
  EXPECT_EQ(read_all(at("f")), "abcdef");
  auto fresh = env().new_appendable_file(at("g"));
  EXPECT_EQ(fresh->size(), 0u);
  EXPECT_TRUE(env().exists(at("g")));
}

TEST_P(EnvConformance, WriteAtOverwritesInPlace) {
  auto file = env().new_writable_file(at("f"));
  file->append(std::string(8, '\0'));
  file->write_at(2, "xy");
  EXPECT_EQ(file->size(), 8u);
  file->close();
  EXPECT_EQ(read_all(at("f")), std::string("\0\0xy\0\0\0\0", 8));
}

TEST_P(EnvConformance, WriteAtPastTheEndLeavesZerosInTheGap) {
  auto file = env().new_writable_file(at("f"));
  file->append("a");
  file->write_at(4, "b");
  EXPECT_EQ(file->size(), 5u);
  file->append("c");  // after the furthest byte written
  file->close();
  EXPECT_EQ(read_all(at("f")), std::string("a\0\0\0bc", 6));
}

TEST_P(EnvConformance, ReadsAtTheEndAreShort) {
  env().new_writable_file(at("f"))->append("0123456789");
  auto file = env().new_random_access_file(at("f"));
  char buf[8];
  EXPECT_EQ(file->read(6, buf), 4u);
  EXPECT_EQ(std::string(buf, 4), "6789");
  EXPECT_EQ(file->read(10, buf), 0u);
  EXPECT_EQ(file->read(100, buf), 0u);
}

TEST_P(EnvConformance, ReaderSeesBytesWrittenAfterItOpened) {
  auto writer = env().new_writable_file(at("f"));
  auto reader = env().new_random_access_file(at("f"));
  writer->append("later");
  writer->sync();
  EXPECT_EQ(reader->size(), 5u);
  char buf[5];
  EXPECT_EQ(reader->read(0, buf), 5u);
}

TEST_P(EnvConformance, TruncateCutsAndExtends) {
  env().new_writable_file(at("f"))->append("0123456789");
  env().truncate_file(at("f"), 4);
  EXPECT_EQ(read_all(at("f")), "0123");
  env().truncate_file(at("f"), 6);
  EXPECT_EQ(read_all(at("f")), std::string("0123\0\0", 6));
}

TEST_P(EnvConformance, RenameReplacesTheTarget) {
  env().new_writable_file(at("a"))->append("new");
  env().new_writable_file(at("b"))->append("old");
  env().rename_file(at("a"), at("b"));
  EXPECT_FALSE(env().exists(at("a")));
  EXPECT_EQ(read_all(at("b")), "new");
}

TEST_P(EnvConformance, RemovedFileIsGoneButOpenHandlesStillRead) {
  env().new_writable_file(at("f"))->append("data");
  auto reader = env().new_random_access_file(at("f"));
  env().remove_file(at("f"));
  EXPECT_FALSE(env().exists(at("f")));
  char buf[4];
  EXPECT_EQ(reader->read(0, buf), 4u);
  EXPECT_THROW(env().remove_file(at("f")), StorageError);
}

TEST_P(EnvConformance, DirectoriesAreCreatedListedSortedAndRemoved) {
  env().create_dir(at("d"));
  env().create_dir(at("d"));  // exists already: fine
  for (const char* name : {"c", "a", "b"}) env().new_writable_file(at("d/") + name);
  EXPECT_EQ(env().list_dir(at("d")), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_THROW(env().remove_dir(at("d")), StorageError);  // not empty
  for (const char* name : {"a", "b", "c"}) env().remove_file(at("d/") + name);
  EXPECT_TRUE(env().list_dir(at("d")).empty());
  env().remove_dir(at("d"));
  EXPECT_FALSE(env().exists(at("d")));
}

TEST_P(EnvConformance, CreateDirOverAFileFails) {
  env().new_writable_file(at("f"));
  EXPECT_THROW(env().create_dir(at("f")), StorageError);
}

TEST_P(EnvConformance, SyncsSucceed) {
  auto file = env().new_writable_file(at("f"));
  file->append("x");
  file->sync();
  env().sync_dir(subject_->root());
}

TEST_P(EnvConformance, ErrorsNameThePath) {
  const std::string missing = at("no-such-dir/file");
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { env().new_random_access_file(missing); },
           [&] { env().new_writable_file(missing); },
           [&] { env().file_size(missing); },
           [&] { env().remove_file(missing); },
           [&] { env().list_dir(missing); },
           [&] { env().sync_dir(missing); },
           [&] { env().rename_file(missing, at("x")); },
       }) {
    try {
      call();
      ADD_FAILURE() << "no exception";
    } catch (const StorageError& e) {
      EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(env().exists(missing));
}

TEST_P(EnvConformance, ClosedFileRefusesWrites) {
  auto file = env().new_writable_file(at("f"));
  file->close();
  file->close();  // idempotent
  EXPECT_THROW(file->append("x"), StorageError);
  EXPECT_THROW(file->sync(), StorageError);
}

TEST_P(EnvConformance, SecondLockIsRefusedNamingTheHolder) {
  auto lock = env().lock_file(at("LOCK"));
  try {
    env().lock_file(at("LOCK"));
    FAIL() << "second lock granted";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(at("LOCK")), std::string::npos) << what;
    EXPECT_NE(what.find("pid " + std::to_string(::getpid()) + " on host "), std::string::npos)
        << what;
  }
}

TEST_P(EnvConformance, LockIsReleasedWithItsObject) {
  env().lock_file(at("LOCK")).reset();
  auto again = env().lock_file(at("LOCK"));
  EXPECT_TRUE(again != nullptr);
}

TEST_P(EnvConformance, NowIsTheWallClock) {
  const auto system_now = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  EXPECT_LT(std::abs(env().now_micros() - system_now), 10'000'000);
}

TEST_P(EnvConformance, ThreadsMayUseTheEnvConcurrently) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string path = at("t" + std::to_string(t));
      auto file = env().new_writable_file(path);
      for (int i = 0; i < 100; ++i) file->append(std::string(10, static_cast<char>('a' + t)));
      file->sync();
      auto reader = env().new_random_access_file(path);
      EXPECT_EQ(reader->size(), 1000u);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(env().list_dir(subject_->root()).size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(
    Envs, EnvConformance,
    ::testing::Values(Factory{"Posix", [] { return std::make_unique<PosixSubject>(); }},
                      Factory{"Mem", [] { return std::make_unique<MemSubject>(); }},
                      Factory{"FaultInjection",
                              [] { return std::make_unique<FaultInjectionSubject>(); }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(EnvPaths, JoinAndParent) {
  EXPECT_EQ(join_path("a", "b"), "a/b");
  EXPECT_EQ(join_path("a/", "b"), "a/b");
  EXPECT_EQ(join_path("", "b"), "b");
  EXPECT_EQ(parent_dir("a/b"), "a");
  EXPECT_EQ(parent_dir("/a/b/"), "/a");
  EXPECT_EQ(parent_dir("/a"), "/");
  EXPECT_EQ(parent_dir("a"), ".");
}

TEST(EnvPaths, LockHolderNamesPidAndHost) {
  const std::string holder = lock_holder_description();
  EXPECT_EQ(holder.rfind("pid " + std::to_string(::getpid()) + " on host ", 0), 0u) << holder;
}

}  // namespace
}  // namespace xact::io
