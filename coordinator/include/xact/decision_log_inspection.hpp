// What a read of a decision log directory found: at open (DecisionLog::open_report, also
// DecisionLog::OpenReport), or without opening it (DecisionLog::inspect, also
// DecisionLog::Inspection).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xact/commit_record.hpp>
#include <xact/heuristic_record.hpp>
#include <xact/io/record.hpp>
#include <xact/log_damage.hpp>
#include <xact/xid.hpp>

namespace xact {

/// What DecisionLog::open() found and did.
struct DecisionLogOpenReport {
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

/// What a log directory holds, read without taking the lock and without writing anything
/// (DecisionLog::inspect): for `xact log dump` and operators. A damaged segment is read as far
/// as possible and the damage reported in `scan`.
struct DecisionLogInspection {
  NodeId node;
  std::uint32_t epoch = 0;  ///< of the newest segment
  std::string segment;      ///< the newest segment's path
  std::vector<CommitRecord> unfinished;
  std::vector<HeuristicRecord> heuristics;
  std::vector<LogDamage> damage;  ///< damage tolerated by earlier opens
  std::uint64_t commits_replayed = 0;
  std::uint64_t dones_replayed = 0;
  io::ScanReport scan;
  /// Damage found now besides the scan's (see DecisionLogOpenReport::problems).
  std::vector<std::string> problems;
  /// The segment's size and the size its header says it was preallocated to (0: not
  /// preallocated). A preallocated segment is never shorter when intact, so a cut-off last
  /// record of a full-size one is a write a crash interrupted (never acknowledged); of a
  /// shorter one, the file was cut and acknowledged records may be lost.
  std::uint64_t segment_size = 0;
  std::uint64_t preallocated = 0;
};

}  // namespace xact
