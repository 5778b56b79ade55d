// GroupCommitQueue: writers queued during a write share the next batch, records reach the file
// in queue order, each writer learns its own batch's outcome, and after a failed write or sync
// nothing is acknowledged any more (fail-stop). The log under test appends to a file of a
// FaultInjectionEnv, so "durable" is checked by crashing it. Run under ThreadSanitizer too.
#include <xact/io/group_commit.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <xact/errors.hpp>
#include <xact/io/fault_injection_env.hpp>

namespace xact::io {
namespace {

constexpr const char* kPath = "/d/log";

struct Record : GroupCommitWriter {
  explicit Record(std::string p) : payload(std::move(p)) {}
  std::string payload;
  std::uint64_t sequence = 0;  // given under the log's mutex when queued
};

// What the queue's owner throws after a failure: its own type and message, the cause inside.
struct LogStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

// A write that waits, while closed, until the test opens it: a sync as slow as the test needs,
// without guessing a duration.
class Gate {
 public:
  void close() {
    std::lock_guard l(m_);
    closed_ = true;
  }
  void open() {
    {
      std::lock_guard l(m_);
      closed_ = false;
    }
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock l(m_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait(l, [&] { return !closed_; });
  }
  int arrived() {
    std::lock_guard l(m_);
    return arrived_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool closed_ = false;
  int arrived_ = 0;
};

// A minimal log on the queue: each record is a line of the file; one append and one sync per
// batch. Records what the queue asked of it.
class TestLog final : public GroupCommitQueue<Record>::Handler {
 public:
  explicit TestLog(FaultInjectionEnv& env, std::size_t max_batch = 1000)
      : env_(env), max_batch_(max_batch) {
    env.create_dir("/d");
    env.sync_dir("/");
    file_ = env.new_writable_file(kPath);
    env.sync_dir("/d");
  }

  void append(std::string payload) {
    auto r = std::make_shared<Record>(std::move(payload));
    std::unique_lock l(mu_);
    r->sequence = next_sequence_++;
    queue_.submit(l, r);
  }

  std::size_t queued() {
    std::lock_guard l(mu_);
    return queue_.size();
  }
  std::vector<std::size_t> batches() {
    std::lock_guard l(mu_);
    return batches_;
  }
  std::vector<std::string> acknowledged() {
    std::lock_guard l(mu_);
    return acknowledged_;
  }
  std::vector<std::string> abandoned() {
    std::lock_guard l(mu_);
    return abandoned_;
  }
  int failure_errors() {
    std::lock_guard l(mu_);
    return failure_errors_;
  }
  bool failed() {
    std::lock_guard l(mu_);
    return queue_.failed();
  }
  void fail_stop(const std::string& why) {
    std::lock_guard l(mu_);
    queue_.fail_stop(std::make_exception_ptr(LogStopped(why)));
  }
  void wait_idle() {
    std::unique_lock l(mu_);
    queue_.wait_idle(l);
  }

  Gate gate;
  std::atomic<bool> select_throws{false};
  std::function<void()> during_write;  // set before any writer runs

 private:
  std::size_t select(Batch queued) override {
    if (select_throws) throw StorageError("select failed");
    return std::min(queued.size(), max_batch_);
  }
  void write(Batch batch) override {
    std::string buffer;
    std::uint64_t expected = written_sequence_;
    for (const Record& r : batch) {
      // Queue order is the order the records were given their sequence numbers under mu_.
      EXPECT_EQ(r.sequence, expected++);
      buffer += r.payload + "\n";
    }
    gate.pass();
    if (during_write) during_write();
    file_->append(buffer);
    file_->sync();
    written_sequence_ = expected;  // only the leader touches it
  }
  void complete(Batch batch) override {
    batches_.push_back(batch.size());
    for (const Record& r : batch) acknowledged_.push_back(r.payload);
  }
  void abandon(Batch writers) override {
    for (const Record& r : writers) abandoned_.push_back(r.payload);
  }
  std::exception_ptr failure_error(std::exception_ptr cause) override {
    ++failure_errors_;
    return std::make_exception_ptr(LogStopped("test log stopped: " + message_of(cause)));
  }

  FaultInjectionEnv& env_;
  const std::size_t max_batch_;
  std::unique_ptr<WritableFile> file_;
  std::uint64_t written_sequence_ = 0;

  std::mutex mu_;
  GroupCommitQueue<Record> queue_{mu_, *this};  // guarded by mu_
  std::uint64_t next_sequence_ = 0;             // guarded by mu_
  std::vector<std::size_t> batches_;            // guarded by mu_
  std::vector<std::string> acknowledged_;       // guarded by mu_
  std::vector<std::string> abandoned_;          // guarded by mu_
  int failure_errors_ = 0;                      // guarded by mu_
};

template <typename Condition>
void wait_for(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    out.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// Starts `n` writers appending "<prefix><i>" and waits until all of them are queued behind
// the (gated) leader.
std::vector<std::thread> queue_writers(TestLog& log, int n, const std::string& prefix,
                                       std::vector<std::exception_ptr>& errors) {
  const std::size_t before = log.queued();
  errors.resize(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&log, &errors, prefix, i] {
      try {
        log.append(prefix + std::to_string(i));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
    // One at a time, so their queue order is their number.
    wait_for([&] { return log.queued() == before + i + 1; });
  }
  return threads;
}

TEST(GroupCommitQueue, ARecordIsDurableWhenAppendReturns) {
  FaultInjectionEnv env;
  TestLog log(env);
  const auto syncs = env.syncs();
  log.append("one");
  EXPECT_EQ(env.syncs(), syncs + 1);
  env.crash();
  EXPECT_EQ(env.read_file(kPath), "one\n");
  EXPECT_EQ(log.batches(), std::vector<std::size_t>{1});
}

TEST(GroupCommitQueue, WritersQueuedDuringAWriteShareTheNextBatch) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.gate.close();
  std::thread leader([&] { log.append("first"); });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 5, "w", errors);
  const auto syncs = env.syncs();
  log.gate.open();
  leader.join();
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_FALSE(e);
  EXPECT_EQ(log.batches(), (std::vector<std::size_t>{1, 5}));
  EXPECT_EQ(env.syncs(), syncs + 2);  // the leader's own, then one for the five
  env.crash();
  EXPECT_EQ(lines_of(env.read_file(kPath)),
            (std::vector<std::string>{"first", "w0", "w1", "w2", "w3", "w4"}));
}

TEST(GroupCommitQueue, TheHandlerBoundsABatch) {
  FaultInjectionEnv env;
  TestLog log(env, /*max_batch=*/2);
  log.gate.close();
  std::thread leader([&] { log.append("first"); });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 5, "w", errors);
  log.gate.open();
  leader.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(log.batches(), (std::vector<std::size_t>{1, 2, 2, 1}));
  EXPECT_EQ(log.acknowledged(), (std::vector<std::string>{"first", "w0", "w1", "w2", "w3", "w4"}));
}

// Many writers, no gate: whatever the scheduler does, every record is written exactly once, in
// queue order (checked in write()), and is durable when its append returns.
TEST(GroupCommitQueue, ConcurrentWritersAreEachWrittenOnceInQueueOrder) {
  FaultInjectionEnv env;
  env.set_sync_delay(std::chrono::microseconds(200));  // let them pile up
  TestLog log(env, /*max_batch=*/7);
  constexpr int kThreads = 12;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> durable_checks_failed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string p = std::to_string(t) + "." + std::to_string(i);
        log.append(p);
        // Durable on return: acknowledged, hence synced (complete() runs after the sync).
        const auto ack = log.acknowledged();
        if (std::find(ack.begin(), ack.end(), p) == ack.end()) ++durable_checks_failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(durable_checks_failed, 0);
  log.wait_idle();
  const auto batches = log.batches();
  std::size_t total = 0;
  for (auto b : batches) {
    EXPECT_LE(b, 7u);
    total += b;
  }
  EXPECT_EQ(total, std::size_t{kThreads * kPerThread});
  env.crash();
  auto lines = lines_of(env.read_file(kPath));
  EXPECT_EQ(lines, log.acknowledged());  // the file holds them in the order acknowledged
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(std::adjacent_find(lines.begin(), lines.end()), lines.end());
  EXPECT_EQ(lines.size(), std::size_t{kThreads * kPerThread});
}

TEST(GroupCommitQueue, AFailedSyncFailsTheBatchWithTheOwnersError) {
  FaultInjectionEnv env;
  TestLog log(env);
  env.fail_nth_sync(1);
  try {
    log.append("lost");
    FAIL() << "append returned after a failed sync";
  } catch (const LogStopped& e) {
    EXPECT_NE(std::string(e.what()).find("test log stopped: "), std::string::npos) << e.what();
  }
  EXPECT_TRUE(log.failed());
  EXPECT_TRUE(log.acknowledged().empty());
  EXPECT_EQ(log.abandoned(), std::vector<std::string>{"lost"});
  env.crash();
  EXPECT_EQ(env.read_file(kPath), "");  // the failed sync made nothing durable
}

TEST(GroupCommitQueue, NothingIsWrittenOrAcknowledgedAfterAFailedSync) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.append("before");
  env.fail_nth_sync(1);
  EXPECT_THROW(log.append("failed"), LogStopped);
  const auto writes = env.writes();
  const auto syncs = env.syncs();
  // The sync would succeed now; the queue must not try it.
  for (int i = 0; i < 3; ++i) EXPECT_THROW(log.append("after"), LogStopped);
  EXPECT_EQ(env.writes(), writes);
  EXPECT_EQ(env.syncs(), syncs);
  EXPECT_EQ(log.acknowledged(), std::vector<std::string>{"before"});
  EXPECT_EQ(log.failure_errors(), 1);  // built once, at the failure
  // Refused before queueing: the owner has nothing to undo for them.
  EXPECT_EQ(log.abandoned(), std::vector<std::string>{"failed"});
}

TEST(GroupCommitQueue, WritersQueuedBehindAFailedBatchFailWithIt) {
  FaultInjectionEnv env;
  TestLog log(env, /*max_batch=*/2);
  log.gate.close();
  std::exception_ptr leader_error;
  std::thread leader([&] {
    try {
      log.append("first");
    } catch (...) {
      leader_error = std::current_exception();
    }
  });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 4, "w", errors);
  env.fail_nth_sync(1);
  log.gate.open();
  leader.join();
  for (auto& t : threads) t.join();
  ASSERT_TRUE(leader_error);
  EXPECT_THROW(std::rethrow_exception(leader_error), LogStopped);
  for (const auto& e : errors) {
    ASSERT_TRUE(e);
    EXPECT_THROW(std::rethrow_exception(e), LogStopped);
  }
  EXPECT_TRUE(log.acknowledged().empty());
  EXPECT_EQ(log.abandoned(), (std::vector<std::string>{"first", "w0", "w1", "w2", "w3"}));
  EXPECT_EQ(log.gate.arrived(), 1);  // no later batch was tried
}

// Each writer learns the outcome of its own batch: the first batch succeeded, the second failed.
TEST(GroupCommitQueue, EachWriterGetsItsOwnBatchsOutcome) {
  FaultInjectionEnv env;
  TestLog log(env, /*max_batch=*/2);
  log.gate.close();
  std::thread leader([&] { log.append("first"); });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 4, "w", errors);
  env.fail_nth_sync(2);  // the leader's succeeds; the batch {w0, w1} fails
  log.gate.open();
  leader.join();  // did not throw
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_TRUE(e);
  EXPECT_EQ(log.acknowledged(), std::vector<std::string>{"first"});
  EXPECT_EQ(log.abandoned(), (std::vector<std::string>{"w0", "w1", "w2", "w3"}));
  env.crash();
  EXPECT_EQ(env.read_file(kPath), "first\n");
}

TEST(GroupCommitQueue, ATornWriteAcknowledgesNothing) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.append("durable");
  env.fail_nth_write(1, /*torn=*/true);
  EXPECT_THROW(log.append("a torn record"), LogStopped);
  EXPECT_THROW(log.append("later"), LogStopped);
  env.crash();
  EXPECT_EQ(env.read_file(kPath), "durable\n");
  EXPECT_EQ(log.acknowledged(), std::vector<std::string>{"durable"});
}

TEST(GroupCommitQueue, ASelectThatThrowsStopsTheQueue) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.select_throws = true;
  EXPECT_THROW(log.append("x"), LogStopped);
  log.select_throws = false;
  EXPECT_THROW(log.append("y"), LogStopped);
  EXPECT_EQ(env.read_file(kPath), "");
}

// A failure the owner finds outside the queue (a sync in a maintenance step) stops it too: the
// batch being written is not acknowledged, the writers queued behind it are abandoned.
TEST(GroupCommitQueue, FailStopDuringAWriteAcknowledgesNothingMore) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.gate.close();
  std::exception_ptr leader_error;
  std::thread leader([&] {
    try {
      log.append("being written");
    } catch (...) {
      leader_error = std::current_exception();
    }
  });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 2, "w", errors);
  log.fail_stop("a maintenance sync failed");
  log.gate.open();
  leader.join();
  for (auto& t : threads) t.join();
  ASSERT_TRUE(leader_error);
  EXPECT_EQ(message_of(leader_error), "a maintenance sync failed");
  for (const auto& e : errors) EXPECT_EQ(message_of(e), "a maintenance sync failed");
  EXPECT_TRUE(log.acknowledged().empty());
  EXPECT_EQ(log.abandoned(), (std::vector<std::string>{"being written", "w0", "w1"}));
  EXPECT_EQ(log.failure_errors(), 0);  // the owner's error is used as given
  EXPECT_EQ(log.gate.arrived(), 1);
}

TEST(GroupCommitQueue, WaitIdleReturnsOnceTheQueueDrained) {
  FaultInjectionEnv env;
  TestLog log(env);
  log.gate.close();
  std::thread leader([&] { log.append("first"); });
  wait_for([&] { return log.gate.arrived() == 1; });
  std::vector<std::exception_ptr> errors;
  auto threads = queue_writers(log, 3, "w", errors);
  std::atomic<bool> idle{false};
  std::thread waiter([&] {
    log.wait_idle();
    idle = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(idle);
  log.gate.open();
  waiter.join();
  EXPECT_TRUE(idle);
  EXPECT_EQ(log.queued(), 0u);
  EXPECT_EQ(log.acknowledged().size(), 4u);
  leader.join();
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace xact::io
