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
// Thread-safety: every member function is thread-safe. Destroy the log only when no call is
// running.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <xact/commit_record.hpp>
#include <xact/io/env.hpp>
#include <xact/io/record.hpp>
#include <xact/xid.hpp>

namespace xact {

class Redriver;

/// A participant that decided on its own: it rolled back what the log says committed, or the
/// reverse, or a compensation found someone else's value. Kept durably until an operator
/// forgets it (DecisionLog::forget_heuristic, `xact heuristics forget`).
struct HeuristicRecord {
  Gtrid gtrid;
  std::string resource;
  std::string bqual;
  std::string outcome;       ///< "heuristic rollback", "heuristic commit", "heuristic mixed", ...
  std::string detail;        ///< what the coordinator expected and what it found
  std::int64_t time_us = 0;  ///< when it was found; 0: log_heuristic's time
  bool operator==(const HeuristicRecord&) const = default;
};

/// Damage that an open with tolerate_corruption got past: commit records of transactions of
/// epochs up to `up_to_epoch` may have been lost. Kept durably (copied into every new segment)
/// for the life of the log, so recovery never presumes abort for such a transaction silently:
/// each rollback of a prepared branch of those epochs without a commit record is recorded as a
/// heuristic outcome ("presumed abort after log damage"), for an operator to check.
struct LogDamage {
  Gtrid id;                       ///< (node, up_to_epoch, number): names the record
  std::uint32_t up_to_epoch = 0;  ///< the newest epoch whose commit records may be lost
  std::string description;        ///< what was damaged: file, offset, bytes, reason
  std::int64_t time_us = 0;       ///< when the damage was tolerated
  bool operator==(const LogDamage&) const = default;
};

struct DecisionLogOptions {
  /// Size of one log segment. When the next write does not fit, the log rotates: it copies
  /// the unfinished records into a new segment and deletes the old one.
  std::uint64_t segment_bytes = 8u << 20;
  /// Fill each new segment with zeros (and sync it) when it is created, so a commit overwrites
  /// allocated blocks and its fdatasync has no file size or allocation to record: measured
  /// 30-45% faster per write on ext4 here (doc/decision_log.md, bench/README.md).
  bool preallocate = true;
  /// The most bytes of commit records one group-commit write carries.
  std::uint64_t max_batch_bytes = 1u << 20;
  /// Open even when the log is damaged: a segment with damage in the middle (valid records
  /// after a bad one), a damaged segment header (when the node-id file knows the epoch), a
  /// preallocated segment shorter than its size, or a missing segment. The damaged bytes are
  /// dropped, open_report() lists what was found, and a LogDamage record is written, so that
  /// recovery records every presumed abort that might have been a lost commit as a heuristic
  /// outcome instead of deciding it silently. Off by default: a damaged log needs an
  /// operator's decision. (A cut-off last write is never damage: see open().)
  bool tolerate_corruption = false;
  /// Open without writing anything: no new epoch or segment, no node id created, nothing
  /// removed; the lock is still taken (so nothing of this node is in flight). For dry runs:
  /// log_commit, log_heuristic, forget_heuristic, checkpoint and new_gtrid throw UsageError,
  /// log_done does nothing. Refuses a directory that holds no log.
  bool read_only = false;
};

class DecisionLog {
 public:
  /// What open() found and did.
  struct OpenReport {
    bool created = false;  ///< a new, empty log directory
    std::string segment;   ///< the segment replayed ("" when none)
    std::uint64_t commits_replayed = 0;
    std::uint64_t dones_replayed = 0;
    io::ScanReport scan;  ///< damage and cut-off tail of the replayed segment
    /// Damage beyond the scan that tolerate_corruption got past: a missing segment, a damaged
    /// segment header, a preallocated segment cut short. Each names the file and the offset.
    std::vector<std::string> problems;
    std::vector<std::string> removed;  ///< stale files removed (old segments, temporaries)
    std::string describe() const;
  };

  /// Counters since open. A snapshot; cheap to take.
  struct Stats {
    std::uint64_t commits = 0;        ///< log_commit calls that returned
    std::uint64_t forced_writes = 0;  ///< group-commit writes, each followed by one sync
    std::uint64_t max_batch = 0;      ///< most commit records one forced write carried
    std::uint64_t dones = 0;          ///< done records accepted by log_done
    std::uint64_t syncs = 0;          ///< file syncs of every kind (commits, new segments)
    std::uint64_t dir_syncs = 0;
    std::uint64_t records = 0;      ///< framed records written
    std::uint64_t bytes = 0;        ///< bytes of records written (preallocation not counted)
    std::uint64_t checkpoints = 0;  ///< segments started (open's included)
    std::uint64_t unfinished = 0;   ///< committed and not done, now
    bool failed = false;            ///< stopped after an I/O failure
  };

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
  struct Inspection {
    NodeId node;
    std::uint32_t epoch = 0;  ///< of the newest segment
    std::string segment;      ///< the newest segment's path
    std::vector<CommitRecord> unfinished;
    std::vector<HeuristicRecord> heuristics;
    std::vector<LogDamage> damage;  ///< damage tolerated by earlier opens
    std::uint64_t commits_replayed = 0;
    std::uint64_t dones_replayed = 0;
    io::ScanReport scan;
    /// Damage found now besides the scan's (see OpenReport::problems).
    std::vector<std::string> problems;
    /// The segment's size and the size its header says it was preallocated to (0: not
    /// preallocated). A preallocated segment is never shorter when intact, so a cut-off last
    /// record of a full-size one is a write a crash interrupted (never acknowledged); of a
    /// shorter one, the file was cut and acknowledged records may be lost.
    std::uint64_t segment_size = 0;
    std::uint64_t preallocated = 0;
  };
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
