// xact::http against a real Beast server on 127.0.0.1 (an ephemeral port), with real
// participants: the object store on a file storage, xact::testing's recording resource.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/http/retrying.hpp>
#include <xact/http/service.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/testing/recording_resource.hpp>

#include <gtest/gtest.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using xact::http::Request;
using xact::http::Response;

// A real server: io thread(s) for sockets, a worker pool for transactions.
class Server {
 public:
  explicit Server(xact::http::Options options = {}, int workers = 2)
      : pool_(workers),
        service_(pool_.get_executor(), std::move(options)),
        acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
  ~Server() { stop(); }
  xact::http::Service& service() { return service_; }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void start() {
    asio::co_spawn(io_, service_.serve(acceptor_), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] { acceptor_.close(); });
    io_.stop();
    thread_.join();
    pool_.join();
  }

 private:
  asio::io_context io_;
  asio::thread_pool pool_;
  xact::http::Service service_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A plain synchronous Beast client, one connection per request.
bhttp::response<bhttp::string_body> call(unsigned short port, bhttp::verb verb,
                                         const std::string& target, std::string body = {}) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  bhttp::request<bhttp::string_body> req{verb, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.body() = std::move(body);
  req.prepare_payload();
  bhttp::write(stream, req);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(stream, buffer, res);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return res;
}

xact::http::Options fast_options(int attempts) {
  xact::http::Options o;
  o.retry.attempts = attempts;
  o.retry.initial_backoff = std::chrono::microseconds(100);
  o.retry.max_backoff = std::chrono::microseconds(2000);
  return o;
}

// --- the generic wrapper ----------------------------------------------------------------------

TEST(Retrying, RetriesConflictsInFreshTransactionsWithTheSameArguments) {
  std::vector<std::string> seen;
  std::set<const xact::Transaction*> txns;
  auto handler = xact::http::retrying(
      [&](xact::Transaction& txn, const std::string& arg) {
        seen.push_back(arg);
        txns.insert(&txn);
        EXPECT_EQ(&xact::current_manager().get(), &txn);  // bound for the attempt
        if (seen.size() < 3) throw xact::ConflictError("conflict");
        return arg.size();
      },
      [] {
        xact::RetryPolicy p;
        p.attempts = 5;
        p.initial_backoff = std::chrono::microseconds(10);
        return p;
      }());
  EXPECT_EQ(handler(std::string("payload")), 7u);
  EXPECT_EQ(seen, (std::vector<std::string>{"payload", "payload", "payload"}));
}

TEST(Retrying, DoesNotRetryOtherErrorsAndGivesUpAfterTheLastAttempt) {
  int calls = 0;
  xact::RetryPolicy p;
  p.attempts = 3;
  p.initial_backoff = std::chrono::microseconds(10);
  auto usage = xact::http::retrying(
      [&](xact::Transaction&) {
        ++calls;
        throw xact::UsageError("bug");
      },
      p);
  EXPECT_THROW(usage(), xact::UsageError);
  EXPECT_EQ(calls, 1);
  calls = 0;
  auto conflict = xact::http::retrying(
      [&](xact::Transaction&) {
        ++calls;
        throw xact::ConflictError("conflict");
      },
      p);
  EXPECT_THROW(conflict(), xact::ConflictError);
  EXPECT_EQ(calls, 3);
}

// --- the HTTP wrapper -------------------------------------------------------------------------

TEST(HttpService, ReplaysTheSameBodyToEveryAttemptAndSendsOnlyTheCommittedResponse) {
  Server server(fast_options(5));
  std::mutex mutex;
  std::vector<std::string> bodies;
  std::set<std::string> gtrids;
  server.service().route("/echo", [&](const Request& req, xact::Transaction& txn) {
    std::lock_guard lock(mutex);
    bodies.push_back(req.body());
    gtrids.insert(txn.gtrid().to_hex());
    if (bodies.size() < 3) {
      Response discarded = xact::http::text(200, "attempt " + std::to_string(bodies.size()));
      (void)discarded;
      throw xact::ConflictError("conflict on purpose");
    }
    return xact::http::text(201, "got " + req.body());
  });
  server.start();
  const std::string body(100'000, 'x');
  auto res = call(server.port(), bhttp::verb::post, "/echo?q=1", body + "end");
  EXPECT_EQ(res.result_int(), 201u);
  EXPECT_EQ(res.body(), "got " + body + "end");
  ASSERT_EQ(bodies.size(), 3u);
  for (const auto& b : bodies) EXPECT_EQ(b, body + "end");
  EXPECT_EQ(gtrids.size(), 3u);  // a fresh transaction per attempt
  EXPECT_EQ(server.service().metrics("/echo")->attempts.load(), 3u);
  EXPECT_EQ(server.service().metrics("/echo")->conflicts.load(), 2u);
}

TEST(HttpService, AnswersServiceUnavailableWithRetryAfterWhenAttemptsRunOut) {
  auto options = fast_options(3);
  options.retry_after = std::chrono::seconds(2);
  Server server(options);
  std::atomic<int> calls{0};
  server.service().route("/busy", [&](const Request&, xact::Transaction&) -> Response {
    ++calls;
    throw xact::ConflictError("always");
  });
  std::mutex mutex;
  std::vector<std::pair<xact::LogLevel, std::string>> logged;
  xact::set_log_sink([&](xact::LogLevel level, std::string_view message) {
    std::lock_guard lock(mutex);
    logged.emplace_back(level, std::string(message));
  });
  server.start();
  auto res = call(server.port(), bhttp::verb::get, "/busy");
  xact::set_log_sink({});
  EXPECT_EQ(res.result_int(), 503u);
  EXPECT_EQ(res[bhttp::field::retry_after], "2");
  EXPECT_EQ(res.body().find("always"), std::string::npos);  // no internals
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(server.service().metrics("/busy")->retries_exhausted.load(), 1u);
  int retries_logged = 0;
  for (const auto& [level, message] : logged) {
    if (message.find("retry") != std::string::npos || message.find("Retry") != std::string::npos) {
      EXPECT_NE(level, xact::LogLevel::error) << message;
      if (level == xact::LogLevel::info) ++retries_logged;
    }
  }
  EXPECT_EQ(retries_logged, 2);  // the two retried conflicts, at info level
}

TEST(HttpService, InDoubtAnswers500WithTheTransactionIdAndIsNeverRetried) {
  Server server(fast_options(5));
  auto log = std::make_shared<xact::testing::CallLog>();
  xact::testing::RecordingOptions lro;
  lro.last_resource = true;
  lro.fail_at = xact::testing::Step::commit_one_phase;
  lro.fail_times = -1;
  // What a SQL last resource raises when its connection drops during the one-phase commit
  // that carries the decision: the outcome is unknown.
  lro.thrower = [](xact::testing::Step) {
    throw xact::InDoubtError("connection lost during the one-phase commit");
  };
  std::atomic<int> calls{0};
  std::mutex mutex;
  std::string gtrid;
  server.service().route("/pay", [&](const Request&, xact::Transaction& txn) {
    ++calls;
    auto voter = std::make_shared<xact::testing::RecordingResource>("voter", log);
    auto last = std::make_shared<xact::testing::RecordingResource>("last", log, lro);
    voter->set(txn, "a");
    last->set(txn, "b");
    std::lock_guard lock(mutex);
    gtrid = txn.gtrid().to_hex();
    return xact::http::text(200, "paid");
  });
  server.start();
  auto res = call(server.port(), bhttp::verb::post, "/pay", "x");
  EXPECT_EQ(res.result_int(), 500u);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(res["X-Xact-Transaction"], gtrid);
  EXPECT_NE(res.body().find(gtrid), std::string::npos);
  EXPECT_EQ(server.service().metrics("/pay")->in_doubt.load(), 1u);
}

TEST(HttpService, OtherErrorsMapWithoutLeakingInternals) {
  Server server(fast_options(5));
  server.service().route("/bug", [](const Request&, xact::Transaction&) -> Response {
    throw xact::UsageError("secret detail /etc/passwd");
  });
  server.service().route("/missing", [](const Request&, xact::Transaction&) -> Response {
    throw xact::http::HttpError(404, "no such order");
  });
  server.start();
  auto bug = call(server.port(), bhttp::verb::get, "/bug");
  EXPECT_EQ(bug.result_int(), 500u);
  EXPECT_EQ(bug.body().find("secret"), std::string::npos);
  auto missing = call(server.port(), bhttp::verb::get, "/missing");
  EXPECT_EQ(missing.result_int(), 404u);
  EXPECT_EQ(missing.body(), "no such order\n");
  EXPECT_EQ(call(server.port(), bhttp::verb::get, "/nowhere").result_int(), 404u);
}

TEST(HttpService, DeadlineEndsRetriesWith503) {
  auto options = fast_options(0);  // no attempt limit: the deadline ends it
  options.retry.deadline = std::chrono::milliseconds(300);
  Server server(options);
  std::atomic<int> calls{0};
  server.service().route("/slow", [&](const Request&, xact::Transaction&) -> Response {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    throw xact::ConflictError("slow conflict");
  });
  server.start();
  const auto t0 = std::chrono::steady_clock::now();
  auto res = call(server.port(), bhttp::verb::get, "/slow");
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(res.result_int(), 503u);
  EXPECT_FALSE(res[bhttp::field::retry_after].empty());
  EXPECT_GE(calls.load(), 2);
  EXPECT_LT(took, std::chrono::milliseconds(1500));
}

TEST(HttpService, DeadlineStopsACommitThatRunsPastIt) {
  auto options = fast_options(5);
  options.retry.deadline = std::chrono::milliseconds(100);
  Server server(options);
  auto log = std::make_shared<xact::testing::CallLog>();
  std::atomic<int> calls{0};
  server.service().route("/stuck", [&](const Request&, xact::Transaction& txn) {
    ++calls;
    auto rm = std::make_shared<xact::testing::RecordingResource>("r", log);
    rm->set(txn, "v");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // past the deadline
    return xact::http::text(200, "late");
  });
  server.start();
  auto res = call(server.port(), bhttp::verb::get, "/stuck");
  EXPECT_EQ(res.result_int(), 503u);
  EXPECT_EQ(calls.load(), 1);
}

class HttpObjectStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("xact-http-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = xact::objectstore::DB::open(std::shared_ptr<xact::objectstore::Storage>(
        xact::objectstore::FileStorage::open((dir_ / "data.xfs").string())));
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::int64_t committed(const std::string& key) {
    xact::ExplicitTransactionManager tm;
    tm.begin();
    xact::objectstore::ConnectionOptions co;
    co.manager = &tm;
    auto conn = db_->open(co);
    const auto* v = conn->root()->find(key);
    const std::int64_t n = v ? v->as_int() : 0;
    tm.abort();
    return n;
  }
  std::filesystem::path dir_;
  std::shared_ptr<xact::objectstore::DB> db_;
};

TEST_F(HttpObjectStore, ConcurrentClientsConflictAndNothingIsLost) {
  auto options = fast_options(0);
  options.retry.deadline = std::chrono::milliseconds(30'000);
  Server server(options, 4);
  server.service().route("/hit", [&](const Request& req, xact::Transaction&) {
    auto conn = db_->open();  // the request's manager, bound for the attempt
    auto root = conn->root();
    const auto* v = root->find("n");
    const std::int64_t n = v ? v->as_int() : 0;
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // widen the race
    root->set("n", n + 1);
    root->set("last", req.body());
    return xact::http::text(200, std::to_string(n + 1));
  });
  server.start();
  constexpr int kClients = 6, kRequests = 15;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kRequests; ++i) {
        auto res = call(server.port(), bhttp::verb::post, "/hit", std::to_string(c));
        if (res.result_int() == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(committed("n"), kClients * kRequests);
  const auto* m = server.service().metrics("/hit");
  EXPECT_GT(m->conflicts.load(), 0u) << "no conflict: the test did not test retries";
  EXPECT_EQ(m->attempts.load(), kClients * kRequests + m->conflicts.load());
}

// A coroutine handler that suspends mid-transaction and resumes on another worker: the
// transaction follows the request (its manager), never the thread. Run under TSan.
TEST_F(HttpObjectStore, CoroutineHandlersSuspendAcrossThreadsMidTransaction) {
  auto options = fast_options(0);
  options.retry.deadline = std::chrono::milliseconds(30'000);
  Server server(options, 4);
  std::atomic<int> moved{0};
  server.service().route(
      "/coro", xact::http::CoroHandler(
                   [&](const Request&, xact::Transaction& txn) -> asio::awaitable<Response> {
                     xact::objectstore::ConnectionOptions co;
                     co.manager = &xact::http::request_manager(txn);
                     auto conn = db_->open(co);
                     auto root = conn->root();
                     const auto* v = root->find("n");
                     const std::int64_t n = v ? v->as_int() : 0;
                     const auto before = std::this_thread::get_id();
                     asio::steady_timer timer(co_await asio::this_coro::executor);
                     for (int i = 0; i < 3; ++i) {
                       timer.expires_after(std::chrono::microseconds(300));
                       co_await timer.async_wait(asio::use_awaitable);
                     }
                     if (std::this_thread::get_id() != before) ++moved;
                     EXPECT_EQ(co.manager->current(), &txn);
                     root->set("n", n + 1);
                     co_return xact::http::text(200, "ok");
                   }));
  server.start();
  constexpr int kClients = 6, kRequests = 10;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      for (int i = 0; i < kRequests; ++i) {
        if (call(server.port(), bhttp::verb::post, "/coro").result_int() == 200) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(committed("n"), kClients * kRequests);
  EXPECT_GT(moved.load(), 0) << "no handler resumed on another thread";
}

// --- threads, the socket and timeouts ---------------------------------------------------------

// A client on one kept-alive connection; a receive timeout turns a server that never answers
// into a failed read instead of a hung test.
class KeptAlive {
 public:
  explicit KeptAlive(unsigned short port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    ::timeval tv{10, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  static std::string request(const std::string& target, const std::string& body = {}) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    std::ostringstream out;
    out << req;
    return out.str();
  }
  void send_raw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }
  bhttp::response<bhttp::string_body> read() {
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    return res;
  }
  bhttp::response<bhttp::string_body> call(const std::string& target,
                                           const std::string& body = {}) {
    send_raw(request(target, body));
    return read();
  }
  // True when the server closed the connection (the next read ends).
  bool closed_by_server() {
    beast::error_code ec;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res, ec);
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset;
  }
  tcp::socket& socket() { return socket_; }

 private:
  asio::io_context io_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

// With and without lingering workers, so that both paths (the io thread reads the next
// request; the worker that answered reads it itself) are run.
std::vector<xact::http::Options> worker_option_variants() {
  std::vector<xact::http::Options> out;
  for (int linger : {0, 200, 20'000}) {
    auto o = fast_options(5);
    o.worker_linger = std::chrono::microseconds(linger);
    out.push_back(o);
  }
  return out;
}

TEST(HttpService, AKeptAliveConnectionGetsEveryResponseInOrderWrittenByTheWorkers) {
  for (const auto& options : worker_option_variants()) {
    SCOPED_TRACE("linger " + std::to_string(options.worker_linger.count()) + " us");
    Server server(options);
    std::mutex mutex;
    std::set<std::thread::id> handler_threads;
    server.service().route("/echo", [&](const Request& req, xact::Transaction&) {
      {
        std::lock_guard lock(mutex);
        handler_threads.insert(std::this_thread::get_id());
      }
      return xact::http::text(200, "got " + req.body());
    });
    server.start();
    KeptAlive client(server.port());
    for (int i = 0; i < 200; ++i) {
      auto res = client.call("/echo", std::to_string(i));
      ASSERT_EQ(res.result_int(), 200u);
      ASSERT_EQ(res.body(), "got " + std::to_string(i));
      ASSERT_TRUE(res.keep_alive());
    }
    // Pipelined: three requests in one write, their answers in order. The second and third
    // are already in the buffer when the first is answered.
    client.send_raw(KeptAlive::request("/echo", "a") + KeptAlive::request("/echo", "b") +
                    KeptAlive::request("/echo", "c"));
    EXPECT_EQ(client.read().body(), "got a");
    EXPECT_EQ(client.read().body(), "got b");
    EXPECT_EQ(client.read().body(), "got c");
    // A request that arrives in pieces.
    const std::string whole = KeptAlive::request("/echo", std::string(5000, 'p'));
    client.send_raw(whole.substr(0, 20));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    client.send_raw(whole.substr(20, 3000));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    client.send_raw(whole.substr(3020));
    EXPECT_EQ(client.read().body(), "got " + std::string(5000, 'p'));
    EXPECT_EQ(server.service().metrics("/echo")->requests.load(), 204u);
    server.stop();
    std::lock_guard lock(mutex);
    EXPECT_FALSE(handler_threads.empty());
  }
}

// Many pipelined requests, routed (a worker answers, then reads on) and unrouted (answered at
// once by whichever thread read them), on one connection: every answer, in order.
TEST(HttpService, ManyPipelinedRequestsReadByAWorkerAreAnsweredInOrder) {
  Server server(fast_options(5));
  server.service().route(
      "/r", [](const Request&, xact::Transaction&) { return xact::http::text(200, "r"); });
  server.start();
  KeptAlive client(server.port());
  constexpr int kRequests = 20'000;
  std::string bytes = KeptAlive::request("/r");
  for (int i = 0; i < kRequests; ++i) bytes += KeptAlive::request(i % 2 ? "/r" : "/nowhere");
  std::thread writer([&] { client.send_raw(bytes); });  // while the answers are read
  EXPECT_EQ(client.read().result_int(), 200u);
  int in_order = 0;
  for (int i = 0; i < kRequests; ++i) {
    if (client.read().result_int() == (i % 2 ? 200u : 404u)) ++in_order;
  }
  writer.join();
  EXPECT_EQ(in_order, kRequests);
}

// The io thread never waits for a handler: while every worker is blocked in one, other
// connections are still accepted, read and answered where no worker is needed.
TEST(HttpService, AHandlerThatBlocksDoesNotStallOtherConnectionsIo) {
  auto options = fast_options(5);
  options.retry.deadline = std::chrono::milliseconds(30'000);
  Server server(options, 1);  // one worker: the blocked handler holds it
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false, released = false;
  server.service().route("/block", [&](const Request&, xact::Transaction&) {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
    return xact::http::text(200, "unblocked");
  });
  server.start();
  std::thread blocked([&] {
    auto res = call(server.port(), bhttp::verb::post, "/block");
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "unblocked");
  });
  {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return entered; });
  }
  // Answered on the io thread while the only worker is blocked: a new connection, a request
  // read and answered (404, /metrics), and a body over the limit.
  EXPECT_EQ(call(server.port(), bhttp::verb::get, "/nowhere").result_int(), 404u);
  auto metrics = call(server.port(), bhttp::verb::get, "/metrics");
  EXPECT_EQ(metrics.result_int(), 200u);
  EXPECT_NE(metrics.body().find("xact_http_requests_total{route=\"/block\"} 1"), std::string::npos);
  {
    std::lock_guard lock(mutex);
    EXPECT_FALSE(released);  // all of it while the handler still blocked
    released = true;
  }
  cv.notify_all();
  blocked.join();
}

// A response larger than the socket's send buffer, to a client that does not read at once:
// the worker's non-blocking write takes part of it and the io context writes the rest. With
// lingering workers the request before it was answered by a worker that then read /big on the
// socket it had taken out of the io context's reactor: the rest of the answer needs it back.
TEST(HttpService, AResponseTheKernelDoesNotTakeAtOnceIsWrittenWhole) {
  for (const auto& options : worker_option_variants()) {
    SCOPED_TRACE("linger " + std::to_string(options.worker_linger.count()) + " us");
    Server server(options);
    const std::string big(32 << 20, 'z');  // more than loopback's send and receive buffers
    server.service().route(
        "/big", [&](const Request&, xact::Transaction&) { return xact::http::text(200, big); });
    server.service().route("/small", [&](const Request&, xact::Transaction&) {
      return xact::http::text(200, "small");
    });
    server.start();
    KeptAlive client(server.port());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(client.call("/small").body(), "small");
    client.send_raw(KeptAlive::request("/big"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the send buffer fill
    auto res = client.read();
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body().size(), big.size());
    EXPECT_TRUE(res.body() == big);
    EXPECT_EQ(client.call("/small").body(), "small");  // the connection goes on
    if (options.worker_linger.count() >= 20'000) {
      EXPECT_GT(server.service().linger_counts().hits, 0u) << "no request was read by a worker";
    }
  }
}

// The descriptors open in this process.
std::size_t open_descriptors() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// A connection whose client goes away while a worker lingers on it (its socket out of the io
// context's reactor, held by the worker alone) is closed: no descriptor is left open.
TEST(HttpService, ConnectionsClosedWhileAWorkerLingersLeaveNoDescriptorOpen) {
  auto options = fast_options(5);
  options.worker_linger = std::chrono::microseconds(50'000);
  Server server(options);
  server.service().route(
      "/r", [](const Request&, xact::Transaction&) { return xact::http::text(200, "r"); });
  server.start();
  {
    KeptAlive warm(server.port());
    EXPECT_EQ(warm.call("/r").body(), "r");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::size_t before = open_descriptors();
  for (int i = 0; i < 50; ++i) {
    KeptAlive client(server.port());
    EXPECT_EQ(client.call("/r").body(), "r");
    EXPECT_EQ(client.call("/r").body(), "r");
  }  // each closed while the worker that answered lingers on it
  std::size_t after = open_descriptors();
  for (int i = 0; i < 10'000 && after > before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    after = open_descriptors();
  }
  EXPECT_EQ(after, before);
  EXPECT_GT(server.service().linger_counts().hits, 0u);
}

TEST(HttpService, AnIdleKeptAliveConnectionIsClosedAfterTheReadTimeout) {
  auto options = fast_options(5);
  options.read_timeout = std::chrono::milliseconds(200);
  Server server(options);
  server.service().route(
      "/r", [](const Request&, xact::Transaction&) { return xact::http::text(200, "r"); });
  server.start();
  KeptAlive idle(server.port());
  EXPECT_EQ(idle.call("/r").body(), "r");
  EXPECT_TRUE(idle.closed_by_server());  // idle after a response
  KeptAlive stalled(server.port());
  stalled.send_raw(KeptAlive::request("/r").substr(0, 10));  // a request that never ends
  EXPECT_TRUE(stalled.closed_by_server());
  KeptAlive silent(server.port());
  EXPECT_TRUE(silent.closed_by_server());  // never sends anything
}

// The building blocks for an application's own accept loop: session() serves one connection
// and completes when the peer closes it; handle() answers one request to a coroutine.
TEST(HttpService, SessionEndsWhenThePeerClosesAndHandleAnswersACoroutine) {
  asio::io_context io;
  asio::thread_pool pool(2);
  xact::http::Service service(pool.get_executor(), fast_options(5));
  service.route("/r", [](const Request& req, xact::Transaction&) {
    return xact::http::text(200, "got " + req.body());
  });
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::atomic<bool> session_ended{false};
  std::optional<Response> handled;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        Request req{bhttp::verb::post, "/r?x=1", 11};
        req.body() = "direct";
        handled = co_await service.handle(std::move(req));
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        co_await service.session(std::move(socket));
        session_ended = true;
      },
      asio::detached);
  std::thread io_thread([&] { io.run(); });
  {
    KeptAlive client(acceptor.local_endpoint().port());
    EXPECT_EQ(client.call("/r", "one").body(), "got one");
    EXPECT_EQ(client.call("/r", "two").body(), "got two");
    EXPECT_FALSE(session_ended.load());
  }  // the client closes its connection
  for (int i = 0; i < 10'000 && !session_ended.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(session_ended.load());
  io.stop();
  io_thread.join();
  pool.join();
  ASSERT_TRUE(handled.has_value());
  EXPECT_EQ(handled->result_int(), 200u);
  EXPECT_EQ(handled->body(), "got direct");
}

// --- metrics ----------------------------------------------------------------------------------

TEST(HttpService, MetricsParseAsPrometheusText) {
  Server server(fast_options(2));
  std::atomic<int> calls{0};
  server.service().route("/a", [&](const Request&, xact::Transaction&) {
    if (++calls == 1) throw xact::ConflictError("once");
    return xact::http::text(200, "a");
  });
  server.start();
  ASSERT_EQ(call(server.port(), bhttp::verb::get, "/a").result_int(), 200u);
  ASSERT_EQ(call(server.port(), bhttp::verb::get, "/a").result_int(), 200u);
  auto res = call(server.port(), bhttp::verb::get, "/metrics");
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_NE(res[bhttp::field::content_type].find("text/plain"), std::string::npos);
  // Parse: every non-comment line is `name{labels} value`; comments are HELP/TYPE.
  std::map<std::string, double> samples;
  std::istringstream in(res.body());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      EXPECT_TRUE(line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) << line;
      continue;
    }
    const auto space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    const std::string key = line.substr(0, space);
    ASSERT_NE(key.find('{'), std::string::npos) << line;
    ASSERT_EQ(key.back(), '}') << line;
    samples[key] = std::stod(line.substr(space + 1));
  }
  EXPECT_EQ(samples["xact_http_requests_total{route=\"/a\"}"], 2);
  EXPECT_EQ(samples["xact_http_attempts_total{route=\"/a\"}"], 3);
  EXPECT_EQ(samples["xact_http_conflicts_total{route=\"/a\"}"], 1);
  EXPECT_EQ(samples["xact_http_retries_exhausted_total{route=\"/a\"}"], 0);
  EXPECT_EQ(samples["xact_http_in_doubt_total{route=\"/a\"}"], 0);
  EXPECT_EQ(samples["xact_http_request_duration_seconds_count{route=\"/a\"}"], 2);
  EXPECT_EQ(samples["xact_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"}"], 2);
  EXPECT_GT(samples["xact_http_request_duration_seconds_sum{route=\"/a\"}"], 0);
}

}  // namespace
