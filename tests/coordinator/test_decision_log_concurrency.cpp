// Group commit: concurrent committers share syncs, a failure wakes every waiter, and commits,
// done records and checkpoints may run at once (run under ThreadSanitizer too).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/testing/temp_dir.hpp>

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

// The rules that hold whatever the scheduler does: every commit is durable when it returns, and
// it costs at most one forced write (one sync) of its own. How many commits share a sync on a
// real disk is a figure for the benchmark (bench/decision_log_bench.cpp), not a test.
TEST(DecisionLogConcurrency, ForcedWritesNeverExceedCommits) {
  io::FaultInjectionEnv env;
  auto log = DecisionLog::open(env, kLogDir, test::small_options());
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
  EXPECT_LE(stats.forced_writes, commits);
  EXPECT_GE(stats.max_batch, 1u);
  for (const auto& gtrids : committed) {
    for (const auto& g : gtrids) EXPECT_TRUE(log->is_committed(g));
  }
}

// A FaultInjectionEnv whose file syncs wait, while held, until released: a sync as slow as the
// test needs, without guessing a duration.
class HeldSyncEnv : public io::FaultInjectionEnv {
 public:
  void hold() {
    std::lock_guard lock(mu_);
    held_ = true;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  void wait_for_a_held_sync() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }

 protected:
  Verdict before(Op op, const std::string& path, std::size_t bytes) override {
    if (op == Op::kSync) {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
      --waiting_;
    }
    return FaultInjectionEnv::before(op, path, bytes);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};

TEST(DecisionLogConcurrency, ConcurrentCommittersCanShareASlowSync) {
  HeldSyncEnv env;
  auto log = DecisionLog::open(env, kLogDir, test::small_options());
  const auto syncs_before = env.syncs();
  // The first committer's sync is held until every other committer is on its way into
  // log_commit; the later syncs are slow (as a disk's are) so that the ones still arriving
  // queue up behind them. They then share the next sync(s).
  env.hold();
  std::thread first([&] { log->log_commit(make_commit(*log)); });
  env.wait_for_a_held_sync();
  env.set_sync_delay(std::chrono::milliseconds(20));
  constexpr int kOthers = 8;
  std::atomic<int> started{0};
  std::vector<std::thread> others;
  for (int t = 0; t < kOthers; ++t) {
    others.emplace_back([&] {
      const auto r = make_commit(*log);
      ++started;
      log->log_commit(r);
      EXPECT_TRUE(log->is_committed(r.gtrid));
    });
  }
  while (started.load() < kOthers) std::this_thread::yield();
  env.release();
  first.join();
  for (auto& t : others) t.join();

  const auto stats = log->stats();
  EXPECT_EQ(stats.commits, kOthers + 1u);
  EXPECT_EQ(env.syncs() - syncs_before, stats.forced_writes);
  EXPECT_GT(stats.max_batch, 1u) << "no two committers shared a sync";
  EXPECT_LT(stats.forced_writes, stats.commits);
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
  testing::TempDir dir;
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
