// SQLite as xact's last resource against a plain SQLite commit, in the same run, same file
// system, WAL with synchronous=FULL on both sides (one INSERT per transaction).
//
//   BM_Plain_Commit          sqlite3 by hand: BEGIN IMMEDIATE; INSERT; COMMIT (the baseline,
//                            `ratio_to_plain` = 1)
//   BM_Xact_OnlyParticipant  the same through xact, SQLite alone: one-phase COMMIT, no marker
//   BM_Xact_LastResource     SQLite as the last resource next to one prepared participant that
//                            costs nothing (an in-process no-op voter): the decision marker is
//                            INSERTed in the same transaction, and deleted afterwards on a
//                            connection with synchronous=NORMAL (no fsync)
//
//   BM_Paired_*              one plain transaction and one through xact per iteration, timed
//                            separately (`ratio`): the figures to quote
//
// The database goes to a directory of its own (bench_dir.hpp) under XACT_BENCH_DIR, or next to
// this executable (the build tree), removed afterwards: put it on the file system the application
// would use.
#include <benchmark/benchmark.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <xact/manager.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/transaction.hpp>

#include "bench_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::string& dir() {
  static std::string d;
  return d;
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

void report(benchmark::State& state, double per_txn) {
  const auto it = baselines().find("plain");
  if (it != baselines().end() && it->second > 0) {
    state.counters["ratio_to_plain"] = per_txn / it->second;
  }
}

std::string db_path() { return dir() + "/bench.db"; }

// A participant that prepares in no time, so that SQLite is committed as the last resource.
class NoopVoter : public xact::ResourceManager {
 public:
  std::string resource_name() const override { return "noop"; }
  void abort(xact::Transaction&) noexcept override {}
  void tpc_begin(xact::Transaction&) override {}
  void commit(xact::Transaction&) override {}
  xact::Vote tpc_vote(xact::Transaction&) override { return xact::Vote::yes; }
  void tpc_finish(xact::Transaction&) override {}
  void tpc_abort(xact::Transaction&) noexcept override {}
};

void must(int rc, sqlite3* db) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw std::runtime_error(sqlite3_errmsg(db));
  }
}

// BEGIN IMMEDIATE; INSERT; COMMIT with the sqlite3 API, statements compiled once.
class Plain {
 public:
  Plain() {
    must(sqlite3_open(db_path().c_str(), &db_), db_);
    must(sqlite3_exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", nullptr, nullptr,
                      nullptr),
         db_);
    sqlite3_prepare_v2(db_, "BEGIN IMMEDIATE", -1, &begin_, nullptr);
    sqlite3_prepare_v2(db_, "INSERT INTO t (v) VALUES (?)", -1, &insert_, nullptr);
    sqlite3_prepare_v2(db_, "COMMIT", -1, &commit_, nullptr);
  }
  ~Plain() {
    sqlite3_finalize(begin_);
    sqlite3_finalize(insert_);
    sqlite3_finalize(commit_);
    sqlite3_close(db_);
  }
  void txn() {
    must(sqlite3_step(begin_), db_);
    sqlite3_reset(begin_);
    sqlite3_bind_text(insert_, 1, "value", -1, SQLITE_STATIC);
    must(sqlite3_step(insert_), db_);
    sqlite3_reset(insert_);
    must(sqlite3_step(commit_), db_);
    sqlite3_reset(commit_);
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
};

void BM_Plain_Commit(benchmark::State& state) {
  Plain plain;
  LoopTimer timer(state);
  for (auto _ : state) plain.txn();
  baselines()["plain"] = timer.per_iteration();
  report(state, timer.per_iteration());
}

std::shared_ptr<xact::sqlite::SqliteResource> resource() {
  xact::sqlite::SqliteOptions o;
  o.path = db_path();
  o.name = "sqlite:bench";
  return xact::sqlite::SqliteResource::create(o);
}

void BM_Xact_OnlyParticipant(benchmark::State& state) {
  auto rm = resource();
  xact::ExplicitTransactionManager tm;
  LoopTimer timer(state);
  for (auto _ : state) {
    auto& txn = tm.begin();
    rm->execute(txn, "INSERT INTO t (v) VALUES (?)", {"value"});
    tm.commit();
  }
  report(state, timer.per_iteration());
}

void BM_Xact_LastResource(benchmark::State& state) {
  auto rm = resource();
  auto voter = std::make_shared<NoopVoter>();
  xact::ExplicitTransactionManager tm;
  LoopTimer timer(state);
  for (auto _ : state) {
    auto& txn = tm.begin();
    rm->execute(txn, "INSERT INTO t (v) VALUES (?)", {"value"});
    txn.join(voter);
    tm.commit();
  }
  report(state, timer.per_iteration());
}

// Paired: one plain transaction and one through xact per iteration, timed separately (`ratio`
// = xact / plain over the same iterations): robust against a shared machine's drift.
void paired(benchmark::State& state, bool last_resource) {
  Plain plain;
  auto rm = resource();
  auto voter = std::make_shared<NoopVoter>();
  xact::ExplicitTransactionManager tm;
  Clock::duration plain_time{}, xact_time{};
  for (auto _ : state) {
    const auto t0 = Clock::now();
    plain.txn();
    const auto t1 = Clock::now();
    auto& txn = tm.begin();
    rm->execute(txn, "INSERT INTO t (v) VALUES (?)", {"value"});
    if (last_resource) txn.join(voter);
    tm.commit();
    const auto t2 = Clock::now();
    plain_time += t1 - t0;
    xact_time += t2 - t1;
  }
  if (plain_time.count() > 0) {
    const double n = static_cast<double>(state.iterations());
    state.counters["ratio"] =
        static_cast<double>(xact_time.count()) / static_cast<double>(plain_time.count());
    state.counters["plain_us"] = std::chrono::duration<double, std::micro>(plain_time).count() / n;
    state.counters["xact_us"] = std::chrono::duration<double, std::micro>(xact_time).count() / n;
  }
}
void BM_Paired_OnlyParticipant(benchmark::State& state) { paired(state, false); }
void BM_Paired_LastResource(benchmark::State& state) { paired(state, true); }

BENCHMARK(BM_Paired_OnlyParticipant)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Paired_LastResource)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Plain_Commit)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_OnlyParticipant)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Xact_LastResource)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  const xact::bench::BenchDir own("sqlite-bench");
  dir() = own.path();
  resource()->open_connection()->execute(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
