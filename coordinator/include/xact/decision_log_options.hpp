// How a decision log is opened (DecisionLog::open, <xact/decision_log.hpp>): segment size,
// preallocation, batch size, tolerating damage, read-only dry runs.
#pragma once

#include <cstdint>

namespace xact {

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

}  // namespace xact
