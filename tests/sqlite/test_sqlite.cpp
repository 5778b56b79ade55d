// SqliteResource, the one-phase last resource, without any server: the error mapping, the
// durability checks at connect, busy and snapshot conflicts, the decision marker written inside
// the commit and forgotten after it, recovery's lookups, and the conformance suite.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/redriver.hpp>
#include <xact/sqlite/errors.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/testing/conformance.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/recording_resource.hpp>
#include <xact/transaction.hpp>

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

// ---- the error mapping, table-wise -------------------------------------------------------------

enum class Kind { conflict, transient, in_doubt, usage, sql_error, other };

Kind kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const ConflictError&) {
    return Kind::conflict;
  } catch (const TransientError&) {
    return Kind::transient;
  } catch (const InDoubtError&) {
    return Kind::in_doubt;
  } catch (const UsageError&) {
    return Kind::usage;
  } catch (const sql::SqlError&) {
    return Kind::sql_error;
  } catch (...) {
    return Kind::other;
  }
}

TEST(SqliteErrorMapping, EveryRowOfTheTableMapsAsDocumented) {
  struct Row {
    int code;
    sql::Phase phase;
    Kind expected;
  };
  const std::vector<Row> table = {
      {SQLITE_BUSY, sql::Phase::statement, Kind::conflict},
      {SQLITE_BUSY_SNAPSHOT, sql::Phase::statement, Kind::conflict},
      {SQLITE_BUSY_RECOVERY, sql::Phase::statement, Kind::conflict},
      {SQLITE_LOCKED, sql::Phase::statement, Kind::conflict},
      {SQLITE_BUSY, sql::Phase::connect, Kind::conflict},
      {SQLITE_ABORT_ROLLBACK, sql::Phase::statement, Kind::transient},
      {SQLITE_MISUSE, sql::Phase::statement, Kind::usage},
      {SQLITE_RANGE, sql::Phase::statement, Kind::usage},
      {SQLITE_CONSTRAINT_PRIMARYKEY, sql::Phase::statement, Kind::sql_error},
      {SQLITE_ERROR, sql::Phase::statement, Kind::sql_error},
      {SQLITE_CANTOPEN, sql::Phase::connect, Kind::sql_error},
      {SQLITE_IOERR_FSYNC, sql::Phase::statement, Kind::sql_error},
      {SQLITE_CORRUPT, sql::Phase::statement, Kind::sql_error},
      {SQLITE_FULL, sql::Phase::commit_one_phase, Kind::in_doubt},
      {SQLITE_IOERR_FSYNC, sql::Phase::commit_one_phase, Kind::in_doubt},
      {SQLITE_BUSY, sql::Phase::commit_one_phase, Kind::in_doubt},
  };
  for (const auto& r : table) {
    EXPECT_EQ(static_cast<int>(kind_of(map_error(r.code, "msg", r.phase, "resource 'sqlite:t'"))),
              static_cast<int>(r.expected))
        << "code " << r.code << " in phase " << sql::to_string(r.phase);
  }
  try {
    std::rethrow_exception(map_error(SQLITE_CONSTRAINT_UNIQUE, "UNIQUE constraint failed: t.k",
                                     sql::Phase::statement, "resource 'sqlite:t'"));
  } catch (const sql::SqlError& e) {
    EXPECT_EQ(e.sqlstate(), "23000");
    EXPECT_EQ(e.native_code(), SQLITE_CONSTRAINT_UNIQUE);
    EXPECT_NE(std::string(e.what()).find("UNIQUE constraint failed"), std::string::npos);
  }
  EXPECT_TRUE(is_busy(SQLITE_BUSY_SNAPSHOT));
  EXPECT_FALSE(is_busy(SQLITE_CONSTRAINT));
  EXPECT_TRUE(is_fatal(SQLITE_IOERR_WRITE));
}

// ---- connections -------------------------------------------------------------------------------

class SqliteTest : public ::testing::Test {
 protected:
  std::shared_ptr<SqliteResource> make(SqliteOptions o = {}) {
    if (o.path.empty()) o.path = dir_ / "app.db";
    if (o.name.empty()) o.name = "sqlite:app";
    return SqliteResource::create(std::move(o));
  }
  std::shared_ptr<SqliteResource> with_table(SqliteOptions o = {}) {
    auto rm = make(std::move(o));
    rm->open_connection()->execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)");
    return rm;
  }
  std::optional<std::string> v(SqliteResource& rm, const std::string& k) {
    const auto r = rm.open_connection()->execute("SELECT v FROM kv WHERE k = ?", {k});
    if (r.empty()) return std::nullopt;
    return r[0].get<std::string>(0);
  }
  static std::shared_ptr<testing::RecordingResource> voter(testing::RecordingOptions o = {}) {
    return std::make_shared<testing::RecordingResource>("voter",
                                                        std::make_shared<testing::CallLog>(), o);
  }
  testing::TempDir dir_;
};

TEST_F(SqliteTest, ConnectionsAreInWalModeWithSynchronousFull) {
  auto rm = make();
  auto c = rm->open_connection();
  EXPECT_EQ(c->execute("PRAGMA journal_mode").one().get<std::string>(0), "wal");
  EXPECT_EQ(c->execute("PRAGMA synchronous").one().get<int>(0), 2);
}

TEST_F(SqliteTest, ADatabaseThatCannotBeInWalModeIsRefusedWithAClearError) {
  try {
    SqliteConnection::open(":memory:", {});
    ADD_FAILURE() << ":memory: was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("WAL"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SqliteResource::create(opts(":memory:")), UsageError);
  // A database in rollback-journal mode opened read-only cannot be switched to WAL.
  const std::string path = dir_ / "ro.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE t (x)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  try {
    SqliteConnection::open("file:" + path + "?mode=ro", {});
    ADD_FAILURE() << "a read-only database was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
  }
}

TEST_F(SqliteTest, LaterConnectionsNeverCreateTheFile) {
  EXPECT_THROW(SqliteConnection::open(dir_ / "missing.db", {}), sql::SqlError);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing.db"));
  EXPECT_THROW(
      make(opts(dir_ / "missing2.db", "", [](SqliteOptions& o) { o.create_if_missing = false; })),
      sql::SqlError);
}

TEST_F(SqliteTest, StatementsAreBoundAndResultsTyped) {
  auto c = make()->open_connection();
  c->execute("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB, n)");
  const sql::Bytes blob = {0, 1, 0xff};
  EXPECT_EQ(c->execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", {7, 1.5, "x'y", blob, nullptr})
                .affected_rows(),
            1);
  const auto r = c->execute("SELECT * FROM t WHERE s = ?", {"x'y"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].get<std::int64_t>("i"), 7);
  EXPECT_EQ(r[0].get<double>("d"), 1.5);
  EXPECT_EQ(r[0].get<sql::Bytes>("b"), blob);
  EXPECT_TRUE(r[0].at("n").is_null());
  EXPECT_THROW(c->execute("SELECT 1; SELECT 2"), UsageError) << "one statement per call";
  EXPECT_THROW(c->execute("SELECT ?", {}), UsageError) << "parameter count checked";
}

// The same statement text as for PostgreSQL and MySQL (test_postgres_resource.cpp,
// test_mysql_resource.cpp): `$n` numbered, repeated, out of order, and left alone in literals and
// comments.
TEST_F(SqliteTest, DollarPlaceholdersServeTheSameStatementAsOnTheOtherStores) {
  auto rm = with_table();
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  rm->execute(txn, "INSERT INTO kv (k, v) VALUES ($2, $1) /* $3 */", {"one", "two"});
  rm->execute(txn, "INSERT INTO kv (k, v) VALUES ($1, '$1 -- $2')", {"three"});
  const auto r =
      rm->execute(txn, "SELECT k FROM kv WHERE v = $1 OR k = $1 OR v = '$2' ORDER BY k", {"one"});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].get<std::string>(0), "two");
  EXPECT_THROW(rm->execute(txn, "SELECT $1, ?", {"a", "b"}), UsageError) << "mixed styles";
  EXPECT_THROW(rm->execute(txn, "SELECT $1, $2", {"a"}), UsageError) << "count checked";
  tm.commit();
  EXPECT_EQ(v(*rm, "three"), "$1 -- $2");
}

// ---- conflicts ---------------------------------------------------------------------------------

TEST_F(SqliteTest, AWriterWaitsOutTheBusyTimeoutThenGetsARetryableConflict) {
  auto holder = with_table();
  auto waiter =
      make(opts("", "", [](SqliteOptions& o) { o.busy_timeout = std::chrono::milliseconds(50); }));
  ExplicitTransactionManager tm1;
  ExplicitTransactionManager tm2;
  holder->execute(tm1.begin(), "INSERT INTO kv VALUES ('a', '1')");  // BEGIN IMMEDIATE: locked
  try {
    waiter->execute(tm2.begin(), "INSERT INTO kv VALUES ('b', '2')");
    ADD_FAILURE() << "no conflict";
  } catch (const ConflictError&) {
    EXPECT_TRUE(waiter->should_retry(std::current_exception()));
  }
  tm2.abort();
  tm1.commit();
  EXPECT_EQ(v(*holder, "a"), "1");
}

// The cross-store rule. A transaction that holds SQLite's write lock and still runs statements may
// be waiting for another store's row lock; if the transaction waiting for SQLite holds that row
// lock, neither database sees the cycle and only the busy timeout would end it. So a transaction
// that already joined other stores gives way at once (a retryable conflict) instead of waiting
// for such a holder. The busy timeout here is an hour: a wait would hang the test, not slow it.
TEST_F(SqliteTest, ATransactionHoldingOtherStoresGivesWayToARunningWriterInsteadOfWaiting) {
  auto rm = with_table();
  rm = make(opts("", "", [](SqliteOptions& o) { o.busy_timeout = std::chrono::hours(1); }));
  ExplicitTransactionManager tm1;
  ExplicitTransactionManager tm2;
  rm->execute(tm1.begin(), "INSERT INTO kv VALUES ('a', '1')");  // holds the write lock
  auto& txn2 = tm2.begin();
  voter()->set(txn2, "row lock elsewhere");  // another store's branch first
  try {
    rm->execute(txn2, "INSERT INTO kv VALUES ('b', '2')");
    ADD_FAILURE() << "no conflict";
  } catch (const ConflictError& e) {
    EXPECT_TRUE(txn2.is_retryable(std::current_exception()));
    EXPECT_NE(std::string(e.what()).find("deadlock across stores"), std::string::npos) << e.what();
  }
  tm2.abort();
  tm1.commit();
  // Retried, it goes through.
  auto& again = tm2.begin();
  voter()->set(again, "row lock elsewhere");
  rm->execute(again, "INSERT INTO kv VALUES ('b', '2')");
  tm2.commit();
  EXPECT_EQ(v(*rm, "b"), "2");
}

// The other side of the rule: a transaction that holds nothing elsewhere cannot be part of such a
// cycle, so it waits its turn, and is let in as soon as the holder commits.
TEST_F(SqliteTest, AWriterHoldingNothingElseWaitsItsTurnAndGoesOnWhenTheHolderCommits) {
  auto rm = with_table();
  rm = make(opts("", "", [](SqliteOptions& o) { o.busy_timeout = std::chrono::hours(1); }));
  ExplicitTransactionManager tm1;
  rm->execute(tm1.begin(), "INSERT INTO kv VALUES ('a', '1')");
  std::promise<void> waiting;
  auto second = std::async(std::launch::async, [&] {
    ExplicitTransactionManager tm2;
    auto& txn = tm2.begin();
    waiting.set_value();
    rm->execute(txn, "INSERT INTO kv VALUES ('b', '2')");  // waits for tm1's commit
    voter()->set(txn, "joined after SQLite");
    tm2.commit();
  });
  waiting.get_future().wait();
  tm1.commit();
  second.get();
  EXPECT_EQ(v(*rm, "a"), "1");
  EXPECT_EQ(v(*rm, "b"), "2");
}

// Once the holder is committing it waits for no other store any more: a transaction holding
// other stores' branches then waits for it rather than giving way.
TEST_F(SqliteTest, ATransactionHoldingOtherStoresWaitsForAWriterThatIsAlreadyCommitting) {
  auto rm = with_table();
  rm = make(opts("", "", [](SqliteOptions& o) { o.busy_timeout = std::chrono::hours(1); }));
  ExplicitTransactionManager tm1;
  ExplicitTransactionManager tm2;
  auto& txn1 = tm1.begin();
  rm->execute(txn1, "INSERT INTO kv VALUES ('a', '1')");
  // The holder's statements are done: its commit has begun (commit() is the first step of it).
  rm->commit(txn1);
  auto& txn2 = tm2.begin();
  voter()->set(txn2, "row lock elsewhere");
  std::promise<void> waiting;
  auto second = std::async(std::launch::async, [&] {
    waiting.set_value();
    rm->execute(txn2, "INSERT INTO kv VALUES ('b', '2')");  // waits, no conflict
  });
  waiting.get_future().wait();
  tm1.commit();
  EXPECT_NO_THROW(second.get());
  tm2.commit();
  EXPECT_EQ(v(*rm, "b"), "2");
}

TEST_F(SqliteTest, ADeferredBranchThatReadsAStaleSnapshotGetsBusySnapshotAndCannotCommit) {
  auto base = with_table();
  base->open_connection()->execute("INSERT INTO kv VALUES ('a', '0')");
  auto deferred = make(opts("", "", [](SqliteOptions& o) { o.begin = BeginMode::deferred; }));
  ExplicitTransactionManager tm1;
  auto& txn = tm1.begin();
  EXPECT_EQ(deferred->execute(txn, "SELECT v FROM kv WHERE k = 'a'").one().get<std::string>(0),
            "0");
  base->open_connection()->execute("UPDATE kv SET v = '1' WHERE k = 'a'");  // commits meanwhile
  try {
    deferred->execute(txn, "UPDATE kv SET v = '2' WHERE k = 'a'");
    ADD_FAILURE() << "no conflict";
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("517"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tm1.commit(), ConflictError) << "the branch cannot commit what it could not write";
  tm1.abort();
  EXPECT_EQ(v(*base, "a"), "1");
}

// ---- the last resource
// ---------------------------------------------------------------------------

TEST_F(SqliteTest, ItCannotPrepareAndIsADecisionStoreNotARecoverableResource) {
  auto rm = make();
  ASSERT_NE(rm->one_phase_commit(), nullptr);
  EXPECT_FALSE(rm->one_phase_commit()->can_prepare());
  EXPECT_EQ(rm->recoverable(), nullptr);
  EXPECT_NE(rm->decision_store(), nullptr);
}

TEST_F(SqliteTest, AsTheOnlyParticipantItCommitsWithoutAMarker) {
  auto rm = with_table();
  ExplicitTransactionManager tm;
  rm->execute(tm.begin(), "INSERT INTO kv VALUES ('only', '1')");
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_EQ(v(*rm, "only"), "1");
  EXPECT_TRUE(rm->decisions().empty());
}

TEST_F(SqliteTest, AsLastResourceItStoresTheDecisionInItsOwnTransactionAndForgetsItAfterwards) {
  auto rm = with_table();
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  rm->execute(txn, "INSERT INTO kv VALUES ('lr', '1')");
  auto v1 = voter();
  v1->set(txn, "x");
  const Gtrid gtrid = txn.xid_for(*rm).gtrid;
  const auto outcome = tm.commit();
  EXPECT_TRUE(outcome.committed);
  EXPECT_TRUE(outcome.decision_logged) << "the last resource carried the decision";
  EXPECT_EQ(v(*rm, "lr"), "1");
  EXPECT_EQ(rm->lookup_decision(gtrid), DecisionStore::Lookup::committed)
      << "forgotten once every participant finished, deleted with the next batch";
  rm->flush_forgotten();
  EXPECT_EQ(rm->lookup_decision(gtrid), DecisionStore::Lookup::not_found);
  EXPECT_TRUE(rm->decisions().empty());
}

TEST_F(SqliteTest, AMarkerStaysWhileAnotherParticipantsFinishIsPending) {
  auto rm = with_table();
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  rm->execute(txn, "INSERT INTO kv VALUES ('p', '1')");
  testing::RecordingOptions o;
  o.fail_at = testing::Step::tpc_finish;
  auto v = voter(o);
  v->set_unreachable(true);  // the re-driver cannot finish it for now either
  v->set(txn, "x");
  const Gtrid gtrid = txn.xid_for(*rm).gtrid;
  const auto outcome = tm.commit();
  EXPECT_TRUE(outcome.committed);
  EXPECT_EQ(outcome.pending.size(), 1u);
  EXPECT_EQ(rm->lookup_decision(gtrid), DecisionStore::Lookup::committed);
  EXPECT_EQ(rm->decisions(), std::vector<Gtrid>{gtrid});
  // Once the voter answers, the re-driver finishes it and forgets the marker.
  v->set_unreachable(false);
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
  EXPECT_EQ(v->committed(), "x");
  rm->flush_forgotten();
  EXPECT_EQ(rm->lookup_decision(gtrid), DecisionStore::Lookup::not_found);
}

TEST_F(SqliteTest, JoinedWithoutStatementsItStillCarriesTheDecision) {
  auto rm = with_table();
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  txn.join(rm);
  testing::RecordingOptions o;
  o.fail_at = testing::Step::tpc_finish;  // keeps the marker for the check
  auto v = voter(o);
  v->set_unreachable(true);
  v->set(txn, "x");
  const Gtrid gtrid = txn.xid_for(*rm).gtrid;
  EXPECT_TRUE(tm.commit().committed);
  EXPECT_EQ(rm->lookup_decision(gtrid), DecisionStore::Lookup::committed);
  v->set_unreachable(false);
  ASSERT_TRUE(Redriver::process().wait_idle(std::chrono::seconds(60)));
}

TEST_F(SqliteTest, AFailedMarkerWriteRollsBackEverything) {
  auto rm = with_table();
  rm->open_connection()->execute(
      "CREATE TRIGGER no_decisions BEFORE INSERT ON xact_decisions "
      "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  rm->execute(txn, "INSERT INTO kv VALUES ('f', '1')");
  auto v1 = voter();
  v1->set(txn, "x");
  EXPECT_THROW(tm.commit(), sql::SqlError);
  tm.abort();
  EXPECT_EQ(v(*rm, "f"), std::nullopt);
  EXPECT_EQ(v1->committed(), std::nullopt) << "the prepared voter was rolled back";
  EXPECT_TRUE(v1->prepared().empty());
}

TEST_F(SqliteTest, AnUnreadableDatabaseIsReportedAsUnreadableNeverAsNoDecision) {
  auto rm = make();
  Gtrid g(NodeId::random(), 1, 1);
  EXPECT_EQ(rm->lookup_decision(g), DecisionStore::Lookup::not_found);
  auto gone = make(opts(dir_ / "gone.db", "sqlite:gone"));
  std::filesystem::remove(dir_ / "gone.db");
  std::filesystem::remove(dir_ / "gone.db-wal");
  std::filesystem::remove(dir_ / "gone.db-shm");
  gone->pool()->clear_idle();
  EXPECT_EQ(gone->lookup_decision(g), DecisionStore::Lookup::unreadable);
  auto dropped = make(opts(dir_ / "dropped.db", "sqlite:dropped"));
  dropped->open_connection()->execute("DROP TABLE xact_decisions");
  dropped->pool()->clear_idle();
  EXPECT_EQ(dropped->lookup_decision(g), DecisionStore::Lookup::unreadable);
}

TEST_F(SqliteTest, MarkersOfEarlierEpochsOfANodeCanBeDroppedAfterACompleteRecovery) {
  auto rm = with_table();
  const NodeId node = NodeId::random();
  auto c = rm->open_connection();
  for (std::uint32_t epoch : {1u, 2u, 3u}) {
    const Gtrid g(node, epoch, 1);
    c->execute("INSERT INTO xact_decisions VALUES (?, ?, ?, 0, '')",
               {g.to_hex(), node.to_hex(), static_cast<std::int64_t>(epoch)});
  }
  const Gtrid other(NodeId::random(), 1, 1);
  c->execute("INSERT INTO xact_decisions VALUES (?, ?, 1, 0, '')",
             {other.to_hex(), other.node().to_hex()});
  EXPECT_EQ(rm->forget_decisions_before(node, 3), 2u);
  EXPECT_EQ(rm->lookup_decision(Gtrid(node, 3, 1)), DecisionStore::Lookup::committed);
  EXPECT_EQ(rm->lookup_decision(other), DecisionStore::Lookup::committed) << "another node's";
}

TEST_F(SqliteTest, AnEnlistedHandleCarriesTheBranch) {
  auto rm = with_table();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "app.db").c_str(), &db), SQLITE_OK);
  {
    ExplicitTransactionManager tm;
    auto& txn = tm.begin();
    rm->enlist(txn, db);
    rm->execute(txn, "INSERT INTO kv VALUES ('e', '1')");
    EXPECT_EQ(sqlite3_get_autocommit(db), 0) << "the branch runs on the application's handle";
    tm.commit();
  }
  EXPECT_EQ(sqlite3_get_autocommit(db), 1);
  sqlite3_close(db);
  EXPECT_EQ(v(*rm, "e"), "1");
}

// ---- the conformance suite
// -------------------------------------------------------------------------

class SqliteTarget : public testing::ConformanceTarget {
 public:
  SqliteTarget() {
    SqliteResource::create(opts(path(), "sqlite:conformance"))
        ->open_connection()
        ->execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)");
  }
  std::shared_ptr<ResourceManager> open() override {
    return SqliteResource::create(opts(path(), "sqlite:conformance"));
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    static_cast<SqliteResource&>(rm).execute(txn, "INSERT OR REPLACE INTO kv VALUES (?, ?)",
                                             {key, value});
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    auto c = SqliteConnection::open(path(), {});
    const auto r = c->execute("SELECT v FROM kv WHERE k = ?", {key});
    if (r.empty()) return std::nullopt;
    return r[0].get<std::string>(0);
  }

 private:
  std::string path() const { return dir_ / "conformance.db"; }
  testing::TempDir dir_;
};

// The suite skips, for a last resource, the two tests whose probe must take the last-resource
// seat (see doc/sqlite.md, "Conformance").
using testing::ResourceManagerConformance;
INSTANTIATE_TEST_SUITE_P(Sqlite, ResourceManagerConformance,
                         ::testing::Values(testing::ConformanceParam{
                             "sqlite",
                             []() -> std::unique_ptr<testing::ConformanceTarget> {
                               return std::make_unique<SqliteTarget>();
                             }}),
                         testing::conformance_name);

}  // namespace
}  // namespace xact::sqlite
