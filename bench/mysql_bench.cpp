// Two-phase commit across PostgreSQL and MariaDB (one UPDATE each), through xact and by hand, in
// the same run against the same servers.
//
//   BM_ByHand_2PC        PostgreSQL: BEGIN; UPDATE; PREPARE TRANSACTION; MariaDB: XA START;
//                        UPDATE; XA END; XA PREPARE; then COMMIT PREPARED and XA COMMIT: the
//                        baseline (`ratio_to_2pc` = 1). No decision is recorded anywhere: a crash
//                        between the two commits cannot be recovered.
//   BM_Xact_2PC          the same through xact: a PostgresResource and a MySqlResource in one
//                        transaction, a DecisionLog on disk (one forced commit record each)
//   BM_Xact_2PC_NoLog    the same without a decision log: xact's own cost, apart from making
//                        the decision durable
//   BM_ByHand_MySql2PC / BM_Xact_MySql2PC(_NoLog)   MariaDB alone, two databases
//                        (XACT_MYSQL_DB, XACT_MYSQL_DB2): the XA statements by hand against
//                        xact, which isolates this adapter from the PostgreSQL one
//                        (`ratio_to_my2pc`)
//   BM_ByHand_MySqlCommit / BM_Xact_MySqlOnePhase   MariaDB alone: START TRANSACTION; UPDATE;
//                        COMMIT by hand, against xact's XA START ... XA COMMIT ONE PHASE
//                        (`ratio_to_1pc`)
//
//   BM_Paired_*          one transaction by hand and one through xact per iteration, timed
//                        separately (`ratio` = xact / by hand): robust against the drift of a
//                        shared machine, the figures to quote
//
// Both sides use connections opened once (as a pool gives them), the same isolation levels
// (PostgreSQL REPEATABLE READ, MariaDB SERIALIZABLE) and server-side prepared UPDATEs.
// Reads XACT_PG_URI and XACT_MYSQL_* (scripts/servers.sh start DIR; source DIR/env.sh); without
// them it says so and exits 0. The decision log goes to a directory of its own (bench_dir.hpp)
// under XACT_BENCH_DIR, or next to this executable (the build tree), removed afterwards; it never
// writes into XACT_BENCH_DIR itself, which may hold the user's files.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include <cppconn/connection.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/statement.h>
#include <pqxx/pqxx>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/mysql/mysql_resource.hpp>
#include <xact/postgres/postgres_resource.hpp>

#include "bench_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

struct Setup {
  std::string pg_uri;
  xact::mysql::ConnectOptions my;
  xact::mysql::ConnectOptions my2;  // the second database (XACT_MYSQL_DB2)
  std::string table;
  std::string log_dir;
};
Setup& setup() {
  static Setup s;
  return s;
}
std::map<std::string, double>& baselines() {
  static std::map<std::string, double> m;
  return m;
}

class LoopTimer {
 public:
  explicit LoopTimer(benchmark::State& state) : state_(state), start_(Clock::now()) {}
  double per_iteration() const {
    const std::chrono::duration<double> d = Clock::now() - start_;
    return state_.iterations() == 0 ? 0 : d.count() / static_cast<double>(state_.iterations());
  }

 private:
  benchmark::State& state_;
  Clock::time_point start_;
};

void report(benchmark::State& state, double per_txn, const char* baseline, const char* counter) {
  const auto it = baselines().find(baseline);
  if (it != baselines().end() && it->second > 0) state.counters[counter] = per_txn / it->second;
}

// MariaDB by hand, over the connection xact would use (Connector/C++ underneath).
struct MyHand {
  explicit MyHand(const xact::mysql::ConnectOptions& o = setup().my)
      : conn(xact::mysql::MySqlConnection::open(o, "bench")) {}
  std::unique_ptr<xact::mysql::MySqlConnection> conn;
  std::unique_ptr<::sql::Statement> st{conn->native().createStatement()};
  std::unique_ptr<::sql::PreparedStatement> update{
      conn->native().prepareStatement("UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?")};
  void run_update() {
    update->setInt64(1, 1);
    update->executeUpdate();
  }
};

void pg_run(pqxx::connection& c, const std::string& sql) { pqxx::nontransaction(c).exec(sql); }
void pg_update(pqxx::connection& c) {
  pqxx::nontransaction(c).exec_params("UPDATE " + setup().table + " SET n = n + 1 WHERE id = $1",
                                      1);
}

std::string next_id() {
  static std::uint64_t n = 0;
  return "bench-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

void hand_2pc(pqxx::connection& pg, MyHand& my) {
  const std::string id = next_id();
  pg_run(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ");
  pg_update(pg);
  my.st->execute("XA START '" + id + "'");
  my.run_update();
  my.st->execute("XA END '" + id + "'");
  pg_run(pg, "PREPARE TRANSACTION '" + id + "'");
  my.st->execute("XA PREPARE '" + id + "'");
  pg_run(pg, "COMMIT PREPARED '" + id + "'");
  my.st->execute("XA COMMIT '" + id + "'");
}

void hand_my2pc(MyHand& a, MyHand& b) {
  const std::string id = next_id();
  const std::string x = "'" + id + "','a'", y = "'" + id + "','b'";
  a.st->execute("XA START " + x);
  a.run_update();
  b.st->execute("XA START " + y);
  b.run_update();
  a.st->execute("XA END " + x);
  a.st->execute("XA PREPARE " + x);
  b.st->execute("XA END " + y);
  b.st->execute("XA PREPARE " + y);
  a.st->execute("XA COMMIT " + x);
  b.st->execute("XA COMMIT " + y);
}

void BM_ByHand_2PC(benchmark::State& state) {
  pqxx::connection pg(setup().pg_uri);
  MyHand my;
  LoopTimer timer(state);
  for (auto _ : state) hand_2pc(pg, my);
  baselines()["2pc"] = timer.per_iteration();
  report(state, timer.per_iteration(), "2pc", "ratio_to_2pc");
}

// The manager of an xact row: with the decision log, or (the "no log" rows, which measure the
// coordinator without its forced write) without one, accepting the risk that brings.
xact::ManagerOptions manager_options(std::shared_ptr<xact::DecisionLog> log) {
  xact::ManagerOptions o{log, std::nullopt};
  o.allow_unlogged_decisions = !log;
  return o;
}

// with_log = false: no decision log, so no forced commit record (the coordinator still runs the
// same two-phase commit): what xact's own code costs, apart from making the decision durable.
void xact_2pc(benchmark::State& state, bool with_log) {
  std::filesystem::remove_all(setup().log_dir);
  {
    std::shared_ptr<xact::DecisionLog> log;
    if (with_log) log = xact::DecisionLog::open(xact::io::Env::posix(), setup().log_dir);
    xact::postgres::PostgresOptions po;
    po.conninfo = setup().pg_uri;
    po.name = "pg:bench";
    auto pg = xact::postgres::PostgresResource::create(po);
    xact::mysql::MySqlOptions mo;
    mo.connect = setup().my;
    mo.name = "mysql:bench";
    auto my = xact::mysql::MySqlResource::create(mo);
    xact::ExplicitTransactionManager tm(manager_options(log));
    const std::string pg_sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = $1";
    const std::string my_sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?";
    LoopTimer timer(state);
    for (auto _ : state) {
      auto& txn = tm.begin();
      pg->execute(txn, pg_sql, {1});
      my->execute(txn, my_sql, {1});
      tm.commit();
    }
    report(state, timer.per_iteration(), "2pc", "ratio_to_2pc");
  }
  std::filesystem::remove_all(setup().log_dir);
}

void BM_Xact_2PC(benchmark::State& state) { xact_2pc(state, true); }
void BM_Xact_2PC_NoLog(benchmark::State& state) { xact_2pc(state, false); }

// MariaDB alone, two databases: the XA statements by hand against xact (isolates the adapter).
void BM_ByHand_MySql2PC(benchmark::State& state) {
  MyHand a(setup().my);
  MyHand b(setup().my2);
  LoopTimer timer(state);
  for (auto _ : state) hand_my2pc(a, b);
  baselines()["my2pc"] = timer.per_iteration();
  report(state, timer.per_iteration(), "my2pc", "ratio_to_my2pc");
}

void xact_my2pc(benchmark::State& state, bool with_log) {
  std::filesystem::remove_all(setup().log_dir);
  {
    std::shared_ptr<xact::DecisionLog> log;
    if (with_log) log = xact::DecisionLog::open(xact::io::Env::posix(), setup().log_dir);
    xact::mysql::MySqlOptions mo;
    mo.connect = setup().my;
    mo.name = "mysql:bench1";
    auto a = xact::mysql::MySqlResource::create(mo);
    mo.connect = setup().my2;
    mo.name = "mysql:bench2";
    auto b = xact::mysql::MySqlResource::create(mo);
    xact::ExplicitTransactionManager tm(manager_options(log));
    const std::string sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?";
    LoopTimer timer(state);
    for (auto _ : state) {
      auto& txn = tm.begin();
      a->execute(txn, sql, {1});
      b->execute(txn, sql, {1});
      tm.commit();
    }
    report(state, timer.per_iteration(), "my2pc", "ratio_to_my2pc");
  }
  std::filesystem::remove_all(setup().log_dir);
}
void BM_Xact_MySql2PC(benchmark::State& state) { xact_my2pc(state, true); }
void BM_Xact_MySql2PC_NoLog(benchmark::State& state) { xact_my2pc(state, false); }

void BM_ByHand_MySqlCommit(benchmark::State& state) {
  MyHand my;
  LoopTimer timer(state);
  for (auto _ : state) {
    my.st->execute("START TRANSACTION");
    my.run_update();
    my.st->execute("COMMIT");
  }
  baselines()["1pc"] = timer.per_iteration();
  report(state, timer.per_iteration(), "1pc", "ratio_to_1pc");
}

void BM_Xact_MySqlOnePhase(benchmark::State& state) {
  xact::mysql::MySqlOptions mo;
  mo.connect = setup().my;
  mo.name = "mysql:bench";
  auto my = xact::mysql::MySqlResource::create(mo);
  xact::ExplicitTransactionManager tm;
  const std::string sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?";
  LoopTimer timer(state);
  for (auto _ : state) {
    auto& txn = tm.begin();
    my->execute(txn, sql, {1});
    tm.commit();
  }
  report(state, timer.per_iteration(), "1pc", "ratio_to_1pc");
}

// Paired: each iteration runs one transaction by hand and one through xact, timing each, so that
// the machine's drift (a shared VM's neighbours, the disk) hits both sides alike. `ratio` = total
// xact time / total by-hand time over the same iterations. The figure to quote.
template <class Hand, class Xact>
void paired(benchmark::State& state, Hand&& hand, Xact&& through_xact) {
  Clock::duration hand_time{}, xact_time{};
  for (auto _ : state) {
    auto t0 = Clock::now();
    hand();
    auto t1 = Clock::now();
    through_xact();
    auto t2 = Clock::now();
    hand_time += t1 - t0;
    xact_time += t2 - t1;
  }
  if (hand_time.count() > 0) {
    state.counters["ratio"] =
        static_cast<double>(xact_time.count()) / static_cast<double>(hand_time.count());
    const double n = static_cast<double>(state.iterations());
    state.counters["hand_us"] = std::chrono::duration<double, std::micro>(hand_time).count() / n;
    state.counters["xact_us"] = std::chrono::duration<double, std::micro>(xact_time).count() / n;
  }
}

void paired_pg_my(benchmark::State& state, bool with_log) {
  std::filesystem::remove_all(setup().log_dir);
  {
    pqxx::connection pg_hand(setup().pg_uri);
    MyHand my_hand;
    std::shared_ptr<xact::DecisionLog> log;
    if (with_log) log = xact::DecisionLog::open(xact::io::Env::posix(), setup().log_dir);
    xact::postgres::PostgresOptions po;
    po.conninfo = setup().pg_uri;
    po.name = "pg:bench";
    auto pg = xact::postgres::PostgresResource::create(po);
    xact::mysql::MySqlOptions mo;
    mo.connect = setup().my;
    mo.name = "mysql:bench";
    auto my = xact::mysql::MySqlResource::create(mo);
    xact::ExplicitTransactionManager tm(manager_options(log));
    const std::string pg_sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = $1";
    const std::string my_sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?";
    paired(
        state, [&] { hand_2pc(pg_hand, my_hand); },
        [&] {
          auto& txn = tm.begin();
          pg->execute(txn, pg_sql, {1});
          my->execute(txn, my_sql, {1});
          tm.commit();
        });
  }
  std::filesystem::remove_all(setup().log_dir);
}
void BM_Paired_2PC(benchmark::State& state) { paired_pg_my(state, true); }
void BM_Paired_2PC_NoLog(benchmark::State& state) { paired_pg_my(state, false); }

void paired_my(benchmark::State& state, bool with_log) {
  std::filesystem::remove_all(setup().log_dir);
  {
    MyHand a_hand(setup().my);
    MyHand b_hand(setup().my2);
    std::shared_ptr<xact::DecisionLog> log;
    if (with_log) log = xact::DecisionLog::open(xact::io::Env::posix(), setup().log_dir);
    xact::mysql::MySqlOptions mo;
    mo.connect = setup().my;
    mo.name = "mysql:bench1";
    auto a = xact::mysql::MySqlResource::create(mo);
    mo.connect = setup().my2;
    mo.name = "mysql:bench2";
    auto b = xact::mysql::MySqlResource::create(mo);
    xact::ExplicitTransactionManager tm(manager_options(log));
    const std::string sql = "UPDATE " + setup().table + " SET n = n + 1 WHERE id = ?";
    paired(
        state, [&] { hand_my2pc(a_hand, b_hand); },
        [&] {
          auto& txn = tm.begin();
          a->execute(txn, sql, {1});
          b->execute(txn, sql, {1});
          tm.commit();
        });
  }
  std::filesystem::remove_all(setup().log_dir);
}
void BM_Paired_MySql2PC(benchmark::State& state) { paired_my(state, true); }
void BM_Paired_MySql2PC_NoLog(benchmark::State& state) { paired_my(state, false); }

BENCHMARK(BM_Paired_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Paired_2PC_NoLog)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Paired_MySql2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Paired_MySql2PC_NoLog)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_2PC_NoLog)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_MySql2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_MySql2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_MySql2PC_NoLog)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_MySqlCommit)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_MySqlOnePhase)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  Setup& s = setup();
  s.pg_uri = env("XACT_PG_URI");
  if (s.pg_uri.empty() || env("XACT_MYSQL_HOST").empty()) {
    std::cout << "xact_bench_mysql: set XACT_PG_URI and XACT_MYSQL_* (scripts/servers.sh start "
                 "DIR; source DIR/env.sh)\n";
    return 0;
  }
  s.my.host = env("XACT_MYSQL_HOST");
  s.my.port = static_cast<unsigned>(std::stoul(env("XACT_MYSQL_PORT")));
  s.my.user = env("XACT_MYSQL_USER");
  s.my.password = env("XACT_MYSQL_PASSWORD");
  s.my.database = env("XACT_MYSQL_DB");
  s.my2 = s.my;
  s.my2.database = env("XACT_MYSQL_DB2").empty() ? s.my.database : env("XACT_MYSQL_DB2");
  s.table = "xact_bench_" + std::to_string(::getpid());
  const xact::bench::BenchDir own("mysql-bench");
  s.log_dir = own / "log";
  {
    pqxx::connection pg(s.pg_uri);
    pg_run(pg, "CREATE TABLE " + s.table + " (id int PRIMARY KEY, n bigint NOT NULL)");
    pg_run(pg, "INSERT INTO " + s.table + " VALUES (1, 0)");
    auto my = xact::mysql::MySqlConnection::open(s.my, "bench");
    my->execute("CREATE TABLE " + s.table +
                " (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB");
    my->execute("INSERT INTO " + s.table + " VALUES (1, 0)");
    auto my2 = xact::mysql::MySqlConnection::open(s.my2, "bench");
    my2->execute("CREATE TABLE IF NOT EXISTS " + s.table +
                 " (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB");
    my2->execute("REPLACE INTO " + s.table + " VALUES (1, 0)");
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  {
    pqxx::connection pg(s.pg_uri);
    pg_run(pg, "DROP TABLE IF EXISTS " + s.table);
    xact::mysql::MySqlConnection::open(s.my, "bench")->execute("DROP TABLE IF EXISTS " + s.table);
    xact::mysql::MySqlConnection::open(s.my2, "bench")->execute("DROP TABLE IF EXISTS " + s.table);
  }
  return 0;
}
