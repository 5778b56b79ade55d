// Crash safety of the decision log: a crash (FaultInjectionEnv::crash, which drops everything
// not synced) after every single file-system step of log_commit, checkpoint, open and a mixed
// workload. After each crash the log must reopen, keep every decision log_commit returned for,
// and hold no decision nobody asked for.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>

#include "test_decision_log_util.hpp"

namespace xact {
namespace {

using test::kLogDir;
using test::make_commit;
using test::unfinished_set;

bool includes(const std::set<Gtrid>& big, const std::set<Gtrid>& small) {
  return std::includes(big.begin(), big.end(), small.begin(), small.end());
}

class CrashTest : public ::testing::TestWithParam<bool /*preallocate*/> {
 protected:
  test::CapturedLog captured_log_;  // reopening after a torn write logs a warning

  DecisionLogOptions options() const { return test::small_options(GetParam()); }

  // Runs `setup` without faults, then `step` with the process "dying" after k file-system
  // operations, crashes, reopens and calls `check(reopened log, step returned)`; for
  // k = 0, 1, 2, ... until `step` completes without reaching the halt.
  void crash_after_every_step(
      const std::function<void(DecisionLog&)>& setup, const std::function<void(DecisionLog&)>& step,
      const std::function<void(DecisionLog&, io::Env&, bool returned)>& check) {
    for (std::uint64_t k = 0;; ++k) {
      SCOPED_TRACE("crash after " + std::to_string(k) + " file-system operations");
      io::FaultInjectionEnv env;
      auto log = DecisionLog::open(env, kLogDir, options());
      setup(*log);
      env.halt_after(k);
      bool returned = false;
      try {
        step(*log);
        returned = true;
      } catch (const StorageError&) {
      }
      const bool halted = env.halted();
      EXPECT_TRUE(returned || halted) << "failed without an injected fault";
      env.crash();
      log.reset();
      log = DecisionLog::open(env, kLogDir, options());
      check(*log, env, returned);
      if (!halted) break;
      ASSERT_LT(k, 10'000u) << "the step never completes";
    }
  }
};

TEST_P(CrashTest, CrashAfterEveryStepOfLogCommitNeverLosesOrInventsADecision) {
  Gtrid before;
  Gtrid during;
  crash_after_every_step(
      [&](DecisionLog& log) {
        const auto r = make_commit(log);
        log.log_commit(r);
        before = r.gtrid;
      },
      [&](DecisionLog& log) {
        const auto r = make_commit(log);
        during = r.gtrid;
        log.log_commit(r);
      },
      [&](DecisionLog& log, io::Env&, bool returned) {
        const auto got = unfinished_set(log);
        EXPECT_TRUE(got.contains(before));
        if (returned) {
          EXPECT_TRUE(got.contains(during));
        }
        EXPECT_TRUE(includes({before, during}, got));
      });
}

TEST_P(CrashTest, TornCommitWriteIsDroppedOnReopen) {
  io::FaultInjectionEnv env;
  auto log = DecisionLog::open(env, kLogDir, options());
  const auto kept = make_commit(*log);
  log->log_commit(kept);
  env.fail_nth_write(1, /*torn=*/true);
  EXPECT_THROW(log->log_commit(make_commit(*log)), LogFailedError);
  env.crash();
  log.reset();
  log = DecisionLog::open(env, kLogDir, options());
  EXPECT_EQ(unfinished_set(*log), std::set<Gtrid>{kept.gtrid});
  EXPECT_TRUE(log->open_report().scan.corrupt.empty());
}

TEST_P(CrashTest, CrashAfterEveryStepOfCheckpointKeepsUnfinishedAndForgetsDone) {
  std::set<Gtrid> unfinished;
  std::set<Gtrid> done;
  crash_after_every_step(
      [&](DecisionLog& log) {
        unfinished.clear();
        done.clear();
        for (int i = 0; i < 6; ++i) {
          const auto r = make_commit(log);
          log.log_commit(r);
          if (i % 3 == 0) {
            log.log_done(r.gtrid);
            done.insert(r.gtrid);
          } else {
            unfinished.insert(r.gtrid);
          }
        }
      },
      [&](DecisionLog& log) { log.checkpoint(); },
      [&](DecisionLog& log, io::Env& env, bool returned) {
        const auto got = unfinished_set(log);
        EXPECT_TRUE(includes(got, unfinished));
        std::set<Gtrid> all = unfinished;
        all.insert(done.begin(), done.end());
        EXPECT_TRUE(includes(all, got));  // a lost done record only means a re-drive
        if (returned) {
          EXPECT_EQ(got, unfinished);
        }
        EXPECT_EQ(test::segment_files(env, kLogDir).size(), 1u);
      });
}

TEST_P(CrashTest, CrashAfterEveryStepOfCreatingALogLeavesAnOpenableDirectory) {
  for (std::uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash after " + std::to_string(k) + " file-system operations");
    io::FaultInjectionEnv env;
    env.halt_after(k);
    bool returned = false;
    NodeId node;
    std::uint32_t epoch = 0;
    try {
      auto log = DecisionLog::open(env, kLogDir, options());
      node = log->node_id();
      epoch = log->epoch();
      returned = true;
    } catch (const StorageError&) {
    }
    const bool halted = env.halted();
    env.crash();
    auto log = DecisionLog::open(env, kLogDir, options());
    if (returned) {
      EXPECT_EQ(log->node_id(), node);
      EXPECT_GT(log->epoch(), epoch);
    }
    if (!halted) break;
  }
}

TEST_P(CrashTest, CrashAfterEveryStepOfReopeningKeepsDecisionsAndNeverReusesAnEpoch) {
  for (std::uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash after " + std::to_string(k) + " file-system operations");
    io::FaultInjectionEnv env;
    CommitRecord committed;
    std::uint32_t first_epoch = 0;
    NodeId node;
    {
      auto log = DecisionLog::open(env, kLogDir, options());
      committed = make_commit(*log);
      log->log_commit(committed);
      first_epoch = log->epoch();
      node = log->node_id();
    }
    env.halt_after(k);
    std::uint32_t second_epoch = first_epoch;
    try {
      second_epoch = DecisionLog::open(env, kLogDir, options())->epoch();
    } catch (const StorageError&) {
    }
    const bool halted = env.halted();
    env.crash();
    auto log = DecisionLog::open(env, kLogDir, options());
    EXPECT_EQ(log->node_id(), node);
    EXPECT_GT(log->epoch(), second_epoch);
    EXPECT_EQ(log->unfinished(), std::vector<CommitRecord>{committed});
    if (!halted) break;
  }
}

// A mixed workload with a small segment (so it also rotates on its own), crashed after every
// file-system operation.
TEST_P(CrashTest, CrashAnywhereInAWorkloadKeepsEveryReturnedDecision) {
  auto opts = options();
  opts.segment_bytes = 1024;
  for (std::uint64_t k = 0;; ++k) {
    SCOPED_TRACE("crash after " + std::to_string(k) + " file-system operations");
    io::FaultInjectionEnv env;
    auto log = DecisionLog::open(env, kLogDir, opts);
    std::set<Gtrid> attempted;
    std::set<Gtrid> must_have;  // returned, and not done
    env.halt_after(k);
    bool completed = true;
    try {
      std::vector<Gtrid> open_ones;
      for (int i = 0; i < 24; ++i) {
        const auto r = make_commit(*log, 1 + i % 4);
        attempted.insert(r.gtrid);
        log->log_commit(r);
        must_have.insert(r.gtrid);
        open_ones.push_back(r.gtrid);
        if (i % 3 == 2) {
          log->log_done(open_ones.front());
          must_have.erase(open_ones.front());
          open_ones.erase(open_ones.begin());
        }
        if (i % 10 == 9) log->checkpoint();
      }
    } catch (const StorageError&) {
      completed = false;
    }
    const bool halted = env.halted();
    env.crash();
    log.reset();
    log = DecisionLog::open(env, kLogDir, opts);
    const auto got = unfinished_set(*log);
    EXPECT_TRUE(includes(got, must_have));
    EXPECT_TRUE(includes(attempted, got));
    if (completed && !halted) break;
  }
}

INSTANTIATE_TEST_SUITE_P(Segments, CrashTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Preallocated" : "Appended"; });

}  // namespace
}  // namespace xact
