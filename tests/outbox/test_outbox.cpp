// xact::outbox on a real SQLite file: a message exists exactly when its transaction committed,
// and a committed one is delivered once (normal case), again after a failed delivery (back-off),
// by the worker when a post commits.
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/manager_binding.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/temp_dir.hpp>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace xact::outbox {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<sqlite::SqliteResource> open_store(const std::string& path) {
  sqlite::SqliteOptions o;
  o.path = path;
  o.name = "sqlite:app";
  return sqlite::SqliteResource::create(std::move(o));
}

// What a receiver saw, in order (thread-safe: the worker delivers on its own thread).
struct Received {
  std::mutex mutex;
  std::vector<Message> messages;
  void add(const Message& m) {
    std::lock_guard lock(mutex);
    messages.push_back(m);
  }
  std::vector<Message> all() {
    std::lock_guard lock(mutex);
    return messages;
  }
};

class OutboxTest : public ::testing::Test {
 protected:
  OutboxTest() : store_(open_store(dir_ / "app.db")), outbox_(Outbox::create(store_)) {
    store_->open_connection()->execute("CREATE TABLE orders (item TEXT)");
  }
  Handler recorder() {
    return [this](const Message& m) { received_.add(m); };
  }
  testing::TempDir dir_;
  std::shared_ptr<sqlite::SqliteResource> store_;
  std::shared_ptr<Outbox> outbox_;
  ExplicitTransactionManager tm_;
  Received received_;
};

TEST_F(OutboxTest, AnAbortedTransactionPostsNothing) {
  auto& txn = tm_.begin();
  store_->execute(txn, "INSERT INTO orders VALUES ('book')");
  outbox_->post(txn, "mail", "hello");
  txn.abort();
  EXPECT_EQ(outbox_->pending_count(), 0u);
  Dispatcher d(outbox_, recorder());
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_TRUE(received_.all().empty());
}

TEST_F(OutboxTest, ARetriedAttemptLeavesOnlyTheCommittedAttemptsMessage) {
  int attempt = 0;
  std::vector<std::string> keys;
  xact::run(tm_, [&](Transaction& txn) {
    store_->execute(txn, "INSERT INTO orders VALUES ('book')");
    keys.push_back(outbox_->post(txn, "mail", "attempt " + std::to_string(++attempt)));
    if (attempt < 3) throw ConflictError("simulated conflict");
  });
  ASSERT_EQ(keys.size(), 3u);
  Dispatcher d(outbox_, recorder());
  EXPECT_EQ(d.dispatch_once(), 1u);
  const auto got = received_.all();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, keys[2]);
  EXPECT_EQ(got[0].payload, "attempt 3");
  EXPECT_EQ(store_->open_connection()->execute("SELECT * FROM orders").size(), 1u);
}

TEST_F(OutboxTest, ASavepointRollbackUndoesThePostsAfterIt) {
  auto& txn = tm_.begin();
  const std::string kept = outbox_->post(txn, "mail", "kept");
  Savepoint sp = txn.savepoint();
  outbox_->post(txn, "mail", "undone");
  sp.rollback();
  txn.commit();
  Dispatcher d(outbox_, recorder());
  EXPECT_EQ(d.dispatch_once(), 1u);
  ASSERT_EQ(received_.all().size(), 1u);
  EXPECT_EQ(received_.all()[0].key, kept);
}

TEST_F(OutboxTest, ACommittedMessageIsDeliveredOnceWithItsKeyTopicAndPayloadThenMarkedDone) {
  std::vector<std::string> keys;
  xact::run(tm_, [&](Transaction& txn) {
    keys.clear();
    keys.push_back(outbox_->post(txn, "mail.welcome", std::string("bytes\0\xff", 7)));
    keys.push_back(outbox_->post(txn, "billing", "{}"));
  });
  {
    ManagerBinding binding(tm_);  // post() without a transaction: the bound manager's
    tm_.begin();
    keys.push_back(outbox_->post("audit", "third"));
    tm_.commit();
  }
  EXPECT_EQ(outbox_->pending_count(), 3u);
  EXPECT_NE(keys[0], keys[1]);
  EXPECT_EQ(keys[0].size(), 36u);  // a UUID's text
  Dispatcher d(outbox_, recorder());
  EXPECT_EQ(d.dispatch_once(), 3u);
  EXPECT_EQ(d.dispatch_once(), 0u);
  const auto got = received_.all();
  ASSERT_EQ(got.size(), 3u);
  std::vector<std::string> got_keys;
  for (const auto& m : got) got_keys.push_back(m.key);
  std::sort(got_keys.begin(), got_keys.end());
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(got_keys, keys);
  for (const auto& m : got) {
    EXPECT_TRUE(outbox_->is_done(m.key));
    EXPECT_EQ(m.attempts, 0u);
    if (m.topic == "mail.welcome") {
      EXPECT_EQ(m.payload, std::string("bytes\0\xff", 7));
    }
  }
  EXPECT_EQ(outbox_->pending_count(), 0u);
  EXPECT_EQ(d.stats().delivered, 3u);
  // Done messages are kept until purged.
  EXPECT_EQ(outbox_->purge_done(Outbox::Clock::now() + 1s), 3u);
  EXPECT_FALSE(outbox_->is_done(keys[0]));
}

TEST_F(OutboxTest, AFailedDeliveryLeavesTheMessageForARetryAfterTheBackOff) {
  const std::string key =
      xact::run(tm_, [&](Transaction& txn) { return outbox_->post(txn, "call", "payload"); });
  int calls = 0;
  DispatcherOptions o;
  o.backoff_initial = 300ms;
  o.jitter = 0;
  Dispatcher d(
      outbox_,
      [&](const Message& m) {
        received_.add(m);
        if (++calls == 1) throw std::runtime_error("service unavailable");
      },
      o);
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_EQ(d.stats().failed, 1u);
  EXPECT_EQ(outbox_->pending_count(), 1u);
  EXPECT_EQ(d.dispatch_once(), 0u);  // backing off: not due yet
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(d.drain(5s));
  const auto got = received_.all();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, key);
  EXPECT_EQ(got[1].key, key);
  EXPECT_EQ(got[1].attempts, 1u);
  EXPECT_TRUE(outbox_->is_done(key));
  const auto row = store_->open_connection()->execute(
      "SELECT last_error FROM xact_outbox WHERE msg_key = $1", {key});
  EXPECT_EQ(row.one().get<std::string>(0), "service unavailable");
}

TEST_F(OutboxTest, TheWorkerDeliversWhenAPostCommitsWithoutWaitingForThePollInterval) {
  DispatcherOptions o;
  o.poll_interval = 60s;  // only the commit's wake-up can make it deliver within the test
  Dispatcher d(outbox_, recorder(), o);
  d.start();
  std::this_thread::sleep_for(50ms);  // the worker's first (empty) round is over
  const std::string key =
      xact::run(tm_, [&](Transaction& txn) { return outbox_->post(txn, "mail", "hello"); });
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (received_.all().empty() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(1ms);
  }
  d.stop();
  ASSERT_EQ(received_.all().size(), 1u);
  EXPECT_EQ(received_.all()[0].key, key);
  EXPECT_TRUE(outbox_->is_done(key));
  EXPECT_NE(d.metrics_text().find("xact_outbox_delivered_total{table=\"xact_outbox\"} 1\n"),
            std::string::npos)
      << d.metrics_text();
}

TEST_F(OutboxTest, ConcurrentPostersAndTheWorkerLoseNothingAndDeliverEachMessageOnce) {
  Dispatcher d(outbox_, recorder());
  d.start();
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ExplicitTransactionManager tm;
      for (int i = 0; i < kPerThread; ++i) {
        xact::run(tm, [&](Transaction& txn) {
          store_->execute(txn, "INSERT INTO orders VALUES ($1)", {std::to_string(t * 100 + i)});
          outbox_->post(txn, "order", std::to_string(t * 100 + i));
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(d.drain(20s));
  d.stop();
  auto got = received_.all();
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::set<std::string> keys;
  for (const auto& m : got) keys.insert(m.key);
  EXPECT_EQ(keys.size(), got.size());
}

TEST(OutboxOptionsTest, BadTableNamesAndNullStoresAreRefused) {
  testing::TempDir dir;
  auto store = open_store(dir / "app.db");
  OutboxOptions o;
  o.table = "x; DROP TABLE y";
  EXPECT_THROW(Outbox::create(store, o), UsageError);
  EXPECT_THROW(Outbox::create(nullptr), UsageError);
  EXPECT_THROW(Dispatcher(Outbox::create(store), Handler{}), UsageError);
}

}  // namespace
}  // namespace xact::outbox
