// A heuristic outcome: a participant that decided on its own, recorded in the decision log
// (DecisionLog::log_heuristic, <xact/decision_log.hpp>) until an operator forgets it.
#pragma once

#include <cstdint>
#include <string>

#include <xact/xid.hpp>

namespace xact {

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

}  // namespace xact
