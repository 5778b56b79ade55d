// Values that go into and come out of SQL statements, and the bound parameters of a statement.
//
// A Value is null or one of: a 64-bit integer, a double, text, bytes, a boolean. Statements
// take their arguments only as bound parameters (Params), never spliced into the SQL text:
//
//   resource->execute(txn, "UPDATE accounts SET balance = $1 WHERE id = $2", {70, "alice"});
//
// Reading converts where nothing is lost (get<std::int64_t>() of an integer, or of text that
// is exactly an integer such as a NUMERIC; get<std::string>() of a number renders it); anything
// else, and reading a NULL as a non-optional type, throws xact::UsageError naming both types.
// Read a nullable column as std::optional<T>.
//
// Values and Params are plain values: copyable, thread-compatible.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace xact::sql {

using Bytes = std::vector<std::uint8_t>;

enum class Type { null, int64, float64, text, bytes, boolean };
std::string_view to_string(Type type);

namespace detail {
template <class T>
inline constexpr bool kIsOptional = false;
template <class T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// Integers other than bool and the character types (a char is text, not a number).
template <class T>
concept Integer = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
                  !std::same_as<T, wchar_t> && !std::same_as<T, char8_t> &&
                  !std::same_as<T, char16_t> && !std::same_as<T, char32_t>;

[[noreturn]] void throw_out_of_range(std::string_view what);
}  // namespace detail

class Value {
 public:
  Value() noexcept = default;          // NULL
  Value(std::nullptr_t) noexcept {}    // NOLINT: implicit on purpose, as in Params{...}
  Value(std::nullopt_t) noexcept {}    // NOLINT
  Value(bool b) noexcept : v_(b) {}    // NOLINT
  Value(double d) noexcept : v_(d) {}  // NOLINT
  Value(float f) noexcept : v_(static_cast<double>(f)) {}  // NOLINT
  Value(std::string s) noexcept : v_(std::move(s)) {}      // NOLINT
  Value(std::string_view s) : v_(std::string(s)) {}        // NOLINT
  Value(const char* s) : v_(std::string(s)) {}             // NOLINT
  Value(Bytes b) noexcept : v_(std::move(b)) {}            // NOLINT
  template <detail::Integer T>
  Value(T n) : v_(to_int64(n)) {}  // NOLINT
  template <class T>
  Value(const std::optional<T>& o) : Value() {  // NOLINT
    if (o) *this = Value(*o);
  }

  Type type() const noexcept { return static_cast<Type>(v_.index()); }
  bool is_null() const noexcept { return v_.index() == 0; }

  /// Typed reads; each throws UsageError when the value is NULL or cannot be read as that
  /// type without loss (see the file comment).
  std::int64_t as_int64() const;
  double as_double() const;
  std::string as_string() const;
  Bytes as_bytes() const;
  bool as_bool() const;

  /// get<T>() for T in {std::int64_t (or any integer type it fits), double, std::string,
  /// Bytes, bool} and std::optional of those (NULL gives nullopt).
  template <class T>
  T get() const {
    if constexpr (detail::kIsOptional<T>) {
      if (is_null()) return std::nullopt;
      return get<typename T::value_type>();
    } else if constexpr (std::same_as<T, bool>) {
      return as_bool();
    } else if constexpr (detail::Integer<T>) {
      const std::int64_t n = as_int64();
      if (!std::in_range<T>(n)) detail::throw_out_of_range(debug_string());
      return static_cast<T>(n);
    } else if constexpr (std::same_as<T, double>) {
      return as_double();
    } else if constexpr (std::same_as<T, std::string>) {
      return as_string();
    } else if constexpr (std::same_as<T, Bytes>) {
      return as_bytes();
    } else {
      static_assert(sizeof(T) == 0, "Value::get<T>: unsupported type");
    }
  }

  /// The held alternative, for adapters that bind parameters by type.
  const std::int64_t* if_int64() const noexcept { return std::get_if<std::int64_t>(&v_); }
  const double* if_double() const noexcept { return std::get_if<double>(&v_); }
  const std::string* if_text() const noexcept { return std::get_if<std::string>(&v_); }
  const Bytes* if_bytes() const noexcept { return std::get_if<Bytes>(&v_); }
  const bool* if_bool() const noexcept { return std::get_if<bool>(&v_); }

  /// For messages and test output: NULL, 42, 1.5, 'text', x'00ff', true (text is cut off).
  std::string debug_string() const;

  bool operator==(const Value&) const = default;

 private:
  template <class T>
  static std::int64_t to_int64(T n) {
    if (!std::in_range<std::int64_t>(n)) detail::throw_out_of_range(std::to_string(n));
    return static_cast<std::int64_t>(n);
  }

  // The order matches Type.
  std::variant<std::monostate, std::int64_t, double, std::string, Bytes, bool> v_;
};

/// The bound parameters of one statement, in placeholder order.
class Params {
 public:
  Params() = default;
  Params(std::initializer_list<Value> values) : values_(values) {}
  explicit Params(std::vector<Value> values) : values_(std::move(values)) {}

  Params& add(Value v) {
    values_.push_back(std::move(v));
    return *this;
  }
  std::size_t size() const noexcept { return values_.size(); }
  bool empty() const noexcept { return values_.empty(); }
  const Value& operator[](std::size_t i) const { return values_.at(i); }
  auto begin() const noexcept { return values_.begin(); }
  auto end() const noexcept { return values_.end(); }

 private:
  std::vector<Value> values_;
};

}  // namespace xact::sql
