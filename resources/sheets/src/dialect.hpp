// The statements that differ per SQL dialect, in one table. Everything else in xact::sheets is
// dialect-neutral SQL with $n placeholders (<xact/sql/placeholders.hpp>).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xact/sheets/definition.hpp>

namespace xact::sheets {

struct Dialect {
  std::string_view name;
  std::size_t max_identifier;
  char quote;  // " or `
  // Schema transactions on their own connection: begin (+ lock), commit (+ unlock), rollback.
  std::vector<std::string_view> schema_begin;
  std::vector<std::string_view> schema_commit;
  std::vector<std::string_view> schema_rollback;
  // After an INSERT: RETURNING sheet_id, or a second statement for the generated key.
  bool insert_returning;
  std::string_view last_insert_id;

  std::string q(std::string_view identifier) const;
  std::string column_type(const Property& p) const;
  /// "col <type> [DEFAULT ...] [NOT NULL]" (the default as SQL literal: only numbers, and
  /// strings with quotes doubled; defaults come from the application's definition).
  std::string column(const Property& p) const;
  std::vector<std::string> create_table(const SheetDefinition& def) const;
  std::string add_column(const SheetDefinition& def, const Property& p) const;
  /// The type to CAST a value to for property p's column.
  std::string cast_type(const Property& p) const;
  std::string catalog_table() const;
  /// The column names of table $1 (a query of the database's own catalog: a `SELECT *` would
  /// be a prepared statement whose column count the table's growth changes).
  std::string_view columns_query;
  /// The condition "column starts with $n" (binds the escaped LIKE pattern or the raw prefix).
  std::string prefix(const std::string& column, int n) const;
  bool prefix_binds_pattern() const { return name != "sqlite"; }
};

const Dialect& dialect_for(std::string_view name);

/// A value as a bound parameter for a property's column (timestamps as text).
sql::Value to_param(const Property& p, const sql::Value& v);
/// 'it''s' style literal of a default value.
std::string literal(const Property& p, const sql::Value& v, std::string_view dialect);

}  // namespace xact::sheets
