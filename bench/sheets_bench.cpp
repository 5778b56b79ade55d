// Property sheets (xact::sheets) against the same statements issued by hand, per backend,
// interleaved in one run (one transaction of each per iteration, timed separately):
//
//   BM_Paired_SheetUpdate/<backend>   by hand: BEGIN (MariaDB: XA START); SELECT the row; UPDATE
//   ... SET pages = ?,
//                                     version = version + 1 WHERE sheet_id = ? AND version = ?;
//                                     COMMIT (XA END; XA COMMIT ONE PHASE), on a plain connection
//                                     of the same driver. Through xact: manager(txn).get(sheet,
//                                     key), set, commit (the resource is the only participant:
//                                     one-phase). `ratio` = xact / by hand.
//   BM_Paired_Load1000/<backend>      the sheets of 1,000 owners: SheetManager::load (one query
//                                     per 500 owners) against find() per owner, each in a
//                                     transaction of its own. `ratio` = per owner / batch.
//
// Backends: SQLite always (a file under XACT_BENCH_DIR, see bench_dir.hpp); PostgreSQL with
// XACT_PG_URI, MariaDB with XACT_MYSQL_* (scripts/servers.sh start DIR; source DIR/env.sh).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xact/manager.hpp>
#include <xact/mysql/mysql_resource.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/sheets/sheet_store.hpp>
#include <xact/sqlite/sqlite_resource.hpp>
#include <xact/transaction.hpp>

#include "bench_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using xact::sheets::PropertyType;
using xact::sheets::SheetDefinition;
using xact::sheets::SheetStore;

constexpr int kOwners = 1000;
const std::string kSheet = "bench_sheet";

struct Backend {
  std::string name;
  std::shared_ptr<xact::sql::SqlResource> resource;
  std::function<std::unique_ptr<xact::sql::Connection>()> plain;
  // The by-hand transaction's statements around the SELECT and UPDATE: what the adapter runs
  // for a one-phase branch, so that the difference is what xact::sheets adds.
  std::vector<std::string> begin, commit;
  std::shared_ptr<SheetStore> store;
  std::int64_t key = 0;  // the sheet the update benchmark changes
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

void prepare(Backend& b) {
  b.store = SheetStore::create(b.resource);
  b.store->define(SheetDefinition{
      kSheet,
      {{.name = "title", .type = PropertyType::text},
       {.name = "pages", .type = PropertyType::int64, .nullable = false, .default_value = 0}}});
  b.store->ensure(kSheet);
  b.plain()->execute("DELETE FROM " + kSheet);
  xact::ExplicitTransactionManager tm;
  auto& txn = tm.begin();
  auto& m = b.store->manager(txn);
  for (int i = 1; i <= kOwners; ++i) m.create(kSheet, {"main", i}).set("title", "t");
  b.key = m.create(kSheet, {"main", kOwners + 1}).key();
  tm.commit();
}

void paired_update(benchmark::State& state, Backend* b) {
  auto plain = b->plain();
  xact::ExplicitTransactionManager tm;
  Clock::duration hand{}, through{};
  auto by_hand = [&] {
    const auto t0 = Clock::now();
    for (const auto& s : b->begin) plain->execute(s);
    const auto row =
        plain->execute("SELECT version, pages FROM " + kSheet + " WHERE sheet_id = $1", {b->key});
    const auto version = row.one().get<std::int64_t>(0);
    const auto pages = row.one().get<std::int64_t>(1);
    const auto r = plain->execute("UPDATE " + kSheet +
                                      " SET pages = $1, version = version + 1 WHERE sheet_id = "
                                      "$2 AND version = $3",
                                  {pages + 1, b->key, version});
    if (r.affected_rows() != 1) state.SkipWithError("by hand: conflict");
    for (const auto& s : b->commit) plain->execute(s);
    hand += Clock::now() - t0;
  };
  auto through_xact = [&] {
    const auto t0 = Clock::now();
    auto& txn = tm.begin();
    auto& s = b->store->manager(txn).get(kSheet, b->key);
    s.set("pages", s.get<std::int64_t>("pages") + 1);
    tm.commit();
    through += Clock::now() - t0;
  };
  bool hand_first = true;
  for (auto _ : state) {
    // Alternate which goes first: the second of a pair may profit from (or pay for) the
    // first's commit flush.
    if (hand_first) {
      by_hand();
      through_xact();
    } else {
      through_xact();
      by_hand();
    }
    hand_first = !hand_first;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["ratio"] =
      static_cast<double>(through.count()) / static_cast<double>(hand.count());
  state.counters["hand_us"] = std::chrono::duration<double, std::micro>(hand).count() / n;
  state.counters["xact_us"] = std::chrono::duration<double, std::micro>(through).count() / n;
}

void paired_load(benchmark::State& state, Backend* b) {
  xact::ExplicitTransactionManager tm;
  std::vector<std::int64_t> oids;
  for (int i = 1; i <= kOwners; ++i) oids.push_back(i);
  Clock::duration batch{}, one_by_one{};
  for (auto _ : state) {
    const auto t0 = Clock::now();
    {
      auto& txn = tm.begin();
      const auto sheets = b->store->manager(txn).load(kSheet, "main", oids);
      if (sheets.size() != kOwners) state.SkipWithError("batch: missing sheets");
      tm.abort();
    }
    const auto t1 = Clock::now();
    {
      auto& txn = tm.begin();
      auto& m = b->store->manager(txn);
      for (auto oid : oids) {
        if (m.find(kSheet, {"main", oid}) == nullptr) state.SkipWithError("find: missing");
      }
      tm.abort();
    }
    const auto t2 = Clock::now();
    batch += t1 - t0;
    one_by_one += t2 - t1;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["ratio"] =
      static_cast<double>(one_by_one.count()) / static_cast<double>(batch.count());
  state.counters["batch_ms"] = std::chrono::duration<double, std::milli>(batch).count() / n;
  state.counters["per_owner_ms"] =
      std::chrono::duration<double, std::milli>(one_by_one).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  const xact::bench::BenchDir own("sheets-bench");
  std::vector<std::unique_ptr<Backend>> backends;
  {
    auto b = std::make_unique<Backend>();
    b->name = "sqlite";
    xact::sqlite::SqliteOptions o;
    o.path = own.path() + "/sheets.db";
    o.name = "sqlite:sheets-bench";
    auto r = xact::sqlite::SqliteResource::create(o);
    b->resource = r;
    b->plain = [r] { return std::unique_ptr<xact::sql::Connection>(r->open_connection()); };
    b->begin = {"BEGIN IMMEDIATE"};
    b->commit = {"COMMIT"};
    backends.push_back(std::move(b));
  }
  if (!env("XACT_PG_URI").empty()) {
    auto b = std::make_unique<Backend>();
    b->name = "postgresql";
    xact::postgres::PostgresOptions o;
    o.conninfo = env("XACT_PG_URI");
    o.name = "pg:sheets-bench";
    auto r = xact::postgres::PostgresResource::create(o);
    b->resource = r;
    b->plain = [r] { return std::unique_ptr<xact::sql::Connection>(r->open_connection()); };
    b->begin = {"BEGIN ISOLATION LEVEL REPEATABLE READ"};  // the adapter's branch isolation
    b->commit = {"COMMIT"};
    backends.push_back(std::move(b));
  }
  if (!env("XACT_MYSQL_HOST").empty()) {
    auto b = std::make_unique<Backend>();
    b->name = "mysql";
    xact::mysql::MySqlOptions o;
    o.connect.host = env("XACT_MYSQL_HOST");
    o.connect.port = static_cast<unsigned>(std::stoul(env("XACT_MYSQL_PORT")));
    o.connect.user = env("XACT_MYSQL_USER");
    o.connect.password = env("XACT_MYSQL_PASSWORD");
    o.connect.database = env("XACT_MYSQL_DB");
    o.name = "my:sheets-bench";
    auto r = xact::mysql::MySqlResource::create(o);
    b->resource = r;
    b->plain = [r] { return std::unique_ptr<xact::sql::Connection>(r->open_connection()); };
    // An XA branch committed in one phase, as the adapter does (session: SERIALIZABLE).
    b->begin = {"XA START 'sheets_bench_hand'"};
    b->commit = {"XA END 'sheets_bench_hand'", "XA COMMIT 'sheets_bench_hand' ONE PHASE"};
    backends.push_back(std::move(b));
  }
  for (auto& b : backends) {
    prepare(*b);
    benchmark::RegisterBenchmark(("BM_Paired_SheetUpdate/" + b->name).c_str(), paired_update,
                                 b.get())
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("BM_Paired_Load1000/" + b->name).c_str(), paired_load, b.get())
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (auto& b : backends) {
    b->plain()->execute("DROP TABLE IF EXISTS " + kSheet);
    b->plain()->execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1", {kSheet});
  }
  return 0;
}
