// LogDamage: what an open of a damaged decision log got past (DecisionLogOptions::
// tolerate_corruption), kept durably so that recovery never presumes abort silently for the
// epochs it may have cost.
#pragma once

#include <cstdint>
#include <string>

#include <xact/xid.hpp>

namespace xact {

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

}  // namespace xact
