#include <xact/objectstore/containers.hpp>

#include <xact/errors.hpp>

namespace xact::objectstore {

// --- PersistentMap ---------------------------------------------------------------------------

const Value* PersistentMap::find(const std::string& key) const {
  read_access();
  auto it = items_.find(key);
  return it == items_.end() ? nullptr : &it->second;
}

const Value& PersistentMap::at(const std::string& key) const {
  if (const Value* v = find(key)) return *v;
  throw UsageError("persistent map " + oid_repr(oid()) + " has no key '" + key + "'");
}

bool PersistentMap::contains(const std::string& key) const { return find(key) != nullptr; }

void PersistentMap::set(const std::string& key, Value value) {
  write_access();
  items_[key] = std::move(value);
}

bool PersistentMap::erase(const std::string& key) {
  read_access();
  auto it = items_.find(key);
  if (it == items_.end()) return false;
  write_access();
  items_.erase(it);
  return true;
}

void PersistentMap::clear_all() {
  write_access();
  items_.clear();
}

std::size_t PersistentMap::size() const {
  read_access();
  return items_.size();
}

const std::map<std::string, Value>& PersistentMap::items() const {
  read_access();
  return items_;
}

std::vector<std::string> PersistentMap::keys() const {
  read_access();
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(k);
  return out;
}

void PersistentMap::save(StateWriter& out) const { out.write(items_); }

void PersistentMap::load(StateReader& in, std::uint32_t) { in.read(items_); }

// --- PersistentList --------------------------------------------------------------------------

void PersistentList::check_index(std::size_t index, bool end_ok) const {
  if (index < items_.size() || (end_ok && index == items_.size())) return;
  throw UsageError("index " + std::to_string(index) + " is out of range for persistent list " +
                   oid_repr(oid()) + " of size " + std::to_string(items_.size()));
}

const Value& PersistentList::at(std::size_t index) const {
  read_access();
  check_index(index, false);
  return items_[index];
}

void PersistentList::set(std::size_t index, Value value) {
  write_access();
  check_index(index, false);
  items_[index] = std::move(value);
}

void PersistentList::push_back(Value value) {
  write_access();
  items_.push_back(std::move(value));
}

void PersistentList::insert(std::size_t index, Value value) {
  write_access();
  check_index(index, true);
  items_.insert(items_.begin() + static_cast<std::ptrdiff_t>(index), std::move(value));
}

void PersistentList::erase(std::size_t index) {
  write_access();
  check_index(index, false);
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(index));
}

void PersistentList::clear_all() {
  write_access();
  items_.clear();
}

std::size_t PersistentList::size() const {
  read_access();
  return items_.size();
}

const std::vector<Value>& PersistentList::items() const {
  read_access();
  return items_;
}

void PersistentList::save(StateWriter& out) const { out.write(items_); }

void PersistentList::load(StateReader& in, std::uint32_t) { in.read(items_); }

}  // namespace xact::objectstore
