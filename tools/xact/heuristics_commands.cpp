// `xact heuristics list` (read-only, through DecisionLog::inspect) and `xact heuristics forget`
// (the operator's explicit decision; it owns the log while it writes).
#include <iostream>
#include <optional>

#include "cli.hpp"

namespace xact::cli {

const CommandInfo kHeuristicsListInfo{
    "heuristics list", "<dir>", "list heuristic outcomes (read-only)",
    "Lists the heuristic outcomes recorded in the decision log in <dir>: branches whose "
    "resource decided on its own, against what the log says.",
    "Columns (tab-separated, after a header line): GTRID (hex), RESOURCE, OUTCOME (heuristic "
    "commit, heuristic rollback, heuristic mixed), TIME (when it was found, ISO-8601 UTC), "
    "DETAIL (what the coordinator expected and what it found).\n\n"
    "Each stays until an operator has repaired the data and forgets it with "
    "`xact heuristics forget`. Read-only: works while the application is running."};

const CommandInfo kHeuristicsForgetInfo{
    "heuristics forget", "<dir> --gtrid HEX --resource NAME",
    "forget one heuristic outcome (takes the log's lock)",
    "Forgets one heuristic outcome in the decision log in <dir>: the operator's statement that "
    "it has been dealt with. Says what it forgot.",
    "Takes the log's lock: stop the application that owns the log first, or call "
    "DecisionLog::forget_heuristic inside it. The removal is durable when the command returns.\n\n"
    "Exit status: 0 forgotten, 1 no such heuristic outcome (or the log cannot be opened), "
    "2 for a wrong command line."};

int run_heuristics_list(const std::vector<std::string>& args) {
  CommandLine line(kHeuristicsListInfo);
  if (!line.parse(args)) return kExitOk;
  const auto log = inspect_log(io::Env::posix(), line.dir());
  std::cout << "GTRID\tRESOURCE\tOUTCOME\tTIME\tDETAIL\n";
  for (const auto& h : log.heuristics) {
    std::cout << h.gtrid.to_hex() << '\t' << printable(h.resource) << '\t' << printable(h.outcome)
              << '\t' << iso_time(h.time_us) << '\t' << printable(h.detail) << '\n';
  }
  return kExitOk;
}

int run_heuristics_forget(const std::vector<std::string>& args) {
  CommandLine line(kHeuristicsForgetInfo);
  auto option = line.options().add_options();
  option("gtrid", po::value<std::string>()->value_name("HEX"),
         "the transaction (56 hex digits, as `xact heuristics list` shows it)");
  option("resource", po::value<std::string>()->value_name("NAME"), "the resource of the branch");
  option("tolerate-corruption",
         "open the log even if its newest segment has damage in the middle, dropping the "
         "damaged records (see `xact log dump`)");
  option("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  if (values.count("gtrid") == 0) throw UsageFailure("missing --gtrid HEX: which transaction");
  if (values.count("resource") == 0) {
    throw UsageFailure("missing --resource NAME: which resource's outcome");
  }
  const Gtrid gtrid = parse_gtrid(values["gtrid"].as<std::string>(), "gtrid");
  const std::string resource = values["resource"].as<std::string>();
  const bool tolerate = values.count("tolerate-corruption") != 0;
  route_library_log(values.count("verbose") != 0);

  io::Env& env = io::Env::posix();
  check_damage(inspect_log(env, line.dir()), line.dir(), tolerate);
  auto log = open_log(env, line.dir(), tolerate, "call DecisionLog::forget_heuristic");

  std::optional<HeuristicRecord> found;
  std::vector<std::string> same_gtrid;
  const auto all = log->heuristics();
  for (const auto& h : all) {
    if (h.gtrid != gtrid) continue;
    if (h.resource == resource) found = h;
    same_gtrid.push_back("'" + printable(h.resource) + "'");
  }
  if (!found) {
    std::string hint;
    if (!same_gtrid.empty()) {
      hint = "; that gtrid has heuristic outcomes on resource(s) ";
      for (std::size_t i = 0; i < same_gtrid.size(); ++i) {
        hint += (i == 0 ? "" : ", ") + same_gtrid[i];
      }
    } else if (all.empty()) {
      hint = "; the log holds no heuristic outcomes";
    } else {
      hint = "; the log holds " + std::to_string(all.size()) +
             " heuristic outcome(s): `xact heuristics list " + line.dir() + "` shows them";
    }
    throw Failure("no heuristic outcome of gtrid " + gtrid.to_hex() + " on resource '" +
                  printable(resource) + "' in the decision log in '" + line.dir() + "'" + hint);
  }
  if (!log->forget_heuristic(gtrid, resource)) {
    throw Failure("the heuristic outcome of gtrid " + gtrid.to_hex() + " on resource '" +
                  printable(resource) + "' disappeared while forgetting it");
  }
  std::cout << "forgot the heuristic outcome of gtrid " << gtrid.to_hex() << " on resource '"
            << printable(resource) << "': " << printable(found->outcome) << ", found "
            << iso_time(found->time_us) << " (" << printable(found->detail) << ")\n";
  return kExitOk;
}

}  // namespace xact::cli
