// Persistent containers for real applications: PersistentMap (string keys, the root object
// of every database is one) and PersistentList. Values are Value: numbers, strings, bytes,
// references to other persistent objects, nested lists and maps.
//
// A container is one object: every change rewrites it whole, and two transactions changing
// the same container conflict. Keep large or hot collections as many objects (e.g. a map of
// references to buckets) rather than one huge map.
//
// Thread-safety: as every persistent object (one connection, one thread).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <xact/objectstore/persistent.hpp>
#include <xact/objectstore/value.hpp>

namespace xact::objectstore {

class PersistentMap : public Persistent {
 public:
  static constexpr const char* kTypeName = "xact.PersistentMap";

  /// The value under `key`, or null when absent. The pointer is valid until the next change.
  const Value* find(const std::string& key) const;
  /// The value under `key`; throws UsageError naming the key when absent.
  const Value& at(const std::string& key) const;
  bool contains(const std::string& key) const;
  /// The object a reference under `key` points to, as a T; null when absent.
  template <class T>
  std::shared_ptr<T> get(const std::string& key) const {
    const Value* v = find(key);
    return v ? v->as_object<T>() : nullptr;
  }
  void set(const std::string& key, Value value);
  /// Returns whether the key was there.
  bool erase(const std::string& key);
  void clear_all();
  std::size_t size() const;
  bool empty() const { return size() == 0; }
  /// The entries, in key order. Valid until the next change.
  const std::map<std::string, Value>& items() const;
  std::vector<std::string> keys() const;

  void save(StateWriter& out) const override;
  void load(StateReader& in, std::uint32_t version) override;
  void clear() override { items_.clear(); }

 private:
  std::map<std::string, Value> items_;
};

class PersistentList : public Persistent {
 public:
  static constexpr const char* kTypeName = "xact.PersistentList";

  const Value& at(std::size_t index) const;
  void set(std::size_t index, Value value);
  void push_back(Value value);
  void insert(std::size_t index, Value value);
  void erase(std::size_t index);
  void clear_all();
  std::size_t size() const;
  bool empty() const { return size() == 0; }
  /// The elements. Valid until the next change.
  const std::vector<Value>& items() const;

  void save(StateWriter& out) const override;
  void load(StateReader& in, std::uint32_t version) override;
  void clear() override { items_.clear(); }

 private:
  void check_index(std::size_t index, bool end_ok) const;
  std::vector<Value> items_;
};

}  // namespace xact::objectstore
