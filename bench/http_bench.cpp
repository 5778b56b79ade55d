// Requests through xact::http against the same Beast server without xact (issue 20).
//
//   BM_Bare         a Beast server whose session loop answers inline: the baseline
//   BM_NoOp         xact::http::Service, a handler that joins nothing (a no-op transaction)
//   BM_ObjectWrite  xact::http::Service, one object-store write per request (file storage,
//                   an fsync per commit)
//
// One client thread, one keep-alive connection, one request per iteration on 127.0.0.1;
// real time. Counters: req/s, and vs_bare (this latency / the bare server's, measured in the
// same run). Goal for BM_NoOp: vs_bare <= 1.15.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <filesystem>
#include <memory>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <benchmark/benchmark.h>

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
    co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
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
  void start() { thread = std::thread([this] { io.run(); }); }
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
  state.counters["req/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
}

void BM_Bare(benchmark::State& state) {
  Fixture f;
  asio::co_spawn(f.io, bare_serve(f.acceptor), asio::detached);
  f.start();
  const auto t0 = std::chrono::steady_clock::now();
  client_loop(state, f.acceptor.local_endpoint().port());
  const double per = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0)
                         .count() / static_cast<double>(state.iterations());
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
  const double per = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0)
                         .count() / static_cast<double>(state.iterations());
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
  auto db = xact::objectstore::DB::open(
      xact::objectstore::FileStorage::open(dir / "data.xfs"));
  run_service(state, [&](const xact::http::Request& req, xact::Transaction&) {
    auto conn = db->open();
    auto root = conn->root();
    const auto* v = root->find("n");
    root->set("n", (v ? v->as_int() : 0) + 1);
    return xact::http::text(200, "ok\n", req.version());
  });
}

BENCHMARK(BM_Bare)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_NoOp)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Bare)->UseRealTime()->MinTime(2.0);  // again: the shared machine drifts
BENCHMARK(BM_NoOp)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_ObjectWrite)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
