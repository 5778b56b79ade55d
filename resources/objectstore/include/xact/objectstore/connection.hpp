// Connection: one user's view of an object database, and the object store's resource manager.
//
// A connection reads from a snapshot: at the start of every transaction of its transaction
// manager it moves to the newest committed transaction, and everything it reads during the
// transaction comes from that one consistent state (MVCC), whatever other connections commit
// meanwhile. Their commits become visible at the next transaction: cached objects they changed
// are turned into ghosts then.
//
// It holds one object per oid (the identity map) and caches them: after a transaction, while
// more than `cache_size` objects hold state, the least recently used ones become ghosts and
// ghosts nobody holds are freed — never an object that is changed or that the application
// holds (a std::shared_ptr outside the connection).
//
// The first change of an object joins the connection to the current transaction (of the
// manager it was opened with, or the transaction given to join_transaction()). At commit it
// writes the changed objects — and new objects reachable from them through references — to
// the storage: prepare at vote, finish at tpc_finish, one write when it is the transaction's
// only participant. A write that lost the race to another commit raises ConflictError unless
// the type's conflict hook merges it; read_current() asks for a ReadConflictError when an
// object read but not written has changed.
//
// Read-only connections refuse changes; historical connections read as of a fixed
// transaction and are read-only.
//
// Closing: once its ConnectionHandle is closed (or destroyed) a connection serves nobody, or
// someone else when the pool hands it out again. Objects loaded through it and still held by
// the application are then detached from the application's point of view: every change to one
// (and every load of a ghost, and get/root/sync) throws UsageError - a change is never
// silently lost, nor committed through a connection that went back to the pool. The same
// holds when the connection was not pooled (pool full, pool_size 0, historical) and destroyed,
// and when the transaction manager it was opened with is destroyed before it. Load the object
// again through an open connection. (Chosen over re-attaching such objects to the next
// connection: the next connection may belong to another thread, and the object's state may be
// older than that connection's snapshot.) A handle closed while its connection is still part
// of an unfinished transaction lets that transaction finish; the connection closes then.
//
// Thread-safety: none. A connection and its objects are used by one thread at a time — the
// thread of its transaction manager (for the thread-bound manager: the thread that opened
// it). Open one connection per thread or request.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/persistent.hpp>
#include <xact/objectstore/storage.hpp>
#include <xact/resource_manager.hpp>

namespace xact::objectstore {

class DB;
class ConnectionSet;
class TypeRegistry;
struct TypeInfo;

struct ConnectionStats {
  std::size_t objects = 0;          ///< objects in the identity map (ghosts included)
  std::size_t non_ghosts = 0;       ///< objects holding state
  std::uint64_t loads = 0;          ///< states loaded from the storage
  std::uint64_t evictions = 0;      ///< objects the cache turned into ghosts or freed
  std::uint64_t invalidations = 0;  ///< objects turned into ghosts by other commits
  std::uint64_t conflicts_resolved = 0;
};

class Connection final : public ResourceManager,
                         public SavepointSupport,
                         public OnePhaseCommit,
                         public std::enable_shared_from_this<Connection> {
 public:
  ~Connection() override;

  // --- objects ----------------------------------------------------------------------------
  /// The root mapping (oid 0), where an application keeps its entry points.
  std::shared_ptr<PersistentMap> root();
  /// The object with `oid`, loaded if it is not in the cache. Throws ObjectNotFoundError
  /// when the snapshot has no such object, StateError when it cannot be decoded.
  std::shared_ptr<Persistent> get(Oid oid);
  template <class T>
  std::shared_ptr<T> get(Oid oid) {
    return Ref<T>::from_base(detail::RefBase(this, oid)).get();
  }
  /// Adds a new object (gives it an oid; it is written at commit). Objects reached through
  /// references from saved objects are added by the commit itself; add() is for an object
  /// the application wants an oid for now. Returns the oid. Throws UsageError for an object
  /// of another connection or of an unregistered type.
  Oid add(const std::shared_ptr<Persistent>& object);
  /// Asks that the commit fail with ReadConflictError unless `object` is still current
  /// (nobody committed it since this transaction read it). Joins the transaction.
  void read_current(const Persistent& object);

  // --- transactions ---------------------------------------------------------------------------
  /// Makes this connection's changes join `txn` instead of its manager's current transaction
  /// (for code that drives Transaction objects itself). Moves to a fresh snapshot when `txn`
  /// is another transaction than the last one.
  void join_transaction(Transaction& txn);
  /// Moves to the newest snapshot now (outside a transaction; inside one it is refused when
  /// the connection has changes). Applies invalidations.
  void sync();
  /// The tid this connection reads as of.
  Tid snapshot() const noexcept { return snapshot_; }
  bool read_only() const noexcept { return read_only_; }
  bool historical() const noexcept { return historical_; }

  // --- cache ---------------------------------------------------------------------------------
  /// Turns least-recently-used unheld, unchanged objects into ghosts until at most
  /// `cache_size` objects hold state, and frees unheld ghosts. Runs after every transaction;
  /// call it to trim now. Raw pointers from Refs are invalid afterwards.
  void cache_gc();
  /// Turns every unheld, unchanged object into a ghost and frees unheld ghosts.
  void cache_minimize();
  std::size_t cache_size() const noexcept { return cache_size_; }
  void set_cache_size(std::size_t n) noexcept { cache_size_ = n; }
  ConnectionStats stats() const;

  DB& db() const noexcept { return *db_; }

  // --- several databases (<xact/objectstore/databases.hpp>) ----------------------------------
  /// The connection to the database `name` of this connection's registry that belongs to the
  /// same connection set: opened with the same transaction manager (and bound to the same
  /// transaction, after join_transaction()), closed when this connection's handle closes;
  /// the same one every time. Its changes commit atomically with this connection's (2PC and
  /// the manager's decision log), and the set's snapshots are taken together. This connection
  /// itself for its own database's name. Throws UsageError for an unknown name, a database
  /// outside any registry, or a historical connection. Valid while this connection is open.
  Connection& get_connection(const std::string& name);

  // --- ResourceManager (driven by the transaction; not for application code) ---------------
  std::string resource_name() const override;
  void abort(Transaction& txn) noexcept override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) noexcept override;
  SavepointSupport* savepoint_support() noexcept override { return this; }
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  RecoverableResource* recoverable() noexcept override;
  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;

  // --- for Persistent, Ref and the codec -----------------------------------------------------
  /// Loads the state of a ghost.
  void load_state(Persistent& object);
  /// Registers a change; joins the transaction.
  void register_changed(Persistent& object);
  /// The oid a reference to `object` is written with: its oid, after adding it if it is new.
  Oid oid_for_reference(const std::shared_ptr<Persistent>& object);
  /// The set's connection to database `name` if it is open (never opens one); this one for
  /// its own name; null otherwise.
  Connection* set_member(const std::string& name) const noexcept;
  /// The seat belt: throws InvalidObjectReference unless the object being written may hold
  /// this cross-database reference under this database's `xrefs` policy.
  void check_xref(const CrossReference& target) const;
  /// The type name of `oid` in this connection's database without loading its state (the
  /// cached object's, else the stored record's header); empty when there is none.
  std::string stored_type_name(Oid oid);
  /// Who placed a new object in this transaction by a reference (not by add()); null if
  /// nobody did.
  const std::string* placed_by(const Persistent& object) const;
  /// "database 'main', object 0x3 (app.Folder)": the object being written.
  std::string describe_writing() const;
  /// Bumped when the cache frees objects (Ref's cached raw pointers check it).
  std::uint64_t eviction_generation() const noexcept { return eviction_generation_; }
  /// The object for `oid` (loaded if needed), as a raw pointer valid until the next eviction.
  Persistent* resolve(Oid oid);

 private:
  friend class DB;
  friend class ConnectionSavepoint;
  class Sync;
  Connection(DB& db, std::optional<Tid> at, bool read_only);

  struct Entry;
  std::shared_ptr<Persistent> load_object(Oid oid);
  void decode_into(Persistent& object, const Revision& rev, const TypeInfo* known);
  std::shared_ptr<Persistent> decode_fresh(Oid oid, const std::string& data);
  void check_writable() const;
  // UsageError when the handle was closed (the connection may be pooled) or its manager is
  // gone.
  void check_open() const;
  void manager_destroyed() noexcept;
  Transaction& current_transaction();
  void ensure_joined();
  void new_transaction();
  // Moves the snapshot to the newest tid the DB knows and ghostifies what changed since.
  void apply_invalidations();
  void ghostify(Persistent& object) noexcept;
  void detach(Persistent& object) noexcept;
  CommitRequest build_request(Transaction& txn);
  Tid commit_request(bool one_phase);
  bool try_resolve(ObjectWrite& write, const ConflictError& conflict);
  void after_commit(Tid tid);
  // Ends this connection's part in the transaction without a commit: changed objects become
  // ghosts, added ones leave the connection.
  void reset_transaction() noexcept;
  void clear_transaction_state() noexcept;
  void check_unmarked_changes();
  void opened(TransactionManager* manager, std::shared_ptr<ConnectionSet> set);
  // Leaves the connection set (the primary closes the connections it opened).
  void leave_set() noexcept;
  void close_secondaries() noexcept;
  // Called by the DB when the handle is closed; false when the connection must not go back
  // to the pool (it is still joined to a transaction, or historical).
  bool released() noexcept;
  void transaction_ended() noexcept;
  bool evictable(const std::shared_ptr<Persistent>& object) const noexcept;
  void free_unheld_ghosts() noexcept;

  DB* db_;  // used only while a ConnectionHandle (which holds the DB) is open
  std::shared_ptr<Storage> storage_;
  const TypeRegistry& registry_;
  TransactionManager* manager_ = nullptr;
  std::shared_ptr<Sync> sync_;
  std::shared_ptr<ConnectionSet> set_;  // null outside a registry, and when historical
  const Persistent* encoding_ = nullptr;  // the object whose state is being written
  bool read_only_ = false;
  bool historical_ = false;
  Tid snapshot_ = kNoTid;
  std::size_t cache_size_;
  bool debug_writes_ = false;
  bool close_pending_ = false;
  bool closed_ = false;  // the handle was closed; no use until the pool hands it out again

  std::unordered_map<Oid, std::shared_ptr<Persistent>> objects_;
  std::size_t non_ghosts_ = 0;
  std::uint64_t eviction_generation_ = 1;
  std::unordered_map<Oid, std::string> loaded_bytes_;  // debug-writes mode only

  // The current transaction's work.
  Transaction* joined_ = nullptr;  // the transaction this connection joined
  Transaction* bound_ = nullptr;   // set by join_transaction() until that transaction ends
  std::vector<std::shared_ptr<Persistent>> changed_;  // changed and added objects
  std::unordered_set<Oid> added_;                     // new objects among them
  // Cross-database references written in this transaction (check_xref saw them), and how many
  // of them were announced to the registry (Databases::note_xrefs: a pack keeps their targets).
  mutable std::vector<std::pair<std::string, Oid>> xrefs_written_;
  std::size_t xrefs_announced_ = 0;
  std::unordered_map<Oid, Tid> read_checks_;
  std::vector<std::uint64_t> resolved_;  // oids whose committed state was merged
  std::optional<CommitRequest> request_;
  std::optional<Storage::PreparedId> prepared_;

  ConnectionStats stats_;
};

}  // namespace xact::objectstore
