// xact::http handlers posting side effects to an xact::outbox (SQLite), against a real Beast
// server on 127.0.0.1: a conflicting attempt's post never exists, the committed request's message
// is delivered once by the dispatcher, and /metrics carries the dispatcher's counters and gauges,
// a message whose delivery fails for good among the dead ones.
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <xact/errors.hpp>
#include <xact/http/service.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/temp_dir.hpp>

#include <gtest/gtest.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

bhttp::response<bhttp::string_body> post(unsigned short port, const std::string& target,
                                         std::string body) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
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

TEST(HttpOutbox, AConflictingAttemptPostsNothingAndTheCommittedRequestIsDeliveredOnce) {
  xact::testing::TempDir dir;
  xact::sqlite::SqliteOptions so;
  so.path = dir / "app.db";
  auto store = xact::sqlite::SqliteResource::create(so);
  store->open_connection()->execute("CREATE TABLE orders (item TEXT)");
  auto outbox = xact::outbox::Outbox::create(store);

  std::mutex mutex;
  std::vector<xact::outbox::Message> sent;
  xact::outbox::DispatcherOptions dispatcher_options;
  dispatcher_options.max_attempts = 1;  // a refused message goes dead at once
  xact::outbox::Dispatcher dispatcher(
      outbox,
      [&](const xact::outbox::Message& m) {
        if (m.topic == "hook.refused") throw std::runtime_error("410 gone");
        std::lock_guard lock(mutex);
        sent.push_back(m);
      },
      dispatcher_options);

  asio::io_context io;
  asio::thread_pool workers(2);
  xact::http::Options options;
  options.retry.initial_backoff = std::chrono::microseconds(100);
  xact::http::Service service(workers.get_executor(), options);
  service.add_metrics([&] { return dispatcher.metrics_text(); });
  std::atomic<int> attempts{0};
  std::vector<std::string> keys;  // one per attempt (attempts run one after another)
  service.route("/order", [&](const xact::http::Request& req, xact::Transaction& txn) {
    store->execute(txn, "INSERT INTO orders VALUES ($1)", {req.body()});
    keys.push_back(outbox->post(txn, "mail.order_placed", req.body()));
    if (++attempts == 1) throw xact::ConflictError("simulated conflict");
    return xact::http::text(201, "ordered\n");
  });
  std::string refused_key;
  service.route("/refused", [&](const xact::http::Request& req, xact::Transaction& txn) {
    refused_key = outbox->post(txn, "hook.refused", req.body());
    return xact::http::text(201, "posted\n");
  });
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, service.serve(acceptor), asio::detached);
  std::thread io_thread([&] { io.run(); });
  const unsigned short port = acceptor.local_endpoint().port();

  dispatcher.start();
  const auto res = post(port, "/order", "book");
  EXPECT_EQ(res.result_int(), 201u);
  EXPECT_EQ(post(port, "/refused", "x").result_int(), 201u);
  EXPECT_TRUE(dispatcher.drain(std::chrono::seconds(10)));  // dead messages are not pending
  dispatcher.stop();
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(keys.size(), 2u);
    ASSERT_EQ(sent.size(), 1u);
    EXPECT_EQ(sent[0].key, keys[1]);  // the committed attempt's message, not the failed one's
    EXPECT_EQ(sent[0].payload, "book");
  }
  EXPECT_EQ(store->open_connection()->execute("SELECT * FROM orders").size(), 1u);

  const auto metrics = post(port, "/metrics", "");
  EXPECT_NE(metrics.body().find("xact_outbox_delivered_total{table=\"xact_outbox\"} 1\n"),
            std::string::npos)
      << metrics.body();
  EXPECT_NE(metrics.body().find("xact_outbox_pending{table=\"xact_outbox\"} 0\n"),
            std::string::npos)
      << metrics.body();
  EXPECT_NE(metrics.body().find("xact_outbox_dead{table=\"xact_outbox\"} 1\n"), std::string::npos)
      << metrics.body();
  EXPECT_NE(metrics.body().find("xact_outbox_dead_total{table=\"xact_outbox\"} 1\n"),
            std::string::npos)
      << metrics.body();
  EXPECT_TRUE(outbox->is_dead(refused_key));

  asio::post(io, [&] { acceptor.close(); });
  io.stop();
  io_thread.join();
  workers.join();
}

}  // namespace
