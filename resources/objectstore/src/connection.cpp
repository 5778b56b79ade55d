#include <xact/objectstore/connection.hpp>

#include <algorithm>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/objectstore/databases.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/transaction.hpp>

namespace xact::objectstore {

namespace {

// A commit retries its prepare after merging a conflict; another commit may win again in
// between. Past this many rounds the conflict stands and the application retries.
constexpr int kMaxResolutionRounds = 8;

std::string describe_object(const Persistent& o) {
  std::string type;
  try {
    type = o.type_name();
  } catch (const std::exception&) {
    type = typeid(o).name();
  }
  return "object " + oid_repr(o.oid()) + " (" + type + ")";
}

}  // namespace

// Registered with the transaction manager: moves the snapshot at each new transaction, and
// tidies up after each one. Separate from the Connection so that releasing the connection
// drops it from the manager (managers hold synchronizers weakly).
class Connection::Sync final : public Synchronizer {
 public:
  explicit Sync(Connection* c) : conn_(c) {}
  void attach(Connection* c) { conn_ = c; }
  void new_transaction(Transaction&) override {
    if (conn_ && !conn_->bound_) conn_->new_transaction();
  }
  void before_completion(Transaction&) override {
    if (conn_ && conn_->debug_writes_) conn_->check_unmarked_changes();
  }
  void after_completion(Transaction& txn) override {
    if (conn_ && !conn_->bound_ && (!conn_->joined_ || conn_->joined_ == &txn)) {
      conn_->transaction_ended();
    }
  }
  void manager_destroyed() noexcept override {
    if (conn_) conn_->manager_destroyed();
  }

 private:
  Connection* conn_;
};

// A savepoint of one connection: the encoded states of the objects changed so far.
class ConnectionSavepoint final : public ResourceSavepoint {
 public:
  ConnectionSavepoint(Connection& c) : conn_(c.weak_from_this()) {
    for (const auto& o : c.changed_) {
      std::string data;
      const TypeInfo* t = c.registry_.find(typeid(*o));
      encode_header(data, t->name, t->version);
      StateWriter w(data, &c);
      c.encoding_ = o.get();
      try {
        o->save(w);
      } catch (...) {
        c.encoding_ = nullptr;
        throw;
      }
      c.encoding_ = nullptr;
      saved_.push_back({o, o->oid(), std::move(data), c.added_.count(o->oid()) > 0});
    }
    read_checks_ = c.read_checks_;
  }

  void rollback() override {
    auto c = conn_.lock();
    if (!c) throw UsageError("savepoint of a connection that is gone");
    std::unordered_set<const Persistent*> keep;
    for (const auto& s : saved_) keep.insert(s.object.get());
    // Objects changed after the savepoint go back to their committed state (ghosts) or, when
    // they were added after it, leave the connection.
    for (const auto& o : c->changed_) {
      if (keep.count(o.get())) continue;
      if (c->added_.count(o->oid())) {
        c->added_.erase(o->oid());
        c->detach(*o);
      } else {
        c->ghostify(*o);
      }
    }
    c->changed_.clear();
    for (const auto& s : saved_) {
      Persistent& o = *s.object;
      const RecordHeader h = decode_header(s.data);
      if (o.state_ == ObjectState::unsaved || o.jar_ != c.get()) {
        // Detached by a rollback to an earlier savepoint: join again.
        o.jar_ = c.get();
        o.oid_ = s.oid;
        o.serial_ = kNoTid;
        c->objects_[o.oid_] = s.object;
        ++c->non_ghosts_;
      } else if (o.state_ == ObjectState::ghost) {
        ++c->non_ghosts_;
      }
      o.clear();
      StateReader r(std::string_view(s.data).substr(h.state_offset), c.get(), describe_object(o));
      o.load(r, h.version);
      o.state_ = ObjectState::changed;
      c->changed_.push_back(s.object);
      if (s.added) c->added_.insert(o.oid_);
    }
    c->read_checks_ = read_checks_;
    c->request_.reset();
  }

 private:
  struct Saved {
    std::shared_ptr<Persistent> object;
    Oid oid;
    std::string data;
    bool added;
  };
  std::weak_ptr<Connection> conn_;
  std::vector<Saved> saved_;
  std::unordered_map<Oid, Tid> read_checks_;
};

Connection::Connection(DB& db, std::optional<Tid> at, bool read_only)
    : db_(&db),
      storage_(db.storage_ptr()),
      registry_(db.registry()),
      read_only_(read_only || at.has_value()),
      historical_(at.has_value()),
      snapshot_(at.value_or(kNoTid)),
      cache_size_(db.options().cache_size),
      debug_writes_(db.options().debug_writes) {}

Connection::~Connection() {
  // Objects the application still holds outlive the connection: they must not call back.
  for (auto& [oid, o] : objects_) o->jar_ = nullptr;
  for (auto& o : changed_) o->jar_ = nullptr;
}

std::string Connection::resource_name() const { return db_->resource_name(); }

RecoverableResource* Connection::recoverable() noexcept { return storage_.get(); }

// --- opening, snapshots, transactions ----------------------------------------------------------

void Connection::opened(TransactionManager* manager, std::shared_ptr<ConnectionSet> set) {
  manager_ = manager ? manager : &current_manager();
  close_pending_ = false;
  closed_ = false;
  set_.reset();
  if (!historical_) {
    if (set) {
      set_ = std::move(set);
    } else if (auto dbs = db_->databases()) {
      set_ = std::make_shared<ConnectionSet>(std::move(dbs));
      set_->primary_ = this;
    }
    // Registered before it is attached: a manager with an open transaction tells a new
    // synchronizer new_transaction at once, and the snapshot is taken here, once (a second
    // request in the same transaction would move a connection set's common point).
    sync_ = std::make_shared<Sync>(nullptr);
    manager_->register_synchronizer(sync_);
    sync_->attach(this);
    apply_invalidations();
  }
}

void Connection::close_secondaries() noexcept {
  if (!set_ || set_->primary_ != this) return;
  std::shared_ptr<ConnectionSet> keep = set_;
  std::vector<ConnectionHandle> handles = std::move(keep->secondary_);
  keep->secondary_.clear();
  handles.clear();  // each goes back to its DB (or finishes its transaction first)
}

void Connection::leave_set() noexcept {
  if (!set_) return;
  if (set_->primary_ == this) set_->primary_ = nullptr;
  set_.reset();
}

Connection& Connection::get_connection(const std::string& name) {
  if (closed_) check_open();
  if (name == db_->name()) return *this;
  if (historical_) {
    throw UsageError("get_connection('" + name + "') of a historical connection to " +
                     db_->resource_name() +
                     ": historical connections belong to no connection set; open a historical "
                     "connection of that database itself");
  }
  if (!set_) {
    throw UsageError("get_connection('" + name + "'): database '" + db_->name() +
                     "' is in no registry; add the databases to one Databases registry "
                     "(Databases::add) before opening connections");
  }
  if (set_->primary_ && set_->primary_->db_->name() == name) return *set_->primary_;
  for (auto& h : set_->secondary_) {
    if (h->db().name() == name) return *h;
  }
  if (!set_->primary_) {
    throw UsageError("get_connection('" + name + "') of a connection whose set was closed");
  }
  auto db = set_->databases().get(name);
  ConnectionHandle h = db->open_member(manager_, set_);
  Connection& c = *h;
  set_->secondary_.push_back(std::move(h));
  if (bound_) c.join_transaction(*bound_);
  return c;
}

bool Connection::released() noexcept {
  close_secondaries();
  if (joined_ || bound_) {
    close_pending_ = true;  // tidied up when the transaction ends; not pooled
    return false;
  }
  // From here on the connection may serve someone else (the pool): objects the closed
  // handle's user still holds must not join transactions through it, nor load through it.
  closed_ = true;
  leave_set();
  if (sync_ && manager_) {
    try {
      manager_->unregister_synchronizer(*sync_);
    } catch (...) {
    }
    sync_.reset();
  }
  return !historical_;
}

void Connection::transaction_ended() noexcept {
  if (joined_) reset_transaction();  // normally done by tpc_finish / abort already
  bound_ = nullptr;
  if (set_) set_->transaction_ended();
  // Like ZODB: after a commit or abort the connection reads the newest state (also outside
  // a transaction), and the next transaction starts from there.
  if (!historical_ && !close_pending_) apply_invalidations();
  cache_gc();
  if (close_pending_) {
    closed_ = true;
    leave_set();
  }
  if (close_pending_ && sync_ && manager_) {
    try {
      manager_->unregister_synchronizer(*sync_);
    } catch (...) {
    }
    sync_.reset();
  }
}

void Connection::manager_destroyed() noexcept {
  // Its open transaction was aborted just before (which reset ours): nothing is joined.
  manager_ = nullptr;
  sync_.reset();
}

void Connection::check_open() const {
  if (closed_) {
    throw UsageError(
        "connection to " + db_->resource_name() +
        " is closed (its ConnectionHandle was closed or destroyed, and it may be back in the "
        "pool serving someone else): objects loaded through it can no longer be loaded or "
        "changed, or the change would go into someone else's transaction. Open a connection "
        "(DB::open) and load the object again through it");
  }
  if (!manager_) {
    throw UsageError("connection to " + db_->resource_name() +
                     " has no transaction manager any more: the one it was opened with was "
                     "destroyed. Open a new connection with a live manager");
  }
}

void Connection::new_transaction() {
  if (historical_) return;
  if (joined_) reset_transaction();
  apply_invalidations();
}

void Connection::sync() {
  if (closed_) check_open();
  if (historical_) return;
  if (!changed_.empty()) {
    throw UsageError("sync() of a connection with uncommitted changes: commit or abort first");
  }
  apply_invalidations();
}

void Connection::apply_invalidations() {
  Tid to = kNoTid;
  std::vector<std::pair<Tid, Oid>> entries;
  // In a connection set: the point taken for every database at once.
  const Tid limit = set_ ? set_->snapshot_for(*this) : kMaxTid;
  const bool complete = db_->invalidations(snapshot_, limit, to, entries);
  if (to <= snapshot_) return;
  if (!complete) {
    for (auto& [oid, o] : objects_) {
      if (o->state_ == ObjectState::up_to_date && o->serial_ < to) {
        ghostify(*o);
        ++stats_.invalidations;
      }
    }
  } else {
    for (const auto& [tid, oid] : entries) {
      auto it = objects_.find(oid);
      if (it == objects_.end()) continue;
      Persistent& o = *it->second;
      // Our own commits leave objects at that very serial: nothing to reload.
      if (o.state_ == ObjectState::up_to_date && o.serial_ < tid) {
        ghostify(o);
        ++stats_.invalidations;
      }
    }
  }
  snapshot_ = to;
}

Transaction& Connection::current_transaction() {
  if (bound_) return *bound_;
  check_open();
  return manager_->get();
}

void Connection::join_transaction(Transaction& txn) {
  if (bound_ == &txn) return;
  if (closed_) check_open();
  if (bound_ || joined_) {
    throw UsageError("connection to " + db_->resource_name() +
                     " is still part of an unfinished transaction: commit or abort it first");
  }
  bound_ = &txn;
  if (!historical_) apply_invalidations();
  std::weak_ptr<Connection> self = weak_from_this();
  auto ended = [self] {
    if (auto c = self.lock()) c->transaction_ended();
  };
  txn.add_after_commit_hook([ended](bool) { ended(); });
  txn.add_after_abort_hook(ended);
}

void Connection::check_writable() const {
  if (historical_) {
    throw UsageError("historical connection to " + db_->resource_name() +
                     " is read-only: open a regular connection to change objects");
  }
  if (read_only_) {
    throw UsageError("connection to " + db_->resource_name() +
                     " was opened read-only: open a regular connection to change objects");
  }
}

void Connection::ensure_joined() {
  if (closed_) check_open();
  check_writable();
  Transaction& txn = current_transaction();
  if (joined_ == &txn) return;
  if (joined_) {
    throw UsageError("connection to " + db_->resource_name() +
                     " has changes in another, unfinished transaction: commit or abort it");
  }
  if (!txn.has_joined(*this) && txn.has_participant_named(resource_name())) {
    throw UsageError(
        "a second connection to database '" + db_->name() + "' (resource " + resource_name() +
        ") tried to join a transaction that another connection to it already joined: one "
        "transaction holds at most one connection per database. Use one connection per "
        "database and transaction (for another database of the registry: "
        "conn->get_connection(\"name\"), which gives the set's connection), or commit the "
        "other connection's transaction first");
  }
  txn.join(shared_from_this());
  joined_ = &txn;
}

// --- objects -----------------------------------------------------------------------------------

std::shared_ptr<PersistentMap> Connection::root() { return get<PersistentMap>(kRootOid); }

std::shared_ptr<Persistent> Connection::get(Oid oid) {
  if (closed_) check_open();
  if (auto it = objects_.find(oid); it != objects_.end()) return it->second;
  return load_object(oid);
}

Persistent* Connection::resolve(Oid oid) {
  if (closed_) check_open();
  if (auto it = objects_.find(oid); it != objects_.end()) return it->second.get();
  return load_object(oid).get();
}

std::shared_ptr<Persistent> Connection::load_object(Oid oid) {
  auto rev = storage_->load(oid, snapshot_);
  if (!rev) {
    throw ObjectNotFoundError(oid, "no revision in the snapshot as of " + tid_repr(snapshot_) +
                                       " of " + storage_->describe() +
                                       " (a dangling reference, an object created later, or "
                                       "an oid of another database)");
  }
  const RecordHeader h = decode_header(rev->data);
  const TypeInfo* t = registry_.find(h.type_name);
  if (!t) {
    throw StateError("object " + oid_repr(oid) + " is stored as type '" + h.type_name +
                     "', which is not registered: register the type (XACT_PERSISTENT_TYPE) "
                     "or, if it was renamed, its old name as an alias");
  }
  auto obj = t->factory();
  obj->jar_ = this;
  obj->oid_ = oid;
  obj->type_ = t;
  obj->state_ = ObjectState::ghost;
  decode_into(*obj, *rev, t);
  objects_.emplace(oid, obj);
  return obj;
}

void Connection::load_state(Persistent& object) {
  if (closed_) check_open();
  auto rev = storage_->load(object.oid_, snapshot_);
  if (!rev) {
    // The object was referred to (it is in the cache), and its state is gone: expired from
    // a memory database, or packed away.
    throw DanglingReferenceError(db_->name(), object.oid_,
                                 "no revision in the snapshot as of " + tid_repr(snapshot_) +
                                     " of " + storage_->describe());
  }
  decode_into(object, *rev, nullptr);
}

void Connection::decode_into(Persistent& object, const Revision& rev, const TypeInfo* known) {
  const RecordHeader h = decode_header(rev.data);
  const TypeInfo* t = known ? known : registry_.find(h.type_name);
  if (!t || t->cpp_type != std::type_index(typeid(object))) {
    throw StateError("object " + oid_repr(object.oid_) + " is now stored as type '" + h.type_name +
                     "', which is not the type of the object in memory (" + typeid(object).name() +
                     "): register aliases consistently");
  }
  if (h.version > t->version) {
    throw StateError("object " + oid_repr(object.oid_) + " (" + t->name +
                     ") was written with state version " + std::to_string(h.version) +
                     ", newer than this program's version " + std::to_string(t->version) +
                     ": upgrade the program");
  }
  StateReader r(std::string_view(rev.data).substr(h.state_offset), this,
                "object " + oid_repr(object.oid_) + " (" + t->name + ")");
  try {
    object.load(r, h.version);
    if (!r.at_end()) r.fail("state has bytes left over after load(): load() and save() disagree");
  } catch (...) {
    try {
      object.clear();
    } catch (...) {
    }
    throw;
  }
  object.type_ = t;
  object.serial_ = rev.serial;
  object.state_ = ObjectState::up_to_date;
  object.referenced_ = true;
  ++non_ghosts_;
  ++stats_.loads;
  if (debug_writes_) loaded_bytes_[object.oid_] = rev.data;
}

std::shared_ptr<Persistent> Connection::decode_fresh(Oid oid, const std::string& data) {
  const RecordHeader h = decode_header(data);
  const TypeInfo* t = registry_.find(h.type_name);
  if (!t) throw StateError("type '" + h.type_name + "' is not registered");
  auto obj = t->factory();
  obj->oid_ = oid;
  obj->type_ = t;
  StateReader r(std::string_view(data).substr(h.state_offset), this,
                "object " + oid_repr(oid) + " (" + t->name + ")");
  obj->load(r, h.version);
  obj->state_ = ObjectState::up_to_date;
  return obj;
}

Oid Connection::add(const std::shared_ptr<Persistent>& object) {
  if (!object) throw UsageError("Connection::add of a null object");
  if (object->jar_ == this) return object->oid_;
  if (object->jar_) {
    throw UsageError(describe_object(*object) +
                     " belongs to another connection: an object lives in one connection");
  }
  const TypeInfo* t = registry_.find(typeid(*object));
  if (!t) {
    throw UsageError(std::string("persistent type ") + typeid(*object).name() +
                     " is not registered: register it with XACT_PERSISTENT_TYPE or "
                     "TypeRegistry::add before storing it");
  }
  ensure_joined();
  const Oid oid = storage_->new_oid();
  object->jar_ = this;
  object->oid_ = oid;
  object->serial_ = kNoTid;
  object->type_ = t;
  object->state_ = ObjectState::changed;
  objects_.emplace(oid, object);
  changed_.push_back(object);
  added_.insert(oid);
  ++non_ghosts_;
  return oid;
}

Oid Connection::oid_for_reference(const std::shared_ptr<Persistent>& object) {
  const bool placing = object && !object->jar_;
  const Oid oid = add(object);
  if (placing && set_) set_->placed_by_[object.get()] = describe_writing();
  return oid;
}

const std::string* Connection::placed_by(const Persistent& object) const {
  if (!set_) return nullptr;
  auto it = set_->placed_by_.find(&object);
  return it == set_->placed_by_.end() ? nullptr : &it->second;
}

std::string Connection::describe_writing() const {
  std::string s = "database '" + db_->name() + "', ";
  return s + (encoding_ ? describe_object(*encoding_) : std::string("an object"));
}

Connection* Connection::set_member(const std::string& name) const noexcept {
  if (name == db_->name()) return const_cast<Connection*>(this);
  if (!set_) return nullptr;
  if (set_->primary_ && set_->primary_->db_->name() == name) return set_->primary_;
  for (auto& h : set_->secondary_) {
    if (h->db().name() == name) return h.get().get();
  }
  return nullptr;
}

std::string Connection::stored_type_name(Oid oid) {
  if (auto it = objects_.find(oid); it != objects_.end()) {
    try {
      return it->second->type_name();
    } catch (const std::exception&) {
    }
  }
  auto rev = storage_->load(oid, snapshot_);
  return rev ? record_type_name(rev->data) : std::string();
}

void Connection::check_xref(const CrossReference& target) const {
  const XrefPolicy policy = db_->options().xrefs;
  if (policy != XrefPolicy::forbid) xrefs_written_.emplace_back(target.database, target.oid);
  if (policy == XrefPolicy::allow) return;
  XrefCheck check;
  check.referrer_database = db_->name();
  check.referrer_oid = encoding_ ? encoding_->oid_ : 0;
  if (encoding_) {
    try {
      check.referrer_type = encoding_->type_name();
    } catch (const std::exception&) {
    }
  }
  check.target_database = target.database;
  check.target_oid = target.oid;
  check.target_type = target.type_name;
  std::string rule;
  if (policy == XrefPolicy::forbid) {
    rule = "database '" + db_->name() + "' has xrefs = forbid";
  } else {
    std::optional<bool> decision;
    if (set_) decision = set_->databases().decide_xref(encoding_, check);
    if (decision && *decision) return;
    rule = decision ? "database '" + db_->name() +
                          "' has xrefs = check, and the policy (the referring type's check_xref, "
                          "its registered predicate or the registry's) refused it"
                    : "database '" + db_->name() +
                          "' has xrefs = check, and no policy (the referring type's check_xref, "
                          "a predicate registered for it, or the registry's) decides";
  }
  throw InvalidObjectReference(
      "cross-database reference refused: the referrer " + describe_writing() +
      " refers to the target database '" + target.database + "', object " +
      oid_repr(target.oid) + " (" + (target.type_name.empty() ? "?" : target.type_name) +
      "); rule: " + rule +
      ". Nothing of the transaction is written: store the object in the referrer's database, "
      "keep a key instead of a reference, or allow the reference by policy");
}

void Connection::register_changed(Persistent& object) {
  if (object.state_ != ObjectState::up_to_date) return;
  ensure_joined();
  auto it = objects_.find(object.oid_);
  if (it == objects_.end() || it->second.get() != &object) {
    throw UsageError(describe_object(object) +
                     " is not in its connection's cache any more "
                     "(its connection was closed or reopened): load it again and change that");
  }
  object.state_ = ObjectState::changed;
  changed_.push_back(it->second);
}

void Connection::read_current(const Persistent& object) {
  if (object.jar_ != this) {
    throw UsageError("read_current() of an object of another connection (or an unsaved one)");
  }
  object.activate();
  if (added_.count(object.oid_)) return;  // new: nobody else can have changed it
  ensure_joined();
  read_checks_.emplace(object.oid_, object.serial_);
}

void Connection::ghostify(Persistent& o) noexcept {
  if (o.state_ == ObjectState::ghost || o.state_ == ObjectState::unsaved) return;
  try {
    o.clear();
  } catch (const std::exception& e) {
    log(LogLevel::warning, std::string("objectstore: clear() of an object threw: ") + e.what());
  } catch (...) {
  }
  o.state_ = ObjectState::ghost;
  --non_ghosts_;
  loaded_bytes_.erase(o.oid_);
}

void Connection::detach(Persistent& o) noexcept {
  if (o.state_ != ObjectState::ghost && o.state_ != ObjectState::unsaved) --non_ghosts_;
  objects_.erase(o.oid_);
  loaded_bytes_.erase(o.oid_);
  o.jar_ = nullptr;
  o.oid_ = 0;
  o.serial_ = kNoTid;
  o.state_ = ObjectState::unsaved;
  ++eviction_generation_;
}

// --- cache -------------------------------------------------------------------------------------

bool Connection::evictable(const std::shared_ptr<Persistent>& o) const noexcept {
  // Only the identity map holds it: nobody can be looking at its state.
  return o->state_ == ObjectState::up_to_date && o.use_count() == 1;
}

void Connection::free_unheld_ghosts() noexcept {
  bool freed = false;
  for (auto it = objects_.begin(); it != objects_.end();) {
    if (it->second->state_ == ObjectState::ghost && it->second.use_count() == 1) {
      it->second->jar_ = nullptr;
      it = objects_.erase(it);
      freed = true;
      ++stats_.evictions;
    } else {
      ++it;
    }
  }
  if (freed) ++eviction_generation_;
}

void Connection::cache_gc() {
  if (non_ghosts_ > cache_size_) {
    // Second chance: objects used since the last pass lose their bit first.
    for (int pass = 0; pass < 2 && non_ghosts_ > cache_size_; ++pass) {
      for (auto& [oid, o] : objects_) {
        if (non_ghosts_ <= cache_size_) break;
        if (!evictable(o)) continue;
        if (pass == 0 && o->referenced_) {
          o->referenced_ = false;
          continue;
        }
        ghostify(*o);
        ++stats_.evictions;
      }
    }
  }
  if (objects_.size() > cache_size_) free_unheld_ghosts();
}

void Connection::cache_minimize() {
  for (auto& [oid, o] : objects_) {
    if (evictable(o)) {
      ghostify(*o);
      ++stats_.evictions;
    }
  }
  free_unheld_ghosts();
}

ConnectionStats Connection::stats() const {
  ConnectionStats s = stats_;
  s.objects = objects_.size();
  s.non_ghosts = non_ghosts_;
  return s;
}

// --- the two-phase commit ----------------------------------------------------------------------

void Connection::check_unmarked_changes() {
  for (const auto& [oid, o] : objects_) {
    if (o->state_ != ObjectState::up_to_date) continue;
    auto it = loaded_bytes_.find(oid);
    if (it == loaded_bytes_.end()) continue;
    std::string now;
    bool differs = false;
    try {
      encode_header(now, o->type_->name, o->type_->version);
      StateWriter w(now, nullptr);
      o->save(w);
      // An old-version record re-encodes in the new layout: compare only same-version states.
      differs = decode_header(it->second).version == o->type_->version && now != it->second;
    } catch (const UsageError&) {
      differs = true;  // it references a new object: it was changed
    }
    if (differs) {
      throw UsageError(describe_object(*o) +
                       " was changed without mark_changed() (debug_writes found its state "
                       "differs from the one loaded): call write_access() in the mutator, or "
                       "mark_changed(), before changing it; otherwise the change is lost");
    }
  }
}

CommitRequest Connection::build_request(Transaction& txn) {
  CommitRequest req;
  req.meta.user = txn.user();
  req.meta.description = txn.description();
  for (const auto& [k, v] : txn.extension()) req.meta.extension.emplace_back(k, v);
  // Encoding may add new objects reached through references: they are appended to changed_
  // and encoded by this same loop.
  for (std::size_t i = 0; i < changed_.size(); ++i) {
    std::shared_ptr<Persistent> o = changed_[i];
    ObjectWrite w;
    w.oid = o->oid_;
    w.base = o->serial_;
    encode_header(w.data, o->type_->name, o->type_->version);
    StateWriter out(w.data, this);
    encoding_ = o.get();
    try {
      o->save(out);
    } catch (...) {
      encoding_ = nullptr;
      throw;
    }
    encoding_ = nullptr;
    req.writes.push_back(std::move(w));
  }
  for (const auto& [oid, serial] : read_checks_) {
    auto it = objects_.find(oid);
    if (it != objects_.end() && it->second->state_ == ObjectState::changed) continue;
    req.read_checks.push_back({oid, serial});
  }
  return req;
}

void Connection::abort(Transaction&) noexcept { reset_transaction(); }

void Connection::tpc_begin(Transaction& txn) {
  if (!joined_) joined_ = &txn;  // joined by the application without a change
  if (joined_ != &txn) {
    throw UsageError("connection to " + db_->resource_name() +
                     " was asked to commit a transaction it did not join");
  }
}

void Connection::commit(Transaction& txn) {
  if (debug_writes_) check_unmarked_changes();
  request_ = build_request(txn);
  if (!request_->writes.empty() || !request_->read_checks.empty()) {
    request_->xid = txn.xid_for(*this);
  }
}

bool Connection::try_resolve(ObjectWrite& write, const ConflictError& conflict) {
  if (conflict.locked() || write.base == kNoTid || conflict.committed_serial() == kNoTid) {
    return false;
  }
  const RecordHeader h = decode_header(write.data);
  const TypeInfo* t = registry_.find(h.type_name);
  if (!t || !t->resolve) return false;
  auto old_data = storage_->load_serial(write.oid, write.base);
  auto committed_data = storage_->load_serial(write.oid, conflict.committed_serial());
  if (!old_data || !committed_data) return false;
  auto old_obj = decode_fresh(write.oid, *old_data);
  auto committed_obj = decode_fresh(write.oid, *committed_data);
  auto mine = decode_fresh(write.oid, write.data);
  if (!t->resolve(*old_obj, *committed_obj, *mine)) return false;
  write.data.clear();
  encode_header(write.data, t->name, t->version);
  StateWriter out(write.data, this);
  encoding_ = mine.get();
  try {
    mine->save(out);
  } catch (...) {
    encoding_ = nullptr;
    throw;
  }
  encoding_ = nullptr;
  write.base = conflict.committed_serial();
  resolved_.push_back(write.oid);
  ++stats_.conflicts_resolved;
  return true;
}

Tid Connection::commit_request(bool one_phase) {
  for (int round = 0;; ++round) {
    if (set_ && xrefs_written_.size() > xrefs_announced_) {
      // Before anything is written: a pack of a target's database keeps the targets.
      std::vector<std::pair<std::string, Oid>> fresh(
          xrefs_written_.begin() + static_cast<std::ptrdiff_t>(xrefs_announced_),
          xrefs_written_.end());
      xrefs_announced_ = xrefs_written_.size();  // released at the end even if this throws
      set_->databases().note_xrefs(this, fresh);
    }
    try {
      if (one_phase) return storage_->commit_one_phase(*request_);
      prepared_ = storage_->prepare(*request_);
      return kNoTid;
    } catch (const ConflictError& e) {
      if (round >= kMaxResolutionRounds) throw;
      auto it = std::find_if(request_->writes.begin(), request_->writes.end(),
                             [&](const ObjectWrite& w) { return w.oid == e.oid(); });
      if (it == request_->writes.end() || !try_resolve(*it, e)) throw;
    }
  }
}

Vote Connection::tpc_vote(Transaction&) {
  if (!request_ || (request_->writes.empty() && request_->read_checks.empty())) {
    reset_transaction();
    return Vote::read_only;
  }
  commit_request(false);
  if (set_) set_->prepared();
  return Vote::yes;
}

void Connection::tpc_finish(Transaction& txn) {
  if (!prepared_) return;  // idempotent
  Tid tid = kNoTid;
  // Finishing in two or more databases of a set: under the registry's commit lock, so no
  // set takes its snapshots between the finishes.
  struct Gate {
    ConnectionSet* set;
    ~Gate() {
      if (set) set->after_finish();
    }
  } gate{set_.get()};
  if (set_) set_->before_finish();
  try {
    // A sole voter's commit mark is the only record of the decision: durable before we return.
    tid = storage_->finish(*prepared_, /*durable=*/!txn.decision_recorded());
  } catch (...) {
    // Committed by the decision; recovery finishes the storage's part. Our states may not be
    // what the storage ends up with (a merge): reload them.
    reset_transaction();
    throw;
  }
  after_commit(tid);
}

void Connection::commit_one_phase(Transaction&, const CommitRecord*) {
  if (!request_ || (request_->writes.empty() && request_->read_checks.empty())) {
    reset_transaction();
    return;
  }
  request_->xid = Xid{};
  after_commit(commit_request(true));
}

void Connection::tpc_abort(Transaction&) noexcept {
  if (prepared_) {
    storage_->abort(*prepared_);  // noexcept: the storage logs and keeps a failure
    if (set_) set_->after_finish();
  }
  reset_transaction();
}

void Connection::after_commit(Tid tid) {
  for (const auto& o : changed_) {
    if (o->state_ != ObjectState::changed) continue;
    o->serial_ = tid;
    o->state_ = ObjectState::up_to_date;
  }
  if (debug_writes_ && request_) {
    for (auto& w : request_->writes) loaded_bytes_[w.oid] = std::move(w.data);
  }
  for (Oid oid : resolved_) {
    // The storage holds the merged state; ours is only "mine".
    if (auto it = objects_.find(oid); it != objects_.end()) ghostify(*it->second);
  }
  clear_transaction_state();
}

void Connection::reset_transaction() noexcept {
  for (const auto& o : changed_) {
    if (added_.count(o->oid_)) {
      detach(*o);
    } else if (o->state_ == ObjectState::changed) {
      o->state_ = ObjectState::up_to_date;  // so ghostify() counts it
      ghostify(*o);
    }
  }
  clear_transaction_state();
}

void Connection::clear_transaction_state() noexcept {
  if (xrefs_announced_ > 0 && set_) set_->databases().release_xrefs(this);
  xrefs_written_.clear();
  xrefs_announced_ = 0;
  changed_.clear();
  added_.clear();
  read_checks_.clear();
  resolved_.clear();
  request_.reset();
  prepared_.reset();
  joined_ = nullptr;
}

std::unique_ptr<ResourceSavepoint> Connection::savepoint(Transaction&) {
  return std::make_unique<ConnectionSavepoint>(*this);
}

}  // namespace xact::objectstore
