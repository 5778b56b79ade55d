#include <xact/objectstore/registry.hpp>

#include <mutex>

#include <xact/errors.hpp>
#include <xact/objectstore/containers.hpp>

namespace xact::objectstore {

TypeRegistry::TypeRegistry() {
  // Every database has a root mapping; every registry knows the containers.
  add<PersistentMap>(PersistentMap::kTypeName);
  add<PersistentList>(PersistentList::kTypeName);
}
TypeRegistry::~TypeRegistry() = default;

TypeRegistry& TypeRegistry::global() {
  static TypeRegistry* registry = [] {
    return new TypeRegistry();  // never destroyed: static registrations may outlive main
  }();
  return *registry;
}

const TypeInfo& TypeRegistry::add_info(TypeInfo info) {
  if (info.name.empty() || info.name.size() > 255) {
    throw UsageError("persistent type name '" + info.name +
                     "' must be 1..255 bytes: choose a stable name like \"app.Account\"");
  }
  if (info.version == 0) {
    throw UsageError("persistent type " + info.name + ": state versions start at 1");
  }
  std::unique_lock lock(mutex_);
  if (auto it = by_type_.find(info.cpp_type); it != by_type_.end()) {
    if (it->second->name == info.name) return *it->second;
    throw UsageError("C++ type " + std::string(info.cpp_type.name()) +
                     " is already registered as " + it->second->name + ", not " + info.name +
                     ": register old names as aliases instead");
  }
  std::vector<std::string> names{info.name};
  names.insert(names.end(), info.aliases.begin(), info.aliases.end());
  for (const auto& n : names) {
    if (auto it = by_name_.find(n); it != by_name_.end()) {
      throw UsageError("persistent type name '" + n + "' is already used by " +
                       it->second->name + ": each stored name must denote one type");
    }
  }
  types_.push_back(std::make_unique<TypeInfo>(std::move(info)));
  const TypeInfo* t = types_.back().get();
  for (const auto& n : names) by_name_.emplace(n, t);
  by_type_.emplace(t->cpp_type, t);
  return *t;
}

const TypeInfo* TypeRegistry::find(std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const TypeInfo* TypeRegistry::find(const std::type_info& type) const {
  std::shared_lock lock(mutex_);
  auto it = by_type_.find(std::type_index(type));
  return it == by_type_.end() ? nullptr : it->second;
}

std::vector<std::string> TypeRegistry::names_of(std::string_view name) const {
  const TypeInfo* t = find(name);
  if (!t) return {std::string(name)};
  std::vector<std::string> names{t->name};
  names.insert(names.end(), t->aliases.begin(), t->aliases.end());
  return names;
}

}  // namespace xact::objectstore
