#include <xact/testing/tcp_proxy.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace xact::testing {

namespace {

constexpr int kPollMs = 10;  // how soon a link notices stop and deliver requests

[[noreturn]] void fail(const char* what) {
  throw std::system_error(errno, std::generic_category(), std::string("TcpProxy: ") + what);
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    fd = -1;
  }
}

// Writes all of `data`; false when the peer is gone.
bool send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

struct TcpProxy::Link {
  int client = -1;
  int server = -1;
  // Under TcpProxy::mutex_:
  std::optional<std::size_t> cut_after;  // sends still forwarded before the held one
  std::string held;
  bool cut = false;      // held a send and closed the client
  bool deliver = false;  // deliver_held asked
  bool delivered = false;
  bool server_open = true;
};

TcpProxy::TcpProxy(std::uint16_t target_port, std::string target_host)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener_ < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_, 64) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int e = errno;
    ::close(listener_);
    errno = e;
    fail("cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

TcpProxy::~TcpProxy() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  ::close(listener_);
}

void TcpProxy::accept_loop() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(target_port_);
    if (server < 0 || ::inet_pton(AF_INET, target_host_.c_str(), &addr.sin_addr) != 1 ||
        ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (server >= 0) ::close(server);
      ::close(client);  // the client sees the server refuse, as without the proxy
      continue;
    }
    auto link = std::make_shared<Link>();
    link->client = client;
    link->server = server;
    std::lock_guard lock(mutex_);
    links_.push_back(link);
    threads_.emplace_back([this, link] { link_loop(link); });
    changed_.notify_all();
  }
}

void TcpProxy::link_loop(const std::shared_ptr<Link>& link) {
  char buf[64 * 1024];
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (stopping_) break;
      if (link->deliver && !link->delivered && link->server >= 0) {
        link->delivered = true;
        const std::string held = std::move(link->held);
        lock.unlock();
        if (send_all(link->server, held.data(), held.size())) ::shutdown(link->server, SHUT_WR);
      }
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (link->client >= 0) fds[n++] = {link->client, POLLIN, 0};
    if (link->server >= 0) fds[n++] = {link->server, POLLIN, 0};
    if (n == 0) break;
    if (::poll(fds, n, kPollMs) <= 0) continue;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const bool from_client = fds[i].fd == link->client;
      const ssize_t got = ::recv(fds[i].fd, buf, sizeof buf, 0);
      if (got < 0 && errno == EINTR) continue;
      if (from_client) {
        if (got <= 0) {
          // The client closed: pass its end of file on.
          close_fd(link->client);
          if (link->server >= 0) ::shutdown(link->server, SHUT_WR);
          continue;
        }
        std::unique_lock lock(mutex_);
        if (link->cut_after && *link->cut_after == 0) {
          link->held.assign(buf, static_cast<std::size_t>(got));
          link->cut = true;
          link->cut_after.reset();
          close_fd(link->client);
          changed_.notify_all();
          continue;
        }
        if (link->cut_after) --*link->cut_after;
        lock.unlock();
        if (link->server < 0 || !send_all(link->server, buf, static_cast<std::size_t>(got))) {
          close_fd(link->client);
        }
      } else {
        if (got <= 0) {
          std::lock_guard lock(mutex_);
          close_fd(link->server);
          link->server_open = false;
          close_fd(link->client);
          changed_.notify_all();
          continue;
        }
        if (link->client >= 0 && !send_all(link->client, buf, static_cast<std::size_t>(got))) {
          close_fd(link->client);
        }
        // without a client (cut): the server's answers are dropped
      }
    }
  }
  std::lock_guard lock(mutex_);
  close_fd(link->client);
  close_fd(link->server);
  link->server_open = false;
  changed_.notify_all();
}

std::shared_ptr<TcpProxy::Link> TcpProxy::link_at(std::size_t index) const {
  if (index >= links_.size()) {
    throw std::out_of_range("TcpProxy: link " + std::to_string(index) + " was not accepted (" +
                            std::to_string(links_.size()) + " so far)");
  }
  return links_[index];
}

std::size_t TcpProxy::links() const {
  std::lock_guard lock(mutex_);
  return links_.size();
}

void TcpProxy::cut_at_send(std::size_t link, std::size_t forward_first) {
  std::lock_guard lock(mutex_);
  link_at(link)->cut_after = forward_first;
}

bool TcpProxy::wait_cut(std::size_t link, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  auto l = link_at(link);
  return changed_.wait_for(lock, timeout, [&] { return l->cut; });
}

bool TcpProxy::server_open(std::size_t link) const {
  std::lock_guard lock(mutex_);
  return link_at(link)->server_open;
}

bool TcpProxy::wait_server_closed(std::size_t link, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  auto l = link_at(link);
  return changed_.wait_for(lock, timeout, [&] { return !l->server_open; });
}

void TcpProxy::deliver_held(std::size_t link) {
  std::lock_guard lock(mutex_);
  link_at(link)->deliver = true;
}

}  // namespace xact::testing
