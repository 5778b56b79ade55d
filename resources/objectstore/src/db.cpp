#include <xact/objectstore/db.hpp>

#include <algorithm>

#include <xact/errors.hpp>
#include <xact/objectstore/containers.hpp>

namespace xact::objectstore {

// --- ConnectionHandle ----------------------------------------------------------------------------

ConnectionHandle& ConnectionHandle::operator=(ConnectionHandle&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::move(other.db_);
    conn_ = std::move(other.conn_);
  }
  return *this;
}

ConnectionHandle::~ConnectionHandle() { close(); }

void ConnectionHandle::close() noexcept {
  if (conn_ && db_) db_->release(conn_);
  conn_.reset();
  db_.reset();
}

// --- DB ------------------------------------------------------------------------------------------

std::shared_ptr<DB> DB::open(std::shared_ptr<Storage> storage, DBOptions options) {
  if (!storage) throw UsageError("DB::open needs a storage");
  check_branch_name("objects:" + options.name);
  std::shared_ptr<DB> db(new DB(std::move(storage), std::move(options)));
  db->create_root();
  return db;
}

DB::DB(std::shared_ptr<Storage> storage, DBOptions options)
    : storage_(std::move(storage)),
      options_(std::move(options)),
      registry_(options_.registry ? options_.registry : &TypeRegistry::global()) {
  // Listen first, then read the newest tid: a commit in between is both remembered and
  // covered (an invalidation of an object nobody has loaded is harmless).
  storage_->set_invalidation_listener(
      [this](Tid tid, const std::vector<Oid>& oids) { on_commit(tid, oids); });
  const Tid last = storage_->last_transaction();
  std::lock_guard lock(mutex_);
  if (last > last_tid_) last_tid_ = last;
  forgotten_upto_ = last_tid_;
}

DB::~DB() {
  storage_->set_invalidation_listener({});
  std::lock_guard lock(mutex_);
  idle_.clear();
}

void DB::create_root() {
  if (storage_->load(kRootOid)) return;
  std::string data;
  encode_header(data, PersistentMap::kTypeName, 1);
  StateWriter w(data);
  w.begin_map(0);
  CommitRequest req;
  req.meta.description = "xact: create the root mapping";
  req.writes.push_back(ObjectWrite{kRootOid, kNoTid, std::move(data)});
  try {
    storage_->commit_one_phase(std::move(req));
  } catch (const ConflictError&) {
    // Another DB over the same storage created it first.
  }
}

void DB::on_commit(Tid tid, const std::vector<Oid>& oids) {
  std::lock_guard lock(mutex_);
  history_.emplace_back(tid, oids);
  while (history_.size() > options_.invalidation_history) {
    forgotten_upto_ = history_.front().first;
    history_.pop_front();
  }
  if (tid > last_tid_) last_tid_ = tid;
}

Tid DB::last_transaction() const {
  std::lock_guard lock(mutex_);
  return last_tid_;
}

bool DB::invalidations(Tid from, Tid& to, std::vector<std::pair<Tid, Oid>>& out) const {
  return invalidations(from, kMaxTid, to, out);
}

bool DB::invalidations(Tid from, Tid limit, Tid& to,
                       std::vector<std::pair<Tid, Oid>>& out) const {
  std::lock_guard lock(mutex_);
  to = std::min(last_tid_, limit);
  if (from >= to) return true;
  if (from < forgotten_upto_) return false;
  auto it = std::upper_bound(history_.begin(), history_.end(), from,
                             [](Tid v, const auto& e) { return v < e.first; });
  for (; it != history_.end() && it->first <= to; ++it) {
    for (Oid oid : it->second) out.emplace_back(it->first, oid);
  }
  return true;
}

ConnectionHandle DB::open(ConnectionOptions options) {
  std::shared_ptr<Connection> conn;
  if (!options.at && !options.read_only) {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn) {
    conn.reset(new Connection(*this, options.at, options.read_only));
  }
  conn->opened(options.manager, nullptr);
  return ConnectionHandle(shared_from_this(), std::move(conn));
}

ConnectionHandle DB::open_member(TransactionManager* manager, std::shared_ptr<ConnectionSet> set) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (!conn) conn.reset(new Connection(*this, std::nullopt, false));
  conn->opened(manager, std::move(set));
  return ConnectionHandle(shared_from_this(), std::move(conn));
}

std::shared_ptr<Databases> DB::databases() const {
  std::lock_guard lock(mutex_);
  return databases_.lock();
}

ConnectionHandle DB::open_historical(Tid tid) {
  ConnectionOptions o;
  o.at = tid;
  return open(o);
}

void DB::release(const std::shared_ptr<Connection>& conn) noexcept {
  if (!conn->released() || conn->read_only()) return;
  std::lock_guard lock(mutex_);
  if (idle_.size() < options_.pool_size) idle_.push_back(conn);
}

std::size_t DB::pool_idle() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

RecoveryTarget DB::recovery_target() const {
  return RecoveryTarget{resource_name(), storage_, nullptr};
}

}  // namespace xact::objectstore
