#include <xact/objectstore/memory_storage.hpp>

#include <algorithm>

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>

#include "storage_conflicts.hpp"

namespace xact::objectstore {

MemoryStorage::MemoryStorage() = default;

MemoryStorage::MemoryStorage(MemoryStorageOptions options) : options_(std::move(options)) {
  if (options_.expiry.count() < 0) throw UsageError("memory storage: a negative expiry");
  if (options_.sweep_interval.count() < 0) {
    throw UsageError("memory storage: a negative sweep interval");
  }
  if (options_.sweep_interval.count() > 0 && options_.expiry.count() == 0) {
    throw UsageError("memory storage: a sweep interval without an expiry sweeps nothing: set "
                     "MemoryStorageOptions::expiry too");
  }
  if (options_.sweep_interval.count() > 0) {
    sweeper_ = std::thread([this] {
      std::unique_lock lock(sweeper_mutex_);
      while (!sweeper_cv_.wait_for(lock, options_.sweep_interval, [&] { return sweeper_stop_; })) {
        lock.unlock();
        try {
          sweep();
        } catch (const std::exception&) {
          // Closed meanwhile: the next wait sees the stop.
        }
        lock.lock();
      }
    });
  }
}

MemoryStorage::~MemoryStorage() { stop_sweeper(); }

void MemoryStorage::stop_sweeper() noexcept {
  {
    std::lock_guard lock(sweeper_mutex_);
    sweeper_stop_ = true;
  }
  sweeper_cv_.notify_all();
  if (sweeper_.joinable() && sweeper_.get_id() != std::this_thread::get_id()) sweeper_.join();
}

std::size_t MemoryStorage::sweep() {
  return expire(options_.clock ? options_.clock() : std::chrono::system_clock::now());
}

std::size_t MemoryStorage::expire(std::chrono::system_clock::time_point now) {
  if (options_.expiry.count() == 0) return 0;
  const Tid cutoff = tid_for_time(now - options_.expiry);
  std::unique_lock lock(mutex_);
  check_open();
  std::vector<Oid> removed;
  for (auto& [oid, revs] : objects_) {
    if (oid != kRootOid && !locks_.contains(oid) && revs.back().serial < cutoff) {
      removed.push_back(oid);
      continue;
    }
    // A live object keeps what a snapshot at or after the cut-off reads: its newest revision
    // before the cut-off and the later ones (a volatile database written often would otherwise
    // keep every revision for ever).
    auto keep = std::upper_bound(revs.begin(), revs.end(), cutoff,
                                 [](Tid t, const Revision& r) { return t < r.serial; });
    if (keep != revs.begin()) revs.erase(revs.begin(), std::prev(keep));
  }
  for (Oid oid : removed) objects_.erase(oid);
  // Iteration forgets them too, and the transactions before the cut-off.
  std::erase_if(history_, [&](const TransactionRecord& t) { return t.tid < cutoff; });
  for (auto& rec : history_) {
    std::erase_if(rec.objects, [&](const auto& o) { return !objects_.contains(o.first); });
  }
  if (removed.empty()) return 0;
  // A tid of its own, so connections moving their snapshot past it drop their copies.
  last_tid_ = next_tid(last_tid_, io::Env::posix().now_micros());
  if (listener_) listener_(last_tid_, removed);
  return removed.size();
}

void MemoryStorage::check_open() const {
  if (closed_) throw UsageError("memory storage is closed: open a new storage");
}

Tid MemoryStorage::last_transaction() const {
  std::shared_lock lock(mutex_);
  check_open();
  return last_tid_;
}

std::optional<Revision> MemoryStorage::load(Oid oid, Tid at) const {
  std::shared_lock lock(mutex_);
  check_open();
  auto it = objects_.find(oid);
  if (it == objects_.end()) return std::nullopt;
  const auto& revs = it->second;
  // Newest first: a snapshot read almost always wants the last revision.
  for (auto r = revs.rbegin(); r != revs.rend(); ++r) {
    if (r->serial <= at) return *r;
  }
  return std::nullopt;
}

std::optional<std::string> MemoryStorage::load_serial(Oid oid, Tid serial) const {
  std::shared_lock lock(mutex_);
  check_open();
  auto it = objects_.find(oid);
  if (it == objects_.end()) return std::nullopt;
  for (const auto& r : it->second) {
    if (r.serial == serial) return r.data;
  }
  return std::nullopt;
}

Oid MemoryStorage::new_oid() {
  std::unique_lock lock(mutex_);
  check_open();
  return next_oid_++;
}

void MemoryStorage::for_each_object(
    const std::function<bool(Oid, Tid, std::string_view)>& fn) const {
  std::shared_lock lock(mutex_);
  check_open();
  for (const auto& [oid, revs] : objects_) {
    if (!fn(oid, revs.back().serial, revs.back().data)) return;
  }
}

void MemoryStorage::iterate(Tid from, Tid to,
                            const std::function<bool(const TransactionRecord&)>& fn) const {
  std::shared_lock lock(mutex_);
  check_open();
  auto it = std::lower_bound(history_.begin(), history_.end(), from,
                             [](const TransactionRecord& t, Tid v) { return t.tid < v; });
  for (; it != history_.end() && it->tid <= to; ++it) {
    if (!fn(*it)) return;
  }
}

void MemoryStorage::check_and_lock(const CommitRequest& request, PreparedId id) {
  static const std::string kName = "memory storage";
  detail::check_conflicts(
      request, [&](Oid oid) { return detail::LockHolder{locks_.contains(oid)}; },
      [&](Oid oid) {
        auto it = objects_.find(oid);
        return it == objects_.end() ? kNoTid : it->second.back().serial;
      },
      [&](Oid oid) {
        auto it = objects_.find(oid);
        return it == objects_.end() ? std::string() : record_type_name(it->second.back().data);
      },
      kName);
  if (id == 0) return;  // one-phase: checked and committed under one lock, nothing to hold
  detail::take_locks(request, locks_, id);
}

Storage::PreparedId MemoryStorage::prepare(CommitRequest request) {
  std::unique_lock lock(mutex_);
  check_open();
  const PreparedId id = next_prepared_++;
  check_and_lock(request, id);
  prepared_.emplace(id, Prepared{std::move(request)});
  return id;
}

Tid MemoryStorage::commit_locked(CommitRequest& request, PreparedId id) {
  const Tid tid = next_tid(last_tid_, io::Env::posix().now_micros());
  TransactionRecord rec{tid, std::move(request.meta), {}};
  std::vector<Oid> oids;
  oids.reserve(request.writes.size());
  for (auto& w : request.writes) {
    objects_[w.oid].push_back(Revision{tid, w.data});
    if (w.oid >= next_oid_) next_oid_ = w.oid + 1;
    oids.push_back(w.oid);
    rec.objects.emplace_back(w.oid, std::move(w.data));
  }
  if (id != 0) {
    for (const auto& w : request.writes) locks_.erase(w.oid);
    for (const auto& r : request.read_checks) locks_.erase(r.oid);
  }
  history_.push_back(std::move(rec));
  last_tid_ = tid;
  if (listener_) listener_(tid, oids);
  return tid;
}

Tid MemoryStorage::finish(PreparedId id, bool /*durable: nothing outlives the process*/) {
  std::unique_lock lock(mutex_);
  check_open();
  auto it = prepared_.find(id);
  if (it == prepared_.end()) {
    throw UsageError("memory storage: finish of a transaction that is not prepared (id " +
                     std::to_string(id) + ")");
  }
  CommitRequest request = std::move(it->second.request);
  prepared_.erase(it);
  return commit_locked(request, id);
}

void MemoryStorage::abort(PreparedId id) noexcept {
  std::unique_lock lock(mutex_);
  auto it = prepared_.find(id);
  if (it == prepared_.end()) return;
  for (const auto& w : it->second.request.writes) locks_.erase(w.oid);
  for (const auto& r : it->second.request.read_checks) locks_.erase(r.oid);
  prepared_.erase(it);
}

Tid MemoryStorage::commit_one_phase(CommitRequest request) {
  std::unique_lock lock(mutex_);
  check_open();
  check_and_lock(request, 0);
  return commit_locked(request, 0);
}

void MemoryStorage::set_invalidation_listener(InvalidationListener listener) {
  std::unique_lock lock(mutex_);
  listener_ = std::move(listener);
}

void MemoryStorage::close() noexcept {
  stop_sweeper();
  std::unique_lock lock(mutex_);
  closed_ = true;
  listener_ = {};
}

std::optional<Storage::PreparedId> MemoryStorage::find_prepared(const Xid& xid) const {
  for (const auto& [id, p] : prepared_) {
    if (p.request.xid == xid) return id;
  }
  return std::nullopt;
}

std::vector<Xid> MemoryStorage::recover(const NodeId& node) {
  std::shared_lock lock(mutex_);
  check_open();
  std::vector<Xid> out;
  for (const auto& [id, p] : prepared_) {
    if (!p.request.xid.gtrid.empty() && p.request.xid.gtrid.node() == node) {
      out.push_back(p.request.xid);
    }
  }
  return out;
}

std::vector<Xid> MemoryStorage::recover_all_nodes() {
  std::shared_lock lock(mutex_);
  check_open();
  std::vector<Xid> out;
  for (const auto& [id, p] : prepared_) {
    if (!p.request.xid.gtrid.empty()) out.push_back(p.request.xid);
  }
  return out;
}

RecoverableResource::Outcome MemoryStorage::commit_prepared(const Xid& xid) {
  std::unique_lock lock(mutex_);
  check_open();
  auto id = find_prepared(xid);
  if (!id) return Outcome::unknown_id;
  auto it = prepared_.find(*id);
  CommitRequest request = std::move(it->second.request);
  prepared_.erase(it);
  commit_locked(request, *id);
  return Outcome::done;
}

RecoverableResource::Outcome MemoryStorage::rollback_prepared(const Xid& xid) {
  std::optional<PreparedId> id;
  {
    std::shared_lock lock(mutex_);
    check_open();
    id = find_prepared(xid);
  }
  if (!id) return Outcome::unknown_id;
  abort(*id);
  return Outcome::done;
}

}  // namespace xact::objectstore
