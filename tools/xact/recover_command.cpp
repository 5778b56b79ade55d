// `xact recover`: one xact::Recovery run over the resources given on the command line, from
// outside the application (which must not be running: this command owns the log meanwhile).
#include <iostream>
#include <optional>

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
    "With --config FILE (xact recover --config FILE --help) the decision log and every "
    "resource come from the application's configuration file: object databases, PostgreSQL, "
    "MySQL/MariaDB and SQLite.\n\n"
    "Give every resource the application registers, by the same name. A resource that cannot "
    "be opened is unreachable: its work is listed as owed and the others are recovered. A "
    "prepared branch whose decision may be in an unreachable last resource waits.\n\n"
    "Supported kinds: " +
        supported_kinds() +
        ".\n\n"
        "Takes the log's lock: stop the application first (or let it run xact::Recovery itself). "
        "--dry-run asks the resources what they hold and lists what a run would do, changing "
        "nothing: no resource, and not the log (no new epoch; with --tolerate-corruption the "
        "damaged log stays as it is).\n\n"
        "--foreign lists the prepared branches the resources hold for other coordinators (other "
        "node ids), which recovery never touches. A coordinator whose log directory is lost "
        "leaves its branches prepared, holding locks, for ever: --foreign --roll-back-node "
        "NODE_ID rolls back that node's branches, on your explicit request, and records each "
        "as a heuristic outcome in this log (xact heuristics list).\n\n"
        "Example: xact recover /var/lib/app/xact --resource orders=kv:/var/lib/app/orders.kv "
        "--resource stock=kv:/var/lib/app/stock.kv --dry-run\n\n"
        "Exit status: 0 recovery is complete (nothing owed), 3 it ran but work is owed (listed; "
        "run again when the resources are back), 1 it could not run (log missing, damaged or in "
        "use), 2 for a wrong command line."};

int run_recover(const std::vector<std::string>& args) {
  // The resources of an application's configuration file (recover_config.cpp).
  if (wants_config(args)) return run_recover_config(args);
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
         "open the log even if it is damaged (damage in the middle of a segment, a missing "
         "segment, ...), dropping the damaged records: a rollback of a branch whose commit "
         "record may have been among them is recorded as a heuristic outcome");
  add_foreign_options(option);
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
  const ForeignRequest foreign = parse_foreign_options(values);
  route_library_log(values.count("verbose") != 0);

  io::Env& env = io::Env::posix();
  check_damage(inspect_log(env, line.dir()), line.dir(), tolerate);
  // A dry run, and a listing, write nothing: not even a new epoch, nor (tolerating damage) a
  // rewritten segment.
  const bool read_only = dry_run || foreign.listing_only();
  std::shared_ptr<DecisionLog> log =
      open_log(env, line.dir(), tolerate, "let it run recovery (xact::Recovery::run)", read_only);

  Recovery recovery(log);
  for (const auto& spec : specs) {
    auto built = build_resource(env, spec);
    if (!built.error.empty()) {
      std::cerr << "xact recover: " << built.error << "; its work is reported as owed\n";
    }
    recovery.register_resource(built.target);
  }

  std::cout << "decision log '" << line.dir() << "' (node " << log->node_id().to_hex() << ", epoch "
            << log->epoch() << ")\n";
  return finish_recover(recovery, foreign, dry_run);
}

void add_foreign_options(po::options_description_easy_init& option) {
  option("foreign", "list the prepared branches of other coordinators (other node ids)");
  option("roll-back-node", po::value<std::string>()->value_name("NODE_ID"),
         "with --foreign: roll back every prepared branch of this node (32 hex digits), a "
         "coordinator whose decision log is lost; each is recorded as a heuristic outcome");
}

ForeignRequest parse_foreign_options(const po::variables_map& values) {
  ForeignRequest request;
  request.foreign = values.count("foreign") != 0;
  if (values.count("roll-back-node") != 0) {
    const std::string hex = values["roll-back-node"].as<std::string>();
    if (!request.foreign) {
      throw UsageFailure(
          "--roll-back-node needs --foreign: rolling back another node's "
          "branches is a separate, explicit decision");
    }
    request.lost_node = NodeId::from_hex(hex);
    if (!request.lost_node) {
      throw UsageFailure("--roll-back-node '" + printable(hex) +
                         "': a node id is 32 hex digits (as `xact recover --foreign` shows it)");
    }
  }
  return request;
}

int finish_recover(Recovery& recovery, const ForeignRequest& request, bool dry_run) {
  if (request.listing_only()) {
    std::vector<OwedWork> unreadable;
    const auto branches = recovery.list_foreign(&unreadable);
    std::cout << "prepared branches of other nodes: " << branches.size() << '\n';
    for (const auto& b : branches) {
      std::cout << "  node " << b.xid.gtrid.node().to_hex() << "  resource "
                << printable(b.resource) << "  gid " << b.xid.to_gid() << '\n';
    }
    for (const auto& u : unreadable) {
      std::cerr << "xact recover: resource '" << printable(u.resource) << "': " << u.reason << '\n';
    }
    return unreadable.empty() ? kExitOk : kExitWorkOwed;
  }
  const RecoveryReport report = request.lost_node
                                    ? recovery.roll_back_lost_node(*request.lost_node, dry_run)
                                    : recovery.run(dry_run);
  std::cout << report.describe() << '\n';
  if (report.complete()) return kExitOk;
  std::cerr << "xact recover: " << report.owed.size()
            << " item(s) of work owed (see the report); run it again once the resources "
               "are reachable\n";
  return kExitWorkOwed;
}

}  // namespace xact::cli
