// The storage interface: what keeps the revisions of an object database. The DB and its
// connections (<xact/objectstore/db.hpp>) sit on top; MemoryStorage (here) and FileStorage
// (<xact/objectstore/file_storage.hpp>) implement it, and later a PostgreSQL storage.
//
// Model. A storage holds, for each oid, a list of revisions (serial, data), where the serial
// is the tid of the transaction that wrote it and data is an object record
// (<xact/objectstore/codec.hpp>). Transactions commit in tid order; last_transaction() is the
// newest committed tid. Reading "as of tid T" sees exactly the transactions with tid <= T:
// that is the snapshot a connection reads from.
//
// Committing (the two-phase commit, driven by a Connection):
//   prepare(request)  checks every write and read-check, then locks their oids and makes the
//                     transaction durable as prepared (a yes vote). Conflicts are raised
//                     here, at once, never by waiting:
//                       - an oid written or read-checked by another prepared transaction:
//                         ConflictError (locked(), committed serial kNoTid);
//                       - a write whose base is not the oid's current serial: ConflictError
//                         carrying both serials (the connection may resolve it and prepare
//                         again with the committed serial as base);
//                       - a read-check whose serial is not current: ReadConflictError.
//                     Nothing is locked or written when it throws.
//   finish(id, durable) commits: assigns the tid (so tids follow commit order, and every
//                     snapshot is a prefix of the history), makes the revisions visible,
//                     releases the locks and tells the invalidation listener. With `durable`
//                     (the default) the commit is durable when it returns; without, it may wait
//                     for the next durable write: only when something else records the decision
//                     (Transaction::decision_recorded(): a commit record in the decision log, or
//                     a last resource's decision table), so recovery commits it after a crash.
//                     An I/O failure throws StorageError; the transaction then stays prepared
//                     and recovery finishes it by xid.
//   abort(id)         releases a prepared transaction. Never throws.
//   commit_one_phase  prepare + finish in one step with one durable write: for a transaction
//                     with this storage as its only participant.
// Prepared transactions that hold disjoint oids do not wait for each other; a prepared
// transaction waiting for its decision blocks only writers of its own oids.
//
// Recovery: a storage is a RecoverableResource. Prepared transactions that survived a restart
// are listed by recover() and decided by commit_prepared / rollback_prepared, by xid.
//
// Thread-safety: every method is thread-safe; a storage is shared by every connection of a DB.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/objectstore/types.hpp>
#include <xact/resource_manager.hpp>
#include <xact/xid.hpp>

namespace xact::objectstore {

struct Revision {
  Tid serial = kNoTid;
  std::string data;
};

/// One object written by a transaction.
struct ObjectWrite {
  Oid oid = 0;
  /// The serial the new state was derived from; kNoTid for a new object.
  Tid base = kNoTid;
  std::string data;
};

/// An object read with read_current(): the commit fails unless `serial` is still current.
struct ReadCheck {
  Oid oid = 0;
  Tid serial = kNoTid;
};

/// What the application said about a transaction (user, description, extension).
struct TransactionMeta {
  std::string user;
  std::string description;
  std::vector<std::pair<std::string, std::string>> extension;
};

struct CommitRequest {
  /// The branch id, recorded with the prepared transaction so recovery can decide it. Empty
  /// (no gtrid) for a one-phase commit.
  Xid xid;
  TransactionMeta meta;
  std::vector<ObjectWrite> writes;
  std::vector<ReadCheck> read_checks;
};

/// A committed transaction as iteration yields it.
struct TransactionRecord {
  Tid tid = kNoTid;
  TransactionMeta meta;
  std::vector<std::pair<Oid, std::string>> objects;  ///< (oid, data) in write order
};

/// Told, in tid order, about every committed transaction: its tid and the oids it wrote.
/// Called with the storage's commit order held: keep it short and never call the storage.
using InvalidationListener = std::function<void(Tid tid, const std::vector<Oid>& oids)>;

class Storage : public RecoverableResource {
 public:
  using PreparedId = std::uint64_t;

  ~Storage() override = default;

  /// What the storage is, for messages ("file /srv/data.xfs", "memory").
  virtual std::string describe() const = 0;

  // --- reading -------------------------------------------------------------------------------
  virtual Tid last_transaction() const = 0;
  /// The newest revision of `oid` with serial <= `at`; nullopt when there is none (the object
  /// did not exist yet, or never did).
  virtual std::optional<Revision> load(Oid oid, Tid at = kMaxTid) const = 0;
  /// The data of the revision of `oid` written by transaction `serial`; nullopt when gone
  /// (packed away) or never written.
  virtual std::optional<std::string> load_serial(Oid oid, Tid serial) const = 0;
  /// A fresh oid, never handed out before by this storage (it may be lost unused).
  virtual Oid new_oid() = 0;
  /// Calls `fn` with the current revision of every live object, in no particular order, from
  /// a consistent snapshot. Stops when `fn` returns false.
  virtual void for_each_object(
      const std::function<bool(Oid oid, Tid serial, std::string_view data)>& fn) const = 0;
  /// Calls `fn` for the committed transactions with from <= tid <= to, in tid order. Stops
  /// when `fn` returns false.
  virtual void iterate(Tid from, Tid to,
                       const std::function<bool(const TransactionRecord&)>& fn) const = 0;

  // --- committing (see the file comment) ----------------------------------------------------
  virtual PreparedId prepare(CommitRequest request) = 0;
  virtual Tid finish(PreparedId id, bool durable) = 0;
  Tid finish(PreparedId id) { return finish(id, true); }
  virtual void abort(PreparedId id) noexcept = 0;
  virtual Tid commit_one_phase(CommitRequest request) = 0;

  /// Replaces the listener (one per storage: the DB's). Pass {} to remove it.
  virtual void set_invalidation_listener(InvalidationListener listener) = 0;

  /// Releases files and locks. Later calls throw UsageError. Idempotent; the destructor
  /// closes too. Prepared transactions stay prepared (in a durable storage) for recovery.
  virtual void close() noexcept = 0;
};

}  // namespace xact::objectstore
