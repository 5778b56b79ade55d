// Rule: transaction ids never repeat across fork(). A prefork server's workers are fork()
// children of one process; ids drawn after the fork must differ from the parent's (MariaDB
// refuses a second XA START of one xid with 1440; PostgreSQL a second PREPARE of one gid), and
// a child may not write the decision log its parent opened (one writer process per log).
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/testing/temp_dir.hpp>
#include <xact/transaction.hpp>

namespace xact {
namespace {

// Runs `child` in a fork()ed process and returns what it wrote to the pipe (at most 256 bytes)
// and its exit status.
template <typename F>
std::pair<std::string, int> in_child(F child) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string out = child();
    const auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(n == static_cast<ssize_t>(out.size()) ? 0 : 2);
  }
  ::close(fds[1]);
  std::string out;
  std::array<char, 256> buf{};
  for (ssize_t n; (n = ::read(fds[0], buf.data(), buf.size())) > 0;) out.append(buf.data(), n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST(Fork, IdsWithoutADecisionLogDifferInTheChild) {
  BasicTransactionManager tm(false);
  // The parent draws first, so the per-process state exists before the fork.
  const std::string parent_before = tm.begin().gtrid().to_hex();
  tm.abort();
  auto [child_id, code] = in_child([] {
    BasicTransactionManager child_tm(false);
    std::string id = child_tm.begin().gtrid().to_hex();
    child_tm.abort();
    return id;
  });
  ASSERT_EQ(code, 0);
  const std::string parent_after = tm.begin().gtrid().to_hex();
  tm.abort();
  EXPECT_NE(child_id, parent_before);
  EXPECT_NE(child_id, parent_after);
  // Node id (the first 16 bytes, 32 hex digits) differs too: the child is another node.
  EXPECT_NE(child_id.substr(0, 32), parent_after.substr(0, 32));
}

TEST(Fork, AChildMayNotWriteItsParentsDecisionLog) {
  testing::TempDir dir;
  auto log = DecisionLog::open(io::Env::posix(), dir.path() + "/log");
  const Gtrid mine = log->new_gtrid();
  log->release(mine);
  auto [message, code] = in_child([&] {
    try {
      (void)log->new_gtrid();
      return std::string("no error");
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
  });
  ASSERT_EQ(code, 0);
  EXPECT_NE(message.find("fork() child"), std::string::npos) << message;
  EXPECT_NE(message.find("Open the log after fork()"), std::string::npos) << message;
  // The parent keeps writing.
  const Gtrid next = log->new_gtrid();
  EXPECT_NE(next, mine);
  log->release(next);
}

}  // namespace
}  // namespace xact
