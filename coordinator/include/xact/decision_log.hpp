// The decision log: where a coordinator makes "this transaction committed" durable before it
// tells any participant to finish, and where recovery reads it back after a crash.
//
// Presumed abort: only commit decisions are written. A transaction without a commit record
// is aborted - nothing is ever logged for an abort, and nothing before the decision.
//
//   log_commit   forced: returns only once the commit record is durable. Concurrent callers
//                share one write and one fdatasync (group commit), so N committers cost far
//                fewer than N syncs.
//   log_done     not forced: every participant finished; the record may be forgotten. Lost in
//                a crash, it only makes recovery re-drive an already finished commit, which
//                the participants answer idempotently.
//   unfinished   what recovery re-drives: committed and not done.
//
// One process owns a log directory (an exclusive lock) and with it a node id that is stable
// for the directory's lifetime; every open starts a new epoch, durably, so the transaction ids
// from new_gtrid() are never reused, even after a crash.
//
// Failure model (fail-stop): if a write or a sync of the log fails, nobody can tell which of
// the decisions in that write reached the disk. The log then refuses every later log_commit
// and checkpoint with LogFailedError; the transactions in flight are in doubt, and restarting
// the process lets recovery decide each from what the log holds.
//
// Files, byte layout, the rotation protocol and why each step is crash-safe:
// doc/decision_log.md and doc/record_format.md.
//
// One concept per header: the records it keeps (<xact/commit_record.hpp>,
// <xact/heuristic_record.hpp>, <xact/log_damage.hpp>), its options
// (<xact/decision_log_options.hpp>), counters (<xact/decision_log_stats.hpp>) and what a read of
// its directory found (<xact/decision_log_inspection.hpp>); this header has the log and includes
// them all.
//
// Thread-safety: every member function is thread-safe. Destroy the log only when no call is
// running.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xact/commit_record.hpp>
#include <xact/decision_log_inspection.hpp>
#include <xact/decision_log_options.hpp>
#include <xact/decision_log_stats.hpp>
#include <xact/heuristic_record.hpp>
#include <xact/io/env.hpp>
#include <xact/io/record.hpp>
#include <xact/log_damage.hpp>
#include <xact/xid.hpp>

namespace xact {

class Redriver;

class DecisionLog {
 public:
  /// What open() found and did (<xact/decision_log_inspection.hpp>).
  using OpenReport = DecisionLogOpenReport;

  /// Counters since open (<xact/decision_log_stats.hpp>).
  using Stats = DecisionLogStats;

  /// Opens (creating if needed) the log in `dir` through `env`, which must outlive the log.
  ///  - takes the directory's lock; a second owner - another process, or a second open in
  ///    this one - gets StorageError naming the directory and the holder (pid and host);
  ///  - reads the node id, or creates it (written, synced, directory synced) for a new log;
  ///  - checks that the newest segment is the one the node-id file last recorded (or a newer
  ///    one): a missing segment throws StorageError unless tolerate_corruption;
  ///  - replays the newest segment: commit records without a done record are unfinished().
  ///    A cut-off last record (a write that was never acknowledged) is dropped and reported;
  ///    damage followed by valid records, a damaged header and a preallocated segment that is
  ///    shorter than its size throw StorageError (naming the file, the offset and the way
  ///    out) unless tolerate_corruption;
  ///  - starts a new epoch (above every epoch the segment or the node-id file knows) by writing
  ///    a new segment holding the unfinished records, durably, records its epoch and sequence
  ///    in the node-id file, then removes the older segments. (Not with read_only.)
  /// Throws StorageError on I/O failure, with the path and the reason.
  static std::unique_ptr<DecisionLog> open(io::Env& env, std::string dir,
                                           DecisionLogOptions options = {});
  /// Writes pending done records (one sync) unless the log failed; never throws.
  ~DecisionLog();
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  const NodeId& node_id() const;
  /// Grows by at least one at every open of the directory (read_only: the last epoch used).
  std::uint32_t epoch() const;
  const std::string& dir() const;

  /// A transaction id no earlier or later run of this log directory hands out: node id,
  /// epoch, and a sequence number. Never blocks, never does I/O.
  Gtrid new_gtrid();

  /// Forces the commit record: returns once it is durable. Throws UsageError for a record
  /// the log cannot hold (empty gtrid, a name longer than 65535 bytes), LogFailedError when
  /// this write or an earlier one failed - the outcome of this transaction is then in doubt:
  /// leave its participants prepared; recovery decides after a restart.
  void log_commit(const CommitRecord& record);
  /// Records, without forcing, that every participant of a committed transaction finished,
  /// so recovery need not re-drive it and a checkpoint may forget it. The record is written
  /// with the next forced write, checkpoint or close. Ignores a gtrid that is not unfinished
  /// (no commit record, or already done). Never throws for I/O: after a failure it does
  /// nothing (recovery then re-drives the commit, which is harmless).
  void log_done(const Gtrid& gtrid);

  /// Forces a heuristic record (as log_commit forces a commit record). A second record for the
  /// same gtrid and resource replaces the first. Throws like log_commit.
  void log_heuristic(const HeuristicRecord& record);
  /// Heuristic outcomes not yet forgotten, by gtrid.
  std::vector<HeuristicRecord> heuristics() const;
  /// Damage tolerated by this or an earlier open (see LogDamage), oldest first.
  std::vector<LogDamage> damage() const;
  /// An operator's explicit decision to forget one heuristic outcome (forced). False when
  /// there is no such record.
  bool forget_heuristic(const Gtrid& gtrid, const std::string& resource);

  /// Whether a transaction that got `gtrid` from new_gtrid() is still running in this process,
  /// or the re-driver owns branches of it: on-demand recovery leaves its branches alone.
  /// Transactions call release() when they end.
  bool in_flight(const Gtrid& gtrid) const;

  /// The re-driver of this log's transactions (<xact/redriver.hpp>): it finishes, while the
  /// process runs, the branches whose tpc_finish or tpc_abort failed. Owned by the log and
  /// stopped first by its destructor (within RedriverOptions::shutdown_grace).
  Redriver& redriver() noexcept;
  void release(const Gtrid& gtrid) noexcept;

  /// What a log directory holds, read without taking the lock and without writing anything:
  /// for `xact log dump` and operators. A damaged segment is read as far as possible and the
  /// damage reported in `scan`. Throws StorageError when there is no log in `dir`.
  using Inspection = DecisionLogInspection;
  static Inspection inspect(io::Env& env, const std::string& dir);

  /// True while the commit record of `gtrid` is remembered: it committed and is not done.
  bool is_committed(const Gtrid& gtrid) const;
  /// Committed and not done, oldest first: what recovery re-drives.
  std::vector<CommitRecord> unfinished() const;

  /// Starts a new segment holding only the unfinished records and deletes the old ones, so
  /// the log stays as small as what is in flight. Crash-safe at every step (a crash leaves
  /// either the old or the new segment as the newest one, each complete). Runs on its own
  /// when a segment fills. Waits for commits ahead of it; commits behind it wait for it.
  /// Throws LogFailedError after a failure (and fails the log if the checkpoint itself fails).
  void checkpoint();

  Stats stats() const;
  const OpenReport& open_report() const;

 private:
  struct Impl;
  explicit DecisionLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Redriver> redriver_;
};

}  // namespace xact
