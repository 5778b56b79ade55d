// Persistent objects and persistent references.
//
// A persistent type derives from Persistent, is registered under a stable name
// (<xact/objectstore/registry.hpp>), and writes and reads its own state:
//
//   class Account : public xact::objectstore::Persistent {
//    public:
//     std::int64_t balance() const { read_access(); return balance_; }
//     void deposit(std::int64_t n) { write_access(); balance_ += n; }
//     void save(StateWriter& out) const override { out.write(balance_); out.write(owner_); }
//     void load(StateReader& in, std::uint32_t version) override {
//       in.read(balance_);
//       if (version >= 2) in.read(owner_); else owner_ = Ref<Person>();
//     }
//     void clear() override { owner_ = {}; }   // drop what a ghost need not keep
//    private:
//     std::int64_t balance_ = 0;
//     Ref<Person> owner_;
//   };
//   XACT_PERSISTENT_TYPE(Account, "bank.Account", .version = 2);
//
// Every accessor calls read_access() (a ghost loads its state there) and every mutator
// write_access() (loads, marks the object changed, and joins the connection to the current
// transaction). An object changed by other means calls mark_changed() itself; a connection in
// debug-writes mode catches a change made without it.
//
// Lifecycle (state()):
//   unsaved --(Connection::add, or reached by a reference from a saved object)--> changed
//   ghost --read_access--> up_to_date --write_access--> changed --commit--> up_to_date
//   changed --abort--> ghost (a new object: unsaved, detached from the connection)
//   up_to_date --invalidation (another transaction committed it) or cache eviction--> ghost
//
// Memory: a connection's identity map owns its objects (std::shared_ptr). The application
// holds objects through std::shared_ptr (or Ref); while it does, the cache never turns the
// object into a ghost nor frees it. A raw pointer or reference obtained from a Ref
// (operator->, operator*) stays valid until the end of the transaction; keep a shared_ptr
// (Ref::get()) to hold an object across transactions. State read through raw references
// into an object is valid until the next transaction boundary (invalidation may ghostify it).
//
// Thread-safety: an object belongs to one connection and is used by that connection's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/types.hpp>

namespace xact::objectstore {

class Connection;
class DB;
struct TypeInfo;

/// What a cross-database reference policy is shown (never the target object: loading it
/// would wake ghosts).
struct XrefCheck {
  std::string referrer_database;
  Oid referrer_oid = 0;
  std::string referrer_type;
  std::string target_database;
  Oid target_oid = 0;
  std::string target_type;
};

enum class ObjectState : std::uint8_t {
  unsaved,     ///< not (yet) in a connection: no oid
  ghost,       ///< in a connection; state not loaded
  up_to_date,  ///< state loaded; unchanged in this transaction
  changed,     ///< changed (or added) in this transaction
};

class Persistent {
 public:
  Persistent() = default;
  Persistent(const Persistent&) = delete;
  Persistent& operator=(const Persistent&) = delete;
  virtual ~Persistent();

  /// Writes the state (the registered version's layout). Must be deterministic: the same
  /// state always gives the same bytes (debug-writes mode compares them).
  virtual void save(StateWriter& out) const = 0;
  /// Reads a state that save() of `version` wrote: the type's current version or an older
  /// one (the upgrade hook: old states are read by new code here).
  virtual void load(StateReader& in, std::uint32_t version) = 0;
  /// Called when the object becomes a ghost: release memory the ghost need not hold
  /// (references to other objects, large buffers). The default keeps everything.
  virtual void clear() {}
  /// The seat belt's per-type policy, asked in a database with `xrefs = check` when this
  /// object holds a cross-database reference: true allows it, false refuses it, nullopt (the
  /// default) leaves the decision to a registered predicate or the registry's.
  virtual std::optional<bool> check_xref(const XrefCheck&) const { return std::nullopt; }

  Oid oid() const noexcept { return oid_; }
  /// The tid of the revision this state comes from (kNoTid for a new object).
  Tid serial() const noexcept { return serial_; }
  ObjectState state() const noexcept { return state_; }
  bool is_ghost() const noexcept { return state_ == ObjectState::ghost; }
  bool is_changed() const noexcept { return state_ == ObjectState::changed; }
  /// The connection that holds the object, or null (unsaved, or its connection closed).
  Connection* connection() const noexcept { return jar_; }
  /// The name of the database the object lives in (DBOptions::name; ZODB's
  /// `_p_jar.db().database_name`); empty for an unsaved object or one whose connection is gone.
  std::string database_name() const;
  /// The registered type name ("bank.Account"); throws UsageError for an unregistered type.
  const std::string& type_name() const;

  /// Marks the object changed and joins its connection to the current transaction. No-op
  /// for an unsaved object. Throws UsageError on a read-only or historical connection.
  void mark_changed();
  /// Loads a ghost's state (no-op otherwise). Throws ObjectNotFoundError, StateError.
  void activate() const;

 protected:
  /// Call first in every accessor that reads state.
  void read_access() const {
    referenced_ = true;
    if (state_ == ObjectState::ghost) activate();
  }
  /// Call first in every mutator.
  void write_access() {
    read_access();
    if (state_ == ObjectState::up_to_date) mark_changed();
  }

 private:
  friend class Connection;
  friend class ConnectionSavepoint;
  Connection* jar_ = nullptr;
  Oid oid_ = 0;
  Tid serial_ = kNoTid;
  mutable ObjectState state_ = ObjectState::unsaved;
  mutable bool referenced_ = false;  // second-chance bit of the cache
  mutable const TypeInfo* type_ = nullptr;
};

namespace detail {
// Non-template half of Ref<T>.
class RefBase {
 public:
  RefBase() = default;
  explicit RefBase(std::shared_ptr<Persistent> target);
  RefBase(Connection* jar, Oid oid);

  bool is_null() const noexcept { return !bound_ && !strong_; }
  /// The target's oid; kNoTid-like 0 with has_oid() false for an unsaved target.
  Oid oid() const noexcept;
  bool has_oid() const noexcept;
  /// Loads (when needed) and returns the target; null for a null reference.
  std::shared_ptr<Persistent> get_object() const;
  Persistent* raw() const;
  /// Writes the reference (a new target is added to the writer's connection). A target in
  /// another database of the writer's connection set is written as a typed cross-database
  /// reference when the writer's database's `xrefs` policy allows it; otherwise (and for a
  /// target of a connection outside the set) InvalidObjectReference.
  void save(StateWriter& out) const;
  /// Reads a reference (or none) written by save().
  void load(StateReader& in);

  friend bool operator==(const RefBase& a, const RefBase& b) noexcept;

 private:
  mutable Connection* jar_ = nullptr;
  // The database the target's oid belongs to (null: unknown, read outside a connection).
  // Compared, never dereferenced: the target's connection may be gone.
  mutable const DB* database_ = nullptr;
  mutable Oid oid_ = 0;
  mutable bool bound_ = false;                   // jar_ and oid_ name the target
  mutable std::shared_ptr<Persistent> strong_;   // kept while the target may be unsaved
  // A cross-database reference read from a state: the target's database and type name (jar_
  // is the reading connection; the target is loaded through its set's connection to xdb_).
  mutable std::string xdb_;
  mutable std::string xtype_;
  mutable Connection* xjar_ = nullptr;  // the target's connection, once resolved
  mutable Persistent* cached_ = nullptr;         // fast path, valid while...
  mutable std::uint64_t cached_generation_ = 0;  // ...the jar evicted nothing since
};
}  // namespace detail

/// A persistent reference to an object of type T (or of a type derived from it). Loads its
/// target on first use, not when the object holding it loads. Value type; compares by target.
template <class T>
class Ref {
 public:
  Ref() = default;
  Ref(std::nullptr_t) {}  // NOLINT: implicit on purpose
  Ref(std::shared_ptr<T> target)
      : base_(std::static_pointer_cast<Persistent>(std::move(target))) {}  // NOLINT
  template <class U>
  requires std::is_base_of_v<T, U> Ref(const Ref<U>& other) : base_(other.base()) {}  // NOLINT

  /// The target, loaded when needed. Throws ObjectNotFoundError for a dangling reference,
  /// StateError when the target is not a T, UsageError on a null reference.
  T* operator->() const { return checked(); }
  T& operator*() const { return *checked(); }
  /// A shared_ptr that holds the target (also across transactions); null for a null Ref.
  std::shared_ptr<T> get() const {
    auto p = base_.get_object();
    if (!p) return nullptr;
    checked();
    return std::static_pointer_cast<T>(std::move(p));
  }
  explicit operator bool() const noexcept { return !base_.is_null(); }
  Oid oid() const noexcept { return base_.oid(); }

  void save(StateWriter& out) const { base_.save(out); }
  void load(StateReader& in) { base_.load(in); }
  const detail::RefBase& base() const noexcept { return base_; }
  static Ref from_base(detail::RefBase b) {
    Ref r;
    r.base_ = std::move(b);
    return r;
  }

  friend bool operator==(const Ref& a, const Ref& b) noexcept { return a.base_ == b.base_; }

 private:
  T* checked() const {
    Persistent* p = base_.raw();
    if constexpr (std::is_same_v<T, Persistent>) {
      return p;
    } else {
      auto* t = dynamic_cast<T*>(p);
      if (!t) throw_wrong_type(*p);
      return t;
    }
  }
  [[noreturn]] static void throw_wrong_type(const Persistent& p);
  detail::RefBase base_;
};

[[noreturn]] void throw_wrong_reference_type(const Persistent& target, const char* wanted);

template <class T>
void Ref<T>::throw_wrong_type(const Persistent& p) {
  throw_wrong_reference_type(p, typeid(T).name());
}

}  // namespace xact::objectstore
