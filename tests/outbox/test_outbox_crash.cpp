// The outbox across a crash: a child process (fork) commits a message and is killed (SIGKILL)
// at the dispatcher's named crash points; the parent, reopening the same SQLite file, delivers
// the message (again, when the child had delivered it) with the same key and marks it done —
// once the child's lease on it has expired, when the child had claimed it. A message that kills
// every dispatcher that claims it goes dead after max_attempts.
// And the message is part of the atomic commit: killed at each coordinator step next to a
// prepared participant, recovery leaves the message exactly where the other write is.
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/recovery.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/kv_resource.hpp>
#include <xact/testing/temp_dir.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace xact::outbox {
namespace {

std::shared_ptr<sqlite::SqliteResource> open_store(const std::string& path) {
  sqlite::SqliteOptions o;
  o.path = path;
  o.name = "sqlite:app";
  return sqlite::SqliteResource::create(std::move(o));
}

// The receiving side, in a file that outlives the killed child: one line per delivery, the key
// (what a real receiver stores to deduplicate). Written with write(2) before the handler
// returns: a SIGKILL after it keeps the line (the page cache survives the process).
void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  const std::string data = line + "\n";
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
}
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class OutboxCrashTest : public ::testing::Test {
 protected:
  // The child: commits one message (its key to keys.txt), then dispatches it to a receiver
  // that appends the key to received.txt; the armed point kills it on the way.
  testing::ChildRun commit_then_dispatch(const std::string& point, DispatcherOptions options = {}) {
    return testing::run_in_child(
        [&] {
          auto store = open_store(db());
          auto outbox = Outbox::create(store);
          ExplicitTransactionManager tm;
          const std::string key =
              xact::run(tm, [&](Transaction& txn) { return outbox->post(txn, "mail", "hi"); });
          append_line(dir_ / "keys.txt", key);
          Dispatcher d(
              outbox, [&](const Message& m) { append_line(dir_ / "received.txt", m.key); },
              options);
          d.dispatch_once();
          return 42;
        },
        point);
  }
  std::string db() const { return dir_ / "app.db"; }
  testing::TempDir dir_;
};

TEST_F(OutboxCrashTest, KilledAfterCommitBeforeDeliveryTheMessageIsDeliveredAfterRestart) {
  const auto run = commit_then_dispatch("outbox.before_delivery");
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();
  const auto keys = read_lines(dir_ / "keys.txt");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_TRUE(read_lines(dir_ / "received.txt").empty());

  auto outbox = Outbox::create(open_store(db()));  // the restarted process
  EXPECT_EQ(outbox->pending_count(), 1u);
  std::vector<Message> got;
  Dispatcher d(outbox, [&](const Message& m) { got.push_back(m); });
  EXPECT_EQ(d.dispatch_once(), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, keys[0]);
  EXPECT_EQ(got[0].payload, "hi");
  EXPECT_TRUE(outbox->is_done(keys[0]));
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_EQ(got.size(), 1u);
}

// The parent's dispatchers after the child's lease (an hour) ended, without waiting an hour.
DispatcherOptions after_the_lease() {
  DispatcherOptions o;
  o.clock = [] { return Outbox::Clock::now() + std::chrono::hours(1) + std::chrono::minutes(1); };
  return o;
}
DispatcherOptions hour_lease() {
  DispatcherOptions o;
  o.lease = std::chrono::hours(1);
  return o;
}

TEST_F(OutboxCrashTest, KilledAfterDeliveryBeforeTheMarkTheMessageIsDeliveredAgainWithTheSameKey) {
  const auto run = commit_then_dispatch("outbox.after_delivery", hour_lease());
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();
  const auto keys = read_lines(dir_ / "keys.txt");
  ASSERT_EQ(keys.size(), 1u);
  ASSERT_EQ(read_lines(dir_ / "received.txt"), keys);  // delivered once before the kill

  auto outbox = Outbox::create(open_store(db()));
  EXPECT_FALSE(outbox->is_done(keys[0]));
  {
    // The dead child's claim still holds: nobody delivers it before the lease ends.
    Dispatcher early(outbox, [&](const Message& m) { append_line(dir_ / "received.txt", m.key); });
    EXPECT_EQ(early.dispatch_once(), 0u);
    EXPECT_EQ(outbox->pending_count(), 1u);
  }
  Dispatcher d(
      outbox, [&](const Message& m) { append_line(dir_ / "received.txt", m.key); },
      after_the_lease());
  EXPECT_EQ(d.dispatch_once(), 1u);
  // At least once: the receiver saw the same key twice and can drop the second.
  EXPECT_EQ(read_lines(dir_ / "received.txt"), (std::vector<std::string>{keys[0], keys[0]}));
  EXPECT_TRUE(outbox->is_done(keys[0]));
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_EQ(read_lines(dir_ / "received.txt").size(), 2u);
}

TEST_F(OutboxCrashTest, KilledHoldingALeaseTheMessageIsDeliveredByAnotherDispatcherWhenItExpires) {
  const auto run = commit_then_dispatch("outbox.after_claim", hour_lease());
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();
  const auto keys = read_lines(dir_ / "keys.txt");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_TRUE(read_lines(dir_ / "received.txt").empty());  // claimed, never delivered

  auto outbox = Outbox::create(open_store(db()));
  std::vector<Message> got;
  {
    Dispatcher early(outbox, [&](const Message& m) { got.push_back(m); });
    EXPECT_EQ(early.dispatch_once(), 0u);  // the lease holds
    EXPECT_TRUE(got.empty());
  }
  Dispatcher d(
      outbox, [&](const Message& m) { got.push_back(m); }, after_the_lease());
  EXPECT_EQ(d.dispatch_once(), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, keys[0]);
  EXPECT_EQ(got[0].attempts, 1u);            // the interrupted delivery counts
  EXPECT_FALSE(got[0].lease_owner.empty());  // whose claim expired
  EXPECT_TRUE(outbox->is_done(keys[0]));
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_EQ(got.size(), 1u);
}

// The same with the real clock: a short lease really ends, and a running worker delivers it.
TEST_F(OutboxCrashTest, KilledHoldingAShortLeaseTheWorkerOfAnotherDispatcherDeliversItAfterwards) {
  DispatcherOptions child;
  child.lease = std::chrono::milliseconds(300);
  const auto run = commit_then_dispatch("outbox.after_claim", child);
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();
  const auto keys = read_lines(dir_ / "keys.txt");
  ASSERT_EQ(keys.size(), 1u);

  auto outbox = Outbox::create(open_store(db()));
  DispatcherOptions o;
  o.poll_interval = std::chrono::milliseconds(20);
  Dispatcher d(
      outbox, [&](const Message& m) { append_line(dir_ / "received.txt", m.key); }, o);
  d.start();
  EXPECT_TRUE(d.drain(std::chrono::seconds(60)));
  d.stop();
  EXPECT_EQ(read_lines(dir_ / "received.txt"), keys);
  EXPECT_TRUE(outbox->is_done(keys[0]));
}

// A message whose delivery kills the dispatcher (a crash in the handler, say): each child claims
// it and dies; the interrupted deliveries count, and the claim after the last allowed one moves it
// to the dead state instead of handing it to the next victim. Each child's clock is an hour past
// the previous one's, so every lease has expired for the next.
TEST_F(OutboxCrashTest, AMessageThatKillsEveryDispatcherGoesDeadAfterMaxAttempts) {
  auto outbox = Outbox::create(open_store(db()));
  ExplicitTransactionManager tm;
  const std::string key =
      xact::run(tm, [&](Transaction& txn) { return outbox->post(txn, "mail", "deadly"); });
  const auto child_options = [](int hours) {
    DispatcherOptions o;
    o.max_attempts = 3;
    o.lease = std::chrono::minutes(30);
    o.clock = [hours] { return Outbox::Clock::now() + std::chrono::hours(hours); };
    return o;
  };
  for (int i = 0; i < 3; ++i) {
    const auto run = testing::run_in_child(
        [&] {
          Dispatcher d(
              Outbox::create(open_store(db())),
              [&](const Message& m) { append_line(dir_ / "received.txt", m.key); },
              child_options(i));
          d.dispatch_once();
          return 42;
        },
        "outbox.after_claim");
    if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
    ASSERT_TRUE(run.killed) << "child " << i << ": " << run.describe();
    EXPECT_FALSE(outbox->is_dead(key)) << "after child " << i;
  }
  std::vector<Message> got;
  Dispatcher d(
      outbox, [&](const Message& m) { got.push_back(m); }, child_options(3));
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(outbox->is_dead(key));
  const auto dead = outbox->dead();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attempts, 3u);
  EXPECT_NE(dead[0].last_error.find("lease"), std::string::npos) << dead[0].last_error;
  EXPECT_TRUE(read_lines(dir_ / "received.txt").empty());
}

TEST_F(OutboxCrashTest, WithoutACrashTheChildDeliversOnceAndMarksDone) {
  const auto run = commit_then_dispatch("");
  ASSERT_FALSE(run.killed) << run.describe();
  EXPECT_EQ(run.exit_code, 42);
  const auto keys = read_lines(dir_ / "keys.txt");
  EXPECT_EQ(read_lines(dir_ / "received.txt"), keys);
  auto outbox = Outbox::create(open_store(db()));
  EXPECT_TRUE(outbox->is_done(keys.at(0)));
  EXPECT_EQ(outbox->pending_count(), 0u);
}

// The message and another participant's write commit or roll back together: the post is one
// more statement in SQLite's branch, and SQLite is the last resource carrying the decision.
class OutboxAtomicCrashTest : public ::testing::TestWithParam<testing::CrashCase> {
 protected:
  std::shared_ptr<testing::KvResource> kv() {
    return std::make_shared<testing::KvResource>(
        "kv", testing::KvStore::open_file(io::Env::posix(), dir_ / "kv.store"));
  }
  testing::TempDir dir_;
};

TEST_P(OutboxAtomicCrashTest, RecoveryLeavesTheMessageExactlyWhenTheOtherWriteCommitted) {
  const testing::CrashCase c = GetParam();
  Outbox::create(open_store(dir_ / "app.db"));  // the table, before the child
  const auto run = testing::run_in_child(
      [&] {
        auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir_ / "log"));
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        auto outbox = Outbox::create(open_store(dir_ / "app.db"));
        auto k = kv();
        auto& txn = tm.begin();
        outbox->post(txn, "mail", "order 1");
        k->put(txn, "order", "1");
        tm.commit();
        return 42;
      },
      c.point, c.hit);
  if (!run.killed && run.exit_code == 42) GTEST_SKIP() << "crash points are compiled out";
  ASSERT_TRUE(run.killed) << run.describe();

  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir_ / "log"));
  auto store = open_store(dir_ / "app.db");
  auto k = kv();
  Recovery recovery(log);
  recovery.register_resource(k);
  recovery.register_resource(store);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  auto outbox = Outbox::create(store);
  EXPECT_EQ(outbox->pending_count(), c.commits() ? 1u : 0u) << report.describe();
  EXPECT_EQ(k->store()->get("order").has_value(), c.commits()) << report.describe();
  std::vector<Message> got;
  Dispatcher d(outbox, [&](const Message& m) { got.push_back(m); });
  EXPECT_EQ(d.dispatch_once(), c.commits() ? 1u : 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Points, OutboxAtomicCrashTest,
    ::testing::ValuesIn(testing::decision_in_last_resource_crash_cases("sqlite:app")),
    testing::crash_case_name);

}  // namespace
}  // namespace xact::outbox
