#include <xact/sql/value.hpp>

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include <xact/errors.hpp>

namespace xact::sql {

std::string_view to_string(Type type) {
  switch (type) {
    case Type::null: return "NULL";
    case Type::int64: return "integer";
    case Type::float64: return "double";
    case Type::text: return "text";
    case Type::bytes: return "bytes";
    case Type::boolean: return "boolean";
  }
  return "unknown";
}

namespace detail {
void throw_out_of_range(std::string_view what) {
  throw UsageError("SQL value " + std::string(what) +
                   " is out of the range of the C++ type asked for; read it into a wider type");
}
}  // namespace detail

namespace {

[[noreturn]] void cannot_read(const Value& v, std::string_view as) {
  if (v.is_null()) {
    throw UsageError("SQL value is NULL and cannot be read as " + std::string(as) +
                     "; read a nullable column as std::optional<T>");
  }
  throw UsageError("SQL value " + v.debug_string() + " (" + std::string(to_string(v.type())) +
                   ") cannot be read as " + std::string(as) + " without loss");
}

// The whole of `s` as a number, or nothing.
template <class T>
bool parse_all(const std::string& s, T& out) {
  if (s.empty()) return false;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (*first == '+') ++first;  // from_chars takes no plus sign; SQL text may carry one
  const auto [ptr, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && ptr == last;
}

std::string render_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, d);  // shortest round trip
  return std::string(buf, ec == std::errc() ? ptr : buf);
}

}  // namespace

std::int64_t Value::as_int64() const {
  if (const auto* n = if_int64()) return *n;
  if (const auto* d = if_double()) {
    // Integral and exactly representable: 2^63 itself is not an int64.
    if (std::trunc(*d) == *d && *d >= -9223372036854775808.0 && *d < 9223372036854775808.0) {
      return static_cast<std::int64_t>(*d);
    }
  }
  if (const auto* s = if_text()) {
    std::int64_t n = 0;
    if (parse_all(*s, n)) return n;
  }
  cannot_read(*this, "an integer");
}

double Value::as_double() const {
  if (const auto* d = if_double()) return *d;
  if (const auto* n = if_int64()) return static_cast<double>(*n);
  if (const auto* s = if_text()) {
    if (*s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (*s == "Infinity") return std::numeric_limits<double>::infinity();
    if (*s == "-Infinity") return -std::numeric_limits<double>::infinity();
    double d = 0;
    if (parse_all(*s, d)) return d;
  }
  cannot_read(*this, "a double");
}

std::string Value::as_string() const {
  if (const auto* s = if_text()) return *s;
  if (const auto* n = if_int64()) return std::to_string(*n);
  if (const auto* d = if_double()) return render_double(*d);
  if (const auto* b = if_bool()) return *b ? "true" : "false";
  cannot_read(*this, "text");
}

Bytes Value::as_bytes() const {
  if (const auto* b = if_bytes()) return *b;
  if (const auto* s = if_text()) return Bytes(s->begin(), s->end());
  cannot_read(*this, "bytes");
}

bool Value::as_bool() const {
  if (const auto* b = if_bool()) return *b;
  if (const auto* n = if_int64()) {
    if (*n == 0 || *n == 1) return *n == 1;
  }
  if (const auto* s = if_text()) {
    if (*s == "t" || *s == "true" || *s == "1") return true;
    if (*s == "f" || *s == "false" || *s == "0") return false;
  }
  cannot_read(*this, "a boolean");
}

std::string Value::debug_string() const {
  constexpr std::size_t kMax = 40;
  switch (type()) {
    case Type::null: return "NULL";
    case Type::int64: return std::to_string(*if_int64());
    case Type::float64: return render_double(*if_double());
    case Type::boolean: return *if_bool() ? "true" : "false";
    case Type::text: {
      const auto& s = *if_text();
      return "'" + (s.size() > kMax ? s.substr(0, kMax) + "..." : s) + "'";
    }
    case Type::bytes: {
      static constexpr char kHex[] = "0123456789abcdef";
      const auto& b = *if_bytes();
      std::string out = "x'";
      for (std::size_t i = 0; i < b.size() && i < kMax / 2; ++i) {
        out += kHex[b[i] >> 4];
        out += kHex[b[i] & 0xf];
      }
      return out + (b.size() > kMax / 2 ? "...'" : "'");
    }
  }
  return "?";
}

}  // namespace xact::sql
