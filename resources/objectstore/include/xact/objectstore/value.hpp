// Value: one dynamically typed value of the codec (none, bool, integer, double, string,
// bytes, reference, list, map): what the generic containers hold and what a state is made of
// when read without its type (tools, tests).
//
// Thread-safety: a value type (copies are independent; a reference inside follows Ref's rules).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/persistent.hpp>

namespace xact::objectstore {

/// Raw bytes (distinct from a string in the codec).
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

class Value {
 public:
  using List = std::vector<Value>;
  using Map = std::vector<std::pair<Value, Value>>;  // in insertion order; keys may repeat
  enum class Kind { none, boolean, integer, unsigned_integer, real, string, bytes, ref, list, map };

  Value() = default;
  Value(std::nullptr_t) {}                              // NOLINT: implicit on purpose
  Value(bool v) : v_(v) {}                              // NOLINT
  Value(int v) : v_(static_cast<std::int64_t>(v)) {}    // NOLINT
  Value(std::int64_t v) : v_(v) {}                      // NOLINT
  Value(std::uint64_t v) : v_(v) {}                     // NOLINT
  Value(double v) : v_(v) {}                            // NOLINT
  Value(std::string v) : v_(std::move(v)) {}            // NOLINT
  Value(const char* v) : v_(std::string(v)) {}          // NOLINT
  Value(Bytes v) : v_(std::move(v)) {}                  // NOLINT
  Value(Ref<Persistent> v) : v_(std::move(v)) {}        // NOLINT
  template <class T>
    requires std::is_base_of_v<Persistent, T>
  Value(Ref<T> v) : v_(Ref<Persistent>(v)) {}  // NOLINT
  template <class T>
    requires std::is_base_of_v<Persistent, T>
  Value(std::shared_ptr<T> v) : v_(Ref<Persistent>(std::static_pointer_cast<Persistent>(v))) {}  // NOLINT
  Value(List v) : v_(std::move(v)) {}  // NOLINT
  Value(Map v) : v_(std::move(v)) {}   // NOLINT

  Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  bool is_none() const noexcept { return kind() == Kind::none; }

  /// Accessors throw UsageError naming the kind asked for and the kind held.
  bool as_bool() const;
  /// Signed or unsigned integers that fit an int64.
  std::int64_t as_int() const;
  double as_double() const;
  const std::string& as_string() const;
  const Bytes& as_bytes() const;
  const Ref<Persistent>& as_ref() const;
  /// The referenced object as a T (loads it); throws StateError when it is not a T.
  template <class T>
  std::shared_ptr<T> as_object() const {
    return Ref<T>::from_base(as_ref().base()).get();
  }
  const List& as_list() const;
  List& as_list();
  const Map& as_map() const;
  Map& as_map();

  void save(StateWriter& out) const;
  void load(StateReader& in);

  friend bool operator==(const Value& a, const Value& b);

 private:
  [[noreturn]] void wrong_kind(Kind wanted) const;
  std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double, std::string, Bytes,
               Ref<Persistent>, List, Map>
      v_;
};

std::string_view to_string(Value::Kind kind);

}  // namespace xact::objectstore
