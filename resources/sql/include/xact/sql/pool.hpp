// A pool of connections to one database, so that an application that runs a transaction per
// request does not connect per request.
//
//   auto pool = ConnectionPool::create([&] { return open_my_connection(); }, options);
//   {
//     PooledConnection c = pool->acquire();   // an idle one, or a new one, or waits
//     c->execute("SELECT 1");
//   }                                          // back to the pool (closed if it broke)
//
// - Size limit: at most max_size connections exist (in use + idle). acquire() waits for one to
//   come back, up to acquire_timeout, then throws PoolTimeoutError saying so.
// - Idle connections are reused most-recently-used first (the warmest), and kept open.
// - Health check on checkout: every idle connection is checked without a round trip
//   (Connection::looks_alive(): a server that restarted or dropped the connection leaves an
//   end of file on the socket); one idle for at least ping_after_idle is also pinged (a round
//   trip). Dead ones are closed and replaced, so a server restart costs the application
//   nothing but reconnects. A connection that broke while in use is closed when it comes back.
// - The factory runs without the pool's lock held; its exceptions (the adapter's
//   ConnectionLost "cannot connect ...", a refused configuration) go to the caller of
//   acquire().
//
// Thread-safety: thread-safe. PooledConnection is a move-only lease used by one thread at a
// time; it keeps the pool alive, so leases may outlive the last other reference to the pool.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <xact/sql/connection.hpp>

namespace xact::sql {

struct PoolOptions {
  /// Connections open at most (in use + idle). At least 1.
  std::size_t max_size = 10;
  /// How long acquire() waits for a connection when max_size are in use.
  std::chrono::milliseconds acquire_timeout{5000};
  /// A connection idle at least this long is pinged (a round trip) on checkout; a connection
  /// used more recently gets only the local check. 0 pings on every checkout.
  std::chrono::milliseconds ping_after_idle{1000};
  /// For messages ("pool 'pg:orders'").
  std::string name = "sql";
};

struct PoolStats {
  std::size_t open = 0;         ///< in use + idle, now
  std::size_t idle = 0;         ///< idle, now
  std::size_t waiting = 0;      ///< callers blocked in acquire(), now
  std::uint64_t created = 0;    ///< connections the factory made
  std::uint64_t reused = 0;     ///< checkouts served by an idle connection
  std::uint64_t discarded = 0;  ///< connections closed because they were dead or broken
  std::uint64_t pings = 0;      ///< round-trip health checks
  std::uint64_t timeouts = 0;   ///< acquire() calls that gave up
};

class ConnectionPool;

/// A connection on loan from a pool. Returned (or, when broken or discard()ed, closed) when the
/// lease is reset or destroyed.
class PooledConnection {
 public:
  PooledConnection() = default;
  PooledConnection(PooledConnection&&) noexcept = default;
  PooledConnection& operator=(PooledConnection&& other) noexcept;
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;
  ~PooledConnection() { reset(); }

  Connection* get() const noexcept { return conn_.get(); }
  Connection& operator*() const noexcept { return *conn_; }
  Connection* operator->() const noexcept { return conn_.get(); }
  explicit operator bool() const noexcept { return conn_ != nullptr; }

  /// Gives the connection back to the pool (closing it if it is broken). Idempotent.
  void reset() noexcept;
  /// Closes the connection instead of giving it back (its session state is unknown).
  void discard() noexcept;

 private:
  friend class ConnectionPool;
  PooledConnection(std::shared_ptr<ConnectionPool> pool, std::unique_ptr<Connection> conn)
      : pool_(std::move(pool)), conn_(std::move(conn)) {}
  std::shared_ptr<ConnectionPool> pool_;
  std::unique_ptr<Connection> conn_;
};

class ConnectionPool : public std::enable_shared_from_this<ConnectionPool> {
 public:
  using Factory = std::function<std::unique_ptr<Connection>()>;
  using Clock = std::chrono::steady_clock;

  /// Creates an empty pool (connections are made on demand). Throws UsageError for
  /// max_size 0 or an empty factory.
  static std::shared_ptr<ConnectionPool> create(Factory factory, PoolOptions options = {});
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// A healthy connection: an idle one that passes the health check, else a new one; waits up
  /// to options().acquire_timeout when the pool is full, then throws PoolTimeoutError.
  PooledConnection acquire();
  PooledConnection acquire(std::chrono::milliseconds timeout);

  /// Closes every idle connection (in-use ones are closed when they come back only if broken).
  void clear_idle() noexcept;
  PoolStats stats() const;
  const PoolOptions& options() const noexcept { return options_; }

 private:
  friend class PooledConnection;
  struct Idle {
    std::unique_ptr<Connection> conn;
    Clock::time_point since;
  };
  ConnectionPool(Factory factory, PoolOptions options);
  void give_back(std::unique_ptr<Connection> conn, bool discard) noexcept;
  void forget_one() noexcept;  // a connection was closed: one slot is free

  const Factory factory_;
  const PoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<Idle> idle_;  // most recently returned last
  std::size_t open_ = 0;
  PoolStats stats_;
};

}  // namespace xact::sql
