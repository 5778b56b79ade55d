// Internal bookkeeping of a transaction: one entry per joined resource manager, one per
// savepoint. Not installed.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <xact/resource_manager.hpp>

namespace xact {
class Transaction;
}

namespace xact::detail {

struct Participant {
  enum class State { joined, begun, voted_yes, voted_read_only, finished };

  std::shared_ptr<ResourceManager> rm;
  std::string name;
  SortKey key{0};
  // Optional capabilities, looked up once at join.
  SavepointSupport* savepoints = nullptr;
  RetryClassifier* retry = nullptr;
  OnePhaseCommit* one_phase = nullptr;
  bool last_resource = false;  // one_phase and cannot prepare: at most one per transaction
  State state = State::joined;
  // Reported by the RM (Transaction::report_rollback_failure) during its tpc_abort or abort.
  std::exception_ptr rollback_failure;
};

struct SavepointState {
  std::weak_ptr<Transaction> txn;
  std::size_t index = 0;            // position in the transaction's savepoint stack
  std::size_t participants_at = 0;  // participants joined when it was taken
  // One per participant joined then; null for one without savepoint support (optimistic).
  std::vector<std::unique_ptr<ResourceSavepoint>> rm_savepoints;
  std::string unsupported;  // first participant without savepoint support, if any
  bool valid = true;
};

}  // namespace xact::detail
