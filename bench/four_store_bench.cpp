// A bank transfer across all four stores at 1, 4 and 8 threads: objects on the file storage
// (a per-thread counter object), PostgreSQL (debit a hot account), MariaDB (credit a hot account)
// and SQLite as the last resource (an audit row whose generated key comes back at once, with
// RETURNING). Every transfer runs in xact::Attempts (retries on conflicts), with a decision log.
//
// What it compares, in the same run, alternating rounds (ratios of figures measured minutes apart
// on a shared machine mean little):
//   order   sqlite_first: the SQLite statement before the others (a natural handler order);
//           sqlite_last:  the SQLite statement after them (the order that was fast)
//   gate    queued: SqliteOptions::queue_writers = true (the default: this process's writers
//           take SQLite's write lock in turn, woken when the holder ends; a transaction holding
//           other stores' branches gives way to a running holder);
//           busy:   queue_writers = false (waiting left to SQLite's busy handler, as before)
// Printed per thread count: commits/s, p50/p99 latency of a transfer (retries included),
// retries per commit, and the ratios first/last and queued/busy.
//
// Reads XACT_PG_URI and XACT_MYSQL_* (scripts/servers.sh start DIR; source DIR/env.sh); without
// them it says so and exits 0. Files (decision log, object file, SQLite database) go to a
// directory of its own under XACT_BENCH_DIR (bench_dir.hpp), removed at the end.
// Options: --seconds=S per measurement (default 2), --rounds=N (default 2), --accounts=K hot
// accounts per SQL store (default 10), --threads=1,4,8.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/program_options.hpp>
#include <pqxx/pqxx>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/mysql/mysql_resource.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/postgres/postgres_resource.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>

#include "bench_dir.hpp"

namespace {

namespace os = xact::objectstore;
using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

struct Config {
  double seconds = 2;
  int rounds = 2;
  int accounts = 10;
  std::vector<int> threads{1, 4, 8};
  std::string pg_uri;
  xact::mysql::ConnectOptions my;
  std::string table;
};

struct Cell {
  std::uint64_t commits = 0;
  std::uint64_t retries = 0;
  std::uint64_t gave_up = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;
};

// The stores, opened once per (round, configuration) so that each run starts alike.
struct Stores {
  std::shared_ptr<xact::DecisionLog> log;
  std::shared_ptr<os::DB> db;
  std::shared_ptr<xact::postgres::PostgresResource> pg;
  std::shared_ptr<xact::mysql::MySqlResource> my;
  std::shared_ptr<xact::sqlite::SqliteResource> lite;
};

Stores open_stores(const Config& c, const std::string& dir, bool queue_writers, int threads) {
  Stores s;
  s.log = xact::DecisionLog::open(xact::io::Env::posix(), dir + "/log");
  os::DBOptions dbo;
  dbo.name = "bench";
  s.db = os::DB::open(os::FileStorage::open(dir + "/objects.xfs"), dbo);
  xact::postgres::PostgresOptions po;
  po.conninfo = c.pg_uri;
  po.name = "pg:bench";
  po.pool.max_size = static_cast<std::size_t>(threads) + 1;
  s.pg = xact::postgres::PostgresResource::create(po);
  xact::mysql::MySqlOptions mo;
  mo.connect = c.my;
  mo.name = "my:bench";
  mo.pool.max_size = static_cast<std::size_t>(threads) + 1;
  s.my = xact::mysql::MySqlResource::create(mo);
  xact::sqlite::SqliteOptions so;
  so.path = dir + "/audit.db";
  so.name = "sqlite:bench";
  so.queue_writers = queue_writers;
  so.pool.max_size = static_cast<std::size_t>(threads) + 1;
  s.lite = xact::sqlite::SqliteResource::create(so);
  s.lite->open_connection()->execute(
      "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER)");
  return s;
}

Cell run_cell(const Config& c, const std::string& dir, bool sqlite_first, bool queue_writers,
              int threads) {
  Stores s = open_stores(c, dir, queue_writers, threads);
  {
    // One counter object per thread: the object store takes part without conflicts of its own.
    xact::ExplicitTransactionManager tm(xact::ManagerOptions{s.log, std::nullopt});
    os::ConnectionOptions co;
    co.manager = &tm;
    auto conn = s.db->open(co);
    tm.begin();
    for (int t = 0; t < threads; ++t) {
      const std::string key = "t" + std::to_string(t);
      if (!conn->root()->contains(key)) {
        auto m = std::make_shared<os::PersistentMap>();
        m->set("n", std::int64_t{0});
        conn->root()->set(key, m);
      }
    }
    tm.commit();
  }
  const std::string debit = "UPDATE " + c.table + " SET bal = bal - 1 WHERE id = $1";
  const std::string credit = "UPDATE " + c.table + " SET bal = bal + 1 WHERE id = $1";
  const std::string audit = "INSERT INTO audit (src, dst) VALUES ($1, $2) RETURNING id";

  std::atomic<bool> stop{false};
  std::vector<Cell> per_thread(static_cast<std::size_t>(threads));
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      Cell& mine = per_thread[static_cast<std::size_t>(t)];
      std::mt19937 rng(static_cast<unsigned>(t * 7919 + 1));
      std::uniform_int_distribution<int> account(1, c.accounts);
      xact::ExplicitTransactionManager tm(xact::ManagerOptions{s.log, std::nullopt});
      os::ConnectionOptions co;
      co.manager = &tm;
      auto conn = s.db->open(co);
      const std::string key = "t" + std::to_string(t);
      xact::RetryPolicy policy;
      policy.attempts = 1000;
      policy.initial_backoff = std::chrono::microseconds(500);
      policy.max_backoff = std::chrono::microseconds(50'000);
      while (!stop.load(std::memory_order_relaxed)) {
        const int src = account(rng);
        const int dst = account(rng);
        const auto t0 = Clock::now();
        int attempts = 0;
        try {
          for (xact::Attempts a(tm, policy); a.next();) {
            ++attempts;
            try {
              auto& txn = a.transaction();
              auto write_sqlite = [&] {
                const auto id = s.lite->execute(txn, audit, {src, dst}).one().get<std::int64_t>(0);
                if (id <= 0) std::abort();  // the generated key came back at once
              };
              if (sqlite_first) write_sqlite();
              auto counter = conn->root()->get<os::PersistentMap>(key);
              counter->set("n", counter->at("n").as_int() + 1);
              s.pg->execute(txn, debit, {src});
              s.my->execute(txn, credit, {dst});
              if (!sqlite_first) write_sqlite();
              a.commit();
            } catch (...) {
              a.failed(std::current_exception());
            }
          }
          ++mine.commits;
          mine.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        } catch (const std::exception& e) {
          ++mine.gave_up;
          std::fprintf(stderr, "four_store_bench: a transfer gave up: %s\n", e.what());
        }
        mine.retries += static_cast<std::uint64_t>(attempts - 1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(c.seconds));
  stop = true;
  for (auto& w : workers) w.join();
  Cell total;
  total.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& p : per_thread) {
    total.commits += p.commits;
    total.retries += p.retries;
    total.gave_up += p.gave_up;
    total.latencies_ms.insert(total.latencies_ms.end(), p.latencies_ms.begin(),
                              p.latencies_ms.end());
  }
  return total;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

void run_sql(pqxx::connection& pg, const std::string& sql) { pqxx::nontransaction(pg).exec(sql); }

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  Config c;
  std::string threads = "1,4,8";
  po::options_description desc("four_store_bench options");
  desc.add_options()("help", "this text")("seconds", po::value(&c.seconds)->default_value(2),
                                          "seconds per measurement")(
      "rounds", po::value(&c.rounds)->default_value(2), "alternating rounds")(
      "accounts", po::value(&c.accounts)->default_value(10), "hot accounts per SQL store")(
      "threads", po::value(&threads)->default_value("1,4,8"), "thread counts");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "four_store_bench: %s\n", e.what());
    return 2;
  }
  if (vm.count("help") != 0) {
    std::cout << desc << "\n";
    return 0;
  }
  c.threads.clear();
  for (std::size_t pos = 0; pos < threads.size();) {
    const auto comma = threads.find(',', pos);
    c.threads.push_back(std::stoi(threads.substr(pos, comma - pos)));
    pos = comma == std::string::npos ? threads.size() : comma + 1;
  }
  c.pg_uri = env("XACT_PG_URI");
  if (c.pg_uri.empty() || env("XACT_MYSQL_HOST").empty()) {
    std::printf(
        "four_store_bench: skipped: set XACT_PG_URI and XACT_MYSQL_* (bash "
        "scripts/servers.sh start DIR; source DIR/env.sh)\n");
    return 0;
  }
  c.my.host = env("XACT_MYSQL_HOST");
  c.my.port = static_cast<unsigned>(std::stoul(env("XACT_MYSQL_PORT")));
  c.my.user = env("XACT_MYSQL_USER");
  c.my.password = env("XACT_MYSQL_PASSWORD");
  c.my.database = env("XACT_MYSQL_DB");
  c.table = "xact_four_" + std::to_string(::getpid());

  const xact::bench::BenchDir own("four-store-bench");
  pqxx::connection pg(c.pg_uri);
  auto my = xact::mysql::MySqlConnection::open(c.my, "bench");
  run_sql(pg, "CREATE TABLE " + c.table + " (id int PRIMARY KEY, bal bigint NOT NULL)");
  my->execute("CREATE TABLE " + c.table +
              " (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB");
  for (int i = 1; i <= c.accounts; ++i) {
    run_sql(pg, "INSERT INTO " + c.table + " VALUES (" + std::to_string(i) + ", 1000000)");
    my->execute("INSERT INTO " + c.table + " VALUES (" + std::to_string(i) + ", 1000000)");
  }

  struct Key {
    int threads;
    bool first;
    bool queued;
    bool operator<(const Key& o) const {
      return std::tie(threads, first, queued) < std::tie(o.threads, o.first, o.queued);
    }
  };
  std::map<Key, Cell> cells;
  int run = 0;
  for (int round = 0; round < c.rounds; ++round) {
    for (const int n : c.threads) {
      // Alternate the order of the four configurations between rounds.
      std::vector<Key> keys = {
          {n, true, true}, {n, false, true}, {n, true, false}, {n, false, false}};
      if (round % 2 == 1) std::reverse(keys.begin(), keys.end());
      for (const Key& k : keys) {
        const std::string dir = own / ("run" + std::to_string(run++));
        std::filesystem::create_directories(dir);
        Cell got = run_cell(c, dir, k.first, k.queued, k.threads);
        std::filesystem::remove_all(dir);
        Cell& sum = cells[k];
        sum.commits += got.commits;
        sum.retries += got.retries;
        sum.gave_up += got.gave_up;
        sum.seconds += got.seconds;
        sum.latencies_ms.insert(sum.latencies_ms.end(), got.latencies_ms.begin(),
                                got.latencies_ms.end());
      }
    }
  }
  run_sql(pg, "DROP TABLE IF EXISTS " + c.table);
  my->execute("DROP TABLE IF EXISTS " + c.table);

  std::printf("four_store_bench: %d hot accounts per SQL store, %.1f s x %d rounds per cell\n",
              c.accounts, c.seconds, c.rounds);
  std::printf("%-7s %-13s %-6s %10s %9s %9s %12s %7s\n", "threads", "order", "gate", "commits/s",
              "p50 ms", "p99 ms", "retries/txn", "gaveup");
  auto rate = [&](const Key& k) {
    const Cell& x = cells[k];
    return x.seconds > 0 ? static_cast<double>(x.commits) / x.seconds : 0.0;
  };
  for (const int n : c.threads) {
    for (const bool queued : {true, false}) {
      for (const bool first : {true, false}) {
        const Key k{n, first, queued};
        const Cell& x = cells[k];
        std::printf(
            "%-7d %-13s %-6s %10.1f %9.2f %9.2f %12.3f %7llu\n", n,
            first ? "sqlite_first" : "sqlite_last", queued ? "queued" : "busy", rate(k),
            percentile(x.latencies_ms, 0.5), percentile(x.latencies_ms, 0.99),
            x.commits > 0 ? static_cast<double>(x.retries) / static_cast<double>(x.commits) : 0.0,
            static_cast<unsigned long long>(x.gave_up));
      }
    }
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::printf(
        "  ratios at %d threads: first/last queued %.2f, first/last busy %.2f, "
        "queued/busy first %.2f, queued/busy last %.2f\n",
        n, ratio(rate({n, true, true}), rate({n, false, true})),
        ratio(rate({n, true, false}), rate({n, false, false})),
        ratio(rate({n, true, true}), rate({n, true, false})),
        ratio(rate({n, false, true}), rate({n, false, false})));
  }
  return 0;
}
