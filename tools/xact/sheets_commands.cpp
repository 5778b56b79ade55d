// `xact sheets orphans --config FILE`: the property sheet rows (xact::sheets, doc/sheets.md) whose
// owner object no longer exists in its object database, for every [[sheet_store]] of an
// application's configuration file.
//
// Read-only: the sheet tables are found through the catalog (xact_sheet_catalog) and read with
// plain SELECTs; nothing is created (no catalog, no table, no SQLite or storage file) and no
// lock is taken: the file storages are opened read-only, so it runs beside the application.
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include <xact/config/config.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/sheets/sheet_store.hpp>

#include "cli.hpp"

namespace xact::cli {

const CommandInfo kSheetsOrphansInfo{
    "sheets orphans", "--config FILE [--sql NAME]",
    "list property sheet rows whose owner object is gone (read-only)",
    "For every [[sheet_store]] of the configuration file (doc/config.md), reads each sheet table "
    "the store's catalog records and lists the rows whose owner object does not exist in its "
    "object database: deleted and packed away, or never committed (a row written by hand, or "
    "for an object whose transaction did not commit).",
    "Columns (tab-separated, after a header line): SQL (the [[sql]] resource), SHEET, SHEET_ID, "
    "OWNER_DB, OWNER_OID. The counts go to stderr. --sql NAME checks only the sheet store on "
    "that resource.\n\n"
    "An owner is looked up in the [[database]] of the file with the row's owner_db name, its "
    "file storage opened read-only as of now. Rows that cannot be checked are not listed as "
    "orphans but counted on stderr: a database the file does not declare, a memory: database "
    "(its objects live in the application's process), a storage that cannot be opened.\n\n"
    "Read-only: creates no table and no file, takes no lock; it works while the application "
    "runs. A row whose transaction commits while the command runs may be listed (its object "
    "may not be visible yet): check again before deleting it. An object of a transaction left "
    "prepared by a crash is not visible until recovery decides it: run `xact recover --config "
    "FILE` first.\n\n"
    "Example: xact sheets orphans --config /etc/app/xact.toml\n\n"
    "Exit status: 0 no orphans, 3 orphans were found (listed), 1 a failure, or rows that could "
    "not be checked (and no orphans), 2 for a wrong command line."};

namespace {

// One object database's storage, opened read-only on first use; or why it cannot be checked.
struct OwnerDatabase {
  std::shared_ptr<objectstore::Storage> storage;
  std::string unchecked;  ///< why its rows cannot be checked ("" when storage is set)
};

OwnerDatabase open_owner_database(const config::Config& config, const std::string& name) {
  OwnerDatabase out;
  const config::DatabaseSpec* spec = nullptr;
  for (const auto& d : config.databases) {
    if (d.name == name) spec = &d;
  }
  if (spec == nullptr) {
    out.unchecked = "the file declares no [[database]] named '" + printable(name) + "'";
    return out;
  }
  if (spec->storage == config::DatabaseSpec::StorageKind::memory) {
    out.unchecked = "database '" + printable(name) +
                    "' is memory: (its objects live only in the application's process)";
    return out;
  }
  objectstore::FileStorageOptions options;
  options.read_only = true;  // no lock, nothing written
  options.create = false;
  try {
    out.storage = objectstore::FileStorage::open(spec->path, options);
  } catch (const std::exception& e) {
    out.unchecked = spec->origin.where() + ": [[database]] '" + printable(name) +
                    "': cannot open its file storage read-only: " + e.what();
  }
  return out;
}

}  // namespace

int run_sheets_orphans(const std::vector<std::string>& args) {
  CommandLine line(kSheetsOrphansInfo, {});
  auto option = line.options().add_options();
  option("config", po::value<std::string>()->required()->value_name("FILE"),
         "the application's configuration file");
  option("sql", po::value<std::string>()->value_name("NAME"),
         "only the sheet store on this [[sql]] resource");
  option("verbose,v", "also show xact's informational messages on stderr");
  if (!line.parse(args)) return kExitOk;
  const auto& values = line.values();
  route_library_log(values.count("verbose") != 0);

  const config::Config config = read_config(values);
  std::vector<const config::SheetStoreSpec*> stores;
  for (const auto& s : config.sheet_stores) {
    if (values.count("sql") == 0 || s.sql == values["sql"].as<std::string>()) stores.push_back(&s);
  }
  if (stores.empty()) {
    if (values.count("sql") != 0) {
      throw UsageFailure("the file '" + config.file + "' has no [[sheet_store]] with sql = \"" +
                         printable(values["sql"].as<std::string>()) + "\"");
    }
    throw Failure(config.file +
                  ": the file declares no [[sheet_store]]: nothing to check (doc/config.md)");
  }

  // The rows first, then the storages (opened after): a row is never older than the snapshot
  // of the storage it is checked against.
  struct Table {
    std::string sql;
    std::string sheet;
    std::vector<sheets::SheetStore::StoredRow> rows;
  };
  std::vector<Table> tables;
  std::map<std::string, std::size_t> unchecked;  // reason -> rows
  std::vector<std::string> unread;               // tables that cannot be read, and why
  config::OpenOptions open;
  open.create = false;  // a missing SQLite file is an error, never a new empty one
  open.read_only = true;
  std::vector<std::shared_ptr<sql::SqlResource>> resources;  // open until the end
  for (const auto* spec : stores) {
    const config::SqlSpec* sql_spec = config.find_sql(spec->sql);
    try {
      resources.push_back(config::open_sql(*sql_spec, open));
      auto store = config::open_sheet_store(*spec, resources.back());
      for (const auto& sheet : store->stored_sheets()) {
        try {
          tables.push_back({spec->sql, sheet, store->stored_rows(sheet)});
        } catch (const std::exception& e) {
          // A catalog entry without its table (dropped by hand): the other sheets still count.
          unread.push_back("sheet '" + printable(sheet) + "' on '" + printable(spec->sql) +
                           "': its table cannot be read: " + e.what());
        }
      }
    } catch (const config::ConfigError& e) {
      throw Failure(e.what());
    } catch (const std::exception& e) {
      const std::string what = e.what();
      if (what.rfind(spec->origin.where() + ":", 0) == 0) throw Failure(what);  // says it all
      throw Failure(spec->origin.where() + ": [[sheet_store]] on '" + printable(spec->sql) +
                    "': cannot read its sheets: " + what);
    }
  }

  std::map<std::string, OwnerDatabase> databases;
  std::size_t rows = 0, orphans = 0;
  std::cout << "SQL\tSHEET\tSHEET_ID\tOWNER_DB\tOWNER_OID\n";
  for (const auto& table : tables) {
    for (const auto& row : table.rows) {
      ++rows;
      auto it = databases.find(row.owner.database);
      if (it == databases.end()) {
        it = databases.emplace(row.owner.database, open_owner_database(config, row.owner.database))
                 .first;
      }
      const OwnerDatabase& db = it->second;
      if (!db.storage) {
        ++unchecked[db.unchecked];
        continue;
      }
      if (row.owner.oid <= 0 ||
          !db.storage->load(static_cast<objectstore::Oid>(row.owner.oid)).has_value()) {
        ++orphans;
        std::cout << printable(table.sql) << '\t' << printable(table.sheet) << '\t' << row.key
                  << '\t' << printable(row.owner.database) << '\t' << row.owner.oid << '\n';
      }
    }
  }
  std::cout.flush();
  std::size_t not_checked = 0;
  for (const auto& problem : unread)
    std::cerr << "xact sheets orphans: not checked: " << problem << '\n';
  for (const auto& [reason, count] : unchecked) {
    std::cerr << "xact sheets orphans: " << count << " row(s) not checked: " << reason << '\n';
    not_checked += count;
  }
  std::cerr << "xact sheets orphans: " << orphans << " orphan row(s) of " << rows << " in "
            << tables.size() << " sheet table(s) of " << stores.size() << " sheet store(s)"
            << (not_checked != 0 ? ", " + std::to_string(not_checked) + " not checked" : "")
            << (unread.empty() ? "" : ", " + std::to_string(unread.size()) + " table(s) unread")
            << '\n';
  if (orphans != 0) return kExitFound;
  return not_checked != 0 || !unread.empty() ? kExitFailure : kExitOk;
}

}  // namespace xact::cli
