// The price of compensation: a session write committed through xact (SessionResource: a fenced
// compare-and-set write, then the commit that drops the fence) against a bare write to the same
// store, in the same run, alternating rounds, per store:
//   memory  MemorySessionStore::set                          vs  begin, set, commit
//   myisam  a bare single-row UPDATE of the value             vs  begin, set, commit
// and, as a second pair, a read-modify-write (get + set) by hand against the same through xact,
// and, as a third, K blind writes to K values of one session (--writes-per-txn, 8 by default)
// committed as one transaction against K bare writes: that row is stated per write (the
// transaction's time divided by K).
// Each thread works on sessions of its own (no conflicts): what is measured is the bookkeeping.
// MyISAM needs XACT_MYSQL_* (bash scripts/servers.sh start DIR; source DIR/env.sh); without it
// only the memory store runs. See bench/README.md, "Session stores with compensation".
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include <xact/manager.hpp>
#include <xact/mysql/myisam_session_store.hpp>
#include <xact/sessions/memory_session_store.hpp>
#include <xact/sessions/session_resource.hpp>
#include <xact/transaction.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using xact::sessions::SessionResource;
using xact::sessions::SessionStore;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// One thread's loop body: does one operation (write or read-modify-write) on session `sid`.
using Op = std::function<void(xact::ExplicitTransactionManager& tm, const std::string& sid,
                              std::uint64_t i)>;

// This thread's CPU time in seconds: what an operation costs, whatever else the machine runs.
double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Rate {
  double ops_per_s = 0;      // wall clock, all threads
  double cpu_us_per_op = 0;  // CPU time of the threads per operation
};

// Operations per second of `op` on `threads` threads for `seconds`.
Rate measure(const Op& op, int threads, double seconds,
             const std::vector<std::vector<std::string>>& sessions) {
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> done(static_cast<std::size_t>(threads), 0);
  std::vector<double> cpu(static_cast<std::size_t>(threads), 0);
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      xact::ExplicitTransactionManager tm;
      const auto& mine = sessions[static_cast<std::size_t>(t)];
      std::uint64_t i = 0;
      const double cpu0 = thread_cpu_seconds();
      while (!stop.load(std::memory_order_relaxed)) {
        op(tm, mine[i % mine.size()], i);
        ++i;
      }
      done[static_cast<std::size_t>(t)] = i;
      cpu[static_cast<std::size_t>(t)] = thread_cpu_seconds() - cpu0;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::uint64_t total = 0;
  double cpu_total = 0;
  for (auto n : done) total += n;
  for (double c : cpu) cpu_total += c;
  return {static_cast<double>(total) / elapsed, 1e6 * cpu_total / static_cast<double>(total)};
}

struct Pair {
  std::string name;
  Op bare;
  Op xact;
  int writes = 1;  // writes per operation: the row's figures are divided by it (per write)
  // Sessions of its own (none: the shared ones), so that a row's values do not change what
  // the others' sessions hold (a MyISAM commit refreshes every row of its sessions).
  const std::vector<std::vector<std::string>>* sessions = nullptr;
};

// The rows to run: every row, or those named in --rows (comma-separated).
std::string g_rows;

bool wanted(const std::string& name) {
  if (g_rows.empty()) return true;
  return ("," + g_rows + ",").find("," + name + ",") != std::string::npos;
}

void run_store(const std::string& store_name, const std::vector<Pair>& pairs, int threads,
               double seconds, int rounds, const std::vector<std::vector<std::string>>& sessions) {
  for (const Pair& p : pairs) {
    if (!wanted(p.name)) continue;
    double bare = 0, through = 0, bare_cpu = 0, through_cpu = 0;
    auto add = [](double& rate, double& cpu_us, Rate r) {
      rate += r.ops_per_s;
      cpu_us += r.cpu_us_per_op;
    };
    const auto& ids = p.sessions ? *p.sessions : sessions;
    for (int r = 0; r < rounds; ++r) {  // alternate which goes first
      if (r % 2 == 0) {
        add(bare, bare_cpu, measure(p.bare, threads, seconds, ids));
        add(through, through_cpu, measure(p.xact, threads, seconds, ids));
      } else {
        add(through, through_cpu, measure(p.xact, threads, seconds, ids));
        add(bare, bare_cpu, measure(p.bare, threads, seconds, ids));
      }
    }
    // Per write: a K-write row's operation is K writes (or one transaction of K writes).
    bare = bare * p.writes / rounds;
    through = through * p.writes / rounds;
    bare_cpu /= rounds * p.writes;
    through_cpu /= rounds * p.writes;
    std::printf("%-7s %-18s %7d %12.0f %12.0f %9.2f %9.2f %7.2fx %9.3f %9.3f %7.2fx\n",
                store_name.c_str(), p.name.c_str(), threads, bare, through, 1e6 * threads / bare,
                1e6 * threads / through, bare / through, bare_cpu, through_cpu,
                through_cpu / bare_cpu);
    std::fflush(stdout);
  }
}

std::vector<Pair> pairs_for(
    std::shared_ptr<SessionStore> store, std::shared_ptr<SessionResource> rm,
    std::function<void(const std::string&, const std::string&)> bare_write) {
  std::vector<Pair> out;
  out.push_back(
      {"write+commit",
       [bare_write](xact::ExplicitTransactionManager&, const std::string& sid, std::uint64_t i) {
         bare_write(sid, std::to_string(i));
       },
       [rm](xact::ExplicitTransactionManager& tm, const std::string& sid, std::uint64_t i) {
         xact::Transaction& txn = tm.begin();
         rm->set(txn, sid, "n", std::to_string(i));
         txn.commit();
       }});
  out.push_back(
      {"read+write+commit",
       [store, bare_write](xact::ExplicitTransactionManager&, const std::string& sid,
                           std::uint64_t i) {
         (void)store->get(sid, "n");
         bare_write(sid, std::to_string(i));
       },
       [rm](xact::ExplicitTransactionManager& tm, const std::string& sid, std::uint64_t i) {
         xact::Transaction& txn = tm.begin();
         (void)rm->get(txn, sid, "n");
         rm->set(txn, sid, "n", std::to_string(i));
         txn.commit();
       }});
  return out;
}

// K blind writes to K values of one session: K bare writes against one transaction of K
// fenced writes and its commit. Stated per write.
Pair several_writes(
    std::shared_ptr<SessionResource> rm,
    std::function<void(const std::string&, const std::string&, const std::string&)> bare_write,
    int k, const std::vector<std::vector<std::string>>& sessions) {
  auto names = std::make_shared<std::vector<std::string>>();
  for (int j = 0; j < k; ++j) names->push_back("w" + std::to_string(j));
  return {
      std::to_string(k) + " writes+commit",
      [bare_write, names](xact::ExplicitTransactionManager&, const std::string& sid,
                          std::uint64_t i) {
        const std::string v = std::to_string(i);
        for (const std::string& name : *names) bare_write(sid, name, v);
      },
      [rm, names](xact::ExplicitTransactionManager& tm, const std::string& sid, std::uint64_t i) {
        const std::string v = std::to_string(i);
        xact::Transaction& txn = tm.begin();
        for (const std::string& name : *names) rm->set(txn, sid, name, v);
        txn.commit();
      },
      k,
      &sessions};
}

// A participant that does nothing: begin + join + commit with it is the coordinator's own
// cost of a one-participant transaction, the floor under the session resource's write+commit.
class NoopResource final : public xact::ResourceManager {
 public:
  std::string resource_name() const override { return "noop"; }
  void abort(xact::Transaction&) noexcept override {}
  void tpc_begin(xact::Transaction&) override {}
  void commit(xact::Transaction&) override {}
  xact::Vote tpc_vote(xact::Transaction&) override { return xact::Vote::yes; }
  void tpc_finish(xact::Transaction&) override {}
  void tpc_abort(xact::Transaction&) noexcept override {}
};

// The coordinator alone (begin, join a no-op participant, commit) against the same bare write.
Pair coordinator_floor(std::function<void(const std::string&, const std::string&)> bare_write) {
  auto noop = std::make_shared<NoopResource>();
  return {"coordinator only",
          [bare_write](xact::ExplicitTransactionManager&, const std::string& sid, std::uint64_t i) {
            bare_write(sid, std::to_string(i));
          },
          [noop](xact::ExplicitTransactionManager& tm, const std::string&, std::uint64_t i) {
            xact::Transaction& txn = tm.begin();
            txn.join(noop);
            (void)std::to_string(i);  // the same string work as the other side
            txn.commit();
          }};
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  int threads = 8, rounds = 4, per_thread = 64, writes_per_txn = 8;
  double seconds = 1.0;
  std::string stores = "memory,myisam";
  po::options_description desc("session_bench options");
  desc.add_options()("help", "this text")("threads", po::value(&threads)->default_value(8),
                                          "threads")(
      "seconds", po::value(&seconds)->default_value(1.0), "seconds per measurement")(
      "rounds", po::value(&rounds)->default_value(4), "alternating rounds per pair")(
      "sessions", po::value(&per_thread)->default_value(64), "sessions per thread")(
      "stores", po::value(&stores)->default_value("memory,myisam"), "memory and/or myisam")(
      "writes-per-txn", po::value(&writes_per_txn)->default_value(8),
      "K: the several-writes row's writes per transaction (0: no such row)")(
      "rows", po::value(&g_rows),
      "only these rows, comma-separated (e.g. \"write+commit,8 writes+commit\"); default all");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "session_bench: %s\n", e.what());
    return 2;
  }
  if (vm.count("help") != 0) {
    std::cout << desc << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> sessions(static_cast<std::size_t>(threads));
  std::vector<std::vector<std::string>> several(static_cast<std::size_t>(threads));  // K-write row
  for (auto* set : {&sessions, &several}) {
    for (auto& v : *set) {
      for (int i = 0; i < per_thread; ++i) v.push_back(xact::sessions::new_session_id());
    }
  }
  std::printf("session_bench: %d threads, %d sessions each, %.1f s x %d alternating rounds\n",
              threads, per_thread, seconds, rounds);
  std::printf(
      "one-write rows: per operation (one transaction, or the bare write(s)); the \"%d writes\" "
      "row: per write (a transaction of %d writes divided by %d, against %d bare writes)\n",
      writes_per_txn, writes_per_txn, writes_per_txn, writes_per_txn);
  std::printf("%-7s %-18s %7s %12s %12s %9s %9s %8s %9s %9s %8s\n", "store", "operation", "threads",
              "bare ops/s", "xact ops/s", "bare us", "xact us", "ratio", "bare cpu", "xact cpu",
              "cpu rat.");

  if (stores.find("memory") != std::string::npos) {
    auto store = std::make_shared<xact::sessions::MemorySessionStore>();
    auto rm = SessionResource::create(store);
    for (auto& v : sessions) {
      for (auto& sid : v) store->set(sid, "n", "0");
    }
    auto bare = [store](const std::string& sid, const std::string& v) { store->set(sid, "n", v); };
    std::vector<Pair> pairs = pairs_for(store, rm, bare);
    pairs.push_back(coordinator_floor(bare));
    if (writes_per_txn > 0) {
      pairs.push_back(several_writes(
          rm,
          [store](const std::string& sid, const std::string& name, const std::string& v) {
            store->set(sid, name, v);
          },
          writes_per_txn, several));
    }
    run_store("memory", pairs, threads, seconds, rounds, sessions);
  }

  if (stores.find("myisam") != std::string::npos) {
    if (env("XACT_MYSQL_HOST").empty()) {
      std::printf(
          "myisam: skipped: set XACT_MYSQL_* (bash scripts/servers.sh start DIR; source "
          "DIR/env.sh)\n");
      return 0;
    }
    xact::mysql::MyIsamSessionStoreOptions o;
    o.connect.host = env("XACT_MYSQL_HOST");
    o.connect.port = static_cast<unsigned>(std::stoul(env("XACT_MYSQL_PORT")));
    o.connect.user = env("XACT_MYSQL_USER");
    o.connect.password = env("XACT_MYSQL_PASSWORD");
    o.connect.database = env("XACT_MYSQL_DB");
    o.table = "xact_session_bench_" + std::to_string(::getpid());
    o.connections = static_cast<std::size_t>(threads);
    auto store = xact::mysql::MyIsamSessionStore::open(o);
    auto rm = SessionResource::create(store);
    for (auto& v : sessions) {
      for (auto& sid : v) store->set(sid, "n", "0");
    }
    const std::string update =
        "UPDATE " + o.table + " SET value = $1, version = version + 1 WHERE sid = $2 AND name = $3";
    auto bytes = [](const std::string& s) { return xact::sql::Bytes(s.begin(), s.end()); };
    // Keys as strings, the value as bytes: as the store sends them.
    auto bare_named = [store, update, bytes](const std::string& sid, const std::string& name,
                                             const std::string& v) {
      store->execute(update, {bytes(v), sid, name});
    };
    std::vector<Pair> pairs = pairs_for(
        store, rm,
        [bare_named](const std::string& sid, const std::string& v) { bare_named(sid, "n", v); });
    if (writes_per_txn > 0) {
      for (auto& v : several) {  // the bare UPDATEs need the rows
        for (auto& sid : v) {
          for (int j = 0; j < writes_per_txn; ++j) store->set(sid, "w" + std::to_string(j), "0");
        }
      }
      pairs.push_back(several_writes(rm, bare_named, writes_per_txn, several));
    }
    run_store("myisam", pairs, threads, seconds, rounds, sessions);
    store->execute("DROP TABLE IF EXISTS " + o.table);
  }
  return 0;
}
