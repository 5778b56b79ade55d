// Two named databases of one registry (two file storages) and an SQLite database in one
// transaction, the process killed at every coordinator crash point (issue 17): a child moves
// money between an account in each of the three (main -10, ledger +7, SQLite +3: the total
// stays 1000) and is SIGKILLed at a named point; the parent opens the files again, runs
// recovery, and checks the bank's invariant: the transfer is in all three or in none (each
// store's transfer count equal), the total is unchanged, nothing is left prepared, recovery has
// nothing left to do on a second run, and the next transfer commits (no stale lock).
//
// SQLite cannot prepare: it is the last resource and its commit carries the decision, so the
// decision log's points (after_commit_record, after_done_record) are passed only by the second
// fixture, where the two databases alone commit through the decision log.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/recovery.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/crash_cases.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/temp_dir.hpp>

namespace xact {
namespace {

using objectstore::ConnectionOptions;
using objectstore::Databases;
using objectstore::DB;
using objectstore::DBOptions;
using objectstore::FileStorage;
using objectstore::PersistentMap;
using testing::CrashCase;
using testing::TempDir;

constexpr std::int64_t kTotal = 1000;

// Everything a process opens, from the files in `dir`. `with_sqlite`: SQLite takes part (as
// the last resource); otherwise the ledger gets SQLite's share too.
struct Bank {
  Bank(const TempDir& dir, bool with_sqlite) {
    log = DecisionLog::open(io::Env::posix(), dir / "log");
    main = std::shared_ptr<FileStorage>(FileStorage::open(dir / "main.xfs"));
    ledger = std::shared_ptr<FileStorage>(FileStorage::open(dir / "ledger.xfs"));
    dbs = Databases::create();
    DBOptions m;
    m.name = "main";
    dbs->add(DB::open(main, m));
    DBOptions l;
    l.name = "ledger";
    dbs->add(DB::open(ledger, l));
    if (with_sqlite) {
      sqlite::SqliteOptions o;
      o.path = dir / "bank.db";
      o.name = "sqlite:bank";
      sql = sqlite::SqliteResource::create(o);
    }
  }
  ~Bank() {
    dbs.reset();
    main->close();
    ledger->close();
  }

  // The accounts, before any transfer: main holds everything.
  void create() {
    ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
    auto conn = dbs->open(ConnectionOptions{.manager = &tm});
    tm.begin();
    for (auto [c, balance] : {std::pair{&*conn, kTotal}, {&conn->get_connection("ledger"), 0}}) {
      auto account = std::make_shared<PersistentMap>();
      account->set("balance", balance);
      account->set("transfers", 0);
      c->root()->set("account", account);
    }
    tm.commit();
    if (sql) {
      auto c = sql->open_connection();
      c->execute(
          "CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER, transfers INTEGER)");
      c->execute("INSERT INTO account VALUES (1, 0, 0)");
    }
  }

  // One transaction over the three stores.
  void transfer() {
    ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
    auto conn = dbs->open(ConnectionOptions{.manager = &tm});
    auto& txn = tm.begin();
    auto change = [](PersistentMap& account, std::int64_t amount) {
      account.set("balance", account.at("balance").as_int() + amount);
      account.set("transfers", account.at("transfers").as_int() + 1);
    };
    change(*conn->root()->get<PersistentMap>("account"), -10);
    change(*conn->get_connection("ledger").root()->get<PersistentMap>("account"), sql ? 7 : 10);
    if (sql) {
      sql->execute(txn, "UPDATE account SET balance = balance + 3, transfers = transfers + 1");
    }
    tm.commit();
  }

  struct Account {
    std::int64_t balance = 0;
    std::int64_t transfers = 0;
  };
  struct Seen {
    Account main, ledger, sql;
    std::string describe() const {
      auto one = [](const char* name, const Account& a) {
        return std::string(name) + " " + std::to_string(a.balance) + " (" +
               std::to_string(a.transfers) + " transfers)";
      };
      return one("main", main) + ", " + one("ledger", ledger) + ", " + one("sqlite", sql);
    }
  };
  Seen seen() {
    ExplicitTransactionManager tm;
    auto conn = dbs->open(ConnectionOptions{.manager = &tm});
    tm.begin();
    Seen s;
    auto read = [](PersistentMap& account) {
      return Account{account.at("balance").as_int(), account.at("transfers").as_int()};
    };
    s.main = read(*conn->root()->get<PersistentMap>("account"));
    s.ledger = read(*conn->get_connection("ledger").root()->get<PersistentMap>("account"));
    tm.abort();
    if (sql) {
      const auto row = sql->open_connection()->execute("SELECT balance, transfers FROM account");
      s.sql = Account{row.one().get<std::int64_t>(0), row.one().get<std::int64_t>(1)};
    }
    return s;
  }

  // The bank's invariant after `transfers` transfers: each store saw them all, and the total
  // is unchanged.
  void expect_consistent(const Seen& s, std::int64_t transfers, const std::string& why) const {
    EXPECT_EQ(s.main.transfers, transfers) << s.describe() << '\n' << why;
    EXPECT_EQ(s.ledger.transfers, transfers) << s.describe() << '\n' << why;
    EXPECT_EQ(s.main.balance + s.ledger.balance + s.sql.balance, kTotal) << s.describe();
    EXPECT_EQ(s.main.balance, kTotal - 10 * transfers) << s.describe();
    if (sql) {
      EXPECT_EQ(s.sql.transfers, transfers) << s.describe() << '\n' << why;
      EXPECT_EQ(s.sql.balance, 3 * transfers) << s.describe();
    }
  }

  std::shared_ptr<DecisionLog> log;
  std::shared_ptr<FileStorage> main, ledger;
  std::shared_ptr<Databases> dbs;
  std::shared_ptr<sqlite::SqliteResource> sql;
};

class DatabasesCrashPoint : public ::testing::TestWithParam<CrashCase> {};

// `last_resource` in a case means: SQLite takes part (as the last resource).
TEST_P(DatabasesCrashPoint, RecoveryLeavesBothDatabasesAndSqliteAllOrNothing) {
  const CrashCase c = GetParam();
  TempDir dir;
  Bank(dir, c.last_resource).create();
  const auto run = testing::run_in_child(
      [&] {
        Bank bank(dir, c.last_resource);
        bank.transfer();
        return 42;
      },
      c.point, c.hit);
  if (c.expect == CrashCase::not_reached) {
    ASSERT_EQ(run.exit_code, 42) << run.describe();
  } else {
    if (!run.killed && run.exit_code == 42) {
      GTEST_SKIP() << "crash points are compiled out (XACT_CRASH_POINTS=OFF)";
    }
    ASSERT_TRUE(run.killed) << "the crash point was not reached: " << run.describe();
  }

  Bank bank(dir, c.last_resource);
  Recovery recovery(bank.log);
  recovery.register_resource(bank.dbs->get("main")->recovery_target());
  recovery.register_resource(bank.dbs->get("ledger")->recovery_target());
  if (bank.sql) recovery.register_resource(bank.sql);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  const std::int64_t expected = c.commits() ? 1 : 0;
  bank.expect_consistent(bank.seen(), expected, report.describe());
  EXPECT_TRUE(bank.main->recover(bank.log->node_id()).empty()) << "main is still prepared";
  EXPECT_TRUE(bank.ledger->recover(bank.log->node_id()).empty()) << "ledger is still prepared";
  if (bank.sql) {
    EXPECT_TRUE(bank.sql->decisions().empty()) << report.describe();
  }

  const RecoveryReport again = recovery.run();
  for (const auto& a : again.actions) {
    EXPECT_NE(a.kind, RecoveryAction::Kind::commit) << again.describe();
    EXPECT_NE(a.kind, RecoveryAction::Kind::rollback) << again.describe();
  }
  // The same objects and row take the next transfer: no stale lock anywhere.
  ASSERT_NO_THROW(bank.transfer());
  bank.expect_consistent(bank.seen(), expected + 1, "after the next transfer");
  EXPECT_TRUE(FileStorage::verify(dir / "main.xfs").ok());
  EXPECT_TRUE(FileStorage::verify(dir / "ledger.xfs").ok());
}

constexpr auto RB = CrashCase::rolled_back;
constexpr auto CO = CrashCase::committed;
constexpr auto NR = CrashCase::not_reached;

// main, ledger and SQLite: the two databases vote, SQLite's commit is the decision.
const CrashCase kWithSqlite[] = {
    {"coordinator.before_tpc_begin", 1, true, RB},
    {"coordinator.after_tpc_begin", 1, true, RB},
    {"coordinator.after_commit", 1, true, RB},
    {"file_storage.after_sync", 1, true, RB},  // the first database's prepared record durable
    {"coordinator.after_vote", 1, true, RB},
    {"file_storage.after_sync", 2, true, RB},  // both prepared
    {"coordinator.after_vote", 2, true, RB},
    {"coordinator.before_commit_record", 1, true, RB},
    {"sqlite:bank.before_commit", 1, true, RB},  // the marker written, COMMIT not sent
    {"sqlite:bank.after_commit", 1, true, CO},   // SQLite committed: the decision
    {"coordinator.after_last_resource", 1, true, CO},
    {"coordinator.after_finish", 1, true, CO},  // one database finished, the other prepared
    {"coordinator.after_finish", 2, true, CO},
    {"coordinator.after_commit_record", 1, true, NR},  // no log record with a last resource
    {"coordinator.after_done_record", 1, true, NR},
};

// main and ledger alone: the decision log's commit record is the decision.
const CrashCase kTwoDatabases[] = {
    {"coordinator.after_vote", 2, false, RB},
    {"coordinator.before_commit_record", 1, false, RB},
    {"coordinator.after_commit_record", 1, false, CO},
    {"coordinator.after_finish", 1, false, CO},
    {"coordinator.after_finish", 2, false, CO},
    {"coordinator.after_done_record", 1, false, CO},
    {"coordinator.after_last_resource", 1, false, NR},
};

INSTANTIATE_TEST_SUITE_P(WithSqlite, DatabasesCrashPoint, ::testing::ValuesIn(kWithSqlite),
                         testing::crash_case_name);
INSTANTIATE_TEST_SUITE_P(TwoDatabases, DatabasesCrashPoint, ::testing::ValuesIn(kTwoDatabases),
                         testing::crash_case_name);

TEST(DatabasesCrashPoints, EveryCoordinatorCrashPointIsKilledAtWithTwoDatabases) {
  std::vector<CrashCase> all(std::begin(kWithSqlite), std::end(kWithSqlite));
  all.insert(all.end(), std::begin(kTwoDatabases), std::end(kTwoDatabases));
  for (const auto& point : testing::coordinator_points_not_killed(all)) {
    ADD_FAILURE() << point << " has no crash case";
  }
}

}  // namespace
}  // namespace xact
