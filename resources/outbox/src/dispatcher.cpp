#include <xact/outbox/dispatcher.hpp>

#include <algorithm>
#include <exception>
#include <random>
#include <sstream>

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
      manager_(options_.manager) {
  if (!outbox_) throw UsageError("xact::outbox::Dispatcher: the outbox is null");
  if (!handler_) throw UsageError("xact::outbox::Dispatcher: the handler is empty");
  if (options_.batch == 0) options_.batch = 1;
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
  for (const Message& m : outbox_->due(options_.batch)) {
    if (stopping_.load(std::memory_order_relaxed)) break;  // stop(): the rest waits
    XACT_CRASH_POINT("outbox.before_delivery");
    std::exception_ptr failure;
    try {
      handler_(m);
    } catch (...) {
      failure = std::current_exception();
    }
    try {
      if (!failure) {
        XACT_CRASH_POINT("outbox.after_delivery");
        xact::run(
            manager_,
            [&](Transaction& txn) { outbox_->mark_done(txn, m.key, Outbox::Clock::now()); },
            options_.retry);
        ++delivered;
        delivered_.fetch_add(1, std::memory_order_relaxed);
      } else {
        failed_.fetch_add(1, std::memory_order_relaxed);
        const auto wait = backoff(m.attempts + 1);
        const std::string why = ascii(describe(failure));
        log(LogLevel::info, "xact::outbox: delivering message " + m.key + " (" + m.topic +
                                ") failed, attempt " + std::to_string(m.attempts + 1) +
                                "; again in " + std::to_string(wait.count()) + " ms: " + why);
        xact::run(
            manager_,
            [&](Transaction& txn) {
              outbox_->mark_failed(txn, m.key, Outbox::Clock::now() + wait, why);
            },
            options_.retry);
      }
    } catch (...) {
      // The message stays undone: it is delivered again (at least once), with the same key.
      if (!failure) unmarked_.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::warning, "xact::outbox: could not record the delivery of message " + m.key +
                                 " in " + outbox_->table() + " (it will be delivered again): " +
                                 describe(std::current_exception()));
    }
  }
  try {
    pending_.store(static_cast<std::int64_t>(outbox_->pending_count()));
  } catch (...) {
    pending_.store(-1);  // the gauge is left out rather than wrong
  }
  return delivered;
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
  return {delivered_.load(), failed_.load(), unmarked_.load(), pending_.load()};
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
      << "xact_outbox_unmarked_total" << label << ' ' << s.unmarked << '\n';
  if (s.pending >= 0) {
    out << "# HELP xact_outbox_pending Messages not marked done (at the end of the last round).\n"
        << "# TYPE xact_outbox_pending gauge\n"
        << "xact_outbox_pending" << label << ' ' << s.pending << '\n';
  }
  return out.str();
}

}  // namespace xact::outbox
