// Several named databases (issue 17), paired in the same run (each iteration does one of each
// kind, in rotating order, timed separately, so a shared machine's drift hits all alike):
//
//   BM_Paired_Commit  one object changed in one file-storage database (one participant: a
//                     one-phase commit, one fsync), against one object in each of two databases
//                     of a registry (2PC: two prepares, the decision log's forced commit record,
//                     two finishes), against the same two without the decision log
//                     (ManagerOptions::allow_unlogged_decisions): the cost of atomicity across
//                     databases. Counters: one_us, two_us, two_nolog_us, two_vs_one,
//                     two_vs_nolog.
//   BM_Paired_Load    loading kObjects objects through same-database references, against the
//                     same number through cross-database references (into another file storage
//                     of the registry, resolved through the holder's connection set), the
//                     connections' caches emptied (untimed) before each. Counters: local_ns,
//                     xref_ns (per object, wall clock), xref_vs_local; the same in the thread's
//                     CPU time (local_cpu_ns, xref_cpu_ns, xref_vs_local_cpu).
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/manager.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "bench_dir.hpp"

namespace {

using namespace xact::objectstore;
using Clock = std::chrono::steady_clock;

// The calling thread's CPU time (a loaded machine's scheduling waits are not in it).
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

class Item : public Persistent {
 public:
  std::int64_t value() const {
    read_access();
    return value_;
  }
  void bump() {
    write_access();
    ++value_;
  }
  void save(StateWriter& out) const override {
    out.write(value_);
    out.write(name_);
  }
  void load(StateReader& in, std::uint32_t) override {
    in.read(value_);
    in.read(name_);
  }

 private:
  std::int64_t value_ = 1;
  std::string name_ = "an item of a benchmark";
};
XACT_PERSISTENT_TYPE(Item, "bench.Item");

std::string& dir() {
  static std::string d;
  return d;
}

constexpr int kObjects = 1000;

// A registry of two file-storage databases, "main" and "ledger", in a directory of its own;
// each root holds an Item under "item".
struct Registry {
  explicit Registry(const std::string& name) {
    const std::string d = dir() + "/" + name;
    std::filesystem::create_directories(d);
    main = std::shared_ptr<FileStorage>(FileStorage::open(d + "/main.xfs"));
    ledger = std::shared_ptr<FileStorage>(FileStorage::open(d + "/ledger.xfs"));
    dbs = Databases::create();
    DBOptions m;
    m.name = "main";
    m.xrefs = XrefPolicy::allow;
    m.cache_size = kObjects * 4;
    dbs->add(DB::open(main, m));
    DBOptions l;
    l.name = "ledger";
    l.cache_size = kObjects * 4;
    dbs->add(DB::open(ledger, l));
    log = xact::DecisionLog::open(xact::io::Env::posix(), d + "/log");
  }
  ~Registry() {
    dbs.reset();
    main->close();
    ledger->close();
  }
  std::shared_ptr<FileStorage> main, ledger;
  std::shared_ptr<Databases> dbs;
  std::shared_ptr<xact::DecisionLog> log;
};

void BM_Paired_Commit(benchmark::State& state) {
  Registry r("commit");
  xact::ManagerOptions logged;
  logged.decision_log = r.log;
  xact::ManagerOptions unlogged;
  unlogged.allow_unlogged_decisions = true;
  xact::ExplicitTransactionManager tm_log(logged), tm_nolog(unlogged);
  auto c_log = r.dbs->open({.manager = &tm_log});
  auto c_nolog = r.dbs->open({.manager = &tm_nolog});
  tm_log.begin();
  c_log->root()->set("item", std::make_shared<Item>());
  c_log->get_connection("ledger").root()->set("item", std::make_shared<Item>());
  tm_log.commit();

  auto one = [&] {
    tm_log.begin();
    c_log->root()->get<Item>("item")->bump();
    tm_log.commit();
  };
  auto two = [&](xact::ExplicitTransactionManager& tm, ConnectionHandle& c) {
    tm.begin();
    c->root()->get<Item>("item")->bump();
    c->get_connection("ledger").root()->get<Item>("item")->bump();
    tm.commit();
  };
  Clock::duration t_one{}, t_two{}, t_nolog{};
  std::uint64_t round = 0;
  for (auto _ : state) {
    for (int k = 0; k < 3; ++k) {
      const int which = static_cast<int>((round + static_cast<std::uint64_t>(k)) % 3);
      const auto t0 = Clock::now();
      if (which == 0) {
        one();
        t_one += Clock::now() - t0;
      } else if (which == 1) {
        two(tm_log, c_log);
        t_two += Clock::now() - t0;
      } else {
        two(tm_nolog, c_nolog);
        t_nolog += Clock::now() - t0;
      }
    }
    ++round;
  }
  const double n = static_cast<double>(state.iterations());
  auto us = [&](Clock::duration d) {
    return std::chrono::duration<double, std::micro>(d).count() / n;
  };
  state.counters["one_us"] = us(t_one);
  state.counters["two_us"] = us(t_two);
  state.counters["two_nolog_us"] = us(t_nolog);
  state.counters["two_vs_one"] = us(t_two) / us(t_one);
  state.counters["two_vs_nolog"] = us(t_two) / us(t_nolog);
}
BENCHMARK(BM_Paired_Commit)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Paired_Load(benchmark::State& state) {
  Registry r("load");
  xact::ManagerOptions logged;
  logged.decision_log = r.log;
  xact::ExplicitTransactionManager tm(logged);
  auto c = r.dbs->open({.manager = &tm});
  Connection& ledger = c->get_connection("ledger");
  tm.begin();
  auto local = std::make_shared<PersistentList>();
  auto remote = std::make_shared<PersistentList>();
  for (int i = 0; i < kObjects; ++i) {
    local->push_back(std::make_shared<Item>());
    auto item = std::make_shared<Item>();
    ledger.add(item);  // lives in the ledger; main refers to it
    remote->push_back(item);
  }
  c->root()->set("local", local);
  c->root()->set("remote", remote);
  tm.commit();
  // Only the lists are held: the items are freed by cache_minimize and loaded again.
  std::vector<Ref<Item>> local_refs, remote_refs;
  for (const auto& v : local->items())
    local_refs.push_back(Ref<Item>::from_base(v.as_ref().base()));
  for (const auto& v : remote->items()) {
    remote_refs.push_back(Ref<Item>::from_base(v.as_ref().base()));
  }
  auto empty_caches = [&] {
    c->cache_minimize();
    ledger.cache_minimize();
  };
  Clock::duration t_local{}, t_xref{};
  std::chrono::nanoseconds cpu_local{}, cpu_xref{};
  std::int64_t sum = 0;
  std::uint64_t round = 0;
  for (auto _ : state) {
    for (int k = 0; k < 2; ++k) {
      const bool xref = ((round + static_cast<std::uint64_t>(k)) % 2) != 0;
      state.PauseTiming();
      empty_caches();
      state.ResumeTiming();
      const auto t0 = Clock::now();
      const auto c0 = thread_cpu();
      for (const auto& ref : xref ? remote_refs : local_refs) sum += ref->value();
      (xref ? cpu_xref : cpu_local) += thread_cpu() - c0;
      (xref ? t_xref : t_local) += Clock::now() - t0;
    }
    ++round;
  }
  benchmark::DoNotOptimize(sum);
  if (sum != static_cast<std::int64_t>(state.iterations()) * 2 * kObjects) {
    state.SkipWithError("an item did not load");
  }
  const double n = static_cast<double>(state.iterations()) * kObjects;
  auto ns = [&](Clock::duration d) {
    return std::chrono::duration<double, std::nano>(d).count() / n;
  };
  state.counters["local_ns"] = ns(t_local);
  state.counters["xref_ns"] = ns(t_xref);
  state.counters["xref_vs_local"] = ns(t_xref) / ns(t_local);
  state.counters["local_cpu_ns"] = ns(cpu_local);
  state.counters["xref_cpu_ns"] = ns(cpu_xref);
  state.counters["xref_vs_local_cpu"] = ns(cpu_xref) / ns(cpu_local);
  state.SetItemsProcessed(state.iterations() * 2 * kObjects);
}
BENCHMARK(BM_Paired_Load)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  const xact::bench::BenchDir own("databases-bench");
  dir() = own.path();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
