// A decision log's counters since open (DecisionLog::stats, also DecisionLog::Stats).
#pragma once

#include <cstdint>

namespace xact {

/// Counters since open. A snapshot; cheap to take.
struct DecisionLogStats {
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

}  // namespace xact
