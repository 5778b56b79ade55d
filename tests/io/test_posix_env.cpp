// What only the real file system can show: locks between processes, system error texts.
// The Env contract itself is checked for PosixEnv in test_env.cpp.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/testing/temp_dir.hpp>

namespace xact::io {
namespace {

// A child process that takes the lock, reports through a pipe, and waits to be killed.
class LockingChild {
 public:
  explicit LockingChild(const std::string& path) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      char ok = 'n';
      try {
        auto lock = Env::posix().lock_file(path);
        ok = 'y';
        [[maybe_unused]] auto n = ::write(fds[1], &ok, 1);
        ::pause();
      } catch (...) {
      }
      [[maybe_unused]] auto n = ::write(fds[1], &ok, 1);
      ::_exit(0);
    }
    ::close(fds[1]);
    char ok = 0;
    locked_ = ::read(fds[0], &ok, 1) == 1 && ok == 'y';
    ::close(fds[0]);
  }
  ~LockingChild() { kill(); }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  bool locked() const { return locked_; }

 private:
  pid_t pid_ = -1;
  bool locked_ = false;
};

TEST(PosixEnv, LockHeldByAnotherProcessIsRefusedNamingThatProcess) {
  testing::TempDir dir;
  const std::string path = join_path(dir.path(), "LOCK");
  LockingChild child(path);
  ASSERT_TRUE(child.locked());
  try {
    Env::posix().lock_file(path);
    FAIL() << "lock granted while another process holds it";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(child.pid()) + " on host "),
              std::string::npos)
        << e.what();
  }
}

TEST(PosixEnv, HeldLockIsAFileLockedErrorAndAnyOtherFailureIsNot) {
  testing::TempDir dir;
  const std::string path = join_path(dir.path(), "LOCK");
  LockingChild child(path);
  ASSERT_TRUE(child.locked());
  EXPECT_THROW(Env::posix().lock_file(path), FileLockedError);
  // A lock file that cannot be opened (here a directory in its place; as another user, no
  // permission) is nobody's lock: a plain StorageError with the system's reason.
  const std::string blocked = join_path(dir.path(), "BLOCKED");
  Env::posix().create_dir(blocked);
  try {
    Env::posix().lock_file(blocked);
    FAIL() << "locked a directory";
  } catch (const FileLockedError& e) {
    FAIL() << "reported as held: " << e.what();
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("Is a directory"), std::string::npos) << e.what();
  }
}

TEST(PosixEnv, LockOfADeadProcessIsFree) {
  testing::TempDir dir;
  const std::string path = join_path(dir.path(), "LOCK");
  LockingChild child(path);
  ASSERT_TRUE(child.locked());
  child.kill();  // SIGKILL: no destructor ran, the kernel dropped the lock
  EXPECT_NO_THROW(Env::posix().lock_file(path));
}

TEST(PosixEnv, ErrorsCarryTheSystemReason) {
  testing::TempDir dir;
  const std::string file = join_path(dir.path(), "f");
  Env::posix().new_writable_file(file);
  try {
    Env::posix().create_dir(join_path(file, "sub"));
    FAIL() << "no exception";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("Not a directory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

TEST(PosixEnv, LockFileNamesTheHolderWhileHeld) {
  testing::TempDir dir;
  const std::string path = join_path(dir.path(), "LOCK");
  auto lock = Env::posix().lock_file(path);
  auto file = Env::posix().new_random_access_file(path);
  std::string text(200, '\0');
  text.resize(file->read(0, text));
  EXPECT_EQ(text, lock_holder_description() + "\n");
}

}  // namespace
}  // namespace xact::io
