#include <xact/sql/pool.hpp>

#include <xact/errors.hpp>
#include <xact/sql/errors.hpp>

namespace xact::sql {

// ---- PooledConnection ---------------------------------------------------------------------

PooledConnection& PooledConnection::operator=(PooledConnection&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::move(other.pool_);
    conn_ = std::move(other.conn_);
  }
  return *this;
}

void PooledConnection::reset() noexcept {
  if (conn_ && pool_) pool_->give_back(std::move(conn_), /*discard=*/false);
  conn_.reset();
  pool_.reset();
}

void PooledConnection::discard() noexcept {
  if (conn_ && pool_) pool_->give_back(std::move(conn_), /*discard=*/true);
  conn_.reset();
  pool_.reset();
}

// ---- ConnectionPool -------------------------------------------------------------------------

std::shared_ptr<ConnectionPool> ConnectionPool::create(Factory factory, PoolOptions options) {
  if (!factory) throw UsageError("ConnectionPool: no connection factory");
  if (options.max_size == 0) {
    throw UsageError("ConnectionPool '" + options.name + "': max_size must be at least 1");
  }
  return std::shared_ptr<ConnectionPool>(
      new ConnectionPool(std::move(factory), std::move(options)));
}

ConnectionPool::ConnectionPool(Factory factory, PoolOptions options)
    : factory_(std::move(factory)), options_(std::move(options)) {}

ConnectionPool::~ConnectionPool() = default;  // idle connections close with idle_

PooledConnection ConnectionPool::acquire() { return acquire(options_.acquire_timeout); }

PooledConnection ConnectionPool::acquire(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!idle_.empty()) {
      Idle candidate = std::move(idle_.back());
      idle_.pop_back();
      const bool ping = Clock::now() - candidate.since >= options_.ping_after_idle;
      if (ping) ++stats_.pings;
      lock.unlock();
      // The checks may do I/O: never under the lock.
      bool healthy = candidate.conn->looks_alive() && (!ping || candidate.conn->ping());
      if (healthy) {
        lock.lock();
        ++stats_.reused;
        lock.unlock();
        return PooledConnection(shared_from_this(), std::move(candidate.conn));
      }
      candidate.conn.reset();  // closes it
      lock.lock();
      --open_;
      ++stats_.discarded;
      continue;  // this slot is free now: try the next idle one, or make a new one
    }
    if (open_ < options_.max_size) {
      ++open_;
      lock.unlock();
      std::unique_ptr<Connection> conn;
      try {
        conn = factory_();
        if (!conn)
          throw ResourceError("pool '" + options_.name + "': the factory returned no connection");
      } catch (...) {
        forget_one();
        throw;
      }
      lock.lock();
      ++stats_.created;
      lock.unlock();
      return PooledConnection(shared_from_this(), std::move(conn));
    }
    ++stats_.waiting;
    const bool freed = freed_.wait_until(
        lock, deadline, [&] { return !idle_.empty() || open_ < options_.max_size; });
    --stats_.waiting;
    if (!freed) {
      ++stats_.timeouts;
      throw PoolTimeoutError(
          "pool '" + options_.name + "': all " + std::to_string(options_.max_size) +
          " connections stayed in use for " + std::to_string(timeout.count()) +
          " ms; raise PoolOptions::max_size or acquire_timeout, or look for transactions "
          "that are left open");
    }
  }
}

void ConnectionPool::forget_one() noexcept {
  {
    std::lock_guard lock(mutex_);
    --open_;
  }
  freed_.notify_one();
}

void ConnectionPool::give_back(std::unique_ptr<Connection> conn, bool discard) noexcept {
  if (discard || conn->broken()) {
    conn.reset();  // close outside the lock
    {
      std::lock_guard lock(mutex_);
      --open_;
      ++stats_.discarded;
    }
    freed_.notify_one();
    return;
  }
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(Idle{std::move(conn), Clock::now()});
  }
  freed_.notify_one();
}

void ConnectionPool::clear_idle() noexcept {
  std::vector<Idle> closing;
  {
    std::lock_guard lock(mutex_);
    closing.swap(idle_);
    open_ -= closing.size();
  }
  closing.clear();
  freed_.notify_all();
}

PoolStats ConnectionPool::stats() const {
  std::lock_guard lock(mutex_);
  PoolStats s = stats_;
  s.open = open_;
  s.idle = idle_.size();
  return s;
}

}  // namespace xact::sql
