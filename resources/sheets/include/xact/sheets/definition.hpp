// Sheet definitions: a named group of typed properties, kept in one table per definition.
//
//   xact::sheets::SheetDefinition dc{"dublin_core", {
//       {.name = "title", .type = PropertyType::text, .nullable = false, .default_value = ""},
//       {.name = "pages", .type = PropertyType::int64},
//       {.name = "issued", .type = PropertyType::timestamp},
//   }};
//
// Names (of sheets and properties) must match [a-z][a-z0-9_]*, must not be an SQL reserved
// word nor one of the sheet table's own columns (sheet_id, owner_db, owner_oid, version), and
// must fit the backend's identifier length (PostgreSQL 63 bytes, MySQL/MariaDB 64, SQLite 64;
// a sheet name leaves room for the "_version" trigger name). Anything else is refused with
// SheetDefinitionError naming the rule, so a name never reaches SQL unless it is safe to quote.
//
// The column type of each property per backend is in doc/sheets.md. Plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/errors.hpp>
#include <xact/sql/value.hpp>

namespace xact::sheets {

/// A point in time, UTC, with microseconds (stored as TIMESTAMP(6) / DATETIME(6) / ISO text).
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

enum class PropertyType {
  text,          ///< std::string, compared byte-wise on every backend
  int64,         ///< std::int64_t
  float64,       ///< double
  boolean,       ///< bool
  bytes,         ///< sql::Bytes
  timestamp,     ///< Timestamp (UTC, microseconds)
  decimal,       ///< std::string ("12.3400"); NUMERIC(p,s) / DECIMAL(p,s); TEXT on SQLite
  decimal_text,  ///< std::string; a text column on every backend
};
std::string_view to_string(PropertyType type);

struct Property {
  std::string name;
  PropertyType type = PropertyType::text;
  bool nullable = true;
  /// The value of a new sheet, and of existing rows when the property is added later. A
  /// non-nullable property needs one. Timestamps: an int64 of microseconds since the epoch.
  std::optional<sql::Value> default_value;
  int precision = 18;  ///< decimal only
  int scale = 4;       ///< decimal only
};

struct SheetDefinition {
  std::string name;
  std::vector<Property> properties;

  /// The property, or null.
  const Property* find(std::string_view property) const noexcept;
};

/// A definition, an identifier, or a value that does not fit its property.
class SheetDefinitionError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// The stored schema differs from the definition in a way xact does not change by itself (a
/// changed type, a dropped property): the message says what differs and how to migrate.
class SchemaMismatchError : public UsageError {
 public:
  using UsageError::UsageError;
};

/// Throws SheetDefinitionError unless `name` is a valid identifier for `dialect`
/// ("postgresql", "mysql", "sqlite"); `what` names it in the message ("sheet", "property").
/// `reserve` bytes are kept free for names derived from it (the trigger's suffix).
void check_identifier(std::string_view name, std::string_view dialect, std::string_view what,
                      std::size_t reserve = 0);
/// Checks every name, default and decimal size of `def` for `dialect`.
void check_definition(const SheetDefinition& def, std::string_view dialect);

/// A value of `type` as the sheet keeps it (timestamps as int64 microseconds, booleans as bool),
/// from what a driver returned; SheetDefinitionError when it does not convert.
sql::Value normalize(const Property& p, const sql::Value& v, std::string_view sheet);
/// "2026-12-03 07:08:49.123456" and back.
std::string format_timestamp(std::int64_t micros);
std::int64_t parse_timestamp(std::string_view text);

}  // namespace xact::sheets
