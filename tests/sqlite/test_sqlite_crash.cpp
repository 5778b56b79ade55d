// The SQLite last resource killed before, during and after its commit, next to a durable
// prepared participant (the file-backed test key-value store): recovery, asking SQLite's
// decision marker, commits the prepared participant exactly when SQLite committed.
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/recovery.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/kv_resource.hpp>

#include <filesystem>
#include <string_view>

#include <gtest/gtest.h>

namespace xact::sqlite {
namespace {

// Options without designated initializers (-Wmissing-field-initializers).
inline SqliteOptions opts(std::string path, std::string name = {}) {
  SqliteOptions o;
  o.path = std::move(path);
  o.name = std::move(name);
  return o;
}
template <class F>
SqliteOptions opts(std::string path, std::string name, F&& tweak) {
  SqliteOptions o = opts(std::move(path), std::move(name));
  tweak(o);
  return o;
}

using testing::CrashCase;

class SqliteLastResourceCrashTest : public ::testing::TestWithParam<CrashCase> {
 protected:
  std::shared_ptr<SqliteResource> sqlite() {
    return SqliteResource::create(opts(dir_ / "app.db", "sqlite:app"));
  }
  std::shared_ptr<testing::KvResource> kv() {
    return std::make_shared<testing::KvResource>(
        "kv", testing::KvStore::open_file(io::Env::posix(), dir_ / "kv.store"));
  }
  std::string log_dir() const { return dir_ / "log"; }
  testing::TempDir dir_;
};

TEST_P(SqliteLastResourceCrashTest, RecoveryCommitsThePreparedParticipantIffTheMarkerExists) {
  const CrashCase c = GetParam();
  sqlite()->open_connection()->execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  const auto run = testing::run_in_child(
      [&] {
        auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), log_dir()));
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        auto s = sqlite();
        auto k = kv();
        auto& txn = tm.begin();
        s->execute(txn, "INSERT INTO kv VALUES ('k', 'v')");
        k->put(txn, "k", "v");
        tm.commit();
        return 42;
      },
      c.point, c.hit);
  if (!run.killed && run.exit_code == 42) {
    GTEST_SKIP() << "crash points are compiled out (XACT_CRASH_POINTS=OFF)";
  }
  ASSERT_TRUE(run.killed) << run.describe();

  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), log_dir()));
  auto s = sqlite();
  auto k = kv();
  Recovery recovery(log);
  recovery.register_resource(k);
  recovery.register_resource(s);  // a DecisionStore, not a RecoverableResource
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();

  const bool sqlite_has_it = !s->open_connection()->execute("SELECT 1 FROM kv").empty();
  EXPECT_EQ(sqlite_has_it, c.commits()) << report.describe();
  EXPECT_EQ(k->store()->get("k").has_value(), c.commits()) << report.describe();
  EXPECT_TRUE(k->store()->prepared_gids().empty()) << report.describe();
  // Recovery forgets the markers it used, and after its first complete run drops those of
  // earlier runs too: a marker whose transaction had finished everywhere (killed after the last
  // finish, before forget_decision) included. Nothing is left for the application to prune.
  EXPECT_TRUE(s->decisions().empty()) << report.describe();
  EXPECT_EQ(s->forget_decisions_before(log->node_id(), log->epoch()), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Points, SqliteLastResourceCrashTest,
    ::testing::ValuesIn(testing::decision_in_last_resource_crash_cases("sqlite:app")),
    testing::crash_case_name);

// While SQLite cannot be read, recovery waits: the prepared participant stays prepared.
TEST(SqliteLastResourceRecovery, AnUnreadableLastResourceMakesRecoveryWaitNeverPresumeAbort) {
  testing::TempDir dir;
  const std::string db = dir / "app.db";
  SqliteResource::create(opts(db, "sqlite:app"))
      ->open_connection()
      ->execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  const auto run = testing::run_in_child(
      [&] {
        auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir / "log"));
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        auto s = SqliteResource::create(opts(db, "sqlite:app"));
        auto k = std::make_shared<testing::KvResource>(
            "kv", testing::KvStore::open_file(io::Env::posix(), dir / "kv.store"));
        auto& txn = tm.begin();
        s->execute(txn, "INSERT INTO kv VALUES ('k', 'v')");
        k->put(txn, "k", "v");
        tm.commit();
        return 42;
      },
      "coordinator.after_last_resource");
  if (!run.killed) GTEST_SKIP() << "crash points are compiled out";

  auto s = SqliteResource::create(opts(db, "sqlite:app"));
  auto move = [](const std::string& from, const std::string& to) {
    if (std::filesystem::exists(from)) std::filesystem::rename(from, to);
  };
  move(db, db + ".away");
  move(db + "-wal", db + ".away-wal");
  s->pool()->clear_idle();
  auto log = std::shared_ptr<DecisionLog>(DecisionLog::open(io::Env::posix(), dir / "log"));
  auto k = std::make_shared<testing::KvResource>(
      "kv", testing::KvStore::open_file(io::Env::posix(), dir / "kv.store"));
  {
    Recovery recovery(log);
    recovery.register_resource(k);
    recovery.register_resource(s);
    const auto report = recovery.run();
    EXPECT_FALSE(report.complete()) << report.describe();
    EXPECT_EQ(k->store()->prepared_gids().size(), 1u) << "waiting, not presumed aborted";
  }
  move(db + ".away", db);
  move(db + ".away-wal", db + "-wal");
  Recovery recovery(log);
  recovery.register_resource(k);
  recovery.register_resource(s);
  const auto report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_EQ(k->store()->get("k"), "v");
}

}  // namespace
}  // namespace xact::sqlite
