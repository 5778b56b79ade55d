// Dispatcher: delivers an Outbox's committed messages to a handler, at least once.
//
//   xact::outbox::Dispatcher dispatcher(outbox, [&](const xact::outbox::Message& m) {
//     mailer.send(m.topic, m.payload, /*Idempotency-Key*/ m.key);
//   });
//   dispatcher.start();           // a worker thread; or call dispatcher.dispatch_once() yourself
//
// For each due message (oldest first): the handler is called with it; when it returns, the
// message is marked done in a transaction of its own (the dispatcher's ExplicitTransactionManager,
// retried on a conflict). When the handler throws, the failure is recorded in the same way and the
// message is due again after a back-off (doubling from backoff_initial up to backoff_max, with
// jitter), forever: a message is never dropped. Delivery comes before the mark, so a crash (or a
// failed mark) between the two delivers the message again later with the same key: at least
// once. In the normal case (one dispatcher, no crash) each message is delivered exactly once.
//
// Run one dispatcher per outbox table at a time: two would each deliver the same messages (still
// at least once, the key deduplicates, but twice the work).
//
// Crash points (XACT_CRASH_AT): "outbox.before_delivery" (a committed message was read, the
// handler not called yet) and "outbox.after_delivery" (the handler returned, the mark not
// committed).
//
// Thread-safety: dispatch_once() may be called from any thread (calls run one at a time, also
// against the worker); start() and stop() from one thread. The handler is called on the thread
// that dispatches, one message at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <xact/manager.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/retry.hpp>

namespace xact::outbox {

/// Delivers one message; throwing leaves it for a later attempt.
using Handler = std::function<void(const Message&)>;

struct DispatcherOptions {
  /// Messages read per round.
  std::size_t batch = 100;
  /// How long the worker sleeps when nothing was posted in this process (messages posted by
  /// other processes, and those backing off, are found at the latest after this).
  std::chrono::milliseconds poll_interval{500};
  /// The back-off after a failed delivery: backoff_initial * 2^(attempts - 1), at most
  /// backoff_max, times a random factor in [1 - jitter, 1].
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{60'000};
  double jitter = 0.25;
  /// For the mark transactions (they have one participant: no decision log is needed).
  ManagerOptions manager{};
  RetryPolicy retry{};
};

class Dispatcher {
 public:
  struct Stats {
    std::uint64_t delivered = 0;  ///< handler returned and the message was marked done
    std::uint64_t failed = 0;     ///< handler threw (the message backs off)
    std::uint64_t unmarked = 0;   ///< handler returned but the mark failed (delivered again)
    std::int64_t pending = -1;    ///< not done at the end of the last round (-1: not known)
  };

  /// Throws UsageError for a null outbox or an empty handler.
  Dispatcher(std::shared_ptr<Outbox> outbox, Handler handler, DispatcherOptions options = {});
  /// Stops the worker (waiting for the message in hand).
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// One round: delivers the messages due now (up to batch) and returns how many were delivered
  /// and marked done; then counts the messages left (Stats::pending). Throws the store's error when
  /// the messages cannot be read; a failed mark is logged and counted (Stats::unmarked), not
  /// thrown.
  std::size_t dispatch_once();
  /// Rounds until pending_count() is zero or `timeout` passes; returns whether it is zero. For
  /// tests and shutdown: messages backing off are waited for.
  bool drain(std::chrono::milliseconds timeout);

  /// Starts the worker thread: a round whenever a post commits in this process, and at least
  /// every poll_interval; errors are logged and the round is tried again after poll_interval.
  void start();
  /// Stops and joins the worker. Idempotent.
  void stop();

  Stats stats() const;
  /// The counters in the Prometheus text exposition format (xact_outbox_delivered_total,
  /// _failed_total, _unmarked_total, and the gauge xact_outbox_pending: the messages not done at
  /// the end of the last round), labelled table="...". Reads no database: an HTTP io thread may
  /// call it (xact::http::Service::add_metrics).
  std::string metrics_text() const;

 private:
  void run_worker();
  std::chrono::milliseconds backoff(std::uint32_t attempts);

  std::shared_ptr<Outbox> outbox_;
  Handler handler_;
  DispatcherOptions options_;
  ExplicitTransactionManager manager_;
  std::mutex round_mutex_;  // one round at a time
  std::atomic<std::uint64_t> delivered_{0}, failed_{0}, unmarked_{0};
  std::atomic<std::int64_t> pending_{-1};
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace xact::outbox
