// A minimal HTTP service on xact::http: POST /hit adds one to a counter in an object store
// (a file storage), one transaction per request, retried on a conflict. Copy it to start.
//
//   xact-http-example /tmp/counter.xfs 8080 &   curl -X POST 127.0.0.1:8080/hit
#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include <iostream>
#include <string>

#include <boost/asio.hpp>
#include <xact/http/service.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>

int main(int argc, char** argv) {
  namespace asio = boost::asio;
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " <data file> <port>\n";
    return 2;
  }
  auto db = xact::objectstore::DB::open(xact::objectstore::FileStorage::open(argv[1]));
  asio::io_context io;           // sockets only
  asio::thread_pool workers(4);  // transactions (they block on fsync)
  xact::http::Service service(workers.get_executor());
  service.route("/hit", [&](const xact::http::Request&, xact::Transaction&) {
    auto conn = db->open();  // joins the request's transaction
    auto root = conn->root();
    const auto* v = root->find("hits");
    const std::int64_t hits = (v ? v->as_int() : 0) + 1;
    root->set("hits", hits);
    return xact::http::text(200, std::to_string(hits) + "\n");
  });
  asio::ip::tcp::acceptor acceptor(
      io, {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::stoi(argv[2]))});
  asio::co_spawn(io, service.serve(acceptor), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { io.stop(); });
  io.run();  // GET /metrics: Prometheus text
  workers.join();
}
