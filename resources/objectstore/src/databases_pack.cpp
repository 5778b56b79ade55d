// Databases: the multi-database pack. A pack of one database keeps what the other databases
// of the registry reference: a mark over every database's current state (from the roots,
// across databases) finds the references into the packed one, and references committed while
// the pack runs are announced by their connections (note_xrefs, before they prepare) to the
// pack's watch. The watch is opened before the mark's snapshots are taken, and starts with
// the references of the transactions still in flight then, so a reference either is in a
// marked snapshot or reaches the watch. The pack asks the watch for its last word with
// commits of the packed database paused (PackOptions::late_roots) and closes it: an
// announcement after that waits for the pack to end. The objects the pack dropped are kept
// (their oids) until the next pack of that database: an announcement of a reference to one of
// them, from a transaction that held the object from before the pack, fails with
// DanglingReferenceError before anything is written.
#include <xact/objectstore/databases.hpp>

#include <condition_variable>
#include <deque>

#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>

namespace xact::objectstore {

struct Databases::PackWatches {
  std::mutex mu;
  std::condition_variable cv;
  // Cross-database references of transactions that announced them and have not ended.
  std::unordered_map<const void*, std::vector<std::pair<std::string, Oid>>> in_flight;
  struct Watch {
    std::unordered_set<Oid> oids;
    bool closed = false;  // the pack took its last word: announcements wait
  };
  std::unordered_map<std::string, Watch> packing;  // by database name
  // The objects the last pack of each database dropped (oids are never handed out again): a
  // reference to one of them, announced after that pack decided, is refused.
  std::unordered_map<std::string, std::unordered_set<Oid>> dropped;
};

Databases::Databases() : watches_(std::make_shared<PackWatches>()) {}

void Databases::note_xrefs(const void* who,
                           const std::vector<std::pair<std::string, Oid>>& targets) {
  PackWatches& w = *watches_;
  std::unique_lock l(w.mu);
  auto must_wait = [&] {
    for (const auto& [db, oid] : targets) {
      auto it = w.packing.find(db);
      if (it != w.packing.end() && it->second.closed) return true;
    }
    return false;
  };
  // A pack of a target's database is taking its decision: wait for it.
  w.cv.wait(l, [&] { return !must_wait(); });
  // A reference to an object a pack dropped (the transaction held it from before the pack).
  for (const auto& [db, oid] : targets) {
    auto it = w.dropped.find(db);
    if (it != w.dropped.end() && it->second.contains(oid)) {
      throw DanglingReferenceError(
          db, oid,
          "a pack of that database removed it (nothing referred to it when the pack decided); "
          "this transaction held it from before. Nothing of the transaction is written");
    }
  }
  auto& mine = w.in_flight[who];
  for (const auto& t : targets) {
    mine.push_back(t);
    if (auto it = w.packing.find(t.first); it != w.packing.end()) {
      it->second.oids.insert(t.second);
    }
  }
}

void Databases::release_xrefs(const void* who) noexcept {
  PackWatches& w = *watches_;
  std::lock_guard l(w.mu);
  w.in_flight.erase(who);
}

PackReport Databases::pack(const std::string& name, Tid pack_tid, DatabasesPackOptions options) {
  const std::shared_ptr<DB> target = get(name);
  auto* storage = dynamic_cast<FileStorage*>(&target->storage());
  if (!storage) {
    throw UsageError("database '" + name + "' is on " + target->storage().describe() +
                     ": only a file storage is packed");
  }
  PackWatches& w = *watches_;
  std::vector<Oid> extra;
  {
    std::unique_lock l(w.mu);
    w.cv.wait(l, [&] { return !w.packing.contains(name); });
    auto& watch = w.packing[name];
    for (const auto& [who, refs] : w.in_flight) {
      for (const auto& [db, oid] : refs) {
        if (db == name) watch.oids.insert(oid);
      }
    }
    extra.assign(watch.oids.begin(), watch.oids.end());
  }
  struct Done {
    PackWatches& w;
    const std::string& name;
    ~Done() {
      std::lock_guard l(w.mu);
      w.packing.erase(name);
      w.cv.notify_all();
    }
  } done{w, name};

  // The mark: every database's state as of one point each, taken after the watch opened.
  std::vector<std::shared_ptr<DB>> all;
  {
    std::lock_guard l(mutex_);
    all = dbs_;
  }
  std::unordered_map<std::string_view, std::size_t> index;
  std::vector<Tid> at(all.size());
  std::size_t packed = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    index.emplace(all[i]->name(), i);
    at[i] = all[i]->storage().last_transaction();
    if (all[i] == target) packed = i;
  }
  std::vector<std::unordered_set<Oid>> seen(all.size());
  std::deque<std::pair<std::size_t, Oid>> todo;
  for (std::size_t i = 0; i < all.size(); ++i) {
    seen[i].insert(kRootOid);
    todo.emplace_back(i, kRootOid);
  }
  std::unordered_set<Oid> referenced;
  while (!todo.empty()) {
    // Not a structured binding: the lambda below captures these, which clang < 16 cannot.
    const std::size_t i = todo.front().first;
    const Oid oid = todo.front().second;
    todo.pop_front();
    const auto rev = all[i]->storage().load(oid, at[i]);
    if (!rev) continue;  // a dangling reference: `xact databases check` reports those
    for_each_reference(rev->data, [&](std::string_view database, Oid t) {
      std::size_t j = i;
      if (!database.empty()) {
        auto it = index.find(database);
        if (it == index.end()) return;
        j = it->second;
        if (j == packed) referenced.insert(t);
      }
      if (seen[j].insert(t).second) todo.emplace_back(j, t);
    });
  }
  extra.insert(extra.end(), referenced.begin(), referenced.end());

  PackOptions po;
  po.extra_roots = std::move(extra);
  po.after_mark = std::move(options.after_mark);
  po.max_restarts = options.max_restarts;
  po.late_roots = [&] {
    std::vector<Oid> late;
    {
      std::lock_guard l(w.mu);
      auto& watch = w.packing[name];
      watch.closed = true;
      late.assign(watch.oids.begin(), watch.oids.end());
    }
    if (options.after_decision) options.after_decision();
    return late;
  };
  po.restarting = [&] {
    std::lock_guard l(w.mu);
    w.packing[name].closed = false;
    w.cv.notify_all();
  };
  std::unordered_set<Oid> dropped;
  po.dropped = [&](const std::unordered_set<Oid>& oids) { dropped = oids; };
  PackReport report = storage->pack(pack_tid, po);
  {
    std::lock_guard l(w.mu);  // before the watch ends (done's destructor)
    w.dropped[name] = std::move(dropped);
  }
  return report;
}

}  // namespace xact::objectstore
