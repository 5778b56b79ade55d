// Group commit: concurrent committers share syncs, a failure wakes every waiter, and commits,
// done records and checkpoints may run at once (run under ThreadSanitizer too).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>

#include "io/temp_dir.hpp"
#include "test_decision_log_util.hpp"

namespace xact {
namespace {

using test::kLogDir;
using test::make_commit;

template <typename F>
void run_threads(int n, F&& body) {
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back([&body, t] { body(t); });
  for (auto& t : threads) t.join();
}

TEST(DecisionLogConcurrency, ConcurrentCommittersShareSyncs) {
  io::FaultInjectionEnv env;
  auto log = DecisionLog::open(env, kLogDir, test::small_options());
  // A sync that takes as long as a disk's lets committers queue up behind it.
  env.set_sync_delay(std::chrono::milliseconds(2));
  const auto syncs_before = env.syncs();
  constexpr int kThreads = 16;
  constexpr int kPerThread = 8;
  std::vector<std::vector<Gtrid>> committed(kThreads);
  run_threads(kThreads, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      const auto r = make_commit(*log);
      log->log_commit(r);
      committed[t].push_back(r.gtrid);
    }
  });
  const auto stats = log->stats();
  const std::uint64_t commits = kThreads * kPerThread;
  EXPECT_EQ(stats.commits, commits);
  EXPECT_EQ(env.syncs() - syncs_before, stats.forced_writes);  // one sync per forced write
  EXPECT_LT(stats.forced_writes, commits / 4);
  EXPECT_GT(stats.max_batch, 1u);
  for (const auto& gtrids : committed) {
    for (const auto& g : gtrids) EXPECT_TRUE(log->is_committed(g));
  }
}

TEST(DecisionLogConcurrency, FailedSyncFailsEveryQueuedCommitterAndNoneHangs) {
  io::FaultInjectionEnv env;
  auto log = DecisionLog::open(env, kLogDir, test::small_options());
  env.set_sync_delay(std::chrono::milliseconds(5));
  env.fail_nth_sync(2);
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  run_threads(8, [&](int) {
    for (int i = 0; i < 4; ++i) {
      try {
        log->log_commit(make_commit(*log));
        ++ok;
      } catch (const LogFailedError&) {
        ++failed;
      }
    }
  });
  EXPECT_EQ(ok + failed, 32);
  EXPECT_GT(failed.load(), 0);
  EXPECT_EQ(log->stats().commits, static_cast<std::uint64_t>(ok.load()));
  EXPECT_THROW(log->log_commit(make_commit(*log)), LogFailedError);
}

TEST(DecisionLogConcurrency, CommitsDonesAndCheckpointsMayRunAtOnce) {
  io::FaultInjectionEnv env;
  auto options = test::small_options();
  options.segment_bytes = 2048;  // automatic rotations too
  auto log = DecisionLog::open(env, kLogDir, options);
  std::atomic<bool> stop{false};
  std::thread checkpointer([&] {
    while (!stop) {
      log->checkpoint();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  run_threads(6, [&](int) {
    for (int i = 0; i < 60; ++i) {
      const auto r = make_commit(*log);
      log->log_commit(r);
      EXPECT_TRUE(log->is_committed(r.gtrid));
      log->log_done(r.gtrid);
      (void)log->unfinished();
      (void)log->stats();
    }
  });
  stop = true;
  checkpointer.join();
  EXPECT_TRUE(log->unfinished().empty());
  EXPECT_EQ(log->stats().commits, 360u);
  log.reset();
  log = DecisionLog::open(env, kLogDir, options);
  EXPECT_TRUE(log->unfinished().empty());
}

TEST(DecisionLogConcurrency, ConcurrentCommittersOnTheRealFileSystem) {
  test::TempDir dir;
  auto log = DecisionLog::open(io::Env::posix(), io::join_path(dir.path(), "log"));
  run_threads(16, [&](int) {
    for (int i = 0; i < 20; ++i) {
      const auto r = make_commit(*log);
      log->log_commit(r);
      log->log_done(r.gtrid);
    }
  });
  const auto stats = log->stats();
  EXPECT_EQ(stats.commits, 320u);
  EXPECT_LE(stats.forced_writes, stats.commits);
  EXPECT_EQ(stats.unfinished, 0u);
}

}  // namespace
}  // namespace xact
