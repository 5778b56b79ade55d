// A resource manager for tests that records every call made to it, can be told to fail at any
// step, and keeps its "data" in memory: a staged value that tpc_finish (or a one-phase commit)
// publishes. Used by xact's own tests and the conformance suite; installed for users' tests.
//
// Thread-safety: the call log (a CallLog shared by several resources) is synchronized; a
// RecordingResource itself is used by one transaction at a time, like any RM.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <xact/resource_manager.hpp>

namespace xact::testing {

/// The calls several resources received, in order, as "name.call" strings.
class CallLog {
 public:
  void add(std::string entry);
  std::vector<std::string> entries() const;
  /// The entries of one resource, without the name prefix.
  std::vector<std::string> of(const std::string& resource) const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> entries_;
};

enum class Step {
  none,
  abort,
  tpc_begin,
  commit,
  tpc_vote,
  tpc_finish,
  tpc_abort,
  savepoint,
  savepoint_rollback,
  commit_one_phase,
};

struct RecordingOptions {
  std::optional<SortKey> sort_key{};  ///< default: the name
  bool read_only = false;           ///< vote read-only
  bool savepoints = true;           ///< offer SavepointSupport
  bool one_phase = false;           ///< offer OnePhaseCommit (can prepare)
  bool last_resource = false;       ///< OnePhaseCommit with can_prepare() == false
  bool retry_everything = false;    ///< RetryClassifier says yes to any error
  Step fail_at = Step::none;        ///< throw at this step
  int fail_times = 1;               ///< ... this many times (then succeed), -1 = always
  /// What to throw at fail_at (default: ResourceError naming the step).
  std::function<void(Step)> thrower{};
};

class RecordingResource : public ResourceManager,
                          public SavepointSupport,
                          public RetryClassifier,
                          public OnePhaseCommit,
                          public RecoverableResource,
                          public DecisionStore,
                          public std::enable_shared_from_this<RecordingResource> {
 public:
  RecordingResource(std::string name, std::shared_ptr<CallLog> log, RecordingOptions options = {});

  // --- application side: stage a value in the current transaction (joins it).
  void set(Transaction& txn, std::string value);
  /// The committed value (what another reader would see).
  const std::optional<std::string>& committed() const { return committed_; }
  /// Prepared, undecided values by xid gid (survive "crashes": see drop_volatile()).
  const std::map<std::string, std::string>& prepared() const { return prepared_; }
  /// Forgets the in-flight transaction as a process crash would (prepared state stays).
  void drop_volatile();
  /// While true, recover / commit_prepared / rollback_prepared throw ResourceError, as a
  /// resource that cannot be reached: what recovery and the re-driver (which call them from
  /// their own threads) meet. Thread-safe.
  void set_unreachable(bool unreachable) { unreachable_.store(unreachable); }
  RecordingOptions& options() { return options_; }

  // ResourceManager
  std::string resource_name() const override { return name_; }
  SortKey sort_key() const override;
  void abort(Transaction& txn) noexcept override;
  void tpc_begin(Transaction& txn) override;
  void commit(Transaction& txn) override;
  Vote tpc_vote(Transaction& txn) override;
  void tpc_finish(Transaction& txn) override;
  void tpc_abort(Transaction& txn) noexcept override;
  // SavepointSupport
  std::unique_ptr<ResourceSavepoint> savepoint(Transaction& txn) override;
  // RetryClassifier
  bool should_retry(const std::exception_ptr& error) const noexcept override;
  // OnePhaseCommit
  void commit_one_phase(Transaction& txn, const CommitRecord* decision) override;
  bool can_prepare() const override { return !options_.last_resource; }
  // RecoverableResource
  std::vector<Xid> recover(const NodeId& node) override;
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;
  // DecisionStore
  Lookup lookup_decision(const Gtrid& gtrid) override;
  void forget_decision(const Gtrid& gtrid) noexcept override;

  SavepointSupport* savepoint_support() noexcept override {
    return options_.savepoints ? this : nullptr;
  }
  RetryClassifier* retry_classifier() noexcept override { return this; }
  OnePhaseCommit* one_phase_commit() noexcept override {
    return (options_.one_phase || options_.last_resource) ? this : nullptr;
  }
  RecoverableResource* recoverable() noexcept override { return this; }
  DecisionStore* decision_store() noexcept override {
    return options_.last_resource ? this : nullptr;
  }

 private:
  void record(Step step, const char* name);
  void maybe_fail(Step step);
  void check_reachable(const char* call) const;

  std::string name_;
  std::shared_ptr<CallLog> log_;
  RecordingOptions options_;
  std::optional<std::string> staged_;
  std::optional<std::string> committed_;
  std::string begun_gid_;
  std::map<std::string, std::string> prepared_;  // gid -> value
  std::set<std::string> decisions_;              // gtrid hex of decisions carried
  std::atomic<bool> unreachable_{false};
};

}  // namespace xact::testing
