// An HTTP service with a side effect: POST /order stores the order in SQLite and posts an
// "order placed" mail to a transactional outbox in the same transaction; a dispatcher sends it
// after the commit (here: prints it), at least once, with its idempotency key. A retried or
// failed request sends nothing. Copy it to start.
//
//   xact-http-outbox /tmp/shop.db 8080 &   curl -d book 127.0.0.1:8080/order
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <iostream>
#include <string>

#include <boost/asio.hpp>
#include <xact/http/service.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/sqlite/sqlite_resource.hpp>

int main(int argc, char** argv) {
  namespace asio = boost::asio;
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " <database file> <port>\n";
    return 2;
  }
  xact::sqlite::SqliteOptions so;
  so.path = argv[1];
  auto shop = xact::sqlite::SqliteResource::create(so);
  shop->open_connection()->execute("CREATE TABLE IF NOT EXISTS orders (item TEXT NOT NULL)");
  auto outbox = xact::outbox::Outbox::create(shop);  // table xact_outbox

  // The side effect: a real service would call a mailer with m.key as its idempotency key.
  xact::outbox::Dispatcher mailer(outbox, [](const xact::outbox::Message& m) {
    std::cout << "mail " << m.topic << " key=" << m.key << ": " << m.payload << std::endl;
  });
  mailer.start();  // also delivers what a previous run committed and did not send

  asio::io_context io;           // sockets only
  asio::thread_pool workers(4);  // transactions (they block on SQLite)
  xact::http::Service service(workers.get_executor());
  service.add_metrics([&] { return mailer.metrics_text(); });  // on GET /metrics
  service.route("/order", [&](const xact::http::Request& req, xact::Transaction& txn) {
    if (req.body().empty()) throw xact::http::HttpError(422, "no item\n");
    shop->execute(txn, "INSERT INTO orders (item) VALUES ($1)", {req.body()});
    outbox->post(txn, "mail.order_placed", "you ordered: " + req.body());
    return xact::http::text(201, "ordered\n");
  });
  asio::ip::tcp::acceptor acceptor(
      io, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::stoi(argv[2]))});
  asio::co_spawn(io, service.serve(acceptor), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { io.stop(); });
  io.run();
  workers.join();
  mailer.stop();
}
