#include <utility>  // before Boost.Asio 1.74's awaitable.hpp

#include "server.hpp"

#include <xact/errors.hpp>
#include <xact/http/service.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sstream>
#include <thread>

namespace demo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

constexpr const char* kRoutes[] = {"/transfer", "/profile", "/session"};

// "name=value" lines (the value runs to the end of its line).
std::map<std::string, std::string, std::less<>> parse_params(const std::string& body) {
  std::map<std::string, std::string, std::less<>> params;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) {
      throw xact::http::HttpError(400, "a parameter line without '=': " + line.substr(0, 40));
    }
    params[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return params;
}

xact::http::Options service_options(App& app) {
  xact::http::Options o;
  o.retry = xact::RetryPolicy{};  // what xact::run does: retry for up to 10 s
  o.manager.decision_log = app.log();
  return o;
}

}  // namespace

struct Server::Impl {
  Impl(App& app, int workers)
      : app(app),
        pool(static_cast<std::size_t>(workers)),
        service(pool.get_executor(), service_options(app)),
        acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {}

  App& app;
  asio::thread_pool pool;  // the transactions (they block: fsync, SQL)
  xact::http::Service service;
  asio::io_context io;  // sockets only; destroyed before the service its coroutines use
  tcp::acceptor acceptor;
  std::thread io_thread;
  bool stopped = false;
};

Server::Server(App& app, int workers) : impl_(std::make_unique<Impl>(app, workers)) {
  for (const char* path : kRoutes) {
    const std::string route = path;
    impl_->service.route(
        route, [&app, route](const xact::http::Request& req, xact::Transaction& txn) {
          Request r{route, parse_params(req.body())};
          // A connection per attempt, on the request's manager: it joins this attempt's
          // transaction (and goes back to the pool when the transaction ends).
          Worker w(app, xact::http::request_manager(txn));
          try {
            return xact::http::text(200, handle(txn, w, app, r), req.version());
          } catch (const xact::UsageError& e) {
            throw xact::http::HttpError(400, e.what());  // checked before anything changed
          }
        });
  }
  asio::co_spawn(impl_->io, impl_->service.serve(impl_->acceptor), asio::detached);
  impl_->io_thread = std::thread([this] { impl_->io.run(); });
}

Server::~Server() { stop(); }

unsigned short Server::port() const noexcept { return impl_->acceptor.local_endpoint().port(); }

Server::Totals Server::totals() const {
  Totals t;
  for (const char* path : kRoutes) {
    if (const auto* m = impl_->service.metrics(path)) {
      t.requests += m->requests.load();
      t.attempts += m->attempts.load();
      t.conflicts += m->conflicts.load();
      t.retries_exhausted += m->retries_exhausted.load();
    }
  }
  return t;
}

void Server::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->io.stop();
  impl_->io_thread.join();
  impl_->pool.join();
}

struct Client::Impl {
  explicit Impl(unsigned short port) : port(port), stream(io) {}
  void connect() { stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)); }
  unsigned short port;
  asio::io_context io;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

Client::Client(unsigned short port) : impl_(std::make_unique<Impl>(port)) { impl_->connect(); }

Client::~Client() {
  beast::error_code ec;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

Client::Response Client::send(const Request& r, bool get) {
  bhttp::request<bhttp::string_body> req{get ? bhttp::verb::get : bhttp::verb::post, r.route, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set(bhttp::field::content_type, "text/plain");
  for (const auto& [k, v] : r.params) req.body() += k + "=" + v + "\n";
  req.prepare_payload();
  for (int round = 0;; ++round) {
    try {
      bhttp::write(impl_->stream, req);
      bhttp::response<bhttp::string_body> res;
      bhttp::read(impl_->stream, impl_->buffer, res);
      if (!res.keep_alive()) {
        beast::error_code ec;
        impl_->stream.socket().close(ec);
        impl_->buffer.clear();
        impl_->connect();
      }
      return {res.result_int(), std::move(res.body())};
    } catch (const beast::system_error&) {
      // A kept-alive connection the server closed (its read timeout): once more on a new one.
      if (round > 0) throw;
      beast::error_code ec;
      impl_->stream.socket().close(ec);
      impl_->buffer.clear();
      impl_->connect();
    }
  }
}

}  // namespace demo
