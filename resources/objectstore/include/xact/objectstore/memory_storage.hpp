// MemoryStorage: a Storage that keeps every revision in memory. For tests, caches and
// programs whose objects need not outlive the process; nothing survives it, so a "prepared"
// transaction is durable only for the life of the storage object (recover() lists what is
// prepared now, which lets the recovery paths be tested in one process).
//
// Thread-safety: every method is thread-safe (one mutex; loads share it).
#pragma once

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include <xact/objectstore/storage.hpp>

namespace xact::objectstore {

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();
  ~MemoryStorage() override;

  std::string describe() const override { return "memory storage"; }
  Tid last_transaction() const override;
  std::optional<Revision> load(Oid oid, Tid at = kMaxTid) const override;
  std::optional<std::string> load_serial(Oid oid, Tid serial) const override;
  Oid new_oid() override;
  void for_each_object(
      const std::function<bool(Oid, Tid, std::string_view)>& fn) const override;
  void iterate(Tid from, Tid to,
               const std::function<bool(const TransactionRecord&)>& fn) const override;

  PreparedId prepare(CommitRequest request) override;
  using Storage::finish;
  Tid finish(PreparedId id, bool durable) override;
  void abort(PreparedId id) noexcept override;
  Tid commit_one_phase(CommitRequest request) override;
  void set_invalidation_listener(InvalidationListener listener) override;
  void close() noexcept override;

  std::vector<Xid> recover(const NodeId& node) override;
  std::vector<Xid> recover_all_nodes() override;
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;

 private:
  struct Prepared {
    CommitRequest request;
  };
  void check_open() const;
  void check_and_lock(const CommitRequest& request, PreparedId id);
  Tid commit_locked(CommitRequest& request, PreparedId id);
  std::optional<PreparedId> find_prepared(const Xid& xid) const;

  mutable std::shared_mutex mutex_;
  bool closed_ = false;
  Tid last_tid_ = kNoTid;
  Oid next_oid_ = 1;  // oid 0 is the root; it is created by its first store
  // Revisions of each oid, oldest first.
  std::unordered_map<Oid, std::vector<Revision>> objects_;
  std::vector<TransactionRecord> history_;
  std::unordered_map<Oid, PreparedId> locks_;
  std::unordered_map<PreparedId, Prepared> prepared_;
  PreparedId next_prepared_ = 1;
  InvalidationListener listener_;
};

}  // namespace xact::objectstore
