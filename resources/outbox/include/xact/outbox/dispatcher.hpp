// Dispatcher: delivers an Outbox's committed messages to a handler, at least once.
//
//   xact::outbox::Dispatcher dispatcher(outbox, [&](const xact::outbox::Message& m) {
//     mailer.send(m.topic, m.payload, /*Idempotency-Key*/ m.key);
//   });
//   dispatcher.start();           // a worker thread; or call dispatcher.dispatch_once() yourself
//
// For each due message (oldest first): the dispatcher claims it (a lease of `lease`, committed
// in a transaction of its own), calls the handler, and when the handler returns marks the
// message done (another transaction of the dispatcher's ExplicitTransactionManager, retried on a
// conflict). When the handler throws, the failure is recorded (attempts, last_error) and the
// message is due again after a back-off (doubling from backoff_initial up to backoff_max, with
// jitter); the failure that reaches max_attempts moves it to the dead state instead (kept with
// its last error, never delivered again until Outbox::requeue()). A failing message never holds
// back the others: it backs off and the round goes on. Delivery comes before the mark, so a
// crash (or a failed mark) between the two delivers the message again later with the same key:
// at least once.
//
// Several dispatchers (threads, processes, machines) may share one outbox table: a claim is a
// conditional UPDATE of the message's row, so exactly one dispatcher gets each delivery and the
// others skip the message; in the normal case (no crash, no delivery longer than the lease) each
// message is delivered once. A dispatcher that dies holding a claim delays that message until the
// lease ends; then another delivers it (same key), counting the interrupted delivery as a failed
// attempt. A handler still running when its lease ends may see its message delivered a second
// time by another dispatcher: keep `lease` well above the longest delivery (give the handler its
// own timeouts). Leases compare the dispatchers' clocks (µs since the epoch): on several
// machines, keep them synchronised (NTP) to well within the lease.
//
// Crash points (XACT_CRASH_AT): "outbox.before_delivery" (a committed message was read, not
// claimed yet), "outbox.after_claim" (the claim committed, the handler not called) and
// "outbox.after_delivery" (the handler returned, the mark not committed).
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
  /// The failed deliveries after which a message goes dead (the last one's error kept); 0: never
  /// (retried forever, every backoff_max). An interrupted delivery (its lease expired) counts.
  /// With the default back-off, 20 attempts span 9 to 12 minutes.
  std::uint32_t max_attempts = 20;
  /// How long a claim keeps other dispatchers off a message: longer than any delivery takes.
  /// A dispatcher that dies mid-delivery delays the message by up to this.
  std::chrono::milliseconds lease{30'000};
  /// The time used for due messages, back-offs and leases (tests move it); empty:
  /// std::chrono::system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock;
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
    std::uint64_t dead = 0;       ///< messages this dispatcher moved to the dead state
    std::uint64_t skipped = 0;    ///< due messages another dispatcher claimed first
    std::int64_t pending = -1;    ///< not done nor dead after the last round (-1: not known)
    std::int64_t dead_now = -1;   ///< dead after the last round (-1: not known)
  };

  /// Throws UsageError for a null outbox or an empty handler.
  Dispatcher(std::shared_ptr<Outbox> outbox, Handler handler, DispatcherOptions options = {});
  /// Stops the worker (waiting for the message in hand).
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  /// One round: claims and delivers the messages due now (up to batch) and returns how many were
  /// delivered and marked done; then counts the messages left (Stats::pending, dead_now). Throws
  /// the store's error when the messages cannot be read; a failed claim or mark is logged (and a
  /// failed mark counted, Stats::unmarked), not thrown.
  std::size_t dispatch_once();
  /// Rounds until pending_count() is zero (dead messages do not count) or `timeout` passes;
  /// returns whether it is zero. For tests and shutdown: messages backing off, and those leased
  /// by a dispatcher that died, are waited for.
  bool drain(std::chrono::milliseconds timeout);

  /// Starts the worker thread: a round whenever a post commits in this process, and at least
  /// every poll_interval; errors are logged and the round is tried again after poll_interval.
  void start();
  /// Stops and joins the worker. Idempotent.
  void stop();

  Stats stats() const;
  /// The counters in the Prometheus text exposition format (xact_outbox_delivered_total,
  /// _failed_total, _unmarked_total, _dead_total, _skipped_total, and the gauges
  /// xact_outbox_pending and xact_outbox_dead: the messages not done, and the dead ones, at the
  /// end of the last round), labelled table="...". Reads no database: an HTTP io thread may call
  /// it (xact::http::Service::add_metrics).
  std::string metrics_text() const;

  /// This dispatcher's identity in claims (a UUID; a claim is "<id>:<n>").
  const std::string& id() const noexcept { return id_; }

 private:
  void run_worker();
  std::chrono::milliseconds backoff(std::uint32_t attempts);
  Outbox::Clock::time_point now() const;
  void deliver(const Message& m, std::size_t& delivered);

  std::shared_ptr<Outbox> outbox_;
  Handler handler_;
  DispatcherOptions options_;
  ExplicitTransactionManager manager_;
  std::mutex round_mutex_;  // one round at a time
  std::string id_;
  std::uint64_t claims_ = 0;  // under round_mutex_
  std::atomic<std::uint64_t> delivered_{0}, failed_{0}, unmarked_{0}, dead_{0}, skipped_{0};
  std::atomic<std::int64_t> pending_{-1}, dead_now_{-1};
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace xact::outbox
