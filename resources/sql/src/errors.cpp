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

std::exception_ptr connection_lost(std::string_view server, std::string_view one_phase_commit,
                                   std::string_view context, Phase phase, std::string_view what) {
  while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.remove_suffix(1);
  const std::string detail = std::string(what);
  const std::string head =
      std::string(context) + ": the connection to " + std::string(server) + " was lost";
  if (phase == Phase::commit_one_phase) {
    return std::make_exception_ptr(InDoubtError(
        head + " during " + std::string(one_phase_commit) + " (" + detail +
        "); the commit may or may not have happened. Do not retry: check the data once the "
        "server is back"));
  }
  if (phase == Phase::connect) {
    return std::make_exception_ptr(ConnectionLost(
        std::string(context) + ": cannot connect to " + std::string(server) + " (" + detail +
        "); check that the server runs and the connection settings (host, port, database, "
        "user, password)"));
  }
  std::string next;
  switch (phase) {
    case Phase::commit_prepared:
      next = "the branch stays prepared; xact's re-driver commits it once the server is back";
      break;
    case Phase::rollback_prepared:
      next = "the branch stays prepared; xact's re-driver rolls it back once the server is back";
      break;
    case Phase::recover: next = "recovery tries again later"; break;
    case Phase::prepare:
      next = "the branch may or may not be prepared; xact rolls it back by id, or recovery does";
      break;
    default:
      next = "the server rolls an unprepared branch back; running the transaction again is safe";
      break;
  }
  return std::make_exception_ptr(
      ConnectionLost(head + " (" + std::string(to_string(phase)) + ": " + detail + "); " + next));
}

}  // namespace xact::sql
