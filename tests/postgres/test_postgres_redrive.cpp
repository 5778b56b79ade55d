// A PostgreSQL server killed in phase two, under load, and started again: the branches it left
// prepared are finished by the re-driver while the process runs, and the transactions on those
// rows commit again, with no restart of the application.
//
// The test starts a server instance of its own (scripts/servers.sh start in a temporary
// directory; never the shared one, which other tests use) and kills it with `down-pg` /
// `up-pg`. It prints the commit rate per 250 ms before the kill, while the server is down and
// after its return (figures for bench/README.md, not assertions: a loaded machine varies).
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/redriver.hpp>
#include <xact/retry.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/servers.hpp>

// As in pg_test_support.cpp: libpqxx 6.4 leaks the result of a statement that finds its
// connection broken, which this test does on purpose.
extern "C" const char* __lsan_default_suppressions() { return "leak:libpqxx-6.4.so\n"; }

namespace xact {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kKeys = 4;  // hot rows: every transfer meets the others'
constexpr int kThreads = 3;
constexpr std::int64_t kStart = 1000;

using testing::under_ci;

// A server instance of this test's own.
class OwnServers {
 public:
  OwnServers() = default;
  ~OwnServers() {
    if (started_) run("stop");
  }
  // Starts both servers (the script has no PostgreSQL-only start); false with `why` when it
  // cannot (no server binaries here).
  bool start(std::string* why) {
    if (!run("start")) {
      *why = "scripts/servers.sh start " + dir_.path() + " failed (see its output above)";
      return false;
    }
    started_ = true;
    std::ifstream env(dir_.path() + "/env.sh");
    for (std::string line; std::getline(env, line);) {
      if (line.rfind("export ", 0) != 0) continue;
      const auto eq = line.find('=');
      vars_[line.substr(7, eq - 7)] = line.substr(eq + 1);
    }
    return !var("XACT_PG_URI").empty();
  }
  bool run(const std::string& command) {
    const std::string cmd = "bash '" + std::string(XACT_SERVERS_SH) + "' " + command + " '" +
                            dir_.path() + "' >/dev/null";
    const int status = std::system(cmd.c_str());
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }
  std::string var(const std::string& name) const {
    auto it = vars_.find(name);
    return it == vars_.end() ? std::string() : it->second;
  }

 private:
  testing::TempDir dir_;
  bool started_ = false;
  std::map<std::string, std::string> vars_;
};

// Sorts first; its tpc_finish kills the server, so the PostgreSQL branches' phase two meets a
// server that is gone: the decision is made, the branches are prepared and stay so.
class KillAtFinish : public ResourceManager {
 public:
  explicit KillAtFinish(std::function<void()> kill) : kill_(std::move(kill)) {}
  std::string resource_name() const override { return "0-kill-at-finish"; }
  void abort(Transaction&) noexcept override {}
  void tpc_begin(Transaction&) override {}
  void commit(Transaction&) override {}
  Vote tpc_vote(Transaction&) override { return Vote::yes; }
  void tpc_finish(Transaction&) override { kill_(); }
  void tpc_abort(Transaction&) noexcept override {}

 private:
  std::function<void()> kill_;
};

class PostgresRedriveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!servers_.start(&why)) {
      if (under_ci()) FAIL() << why;
      GTEST_SKIP() << why << " (PostgreSQL 15 and MariaDB are needed: scripts/install-deps.sh)";
    }
    set_log_sink([](LogLevel, std::string_view) {});  // the outage is expected to be noisy
    log_ = DecisionLog::open(io::Env::posix(), dir_ / "log");
    tm_.set_options(ManagerOptions{log_, std::nullopt});
    rm1_ = resource(servers_.var("XACT_PG_URI"), "pg:one");
    rm2_ = resource(servers_.var("XACT_PG_URI2"), "pg:two");
    for (auto* rm : {rm1_.get(), rm2_.get()}) {
      auto c = rm->open_connection();
      c->execute("CREATE TABLE acct (k int PRIMARY KEY, v bigint NOT NULL)");
      for (int k = 0; k < kKeys; ++k) c->execute("INSERT INTO acct VALUES ($1, $2)", {k, kStart});
    }
  }
  void TearDown() override {
    tm_.abort();
    rm1_.reset();
    rm2_.reset();
    log_.reset();
    set_log_sink(nullptr);
  }
  static std::shared_ptr<postgres::PostgresResource> resource(const std::string& uri,
                                                              const std::string& name) {
    postgres::PostgresOptions o;
    o.conninfo = uri;
    o.name = name;
    // A row held by a prepared branch makes writers fail fast (retryable) instead of waiting.
    o.lock_timeout = 200ms;
    o.pool.max_size = 8;
    return postgres::PostgresResource::create(o);
  }
  // Moves 1 from `k` in the first database to `k` in the second.
  void transfer(Transaction& txn, int k) {
    rm1_->execute(txn, "UPDATE acct SET v = v - 1 WHERE k = $1", {k});
    rm2_->execute(txn, "UPDATE acct SET v = v + 1 WHERE k = $1", {k});
  }
  std::map<int, std::int64_t> balances(postgres::PostgresResource& rm) {
    std::map<int, std::int64_t> out;
    for (const auto& row : rm.open_connection()->execute("SELECT k, v FROM acct")) {
      out[static_cast<int>(row.get<std::int64_t>(0))] = row.get<std::int64_t>(1);
    }
    return out;
  }
  std::size_t prepared_of_this_node(postgres::PostgresResource& rm) {
    std::size_t n = 0;
    for (const auto& row : rm.open_connection()->execute("SELECT gid FROM pg_prepared_xacts")) {
      const auto xid = Xid::from_gid(row.get<std::string>(0));
      if (xid && xid->gtrid.node() == log_->node_id()) ++n;
    }
    return n;
  }

  testing::TempDir dir_;
  OwnServers servers_;
  std::shared_ptr<DecisionLog> log_;
  ExplicitTransactionManager tm_;
  std::shared_ptr<postgres::PostgresResource> rm1_, rm2_;
};

TEST_F(PostgresRedriveTest, BranchesLeftPreparedByAServerKilledInPhaseTwoAreFinishedWhileRunning) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable committed;
  std::vector<Clock::time_point> commits;  // guarded by mu: when each transfer was acknowledged
  std::atomic<int> given_up{0};

  std::vector<std::thread> load;
  struct Joiner {  // a failed assertion returns early: the load stops first
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop.store(true);
      for (auto& th : threads) {
        if (th.joinable()) th.join();
      }
    }
  } joiner{stop, load};
  for (int t = 0; t < kThreads; ++t) {
    load.emplace_back([&, t] {
      ExplicitTransactionManager tm(ManagerOptions{log_, std::nullopt});
      std::minstd_rand rng(static_cast<unsigned>(t + 1));
      RetryPolicy policy;
      policy.deadline = 60s;  // outlasts the outage and the restart
      while (!stop.load()) {
        const int k = static_cast<int>(rng() % kKeys);
        try {
          run_with_outcome(
              tm, [&](Transaction& txn) { transfer(txn, k); }, policy);
          {
            std::lock_guard lock(mu);
            commits.push_back(Clock::now());
          }
          committed.notify_all();
        } catch (const std::exception&) {
          ++given_up;  // not acknowledged: the invariant below does not count it
        }
      }
    });
  }
  auto count_commits = [&] {
    std::lock_guard lock(mu);
    return commits.size();
  };
  // Waits until the load acknowledged `n` transfers in all (by commits, not by time).
  auto await_commits = [&](std::size_t n) {
    std::unique_lock lock(mu);
    return committed.wait_for(lock, 120s, [&] { return commits.size() >= n; });
  };
  ASSERT_TRUE(await_commits(50)) << "the load does not commit";

  // The killing transaction: committed (the decision is in the log), then the server dies
  // before its PostgreSQL branches are finished.
  const auto t_kill = Clock::now();
  Clock::time_point t_down;
  bool killed = false;
  auto killer = std::make_shared<KillAtFinish>([&] {
    if (killed) return;
    killed = true;
    ASSERT_TRUE(servers_.run("down-pg")) << "scripts/servers.sh down-pg failed";
    t_down = Clock::now();
  });
  RetryPolicy policy;
  policy.deadline = 60s;
  const auto r = run_with_outcome(
      tm_,
      [&](Transaction& txn) {
        transfer(txn, 0);
        txn.join(killer);
      },
      policy);
  ASSERT_TRUE(killed);
  EXPECT_EQ(r.outcome.pending.size(), 2u) << "both PostgreSQL branches were left prepared";
  EXPECT_FALSE(log_->redriver().wait_idle(Clock::now())) << "owed while the server is down";

  std::this_thread::sleep_for(1s);  // the outage (not a synchronisation: the server is down)
  ASSERT_TRUE(servers_.run("up-pg")) << "scripts/servers.sh up-pg failed";
  const auto t_back = Clock::now();

  // The rule: finished while the process runs, with nobody restarting anything.
  ASSERT_TRUE(log_->redriver().wait_idle(120s))
      << "the branches the server left prepared were never finished";
  const auto t_idle = Clock::now();
  const auto redriven = log_->redriver().stats();

  // Load on after the return, by commits again.
  const bool recovered = await_commits(count_commits() + 50);
  stop.store(true);
  for (auto& th : load) th.join();
  ASSERT_TRUE(recovered) << "transactions on the rows do not commit again";
  ASSERT_TRUE(log_->redriver().wait_idle(120s));

  EXPECT_EQ(prepared_of_this_node(*rm1_), 0u);
  EXPECT_EQ(prepared_of_this_node(*rm2_), 0u);
  EXPECT_TRUE(log_->unfinished().empty()) << "the done records were written";

  // Every acknowledged transfer is there, nothing else: each key's two halves add up, and the
  // money moved is the number of commits.
  const auto b1 = balances(*rm1_), b2 = balances(*rm2_);
  std::int64_t moved = 0;
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(b1.at(k) + b2.at(k), 2 * kStart) << "key " << k;
    moved += kStart - b1.at(k);
  }
  const std::size_t acknowledged = count_commits() + 1;  // + the killing transaction
  EXPECT_EQ(moved, static_cast<std::int64_t>(acknowledged));

  // Later transactions on the very rows the killed branches held commit, without a retry.
  RetryPolicy once;
  once.attempts = 1;
  EXPECT_NO_THROW(run(
      tm_, [&](Transaction& txn) { transfer(txn, 0); }, once));

  // Figures (printed, not asserted).
  std::vector<Clock::time_point> all;
  {
    std::lock_guard lock(mu);
    all = commits;
  }
  auto ms = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  auto rate = [&](Clock::time_point from, Clock::time_point to) {
    const auto n =
        std::count_if(all.begin(), all.end(), [&](auto t) { return t >= from && t < to; });
    const double s = std::chrono::duration<double>(to - from).count();
    return s > 0 ? static_cast<double>(n) / s : 0.0;
  };
  Clock::time_point first_after_back = Clock::time_point::max();
  for (auto t : all) {
    if (t >= t_back) first_after_back = std::min(first_after_back, t);
  }
  const auto t_end = all.empty() ? t_idle : all.back();
  std::cout << "redrive figures: " << kThreads << " threads, " << kKeys << " hot keys\n"
            << "  before the kill: " << rate(all.front(), t_kill) << " commits/s\n"
            << "  server down (" << ms(t_back - t_down)
            << " ms incl. restart): " << rate(t_down, t_back) << " commits/s\n"
            << "  first commit " << ms(first_after_back - t_back)
            << " ms after the server was back; re-driver idle after " << ms(t_idle - t_back)
            << " ms (" << redriven.attempts << " calls, " << redriven.failures << " failed)\n"
            << "  after the return: " << rate(t_back, t_end) << " commits/s\n"
            << "  per 250 ms from the kill:";
  for (auto from = t_kill; from < t_end; from += 250ms) {
    std::cout << " " << std::count_if(all.begin(), all.end(), [&](auto t) {
      return t >= from && t < from + 250ms;
    });
  }
  std::cout << "\n  transactions given up: " << given_up.load() << std::endl;
}

}  // namespace
}  // namespace xact
