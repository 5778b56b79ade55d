// MemoryStorage: a Storage that keeps every revision in memory. For tests, caches and
// programs whose objects need not outlive the process; nothing survives it, so a "prepared"
// transaction is durable only for the life of the storage object (recover() lists what is
// prepared now, which lets the recovery paths be tested in one process).
//
// Expiry (a volatile database, e.g. sessions): with MemoryStorageOptions::expiry, sweep()
// removes every object not written for that long (all its revisions: no snapshot sees it
// again), except the root and objects held by a prepared transaction. The removal is told to
// the invalidation listener under a tid of its own, so connections turn their copies into
// ghosts; a reference to a removed object then raises DanglingReferenceError (database, oid).
// The sweep also drops what no snapshot at or after its cut-off reads: older revisions of live
// objects, and the transactions before the cut-off from iteration.
// An object that is only read expires too: keep the containers of a volatile database written
// (adding an entry writes the map), or hold them in the root, which never expires.
//
// Thread-safety: every method is thread-safe (one mutex; loads share it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <xact/objectstore/storage.hpp>

namespace xact::objectstore {

struct MemoryStorageOptions {
  /// Objects not written for this long are removed by sweep(); zero: nothing expires.
  std::chrono::microseconds expiry{0};
  /// With an expiry: a thread of the storage calls sweep() this often (zero: only explicit
  /// sweep() / expire() calls). An object then lives between expiry and expiry + interval.
  std::chrono::milliseconds sweep_interval{0};
  /// The clock sweep() reads (tests inject one); null: the system clock.
  std::function<std::chrono::system_clock::time_point()> clock;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage();
  /// Throws UsageError for a negative expiry, or a sweep interval without an expiry.
  explicit MemoryStorage(MemoryStorageOptions options);
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

  /// Removes the objects not written since options().clock() - expiry; returns how many.
  std::size_t sweep();
  /// The same with `now` given: removes the objects whose last write is older than
  /// now - expiry (none without an expiry). Returns how many it removed.
  std::size_t expire(std::chrono::system_clock::time_point now);
  const MemoryStorageOptions& options() const noexcept { return options_; }

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

  void stop_sweeper() noexcept;

  MemoryStorageOptions options_;
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
  // The background sweep (options_.sweep_interval).
  std::mutex sweeper_mutex_;
  std::condition_variable sweeper_cv_;
  bool sweeper_stop_ = false;
  std::thread sweeper_;
};

}  // namespace xact::objectstore
