// Recovery: finishes what crashed, failed or interrupted transactions of this node left in the
// resource managers, from what the decision log says.
//
// For every registered resource (found by its stable resource name):
//   1. commit records without a done record (unfinished: a crash after the decision, or a
//      tpc_finish that failed) are re-driven: commit_prepared on every branch. An unknown id
//      counts as done and is reported as "already finished": normal after a crash, since the
//      done record is not forced (a branch an administrator finished by hand looks the same).
//      When every branch is done, the done record is written.
//   2. every other id the resource holds prepared for this node is decided (first, outside a
//      dry run, the resource ends the server sessions a dead process left running a PREPARE of
//      this node's branches: RecoverableResource::end_orphaned_prepares): committed if a
//      registered last resource (DecisionStore) holds its decision; left waiting if a last
//      resource cannot be read now (never presumed aborted then); rolled back otherwise
//      (presumed abort: no commit record means no commit). When the log tolerated damage that
//      may have cost commit records of the branch's epoch (DecisionLog::damage), the rollback
//      is also recorded as a heuristic outcome, for an operator to check.
//   3. a branch that decided on its own (RecoverableResource::Outcome::heuristic_*) is a
//      heuristic outcome: recorded durably in the decision log, listed by heuristics(), and
//      kept until an operator forgets it (forget_heuristic, or `xact heuristics forget`).
//
// At start-up this process owns the log directory, so nothing of this node is in flight and
// everything is decided at once: no waiting for timeouts. On demand in a running process, ids
// of transactions still running in this process, or owned by its re-driver
// (DecisionLog::in_flight, <xact/redriver.hpp>), are skipped.
//
// After its first complete run (nothing owed) in the process, recovery asks every registered
// last resource to drop the decision markers of this node's earlier epochs
// (DecisionStore::forget_decisions_before): that run decided every branch they could decide.
// Register every resource before the first run().
//
// Other nodes' branches are never decided by run(): list_foreign() lists them, and
// roll_back_lost_node() rolls back those of a coordinator whose log is lost, on an operator's
// explicit request, recording each as a heuristic outcome.
//
// A resource that cannot be reached (recover() or a commit throws) is reported once — one
// warning when it becomes unreachable, one info when it is back — and its work is listed as
// owed in the report; run() never waits for it. start_background() retries owed work.
//
// Thread-safety: thread-safe; runs are serialized.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <xact/decision_log.hpp>
#include <xact/resource_manager.hpp>

namespace xact {

/// What recovery needs of one resource, and nothing more: its stable name (the branch qualifier
/// of its ids, as in the commit records), the recoverable interface (to list, commit and roll
/// back prepared branches) and, for a last resource, the store of the decisions it carried.
/// At least one of the two must be set. Nothing here joins a transaction, so a storage, a
/// connection pool or a stand-in for an unreachable resource can be registered as it is,
/// without a ResourceManager whose protocol methods only refuse.
struct RecoveryTarget {
  std::string name;
  std::shared_ptr<RecoverableResource> recoverable;  ///< null: nothing to recover (a last
                                                     ///< resource that cannot prepare)
  std::shared_ptr<DecisionStore> decision_store;     ///< null: not a last resource

  /// The target of a full resource manager: its resource_name(), and its recoverable() and
  /// decision_store(), each sharing ownership of `rm`. Throws UsageError for a null `rm`.
  static RecoveryTarget of(const std::shared_ptr<ResourceManager>& rm);
};

struct RecoveryAction {
  enum class Kind {
    commit,            ///< committed a prepared branch (commit record or last-resource decision)
    rollback,          ///< rolled back a prepared branch (presumed abort)
    already_finished,  ///< re-drive found no such id: counted as done
    heuristic,         ///< the branch had decided on its own; recorded
    done_record,       ///< every branch of a committed transaction finished
  };
  Kind kind;
  std::string resource;
  Xid xid;
  std::string detail;
};

/// Work recovery could not do in this run.
struct OwedWork {
  std::string resource;
  Xid xid;  ///< empty gtrid when the whole resource could not be asked
  std::string reason;
};

/// A prepared branch of another coordinator (another node id), found by list_foreign().
struct ForeignBranch {
  std::string resource;
  Xid xid;
};

struct RecoveryReport {
  bool dry_run = false;
  std::vector<RecoveryAction> actions;  ///< done (or, in a dry run, that would be done)
  std::vector<OwedWork> owed;           ///< still to do: unreachable, waiting, unregistered
  bool complete() const { return owed.empty(); }
  std::string describe() const;
};

std::string_view to_string(RecoveryAction::Kind kind);

class Recovery {
 public:
  explicit Recovery(std::shared_ptr<DecisionLog> log);
  ~Recovery();
  Recovery(const Recovery&) = delete;
  Recovery& operator=(const Recovery&) = delete;

  /// Registers a resource by its name (a valid branch qualifier, else UsageError). It must
  /// offer a RecoverableResource or a DecisionStore, else UsageError. A second resource with
  /// the same name replaces the first.
  void register_resource(RecoveryTarget target);
  /// Registers a full resource manager: register_resource(RecoveryTarget::of(rm)).
  void register_resource(const std::shared_ptr<ResourceManager>& rm);

  /// One pass over every registered resource; see the file comment. A dry run asks the
  /// resources what they hold and reports what it would do, changing nothing. Throws
  /// LogFailedError when the decision log stopped after an I/O failure (restart instead).
  RecoveryReport run(bool dry_run = false);

  /// The prepared branches the registered resources hold for other nodes. Recovery never
  /// touches them: each coordinator decides its own. But a node whose log directory is lost
  /// leaves its branches prepared, holding locks, for ever; this lists them for an operator.
  /// A resource that cannot be asked (unreachable, or it cannot list other nodes' ids) is
  /// added to `unreadable` (when given) with the reason.
  std::vector<ForeignBranch> list_foreign(std::vector<OwedWork>* unreadable = nullptr);
  /// An operator's explicit decision: rolls back every branch the registered resources hold
  /// prepared for `lost_node`, a coordinator whose decision log is lost for good (so nobody
  /// can tell whether those transactions committed). Each rollback is recorded in this log as
  /// a heuristic outcome ("rolled back for a lost node"), shown by `xact heuristics list`
  /// until forgotten. A dry run lists what it would roll back. Throws UsageError for this
  /// log's own node (run() decides those), LogFailedError like run().
  RecoveryReport roll_back_lost_node(const NodeId& lost_node, bool dry_run = false);

  /// Runs again every `interval` while the last run owed work, until stop() (or destruction).
  void start_background(std::chrono::milliseconds interval);
  void stop_background();

  /// The report of the most recent run.
  RecoveryReport last_report() const;

 private:
  struct Registered {
    RecoveryTarget target;
    bool unreachable = false;  // reported once per transition
  };
  void note_reachability(Registered& r, bool reachable, const std::string& error);
  void redrive_unfinished(RecoveryReport& report, bool dry_run);
  void decide_prepared(RecoveryReport& report, bool dry_run);
  void record_heuristic(RecoveryReport& report, const std::string& resource, const Xid& xid,
                        RecoverableResource::Outcome outcome, bool expected_commit, bool dry_run);
  void prune_decision_markers();  // holding run_mutex_

  std::shared_ptr<DecisionLog> log_;
  mutable std::mutex mutex_;  // registry and last report
  std::mutex run_mutex_;      // one run at a time
  std::map<std::string, Registered> resources_;
  RecoveryReport last_;
  bool markers_pruned_ = false;  // guarded by run_mutex_

  std::mutex bg_mutex_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  std::thread bg_;
};

}  // namespace xact
