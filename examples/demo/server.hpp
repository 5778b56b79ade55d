// The demo over HTTP: its routes served by xact::http (one transaction per request, retried on
// a conflict, on a worker pool) on a loopback port, and the keep-alive client the load
// generator's threads use.
//
//   POST /transfer   body: from=<account>\nto=<account>\namount=<n>\n
//   POST /profile    body: profile=<n>\nbio=<text>\n
//   POST /session    body: session=<n>\n
//   GET  /metrics    the wrapper's per-route metrics (Prometheus text)
//
// A bad request (unknown route, a missing or malformed parameter) answers 400 or 404 and
// changes nothing; retries exhausted answer 503 (see <xact/http/service.hpp>).
#pragma once

#include "app.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace demo {

class Server {
 public:
  /// Starts serving `app` on 127.0.0.1 (a free port) with `workers` worker threads.
  Server(App& app, int workers);
  ~Server();  ///< stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  unsigned short port() const noexcept;
  /// What the routes counted, summed: requests, attempts, conflicts, retries exhausted.
  struct Totals {
    std::uint64_t requests = 0, attempts = 0, conflicts = 0, retries_exhausted = 0;
  };
  Totals totals() const;
  /// Closes the listening socket, ends the connections and joins the threads. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One keep-alive connection to a Server.
class Client {
 public:
  explicit Client(unsigned short port);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  struct Response {
    unsigned status = 0;
    std::string body;
  };
  /// POST `r.route` with its parameters as the body; GET when `get`. Reconnects once when
  /// the server closed the kept-alive connection.
  Response send(const Request& r, bool get = false);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace demo
