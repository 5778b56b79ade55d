// Retrying a whole transaction after a transient error (a conflict, a serialization failure,
// a deadlock, a lost connection before the decision), for up to a deadline, with exponential
// back-off and full jitter.
//
//   auto total = xact::run(tm, [&](xact::Transaction& txn) { ...; return value; });
//
// or, to learn what happened (the CommitOutcome with its pending completions, how many attempts
// it took, and the errors of the failed ones):
//
//   auto r = xact::run_with_outcome(tm, [&](xact::Transaction& txn) { ...; return value; });
//   r.value; r.outcome.pending; r.attempts; r.errors;
//
// or, where the body cannot be a function, the attempts loop:
//
//   for (xact::Attempts a(tm); a.next();) {
//     try { work(a.transaction()); a.commit(); }
//     catch (...) { a.failed(std::current_exception()); }   // rethrows when not retried
//   }
//
// The default policy retries for up to 10 s after the first attempt began, waiting between
// attempts a uniform time in [0, backoff] (full jitter), the backoff growing from 2 ms to 500 ms.
// A deadline rather than a count: three attempts run out under contention, and no fixed count
// fits a server restart, which takes seconds; ten seconds covers one and still ends.
//
// An error is retried when Transaction::is_retryable says so (a TransientError, or a
// participant's RetryClassifier, asked before the abort drops the participant: the SQL
// resources say yes to a ConnectionLost, which they only raise before the decision, when the
// server has rolled the branch back; the next attempt gets a fresh connection from the pool,
// whose health check drops the dead ones). An InDoubtError is never retried: the commit may
// have happened. Each attempt is a new transaction; side effects outside the participants run
// again, so defer them to after-commit hooks. Thread-safety: an Attempts object belongs to one
// attempt loop.
//
// A back-off a coroutine can await. Attempts and run wait in RetryPolicy::sleep, which blocks the
// thread. A coroutine (Boost.Asio, one thread serving many requests) keeps the decisions and
// waits on a timer instead: a RetryState makes the same decisions as the loop (what is retried,
// the attempt limit, the deadline, the back-off with its jitter, on_retry, the retry counter and
// log line) and only returns the wait. Attempts is built on it, so the two behave the same.
//
//   xact::RetryState retry(policy);
//   while (retry.begin_attempt()) {
//     xact::Transaction& txn = tm.begin();
//     std::exception_ptr error;
//     try { co_await handle(txn); txn.commit(); co_return; }
//     catch (...) { error = std::current_exception(); }
//     const xact::RetryDecision d = retry.failed(txn, error);  // aborts txn
//     if (!d) std::rethrow_exception(error);
//     timer.expires_after(d.wait);
//     co_await timer.async_wait(asio::use_awaitable);
//   }
//
// (co_await is not allowed inside a handler, hence the error kept for after the catch.)
//
// One concept per header: <xact/retry_policy.hpp> (RetryPolicy, RetryEvent),
// <xact/retry_state.hpp> (RetryState, RetryDecision: the awaitable back-off),
// <xact/attempts.hpp> (Attempts: the blocking loop) and <xact/run.hpp> (run,
// run_with_outcome, RunResult). This header includes them all.
#pragma once

#include <xact/attempts.hpp>
#include <xact/retry_policy.hpp>
#include <xact/retry_state.hpp>
#include <xact/run.hpp>
