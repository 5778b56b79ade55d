// xact::outbox::Dispatcher's dead state and leases on a real SQLite file: a message whose
// delivery keeps failing goes dead after max_attempts without holding back the messages behind
// it, stays dead until an operator requeues or drops it; a claim keeps other dispatchers off a
// message until its lease ends; two dispatchers on one table deliver each message once.
// Time is a clock the test moves (DispatcherOptions::clock), so back-offs and leases end when the
// test says, not after a sleep.
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/temp_dir.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace xact::outbox {
namespace {

using namespace std::chrono_literals;
using Clock = Outbox::Clock;

std::shared_ptr<sqlite::SqliteResource> open_store(const std::string& path) {
  sqlite::SqliteOptions o;
  o.path = path;
  o.name = "sqlite:app";
  return sqlite::SqliteResource::create(std::move(o));
}

// A clock that moves only when told to. It starts an hour ahead, so that messages posted during
// the test (stamped with the real time) are due at once.
struct TestClock {
  std::atomic<std::int64_t> offset_us{0};
  const Clock::time_point start = Clock::now() + 1h;
  Clock::time_point now() const { return start + std::chrono::microseconds(offset_us.load()); }
  void advance(std::chrono::microseconds d) { offset_us += d.count(); }
  std::function<Clock::time_point()> fn() {
    return [this] { return now(); };
  }
};

// Deliveries per key, and the order of calls (thread-safe).
struct Calls {
  std::mutex mutex;
  std::vector<Message> all;
  std::map<std::string, int> per_key;
  void add(const Message& m) {
    std::lock_guard lock(mutex);
    all.push_back(m);
    ++per_key[m.key];
  }
  std::vector<Message> list() {
    std::lock_guard lock(mutex);
    return all;
  }
  int count(const std::string& key) {
    std::lock_guard lock(mutex);
    return per_key.count(key) ? per_key[key] : 0;
  }
};

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : store_(open_store(dir_ / "app.db")), outbox_(Outbox::create(store_)) {}

  std::string post(const std::string& topic, const std::string& payload) {
    return xact::run(tm_, [&](Transaction& txn) { return outbox_->post(txn, topic, payload); });
  }
  // Fails every delivery of topic "poison" (unless healed), records every call.
  Handler poison_handler() {
    return [this](const Message& m) {
      calls_.add(m);
      if (m.topic == "poison" && !healed_) {
        throw std::runtime_error("receiver refused attempt " + std::to_string(m.attempts + 1));
      }
    };
  }
  DispatcherOptions options(std::uint32_t max_attempts) {
    DispatcherOptions o;
    o.max_attempts = max_attempts;
    o.backoff_initial = 1s;
    o.backoff_max = 60s;
    o.jitter = 0;
    o.clock = clock_.fn();
    return o;
  }

  testing::TempDir dir_;
  std::shared_ptr<sqlite::SqliteResource> store_;
  std::shared_ptr<Outbox> outbox_;
  ExplicitTransactionManager tm_;
  TestClock clock_;
  Calls calls_;
  std::atomic<bool> healed_{false};
};

TEST_F(DispatcherTest, APoisonMessageDoesNotHoldBackTheMessagesBehindIt) {
  const std::string poison = post("poison", "p");  // the oldest: first in every round's order
  std::vector<std::string> good;
  for (int i = 0; i < 5; ++i) good.push_back(post("mail", std::to_string(i)));
  DispatcherOptions o = options(3);
  o.batch = 1;  // one message per round: a blocking poison would be the only one ever handled
  Dispatcher d(outbox_, poison_handler(), o);
  EXPECT_EQ(d.dispatch_once(), 0u);  // the poison fails and backs off
  for (int i = 0; i < 5; ++i) EXPECT_EQ(d.dispatch_once(), 1u) << "round " << i + 2;
  const auto calls = calls_.list();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_EQ(calls[0].key, poison);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(calls[i + 1].key, good[i]);
    EXPECT_TRUE(outbox_->is_done(good[i]));
  }
  EXPECT_FALSE(outbox_->is_done(poison));
  EXPECT_EQ(outbox_->pending_count(), 1u);
}

TEST_F(DispatcherTest,
       APoisonMessageGoesDeadAfterMaxAttemptsWithItsLastErrorAndIsNeverDeliveredAgain) {
  const std::string poison = post("poison", "p");
  const std::string good = post("mail", "g");
  Dispatcher d(outbox_, poison_handler(), options(3));
  EXPECT_EQ(d.dispatch_once(), 1u);  // attempt 1 of the poison fails; the good one is delivered
  EXPECT_EQ(d.dispatch_once(), 0u);  // backing off (1 s)
  EXPECT_EQ(calls_.count(poison), 1);
  clock_.advance(1s);
  EXPECT_EQ(d.dispatch_once(), 0u);  // attempt 2 fails; then 2 s
  EXPECT_EQ(calls_.count(poison), 2);
  EXPECT_FALSE(outbox_->is_dead(poison));
  clock_.advance(2s);
  EXPECT_EQ(d.dispatch_once(), 0u);  // attempt 3, the last: dead
  EXPECT_EQ(calls_.count(poison), 3);
  EXPECT_TRUE(outbox_->is_dead(poison));
  EXPECT_FALSE(outbox_->is_done(poison));
  EXPECT_EQ(outbox_->pending_count(), 0u);
  EXPECT_EQ(outbox_->dead_count(), 1u);
  EXPECT_TRUE(d.drain(0ms));  // dead messages are not pending

  const auto dead = outbox_->dead();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.key, poison);
  EXPECT_EQ(dead[0].message.topic, "poison");
  EXPECT_EQ(dead[0].message.payload, "p");
  EXPECT_EQ(dead[0].message.attempts, 3u);
  EXPECT_EQ(dead[0].last_error, "receiver refused attempt 3");
  EXPECT_GT(dead[0].dead_us, 0);

  clock_.advance(24h);
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_EQ(calls_.count(poison), 3);
  EXPECT_EQ(calls_.count(good), 1);

  const auto s = d.stats();
  EXPECT_EQ(s.failed, 3u);
  EXPECT_EQ(s.dead, 1u);
  EXPECT_EQ(s.dead_now, 1);
  EXPECT_EQ(s.pending, 0);
  const std::string metrics = d.metrics_text();
  EXPECT_NE(metrics.find("xact_outbox_dead{table=\"xact_outbox\"} 1\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("xact_outbox_dead_total{table=\"xact_outbox\"} 1\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("xact_outbox_pending{table=\"xact_outbox\"} 0\n"), std::string::npos)
      << metrics;
}

TEST_F(DispatcherTest, ARequeuedDeadMessageIsDeliveredWithTheSameKeyAndAFullSetOfAttempts) {
  const std::string poison = post("poison", "p");
  Dispatcher d(outbox_, poison_handler(), options(1));
  d.dispatch_once();
  ASSERT_TRUE(outbox_->is_dead(poison));
  EXPECT_FALSE(outbox_->requeue("no-such-key"));
  healed_ = true;  // the operator fixed the receiver
  EXPECT_TRUE(outbox_->requeue(poison, clock_.now()));
  EXPECT_FALSE(outbox_->requeue(poison, clock_.now()));  // no longer dead
  EXPECT_FALSE(outbox_->is_dead(poison));
  EXPECT_EQ(outbox_->pending_count(), 1u);
  EXPECT_EQ(d.dispatch_once(), 1u);
  const auto calls = calls_.list();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].key, poison);
  EXPECT_EQ(calls[1].attempts, 0u);
  EXPECT_TRUE(outbox_->is_done(poison));
  EXPECT_EQ(outbox_->dead_count(), 0u);
  EXPECT_FALSE(outbox_->drop_dead(poison));  // done, not dead: not dropped
  EXPECT_TRUE(outbox_->is_done(poison));
}

TEST_F(DispatcherTest, DroppedDeadMessagesAreGoneAndRequeueAllTakesTheRest) {
  const std::string a = post("poison", "a");
  const std::string b = post("poison", "b");
  const std::string c = post("poison", "c");
  Dispatcher d(outbox_, poison_handler(), options(1));
  d.dispatch_once();
  ASSERT_EQ(outbox_->dead_count(), 3u);
  EXPECT_TRUE(outbox_->drop_dead(b));
  EXPECT_FALSE(outbox_->drop_dead(b));
  EXPECT_EQ(outbox_->dead_count(), 2u);
  healed_ = true;
  EXPECT_EQ(outbox_->requeue_all_dead(clock_.now()), 2u);
  EXPECT_EQ(d.dispatch_once(), 2u);
  EXPECT_TRUE(outbox_->is_done(a));
  EXPECT_TRUE(outbox_->is_done(c));
  EXPECT_FALSE(outbox_->is_done(b));
  EXPECT_FALSE(outbox_->is_dead(b));
  EXPECT_EQ(calls_.count(b), 1);  // only its first, failed, delivery
}

TEST_F(DispatcherTest, WithoutALimitAFailingMessageIsRetriedForeverAndNeverGoesDead) {
  const std::string poison = post("poison", "p");
  Dispatcher d(outbox_, poison_handler(), options(0));
  for (int i = 0; i < 30; ++i) {
    d.dispatch_once();
    clock_.advance(61s);
  }
  EXPECT_EQ(calls_.count(poison), 30);
  EXPECT_FALSE(outbox_->is_dead(poison));
  EXPECT_EQ(outbox_->pending_count(), 1u);
}

TEST_F(DispatcherTest, OfTwoClaimsOnTheSameReadOnlyOneSucceeds) {
  const std::string key = post("mail", "m");
  const auto seen = outbox_->due(10, clock_.now());
  ASSERT_EQ(seen.size(), 1u);
  const auto claim = [&](const std::string& token) {
    return xact::run(tm_, [&](Transaction& txn) {
      return outbox_->claim(txn, seen[0], token, clock_.now() + 30s, clock_.now(), 5);
    });
  };
  EXPECT_EQ(claim("a:1"), ClaimResult::claimed);
  EXPECT_EQ(claim("b:1"), ClaimResult::taken);
  EXPECT_TRUE(outbox_->due(10, clock_.now()).empty());  // leased: not due for anyone
  EXPECT_EQ(outbox_->pending_count(), 1u);
}

// The claim compares the row with the read, not only its due time: a message that failed and is
// due again at once (no back-off) is not claimed on a read from before that failure, whose
// attempts are stale.
TEST_F(DispatcherTest, AClaimOnAStaleReadIsRefusedEvenWhenTheMessageIsDueAgain) {
  const std::string key = post("mail", "m");
  const auto stale = outbox_->due(10, clock_.now());
  ASSERT_EQ(stale.size(), 1u);
  const auto claim = [&](const Message& seen, const std::string& token) {
    return xact::run(tm_, [&](Transaction& txn) {
      return outbox_->claim(txn, seen, token, clock_.now() + 30s, clock_.now(), 5);
    });
  };
  ASSERT_EQ(claim(stale[0], "a:1"), ClaimResult::claimed);
  ASSERT_TRUE(xact::run(tm_, [&](Transaction& txn) {
    return outbox_->mark_failed(txn, key, "a:1", clock_.now(), "refused");  // due again now
  }));
  EXPECT_EQ(claim(stale[0], "b:1"), ClaimResult::taken);
  const auto fresh = outbox_->due(10, clock_.now());
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].attempts, 1u);
  EXPECT_EQ(claim(fresh[0], "b:2"), ClaimResult::claimed);
}

TEST_F(DispatcherTest,
       AClaimedMessageIsSkippedUntilTheLeaseEndsThenDeliveredCountingTheInterruption) {
  const std::string key = post("mail", "m");
  {
    // Another dispatcher claims it and never finishes (it died).
    const auto seen = outbox_->due(10, clock_.now());
    ASSERT_EQ(seen.size(), 1u);
    ASSERT_EQ(xact::run(tm_,
                        [&](Transaction& txn) {
                          return outbox_->claim(txn, seen[0], "dead-dispatcher:1",
                                                clock_.now() + 30s, clock_.now(), 5);
                        }),
              ClaimResult::claimed);
  }
  Dispatcher d(outbox_, poison_handler(), options(5));
  EXPECT_EQ(d.dispatch_once(), 0u);
  clock_.advance(29s);
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_TRUE(calls_.list().empty());
  clock_.advance(1s);  // the lease's end
  EXPECT_EQ(d.dispatch_once(), 1u);
  const auto calls = calls_.list();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].key, key);
  EXPECT_EQ(calls[0].attempts, 1u);  // the interrupted delivery
  EXPECT_EQ(calls[0].lease_owner, "dead-dispatcher:1");
  EXPECT_TRUE(outbox_->is_done(key));
}

TEST_F(DispatcherTest, ALostClaimsLateFailureChangesNothing) {
  const std::string key = post("mail", "m");
  const auto claim = [&](const std::string& token) {
    const auto seen = outbox_->due(10, clock_.now());
    EXPECT_EQ(seen.size(), 1u);
    return xact::run(tm_, [&](Transaction& txn) {
      return outbox_->claim(txn, seen.at(0), token, clock_.now() + 30s, clock_.now(), 5);
    });
  };
  ASSERT_EQ(claim("slow:1"), ClaimResult::claimed);
  clock_.advance(31s);  // slow:1 overran its lease; fast:1 takes over
  ASSERT_EQ(claim("fast:1"), ClaimResult::claimed);
  EXPECT_FALSE(xact::run(tm_, [&](Transaction& txn) {
    return outbox_->mark_failed(txn, key, "slow:1", clock_.now(), "late");
  }));
  EXPECT_FALSE(xact::run(tm_, [&](Transaction& txn) {
    return outbox_->mark_dead(txn, key, "slow:1", clock_.now(), "late");
  }));
  EXPECT_TRUE(outbox_->due(10, clock_.now()).empty());  // still fast:1's
  EXPECT_FALSE(outbox_->is_dead(key));
  EXPECT_TRUE(xact::run(tm_, [&](Transaction& txn) {
    return outbox_->mark_failed(txn, key, "fast:1", clock_.now(), "refused");
  }));
}

TEST_F(DispatcherTest, AnExpiredLeaseThatWasTheLastAttemptMovesTheMessageToDead) {
  const std::string key = post("mail", "m");
  for (int i = 1; i <= 2; ++i) {  // two dispatchers in turn die holding it
    const auto seen = outbox_->due(10, clock_.now());
    ASSERT_EQ(seen.size(), 1u);
    ASSERT_EQ(xact::run(tm_,
                        [&](Transaction& txn) {
                          return outbox_->claim(txn, seen[0], "dies:" + std::to_string(i),
                                                clock_.now() + 30s, clock_.now(), 2);
                        }),
              ClaimResult::claimed);
    clock_.advance(30s);
  }
  Dispatcher d(outbox_, poison_handler(), options(2));
  EXPECT_EQ(d.dispatch_once(), 0u);
  EXPECT_TRUE(calls_.list().empty());
  EXPECT_TRUE(outbox_->is_dead(key));
  const auto dead = outbox_->dead();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attempts, 2u);
  EXPECT_NE(dead[0].last_error.find("dies:2"), std::string::npos) << dead[0].last_error;
  EXPECT_EQ(d.stats().dead, 1u);
}

TEST_F(DispatcherTest, ATableWithoutTheDeadAndLeaseColumnsGetsThem) {
  auto old = open_store(dir_ / "old.db");
  old->open_connection()->execute(
      "CREATE TABLE xact_outbox (msg_key TEXT PRIMARY KEY, topic TEXT NOT NULL,"
      " payload BLOB NOT NULL, created_us INTEGER NOT NULL, next_us INTEGER NOT NULL,"
      " attempts INTEGER NOT NULL DEFAULT 0, done_us INTEGER, last_error TEXT)");
  old->open_connection()->execute(
      "INSERT INTO xact_outbox (msg_key, topic, payload, created_us, next_us) VALUES"
      " ('k1', 't', X'01', 1, 1)");
  auto outbox = Outbox::create(old);
  std::vector<Message> got;
  Dispatcher d(outbox, [&](const Message& m) { got.push_back(m); });
  EXPECT_EQ(d.dispatch_once(), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "k1");
  EXPECT_TRUE(outbox->is_done("k1"));
  Outbox::create(old);  // a second create() finds the columns there
}

// Two dispatchers, each with its own store connections to the same file (as two processes would
// have), running their workers at once on messages posted from two threads: every message is
// delivered exactly once in the normal case (no crash, deliveries far shorter than the lease).
// Parameter: whether the two share one Outbox and store (two dispatcher threads of one process,
// whose SQLite writers take turns in the adapter's queue) or each has its own (as two processes
// would, waiting for each other in SQLite's busy handler).
class TwoDispatchersTest : public ::testing::TestWithParam<bool> {};

TEST_P(TwoDispatchersTest, OnOneTableEachMessageIsDeliveredOnce) {
  const bool shared = GetParam();
  testing::TempDir dir;
  auto outbox_a = Outbox::create(open_store(dir / "app.db"));
  auto outbox_b = shared ? outbox_a : Outbox::create(open_store(dir / "app.db"));
  Calls calls;
  std::atomic<int> by_a{0}, by_b{0};
  DispatcherOptions o;
  o.poll_interval = 5ms;
  o.batch = 16;
  Dispatcher a(
      outbox_a,
      [&](const Message& m) {
        calls.add(m);
        ++by_a;
      },
      o);
  Dispatcher b(
      outbox_b,
      [&](const Message& m) {
        calls.add(m);
        ++by_b;
      },
      o);
  constexpr int kThreads = 2, kPerThread = 100;
  std::vector<std::thread> posters;
  std::mutex keys_mutex;
  std::vector<std::string> keys;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      ExplicitTransactionManager tm;
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = xact::run(tm, [&](Transaction& txn) {
          return outbox_a->post(txn, "order", std::to_string(t * 1000 + i));
        });
        std::lock_guard lock(keys_mutex);
        keys.push_back(key);
      }
    });
  }
  for (auto& p : posters) p.join();
  // Both start on the same 200 due messages: they read the same batches and race to claim
  // each message.
  a.start();
  b.start();
  EXPECT_TRUE(a.drain(60s));
  a.stop();
  b.stop();
  ASSERT_EQ(keys.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (const auto& key : keys) EXPECT_EQ(calls.count(key), 1) << key;
  EXPECT_EQ(calls.list().size(), keys.size());
  EXPECT_EQ(a.stats().delivered + b.stats().delivered, keys.size());
  EXPECT_EQ(a.stats().unmarked + b.stats().unmarked, 0u);
  std::printf(
      "[ info ] delivered by a: %d, by b: %d; skipped (claimed by the other): %llu + %llu\n",
      by_a.load(), by_b.load(), static_cast<unsigned long long>(a.stats().skipped),
      static_cast<unsigned long long>(b.stats().skipped));
}

INSTANTIATE_TEST_SUITE_P(Stores, TwoDispatchersTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "OneStore" : "TwoStores";
                         });

}  // namespace
}  // namespace xact::outbox
