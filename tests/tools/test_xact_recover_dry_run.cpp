// `xact recover --config FILE --dry-run` creates nothing: a SQLite database the application
// made (rollback journal, no xact marker table yet) keeps every byte - no marker table, no WAL
// journal mode, no -wal or -shm file - and a SQLite file the configuration names but that is
// missing stays missing, reported as owed. The same file run for real does change them, so the
// check can fail.
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/testing/crash_harness.hpp>

#include "xact_runner.hpp"

namespace xact {
namespace {

using testing::TempDir;
using tools_test::has;
using tools_test::run_xact;
using tools_test::snapshot_files;
using tools_test::ToolRun;

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
}

TEST(RecoverDryRun, CreatesNoSqliteFileTableOrJournalMode) {
  TempDir dir;
  TempDir scratch;
  // The application's own database, made before xact ever opened it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "app.db").c_str(), &db), SQLITE_OK);
  exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY)");
  exec(db, "INSERT INTO t VALUES ('a')");
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  { auto log = DecisionLog::open(io::Env::posix(), dir / "xact"); }  // the tool needs a log
  const std::string file = dir / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n\n"
                      << "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"" << (dir / "app.db")
                      << "\"\nlast_resource = true\n\n"
                      << "[[sql]]\nname = \"gone\"\nkind = \"sqlite\"\npath = \""
                      << (dir / "gone.db") << "\"\n";
  const auto before = snapshot_files(dir.path());
  ASSERT_TRUE(before.count("app.db") == 1 && before.count("gone.db") == 0);

  const ToolRun dry = run_xact(scratch, {"recover", "--config", file, "--dry-run"});
  EXPECT_EQ(dry.code, 3) << dry.out << dry.err;  // gone's work is owed
  EXPECT_TRUE(has(dry.err, "cannot open resource 'gone'")) << dry.err;
  EXPECT_TRUE(has(dry.err, "gone.db' does not exist")) << dry.err;
  EXPECT_TRUE(has(dry.out, "recovery (dry run)")) << dry.out;
  EXPECT_EQ(snapshot_files(dir.path()), before);  // every file, every byte
  EXPECT_FALSE(std::filesystem::exists(dir / "gone.db"));

  // A real run opens the database for writing: WAL mode and the marker table.
  const ToolRun real = run_xact(scratch, {"recover", "--config", file});
  EXPECT_EQ(real.code, 3) << real.out << real.err;
  EXPECT_NE(snapshot_files(dir.path()).at("app.db"), before.at("app.db"));
  EXPECT_FALSE(std::filesystem::exists(dir / "gone.db"));
}

}  // namespace
}  // namespace xact
