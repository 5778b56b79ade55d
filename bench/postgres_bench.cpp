// A two-participant transaction over two PostgreSQL databases of one cluster (one UPDATE
// each), through xact and by hand with libpqxx, in the same run against the same server.
//
// What one transaction is:
//   by hand, commit   BEGIN; UPDATE; on both, then COMMIT on both: no atomicity across the two
//                     databases (a crash between the COMMITs splits them)
//   by hand, 2PC      BEGIN; UPDATE; on both, PREPARE TRANSACTION on both, COMMIT PREPARED on
//                     both: what xact does, written out (the baseline)
//   xact, 2PC         the same through xact: two PostgresResources, one transaction, a
//                     DecisionLog on disk (one forced commit record per transaction)
//   ... one phase     one database alone: BEGIN; UPDATE; COMMIT by hand, against xact's
//                     one-phase commit of a single participant
//
// Benchmarks:
//   BM_Interleaved_2PC       one iteration = one transaction of each of the three two-database
//                            kinds, in rotating order; counters: microseconds per transaction
//                            of each (`hand_commit_us`, `hand_2pc_us`, `xact_2pc_us`) and
//                            `ratio_to_2pc` = xact / by-hand 2PC, `ratio_to_commit`. The
//                            ratios to read: fsync latency on a shared machine drifts by
//                            several times within a minute, and interleaving transaction by
//                            transaction exposes both sides to the same disk.
//   BM_Interleaved_OnePhase  the same for one database: `hand_us`, `xact_us`, `ratio`
//   BM_ByHand_Commit, BM_ByHand_2PC, BM_Xact_2PC, BM_Xact_2PC_NoLog (no decision log: xact's
//   share without its one forced write; never run production like this),
//   BM_Xact_2PC_ReadOnlyDetection (PostgresOptions::detect_read_only: one more round trip per
//   branch), BM_ByHand_OnePhase, BM_Xact_OnePhase: each kind alone, for absolute figures.
// Every benchmark measures wall-clock time (the work is round trips and fsyncs, not CPU). Both
// sides use connections opened once, as a pool gives them.
//
// Reads XACT_PG_URI and XACT_PG_URI2 (scripts/servers.sh start DIR; source DIR/env.sh); without
// them it prints how to set them and exits 0. The decision log goes to a directory of its own
// (bench_dir.hpp) under XACT_BENCH_DIR, or next to this executable (the build tree), removed
// afterwards.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include <pqxx/pqxx>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/postgres/postgres_resource.hpp>

#include "bench_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

struct Setup {
  std::string uri1, uri2;
  std::string table;
  std::string log_dir;
};

Setup& setup() {
  static Setup s;
  return s;
}

std::string update_sql() { return "UPDATE " + setup().table + " SET n = n + 1 WHERE id = $1"; }

// --- by hand ---------------------------------------------------------------------------------

void run(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

class Hand {
 public:
  void commit() {
    begin_and_update(c1_);
    begin_and_update(c2_);
    run(c1_, "COMMIT");
    run(c2_, "COMMIT");
  }
  void two_phase() {
    const std::string gid1 = "'" + prefix_ + std::to_string(++n_) + "-a'";
    const std::string gid2 = "'" + prefix_ + std::to_string(n_) + "-b'";
    begin_and_update(c1_);
    begin_and_update(c2_);
    run(c1_, "PREPARE TRANSACTION " + gid1);
    run(c2_, "PREPARE TRANSACTION " + gid2);
    run(c1_, "COMMIT PREPARED " + gid1);
    run(c2_, "COMMIT PREPARED " + gid2);
  }
  void one_phase() {
    begin_and_update(c1_);
    run(c1_, "COMMIT");
  }

 private:
  void begin_and_update(pqxx::connection& c) {
    run(c, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    pqxx::nontransaction tx(c);
    tx.exec_params(sql_, 1);
  }

  pqxx::connection c1_{setup().uri1};
  pqxx::connection c2_{setup().uri2};
  const std::string sql_ = update_sql();
  const std::string prefix_ = "bench-" + std::to_string(::getpid()) + "-";
  std::uint64_t n_ = 0;
};

// --- through xact ----------------------------------------------------------------------------

class Xact {
 public:
  struct Options {
    bool log = true;
    bool detect_read_only = false;
  };
  explicit Xact(Options o) {
    if (o.log) {
      std::filesystem::remove_all(setup().log_dir);
      log_ = xact::DecisionLog::open(xact::io::Env::posix(), setup().log_dir);
    }
    xact::ManagerOptions mo{log_, std::nullopt};
    mo.allow_unlogged_decisions = !o.log;  // the "no log" row measures exactly that risk
    tm_ = std::make_unique<xact::ExplicitTransactionManager>(std::move(mo));
    a_ = resource(setup().uri1, "pg:bench1", o.detect_read_only);
    b_ = resource(setup().uri2, "pg:bench2", o.detect_read_only);
    two_phase();  // opens both pools' connections, as the by-hand side connects first
  }
  ~Xact() {
    tm_.reset();
    if (log_) {
      log_.reset();
      std::filesystem::remove_all(setup().log_dir);
    }
  }
  void two_phase() {
    auto& txn = tm_->begin();
    a_->execute(txn, sql_, {1});
    b_->execute(txn, sql_, {1});
    tm_->commit();
  }
  void one_phase() {
    auto& txn = tm_->begin();
    a_->execute(txn, sql_, {1});
    tm_->commit();
  }
  std::uint64_t forced_writes() const { return log_ ? log_->stats().forced_writes : 0; }

 private:
  static std::shared_ptr<xact::postgres::PostgresResource> resource(const std::string& uri,
                                                                    const std::string& name,
                                                                    bool detect_read_only) {
    xact::postgres::PostgresOptions o;
    o.conninfo = uri;
    o.name = name;
    o.detect_read_only = detect_read_only;
    return xact::postgres::PostgresResource::create(o);
  }

  std::shared_ptr<xact::DecisionLog> log_;
  std::unique_ptr<xact::ExplicitTransactionManager> tm_;
  std::shared_ptr<xact::postgres::PostgresResource> a_, b_;
  const std::string sql_ = update_sql();
};

// --- interleaved: the ratios ------------------------------------------------------------------

template <std::size_t N>
class Interleaver {
 public:
  // Runs work[(i + k) % N] for k = 0..N-1, timing each.
  template <class... F>
  void round(std::uint64_t i, F&&... work) {
    std::array<std::function<void()>, N> fs{std::forward<F>(work)...};
    for (std::size_t k = 0; k < N; ++k) {
      const std::size_t which = (i + k) % N;
      const auto start = Clock::now();
      fs[which]();
      total_[which] += Clock::now() - start;
    }
  }
  double us(std::size_t which, std::uint64_t rounds) const {
    return std::chrono::duration<double, std::micro>(total_[which]).count() /
           static_cast<double>(rounds);
  }

 private:
  std::array<Clock::duration, N> total_{};
};

void BM_Interleaved_2PC(benchmark::State& state) {
  Hand hand;
  Xact xact({});
  Xact::Options no_log;
  no_log.log = false;
  Xact unlogged(no_log);
  Interleaver<4> t;
  std::uint64_t i = 0;
  for (auto _ : state) {
    t.round(
        i++, [&] { hand.commit(); }, [&] { hand.two_phase(); }, [&] { xact.two_phase(); },
        [&] { unlogged.two_phase(); });
  }
  state.counters["hand_commit_us"] = t.us(0, i);
  state.counters["hand_2pc_us"] = t.us(1, i);
  state.counters["xact_2pc_us"] = t.us(2, i);
  state.counters["xact_nolog_us"] = t.us(3, i);
  state.counters["ratio_to_2pc"] = t.us(2, i) / t.us(1, i);
  state.counters["ratio_to_commit"] = t.us(2, i) / t.us(0, i);
}

void BM_Interleaved_OnePhase(benchmark::State& state) {
  Hand hand;
  Xact xact({});
  Interleaver<2> t;
  std::uint64_t i = 0;
  for (auto _ : state) {
    t.round(
        i++, [&] { hand.one_phase(); }, [&] { xact.one_phase(); });
  }
  state.counters["hand_us"] = t.us(0, i);
  state.counters["xact_us"] = t.us(1, i);
  state.counters["ratio"] = t.us(1, i) / t.us(0, i);
}

// --- each kind alone -----------------------------------------------------------------------------

void BM_ByHand_Commit(benchmark::State& state) {
  Hand hand;
  for (auto _ : state) hand.commit();
}

void BM_ByHand_2PC(benchmark::State& state) {
  Hand hand;
  for (auto _ : state) hand.two_phase();
}

void xact_2pc(benchmark::State& state, Xact::Options options) {
  Xact xact(options);
  const auto forced_before = xact.forced_writes();
  for (auto _ : state) xact.two_phase();
  if (options.log) {
    state.counters["log_syncs_per_txn"] =
        static_cast<double>(xact.forced_writes() - forced_before) /
        static_cast<double>(state.iterations());
  }
}

void BM_Xact_2PC(benchmark::State& state) { xact_2pc(state, {}); }
void BM_Xact_2PC_NoLog(benchmark::State& state) {
  Xact::Options o;
  o.log = false;
  xact_2pc(state, o);
}
void BM_Xact_2PC_ReadOnlyDetection(benchmark::State& state) {
  Xact::Options o;
  o.detect_read_only = true;
  xact_2pc(state, o);
}

void BM_ByHand_OnePhase(benchmark::State& state) {
  Hand hand;
  for (auto _ : state) hand.one_phase();
}

void BM_Xact_OnePhase(benchmark::State& state) {
  Xact xact({});
  for (auto _ : state) xact.one_phase();
}

BENCHMARK(BM_Interleaved_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Interleaved_OnePhase)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_Commit)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_2PC)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_2PC_NoLog)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_2PC_ReadOnlyDetection)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ByHand_OnePhase)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_OnePhase)->UseRealTime()->Unit(benchmark::kMicrosecond);

void create_tables() {
  for (const auto& uri : {setup().uri1, setup().uri2}) {
    pqxx::connection c(uri);
    run(c, "DROP TABLE IF EXISTS " + setup().table);
    run(c, "CREATE TABLE " + setup().table + " (id int PRIMARY KEY, n bigint NOT NULL)");
    run(c, "INSERT INTO " + setup().table + " VALUES (1, 0)");
  }
}

void drop_tables() {
  for (const auto& uri : {setup().uri1, setup().uri2}) {
    try {
      pqxx::connection c(uri);
      run(c, "DROP TABLE IF EXISTS " + setup().table);
    } catch (const std::exception& e) {
      std::cerr << "postgres_bench: cannot drop " << setup().table << ": " << e.what() << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  setup().uri1 = env_or_empty("XACT_PG_URI");
  setup().uri2 = env_or_empty("XACT_PG_URI2");
  if (setup().uri1.empty() || setup().uri2.empty()) {
    std::cout << "postgres_bench: skipped: set XACT_PG_URI and XACT_PG_URI2 to two databases of "
                 "one PostgreSQL cluster with max_prepared_transactions > 0 (bash "
                 "scripts/servers.sh start DIR && source DIR/env.sh)\n";
    return 0;
  }
  const xact::bench::BenchDir own("postgres-bench");
  setup().log_dir = own / "log";
  setup().table = "xact_bench_" + std::to_string(::getpid());
  create_tables();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  drop_tables();
  return 0;
}
