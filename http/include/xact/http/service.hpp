// The HTTP request wrapper on Boost.Beast: one transaction per request, retried on a conflict.
//
//   boost::asio::io_context io;                       // io threads: accept, read; never block
//   boost::asio::thread_pool workers(4);              // transactions: they block (fsync, SQL)
//   xact::http::Service service(workers.get_executor(), options);
//   service.route("/hit", [&](const xact::http::Request& req, xact::Transaction& txn) {
//     auto conn = db->open();                         // joins the request's transaction
//     ...; return xact::http::text(200, "ok\n");
//   });
//   tcp::acceptor acceptor(io, {address::from_string("127.0.0.1"), 8080});
//   co_spawn(io, service.serve(acceptor), detached);
//   io.run();
//
// Per request: the request is read whole (body included, up to Options::body_limit) and kept,
// so every attempt sees the same bytes. Each attempt runs on the worker pool in a fresh
// transaction of the request's own ExplicitTransactionManager, so the transaction follows the
// request and never a thread: a coroutine handler may suspend and resume on another worker
// mid-transaction. A synchronous handler runs under a ManagerBinding of that manager
// (current_manager() finds it); a coroutine handler must not keep a ManagerBinding across a
// suspension (its destruction on another thread is a UsageError) and passes
// request_manager(txn) explicitly instead. The handler's response is sent only when its
// attempt committed; a failed attempt's response is discarded. Outcomes:
//
//   committed                          the handler's response
//   retryable failure, none left       503 + Retry-After (also: the deadline passed)
//   InDoubtError                       500 + X-Xact-Transaction: <gtrid hex>; never retried
//   HttpError thrown by the handler    its status and message; aborted, not retried
//   any other error                    500 "internal error" (the detail goes to the log only)
//   no route                           404; a body over the limit 413; a bad request 400
//
// Retried conflicts are logged at info level (RetryState), not as errors. Every route counts
// requests, attempts, conflicts, retries exhausted, in-doubt outcomes and a latency histogram;
// GET /metrics serves them in the Prometheus text exposition format.
//
// Threads and the socket: the io thread reads and parses a request, then hands it to a worker;
// the worker that ran the committed attempt writes the response itself (a non-blocking write;
// only what the kernel does not take at once is left to the io thread) and starts the read of
// the next request. A connection is touched by one thread at a time, so the response costs no
// hop back to the io thread. When no other request waits for a worker, the worker then waits
// up to Options::worker_linger on that socket for the client's next request and handles it
// itself: a client sending request after request on a kept-alive connection is served by one
// thread, woken by the kernel like an io thread, with no hand-over. Meanwhile the socket is out
// of the io context's reactor (else every request would wake the io thread too); it goes back
// for any asynchronous read or write.
//
// Thread-safety: add routes before serving; afterwards the Service is used from any thread.
// Destroy it after the io context has stopped and the worker pool has been joined.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <xact/manager.hpp>
#include <xact/retry.hpp>

namespace xact::http {

namespace asio = boost::asio;
namespace beast = boost::beast;

using Request = beast::http::request<beast::http::string_body>;
using Response = beast::http::response<beast::http::string_body>;
/// A handler run on a worker thread in the attempt's transaction.
using Handler = std::function<Response(const Request&, Transaction&)>;
/// A coroutine handler; it runs on the worker pool and may resume on another worker.
using CoroHandler = std::function<asio::awaitable<Response>(const Request&, Transaction&)>;

/// Thrown by a handler for an answer that aborts the transaction (e.g. 404, 409, 422).
class HttpError : public std::runtime_error {
 public:
  HttpError(unsigned status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  unsigned status() const noexcept { return status_; }

 private:
  unsigned status_;
};

struct Options {
  /// Attempts, back-off and jitter, and the per-request deadline (RetryPolicy::deadline, also
  /// each attempt's transaction timeout: what is left of it when the attempt begins).
  RetryPolicy retry = default_retry();
  /// The Retry-After of a 503, in seconds.
  std::chrono::seconds retry_after{1};
  /// For the requests' transaction managers (decision log, allow_unlogged_decisions).
  ManagerOptions manager{};
  /// The largest request body read; larger: 413.
  std::uint64_t body_limit = 1 << 20;
  /// Reading one request (or waiting for the next on a kept-alive connection), and writing
  /// a response that the kernel did not take at once.
  std::chrono::milliseconds read_timeout{30'000};
  /// How long a worker that answered a request on a kept-alive connection waits (asleep in
  /// ppoll on that socket) for the client's next request, which it then reads and handles
  /// itself, like an io thread would, but without handing it over. Only when no other request
  /// waits for a worker at that moment; one queued meanwhile waits at most this long if no
  /// other worker is free. A connection whose client missed it is not lingered on for the next
  /// 1, 3, 7, ... 63 requests. Zero turns it off.
  std::chrono::microseconds worker_linger{200};

  static RetryPolicy default_retry() {
    RetryPolicy p;
    p.attempts = 5;
    p.deadline = std::chrono::milliseconds(5'000);
    return p;
  }
};

/// The request's transaction manager, for code that runs in a handler and must open
/// connections on it explicitly (coroutine handlers). UsageError outside a handler.
TransactionManager& request_manager(Transaction& txn);

/// A response with a text/plain body.
Response text(unsigned status, std::string body, unsigned version = 11);

/// What a route counted. Latency buckets' upper bounds, in seconds: kLatencyBounds.
struct RouteMetrics {
  static constexpr std::array<double, 10> kLatencyBounds{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                         0.025,  0.05,  0.1,    0.5,   2.5};
  std::atomic<std::uint64_t> requests{0}, attempts{0}, conflicts{0}, retries_exhausted{0},
      in_doubt{0}, errors{0};
  std::array<std::atomic<std::uint64_t>, kLatencyBounds.size() + 1> latency_buckets{};  // +Inf
  std::atomic<std::uint64_t> latency_sum_ns{0};
};

class Service {
 public:
  Service(asio::thread_pool::executor_type workers, Options options = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Routes requests whose path (the target without its query) is `path`.
  void route(std::string path, Handler handler);
  void route(std::string path, CoroHandler handler);

  /// Answers one request (run on the io context; attempts go to the workers).
  asio::awaitable<Response> handle(Request request);
  /// Accepts connections until the acceptor is closed, serving each on its own coroutine.
  asio::awaitable<void> serve(asio::ip::tcp::acceptor& acceptor);
  /// Serves one connection (keep-alive) until the peer closes it or a read times out.
  asio::awaitable<void> session(asio::ip::tcp::socket socket);

  /// Appends `source`'s text to what GET /metrics answers (Prometheus text format; e.g. an
  /// outbox dispatcher's counters: xact::outbox::Dispatcher::metrics_text). Called on an io
  /// thread, so it must not block (no database). Add sources before serving.
  void add_metrics(std::function<std::string()> source);
  /// The metrics in the Prometheus text exposition format (what GET /metrics answers).
  std::string metrics_text() const;
  const RouteMetrics* metrics(const std::string& path) const;
  /// How often a worker that answered found the connection's next request within
  /// Options::worker_linger (hits) or waited in vain (misses); in /metrics as
  /// xact_http_worker_linger_total{outcome="hit"|"miss"}. Many misses: shorten or turn off.
  struct LingerCounts {
    std::uint64_t hits = 0, misses = 0;
  };
  LingerCounts linger_counts() const noexcept;
  const Options& options() const noexcept { return options_; }

 private:
  struct Route;
  struct AttemptResult;
  struct Job;
  class Handoff;
  struct Exchange;
  struct Standalone;
  struct Connection;
  AttemptResult attempt(const Route& route, const Request& request,
                        ExplicitTransactionManager& manager,
                        RetryPolicy::Clock::time_point deadline);
  asio::awaitable<AttemptResult> coro_attempt(const Route& route, const Request& request,
                                              ExplicitTransactionManager& manager,
                                              RetryPolicy::Clock::time_point deadline);
  Response unavailable(const Request& request, const char* why) const;
  void start_connection(asio::ip::tcp::socket socket, std::function<void()> on_closed);

  asio::thread_pool::executor_type workers_;
  Options options_;
  std::unique_ptr<Handoff> handoff_;
  std::map<std::string, std::unique_ptr<Route>, std::less<>> routes_;
  std::vector<std::function<std::string()>> metrics_sources_;
};

}  // namespace xact::http
