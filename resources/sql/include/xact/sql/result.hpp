// The result of one statement: column names, rows of nullable values, and the number of rows
// the statement changed.
//
//   for (const auto& row : resource->execute(txn, "SELECT id, name FROM t WHERE id > $1", {7}))
//     use(row.get<std::int64_t>("id"), row.get<std::optional<std::string>>("name"));
//
// Generated keys come back the way the dialect returns them (PostgreSQL: INSERT ... RETURNING
// id). A Result owns its data (nothing refers to the connection): keep it as long as you like.
// Plain value, thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <xact/errors.hpp>
#include <xact/sql/value.hpp>

namespace xact::sql {

class Row {
 public:
  Row(std::shared_ptr<const std::vector<std::string>> columns, std::vector<Value> values)
      : columns_(std::move(columns)), values_(std::move(values)) {}

  std::size_t size() const noexcept { return values_.size(); }
  const std::vector<std::string>& columns() const noexcept { return *columns_; }
  /// Throws UsageError for a column that is not there (naming the columns that are).
  const Value& at(std::size_t index) const;
  const Value& at(std::string_view column) const;
  const Value& operator[](std::size_t index) const { return at(index); }
  const Value& operator[](std::string_view column) const { return at(column); }

  /// at(column).get<T>(), with the column named in any error.
  template <class T>
  T get(std::size_t index) const {
    return convert<T>(at(index), index);
  }
  template <class T>
  T get(std::string_view column) const {
    return convert<T>(at(column), index_of(column));
  }

  auto begin() const noexcept { return values_.begin(); }
  auto end() const noexcept { return values_.end(); }

 private:
  std::size_t index_of(std::string_view column) const;
  [[noreturn]] void rethrow_with_column(std::size_t index) const;
  template <class T>
  T convert(const Value& v, std::size_t index) const {
    try {
      return v.get<T>();
    } catch (const UsageError&) {
      rethrow_with_column(index);
    }
  }

  std::shared_ptr<const std::vector<std::string>> columns_;
  std::vector<Value> values_;
};

class Result {
 public:
  Result() : columns_(std::make_shared<std::vector<std::string>>()) {}
  /// For adapters: the columns, then add_row() per row.
  Result(std::vector<std::string> columns, std::int64_t affected_rows)
      : columns_(std::make_shared<const std::vector<std::string>>(std::move(columns))),
        affected_rows_(affected_rows) {}
  void add_row(std::vector<Value> values);

  const std::vector<std::string>& columns() const noexcept { return *columns_; }
  std::size_t size() const noexcept { return rows_.size(); }
  bool empty() const noexcept { return rows_.empty(); }
  const Row& at(std::size_t index) const;
  const Row& operator[](std::size_t index) const { return at(index); }
  /// The only row; throws UsageError when there are none or several.
  const Row& one() const;
  auto begin() const noexcept { return rows_.begin(); }
  auto end() const noexcept { return rows_.end(); }

  /// Rows inserted, updated or deleted by the statement (for a SELECT, what the driver
  /// reports: PostgreSQL counts the rows returned).
  std::int64_t affected_rows() const noexcept { return affected_rows_; }

 private:
  std::shared_ptr<const std::vector<std::string>> columns_;
  std::vector<Row> rows_;
  std::int64_t affected_rows_ = 0;
};

}  // namespace xact::sql
