// DB: an object database over one storage, with a pool of connections.
//
//   auto db = xact::objectstore::DB::open(std::make_shared<MemoryStorage>());
//   {
//     xact::TransactionGuard g;                  // the thread's transaction manager
//     auto conn = db->open();                    // a pooled connection
//     conn->root()->set("greeting", "hello");
//     g.commit();
//   }
//
// The DB creates the root mapping (oid 0) in an empty storage, listens to the storage's
// commits to tell its connections which cached objects went stale, and keeps idle
// connections (with their caches) for reuse.
//
// Recovery: the connections' resource name is "objects:<name>"; register
// recovery_target() with xact::Recovery so prepared transactions of this storage left by a
// crash are decided by the coordinator's log.
//
// Thread-safety: DB is thread-safe; each connection is used by one thread at a time. Every
// ConnectionHandle must be gone before the DB is destroyed (handles keep the DB alive).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/objectstore/storage.hpp>

namespace xact::objectstore {

/// The seat belt: may objects of this database hold references into other databases?
enum class XrefPolicy : std::uint8_t {
  allow,   ///< every cross-database reference
  check,   ///< those a policy allows (the referring type's, else the registry's); else refused
  forbid,  ///< none (the default)
};

struct DBOptions {
  /// The database's name: the connections' resource name is "objects:<name>".
  std::string name = "main";
  /// Target number of objects holding state per connection cache.
  std::size_t cache_size = 10000;
  /// Idle connections kept for reuse; more are closed when released.
  std::size_t pool_size = 8;
  /// Debug mode: a commit fails with UsageError naming an object that was changed without
  /// mark_changed() (costs a copy of every loaded state and a re-encoding at commit).
  bool debug_writes = false;
  /// Committed transactions remembered for invalidation. A connection idle for longer than
  /// this many commits empties its cache instead of applying them one by one.
  std::size_t invalidation_history = 10000;
  /// Cross-database references from this database's objects.
  XrefPolicy xrefs = XrefPolicy::forbid;
  /// Where type names are looked up; null: TypeRegistry::global().
  TypeRegistry* registry = nullptr;
};

struct ConnectionOptions {
  /// Refuse changes.
  bool read_only = false;
  /// A historical connection: reads as of this tid (for a time: tid_for_time); read-only.
  std::optional<Tid> at{};
  /// The transaction manager whose transactions the connection joins; null:
  /// current_manager() at open time.
  TransactionManager* manager = nullptr;
};

class DB;
class Databases;
class ConnectionSet;

/// An open connection; returns it to the DB's pool when destroyed. Move-only. A connection
/// still joined to an unfinished transaction goes back to the pool when that transaction ends.
class ConnectionHandle {
 public:
  ConnectionHandle() = default;
  ConnectionHandle(ConnectionHandle&&) noexcept = default;
  ConnectionHandle& operator=(ConnectionHandle&& other) noexcept;
  ~ConnectionHandle();

  Connection* operator->() const noexcept { return conn_.get(); }
  Connection& operator*() const noexcept { return *conn_; }
  const std::shared_ptr<Connection>& get() const noexcept { return conn_; }
  explicit operator bool() const noexcept { return conn_ != nullptr; }
  /// Returns the connection to the pool now.
  void close() noexcept;

 private:
  friend class DB;
  ConnectionHandle(std::shared_ptr<DB> db, std::shared_ptr<Connection> conn)
      : db_(std::move(db)), conn_(std::move(conn)) {}
  std::shared_ptr<DB> db_;
  std::shared_ptr<Connection> conn_;
};

class DB : public std::enable_shared_from_this<DB> {
 public:
  /// Opens a database over `storage`, creating the root mapping if the storage is empty.
  static std::shared_ptr<DB> open(std::shared_ptr<Storage> storage, DBOptions options = {});
  ~DB();
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;

  /// A connection from the pool (or a new one), at the newest snapshot.
  ConnectionHandle open(ConnectionOptions options = {});
  /// A read-only connection reading as of `tid`.
  ConnectionHandle open_historical(Tid tid);

  const std::string& name() const noexcept { return options_.name; }
  std::string resource_name() const { return "objects:" + options_.name; }
  const DBOptions& options() const noexcept { return options_; }
  Storage& storage() const noexcept { return *storage_; }
  const std::shared_ptr<Storage>& storage_ptr() const noexcept { return storage_; }
  TypeRegistry& registry() const noexcept { return *registry_; }
  /// The newest committed tid this DB knows of (the snapshot a new transaction reads).
  Tid last_transaction() const;
  /// What xact::Recovery needs of this database: resource_name() and the storage (its
  /// prepared transactions). Register it with Recovery::register_resource.
  RecoveryTarget recovery_target() const;
  /// Idle connections in the pool.
  std::size_t pool_idle() const;

  /// The (tid, oid) pairs the transactions with from < tid <= to wrote, where `to` is set to
  /// the newest tid known: for a connection moving its snapshot from `from` to `to`. False
  /// when some of those transactions are no longer remembered (the caller then turns its
  /// whole cache into ghosts).
  bool invalidations(Tid from, Tid& to, std::vector<std::pair<Tid, Oid>>& out) const;
  /// The same, up to at most `limit` (a connection set's common snapshot point).
  bool invalidations(Tid from, Tid limit, Tid& to, std::vector<std::pair<Tid, Oid>>& out) const;

  /// The registry this database was added to (Databases::add), or null.
  std::shared_ptr<Databases> databases() const;

 private:
  friend class ConnectionHandle;
  friend class Connection;
  friend class Databases;
  // A connection of `set` (Connection::get_connection).
  ConnectionHandle open_member(TransactionManager* manager, std::shared_ptr<ConnectionSet> set);
  DB(std::shared_ptr<Storage> storage, DBOptions options);
  void on_commit(Tid tid, const std::vector<Oid>& oids);
  void release(const std::shared_ptr<Connection>& conn) noexcept;
  void create_root();

  std::shared_ptr<Storage> storage_;
  DBOptions options_;
  TypeRegistry* registry_;

  mutable std::mutex mutex_;
  Tid last_tid_ = kNoTid;
  Tid forgotten_upto_ = kNoTid;  // invalidations at or below this tid are no longer known
  std::deque<std::pair<Tid, std::vector<Oid>>> history_;
  std::vector<std::shared_ptr<Connection>> idle_;
  std::weak_ptr<Databases> databases_;
};

}  // namespace xact::objectstore
