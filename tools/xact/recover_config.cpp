// `xact recover --config FILE`: recovery of every resource an application's configuration file
// declares (xact::config): its decision log, object databases (file storages), PostgreSQL,
// MySQL/MariaDB, SQLite and session stores (a MyISAM store's fences: compensated, or dropped
// when the decision log says the transaction committed). The application must not be running: this
// command owns the log and the file storages meanwhile.
#include <iostream>

#include <xact/config/config.hpp>
#include <xact/recovery.hpp>

#include "cli.hpp"
#include "resource_spec.hpp"

namespace xact::cli {

const CommandInfo kRecoverConfigInfo{
    "recover",
    "--config FILE [--dry-run] [--tolerate-corruption] [--foreign [--roll-back-node NODE_ID]]",
    "run recovery for every resource of an application's configuration file",
    "Reads the configuration file (doc/config.md), opens its decision log and every resource it "
    "declares (object databases with their file storages, PostgreSQL, MySQL/MariaDB, SQLite, "
    "session stores), "
    "and runs recovery: re-drives the commits without a done record, commits the prepared "
    "branches whose transaction committed, rolls back the rest (presumed abort). A MyISAM "
    "session store's fences left by a crashed process of this node are dropped when their "
    "transaction committed and compensated (the before-image restored) otherwise.",
    "Nothing is created: a missing file storage or SQLite file is unreachable, and its work is "
    "listed as owed (as is that of a database server that refuses the connection). Passwords "
    "come from the file's password_env/password_file, as for the application.\n\n"
    "--dry-run lists what a run would do and changes nothing (the log and the file storages are "
    "opened read-only).\n\n"
    "--foreign lists the prepared branches the file's resources hold for other coordinators "
    "(other node ids: object databases' file storages, PostgreSQL, MySQL/MariaDB; SQLite, a "
    "last resource, holds none), which recovery never touches; the listing opens everything "
    "read-only. --foreign --roll-back-node NODE_ID rolls back the branches of a coordinator "
    "whose decision log is lost, on your explicit request, and records each as a heuristic "
    "outcome in this log (xact heuristics list); with --dry-run it only lists them.\n\n"
    "Example: xact recover --config /etc/app/xact.toml --dry-run\n\n"
    "Exit status: 0 recovery is complete, 3 work is owed (listed; run it again when the "
    "resources are back), 1 it could not run (a bad file, the log missing, damaged or in use), "
    "2 for a wrong command line."};

bool wants_config(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--config" || a.rfind("--config=", 0) == 0) return true;
  }
  return false;
}

int run_recover_config(const std::vector<std::string>& args) {
  CommandLine line(kRecoverConfigInfo, {});
  auto option = line.options().add_options();
  option("config", po::value<std::string>()->required()->value_name("FILE"),
         "the application's configuration file");
  option("dry-run", "list what recovery would do; change nothing");
  option("tolerate-corruption", "open the log even if it is damaged (see xact recover --help)");
  add_foreign_options(option);
  option("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  const bool dry_run = values.count("dry-run") != 0;
  const bool tolerate = values.count("tolerate-corruption") != 0;
  const ForeignRequest foreign = parse_foreign_options(values);
  // A dry run, and a listing of other nodes' branches, write nothing.
  const bool read_only = dry_run || foreign.listing_only();
  route_library_log(values.count("verbose") != 0);

  const config::Config config = read_config(values);
  const std::string& dir = config.decision_log.directory;
  io::Env& env = io::Env::posix();
  check_damage(inspect_log(env, dir), dir, tolerate);
  std::shared_ptr<DecisionLog> log =
      open_log(env, dir, tolerate, "let it run recovery (xact::Recovery::run)", read_only);
  if (config.decision_log.node && *config.decision_log.node != log->node_id()) {
    throw Failure(config.decision_log.origin.where() + ": key 'decision_log.node': the log in '" +
                  dir + "' belongs to node " + log->node_id().to_hex() + ", not " +
                  config.decision_log.node->to_hex() + " (check decision_log.directory)");
  }

  config::OpenOptions open;
  open.env = &env;
  open.create = false;
  open.read_only = read_only;
  Recovery recovery(log);
  // A resource that cannot be opened stands in as unreachable: never left out (a left-out last
  // resource would make recovery presume abort for what it decided).
  const auto add = [&](const std::string& name, bool last_resource, auto&& build) {
    try {
      recovery.register_resource(build());
    } catch (const std::exception& e) {
      const std::string error = "cannot open resource '" + printable(name) + "': " + e.what();
      std::cerr << "xact recover: " << error << "; its work is reported as owed\n";
      recovery.register_resource(unavailable_resource(name, last_resource, error));
    }
  };
  std::vector<std::shared_ptr<objectstore::DB>> databases;  // open until the run is over
  std::vector<std::shared_ptr<sql::SqlResource>> sql;
  for (const auto& spec : config.databases) {
    add(spec.resource_name(), false, [&] {
      databases.push_back(config::open_database(spec, open));
      return databases.back()->recovery_target();
    });
  }
  for (const auto& spec : config.sql) {
    add(spec.resource_name(), spec.last_resource, [&]() -> std::shared_ptr<ResourceManager> {
      sql.push_back(config::open_sql(spec, open));
      return sql.back();
    });
  }

  std::vector<std::shared_ptr<sessions::SessionResource>> session_stores;
  for (const auto& spec : config.session_stores) {
    add(spec.resource_name(), false, [&]() -> std::shared_ptr<ResourceManager> {
      session_stores.push_back(config::open_session_store(spec, open, read_only ? nullptr : log));
      return session_stores.back();
    });
  }

  std::cout << "configuration '" << config.file << "': decision log '" << dir << "' (node "
            << log->node_id().to_hex() << ", epoch " << log->epoch() << "), "
            << config.databases.size() << " database(s), " << config.sql.size()
            << " SQL resource(s), " << config.session_stores.size() << " session store(s)\n";
  return finish_recover(recovery, foreign, dry_run);
}

}  // namespace xact::cli
