// TcpProxy: a loopback TCP proxy for tests that need a database connection to break at a
// chosen statement while the server's side of it stays open, as a network fault or a client
// killed in the middle of a call leaves it: the server may still receive and run what the
// client sent last, after the client has given the connection up.
//
//   xact::testing::TcpProxy proxy(server_port);          // listens on 127.0.0.1:proxy.port()
//   ... connect through proxy.port(); links are numbered in the order they were accepted ...
//   proxy.cut_at_send(0, 1);   // link 0: forward one more client send, then hold the next
//   ... the client's next-but-one statement: held, and the client's side closed ...
//   proxy.wait_cut(0, 5s);
//   proxy.deliver_held(0);     // the server gets the held statement now, then end of file
//
// A "send" is what one read of the client's socket returns; a client that writes each
// statement in one call (libpq, Connector/C++ on loopback) sends one statement per send.
//
// Thread-safety: all calls may come from any thread. Each link has a thread of its own; the
// destructor closes every socket and joins them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace xact::testing {

class TcpProxy {
 public:
  /// Listens on an ephemeral port of 127.0.0.1 and forwards each accepted connection to
  /// target_host:target_port. Throws std::system_error when it cannot listen.
  explicit TcpProxy(std::uint16_t target_port, std::string target_host = "127.0.0.1");
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  /// How many connections were accepted so far.
  std::size_t links() const;
  /// Link `link` (0 = the first accepted) forwards `forward_first` more client sends, then
  /// holds the next one (the server never sees it unless deliver_held) and closes the client's
  /// side at once; the server's side stays open, and what the server sends is dropped.
  /// std::out_of_range for a link not accepted yet.
  void cut_at_send(std::size_t link, std::size_t forward_first = 0);
  /// Waits until link `link` has held a send and closed its client; false on timeout.
  bool wait_cut(std::size_t link, std::chrono::milliseconds timeout);
  /// Whether the server's side of link `link` is still open (the server has not closed it).
  bool server_open(std::size_t link) const;
  /// Waits until the server has closed link `link`; false on timeout.
  bool wait_server_closed(std::size_t link, std::chrono::milliseconds timeout);
  /// Sends what link `link` held to the server, then half-closes the server's side (the
  /// server reads its end of file after the held bytes) and drops its answers until it closes.
  void deliver_held(std::size_t link);

 private:
  struct Link;
  void accept_loop();
  void link_loop(const std::shared_ptr<Link>& link);
  std::shared_ptr<Link> link_at(std::size_t index) const;

  std::string target_host_;
  std::uint16_t target_port_ = 0;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  bool stopping_ = false;  // under mutex_
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<std::shared_ptr<Link>> links_;
  std::vector<std::thread> threads_;  // the link threads; accept_thread_ apart
  std::thread accept_thread_;
};

}  // namespace xact::testing
