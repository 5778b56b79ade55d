#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <xact/http/service.hpp>

#include <any>
#include <cmath>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <xact/errors.hpp>
#include <xact/diagnostics.hpp>
#include <xact/xid.hpp>

namespace xact::http {

namespace bhttp = beast::http;
using Clock = RetryPolicy::Clock;

namespace {

// Transaction::data key under which an attempt's transaction keeps its request's manager.
const char kManagerKey = 0;

std::string path_of(const Request& request) {
  const auto target = request.target();
  const auto q = target.find('?');
  return std::string(q == beast::string_view::npos ? target : target.substr(0, q));
}

}  // namespace

TransactionManager& request_manager(Transaction& txn) {
  if (const std::any* a = txn.find_data(&kManagerKey)) {
    if (const auto* m = std::any_cast<TransactionManager*>(a)) return **m;
  }
  throw UsageError("xact::http::request_manager: the transaction is not a request's (call it "
                   "from a handler run by xact::http::Service)");
}

Response text(unsigned status, std::string body, unsigned version) {
  Response res{static_cast<bhttp::status>(status), version};
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
  return res;
}

struct Service::Route {
  Handler handler;
  CoroHandler coro;
  RouteMetrics metrics;
};

struct Service::AttemptResult {
  std::optional<Response> response;
  std::exception_ptr error;
  bool retryable = false;
  std::string transaction;  // the gtrid, hex
};

Service::Service(asio::thread_pool::executor_type workers, Options options)
    : workers_(std::move(workers)), options_(std::move(options)) {
  RetryState check(options_.retry);  // UsageError for a policy that cannot end
  (void)check;
}

Service::~Service() = default;

void Service::route(std::string path, Handler handler) {
  auto r = std::make_unique<Route>();
  r->handler = std::move(handler);
  routes_[std::move(path)] = std::move(r);
}

void Service::route(std::string path, CoroHandler handler) {
  auto r = std::make_unique<Route>();
  r->coro = std::move(handler);
  routes_[std::move(path)] = std::move(r);
}

void Service::add_metrics(std::function<std::string()> source) {
  if (source) metrics_sources_.push_back(std::move(source));
}

const RouteMetrics* Service::metrics(const std::string& path) const {
  auto it = routes_.find(path);
  return it == routes_.end() ? nullptr : &it->second->metrics;
}

// One attempt, on a worker: a fresh transaction of the request's manager, the handler, the
// commit. The transaction is reached through `manager` (the request's), never through the
// thread, so a coroutine handler may resume on another worker.
asio::awaitable<Service::AttemptResult> Service::attempt(const Route& route,
                                                         const Request& request,
                                                         ExplicitTransactionManager& manager,
                                                         Clock::time_point deadline) {
  AttemptResult out;
  Transaction* txn = nullptr;
  try {
    txn = &manager.begin();
    txn->data(&kManagerKey) = static_cast<TransactionManager*>(&manager);
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      throw TransactionTimeoutError("the request's deadline passed before the attempt began");
    }
    txn->set_timeout(left);
    if (route.handler) {
      ManagerBinding binding(manager);
      out.response = route.handler(request, *txn);
      txn->commit();
    } else {
      out.response = co_await route.coro(request, *txn);
      txn->commit();
    }
  } catch (...) {
    out.error = std::current_exception();
    out.response.reset();  // a failed attempt's response is discarded
  }
  if (out.error && txn != nullptr) {
    out.retryable = txn->is_retryable(out.error);
    try {
      out.transaction = txn->gtrid().to_hex();
    } catch (...) {
    }
    txn->abort();
  }
  co_return out;
}

Response Service::unavailable(const Request& request, const char* why) const {
  Response res = text(503, std::string("service unavailable: ") + why + ", try again later\n",
                      request.version());
  res.set(bhttp::field::retry_after, std::to_string(std::max<long long>(
                                         1, static_cast<long long>(options_.retry_after.count()))));
  return res;
}

asio::awaitable<Response> Service::handle(Request request) {
  const auto started = Clock::now();
  const std::string path = path_of(request);
  if (path == "/metrics" && routes_.find(path) == routes_.end()) {
    Response res = text(200, metrics_text(), request.version());
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
    co_return res;
  }
  auto it = routes_.find(path);
  if (it == routes_.end()) co_return text(404, "not found\n", request.version());
  Route& route = *it->second;
  RouteMetrics& m = route.metrics;
  m.requests.fetch_add(1, std::memory_order_relaxed);

  RetryState state(options_.retry);
  const auto deadline = options_.retry.deadline.count() > 0
                            ? started + options_.retry.deadline
                            : Clock::time_point::max();
  ExplicitTransactionManager manager(options_.manager);  // the request's: it follows the request
  asio::steady_timer timer(co_await asio::this_coro::executor);
  Response res;
  while (true) {
    if (!state.begin_attempt()) {
      res = unavailable(request, "no attempt left");
      m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    m.attempts.fetch_add(1, std::memory_order_relaxed);
    AttemptResult r = co_await asio::co_spawn(
        workers_, attempt(route, request, manager, deadline), asio::use_awaitable);
    if (!r.error) {
      res = std::move(*r.response);
      break;
    }
    try {
      std::rethrow_exception(r.error);
    } catch (const InDoubtError& e) {
      m.in_doubt.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::error, "xact::http: " + path + ": transaction " + r.transaction +
                               " is in doubt (recovery decides): " + e.what());
      res = text(500, "internal error: the outcome of transaction " + r.transaction +
                          " is unknown; it will be decided by recovery\n",
                 request.version());
      res.set("X-Xact-Transaction", r.transaction);
      break;
    } catch (const HttpError& e) {
      res = text(e.status(), std::string(e.what()) + "\n", request.version());
      break;
    } catch (const TransactionTimeoutError&) {
      m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::warning, "xact::http: " + path + ": the request's deadline passed");
      res = unavailable(request, "the request's deadline passed");
      break;
    } catch (const TransientError&) {
      m.conflicts.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
      if (r.retryable) m.conflicts.fetch_add(1, std::memory_order_relaxed);
    }
    const RetryDecision d = state.failed(r.error, r.retryable);
    if (d) {
      timer.expires_after(d.wait);
      co_await timer.async_wait(asio::use_awaitable);
      continue;
    }
    if (r.retryable) {
      m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::warning, "xact::http: " + path + ": gave up after " +
                                 std::to_string(state.attempt()) +
                                 " attempts: " + error_message(r.error));
      res = unavailable(request, d.reason == RetryDecision::Reason::deadline_passed
                                     ? "the request's deadline passed"
                                     : "too many conflicts");
    } else {
      m.errors.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::error, "xact::http: " + path + ": " + error_message(r.error));
      res = text(500, "internal error\n", request.version());
    }
    break;
  }
  res.version(request.version());
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started);
  m.latency_sum_ns.fetch_add(static_cast<std::uint64_t>(ns.count()), std::memory_order_relaxed);
  const double secs = std::chrono::duration<double>(ns).count();
  std::size_t b = 0;
  while (b < RouteMetrics::kLatencyBounds.size() && secs > RouteMetrics::kLatencyBounds[b]) ++b;
  m.latency_buckets[b].fetch_add(1, std::memory_order_relaxed);
  co_return res;
}

asio::awaitable<void> Service::session(asio::ip::tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    boost::system::error_code ec;
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(options_.body_limit);
    stream.expires_after(options_.read_timeout);
    co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout) break;
    Response res;
    bool keep_alive = false;
    if (ec == bhttp::error::body_limit) {
      res = text(413, "request body too large\n");
    } else if (ec) {
      if (ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category()) break;  // the connection failed
      res = text(400, "bad request\n");
    } else {
      Request request = parser.release();  // kept whole: every attempt reads these bytes
      keep_alive = request.keep_alive();
      stream.expires_never();
      res = co_await handle(std::move(request));
    }
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream.expires_after(options_.read_timeout);
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !keep_alive) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Service::serve(asio::ip::tcp::acceptor& acceptor) {
  auto executor = co_await asio::this_coro::executor;
  while (true) {
    boost::system::error_code ec;
    asio::ip::tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      continue;
    }
    asio::co_spawn(executor, session(std::move(socket)), asio::detached);
  }
}

std::string Service::metrics_text() const {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help,
                     std::atomic<std::uint64_t> RouteMetrics::*field) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n";
    for (const auto& [path, route] : routes_) {
      out << name << "{route=\"" << path << "\"} "
          << (route->metrics.*field).load(std::memory_order_relaxed) << '\n';
    }
  };
  counter("xact_http_requests_total", "Requests answered.", &RouteMetrics::requests);
  counter("xact_http_attempts_total", "Transaction attempts run.", &RouteMetrics::attempts);
  counter("xact_http_conflicts_total", "Attempts that failed with a retryable error.",
          &RouteMetrics::conflicts);
  counter("xact_http_retries_exhausted_total",
          "Requests answered 503: no attempt or time left.", &RouteMetrics::retries_exhausted);
  counter("xact_http_in_doubt_total", "Requests whose transaction was left in doubt.",
          &RouteMetrics::in_doubt);
  counter("xact_http_errors_total", "Requests answered 500 for an internal error.",
          &RouteMetrics::errors);
  const char* h = "xact_http_request_duration_seconds";
  out << "# HELP " << h << " Time to answer a request.\n# TYPE " << h << " histogram\n";
  for (const auto& [path, route] : routes_) {
    const RouteMetrics& m = route->metrics;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= RouteMetrics::kLatencyBounds.size(); ++i) {
      cumulative += m.latency_buckets[i].load(std::memory_order_relaxed);
      out << h << "_bucket{route=\"" << path << "\",le=\"";
      if (i < RouteMetrics::kLatencyBounds.size()) {
        out << RouteMetrics::kLatencyBounds[i];
      } else {
        out << "+Inf";
      }
      out << "\"} " << cumulative << '\n';
    }
    out << h << "_sum{route=\"" << path << "\"} "
        << static_cast<double>(m.latency_sum_ns.load(std::memory_order_relaxed)) / 1e9 << '\n';
    out << h << "_count{route=\"" << path << "\"} " << cumulative << '\n';
  }
  for (const auto& source : metrics_sources_) out << source();
  return out.str();
}

}  // namespace xact::http
