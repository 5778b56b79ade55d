// The type registry: stable names for persistent types, their state versions, the names they
// were stored under before (aliases) and their conflict-resolution hooks.
//
// A stored record names its type by the registered name, never by a C++ name, so classes can
// be renamed and moved between namespaces freely: register the old stored name as an alias
// and old records keep loading. A record's state version is the type's `version` when it was
// written; load() receives it and reads old layouts (schema evolution, see schema.hpp to
// rewrite every instance in the new layout).
//
// Conflict resolution: a type may define
//   static bool resolve_conflict(const T& old, const T& committed, T& mine);
// (detected at registration) or pass `resolve` explicitly. When a commit finds that another
// transaction committed the object after this one read it, the three states are loaded into
// fresh instances (old: the state this transaction started from; committed: the winner's;
// mine: this transaction's) and the hook merges into `mine` and returns true, or returns
// false to let the ConflictError stand. A counter adds committed - old to mine.
//
// Thread-safety: thread-safe (a shared mutex; lookups happen once per object load or save of
// a type, not per access). Register at program start (XACT_PERSISTENT_TYPE) or before the
// first DB that needs the type opens.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>
#include <vector>

#include <xact/objectstore/persistent.hpp>

namespace xact::objectstore {

struct TypeOptions {
  /// State version written with new records (>= 1).
  std::uint32_t version = 1;
  /// Names records of this type were stored under before.
  std::vector<std::string> aliases{};
  /// Conflict resolution (see the file comment); empty: conflicts are not resolved.
  std::function<bool(const Persistent& old, const Persistent& committed, Persistent& mine)>
      resolve{};
};

struct TypeInfo {
  std::string name;
  std::uint32_t version = 1;
  std::vector<std::string> aliases;
  std::type_index cpp_type = typeid(void);
  std::function<std::shared_ptr<Persistent>()> factory;
  std::function<bool(const Persistent&, const Persistent&, Persistent&)> resolve;
};

class TypeRegistry {
 public:
  TypeRegistry();
  ~TypeRegistry();
  TypeRegistry(const TypeRegistry&) = delete;
  TypeRegistry& operator=(const TypeRegistry&) = delete;

  /// The process-wide registry (the default of every DB). Holds xact's own types
  /// (xact.PersistentMap, xact.PersistentList).
  static TypeRegistry& global();

  /// Registers T (default-constructible, derived from Persistent) under `name`. Throws
  /// UsageError when the name (or an alias) is taken by another type, or T is registered
  /// under another name. Registering the same T under the same name again is a no-op.
  template <class T>
  const TypeInfo& add(std::string name, TypeOptions options = {}) {
    static_assert(std::is_base_of_v<Persistent, T>, "persistent types derive from Persistent");
    TypeInfo info;
    info.name = std::move(name);
    info.version = options.version;
    info.aliases = std::move(options.aliases);
    info.cpp_type = typeid(T);
    info.factory = [] { return std::static_pointer_cast<Persistent>(std::make_shared<T>()); };
    if (options.resolve) {
      info.resolve = std::move(options.resolve);
    } else if constexpr (requires(const T& a, const T& b, T& c) {
                           { T::resolve_conflict(a, b, c) } -> std::convertible_to<bool>;
                         }) {
      info.resolve = [](const Persistent& o, const Persistent& c, Persistent& m) {
        return T::resolve_conflict(static_cast<const T&>(o), static_cast<const T&>(c),
                                   static_cast<T&>(m));
      };
    }
    return add_info(std::move(info));
  }

  /// The type stored under `name` (its registered name or an alias); null when unknown.
  const TypeInfo* find(std::string_view name) const;
  /// The registration of an object's dynamic type; null when unregistered.
  const TypeInfo* find(const std::type_info& type) const;
  /// Every name a type was stored under: its name and its aliases.
  std::vector<std::string> names_of(std::string_view name) const;

 private:
  const TypeInfo& add_info(TypeInfo info);
  mutable std::shared_mutex mutex_;
  std::vector<std::unique_ptr<TypeInfo>> types_;
  std::unordered_map<std::string, const TypeInfo*> by_name_;  // names and aliases
  std::unordered_map<std::type_index, const TypeInfo*> by_type_;
};

/// Registers a type with the global registry at program start (use it in the type's own
/// namespace, with the unqualified class name; options are TypeOptions' fields):
///   XACT_PERSISTENT_TYPE(Account, "bank.Account");
///   XACT_PERSISTENT_TYPE(Account, "bank.Account", .version = 2, .aliases = {"Account"});
#define XACT_PERSISTENT_TYPE(Type, Name, ...)                                          \
  [[maybe_unused]] static const ::xact::objectstore::TypeInfo& xact_type_##Type##_reg = \
      ::xact::objectstore::TypeRegistry::global().add<Type>(                           \
          Name, ::xact::objectstore::TypeOptions{__VA_ARGS__})

}  // namespace xact::objectstore
