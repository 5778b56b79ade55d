// `xact databases check|backup|pack --config FILE`: the object databases of an application's
// configuration file taken together (xact::objectstore::Databases, doc/objectstore.md).
//
// check opens every file storage read-only (no lock, nothing written: it works while the
// application runs). backup opens them as usual, so it takes each storage's lock and refuses
// while the application has one open: the registry's commit lock, which makes the copies agree,
// exists only inside one process. An application copies itself while running with
// Databases::backup. pack opens them as backup does and packs one database with
// Databases::pack, which keeps what the other databases refer to.
#include <algorithm>
#include <chrono>
#include <iostream>

#include <xact/config/config.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "cli.hpp"

namespace xact::cli {

namespace os = xact::objectstore;

const CommandInfo kDatabasesCheckInfo{
    "databases check", "--config FILE",
    "list dangling and forbidden cross-database references (read-only)",
    "Opens every object database of the configuration file read-only, walks every object of "
    "every database, decodes its references and lists those whose target does not exist "
    "(dangling: expired, packed away, a database restored from an older copy, or a database "
    "missing from the file) and those the referring database's policy forbids (xrefs = forbid). "
    "References from a database with xrefs = check are listed as notes: the application's "
    "check_xref() and predicates decide them at commit, and a tool cannot see those.",
    "Read-only: takes no lock and writes nothing, so it works while the application runs (it "
    "then checks what each file held when it was opened; run it again to confirm a finding "
    "made while the application commits). A memory database is empty in this process: "
    "references into one are notes, not dangling.\n\n"
    "Exit status: 0 nothing found, 1 dangling or forbidden references were found (listed) or a "
    "database cannot be opened, 2 for a wrong command line."};

const CommandInfo kDatabasesBackupInfo{
    "databases backup", "--config FILE <dir>",
    "copy every file storage of a configuration at one common point",
    "Copies every file storage of the configuration file into the new directory <dir> "
    "(<name>.xfs for each database) and writes <dir>/MANIFEST (each copy's source, size and "
    "last transaction). The copies are mutually consistent: a transaction that committed in "
    "two databases is in both copies or in neither. Copies of the files taken one by one "
    "(xact storage backup, cp) are not. Memory databases are not copied.",
    "Opens each file storage, which takes its lock: it refuses while the application has one "
    "open (the lock that keeps the copies consistent exists only inside the application's "
    "process). To back up a running application, call Databases::backup(dir) in it "
    "(app.registry->backup). It also refuses while a storage holds transactions in doubt: run "
    "`xact recover --config FILE` first.\n\n"
    "Exit status: 0 copied, 1 a storage cannot be opened (in use, missing, in doubt) or the "
    "copy failed, 2 for a wrong command line."};

const CommandInfo kDatabasesPackInfo{
    "databases pack", "--config FILE <name> [--days N]",
    "pack one database of a configuration, keeping what the other databases reference",
    "Packs the file storage of database <name> as `xact storage pack` does (old revisions, and "
    "objects unreachable from its root as of the pack time, are dropped), but first marks every "
    "database of the configuration file from its root, following references across databases: "
    "an object of <name> that another database refers to is kept, with everything it reaches, "
    "and the report counts those. `xact storage pack FILE` knows only its own file and drops "
    "them, leaving the other databases' references dangling. --days N packs as of N days ago "
    "(default: now).",
    "Opens every file storage of the file, which takes each storage's lock: it refuses while "
    "the application has one open. In a running application call Databases::pack(name) "
    "(app.registry->pack): commits go on during it, and references committed while it runs "
    "are kept too. A memory database is empty once its application stopped: it refers to "
    "nothing. It refuses while a storage holds transactions in doubt: run `xact recover "
    "--config FILE` first.\n\n"
    "Exit status: 0 packed, 1 a storage cannot be opened (in use, missing, in doubt), <name> is "
    "not a file database of the file, or the pack failed, 2 for a wrong command line."};

namespace {

std::string_view policy(os::XrefPolicy p) {
  switch (p) {
    case os::XrefPolicy::allow: return "allow";
    case os::XrefPolicy::check: return "check";
    case os::XrefPolicy::forbid: return "forbid";
  }
  return "?";
}

void print_databases(const config::Config& config) {
  std::cout << "configuration '" << config.file << "': " << config.databases.size()
            << " database(s)\n";
  for (const auto& d : config.databases) {
    std::cout << "  " << d.name << ": "
              << (d.storage == config::DatabaseSpec::StorageKind::file ? "file " + d.path
                                                                       : std::string("memory"))
              << ", xrefs = " << policy(d.xrefs) << "\n";
  }
}

}  // namespace

int run_databases_check(const std::vector<std::string>& args) {
  CommandLine line(kDatabasesCheckInfo, {});
  line.options().add_options()("config", po::value<std::string>()->required()->value_name("FILE"),
                               "the application's configuration file");
  if (!line.parse(args)) return kExitOk;
  const config::Config config = read_config(line.values());
  if (config.databases.empty()) throw Failure(config.file + ": declares no [[database]]");
  config::OpenOptions open;
  open.create = false;
  open.read_only = true;
  auto registry = config::open_databases(config, open);
  print_databases(config);
  os::ReferenceCheckOptions options;
  options.memory_databases_unknown = true;
  const auto report = registry->check_references(options);
  std::cout << report.describe();
  return report.ok() ? kExitOk : kExitFailure;
}

namespace {

// Every database of the file opened for writing (each storage's lock taken), none holding a
// transaction in doubt. `what` names the command and its in-process counterpart for messages.
std::shared_ptr<os::Databases> open_closed_databases(const config::Config& config,
                                                     const std::string& what) {
  if (config.databases.empty()) throw Failure(config.file + ": declares no [[database]]");
  config::OpenOptions open;
  open.create = false;
  std::shared_ptr<os::Databases> registry;
  try {
    registry = config::open_databases(config, open);
  } catch (const StorageError& e) {
    throw Failure(std::string(e.what()) + " (" + what);
  }
  for (const auto& name : registry->names()) {
    auto* fs = dynamic_cast<os::FileStorage*>(&registry->get(name)->storage());
    if (fs != nullptr && fs->stats().prepared > 0) {
      throw Failure("database '" + name + "' (" + fs->path() + ") holds " +
                    std::to_string(fs->stats().prepared) +
                    " transaction(s) in doubt: run `xact recover --config " + config.file +
                    "` first (only the decision log can decide them)");
    }
  }
  return registry;
}

}  // namespace

int run_databases_backup(const std::vector<std::string>& args) {
  CommandLine line(kDatabasesBackupInfo, {{"<dir>", "the backup directory (new or empty)"}});
  line.options().add_options()("config", po::value<std::string>()->required()->value_name("FILE"),
                               "the application's configuration file");
  if (!line.parse(args)) return kExitOk;
  const config::Config config = read_config(line.values());
  auto registry = open_closed_databases(
      config,
      "a backup from the command line needs every storage closed; to back up a running "
      "application, call Databases::backup in it)");
  print_databases(config);
  std::cout << registry->backup(line.argument(0)).describe();
  return kExitOk;
}

int run_databases_pack(const std::vector<std::string>& args) {
  CommandLine line(kDatabasesPackInfo, {{"<name>", "the database to pack"}});
  auto option = line.options().add_options();
  option("config", po::value<std::string>()->required()->value_name("FILE"),
         "the application's configuration file");
  option("days", po::value<std::string>()->value_name("N"),
         "pack as of N days ago (0 to the days since 1970)");
  if (!line.parse(args)) return kExitOk;
  const auto now = std::chrono::system_clock::now();
  auto as_of = now;
  if (line.values().count("days") != 0) {
    as_of = now - std::chrono::days(parse_days(line.values()["days"].as<std::string>()));
  }
  const config::Config config = read_config(line.values());
  const std::string& name = line.argument(0);
  const auto spec = std::find_if(config.databases.begin(), config.databases.end(),
                                 [&](const auto& d) { return d.name == name; });
  if (spec == config.databases.end() || spec->storage != config::DatabaseSpec::StorageKind::file) {
    std::string names;
    for (const auto& d : config.databases) {
      if (d.storage == config::DatabaseSpec::StorageKind::file) {
        names += (names.empty() ? "" : ", ") + d.name;
      }
    }
    throw Failure(config.file + ": no file database named '" + name +
                  "' to pack (file databases: " + (names.empty() ? "none" : names) + ")");
  }
  auto registry = open_closed_databases(
      config,
      "a pack from the command line needs every storage closed; in a running application, "
      "call Databases::pack in it)");
  print_databases(config);
  const os::PackReport report = registry->pack(name, os::tid_for_time(as_of));
  std::cout << name << " (" << spec->path << "): " << report.describe() << "\n";
  return kExitOk;
}

}  // namespace xact::cli
