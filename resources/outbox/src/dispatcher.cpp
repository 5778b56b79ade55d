#include <xact/outbox/dispatcher.hpp>

#include <algorithm>
#include <exception>
#include <random>
#include <sstream>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <xact/crash_point.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>

namespace xact::outbox {
namespace {

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

// Stored in a TEXT column of any dialect: printable ASCII only, bounded.
std::string ascii(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 1000)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

}  // namespace

Dispatcher::Dispatcher(std::shared_ptr<Outbox> outbox, Handler handler, DispatcherOptions options)
    : outbox_(std::move(outbox)),
      handler_(std::move(handler)),
      options_(std::move(options)),
      manager_(options_.manager),
      id_(boost::uuids::to_string(boost::uuids::random_generator()())) {
  if (!outbox_) throw UsageError("xact::outbox::Dispatcher: the outbox is null");
  if (!handler_) throw UsageError("xact::outbox::Dispatcher: the handler is empty");
  if (options_.batch == 0) options_.batch = 1;
  if (options_.lease.count() <= 0) {
    throw UsageError("xact::outbox::Dispatcher: the lease must be positive");
  }
}

Outbox::Clock::time_point Dispatcher::now() const {
  return options_.clock ? options_.clock() : Outbox::Clock::now();
}

Dispatcher::~Dispatcher() { stop(); }

std::chrono::milliseconds Dispatcher::backoff(std::uint32_t attempts) {
  const auto max = std::max(options_.backoff_max, options_.backoff_initial);
  auto wait = options_.backoff_initial;
  for (std::uint32_t i = 1; i < attempts && wait < max; ++i) wait *= 2;
  wait = std::min(wait, max);
  thread_local std::minstd_rand random{std::random_device{}()};
  const double jitter = std::clamp(options_.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> factor(1.0 - jitter, 1.0);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(wait.count()) * factor(random)));
}

std::size_t Dispatcher::dispatch_once() {
  std::lock_guard round(round_mutex_);
  std::size_t delivered = 0;
  for (const Message& m : outbox_->due(options_.batch, now())) {
    if (stopping_.load(std::memory_order_relaxed)) break;  // stop(): the rest waits
    XACT_CRASH_POINT("outbox.before_delivery");
    deliver(m, delivered);
  }
  try {
    const Outbox::Counts counts = outbox_->counts();
    pending_.store(static_cast<std::int64_t>(counts.pending));
    dead_now_.store(static_cast<std::int64_t>(counts.dead));
  } catch (...) {
    pending_.store(-1);  // the gauges are left out rather than wrong
    dead_now_.store(-1);
  }
  return delivered;
}

void Dispatcher::deliver(const Message& seen, std::size_t& delivered) {
  const std::string token = id_ + ":" + std::to_string(++claims_);
  ClaimResult claim = ClaimResult::taken;
  try {
    claim = xact::run(
        manager_,
        [&](Transaction& txn) {
          const auto t = now();
          return outbox_->claim(txn, seen, token, t + options_.lease, t, options_.max_attempts);
        },
        options_.retry);
  } catch (...) {
    log(LogLevel::warning, "xact::outbox: could not claim message " + seen.key + " in " +
                               outbox_->table() +
                               " (left for a later round): " + describe(std::current_exception()));
    return;
  }
  if (claim == ClaimResult::taken) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (claim == ClaimResult::dead) {
    dead_.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::warning, "xact::outbox: message " + seen.key + " (" + seen.topic +
                               ") is dead after " + std::to_string(seen.attempts + 1) +
                               " attempts, the last one interrupted (its lease expired)");
    return;
  }
  XACT_CRASH_POINT("outbox.after_claim");
  Message m = seen;
  if (!seen.lease_owner.empty()) ++m.attempts;  // the interrupted delivery, counted by the claim
  const auto started = std::chrono::steady_clock::now();
  std::exception_ptr failure;
  try {
    handler_(m);
  } catch (...) {
    failure = std::current_exception();
  }
  if (std::chrono::steady_clock::now() - started >= options_.lease) {
    log(LogLevel::warning, "xact::outbox: delivering message " + m.key +
                               " took longer than the lease (" +
                               std::to_string(options_.lease.count()) +
                               " ms): another dispatcher may have delivered it too");
  }
  try {
    if (!failure) {
      XACT_CRASH_POINT("outbox.after_delivery");
      xact::run(
          manager_, [&](Transaction& txn) { outbox_->mark_done(txn, m.key, now()); },
          options_.retry);
      ++delivered;
      delivered_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    failed_.fetch_add(1, std::memory_order_relaxed);
    const std::uint32_t attempts = m.attempts + 1;
    const std::string why = ascii(describe(failure));
    const bool last = options_.max_attempts != 0 && attempts >= options_.max_attempts;
    const auto wait = last ? std::chrono::milliseconds(0) : backoff(attempts);
    const bool recorded = xact::run(
        manager_,
        [&](Transaction& txn) {
          return last ? outbox_->mark_dead(txn, m.key, token, now(), why)
                      : outbox_->mark_failed(txn, m.key, token, now() + wait, why);
        },
        options_.retry);
    if (!recorded) {
      log(LogLevel::info, "xact::outbox: delivering message " + m.key + " (" + m.topic +
                              ") failed, but its claim was lost (the lease expired and another "
                              "dispatcher has it): " +
                              why);
    } else if (last) {
      dead_.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::warning, "xact::outbox: message " + m.key + " (" + m.topic +
                                 ") is dead after " + std::to_string(attempts) +
                                 " failed attempts (Outbox::requeue to retry it): " + why);
    } else {
      log(LogLevel::info, "xact::outbox: delivering message " + m.key + " (" + m.topic +
                              ") failed, attempt " + std::to_string(attempts) + "; again in " +
                              std::to_string(wait.count()) + " ms: " + why);
    }
  } catch (...) {
    // The message stays undone: when its lease ends it is delivered again (at least once), with
    // the same key.
    if (!failure) unmarked_.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::warning, "xact::outbox: could not record the delivery of message " + m.key +
                               " in " + outbox_->table() + " (it will be delivered again): " +
                               describe(std::current_exception()));
  }
}

bool Dispatcher::drain(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    dispatch_once();
    if (pending_.load() == 0) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Dispatcher::start() {
  if (worker_.joinable()) return;
  stopping_.store(false);
  worker_ = std::thread([this] { run_worker(); });
}

void Dispatcher::stop() {
  if (!worker_.joinable()) return;
  stopping_.store(true);
  outbox_->notify();  // after stopping_: the worker either sees the flag or is woken
  worker_.join();
  stopping_.store(false);
}

void Dispatcher::run_worker() {
  // `seen` is read before each check of stopping_, and stop() sets stopping_ before it
  // notifies: the worker either sees the flag or its wait returns at once (no lost wake-up).
  std::uint64_t seen = outbox_->notifications();
  while (!stopping_.load()) {
    try {
      // A full batch means more may be due: go again at once.
      while (!stopping_.load() && dispatch_once() >= options_.batch) {
      }
    } catch (...) {
      log(LogLevel::warning, "xact::outbox: reading " + outbox_->table() +
                                 " failed (trying again in " +
                                 std::to_string(options_.poll_interval.count()) +
                                 " ms): " + describe(std::current_exception()));
    }
    if (stopping_.load()) break;
    seen = outbox_->wait_for_notification(seen, options_.poll_interval);
  }
}

Dispatcher::Stats Dispatcher::stats() const {
  return {delivered_.load(), failed_.load(),  unmarked_.load(), dead_.load(),
          skipped_.load(),   pending_.load(), dead_now_.load()};
}

std::string Dispatcher::metrics_text() const {
  const std::string label = "{table=\"" + outbox_->table() + "\"}";
  std::ostringstream out;
  const Stats s = stats();
  out << "# HELP xact_outbox_delivered_total Messages delivered and marked done.\n"
      << "# TYPE xact_outbox_delivered_total counter\n"
      << "xact_outbox_delivered_total" << label << ' ' << s.delivered << '\n'
      << "# HELP xact_outbox_failed_total Deliveries whose handler threw (retried later).\n"
      << "# TYPE xact_outbox_failed_total counter\n"
      << "xact_outbox_failed_total" << label << ' ' << s.failed << '\n'
      << "# HELP xact_outbox_unmarked_total Deliveries whose mark failed (delivered again).\n"
      << "# TYPE xact_outbox_unmarked_total counter\n"
      << "xact_outbox_unmarked_total" << label << ' ' << s.unmarked << '\n'
      << "# HELP xact_outbox_dead_total Messages this dispatcher moved to the dead state.\n"
      << "# TYPE xact_outbox_dead_total counter\n"
      << "xact_outbox_dead_total" << label << ' ' << s.dead << '\n'
      << "# HELP xact_outbox_skipped_total Due messages another dispatcher claimed first.\n"
      << "# TYPE xact_outbox_skipped_total counter\n"
      << "xact_outbox_skipped_total" << label << ' ' << s.skipped << '\n';
  if (s.pending >= 0) {
    out << "# HELP xact_outbox_pending Messages not done and not dead (at the end of the last "
           "round).\n"
        << "# TYPE xact_outbox_pending gauge\n"
        << "xact_outbox_pending" << label << ' ' << s.pending << '\n';
  }
  if (s.dead_now >= 0) {
    out << "# HELP xact_outbox_dead Messages in the dead state, never delivered until requeued "
           "(at the end of the last round).\n"
        << "# TYPE xact_outbox_dead gauge\n"
        << "xact_outbox_dead" << label << ' ' << s.dead_now << '\n';
  }
  return out.str();
}

}  // namespace xact::outbox
