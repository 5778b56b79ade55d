#include <xact/sql/errors.hpp>

namespace xact::sql {

std::string_view to_string(Phase phase) {
  switch (phase) {
    case Phase::connect: return "connect";
    case Phase::statement: return "statement";
    case Phase::prepare: return "prepare";
    case Phase::commit_one_phase: return "one-phase commit";
    case Phase::commit_prepared: return "commit prepared";
    case Phase::rollback: return "rollback";
    case Phase::rollback_prepared: return "rollback prepared";
    case Phase::recover: return "recover";
  }
  return "unknown";
}

}  // namespace xact::sql
