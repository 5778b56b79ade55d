#include <xact/objectstore/persistent.hpp>

#include <xact/errors.hpp>
#include <xact/objectstore/connection.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/registry.hpp>

namespace xact::objectstore {

Persistent::~Persistent() = default;

const std::string& Persistent::type_name() const {
  if (!type_) {
    type_ = TypeRegistry::global().find(typeid(*this));
    if (!type_) {
      throw UsageError(std::string("persistent type ") + typeid(*this).name() +
                       " is not registered: register it with XACT_PERSISTENT_TYPE or "
                       "TypeRegistry::add before storing it");
    }
  }
  return type_->name;
}

std::string Persistent::database_name() const {
  if (!jar_) return {};
  return jar_->db().name();
}

void Persistent::mark_changed() {
  if (!jar_) {
    if (state_ == ObjectState::unsaved) return;  // it is written when added or reached
    // Its connection is gone (closed and not pooled: pool full, pool_size 0, historical).
    // Nothing would write this change: refuse it rather than let commit() lose it.
    throw UsageError("object " + oid_repr(oid_) +
                     " belongs to a connection that was closed: a change to it would not be "
                     "part of any transaction and would be lost. Load the object again from "
                     "an open connection (Connection::get, or through the root) and change "
                     "that one");
  }
  if (state_ == ObjectState::changed) return;
  if (state_ == ObjectState::ghost) activate();
  jar_->register_changed(*this);
}

void Persistent::activate() const {
  if (state_ != ObjectState::ghost) return;
  if (!jar_) {
    throw UsageError("object " + oid_repr(oid_) +
                     " is a ghost whose connection is closed: load it again from an open "
                     "connection");
  }
  jar_->load_state(const_cast<Persistent&>(*this));
}

[[noreturn]] void throw_wrong_reference_type(const Persistent& target, const char* wanted) {
  std::string have;
  try {
    have = target.type_name();
  } catch (const std::exception&) {
    have = typeid(target).name();
  }
  throw StateError("object " + oid_repr(target.oid()) + " is a " + have +
                   ", not the type the reference expects (" + wanted +
                   "): check the program's types or the stored data");
}

namespace detail {

namespace {

[[noreturn]] void throw_cross_database(Oid oid, const Connection& writer) {
  throw InvalidObjectReference(
      "a reference to object " + oid_repr(oid) + " of another database is written into " +
      writer.db().resource_name() + " (by " + writer.describe_writing() +
      "), but the target's connection is not of the writer's connection set: an oid names an "
      "object of one database only. Reach the other database through "
      "conn->get_connection(\"name\") (both databases in one Databases registry), or store "
      "the object in this database, and abort this transaction");
}

// The connection of `writer`'s set that holds `target`'s database, or null.
Connection* set_connection_for(const Connection& writer, const Connection& target) {
  Connection* m = writer.set_member(target.db().name());
  return m == &target ? m : nullptr;
}

}  // namespace

RefBase::RefBase(Connection* jar, Oid oid)
    : jar_(jar), database_(jar ? &jar->db() : nullptr), oid_(oid), bound_(true) {}

RefBase::RefBase(std::shared_ptr<Persistent> target) {
  if (!target) return;
  if (target->connection()) {
    // Named by oid: the reference does not keep the object in memory, so the cache can free
    // it; it is loaded again when the reference is used.
    jar_ = target->connection();
    database_ = &jar_->db();
    oid_ = target->oid();
    bound_ = true;
    return;
  }
  // Unsaved: held until a commit writes the reference and gives the object its oid.
  strong_ = std::move(target);
}

Oid RefBase::oid() const noexcept {
  if (bound_) return oid_;
  if (strong_ && strong_->connection()) return strong_->oid();
  return 0;
}

bool RefBase::has_oid() const noexcept { return bound_ || (strong_ && strong_->connection()); }

Persistent* RefBase::raw() const {
  if (strong_) return strong_.get();
  if (!bound_) throw UsageError("dereferencing a null persistent reference");
  if (!jar_) {
    throw UsageError("reference to object " + oid_repr(oid_) +
                     " was read outside a connection: load it through a connection");
  }
  Connection* home = jar_;
  if (!xdb_.empty()) {
    // Asked of the holder's connection each time: its set (and so the target's connection)
    // changes when the holder's connection is pooled and opened again.
    Connection* now = &jar_->get_connection(xdb_);
    if (now != xjar_) {
      xjar_ = now;
      cached_ = nullptr;
    }
    home = xjar_;
  }
  if (cached_ && cached_generation_ == home->eviction_generation()) return cached_;
  try {
    cached_ = home->resolve(oid_);
  } catch (const ObjectNotFoundError& e) {
    if (dynamic_cast<const DanglingReferenceError*>(&e)) throw;
    throw DanglingReferenceError(xdb_.empty() ? home->db().name() : xdb_, oid_, e.what());
  }
  cached_generation_ = home->eviction_generation();
  return cached_;
}

std::shared_ptr<Persistent> RefBase::get_object() const {
  if (strong_) return strong_;
  if (!bound_) return nullptr;
  if (!jar_) raw();  // throws the explanation
  if (!xdb_.empty()) {
    raw();  // resolves xjar_, and the typed error for a dangling target
    return xjar_->get(oid_);
  }
  try {
    return jar_->get(oid_);
  } catch (const ObjectNotFoundError& e) {
    if (dynamic_cast<const DanglingReferenceError*>(&e)) throw;
    throw DanglingReferenceError(jar_->db().name(), oid_, e.what());
  }
}

namespace {

// Writes a reference to object `oid` of `target_db` (another database than the writer's).
void write_cross(StateWriter& out, Connection* writer, const std::string& target_db, Oid oid,
                 std::string type_name) {
  CrossReference x{target_db, oid, std::move(type_name)};
  if (writer) writer->check_xref(x);
  if (x.type_name.empty()) {
    throw InvalidObjectReference("a cross-database reference to database '" + target_db +
                                 "', object " + oid_repr(oid) +
                                 " whose type is unknown (no such object there)");
  }
  out.write_typed_xref(x);
}

}  // namespace

void RefBase::save(StateWriter& out) const {
  Connection* c = out.connection();
  if (strong_) {
    Connection* target = strong_->connection();
    if (!c && !target) {
      throw UsageError(
          "a reference to a new object can only be written by a connection "
          "(the object gets its oid there)");
    }
    if (c && target && target != c) {
      Connection* member = set_connection_for(*c, *target);
      if (!member) {
        if (&target->db() != &c->db()) throw_cross_database(strong_->oid(), *c);
        throw UsageError("object " + oid_repr(strong_->oid()) +
                         " belongs to another connection: a reference cannot cross connections");
      }
      if (const std::string* first = target->placed_by(*strong_)) {
        throw InvalidObjectReference(
            "a new object (" + strong_->type_name() +
            ") is reachable from two databases without being placed: " + *first + " and " +
            c->describe_writing() +
            " both refer to it. Place it explicitly with add() on the connection of the "
            "database it belongs in, then commit again; nothing of this transaction is written");
      }
      write_cross(out, c, target->db().name(), strong_->oid(), strong_->type_name());
      // From now on the reference is what a load of the record makes of it: the holder's
      // connection and the target's database name, resolved through the holder's connection
      // set when used. Never the target's connection itself: that one goes back to its pool
      // with the set, while the holder (cached in its own connection) may outlive the set.
      jar_ = c;
      database_ = nullptr;
      xdb_ = target->db().name();
      xtype_ = strong_->type_name();
      xjar_ = nullptr;
      oid_ = strong_->oid();
      bound_ = true;
      strong_.reset();
      cached_ = nullptr;
      return;
    }
    const Oid oid = target ? strong_->oid() : c->oid_for_reference(strong_);
    out.write_ref(oid);
    // From now on the object is named by its oid (the connection holds it until the commit
    // ends), so this reference no longer keeps it in memory.
    jar_ = strong_->connection();
    database_ = &jar_->db();
    oid_ = oid;
    bound_ = true;
    strong_.reset();
    cached_ = nullptr;
    return;
  }
  if (!bound_) {
    out.write_none();
    return;
  }
  if (!xdb_.empty()) {
    // Read as a cross-database reference.
    if (c && c->db().name() == xdb_) {
      out.write_ref(oid_);
      return;
    }
    write_cross(out, c, xdb_, oid_, xtype_);
    return;
  }
  if (c && database_ && database_ != &c->db()) {
    Connection* member = jar_ ? set_connection_for(*c, *jar_) : nullptr;
    if (!member) throw_cross_database(oid_, *c);
    std::string type_name = member->stored_type_name(oid_);
    write_cross(out, c, member->db().name(), oid_, type_name);
    // As a load of the record would make it (see the unsaved case above): held by the writing
    // connection, resolved through its set, never through the target's pooled connection.
    xdb_ = member->db().name();
    xtype_ = std::move(type_name);
    jar_ = c;
    database_ = nullptr;
    xjar_ = nullptr;
    cached_ = nullptr;
    return;
  }
  out.write_ref(oid_);
}

void RefBase::load(StateReader& in) {
  strong_.reset();
  cached_ = nullptr;
  xjar_ = nullptr;
  xdb_.clear();
  xtype_.clear();
  if (in.read_none()) {
    bound_ = false;
    jar_ = nullptr;
    oid_ = 0;
    return;
  }
  // Decoded outside a connection (tools), the reference names its oid but cannot load it.
  jar_ = in.connection();
  database_ = jar_ ? &jar_->db() : nullptr;
  bound_ = true;
  const Tag tag = in.peek();
  if (tag == Tag::typed_xref || tag == Tag::xref) {
    CrossReference x;
    if (tag == Tag::typed_xref) {
      x = in.read_typed_xref();
    } else {
      auto [d, o] = in.read_xref();
      x.database = std::move(d);
      x.oid = o;
    }
    oid_ = x.oid;
    if (jar_ && x.database == jar_->db().name()) return;  // names this very database
    xdb_ = std::move(x.database);
    xtype_ = std::move(x.type_name);
    database_ = nullptr;
    return;
  }
  oid_ = in.read_ref();
}

bool operator==(const RefBase& a, const RefBase& b) noexcept {
  if (a.is_null() || b.is_null()) return a.is_null() == b.is_null();
  if (a.strong_ && b.strong_) return a.strong_ == b.strong_;
  if (!a.has_oid() || !b.has_oid()) return false;
  return a.oid() == b.oid();
}

}  // namespace detail
}  // namespace xact::objectstore
