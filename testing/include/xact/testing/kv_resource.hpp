// A key-value store and a resource manager over it that follow the whole protocol: staged
// writes, savepoints, prepare (kept in the store, so it outlives the RM instance, as a prepared
// transaction outlives a database connection), recovery by node, one-phase commit, and the last
// resource role (the decision stored with the commit, DecisionStore).
//
// The store lives in memory (KvStore::in_memory) or, honestly durable, in an append-only file of
// checksummed records with an fsync per change (KvStore::open_file): that one survives SIGKILL
// and is what the crash harness uses. The demo and the conformance suite use both.
//
// Crash points (see <xact/crash_point.hpp>) of a KvResource named N: "N.after_prepare" (the
// prepare record is durable), "N.after_commit_prepared", "N.after_one_phase".
//
// Thread-safety: KvStore is thread-safe. A KvResource belongs to one transaction at a time
// (like a database connection); several may share one store.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <xact/io/env.hpp>
#include <xact/io/record.hpp>
#include <xact/resource_manager.hpp>

namespace xact::testing {

class KvStore {
 public:
  using Writes = std::map<std::string, std::optional<std::string>>;  // nullopt = erase

  static std::shared_ptr<KvStore> in_memory();
  /// Opens (creating) the store file at `path` and replays it. Throws StorageError when the
  /// file cannot be read or is corrupt in the middle; a cut-off last record is dropped.
  static std::shared_ptr<KvStore> open_file(io::Env& env, const std::string& path);

  std::optional<std::string> get(const std::string& key) const;
  std::map<std::string, std::string> snapshot() const;
  /// Holds `writes` under `gid` until commit_prepared/rollback_prepared; durable when it
  /// returns. Throws ConflictError when a key is held by another prepared transaction.
  void prepare(const std::string& gid, Writes writes);
  /// False when `gid` is not prepared (already finished, or never prepared).
  bool commit_prepared(const std::string& gid);
  bool rollback_prepared(const std::string& gid);
  /// One-phase commit; `decision` (a gtrid in hex, may be empty) is stored atomically with it.
  void apply(const Writes& writes, const std::string& decision = {});
  std::vector<std::string> prepared_gids() const;
  bool has_decision(const std::string& gtrid_hex) const;
  void forget_decision(const std::string& gtrid_hex);

 private:
  KvStore() = default;
  void replay(const io::Record& record);
  void persist(std::uint8_t type, const std::string& payload);  // holding mutex_
  void apply_locked(const Writes& writes);

  mutable std::mutex mutex_;
  std::map<std::string, std::string> data_;
  std::map<std::string, Writes> prepared_;
  std::set<std::string> decisions_;
  std::unique_ptr<io::WritableFile> file_;  // null: in memory
  std::unique_ptr<io::RecordWriter> writer_;
};

struct KvOptions {
  /// Take part as the one-phase-only last resource that carries the decision.
  bool last_resource = false;
};

class KvResource : public ResourceManager,
                   public SavepointSupport,
                   public OnePhaseCommit,
                   public RecoverableResource,
                   public DecisionStore,
                   public std::enable_shared_from_this<KvResource> {
 public:
  KvResource(std::string name, std::shared_ptr<KvStore> store, KvOptions options = {});

  /// Stages a write in `txn` (joining it).
  void put(Transaction& txn, const std::string& key, std::string value);
  void erase(Transaction& txn, const std::string& key);
  /// Reads through the transaction's staged writes.
  std::optional<std::string> get(const std::string& key) const;
  const std::shared_ptr<KvStore>& store() const { return store_; }

  std::string resource_name() const override { return name_; }
  void abort(Transaction& txn) noexcept override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) noexcept override;
  SavepointSupport* savepoint_support() noexcept override { return this; }
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  RecoverableResource* recoverable() noexcept override { return this; }
  DecisionStore* decision_store() noexcept override {
    return options_.last_resource ? this : nullptr;
  }

  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;
  bool can_prepare() const override { return !options_.last_resource; }
  std::vector<Xid> recover(const NodeId& node) override;
  std::vector<Xid> recover_all_nodes() override;
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;
  Lookup lookup_decision(const Gtrid& gtrid) override;
  void forget_decision(const Gtrid& gtrid) noexcept override;

 private:
  std::string name_;
  std::shared_ptr<KvStore> store_;
  KvOptions options_;
  KvStore::Writes staged_;
  std::string gid_;  // set at tpc_begin
};

}  // namespace xact::testing
