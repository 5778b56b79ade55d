// The object store's core paths on the in-memory storage (issue 5), each next to the
// cheapest equivalent work without the object store, measured in the same run:
//
//   BM_CachedAccess        read a field of cached objects through Ref<T> (objects/s)
//   BM_Baseline_PlainAccess  the same field of plain C++ objects through shared_ptr
//   BM_Load                load objects whose cache entries were freed: storage read, type
//                          lookup, decode (objects/s)
//   BM_Baseline_StorageLoad  MemoryStorage::load of the same records, no decoding
//   BM_Commit              one transaction per iteration changing one object: thread-free
//                          ExplicitTransactionManager, Connection, MemoryStorage (commits/s)
//   BM_Baseline_StorageCommit  MemoryStorage::commit_one_phase of the same pre-encoded record
//
// ZODB's figures for the same three questions (MappingStorage, CPython) are in
// bench/README.md; they were measured on the same kind of machine, not in this run.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include <xact/manager.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/memory_storage.hpp>

namespace {

using namespace xact::objectstore;

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

struct PlainItem {
  std::int64_t value = 1;
  std::string name = "an item of a benchmark";
};

constexpr int kObjects = 10000;

// A database with kObjects items listed in root["items"].
struct Fixture {
  Fixture() {
    storage = std::make_shared<MemoryStorage>();
    db = DB::open(storage, {.cache_size = kObjects * 2});
    conn = db->open({.manager = &tm});
    tm.begin();
    auto list = std::make_shared<PersistentList>();
    for (int i = 0; i < kObjects; ++i) list->push_back(std::make_shared<Item>());
    conn->root()->set("items", list);
    tm.commit();
    auto l = conn->root()->get<PersistentList>("items");
    for (const auto& v : l->items()) refs.push_back(Ref<Item>::from_base(v.as_ref().base()));
  }
  xact::ExplicitTransactionManager tm;
  std::shared_ptr<MemoryStorage> storage;
  std::shared_ptr<DB> db;
  ConnectionHandle conn;
  std::vector<Ref<Item>> refs;
};

void BM_CachedAccess(benchmark::State& state) {
  Fixture f;
  for (auto& r : f.refs) r->value();  // load them all
  std::int64_t sum = 0;
  for (auto _ : state) {
    for (const auto& r : f.refs) sum += r->value();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kObjects);
}
BENCHMARK(BM_CachedAccess);

void BM_Baseline_PlainAccess(benchmark::State& state) {
  std::vector<std::shared_ptr<PlainItem>> items;
  for (int i = 0; i < kObjects; ++i) items.push_back(std::make_shared<PlainItem>());
  std::int64_t sum = 0;
  for (auto _ : state) {
    for (const auto& p : items) sum += p->value;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kObjects);
}
BENCHMARK(BM_Baseline_PlainAccess);

void BM_Load(benchmark::State& state) {
  Fixture f;
  std::vector<Oid> oids;
  for (const auto& r : f.refs) oids.push_back(r.oid());
  f.refs.clear();
  std::int64_t sum = 0;
  for (auto _ : state) {
    state.PauseTiming();
    f.conn->cache_minimize();  // frees every item: the next get() loads it
    state.ResumeTiming();
    for (Oid oid : oids) sum += f.conn->get<Item>(oid)->value();
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kObjects);
}
BENCHMARK(BM_Load);

void BM_Baseline_StorageLoad(benchmark::State& state) {
  Fixture f;
  std::vector<Oid> oids;
  for (const auto& r : f.refs) oids.push_back(r.oid());
  std::size_t bytes = 0;
  for (auto _ : state) {
    for (Oid oid : oids) bytes += f.storage->load(oid)->data.size();
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations() * kObjects);
}
BENCHMARK(BM_Baseline_StorageLoad);

void BM_Commit(benchmark::State& state) {
  Fixture f;
  auto item = f.refs.front().get();
  for (auto _ : state) {
    f.tm.begin();
    item->bump();
    f.tm.commit();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Commit);

void BM_Baseline_StorageCommit(benchmark::State& state) {
  Fixture f;
  const Oid oid = f.refs.front().oid();
  Tid serial = f.storage->load(oid)->serial;
  const std::string data = f.storage->load(oid)->data;
  for (auto _ : state) {
    CommitRequest req;
    req.writes.push_back(ObjectWrite{oid, serial, data});
    serial = f.storage->commit_one_phase(std::move(req));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_StorageCommit);

}  // namespace

BENCHMARK_MAIN();
