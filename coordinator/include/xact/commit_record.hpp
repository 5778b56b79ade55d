// The commit decision of one transaction, as the protocol hands it around: forced to the
// decision log before any participant is told to finish (<xact/decision_log.hpp>), stored by a
// last resource in the same local transaction as its one-phase commit
// (OnePhaseCommit::commit_one_phase in <xact/resource_manager.hpp>), and read back by
// recovery. A value type; it depends on the transaction ids only, so a resource manager can
// use it without the decision log.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xact/xid.hpp>

namespace xact {

/// One participant of a committed transaction, as recovery needs it: which resource manager
/// (by its stable name) and which branch.
struct LoggedParticipant {
  std::string resource;
  std::string bqual;
  bool operator==(const LoggedParticipant&) const = default;
};

/// The commit decision of one transaction.
struct CommitRecord {
  Gtrid gtrid;
  std::vector<LoggedParticipant> participants;
  std::int64_t time_us = 0;  ///< when it committed (µs since the Unix epoch); 0: log_commit's time
  bool operator==(const CommitRecord&) const = default;
};

}  // namespace xact
