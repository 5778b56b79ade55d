// `xact recover`: one xact::Recovery run over the resources given on the command line, from
// outside the application (which must not be running: this command owns the log meanwhile).
#include <iostream>

#include <xact/recovery.hpp>

#include "cli.hpp"
#include "resource_spec.hpp"

namespace xact::cli {

const CommandInfo kRecoverInfo{
    "recover", "<dir> --resource NAME=KIND:SPEC [--resource ...] [--last-resource ...] [--dry-run]",
    "run recovery, or list what it would do (takes the log's lock)",
    "Runs recovery for the decision log in <dir>: re-drives the commits that have no done "
    "record, commits the prepared branches whose transaction committed, rolls back those "
    "without a commit record (presumed abort), and records heuristic outcomes.",
    "Give every resource the application registers, by the same name. A resource that cannot "
    "be opened is unreachable: its work is listed as owed and the others are recovered. A "
    "prepared branch whose decision may be in an unreachable last resource waits.\n\n"
    "Supported kinds: " +
        supported_kinds() +
        ".\n\n"
        "Takes the log's lock: stop the application first (or let it run xact::Recovery itself). "
        "--dry-run asks the resources what they hold and lists what a run would do, changing no "
        "resource (opening the log still starts a new epoch, which is harmless).\n\n"
        "Example: xact recover /var/lib/app/xact --resource orders=kv:/var/lib/app/orders.kv "
        "--resource stock=kv:/var/lib/app/stock.kv --dry-run\n\n"
        "Exit status: 0 recovery is complete (nothing owed), 3 it ran but work is owed (listed; "
        "run again when the resources are back), 1 it could not run (log missing, damaged or in "
        "use), 2 for a wrong command line."};

int run_recover(const std::vector<std::string>& args) {
  CommandLine line(kRecoverInfo);
  auto option = line.options().add_options();
  option("resource",
         po::value<std::vector<std::string>>()->composing()->value_name("NAME=KIND:SPEC"),
         "a resource recovery works on (repeat the option for each)");
  option("last-resource",
         po::value<std::vector<std::string>>()->composing()->value_name("NAME=KIND:SPEC"),
         "a last resource: one-phase, it keeps the commit decision in its own store");
  option("dry-run", "list what recovery would do; change no resource");
  option("tolerate-corruption",
         "open the log even if its newest segment has damage in the middle, dropping the "
         "damaged records: a transaction whose commit record was in them is then rolled back");
  option("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  const auto list = [&](const char* name) {
    return values.count(name) != 0 ? values[name].as<std::vector<std::string>>()
                                   : std::vector<std::string>{};
  };
  const auto specs = parse_resource_specs(list("resource"), list("last-resource"));
  if (specs.empty()) {
    throw UsageFailure(
        "no resource given: name every resource the application registers, "
        "e.g. --resource orders=kv:/var/lib/app/orders.kv");
  }
  const bool dry_run = values.count("dry-run") != 0;
  const bool tolerate = values.count("tolerate-corruption") != 0;
  route_library_log(values.count("verbose") != 0);

  io::Env& env = io::Env::posix();
  check_damage(inspect_log(env, line.dir()), line.dir(), tolerate);
  std::shared_ptr<DecisionLog> log =
      open_log(env, line.dir(), tolerate, "let it run recovery (xact::Recovery::run)");

  Recovery recovery(log);
  for (const auto& spec : specs) {
    auto built = build_resource(env, spec);
    if (!built.error.empty()) {
      std::cerr << "xact recover: " << built.error << "; its work is reported as owed\n";
    }
    recovery.register_resource(built.rm);
  }

  const RecoveryReport report = recovery.run(dry_run);
  std::cout << "decision log '" << line.dir() << "' (node " << log->node_id().to_hex() << ", epoch "
            << log->epoch() << ")\n"
            << report.describe() << '\n';
  if (report.complete()) return kExitOk;
  std::cerr << "xact recover: " << report.owed.size()
            << " item(s) of work owed (see the report); run it again once the resources "
               "are reachable\n";
  return kExitWorkOwed;
}

}  // namespace xact::cli
