// An in-memory key-value "server" and a resource manager over it that follows the whole
// protocol: staged writes, savepoints, prepare (kept in the store, so it outlives the RM
// instance, as a prepared transaction outlives a database connection), recovery by node, and
// one-phase commit. Not durable across a process crash; for durability see the file-backed test
// resource of the crash harness. Used by the demo and as the conformance suite's reference.
//
// Thread-safety: MemoryStore is thread-safe. A MemoryResource belongs to one transaction at a
// time (like a database connection).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <xact/resource_manager.hpp>

namespace xact::testing {

class MemoryStore {
 public:
  using Writes = std::map<std::string, std::optional<std::string>>;  // nullopt = erase

  std::optional<std::string> get(const std::string& key) const;
  std::map<std::string, std::string> snapshot() const;
  /// Holds `writes` under `gid` until commit_prepared/rollback_prepared. Throws ConflictError
  /// when a key is already held by another prepared transaction.
  void prepare(const std::string& gid, Writes writes);
  bool commit_prepared(const std::string& gid);
  bool rollback_prepared(const std::string& gid);
  void apply(const Writes& writes);
  std::vector<std::string> prepared_gids() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> data_;
  std::map<std::string, Writes> prepared_;
};

class MemoryResource : public ResourceManager,
                       public SavepointSupport,
                       public OnePhaseCommit,
                       public RecoverableResource,
                       public std::enable_shared_from_this<MemoryResource> {
 public:
  MemoryResource(std::string name, std::shared_ptr<MemoryStore> store);

  /// Stages a write in `txn` (joining it).
  void put(Transaction& txn, const std::string& key, std::string value);
  void erase(Transaction& txn, const std::string& key);
  /// Reads through the transaction's staged writes.
  std::optional<std::string> get(const std::string& key) const;
  const std::shared_ptr<MemoryStore>& store() const { return store_; }

  std::string resource_name() const override { return name_; }
  void abort(Transaction& txn) override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) override;
  SavepointSupport* savepoint_support() noexcept override { return this; }
  OnePhaseCommit* one_phase_commit() noexcept override { return this; }
  RecoverableResource* recoverable() noexcept override { return this; }

  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;
  std::vector<Xid> recover(const NodeId& node) override;
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;

 private:
  std::string name_;
  std::shared_ptr<MemoryStore> store_;
  MemoryStore::Writes staged_;
  std::string gid_;  // set at tpc_begin
};

}  // namespace xact::testing
