// The crash harness: run a piece of a test in a child process that is killed (SIGKILL) at a
// named crash point, or at a random instant, so that the parent can recover from what the child
// left on disk and check atomicity — the way xact proves that a crash at any step leaves every
// participant committed or rolled back together. Installed with xact::testing so users can
// prove the same for their own resource managers (see README, "Testing your resource manager").
//
//   auto run = xact::testing::run_in_child([&] { ...commit a transaction...; return 0; },
//                                          "coordinator.after_commit_record");
//   EXPECT_TRUE(run.killed);
//   ...open the log and the stores again, xact::Recovery::run(), check the oracle...
//
// The child is a fork() of the test process: it must only use state it creates itself (open
// files and logs in the child, not before the fork) and must not return into the test framework
// (the harness _exit()s with the function's result).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <xact/testing/temp_dir.hpp>  // TempDir, which the crash tests' worlds live in

namespace xact::testing {

struct ChildRun {
  bool killed = false;  ///< ended by SIGKILL (the crash point fired, or kill_after elapsed)
  int exit_code = -1;   ///< when it exited normally
  int signal = 0;       ///< the signal that ended it, if any
  std::string describe() const;
};

/// Forks; the child arms `crash_point` (hit number `hit`; empty = none) and runs `child`,
/// then _exit()s with its result (or 101 when it throws, printing what it threw).
ChildRun run_in_child(const std::function<int()>& child, const std::string& crash_point = {},
                      unsigned hit = 1);

/// Forks and runs `child`; the parent kills it with SIGKILL after `kill_after` (if it is still
/// running then).
ChildRun run_and_kill_after(const std::function<int()>& child,
                            std::chrono::microseconds kill_after);

/// Forks and runs `child(report_fd)`. The child reports once, by writing a byte to report_fd,
/// when it has reached the state worth killing in (say, its first acknowledged commit); the
/// parent waits for that report, however long a slow (sanitizer, loaded) child takes, then waits
/// `then` more and kills it with SIGKILL. A child that ends without reporting is not killed: the
/// result says how it ended. (Report once: the pipe is not drained, a full one blocks.)
ChildRun run_and_kill_after_report(const std::function<int(int report_fd)>& child,
                                   std::chrono::microseconds then);

}  // namespace xact::testing
