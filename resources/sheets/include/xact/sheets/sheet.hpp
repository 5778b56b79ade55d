// Sheet: one row of a sheet table as one transaction sees it (the DAO). It lives in the
// transaction's SheetManager (<xact/sheets/sheet_store.hpp>), which loads it once, hands the same
// Sheet to every later read, and writes its changes back once at commit.
//
//   auto& dc = doc->sheet("dublin_core");
//   std::string title = dc.get<std::string>("title");
//   dc.set("pages", 12);                     // cached; UPDATE ... at commit
//   std::optional<Timestamp> t = dc.get<std::optional<Timestamp>>("issued");
//
// Typed access: get<T>/set for T in std::string (text, decimal, decimal_text), std::int64_t or
// any integer type (int64), double (float64), bool (boolean), sql::Bytes (bytes), Timestamp
// (timestamp), and std::optional of those (NULL is nullopt). An unknown property, a type that
// does not match the property's, a NULL read as a non-optional type and a NULL written to a
// non-nullable property throw SheetDefinitionError, naming the sheet, the property and both
// types.
//
// A Sheet reference is valid until its transaction ends. Thread-safety: as its transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <xact/sheets/definition.hpp>

namespace xact::sheets {

/// The object a sheet belongs to: its object database's name and its oid.
struct Owner {
  std::string database;
  std::int64_t oid = 0;
  auto operator<=>(const Owner&) const = default;
};

class SheetManager;

namespace detail {
template <class T>
struct SheetType {
  static constexpr bool kOptional = false;
  using Base = T;
};
template <class T>
struct SheetType<std::optional<T>> {
  static constexpr bool kOptional = true;
  using Base = T;
};
// The property types a C++ type reads and writes, as a bit set of PropertyType.
template <class T>
constexpr unsigned accepted_types() {
  auto bit = [](PropertyType t) { return 1u << static_cast<unsigned>(t); };
  if constexpr (std::is_same_v<T, std::string>) {
    return bit(PropertyType::text) | bit(PropertyType::decimal) | bit(PropertyType::decimal_text);
  } else if constexpr (std::is_same_v<T, bool>) {
    return bit(PropertyType::boolean);
  } else if constexpr (sql::detail::Integer<T>) {
    return bit(PropertyType::int64);
  } else if constexpr (std::is_same_v<T, double>) {
    return bit(PropertyType::float64);
  } else if constexpr (std::is_same_v<T, sql::Bytes>) {
    return bit(PropertyType::bytes);
  } else if constexpr (std::is_same_v<T, Timestamp>) {
    return bit(PropertyType::timestamp);
  } else {
    static_assert(sizeof(T) == 0, "Sheet::get/set: unsupported type");
  }
}
template <class T>
constexpr std::string_view cpp_name() {
  if constexpr (std::is_same_v<T, std::string>)
    return "std::string";
  else if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (sql::detail::Integer<T>)
    return "an integer type";
  else if constexpr (std::is_same_v<T, double>)
    return "double";
  else if constexpr (std::is_same_v<T, sql::Bytes>)
    return "xact::sql::Bytes";
  else
    return "xact::sheets::Timestamp";
}
}  // namespace detail

class Sheet {
 public:
  Sheet(const Sheet&) = default;
  Sheet& operator=(const Sheet&) = default;

  const SheetDefinition& definition() const noexcept { return *def_; }
  const std::string& name() const noexcept { return def_->name; }
  /// The database-generated key (sheet_id).
  std::int64_t key() const noexcept { return key_; }
  const Owner& owner() const noexcept { return owner_; }
  /// The row's version as this transaction read (or last wrote) it.
  std::int64_t version() const noexcept { return version_; }
  /// Changed since loaded (or since the last flush), or removed.
  bool dirty() const noexcept;
  bool removed() const noexcept { return removed_; }

  template <class T>
  T get(std::string_view property) const {
    using B = typename detail::SheetType<T>::Base;
    const sql::Value& v =
        checked(property, detail::accepted_types<B>(), detail::cpp_name<B>(), false);
    if (v.is_null()) {
      if constexpr (detail::SheetType<T>::kOptional) {
        return std::nullopt;
      } else {
        throw_null(property, detail::cpp_name<B>());
      }
    }
    if constexpr (std::is_same_v<B, Timestamp>) {
      return B(std::chrono::microseconds(v.as_int64()));
    } else {
      return v.get<B>();
    }
  }

  /// Sets a property (cached; written at commit). A std::nullopt / nullptr writes NULL.
  template <class T>
  void set(std::string_view property, const T& value) {
    if constexpr (detail::SheetType<T>::kOptional) {
      if (!value) {
        set_null(property);
      } else {
        set(property, *value);
      }
    } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
      set_null(property);
    } else if constexpr (std::is_convertible_v<T, std::string_view> &&
                         !std::is_same_v<T, std::nullptr_t>) {
      assign(property, detail::accepted_types<std::string>(), "std::string",
             sql::Value(std::string(std::string_view(value))));
    } else if constexpr (std::is_same_v<T, Timestamp>) {
      assign(property, detail::accepted_types<Timestamp>(), detail::cpp_name<Timestamp>(),
             sql::Value(static_cast<std::int64_t>(value.time_since_epoch().count())));
    } else {
      assign(property, detail::accepted_types<T>(), detail::cpp_name<T>(), sql::Value(value));
    }
  }
  void set_null(std::string_view property);
  bool is_null(std::string_view property) const;
  /// The raw value (timestamps as int64 microseconds).
  const sql::Value& value(std::string_view property) const;

  /// Deletes the row at commit (DELETE ... WHERE sheet_id = ? AND version = ?). The sheet reads
  /// as before until then; set() on it throws.
  void remove();

 private:
  friend class SheetManager;
  Sheet(std::shared_ptr<const SheetDefinition> def, std::int64_t key, Owner owner,
        std::int64_t version, std::vector<sql::Value> values);
  std::size_t index_of(std::string_view property) const;
  const sql::Value& checked(std::string_view property, unsigned accepted, std::string_view cpp,
                            bool writing) const;
  [[noreturn]] void throw_null(std::string_view property, std::string_view cpp) const;
  void assign(std::string_view property, unsigned accepted, std::string_view cpp, sql::Value v);

  std::shared_ptr<const SheetDefinition> def_;
  std::int64_t key_;
  Owner owner_;
  std::int64_t version_;
  std::vector<sql::Value> values_;
  std::vector<bool> changed_;
  bool removed_ = false;
};

}  // namespace xact::sheets
