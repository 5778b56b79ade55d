// The MyISAM session store and SessionResource against a real MariaDB: the seed's case (several
// processes sharing session variables in a MyISAM table, with object changes and InnoDB rows in
// the same request, retried after a conflict), fences across connections and processes, undo
// and heuristics, recovery of a dead process's fences, a damaged table, and a crash at every
// coordinator crash point.
#include <xact/mysql/myisam_session_store.hpp>
#include <xact/sessions/session_resource.hpp>

#include <sys/wait.h>

#include <unistd.h>
#include <csignal>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/recovery.hpp>
#include <xact/retry.hpp>
#include <xact/sql/errors.hpp>
#include <xact/testing/crash_harness.hpp>
#include <xact/testing/session_store_contract.hpp>
#include <xact/transaction.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

using mysql::MyIsamSessionStore;
using mysql::MyIsamSessionStoreOptions;
using mysql::MySqlResource;
using objectstore::ConnectionOptions;
using objectstore::DB;
using objectstore::FileStorage;
using objectstore::PersistentMap;
using sessions::Entry;
using sessions::Fence;
using sessions::SessionResource;
using sessions::SessionResourceOptions;
using testing::TempDir;

std::shared_ptr<MyIsamSessionStore> open_store(
    const std::string& table, std::chrono::microseconds idle = std::chrono::minutes(30)) {
  MyIsamSessionStoreOptions o;
  o.connect = connect_options();
  o.table = table;
  o.idle_timeout = idle;
  return MyIsamSessionStore::open(o);
}

std::shared_ptr<SessionResource> session_rm(std::shared_ptr<MyIsamSessionStore> store,
                                            std::shared_ptr<DecisionLog> log) {
  SessionResourceOptions o;
  o.decision_log = std::move(log);
  return SessionResource::create(std::move(store), o);
}

class MySqlSessions : public ::testing::Test {
 protected:
  void SetUp() override {
    XACT_REQUIRE_MYSQL();
    table_ = unique_name("sess");
    store_ = open_store(table_);
    sid_ = sessions::new_session_id();
  }
  void TearDown() override {
    if (!table_.empty()) Plain().run("DROP TABLE IF EXISTS " + table_);
  }
  std::string table_;
  std::shared_ptr<MyIsamSessionStore> store_;
  std::string sid_;
};

TEST_F(MySqlSessions, TableIsMyIsam) {
  auto r = Plain().run(
      "SELECT engine FROM information_schema.tables WHERE table_schema = DATABASE() AND "
      "table_name = $1",
      {table_});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as_string(), "MyISAM");
}

TEST_F(MySqlSessions, PlainOperationsAndExpiry) {
  EXPECT_EQ(store_->get(sid_, "k"), std::nullopt);
  store_->set(sid_, "k", std::string("bin\0ary", 7));
  EXPECT_EQ(store_->get(sid_, "k"), std::string("bin\0ary", 7));
  store_->set(sid_, "k", "v2");
  EXPECT_EQ(store_->read_entry(sid_, "k")->version, 2u);
  store_->set(sid_, "j", "x");
  EXPECT_EQ(store_->get_all(sid_), (std::map<std::string, std::string>{{"j", "x"}, {"k", "v2"}}));
  store_->erase(sid_, "j");
  EXPECT_TRUE(store_->touch(sid_));
  EXPECT_FALSE(store_->touch(sessions::new_session_id()));
  store_->invalidate(sid_);
  EXPECT_TRUE(store_->get_all(sid_).empty());

  auto short_lived = open_store(table_, std::chrono::milliseconds(200));
  const std::string s2 = sessions::new_session_id();
  short_lived->set(s2, "k", "v");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(short_lived->get(s2, "k"), std::nullopt);  // expired: a new, empty session
  EXPECT_GE(short_lived->sweep_expired(), 1u);
}

TEST_F(MySqlSessions, CompareAndSwapIsOneConditionalStatement) {
  Entry e1{"v1", 1, 0, std::nullopt};
  EXPECT_TRUE(store_->compare_and_swap(sid_, "k", std::nullopt, e1));
  EXPECT_FALSE(store_->compare_and_swap(sid_, "k", std::nullopt, e1));
  Entry e2{"v2", 2, 0, Fence{Gtrid(NodeId::random(), 1, 7), 2, "v1", 1, 5}};
  EXPECT_FALSE(store_->compare_and_swap(sid_, "k", Entry{"v1", 9, 0, std::nullopt}, e2));
  EXPECT_TRUE(store_->compare_and_swap(sid_, "k", e1, e2));
  auto got = store_->read_entry(sid_, "k");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->value, "v2");
  EXPECT_EQ(got->fence, e2.fence);  // the compensation is in the row
  EXPECT_FALSE(store_->compare_and_swap(sid_, "k", e1, std::nullopt));  // owner differs now
  EXPECT_TRUE(store_->compare_and_swap(sid_, "k", e2, std::nullopt));
  EXPECT_EQ(store_->read_entry(sid_, "k"), std::nullopt);
}

// On MariaDB a blind write is one INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING: the
// before-image computed in the row, another owner's fence respected, an expired row replaced.
TEST_F(MySqlSessions, BlindFencedWriteIsOneStatementKeepingTheContract) {
  auto short_lived = open_store(table_, std::chrono::seconds(2));
  xact::testing::check_write_fenced(
      *short_lived, [] { std::this_thread::sleep_for(std::chrono::milliseconds(2100)); });
}

// What a write+commit costs the server, counted on the store's only connection: a blind write
// is one statement (no SELECT first) and the commit one more.
TEST_F(MySqlSessions, BlindWriteAndItsCommitAreOneStatementEach) {
  MyIsamSessionStoreOptions o;
  o.connect = connect_options();
  o.table = table_;
  o.connections = 1;  // execute() then runs on the connection the writes use
  auto store = MyIsamSessionStore::open(o);
  auto executed = [&] {
    return store->execute("SHOW SESSION STATUS LIKE 'Com_stmt_execute'", {})[0][1].as_int64();
  };
  const std::int64_t a = executed(), b = executed();
  const std::int64_t reading = b - a;  // what one SHOW adds
  store->set(sid_, "k", "v");
  auto rm = session_rm(store, nullptr);
  ExplicitTransactionManager tm;
  Transaction& txn = tm.begin();
  const std::int64_t c = executed();
  rm->set(txn, sid_, "k", "w");
  EXPECT_EQ(executed() - c - reading, 1);
  const std::int64_t d = executed();
  txn.commit();
  EXPECT_EQ(executed() - d - reading, 1);
  EXPECT_EQ(store->get(sid_, "k"), "w");
  EXPECT_TRUE(store->list_fenced(std::nullopt).empty());
}

TEST_F(MySqlSessions, FenceHoldsAcrossConnections) {
  auto log = std::shared_ptr<DecisionLog>(nullptr);
  auto other_store = open_store(table_);  // its own connections: like another process
  auto rm1 = session_rm(store_, log), rm2 = session_rm(other_store, log);
  store_->set(sid_, "cart", "pen");
  ExplicitTransactionManager tm1, tm2;
  Transaction& t1 = tm1.begin();
  rm1->set(t1, sid_, "cart", "book");
  Transaction& t2 = tm2.begin();
  EXPECT_EQ(rm2->get(t2, sid_, "cart"), "pen");  // the before-image
  EXPECT_THROW(rm2->set(t2, sid_, "cart", "lamp"), ConflictError);
  t2.abort();
  t1.commit();
  EXPECT_EQ(other_store->get(sid_, "cart"), "book");
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(MySqlSessions, AbortUndoesAndAnOutsideWriterIsAHeuristic) {
  TempDir dir;
  std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
  auto rm = session_rm(store_, log);
  store_->set(sid_, "cart", "pen");
  store_->set(sid_, "user", "ann");
  ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
  Transaction& txn = tm.begin();
  rm->set(txn, sid_, "cart", "book");
  rm->erase(txn, sid_, "user");
  rm->set(txn, sid_, "new", "n");
  // A request outside xact rewrites the value in SQL (a plain program sharing the table).
  Plain().run("UPDATE " + table_ +
                  " SET value = 'outside', version = version + 1, "
                  "owner_node = NULL, owner_gtrid = NULL WHERE sid = $1 AND name = 'cart'",
              {sql::Bytes(sid_.begin(), sid_.end())});
  txn.abort();
  EXPECT_EQ(store_->get_all(sid_),
            (std::map<std::string, std::string>{{"cart", "outside"}, {"user", "ann"}}));
  ASSERT_EQ(log->heuristics().size(), 1u);
  EXPECT_NE(log->heuristics()[0].detail.find("outside xact"), std::string::npos);
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

// FLUSH TABLES needs the RELOAD privilege, which the test user lacks: run it as the server's
// root over its socket (scripts/servers.sh runs the server as this machine's root).
bool flush_as_root(const std::string& table) {
  const char* sock = std::getenv("XACT_MYSQL_SOCKET");
  if (sock == nullptr) return false;
  const std::string cmd = "mariadb --no-defaults -uroot -S '" + std::string(sock) +
                          "' -e 'FLUSH TABLES " + connect_options().database + "." + table +
                          "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(MySqlSessions, DamagedTableIsReportedWithRepairAdvice) {
  store_->set(sid_, "k", "v");
  Plain plain;
  const std::string datadir = plain.run("SELECT @@datadir").one()[0].as_string();
  if (!flush_as_root(table_)) {
    if (under_ci()) FAIL() << "cannot run FLUSH TABLES as root over XACT_MYSQL_SOCKET";
    GTEST_SKIP() << "needs root on the server's socket (XACT_MYSQL_SOCKET) to flush the table";
  }
  {
    // Garble the index file's header, as a server killed in the middle of a write can.
    std::fstream f(datadir + "/" + connect_options().database + "/" + table_ + ".MYI",
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << "cannot open the table's .MYI file under " << datadir;
    const std::string junk(512, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  try {
    (void)store_->get(sid_, "k");
    FAIL() << "a damaged MyISAM table was read without an error";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("REPAIR TABLE"), std::string::npos) << e.what();
    std::printf("reported: %s\n", e.what());
  }
}

// Everything one application process opens: a decision log, its own file storage, a MySQL
// resource for an InnoDB table, and the shared MyISAM session table.
struct World {
  World(const TempDir& dir, const std::string& row_table, const std::string& session_table,
        const std::string& tag = "")
      : row_table(row_table) {
    log = DecisionLog::open(io::Env::posix(), dir / ("log" + tag));
    storage = std::shared_ptr<FileStorage>(FileStorage::open(dir / ("data" + tag + ".xfs")));
    db = DB::open(storage);
    mysql::MySqlOptions ro = options("rows" + tag);
    ro.connect.lock_wait_timeout = std::chrono::seconds(1);
    rows = MySqlResource::create(ro);
    store = open_store(session_table);
    sessions = session_rm(store, log);
  }
  ~World() {
    db.reset();
    storage->close();
  }
  static void create_objects(const std::string& path) {
    auto storage = std::shared_ptr<FileStorage>(FileStorage::open(path));
    {
      auto db = DB::open(storage);
      ExplicitTransactionManager tm;
      ConnectionOptions o;
      o.manager = &tm;
      auto conn = db->open(o);
      tm.begin();
      auto counter = std::make_shared<PersistentMap>();
      counter->set("n", 0);
      conn->root()->set("counter", counter);
      tm.commit();
    }
    storage->close();
  }
  // One request: the counter object +1, an InnoDB row, two session values.
  void request(ExplicitTransactionManager& tm, Transaction& txn, const std::string& sid,
               const std::string& value) {
    ConnectionOptions o;
    o.manager = &tm;
    auto conn = db->open(o);
    auto counter = conn->root()->get<PersistentMap>("counter");
    counter->set("n", counter->at("n").as_int() + 1);
    const auto visits = sessions->get(txn, sid, "visits");
    sessions->set(txn, sid, "visits", std::to_string(visits ? std::stoi(*visits) + 1 : 1));
    sessions->set(txn, sid, "last", value);
    put(*rows, txn, row_table, "k", value);
  }
  std::int64_t counter() {
    ExplicitTransactionManager tm;
    ConnectionOptions o;
    o.manager = &tm;
    auto conn = db->open(o);
    tm.begin();
    const std::int64_t n = conn->root()->get<PersistentMap>("counter")->at("n").as_int();
    tm.abort();
    return n;
  }
  std::unique_ptr<Recovery> recovery() {
    auto r = std::make_unique<Recovery>(log);
    r->register_resource(db->recovery_target());
    r->register_resource(rows);
    r->register_resource(sessions);
    return r;
  }
  std::string row_table;
  std::shared_ptr<DecisionLog> log;
  std::shared_ptr<FileStorage> storage;
  std::shared_ptr<DB> db;
  std::shared_ptr<MySqlResource> rows;
  std::shared_ptr<MyIsamSessionStore> store;
  std::shared_ptr<SessionResource> sessions;
};

TEST_F(MySqlSessions, RetriedRequestLeavesExactlyTheRetrysEffects) {
  TempDir dir;
  TempTable rows;
  World::create_objects(dir / "data.xfs");
  World w(dir, rows.name(), table_);
  store_->set(sid_, "visits", "0");
  // Another process's unfinished transaction holds the fence on "last" for the first attempt.
  const Gtrid blocker(NodeId::random(), 1, 1);
  ASSERT_TRUE(store_->compare_and_swap(
      sid_, "last", std::nullopt,
      Entry{"blocker", 1, 0, Fence{blocker, 1, std::nullopt, 0, sessions::wall_clock_us()}}));
  ExplicitTransactionManager tm(ManagerOptions{w.log, std::nullopt});
  RetryPolicy policy;
  policy.attempts = 3;
  policy.sleep = [&](std::chrono::microseconds) {
    // The blocker aborts while the request backs off.
    auto e = store_->read_entry(sid_, "last");
    ASSERT_TRUE(store_->compare_and_swap(sid_, "last", e, std::nullopt));
  };
  int attempts = 0;
  xact::run(
      tm,
      [&](Transaction& txn) {
        ++attempts;
        w.request(tm, txn, sid_, "attempt " + std::to_string(attempts));
      },
      policy);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(w.counter(), 1);
  EXPECT_EQ(Plain().value(rows.name(), "k"), "attempt 2");
  EXPECT_EQ(store_->get_all(sid_),
            (std::map<std::string, std::string>{{"last", "attempt 2"}, {"visits", "1"}}));
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

// The server out of reach for a moment is a reason to retry, not an internal error: the
// store's only connection is killed from outside (as a server restart would), once before the
// request's read (a read alone does not join: the failed one does, to be asked) and once between
// its read and its write; each attempt fails with ConnectionLost, the resource says retry, and
// the third attempt, on a new connection, commits.
TEST_F(MySqlSessions, ALostConnectionIsRetriedAndTheRetryLeavesOnlyItsEffects) {
  MyIsamSessionStoreOptions o;
  o.connect = connect_options();
  o.table = table_;
  o.connections = 1;  // execute() runs on the connection the reads and writes use
  auto store = MyIsamSessionStore::open(o);
  EXPECT_TRUE(store->is_transient(std::make_exception_ptr(sql::ConnectionLost("lost"))));
  EXPECT_FALSE(store->is_transient(std::make_exception_ptr(ResourceError("crashed table"))));
  store->set(sid_, "visits", "0");
  auto rm = session_rm(store, nullptr);
  auto kill_store_connection = [&] {
    const std::int64_t id = store->execute("SELECT CONNECTION_ID()", {})[0][0].as_int64();
    Plain().run("KILL CONNECTION " + std::to_string(id));
  };
  ExplicitTransactionManager tm;
  RetryPolicy policy;
  policy.attempts = 4;
  policy.sleep = [](std::chrono::microseconds) {};
  std::vector<std::string> lost;
  policy.on_retry = [&](const RetryEvent& e) { lost.push_back(error_message(e.error)); };
  int attempts = 0;
  xact::run(
      tm,
      [&](Transaction& txn) {
        ++attempts;
        if (attempts == 1) kill_store_connection();
        const int n = std::stoi(*rm->get(txn, sid_, "visits"));
        if (attempts == 2) kill_store_connection();
        rm->set(txn, sid_, "visits", std::to_string(n + 1));
        rm->set(txn, sid_, "attempt", std::to_string(attempts));
      },
      policy);
  EXPECT_EQ(attempts, 3);
  ASSERT_EQ(lost.size(), 2u);
  for (const std::string& m : lost) EXPECT_NE(m.find("MySQL"), std::string::npos) << m;
  EXPECT_EQ(store->get_all(sid_),
            (std::map<std::string, std::string>{{"attempt", "3"}, {"visits", "1"}}));
  EXPECT_TRUE(store->list_fenced(std::nullopt).empty());
}

TEST_F(MySqlSessions, RequestRetriedAfterAnInnoDbRowConflictLeavesOnlyTheRetrysEffects) {
  TempDir dir;
  TempTable rows;
  World::create_objects(dir / "data.xfs");
  World w(dir, rows.name(), table_);
  store_->set(sid_, "visits", "0");
  Plain().run("INSERT INTO " + rows.name() + " (k, v) VALUES ('k', 'before')");
  // Another program holds the row lock during the first attempt: its REPLACE times out after
  // the session values and the object were already written.
  Plain blocker;
  blocker.run("START TRANSACTION");
  blocker.run("SELECT v FROM " + rows.name() + " WHERE k = 'k' FOR UPDATE");
  ExplicitTransactionManager tm(ManagerOptions{w.log, std::nullopt});
  RetryPolicy policy;
  policy.attempts = 3;
  int attempts = 0;
  policy.sleep = [&](std::chrono::microseconds) {
    // Between the attempts the first one's session writes are gone already.
    EXPECT_EQ(store_->get_all(sid_), (std::map<std::string, std::string>{{"visits", "0"}}));
    blocker.run("COMMIT");
  };
  xact::run(
      tm,
      [&](Transaction& txn) {
        ++attempts;
        w.request(tm, txn, sid_, "attempt " + std::to_string(attempts));
      },
      policy);
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(w.counter(), 1);
  EXPECT_EQ(Plain().value(rows.name(), "k"), "attempt 2");
  EXPECT_EQ(store_->get_all(sid_),
            (std::map<std::string, std::string>{{"last", "attempt 2"}, {"visits", "1"}}));
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(MySqlSessions, RecoveryCompensatesTheFencesOfAKilledProcess) {
  TempDir dir;
  store_->set(sid_, "cart", "pen");
  const std::string table = table_, sid = sid_;
  const testing::ChildRun run = testing::run_in_child([&] {
    std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
    auto store = open_store(table);
    auto rm = session_rm(store, log);
    ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
    Transaction& txn = tm.begin();
    rm->set(txn, sid, "cart", "book");
    rm->set(txn, sid, "new", "n");
    ::kill(::getpid(), SIGKILL);  // dies with its writes in the table
    return 0;
  });
  ASSERT_TRUE(run.killed) << run.describe();
  EXPECT_EQ(store_->get(sid_, "cart"), "book");  // the dead process's write is there
  std::shared_ptr<DecisionLog> log = DecisionLog::open(io::Env::posix(), dir / "log");
  auto rm = session_rm(store_, log);
  EXPECT_EQ(rm->recover(log->node_id()).size(), 1u);
  Recovery recovery(log);
  recovery.register_resource(rm);
  const RecoveryReport report = recovery.run();
  EXPECT_TRUE(report.complete()) << report.describe();
  EXPECT_EQ(store_->get_all(sid_), (std::map<std::string, std::string>{{"cart", "pen"}}));
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

TEST_F(MySqlSessions, TwoProcessesSharingTheStoreLoseNoUpdate) {
  TempDir dir;
  constexpr int kPerProcess = 40;
  store_->set(sid_, "hits", "0");
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int rc = 0;
      try {
        std::shared_ptr<DecisionLog> log =
            DecisionLog::open(io::Env::posix(), dir / ("log" + std::to_string(p)));
        auto rm = session_rm(open_store(table_), log);
        ExplicitTransactionManager tm(ManagerOptions{log, std::nullopt});
        RetryPolicy policy;
        policy.deadline = std::chrono::seconds(60);
        policy.initial_backoff = std::chrono::microseconds(200);
        for (int i = 0; i < kPerProcess; ++i) {
          xact::run(
              tm,
              [&](Transaction& txn) {
                const int n = std::stoi(*rm->get(txn, sid_, "hits"));
                rm->set(txn, sid_, "hits", std::to_string(n + 1));
                rm->set(txn, sid_, "by" + std::to_string(p), std::to_string(i));
              },
              policy);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", p, e.what());
        rc = 1;
      }
      ::_exit(rc);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(store_->get(sid_, "hits"), std::to_string(2 * kPerProcess));
  EXPECT_EQ(store_->get(sid_, "by0"), std::to_string(kPerProcess - 1));
  EXPECT_EQ(store_->get(sid_, "by1"), std::to_string(kPerProcess - 1));
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
}

// Commits that arrive together are written as one batch (one leader, one UPDATE): each
// transaction's fences are dropped, its erased values removed, and nobody else's touched.
TEST_F(MySqlSessions, ConcurrentCommitsBatchedDropEachOwnersFencesOnly) {
  constexpr int kThreads = 8, kPerThread = 40;
  auto rm = session_rm(store_, nullptr);
  std::vector<std::string> sids;
  for (int t = 0; t < kThreads; ++t) sids.push_back(sessions::new_session_id());
  // A fence that must survive every batch: an unfinished transaction of its own.
  ExplicitTransactionManager open_tm;
  Transaction& open_txn = open_tm.begin();
  rm->set(open_txn, sids[0], "held", "open");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        ExplicitTransactionManager tm;
        for (int i = 0; i < kPerThread; ++i) {
          Transaction& txn = tm.begin();
          rm->set(txn, sids[static_cast<std::size_t>(t)], "n", std::to_string(i));
          rm->set(txn, sids[static_cast<std::size_t>(t)], "tmp", "x");
          if (i % 2 == 1) rm->erase(txn, sids[static_cast<std::size_t>(t)], "tmp");
          txn.commit();
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "thread %d: %s\n", t, e.what());
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const std::vector<sessions::FencedEntry> fenced = store_->list_fenced(std::nullopt);
  ASSERT_EQ(fenced.size(), 1u);  // only the open transaction's
  EXPECT_EQ(fenced[0].name, "held");
  for (int t = 0; t < kThreads; ++t) {
    std::map<std::string, std::string> want{{"n", std::to_string(kPerThread - 1)}};
    if (t == 0) want.emplace("held", "open");
    EXPECT_EQ(store_->get_all(sids[static_cast<std::size_t>(t)]), want) << "thread " << t;
  }
  open_txn.abort();
  EXPECT_EQ(store_->get(sids[0], "held"), std::nullopt);
}

// --- A crash at every coordinator crash point: all or nothing --------------------------------

struct CrashCase {
  const char* point;
  unsigned hit;
  bool expect_commit;
  bool reached = true;
};

class MySqlSessionsCrash : public MySqlSessions, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(MySqlSessionsCrash, ObjectsRowsAndSessionValuesCommitTogetherOrNotAtAll) {
  const CrashCase c = GetParam();
  TempDir dir;
  TempTable rows;
  World::create_objects(dir / "data.xfs");
  store_->set(sid_, "visits", "5");
  store_->set(sid_, "last", "before");
  const std::string rows_table = rows.name(), table = table_, sid = sid_;
  const testing::ChildRun run = testing::run_in_child(
      [&] {
        World w(dir, rows_table, table);
        ExplicitTransactionManager tm(ManagerOptions{w.log, std::nullopt});
        Transaction& txn = tm.begin();
        w.request(tm, txn, sid, "crashed");
        tm.commit();
        return 0;
      },
      c.point, c.hit);
  ASSERT_EQ(run.killed, c.reached) << run.describe();

  World w(dir, rows_table, table_);
  const RecoveryReport report = w.recovery()->run();
  EXPECT_TRUE(report.complete()) << report.describe();
  const bool objects = w.counter() == 1;
  const bool row = Plain().value(rows_table, "k").has_value();
  const auto all = store_->get_all(sid_);
  const bool session = all.at("visits") == "6" && all.at("last") == "crashed";
  const bool session_before = all.at("visits") == "5" && all.at("last") == "before";
  EXPECT_TRUE(session || session_before) << all.at("visits") << " " << all.at("last");
  EXPECT_EQ(objects, c.expect_commit);
  EXPECT_EQ(row, c.expect_commit);
  EXPECT_EQ(session, c.expect_commit);
  EXPECT_TRUE(store_->list_fenced(std::nullopt).empty());
  EXPECT_TRUE(w.log->heuristics().empty());
}

INSTANTIATE_TEST_SUITE_P(EveryPoint, MySqlSessionsCrash,
                         ::testing::Values(CrashCase{"coordinator.before_tpc_begin", 1, false},
                                           CrashCase{"coordinator.after_tpc_begin", 1, false},
                                           CrashCase{"coordinator.after_commit", 1, false},
                                           CrashCase{"coordinator.after_vote", 1, false},
                                           CrashCase{"coordinator.after_vote", 2, false},
                                           CrashCase{"coordinator.after_vote", 3, false},
                                           CrashCase{"coordinator.before_commit_record", 1, false},
                                           CrashCase{"coordinator.after_commit_record", 1, true},
                                           CrashCase{"coordinator.after_finish", 1, true},
                                           CrashCase{"coordinator.after_finish", 2, true},
                                           CrashCase{"coordinator.after_finish", 3, true},
                                           CrashCase{"coordinator.after_done_record", 1, true}),
                         [](const ::testing::TestParamInfo<CrashCase>& info) {
                           return std::string(info.param.point).substr(12) + "_" +
                                  std::to_string(info.param.hit);
                         });

// Keys go to the server as string parameters (no long-data packets): arbitrary bytes, NULs and
// invalid UTF-8 included, are stored and matched unchanged in the binary key columns.
TEST_F(MySqlSessions, BinaryKeysRoundTrip) {
  const std::string sid("\xff\x00\xfe\xc3(\x80 x", 8);
  const std::string name("\xc3\x28\x00n", 4);
  store_->set(sid, name, "v");
  EXPECT_EQ(store_->get(sid, name), "v");
  EXPECT_EQ(store_->get(sid, name.substr(0, 3)), std::nullopt);
  const Gtrid me(NodeId::random(), 1, 1);
  Entry written;
  std::optional<Entry> before;
  ASSERT_EQ(store_->write_fenced(sid, name, "w", me, 1, written, before),
            sessions::SessionStore::FencedWrite::written);
  ASSERT_EQ(store_->list_fenced_by(me).size(), 1u);
  EXPECT_EQ(store_->list_fenced_by(me)[0].session_id, sid);
  EXPECT_EQ(store_->list_fenced_by(me)[0].name, name);
  store_->clear_fences(me, {sid}, false);
  EXPECT_TRUE(store_->list_fenced_by(me).empty());
  EXPECT_EQ(store_->get_all(sid), (std::map<std::string, std::string>{{name, "w"}}));
}

}  // namespace
}  // namespace xact::mytest
