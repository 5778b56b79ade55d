// Requests through xact::http against the same Beast server without xact (issue 20).
//
//   BM_Bare         a Beast server whose session loop answers inline: the baseline
//   BM_NoOp         xact::http::Service, a handler that joins nothing (a no-op transaction)
//   BM_ObjectWrite  xact::http::Service, one object-store write per request (file storage,
//                   an fsync per commit)
//     One client thread, one keep-alive connection, one request per iteration on 127.0.0.1;
//     real time. Counters: req/s, and vs_bare (this latency / the last BM_Bare's).
//   BM_Paired/linger_us:L
//     Both servers up at once (the service with Options::worker_linger = L us, the default
//     being 200; 0 shows the cost of handing every request to a sleeping worker), one client
//     connection to each; each iteration sends kBatch requests to one, then kBatch to the
//     other (the order alternates), so a shared machine's drift hits both alike. Counters:
//     bare_us, noop_us (per request), vs_bare = noop_us / bare_us (goal: <= 1.15), and
//     bare_cpu_us, noop_cpu_us: the server's CPU time per request (all of the process's
//     threads but the client's); linger_hit: the share of the service's lingers that found the
//     next request.
//   BM_Concurrent/conns:C/linger_us:L
//     The same pairing with C client threads, each on its own kept-alive connection, all
//     sending at once: throughput under load (bare_rps, noop_rps, vs_bare = bare_rps /
//     noop_rps), to show what lingering workers cost when the cores are busy.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <time.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <xact/http/service.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "bench_dir.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

double g_bare_ns = 0;

// The same Beast session loop as Service::session, answering inline on the io thread.
asio::awaitable<void> bare_session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (true) {
    boost::system::error_code ec;
    bhttp::request_parser<bhttp::string_body> parser;
    co_await bhttp::async_read(stream, buffer, parser,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
    auto req = parser.release();
    auto res = xact::http::text(200, "ok\n", req.version());
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    if (ec || !req.keep_alive()) break;
  }
}

asio::awaitable<void> bare_serve(tcp::acceptor& acceptor) {
  auto ex = co_await asio::this_coro::executor;
  while (acceptor.is_open()) {
    boost::system::error_code ec;
    auto s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(ex, bare_session(std::move(s)), asio::detached);
  }
}

struct Fixture {
  asio::io_context io;
  asio::thread_pool pool{2};
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::unique_ptr<xact::http::Service> service;
  std::thread thread;
  void start() {
    thread = std::thread([this] { io.run(); });
  }
  ~Fixture() {
    asio::post(io, [this] { acceptor.close(); });
    io.stop();
    if (thread.joinable()) thread.join();
    pool.join();
  }
};

void client_loop(benchmark::State& state, unsigned short port) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  stream.socket().set_option(tcp::no_delay(true));
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/r", 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.keep_alive(true);
  req.body() = "x";
  req.prepare_payload();
  beast::flat_buffer buffer;
  for (auto _ : state) {
    bhttp::write(stream, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buffer, res);
    if (res.result_int() != 200) state.SkipWithError("not 200");
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

void report(benchmark::State& state) {
  state.counters["req/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_Bare(benchmark::State& state) {
  Fixture f;
  asio::co_spawn(f.io, bare_serve(f.acceptor), asio::detached);
  f.start();
  const auto t0 = std::chrono::steady_clock::now();
  client_loop(state, f.acceptor.local_endpoint().port());
  const double per =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(state.iterations());
  g_bare_ns = per;
  report(state);
}

void run_service(benchmark::State& state, xact::http::Handler handler) {
  Fixture f;
  xact::http::Options options;
  options.manager.allow_unlogged_decisions = false;
  f.service = std::make_unique<xact::http::Service>(f.pool.get_executor(), options);
  f.service->route("/r", std::move(handler));
  asio::co_spawn(f.io, f.service->serve(f.acceptor), asio::detached);
  f.start();
  const auto t0 = std::chrono::steady_clock::now();
  client_loop(state, f.acceptor.local_endpoint().port());
  const double per =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(state.iterations());
  if (g_bare_ns > 0) state.counters["vs_bare"] = per / g_bare_ns;
  report(state);
}

void BM_NoOp(benchmark::State& state) {
  run_service(state, [](const xact::http::Request& req, xact::Transaction&) {
    return xact::http::text(200, "ok\n", req.version());
  });
}

void BM_ObjectWrite(benchmark::State& state) {
  xact::bench::BenchDir dir("http");
  auto db = xact::objectstore::DB::open(xact::objectstore::FileStorage::open(dir / "data.xfs"));
  run_service(state, [&](const xact::http::Request& req, xact::Transaction&) {
    auto conn = db->open();
    auto root = conn->root();
    const auto* v = root->find("n");
    root->set("n", (v ? v->as_int() : 0) + 1);
    return xact::http::text(200, "ok\n", req.version());
  });
}

// A client on its own kept-alive connection.
class Client {
 public:
  explicit Client(unsigned short port) : stream_(io_) {
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    stream_.socket().set_option(tcp::no_delay(true));
    req_ = {bhttp::verb::post, "/r", 11};
    req_.set(bhttp::field::host, "127.0.0.1");
    req_.keep_alive(true);
    req_.body() = "x";
    req_.prepare_payload();
  }
  ~Client() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  }
  bool call() {
    bhttp::write(stream_, req_);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res);
    return res.result_int() == 200;
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  bhttp::request<bhttp::string_body> req_;
  beast::flat_buffer buffer_;
};

// A bare server and a service with a no-op handler, both running.
struct Pair {
  Fixture bare, noop;
  explicit Pair(std::chrono::microseconds linger) {
    asio::co_spawn(bare.io, bare_serve(bare.acceptor), asio::detached);
    bare.start();
    xact::http::Options options;
    options.worker_linger = linger;
    noop.service = std::make_unique<xact::http::Service>(noop.pool.get_executor(), options);
    noop.service->route("/r", [](const xact::http::Request& req, xact::Transaction&) {
      return xact::http::text(200, "ok\n", req.version());
    });
    asio::co_spawn(noop.io, noop.service->serve(noop.acceptor), asio::detached);
    noop.start();
  }
  unsigned short bare_port() { return bare.acceptor.local_endpoint().port(); }
  unsigned short noop_port() { return noop.acceptor.local_endpoint().port(); }
};

constexpr int kBatch = 200;

double cpu_seconds(clockid_t clock) {
  ::timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void BM_Paired(benchmark::State& state) {
  Pair pair{std::chrono::microseconds(state.range(0))};
  Client bare(pair.bare_port()), noop(pair.noop_port());
  double bare_s = 0, noop_s = 0, bare_cpu = 0, noop_cpu = 0;
  bool bare_first = true;
  // Wall time, and the server's CPU time: the process's minus this (the client) thread's.
  auto batch = [&](Client& c, double& total, double& server_cpu) {
    const double p0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    const double c0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBatch; ++i) {
      if (!c.call()) state.SkipWithError("not 200");
    }
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    server_cpu +=
        (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - p0) - (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
  };
  for (auto _ : state) {
    if (bare_first) {
      batch(bare, bare_s, bare_cpu);
      batch(noop, noop_s, noop_cpu);
    } else {
      batch(noop, noop_s, noop_cpu);
      batch(bare, bare_s, bare_cpu);
    }
    bare_first = !bare_first;
  }
  const double n = static_cast<double>(state.iterations()) * kBatch;
  state.counters["bare_us"] = bare_s / n * 1e6;
  state.counters["noop_us"] = noop_s / n * 1e6;
  state.counters["vs_bare"] = noop_s / bare_s;
  state.counters["bare_cpu_us"] = bare_cpu / n * 1e6;
  state.counters["noop_cpu_us"] = noop_cpu / n * 1e6;
  const auto linger = pair.noop.service->linger_counts();
  state.counters["linger_hit"] =
      static_cast<double>(linger.hits) /
      std::max<double>(1, static_cast<double>(linger.hits + linger.misses));
}

void BM_Concurrent(benchmark::State& state) {
  const int conns = static_cast<int>(state.range(0));
  Pair pair{std::chrono::microseconds(state.range(1))};
  std::vector<std::unique_ptr<Client>> bare, noop;
  for (int i = 0; i < conns; ++i) {
    bare.push_back(std::make_unique<Client>(pair.bare_port()));
    noop.push_back(std::make_unique<Client>(pair.noop_port()));
  }
  // Every client thread sends kBatch requests on its connection; the wall time of the round.
  auto round = [&](std::vector<std::unique_ptr<Client>>& clients, double& total) {
    std::atomic<bool> failed{false};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (auto& c : clients) {
      threads.emplace_back([&c, &failed] {
        for (int i = 0; i < kBatch; ++i) {
          if (!c->call()) failed = true;
        }
      });
    }
    for (auto& t : threads) t.join();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (failed) state.SkipWithError("not 200");
  };
  double bare_s = 0, noop_s = 0;
  bool bare_first = true;
  for (auto _ : state) {
    if (bare_first) {
      round(bare, bare_s);
      round(noop, noop_s);
    } else {
      round(noop, noop_s);
      round(bare, bare_s);
    }
    bare_first = !bare_first;
  }
  const double n = static_cast<double>(state.iterations()) * kBatch * conns;
  state.counters["bare_rps"] = n / bare_s;
  state.counters["noop_rps"] = n / noop_s;
  state.counters["vs_bare"] = noop_s / bare_s;
}

BENCHMARK(BM_Paired)->ArgName("linger_us")->Arg(200)->Arg(0)->UseRealTime()->MinTime(3.0);
BENCHMARK(BM_Concurrent)
    ->ArgNames({"conns", "linger_us"})
    ->Args({8, 200})
    ->Args({8, 0})
    ->UseRealTime()
    ->MinTime(3.0);
BENCHMARK(BM_Bare)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_NoOp)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Bare)->UseRealTime()->MinTime(2.0);  // again: the shared machine drifts
BENCHMARK(BM_NoOp)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_ObjectWrite)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
