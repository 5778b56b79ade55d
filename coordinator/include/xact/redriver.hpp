// The re-driver: finishes, while the process runs, the branches that phase two could not.
//
// A branch whose tpc_finish failed after the decision (a pending completion: the server was
// gone, the network broke) stays prepared and keeps its locks; so does a prepared branch whose
// tpc_abort failed (and a compensating store's writes whose abort could not undo them stay
// fenced). Until someone commits or rolls it back, every transaction that touches its rows waits
// for a lock timeout. Start-up recovery would finish it, but only after a restart; the re-driver
// finishes it as soon as the resource answers again, without one.
//
// The transaction hands each such branch, with its live resource manager, to the re-driver of
// its decision log (DecisionLog::redriver(); nothing to register). Each resource that is owed a
// branch has a worker thread of its own (started by the hand-off, ended when the resource owes
// nothing), so a resource whose calls hang (a server that accepts and never answers) holds up
// only its own branches. The worker calls RecoverableResource::commit_prepared /
// rollback_prepared (which the SQL resources run on a fresh pooled connection) until the
// resource answers, backing off from initial_backoff to max_backoff (doubling, jittered) so that
// a dead server is asked about one branch per wait, not about every branch. Then:
//   - done, or unknown id (an earlier attempt committed it before its connection broke, or an
//     administrator finished it: counted as done and logged), ends the branch;
//   - a heuristic outcome is recorded in the decision log (as recovery does) and logged;
//   - when every branch of a committed transaction finished, the done record is written and a
//     last resource's decision marker forgotten.
// Reports go to the log sink (one warning when a resource stops answering, one info when it
// answers again) and to counters() (completions_redriven, redrive_failures); stats() and owed()
// show what is owed now, and wait_idle() lets an application wait until nothing is.
//
// Recovery running in the same process leaves the transactions the re-driver owns alone
// (DecisionLog::in_flight says yes for them), so the two never race on a branch.
//
// Ownership:
//   - with a decision log, the log owns its re-driver; ~DecisionLog stops it first.
//   - without one (ManagerOptions::decision_log unset: single-voter commits, presumed-abort
//     rollbacks), Redriver::process() owns the work: one re-driver per process, created on first
//     use and stopped at exit. Its work is known only to this process, as the pending
//     completions of a transaction without a log always were.
// Shutdown: the destructor asks the workers to stop and waits at most shutdown_grace for the
// resource calls in progress; work still owed is logged and left to recovery at the next start.
// It never throws and never waits for a resource beyond the grace.
//
// A resource manager that is not a RecoverableResource cannot be re-driven (there is no call
// that finishes a branch by id): its pending completion is logged as owed to recovery.
//
// Thread-safety: every member function is thread-safe. The resource calls happen on the
// re-driver's worker threads (one resource's calls one at a time), concurrently with other
// resources' calls and with the application's use of the same resource managers (which the
// protocol already requires to be thread-safe, as recovery calls them too).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xact/resource_manager.hpp>
#include <xact/xid.hpp>

namespace xact {

class DecisionLog;

struct RedriverOptions {
  /// First wait after a failed call to a resource; doubles per failure up to max_backoff. Each
  /// wait is uniform in [backoff/2, backoff].
  std::chrono::milliseconds initial_backoff{20};
  std::chrono::milliseconds max_backoff{1000};
  /// How long the destructor waits for a resource call in progress.
  std::chrono::milliseconds shutdown_grace{2000};
};

class Redriver {
 public:
  /// One branch to finish.
  struct Branch {
    std::shared_ptr<ResourceManager> rm;
    Xid xid;
    std::string error;  ///< why the transaction could not finish it
  };
  /// What the re-driver owes now, per branch.
  struct Owed {
    std::string resource;
    Xid xid;
    bool commit = true;  ///< false: roll back
    std::uint64_t attempts = 0;
    std::string last_error;
  };
  struct Stats {
    std::size_t owed = 0;          ///< branches owed now
    std::uint64_t handed_off = 0;  ///< branches handed off since construction
    std::uint64_t finished = 0;    ///< branches ended (done, unknown id, heuristic)
    std::uint64_t attempts = 0;    ///< resource calls made
    std::uint64_t failures = 0;    ///< resource calls that failed (and are retried)
    std::uint64_t heuristics = 0;  ///< heuristic outcomes found
    std::uint64_t abandoned = 0;   ///< branches still owed at shutdown (left to recovery)
  };

  /// A re-driver for the transactions of `log` (null: no decision log). The log owns it and
  /// outlives it.
  explicit Redriver(DecisionLog* log, RedriverOptions options = {});
  /// Stops within options().shutdown_grace; what is still owed is logged. Never throws.
  ~Redriver();
  Redriver(const Redriver&) = delete;
  Redriver& operator=(const Redriver&) = delete;

  /// The re-driver of transactions without a decision log: one per process, created on first
  /// use, stopped at exit.
  static Redriver& process();

  /// Takes over `branches` of transaction `gtrid`: commit them (`commit`) or roll them back.
  /// `decision_store` (may be null) is the last resource whose marker is forgotten once every
  /// branch of a committed transaction finished. Never throws: a branch that cannot be taken
  /// over (out of memory, not recoverable, after shutdown began) is logged as left to recovery.
  void hand_off(const Gtrid& gtrid, bool commit, std::vector<Branch> branches,
                std::shared_ptr<ResourceManager> decision_store = nullptr) noexcept;

  /// Blocks until nothing is owed or `deadline` passes; true when nothing is owed.
  bool wait_idle(std::chrono::steady_clock::time_point deadline) const;
  bool wait_idle(std::chrono::steady_clock::duration timeout) const {
    return wait_idle(std::chrono::steady_clock::now() + timeout);
  }
  /// Whether a branch of `gtrid` is owed (recovery in this process leaves it alone).
  bool owns(const Gtrid& gtrid) const;
  std::vector<Owed> owed() const;
  Stats stats() const;

  /// Changes the back-off and grace for what follows.
  void set_options(RedriverOptions options);
  RedriverOptions options() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the thread, which may outlive a timed-out stop
};

}  // namespace xact
