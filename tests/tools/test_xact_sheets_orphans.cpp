// `xact sheets orphans --config FILE` with real files: an application loads its configuration
// file (a file storage and SQLite sheets), commits objects with property sheets and exits; the
// tool, run as a child process, lists the sheet rows whose owner is gone: an object deleted and
// then packed away (by `xact storage pack`), a row written by plain SQL for an oid that never
// existed. It changes no file and creates no table. With the servers (scripts/servers.sh), the
// same against PostgreSQL and MariaDB sheet stores (CI=true makes their absence a failure).
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/retry.hpp>
#include <xact/sheets/sheet_owner.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_harness.hpp>

#include "xact_runner.hpp"

namespace xact {
namespace {

using testing::TempDir;
using tools_test::has;
using tools_test::run_xact;
using tools_test::ToolRun;

class Page : public sheets::SheetOwner {
 public:
  void save(objectstore::StateWriter& out) const override { save_sheets(out); }
  void load(objectstore::StateReader& in, std::uint32_t) override { load_sheets(in); }
};
XACT_PERSISTENT_TYPE(Page, "test.tools.Page");

sheets::SheetDefinition definition(const std::string& name) {
  sheets::Property title;  // text, nullable
  title.name = "title";
  return {name, {title}};
}

// Every file under `dir` (but the tool's captured output) with its size and mtime.
std::map<std::string, std::string> files_of(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name == "stdout" || name == "stderr") continue;
    struct stat st {};
    ::stat(e.path().c_str(), &st);
    out[e.path().string()] = std::to_string(st.st_size) + "@" +
                             std::to_string(st.st_mtim.tv_sec) + "." +
                             std::to_string(st.st_mtim.tv_nsec);
  }
  return out;
}

// The data lines of the tool's output (after the header) that name `sheet`.
std::vector<std::string> rows_of(const std::string& out, const std::string& sheet) {
  std::vector<std::string> rows;
  std::size_t at = out.find('\n');
  while (at != std::string::npos && at + 1 < out.size()) {
    const std::size_t end = out.find('\n', at + 1);
    const std::string line = out.substr(at + 1, end - at - 1);
    if (line.find('\t' + sheet + '\t') != std::string::npos) rows.push_back(line);
    at = end;
  }
  return rows;
}

// The application: commits a page reachable from the root and one it then unlinks (deleted,
// still in the file until a pack); returns their oids.
std::pair<std::int64_t, std::int64_t> commit_pages(config::Application& app,
                                                   const std::string& sql,
                                                   const std::string& sheet) {
  app.sheet_store(sql).define(definition(sheet));
  objectstore::ConnectionOptions o;
  o.manager = app.manager.get();
  auto conn = app.database("main").open(o);
  std::int64_t kept = 0, dropped = 0;
  run(*app.manager, [&](Transaction& txn) {
    auto a = std::make_shared<Page>();
    a->add_sheet(sheet, txn, &*conn).set("title", "kept");
    auto b = std::make_shared<Page>();
    b->add_sheet(sheet, txn, &*conn).set("title", "deleted");
    conn->root()->set("kept", a);
    conn->root()->set("dropped", b);
    kept = static_cast<std::int64_t>(a->oid());
    dropped = static_cast<std::int64_t>(b->oid());
  });
  run(*app.manager, [&] { conn->root()->erase("dropped"); });  // unreachable, not yet packed
  return {kept, dropped};
}

TEST(SheetsOrphans, ListsRowsWhoseOwnerWasPackedAwayOrNeverExistedAndChangesNothing) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n"
                      << "[[database]]\nname = \"main\"\nstorage = \"file:" << (dir / "main.fs")
                      << "\"\n"
                      << "[[sql]]\nname = \"catalog\"\nkind = \"sqlite\"\npath = \""
                      << (dir / "catalog.db") << "\"\n"
                      << "[[sql]]\nname = \"empty\"\nkind = \"sqlite\"\npath = \""
                      << (dir / "empty.db") << "\"\n"
                      << "[[sheet_store]]\nsql = \"catalog\"\n"
                      << "[[sheet_store]]\nsql = \"empty\"\n";
  std::int64_t kept = 0, dropped = 0;
  {
    config::Application app = config::load(file);
    std::tie(kept, dropped) = commit_pages(app, "catalog", "dublin_core");
  }
  TempDir scratch;
  const auto orphans = [&](std::vector<std::string> more = {}) {
    std::vector<std::string> args{"sheets", "orphans", "--config", file};
    args.insert(args.end(), more.begin(), more.end());
    return run_xact(scratch, args);
  };

  // Deleted but not packed: the object is still in the file, so its row is no orphan.
  const auto before = files_of(dir.path());
  ToolRun r = orphans();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "SQL\tSHEET\tSHEET_ID\tOWNER_DB\tOWNER_OID\n");
  EXPECT_TRUE(has(r.err, "0 orphan row(s) of 2 in 1 sheet table(s) of 2 sheet store(s)"));
  EXPECT_EQ(files_of(dir.path()), before) << "the tool changed or created a file";
  {
    sqlite::SqliteOptions o;
    o.path = dir / "empty.db";
    o.create_if_missing = false;
    auto empty = sqlite::SqliteResource::create(o)->open_connection();
    EXPECT_TRUE(empty
                    ->execute("SELECT name FROM sqlite_master WHERE name = 'xact_sheet_catalog'")
                    .empty())
        << "the tool created the sheet catalog";
  }

  // The same file recovers (a [[sheet_store]] is no resource of its own: its rows are in the
  // [[sql]] resource's branches).
  r = run_xact(scratch, {"recover", "--config", file, "--dry-run"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;

  // Packed away (by the operator's `xact storage pack`): its row is an orphan.
  r = run_xact(scratch, {"storage", "pack", dir / "main.fs"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // And a row written by plain SQL for an oid that never existed, and one of a database the
  // file does not declare (not checked).
  auto lite = [&] {
    sqlite::SqliteOptions o;
    o.path = dir / "catalog.db";
    o.create_if_missing = false;
    return sqlite::SqliteResource::create(o)->open_connection();
  }();
  lite->execute("INSERT INTO dublin_core (owner_db, owner_oid, title) VALUES ('main', 999999, "
                "'by hand')");
  lite->execute("INSERT INTO dublin_core (owner_db, owner_oid) VALUES ('elsewhere', 1)");
  const auto key_of = [&](std::int64_t oid) {
    return lite
        ->execute("SELECT sheet_id FROM dublin_core WHERE owner_db = 'main' AND owner_oid = $1",
                  {oid})
        .one()
        .get<std::int64_t>(0);
  };
  r = orphans();
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_EQ(rows_of(r.out, "dublin_core"),
            (std::vector<std::string>{
                "catalog\tdublin_core\t" + std::to_string(key_of(dropped)) + "\tmain\t" +
                    std::to_string(dropped),
                "catalog\tdublin_core\t" + std::to_string(key_of(999999)) + "\tmain\t999999"}))
      << r.out;
  EXPECT_FALSE(has(r.out, "\t" + std::to_string(kept) + "\n"));
  EXPECT_TRUE(has(r.err, "1 row(s) not checked: the file declares no [[database]] named "
                         "'elsewhere'"));
  EXPECT_TRUE(has(r.err, "2 orphan row(s) of 4 in 1 sheet table(s) of 2 sheet store(s), 1 not "
                         "checked"));
  // --sql: one store only.
  r = orphans({"--sql", "empty"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "0 orphan row(s) of 0 in 0 sheet table(s) of 1 sheet store(s)"));
  r = orphans({"--sql", "nope"});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "no [[sheet_store]] with sql = \"nope\""));

  // The operator deletes the orphans: what is left cannot all be checked (exit 1).
  lite->execute("DELETE FROM dublin_core WHERE owner_db = 'main' AND owner_oid <> $1", {kept});
  r = orphans();
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(rows_of(r.out, "dublin_core").size(), 0u);
  EXPECT_TRUE(has(r.err, "1 not checked"));
  lite->execute("DELETE FROM dublin_core WHERE owner_db = 'elsewhere'");
  r = orphans();
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

TEST(SheetsOrphans, ABadFileOrOneWithoutSheetStoresFails) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n";
  TempDir scratch;
  ToolRun r = run_xact(scratch, {"sheets", "orphans", "--config", file});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "declares no [[sheet_store]]"));
  std::ofstream(file, std::ios::app) << "[[sheet_store]]\nsql = \"nope\"\n";
  r = run_xact(scratch, {"sheets", "orphans", "--config", file});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, file + ":4: key 'sheet_store[0].sql'"));
  // A missing SQLite file is not created.
  std::ofstream(file, std::ios::trunc)
      << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n"
      << "[[sql]]\nname = \"catalog\"\nkind = \"sqlite\"\npath = \"" << (dir / "missing.db")
      << "\"\n[[sheet_store]]\nsql = \"catalog\"\n";
  r = run_xact(scratch, {"sheets", "orphans", "--config", file});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "missing.db"));
  EXPECT_FALSE(std::filesystem::exists(dir / "xact")) << "nor the decision log";
}

#if defined(XACT_TEST_WITH_SERVERS)
// PostgreSQL and MariaDB sheet stores: a committed page, a page deleted and packed away, a row
// by plain SQL for a missing oid. The servers' catalogs may hold other tests' sheets: only this
// test's sheet is looked at.
class SheetsOrphansServers : public ::testing::TestWithParam<std::string> {};

TEST_P(SheetsOrphansServers, ListsTheOrphansOfAServerSheetStore) {
  if (std::getenv("XACT_PG_HOST") == nullptr || std::getenv("XACT_MYSQL_HOST") == nullptr) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true") {
      FAIL() << "CI=true but XACT_PG_*/XACT_MYSQL_* are not set";
    }
    GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
  }
  const bool pg = GetParam() == "postgres";
  TempDir dir;
  const std::string file = dir / "app.toml";
  std::ofstream(file)
      << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n"
      << "[[database]]\nname = \"main\"\nstorage = \"file:" << (dir / "main.fs") << "\"\n"
      << "[[sql]]\nname = \"catalog\"\n"
      << (pg ? "kind = \"postgres\"\nuri = \"postgresql://${XACT_PG_USER}@${XACT_PG_HOST}:"
               "${XACT_PG_PORT}/${XACT_PG_DB}\"\npassword_env = \"XACT_PG_PASSWORD\"\n"
             : "kind = \"mariadb\"\nuri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:"
               "${XACT_MYSQL_PORT}/${XACT_MYSQL_DB}\"\npassword_env = \"XACT_MYSQL_PASSWORD\"\n")
      << "[[sheet_store]]\nsql = \"catalog\"\n";
  const std::string sheet = "orph_" + std::to_string(::getpid()) + "_" + GetParam().substr(0, 2);
  std::int64_t dropped = 0;
  {
    config::Application app = config::load(file);
    dropped = commit_pages(app, "catalog", sheet).second;
    app.sql_resource("catalog").pool()->acquire()->execute(
        "INSERT INTO " + sheet + " (owner_db, owner_oid) VALUES ('main', 999999)");
  }
  TempDir scratch;
  ToolRun r = run_xact(scratch, {"sheets", "orphans", "--config", file});
  const std::vector<std::string> unpacked = rows_of(r.out, sheet);
  ASSERT_EQ(run_xact(scratch, {"storage", "pack", dir / "main.fs"}).code, 0);
  ToolRun packed = run_xact(scratch, {"sheets", "orphans", "--config", file});
  {
    config::Application app = config::load(file);
    auto c = app.sql_resource("catalog").pool()->acquire();
    c->execute("DROP TABLE " + sheet);
    c->execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1", {sheet});
  }
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  ASSERT_EQ(unpacked.size(), 1u) << r.out << r.err;
  EXPECT_TRUE(has(unpacked[0], "\tmain\t999999"));
  EXPECT_EQ(packed.code, 3) << packed.out << packed.err;
  const auto rows = rows_of(packed.out, sheet);
  ASSERT_EQ(rows.size(), 2u) << packed.out << packed.err;
  EXPECT_TRUE(has(rows[0], "\tmain\t" + std::to_string(dropped)));
  EXPECT_TRUE(has(rows[1], "\tmain\t999999"));
}

INSTANTIATE_TEST_SUITE_P(Servers, SheetsOrphansServers, ::testing::Values("postgres", "mariadb"),
                         [](const auto& info) { return info.param; });
#endif

}  // namespace
}  // namespace xact
