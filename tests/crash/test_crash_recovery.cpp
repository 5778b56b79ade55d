// Crash recovery, proven by killing: a child process runs a multi-participant transaction over
// durable (fsync) file-backed resources and is SIGKILLed at a named crash point; the parent then
// opens the decision log and the stores again, runs recovery, and checks the atomicity oracle:
// every participant committed, or every one rolled back — and which of the two, per point.
// Plus randomized schedules: many concurrent transactions, killed at a random instant.
#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/kv_resource.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

namespace xact {
namespace {

using testing::KvOptions;
using testing::KvResource;
using testing::KvStore;
using testing::TempDir;

using testing::crash_case_name;
using testing::CrashCase;

// The participants as any process opens them: from their files.
struct Participants {
  explicit Participants(const TempDir& dir, bool with_last) {
    a = std::make_shared<KvResource>("a", KvStore::open_file(io::Env::posix(), dir / "a.kv"));
    b = std::make_shared<KvResource>("b", KvStore::open_file(io::Env::posix(), dir / "b.kv"));
    if (with_last) {
      KvOptions o;
      o.last_resource = true;
      l = std::make_shared<KvResource>("l", KvStore::open_file(io::Env::posix(), dir / "l.kv"), o);
    }
  }
  std::vector<std::shared_ptr<KvResource>> all() const {
    std::vector<std::shared_ptr<KvResource>> v{a, b};
    if (l) v.push_back(l);
    return v;
  }
  std::shared_ptr<KvResource> a, b, l;
};

class CrashPointTest : public ::testing::TestWithParam<CrashCase> {};

TEST_P(CrashPointTest, RecoveryLeavesEveryParticipantCommittedOrRolledBackTogether) {
  const CrashCase c = GetParam();
  TempDir dir;
  auto run = testing::run_in_child(
      [&] {
        std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        Participants p(dir, c.last_resource);
        auto& txn = tm.begin();
        for (auto& rm : p.all()) rm->put(txn, "k", "v");
        tm.commit();
        return 0;
      },
      c.point, c.hit);
  if (c.expect == CrashCase::not_reached) {
    ASSERT_EQ(run.exit_code, 0) << run.describe();
  } else {
    ASSERT_TRUE(run.killed) << "the crash point was not reached: " << run.describe();
  }

  // A fresh start: open everything from disk and recover.
  std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
  Participants p(dir, c.last_resource);
  Recovery recovery(log);
  for (auto& rm : p.all()) recovery.register_resource(rm);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();

  int committed = 0;
  for (auto& rm : p.all()) {
    committed += rm->store()->get("k") == "v";
    EXPECT_TRUE(rm->store()->prepared_gids().empty()) << rm->resource_name() << " still prepared";
  }
  ASSERT_TRUE(committed == 0 || committed == static_cast<int>(p.all().size()))
      << "atomicity violated: " << committed << " of " << p.all().size() << " committed\n"
      << report.describe();
  const bool want_commit = c.expect != CrashCase::rolled_back;
  EXPECT_EQ(committed > 0, want_commit) << report.describe();

  // Recovery is idempotent: a second run finds nothing to do.
  const RecoveryReport again = recovery.run();
  EXPECT_TRUE(again.actions.empty()) << again.describe();
  EXPECT_TRUE(log->unfinished().empty());
}

constexpr auto RB = CrashCase::rolled_back;
constexpr auto CO = CrashCase::committed;
constexpr auto NR = CrashCase::not_reached;

const CrashCase kTwoVoters[] = {
    {"coordinator.before_tpc_begin", 1, false, RB},
    {"coordinator.after_tpc_begin", 1, false, RB},
    {"coordinator.after_commit", 1, false, RB},
    {"a.after_prepare", 1, false, RB},
    {"coordinator.after_vote", 1, false, RB},
    {"b.after_prepare", 1, false, RB},
    {"coordinator.after_vote", 2, false, RB},
    {"coordinator.before_commit_record", 1, false, RB},
    {"coordinator.after_commit_record", 1, false, CO},
    {"a.after_commit_prepared", 1, false, CO},
    {"coordinator.after_finish", 1, false, CO},
    {"b.after_commit_prepared", 1, false, CO},
    {"coordinator.after_finish", 2, false, CO},
    {"coordinator.after_done_record", 1, false, CO},
    {"coordinator.after_last_resource", 1, false, NR},
};

const CrashCase kWithLastResource[] = {
    {"coordinator.after_commit", 1, true, RB},
    {"coordinator.after_vote", 2, true, RB},
    {"coordinator.before_commit_record", 1, true, RB},
    {"l.after_one_phase", 1, true, CO},
    {"coordinator.after_last_resource", 1, true, CO},
    {"coordinator.after_finish", 1, true, CO},
    {"coordinator.after_finish", 2, true, CO},
    {"coordinator.after_commit_record", 1, true, NR},
};

INSTANTIATE_TEST_SUITE_P(TwoVoters, CrashPointTest, ::testing::ValuesIn(kTwoVoters),
                         crash_case_name);
INSTANTIATE_TEST_SUITE_P(WithLastResource, CrashPointTest, ::testing::ValuesIn(kWithLastResource),
                         crash_case_name);

TEST(CrashPoints, EveryCoordinatorCrashPointIsKilledAtInSomeCase) {
  std::vector<CrashCase> all(std::begin(kTwoVoters), std::end(kTwoVoters));
  all.insert(all.end(), std::begin(kWithLastResource), std::end(kWithLastResource));
  for (const auto& point : testing::coordinator_points_not_killed(all)) {
    ADD_FAILURE() << point << " has no crash case";
  }
}

// Many transactions on several threads, killed at a random instant after the first commit was
// acknowledged (however long a sanitizer build takes to get there): every transaction's key is
// in every store it wrote to, or in none.
TEST(RandomCrashTest, ConcurrentTransactionsKilledAtRandomStayAtomic) {
  std::mt19937 rng(20261122);
  std::size_t keys_seen = 0;
  for (int round = 0; round < 6; ++round) {
    TempDir dir;
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<>(0, 100)(rng));
    auto run = testing::run_and_kill_after_report(
        [&](int report_fd) {
          std::atomic<bool> reported{false};
          std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
          Participants shared(dir, true);
          std::vector<std::thread> threads;
          for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
              ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
              // Each thread has its own connections to the shared stores.
              auto a = std::make_shared<KvResource>("a", shared.a->store());
              auto b = std::make_shared<KvResource>("b", shared.b->store());
              KvOptions o;
              o.last_resource = true;
              auto l = std::make_shared<KvResource>("l", shared.l->store(), o);
              for (int i = 0; i < 100000; ++i) {
                const std::string key = std::to_string(t) + "-" + std::to_string(i);
                auto& txn = tm.begin();
                a->put(txn, key, "v");
                b->put(txn, key, "v");
                if (i % 3 == 0) l->put(txn, key, "v");
                try {
                  tm.commit();
                } catch (const std::exception&) {
                  tm.abort();
                  continue;
                }
                if (!reported.exchange(true)) {
                  if (::write(report_fd, "c", 1) != 1) std::_Exit(3);
                }
              }
            });
          }
          for (auto& th : threads) th.join();
          return 0;
        },
        delay);
    ASSERT_TRUE(run.killed) << "round " << round << ": " << run.describe();

    std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
    Participants p(dir, true);
    Recovery recovery(log);
    for (auto& rm : p.all()) recovery.register_resource(rm);
    const RecoveryReport report = recovery.run();
    ASSERT_TRUE(report.complete()) << report.describe();
    const auto a = p.a->store()->snapshot(), b = p.b->store()->snapshot(),
               l = p.l->store()->snapshot();
    std::set<std::string> keys;
    for (const auto* m : {&a, &b, &l}) {
      for (const auto& [k, v] : *m) keys.insert(k);
    }
    for (const auto& key : keys) {
      const int i = std::stoi(key.substr(key.find('-') + 1));
      const bool in_a = a.count(key), in_b = b.count(key), in_l = l.count(key);
      EXPECT_EQ(in_a, in_b) << "round " << round << " key " << key;
      if (i % 3 == 0) {
        EXPECT_EQ(in_a, in_l) << "round " << round << " key " << key;
      }
    }
    for (auto& rm : p.all()) EXPECT_TRUE(rm->store()->prepared_gids().empty());
    EXPECT_FALSE(keys.empty()) << "round " << round << ": a commit was acknowledged and lost";
    keys_seen += keys.size();
  }
  EXPECT_GT(keys_seen, 0u) << "no transaction committed before the kills: the test proved nothing";
}

}  // namespace
}  // namespace xact
