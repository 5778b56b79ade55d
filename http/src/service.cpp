#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <xact/http/service.hpp>

#include <any>
#include <array>
#include <cmath>
#include <optional>
#include <sstream>
#include <thread>

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/xid.hpp>

namespace xact::http {

namespace bhttp = beast::http;
using Clock = RetryPolicy::Clock;

namespace {

// Transaction::data key under which an attempt's transaction keeps its request's manager.
const char kManagerKey = 0;

std::string_view path_of(const Request& request) {
  const auto target = request.target();
  const auto q = target.find('?');
  const auto path = q == beast::string_view::npos ? target : target.substr(0, q);
  return {path.data(), path.size()};
}

// A connected socket's descriptor as Beast's SyncReadStream and SyncWriteStream, for a worker
// that took it out of the io context's reactor (Service::Connection::detach). Non-blocking: an
// operation the kernel cannot do at once fails with would_block.
class RawStream {
 public:
  explicit RawStream(int fd) noexcept : fd_(fd) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::system::error_code& ec) {
    return transfer(buffers, ec, [this](::msghdr& m) { return ::recvmsg(fd_, &m, 0); });
  }
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& buffers, boost::system::error_code& ec) {
    return transfer(buffers, ec, [this](::msghdr& m) { return ::sendmsg(fd_, &m, MSG_NOSIGNAL); });
  }
  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    return or_throw([&](boost::system::error_code& ec) { return read_some(buffers, ec); });
  }
  template <class ConstBuffers>
  std::size_t write_some(const ConstBuffers& buffers) {
    return or_throw([&](boost::system::error_code& ec) { return write_some(buffers, ec); });
  }

 private:
  template <class Buffers, class Call>
  static std::size_t transfer(const Buffers& buffers, boost::system::error_code& ec, Call call) {
    constexpr std::size_t kMaxIov = 16;
    std::array<::iovec, kMaxIov> iov{};
    std::size_t n = 0, total = 0;
    for (auto it = asio::buffer_sequence_begin(buffers);
         it != asio::buffer_sequence_end(buffers) && n < kMaxIov; ++it) {
      const auto b = asio::buffer(*it);
      if (b.size() == 0) continue;
      iov[n].iov_base = const_cast<void*>(static_cast<const void*>(b.data()));
      iov[n].iov_len = b.size();
      total += b.size();
      ++n;
    }
    ec = {};
    if (total == 0) return 0;
    ::msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = n;
    while (true) {
      const ::ssize_t r = call(m);
      if (r > 0) return static_cast<std::size_t>(r);
      if (r == 0) {
        ec = asio::error::eof;  // only a read returns 0 for a non-empty buffer
        return 0;
      }
      if (errno == EINTR) continue;
      ec = (errno == EAGAIN || errno == EWOULDBLOCK)
               ? boost::system::error_code(asio::error::would_block)
               : boost::system::error_code(errno, boost::system::system_category());
      return 0;
    }
  }
  template <class Op>
  static std::size_t or_throw(Op op) {
    boost::system::error_code ec;
    const std::size_t n = op(ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  int fd_;
};

}  // namespace

TransactionManager& request_manager(Transaction& txn) {
  if (const std::any* a = txn.find_data(&kManagerKey)) {
    if (const auto* m = std::any_cast<TransactionManager*>(a)) return **m;
  }
  throw UsageError(
      "xact::http::request_manager: the transaction is not a request's (call it "
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

  // After an attempt that failed in `txn` (null: before it began): whether a retry may help,
  // the transaction's id for the answer, and the abort.
  void end_failed(Transaction* txn) {
    if (!error || txn == nullptr) return;
    retryable = txn->is_retryable(error);
    try {
      transaction = txn->gtrid().to_hex();
    } catch (...) {
    }
    txn->abort();
  }
};

// What a worker runs: one attempt of a request.
struct Service::Job {
  virtual void run() noexcept = 0;

 protected:
  ~Job() = default;
};

// Hands jobs (attempts) to the worker pool.
//
// A job submitted from a worker that is running a job of this pool (a request the worker read
// itself, see Connection::linger) is run by that worker once its current job returns: no queue,
// no wake-up. Other jobs are posted to the pool; `queued_` counts those not yet started, so
// that a worker lingers on its connection only when no request waits for a worker.
//
// Tried and dropped (bench/README.md): idle workers spinning for the next job before they sleep.
// Spinning with `pause` made a request 4-8x slower on the shared 2-core machine (the spinner
// held a core the io and client threads needed); yielding between looks saved little in the
// ping-pong case and cost a quarter of the throughput with 8 connections.
class Service::Handoff {
 public:
  explicit Handoff(asio::thread_pool::executor_type pool) : pool_(std::move(pool)) {}

  void submit(Job& job) {
    if (tl_handoff == this && tl_next == nullptr) {
      tl_next = &job;  // this worker runs it next
      return;
    }
    queued_.fetch_add(1, std::memory_order_relaxed);
    asio::post(pool_, [this, &job] {
      queued_.fetch_sub(1, std::memory_order_relaxed);
      work(job);
    });
  }

  // On a worker running a job of this pool, with no job waiting in the pool's queue: the
  // worker may wait a little for more work of its own.
  bool may_linger() const noexcept {
    return tl_handoff == this && tl_next == nullptr && queued_.load(std::memory_order_relaxed) == 0;
  }

 private:
  void work(Job& first) noexcept {
    Handoff* const outer = std::exchange(tl_handoff, this);
    Job* job = &first;
    while (job != nullptr) {
      job->run();
      job = std::exchange(tl_next, nullptr);
    }
    tl_handoff = outer;
  }

  static thread_local Handoff* tl_handoff;  // the pool whose job this thread runs
  static thread_local Job* tl_next;         // submitted by this thread's running job

  asio::thread_pool::executor_type pool_;
  std::atomic<int> queued_{0};  // posted to the pool, not yet started

 public:
  std::atomic<std::uint64_t> linger_hits{0}, linger_misses{0};
};

thread_local Service::Handoff* Service::Handoff::tl_handoff = nullptr;
thread_local Service::Job* Service::Handoff::tl_next = nullptr;

Service::Service(asio::thread_pool::executor_type workers, Options options)
    : workers_(std::move(workers)),
      options_(std::move(options)),
      handoff_(std::make_unique<Handoff>(workers_)) {
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

Service::LingerCounts Service::linger_counts() const noexcept {
  return {handoff_->linger_hits.load(std::memory_order_relaxed),
          handoff_->linger_misses.load(std::memory_order_relaxed)};
}

const RouteMetrics* Service::metrics(const std::string& path) const {
  auto it = routes_.find(path);
  return it == routes_.end() ? nullptr : &it->second->metrics;
}

namespace {

// Begins an attempt's transaction in the request's manager, bounded by what is left of the
// request's deadline. `txn` is set as soon as the transaction exists.
void begin_attempt(ExplicitTransactionManager& manager, Clock::time_point deadline,
                   Transaction*& txn) {
  txn = &manager.begin();
  txn->data(&kManagerKey) = static_cast<TransactionManager*>(&manager);
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) {
    throw TransactionTimeoutError("the request's deadline passed before the attempt began");
  }
  txn->set_timeout(left);
}

}  // namespace

// One attempt of a synchronous handler, on a worker: a fresh transaction of the request's
// manager, bound on this thread for the handler, then the commit.
Service::AttemptResult Service::attempt(const Route& route, const Request& request,
                                        ExplicitTransactionManager& manager,
                                        Clock::time_point deadline) {
  AttemptResult out;
  Transaction* txn = nullptr;
  try {
    begin_attempt(manager, deadline, txn);
    ManagerBinding binding(manager);
    out.response = route.handler(request, *txn);
    txn->commit();
  } catch (...) {
    out.error = std::current_exception();
    out.response.reset();  // a failed attempt's response is discarded
  }
  out.end_failed(txn);
  return out;
}

// One attempt of a coroutine handler, on the workers. The transaction is reached through
// `manager` (the request's), never through the thread, so the handler may resume on another
// worker.
asio::awaitable<Service::AttemptResult> Service::coro_attempt(const Route& route,
                                                              const Request& request,
                                                              ExplicitTransactionManager& manager,
                                                              Clock::time_point deadline) {
  AttemptResult out;
  Transaction* txn = nullptr;
  try {
    begin_attempt(manager, deadline, txn);
    out.response = co_await route.coro(request, *txn);
    txn->commit();
  } catch (...) {
    out.error = std::current_exception();
    out.response.reset();
  }
  out.end_failed(txn);
  co_return out;
}

Response Service::unavailable(const Request& request, const char* why) const {
  Response res = text(503, std::string("service unavailable: ") + why + ", try again later\n",
                      request.version());
  res.set(bhttp::field::retry_after, std::to_string(std::max<long long>(
                                         1, static_cast<long long>(options_.retry_after.count()))));
  return res;
}

// One request from its parsed message to its answer: the retry loop as a state machine. The
// first attempt is submitted from the io thread; attempts and the decisions between them run on
// workers; a back-off waits on a timer of the io context. The answer goes to answer(), called on
// whichever thread produced it; nothing touches the exchange after that call.
struct Service::Exchange : Service::Job {
  Exchange(Service& s, asio::any_io_executor io_executor)
      : service(s), io(std::move(io_executor)) {}
  virtual ~Exchange() = default;

  Service& service;
  asio::any_io_executor io;  // for the back-off timer
  Request request;           // kept whole: every attempt reads these bytes
  Route* route = nullptr;
  Clock::time_point started{}, deadline{};
  std::optional<RetryState> retry;
  std::optional<ExplicitTransactionManager> manager;  // the request's: it follows the request
  std::optional<asio::steady_timer> backoff;

  // The answer (on a worker or an io thread). The caller touches nothing of the exchange
  // afterwards: a connection may already be reading its next request on another thread.
  virtual void answer(Response res) noexcept = 0;

  // On an io thread, with `request` set: answers what needs no transaction at once, else
  // submits the first attempt.
  void start() noexcept {
    try {
      started = Clock::now();
      const std::string_view path = path_of(request);
      auto it = service.routes_.find(path);
      if (it == service.routes_.end()) {
        if (path == "/metrics") {
          Response res = text(200, service.metrics_text(), request.version());
          res.set(bhttp::field::content_type, "text/plain; version=0.0.4");
          answer(std::move(res));
        } else {
          answer(text(404, "not found\n", request.version()));
        }
        return;
      }
      route = it->second.get();
      route->metrics.requests.fetch_add(1, std::memory_order_relaxed);
      const RetryPolicy& policy = service.options_.retry;
      retry.emplace(policy);
      deadline = policy.deadline.count() > 0 ? started + policy.deadline : Clock::time_point::max();
      manager.emplace(service.options_.manager);
    } catch (...) {
      internal_error(std::current_exception());
      return;
    }
    next_attempt();
  }

  void run() noexcept override {
    if (route->coro) {
      try {
        asio::co_spawn(service.workers_, service.coro_attempt(*route, request, *manager, deadline),
                       [this](std::exception_ptr e, AttemptResult r) {
                         if (e) r.error = e;
                         settle(std::move(r));
                       });
      } catch (...) {
        internal_error(std::current_exception());
      }
      return;
    }
    settle(service.attempt(*route, request, *manager, deadline));
  }

  void next_attempt() noexcept {
    RouteMetrics& m = route->metrics;
    if (!retry->begin_attempt()) {
      m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
      respond(service.unavailable(request, "no attempt left"));
      return;
    }
    m.attempts.fetch_add(1, std::memory_order_relaxed);
    service.handoff_->submit(*this);
  }

  // After an attempt, on a worker: the answer, or a retry.
  void settle(AttemptResult r) noexcept {
    RouteMetrics& m = route->metrics;
    if (!r.error) {
      respond(std::move(*r.response));
      return;
    }
    try {
      const std::string path(path_of(request));
      try {
        std::rethrow_exception(r.error);
      } catch (const InDoubtError& e) {
        m.in_doubt.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::error, "xact::http: " + path + ": transaction " + r.transaction +
                                 " is in doubt (recovery decides): " + e.what());
        Response res = text(500,
                            "internal error: the outcome of transaction " + r.transaction +
                                " is unknown; it will be decided by recovery\n",
                            request.version());
        res.set("X-Xact-Transaction", r.transaction);
        respond(std::move(res));
        return;
      } catch (const HttpError& e) {
        respond(text(e.status(), std::string(e.what()) + "\n", request.version()));
        return;
      } catch (const TransactionTimeoutError&) {
        m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warning, "xact::http: " + path + ": the request's deadline passed");
        respond(service.unavailable(request, "the request's deadline passed"));
        return;
      } catch (const TransientError&) {
        m.conflicts.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {
        if (r.retryable) m.conflicts.fetch_add(1, std::memory_order_relaxed);
      }
      const RetryDecision d = retry->failed(r.error, r.retryable);
      if (d) {
        if (d.wait <= std::chrono::microseconds::zero()) {
          next_attempt();
          return;
        }
        if (!backoff) backoff.emplace(io);
        backoff->expires_after(d.wait);
        backoff->async_wait(hold([this](boost::system::error_code) { next_attempt(); }));
        return;
      }
      if (r.retryable) {
        m.retries_exhausted.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::warning, "xact::http: " + path + ": gave up after " +
                                   std::to_string(retry->attempt()) +
                                   " attempts: " + error_message(r.error));
        respond(service.unavailable(request, d.reason == RetryDecision::Reason::deadline_passed
                                                 ? "the request's deadline passed"
                                                 : "too many conflicts"));
        return;
      }
      m.errors.fetch_add(1, std::memory_order_relaxed);
      log(LogLevel::error, "xact::http: " + path + ": " + error_message(r.error));
      respond(text(500, "internal error\n", request.version()));
    } catch (...) {  // from RetryPolicy::on_retry, or out of memory
      internal_error(std::current_exception());
    }
  }

  // The final answer of a routed request: counted, then sent.
  void respond(Response res) noexcept {
    res.version(request.version());
    if (route != nullptr) {
      RouteMetrics& m = route->metrics;
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started);
      m.latency_sum_ns.fetch_add(static_cast<std::uint64_t>(ns.count()), std::memory_order_relaxed);
      const double secs = std::chrono::duration<double>(ns).count();
      std::size_t b = 0;
      while (b < RouteMetrics::kLatencyBounds.size() && secs > RouteMetrics::kLatencyBounds[b]) {
        ++b;
      }
      m.latency_buckets[b].fetch_add(1, std::memory_order_relaxed);
    }
    answer(std::move(res));
  }

  void internal_error(std::exception_ptr e) noexcept {
    if (route != nullptr) route->metrics.errors.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::error, "xact::http: " + error_message(e));
    Response res;
    try {
      res = text(500, "internal error\n", request.version());
    } catch (...) {
      res.result(bhttp::status::internal_server_error);
    }
    respond(std::move(res));
  }

  // Wraps a completion handler of the io context so that it keeps the exchange alive.
  virtual std::function<void(boost::system::error_code)> hold(
      std::function<void(boost::system::error_code)> f) = 0;
};

// An exchange for Service::handle: answers to a coroutine's completion handler.
struct Service::Standalone final : Service::Exchange {
  Standalone(Service& s, asio::any_io_executor io, std::function<void(Response)> done)
      : Exchange(s, std::move(io)), done_(std::move(done)) {}
  void answer(Response res) noexcept override {
    auto done = std::move(done_);
    delete this;
    done(std::move(res));
  }
  std::function<void(boost::system::error_code)> hold(
      std::function<void(boost::system::error_code)> f) override {
    return f;  // owned by nobody but its own answer
  }

 private:
  std::function<void(Response)> done_;
};

asio::awaitable<Response> Service::handle(Request request) {
  auto io = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Response)>(
      [this, io, &request](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto* ex = new Standalone(*this, io, [h](Response res) {
          auto e = asio::get_associated_executor(*h);
          asio::post(e, [h, res = std::move(res)]() mutable { (*h)(std::move(res)); });
        });
        ex->request = std::move(request);
        ex->start();
      },
      asio::use_awaitable);
}

// One connection: reads requests on the io context (a strand of it), answers each through the
// exchange it is. A request's answer is written by the thread that produced it, usually the
// worker that ran the committed attempt: a non-blocking write; only what the kernel does not
// take at once goes on as an asynchronous write. Then the same thread starts the next read.
// Between the read's completion and that point the connection belongs to the request's
// attempts, so its socket is used by one thread at a time.
//
// While a worker lingers on the connection and handles the requests it reads there, the socket
// is out of the io context's reactor (detach: one epoll_ctl), used through its descriptor
// alone: in the reactor, every request the client sent would also wake the io thread (Asio
// registers a socket edge-triggered for input once, at open), which on 2 shared cores cost as
// much as the bare server's whole request. It goes back (attach) before any asynchronous read
// or write.
//
// Timeouts: one timer per connection, armed once and re-armed when it fires, checks
// `deadline_` (set when a read or an asynchronous write starts, 0 while a request is handled),
// so that a request costs no timer operation; a connection past its deadline is shut down, which
// fails the pending read or write.
struct Service::Connection final : Service::Exchange,
                                   std::enable_shared_from_this<Service::Connection> {
  // Beast 1.74's composed operations need the type-erased executor, holding a strand.
  using Socket = asio::ip::tcp::socket;
  using Timer = asio::steady_timer;

  Connection(Service& s, asio::ip::tcp::socket socket)
      : Exchange(s, socket.get_executor()),
        socket_(asio::any_io_executor(asio::make_strand(socket.get_executor()))),
        timer_(socket_.get_executor()) {
    io = socket_.get_executor();
    boost::system::error_code ec;
    protocol_ = socket.local_endpoint(ec).protocol();
    if (!ec) socket_.assign(protocol_, socket.release(ec), ec);
    if (!ec) socket_.non_blocking(true, ec);  // answers are written without blocking a worker
    failed_ = static_cast<bool>(ec);
  }

  // On the strand.
  void open() {
    if (failed_) {
      close();
      return;
    }
    read();
    arm(Clock::now() + service.options_.read_timeout);
  }

  ~Connection() override {
    if (detached_fd_ >= 0) ::close(detached_fd_);
  }

  std::function<void()> on_closed;

 private:
  // Takes the socket out of the io context's reactor, for the thread that owns the connection
  // (no operation pending). False if Asio would not let it go.
  bool detach() noexcept {
    if (detached_fd_ >= 0) return true;
    boost::system::error_code ec;
    const int fd = socket_.release(ec);
    if (ec) return false;
    detached_fd_ = fd;
    return true;
  }

  // Puts a detached socket back into the reactor, before an asynchronous operation. False if it
  // could not be (the descriptor is closed then, and the connection with it).
  bool attach() noexcept {
    if (detached_fd_ < 0) return true;
    boost::system::error_code ec;
    socket_.assign(protocol_, detached_fd_, ec);
    if (ec) return false;  // still detached: close() closes the descriptor
    detached_fd_ = -1;
    socket_.non_blocking(true, ec);
    return !ec;
  }

  void read() {
    if (!attach()) {
      asio::post(socket_.get_executor(), [self = take_hold()] { self->close(); });
      return;
    }
    parser_.emplace();
    parser_->eager(true);  // the body with the header: no second pass and post per request
    parser_->body_limit(service.options_.body_limit);
    set_deadline();
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = take_hold()](boost::system::error_code ec, std::size_t) mutable {
                        auto& c = *self;
                        c.on_read(std::move(self), ec);
                      });
  }

  // On the strand, or on a worker that read the request itself (linger: then `ec` is success,
  // body_limit or a parse error, and timed_out_ is not read).
  void on_read(std::shared_ptr<Connection> self, boost::system::error_code ec) {
    deadline_.store(0, std::memory_order_relaxed);
    keep_alive_ = false;
    route = nullptr;
    if (ec == bhttp::error::end_of_stream || (ec && timed_out_.load(std::memory_order_relaxed)) ||
        (ec && ec != bhttp::error::body_limit &&
         ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category())) {
      close();  // the peer closed, the read timed out, or the connection failed
      return;
    }
    hold_ = std::move(self);
    if (ec == bhttp::error::body_limit) {
      answer(text(413, "request body too large\n"));
      return;
    }
    if (ec) {
      answer(text(400, "bad request\n"));
      return;
    }
    request = parser_->release();
    keep_alive_ = request.keep_alive();
    start();  // the last touch: a worker may own the connection from here
  }

  void answer(Response res) noexcept override {
    boost::system::error_code ec;
    try {
      response_ = std::move(res);
      response_.keep_alive(keep_alive_);
      response_.prepare_payload();
      serializer_.emplace(response_);
      if (detached_fd_ >= 0) {
        RawStream raw(detached_fd_);
        bhttp::write(raw, *serializer_, ec);
      } else {
        bhttp::write(socket_, *serializer_, ec);
      }
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        if (!attach()) {
          written(asio::error::bad_descriptor);
          return;
        }
        set_deadline();
        bhttp::async_write(
            socket_, *serializer_,
            [self = take_hold()](boost::system::error_code e, std::size_t) { self->written(e); });
        return;
      }
    } catch (...) {
      ec = asio::error::no_memory;
    }
    written(ec);
  }

  void written(boost::system::error_code ec) noexcept {
    serializer_.reset();
    if (ec || !keep_alive_) {
      asio::post(socket_.get_executor(), [self = take_hold()] { self->close(); });
      return;
    }
    if (linger()) return;
    read();
  }

  // On a worker that just answered, when no other job waits for a worker: waits up to
  // Options::worker_linger for the client's next request on this socket (ppoll: asleep in the
  // kernel, woken by the data like an io thread in epoll) and, when it comes, reads and
  // handles it on this worker, skipping the io thread and the hand-over. True when it did.
  bool linger() noexcept {
    const auto linger = service.options_.worker_linger;
    if (linger.count() <= 0 || !service.handoff_->may_linger()) return false;
    // A client that did not send its next request in time probably will not next time either
    // (it is slow, or idle between requests), and a linger that times out costs a wake-up for
    // nothing: after a miss, skip lingering for 1, 3, 7, ... up to 63 requests; a hit resets.
    if (linger_skip_ > 0) {
      --linger_skip_;
      return false;
    }
    if (!detach()) return false;
    ::pollfd p{};
    p.fd = detached_fd_;
    p.events = POLLIN;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(linger).count();
    ::timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    if (::ppoll(&p, 1, &ts, nullptr) != 1) {
      service.handoff_->linger_misses.fetch_add(1, std::memory_order_relaxed);
      linger_misses_ = std::min(2 * linger_misses_ + 1, 63);
      linger_skip_ = linger_misses_;
      return false;
    }
    service.handoff_->linger_hits.fetch_add(1, std::memory_order_relaxed);
    linger_misses_ = 0;
    boost::system::error_code ec;
    parser_.emplace();
    parser_->eager(true);
    parser_->body_limit(service.options_.body_limit);
    RawStream raw(detached_fd_);
    bhttp::read(raw, buffer_, *parser_, ec);  // non-blocking: would_block if incomplete
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      if (!attach()) {
        asio::post(socket_.get_executor(), [self = take_hold()] { self->close(); });
        return true;
      }
      set_deadline();  // the rest comes through the io context
      bhttp::async_read(socket_, buffer_, *parser_,
                        [self = take_hold()](boost::system::error_code e, std::size_t) mutable {
                          auto& c = *self;
                          c.on_read(std::move(self), e);
                        });
      return true;
    }
    if (ec && ec != bhttp::error::body_limit &&
        (ec == bhttp::error::end_of_stream ||
         ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category())) {
      asio::post(socket_.get_executor(), [self = take_hold()] { self->close(); });
      return true;
    }
    // Handled as this worker's next job, once the current one has returned: answering it here
    // could linger and read again, and a client sending request after request (say, 404s
    // answered at once) would deepen the stack without bound.
    read_ec_ = ec;
    read_pending_ = true;
    service.handoff_->submit(*this);
    return true;
  }

  void run() noexcept override {
    if (read_pending_) {
      read_pending_ = false;
      on_read(take_hold(), read_ec_);
      return;
    }
    Exchange::run();
  }

  std::function<void(boost::system::error_code)> hold(
      std::function<void(boost::system::error_code)> f) override {
    return [self = take_hold(), f = std::move(f)](boost::system::error_code ec) mutable {
      auto& c = *self;
      c.hold_ = std::move(self);
      f(ec);
    };
  }

  // The reference that keeps the connection alive moves with its work: into the pending
  // operation's handler, or (hold_) with a request's attempts.
  std::shared_ptr<Connection> take_hold() { return hold_ ? std::move(hold_) : shared_from_this(); }

  void set_deadline() {
    deadline_.store((Clock::now() + service.options_.read_timeout).time_since_epoch().count(),
                    std::memory_order_relaxed);
  }

  void arm(Clock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait(
        [self = shared_from_this()](boost::system::error_code ec) { self->on_timer(ec); });
  }

  // On the strand, when the timer fires.
  void on_timer(boost::system::error_code ec) {
    if (ec || closed_) return;
    const auto now = Clock::now();
    const auto d = deadline_.load(std::memory_order_relaxed);
    if (d == 0) {
      arm(now + service.options_.read_timeout);  // a request is being handled
      return;
    }
    const Clock::time_point at{Clock::duration(d)};
    if (now < at) {
      arm(at);
      return;
    }
    timed_out_.store(true, std::memory_order_relaxed);  // the pending read or write fails: closed
    boost::system::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  }

  // On the strand.
  void close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    if (detached_fd_ >= 0) {
      ::shutdown(detached_fd_, SHUT_WR);
      ::close(std::exchange(detached_fd_, -1));
    }
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
    if (on_closed) std::exchange(on_closed, {})();
  }

  Socket socket_;
  asio::ip::tcp protocol_ = asio::ip::tcp::v4();
  int detached_fd_ = -1;  // >= 0: out of the reactor (detach), used by the connection's owner
  Timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Response response_;
  std::optional<bhttp::serializer<false, bhttp::string_body>> serializer_;
  std::shared_ptr<Connection> hold_;
  std::atomic<Clock::rep> deadline_{0};  // 0: no timeout (a request is being handled)
  bool keep_alive_ = false;
  int linger_misses_ = 0;  // linger() only (on the connection's current owner)
  int linger_skip_ = 0;
  bool read_pending_ = false;  // run() handles read_ec_'s request, read by linger()
  boost::system::error_code read_ec_;
  std::atomic<bool> timed_out_{false};
  bool closed_ = false;  // strand
  bool failed_ = false;
};

void Service::start_connection(asio::ip::tcp::socket socket, std::function<void()> on_closed) {
  auto c = std::make_shared<Connection>(*this, std::move(socket));
  c->on_closed = std::move(on_closed);
  asio::dispatch(c->io, [c] { c->open(); });
}

asio::awaitable<void> Service::session(asio::ip::tcp::socket socket) {
  co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [this, &socket](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start_connection(std::move(socket), [h] {
          auto e = asio::get_associated_executor(*h);
          asio::post(e, [h] { (*h)(); });
        });
      },
      asio::use_awaitable);
}

asio::awaitable<void> Service::serve(asio::ip::tcp::acceptor& acceptor) {
  while (true) {
    boost::system::error_code ec;
    asio::ip::tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) co_return;
      continue;
    }
    start_connection(std::move(socket), {});
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
  counter("xact_http_retries_exhausted_total", "Requests answered 503: no attempt or time left.",
          &RouteMetrics::retries_exhausted);
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
  const auto linger = linger_counts();
  out << "# HELP xact_http_worker_linger_total Waits of a worker that answered for the "
         "connection's next request, by outcome.\n# TYPE xact_http_worker_linger_total counter\n"
      << "xact_http_worker_linger_total{outcome=\"hit\"} " << linger.hits << '\n'
      << "xact_http_worker_linger_total{outcome=\"miss\"} " << linger.misses << '\n';
  for (const auto& source : metrics_sources_) out << source();
  return out.str();
}

}  // namespace xact::http
