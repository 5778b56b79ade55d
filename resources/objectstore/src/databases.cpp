#include <xact/objectstore/databases.hpp>

#include <xact/errors.hpp>

namespace xact::objectstore {

std::shared_ptr<Databases> Databases::create() {
  return std::shared_ptr<Databases>(new Databases());
}

void Databases::add(std::shared_ptr<DB> db) {
  if (!db) throw UsageError("Databases::add of a null DB");
  std::lock_guard lock(mutex_);
  for (const auto& d : dbs_) {
    if (d->name() == db->name()) {
      throw UsageError("a database named '" + db->name() +
                       "' is already registered: give each database of a registry its own "
                       "name (DBOptions::name)");
    }
  }
  {
    std::lock_guard dl(db->mutex_);
    if (!db->databases_.expired()) {
      throw UsageError("database '" + db->name() + "' is already in another registry");
    }
    db->databases_ = weak_from_this();
  }
  dbs_.push_back(std::move(db));
}

std::shared_ptr<DB> Databases::get(const std::string& name) const {
  std::lock_guard lock(mutex_);
  std::string known;
  for (const auto& d : dbs_) {
    if (d->name() == name) return d;
    known += (known.empty() ? "" : ", ") + d->name();
  }
  throw UsageError("no database named '" + name + "' in the registry (it has: " +
                   (known.empty() ? "none" : known) + ")");
}

std::shared_ptr<DB> Databases::default_database() const {
  std::lock_guard lock(mutex_);
  if (dbs_.empty()) throw UsageError("the database registry is empty: add a database first");
  return dbs_.front();
}

std::vector<std::string> Databases::names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& d : dbs_) out.push_back(d->name());
  return out;
}

ConnectionHandle Databases::open(ConnectionOptions options) {
  return default_database()->open(std::move(options));
}

std::unordered_map<const DB*, Tid> Databases::snapshot_points() const {
  std::lock_guard commit(commit_mutex_);
  std::lock_guard lock(mutex_);
  std::unordered_map<const DB*, Tid> out;
  for (const auto& d : dbs_) out.emplace(d.get(), d->last_transaction());
  return out;
}

void Databases::set_xref_policy(XrefPredicate predicate) {
  std::lock_guard lock(mutex_);
  policy_ = std::move(predicate);
}

void Databases::set_type_xref_policy(const std::string& type_name, XrefPredicate predicate) {
  std::lock_guard lock(mutex_);
  type_policies_[type_name] = std::move(predicate);
}

std::optional<bool> Databases::decide_xref(const Persistent* referrer,
                                           const XrefCheck& check) const {
  if (referrer) {
    if (auto d = referrer->check_xref(check)) return d;
  }
  XrefPredicate type_policy, registry_policy;
  {
    std::lock_guard lock(mutex_);
    if (auto it = type_policies_.find(check.referrer_type); it != type_policies_.end()) {
      type_policy = it->second;
    }
    registry_policy = policy_;
  }
  if (type_policy) return type_policy(check);
  if (registry_policy) return registry_policy(check);
  return std::nullopt;
}

// --- ConnectionSet ----------------------------------------------------------------------------

Tid ConnectionSet::snapshot_for(const Connection& conn) {
  const DB* db = &conn.db();
  if (points_.empty() || consumed_.count(&conn) || !points_.count(db)) {
    points_ = databases_->snapshot_points();
    consumed_.clear();
  }
  consumed_.insert(&conn);
  auto it = points_.find(db);
  return it == points_.end() ? db->last_transaction() : it->second;
}

void ConnectionSet::before_finish() {
  if (prepared_ >= 2 && !finishing_.owns_lock()) {
    finishing_ = std::unique_lock(databases_->commit_mutex());
  }
}

void ConnectionSet::after_finish() noexcept {
  if (prepared_ > 0) --prepared_;
  if (prepared_ == 0 && finishing_.owns_lock()) finishing_.unlock();
}

void ConnectionSet::transaction_ended() noexcept {
  prepared_ = 0;
  placed_by_.clear();
  if (finishing_.owns_lock()) finishing_.unlock();
}

}  // namespace xact::objectstore
