#include <xact/retry.hpp>

#include <algorithm>
#include <random>
#include <thread>

#include <xact/diagnostics.hpp>

namespace xact {

namespace {

std::chrono::microseconds jittered(std::chrono::microseconds backoff) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  std::uniform_int_distribution<std::int64_t> dist(0, backoff.count());
  return std::chrono::microseconds(dist(rng));
}

RetryDecision stop(RetryDecision::Reason reason, std::chrono::microseconds elapsed) {
  RetryDecision d;
  d.reason = reason;
  d.elapsed = elapsed;
  return d;
}

}  // namespace

RetryState::RetryState(RetryPolicy policy)
    : policy_(std::move(policy)), backoff_(policy_.initial_backoff) {
  if (policy_.attempts < 0) {
    throw UsageError("RetryPolicy::attempts must be 0 (no limit but the deadline) or more");
  }
  if (policy_.attempts == 0 && policy_.deadline <= std::chrono::milliseconds::zero()) {
    throw UsageError(
        "RetryPolicy: neither an attempt limit nor a deadline; set `attempts` or `deadline` so "
        "that the retries end");
  }
  if (!policy_.now) policy_.now = [] { return RetryPolicy::Clock::now(); };
}

bool RetryState::begin_attempt() {
  if (policy_.attempts > 0 && attempt_ >= policy_.attempts) return false;
  if (attempt_ == 0) started_ = policy_.now();
  ++attempt_;
  return true;
}

RetryDecision RetryState::failed(Transaction& txn, std::exception_ptr error) {
  // Ask before the abort: it drops the participants whose RetryClassifier may say yes.
  const bool retryable = txn.is_retryable(error);
  const auto keep = txn.shared_from_this();  // the manager may drop its reference in abort()
  txn.abort();
  return failed(std::move(error), retryable);
}

RetryDecision RetryState::failed(std::exception_ptr error, bool retryable) {
  errors_.push_back(error);
  // Before the first attempt began there is nothing to retry (and no clock started).
  if (attempt_ == 0) return stop(RetryDecision::Reason::not_retryable, {});
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(policy_.now() - started_);
  if (!retryable) return stop(RetryDecision::Reason::not_retryable, elapsed);
  if (policy_.attempts > 0 && attempt_ >= policy_.attempts) {
    return stop(RetryDecision::Reason::no_attempt_left, elapsed);
  }
  auto wait = policy_.jitter ? jittered(backoff_) : backoff_;
  if (policy_.deadline > std::chrono::milliseconds::zero()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(policy_.deadline) - elapsed;
    if (left <= std::chrono::microseconds::zero()) {
      return stop(RetryDecision::Reason::deadline_passed, elapsed);
    }
    wait = std::min(wait, left);
  }
  backoff_ = std::min(policy_.max_backoff,
                      std::chrono::microseconds(static_cast<std::int64_t>(
                          static_cast<double>(backoff_.count()) * policy_.multiplier)));
  if (policy_.on_retry) policy_.on_retry(RetryEvent{attempt_, error, wait, elapsed});
  detail::count(detail::Counter::retries);
  if (log_enabled(LogLevel::info)) {
    // Appended piece by piece: GCC 12 -O3 reports a false -Wrestrict for `"..." + to_string()`.
    std::string message = "retrying transaction (attempt ";
    message += std::to_string(attempt_ + 1);
    if (policy_.attempts > 0) {
      message += " of ";
      message += std::to_string(policy_.attempts);
    }
    message += ", ";
    message += std::to_string(elapsed.count() / 1000);
    message += " ms after the first) after: ";
    message += error_message(error);
    log(LogLevel::info, message);
  }
  RetryDecision d;
  d.retry = true;
  d.reason = RetryDecision::Reason::retry;
  d.wait = wait;
  d.elapsed = elapsed;
  return d;
}

Attempts::Attempts(TransactionManager& manager, RetryPolicy policy)
    : manager_(manager), sleep_(policy.sleep), state_(std::move(policy)) {
  if (!sleep_) sleep_ = [](std::chrono::microseconds d) { std::this_thread::sleep_for(d); };
}

Attempts::~Attempts() {
  if (txn_) txn_->abort();
}

bool Attempts::next() {
  if (done_) return false;
  if (!state_.begin_attempt()) return false;
  txn_ = manager_.begin().shared_from_this();
  return true;
}

Transaction& Attempts::transaction() {
  if (!txn_) throw UsageError("Attempts::transaction(): call next() first");
  return *txn_;
}

CommitOutcome Attempts::commit() {
  outcome_ = transaction().commit();
  done_ = true;
  return outcome_;
}

void Attempts::failed(std::exception_ptr error) {
  const RetryDecision decision =
      txn_ ? state_.failed(*txn_, error) : state_.failed(error, /*retryable=*/false);
  if (!decision) std::rethrow_exception(error);
  sleep_(decision.wait);
}

}  // namespace xact
