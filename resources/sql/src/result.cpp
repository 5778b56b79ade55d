#include <xact/sql/result.hpp>

namespace xact::sql {

namespace {
std::string list(const std::vector<std::string>& columns) {
  std::string s;
  for (const auto& c : columns) s += (s.empty() ? "" : ", ") + c;
  return s.empty() ? "(none)" : s;
}
}  // namespace

const Value& Row::at(std::size_t index) const {
  if (index >= values_.size()) {
    throw UsageError("column " + std::to_string(index) + " is out of range: the row has " +
                     std::to_string(values_.size()) + " columns (" + list(*columns_) + ")");
  }
  return values_[index];
}

std::size_t Row::index_of(std::string_view column) const {
  for (std::size_t i = 0; i < columns_->size(); ++i) {
    if ((*columns_)[i] == column) return i;
  }
  throw UsageError("no column '" + std::string(column) +
                   "' in the result; its columns: " + list(*columns_));
}

const Value& Row::at(std::string_view column) const { return values_.at(index_of(column)); }

void Row::rethrow_with_column(std::size_t index) const {
  try {
    throw;
  } catch (const UsageError& e) {
    const std::string name =
        index < columns_->size() ? (*columns_)[index] : "#" + std::to_string(index);
    throw UsageError("column '" + name + "': " + e.what());
  }
}

void Result::add_row(std::vector<Value> values) {
  if (values.size() != columns_->size()) {
    throw UsageError("Result::add_row: " + std::to_string(values.size()) + " values for " +
                     std::to_string(columns_->size()) + " columns");
  }
  rows_.emplace_back(columns_, std::move(values));
}

const Row& Result::at(std::size_t index) const {
  if (index >= rows_.size()) {
    throw UsageError("row " + std::to_string(index) + " is out of range: the result has " +
                     std::to_string(rows_.size()) + " rows");
  }
  return rows_[index];
}

const Row& Result::one() const {
  if (rows_.size() != 1) {
    throw UsageError("expected exactly one row, the statement returned " +
                     std::to_string(rows_.size()));
  }
  return rows_.front();
}

}  // namespace xact::sql
