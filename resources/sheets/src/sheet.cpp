#include <xact/sheets/sheet.hpp>

namespace xact::sheets {

Sheet::Sheet(std::shared_ptr<const SheetDefinition> def, std::int64_t key, Owner owner,
             std::int64_t version, std::vector<sql::Value> values)
    : def_(std::move(def)),
      key_(key),
      owner_(std::move(owner)),
      version_(version),
      values_(std::move(values)),
      changed_(values_.size(), false) {}

bool Sheet::dirty() const noexcept {
  if (removed_) return true;
  for (bool c : changed_) {
    if (c) return true;
  }
  return false;
}

std::size_t Sheet::index_of(std::string_view property) const {
  for (std::size_t i = 0; i < def_->properties.size(); ++i) {
    if (def_->properties[i].name == property) return i;
  }
  std::string known;
  for (const auto& p : def_->properties) known += (known.empty() ? "" : ", ") + p.name;
  throw SheetDefinitionError("sheet '" + def_->name + "' has no property '" +
                             std::string(property) + "' (it has: " + known + ")");
}

const sql::Value& Sheet::checked(std::string_view property, unsigned accepted, std::string_view cpp,
                                 bool writing) const {
  const std::size_t i = index_of(property);
  const Property& p = def_->properties[i];
  if ((accepted & (1u << static_cast<unsigned>(p.type))) == 0) {
    throw SheetDefinitionError("sheet '" + def_->name + "' property '" + p.name + "' is " +
                               std::string(to_string(p.type)) + "; it cannot be " +
                               (writing ? "written from " : "read as ") + std::string(cpp));
  }
  return values_[i];
}

void Sheet::throw_null(std::string_view property, std::string_view cpp) const {
  throw SheetDefinitionError("sheet '" + def_->name + "' property '" + std::string(property) +
                             "' is NULL; read it as std::optional<" + std::string(cpp) + ">");
}

void Sheet::assign(std::string_view property, unsigned accepted, std::string_view cpp,
                   sql::Value v) {
  (void)checked(property, accepted, cpp, true);
  const std::size_t i = index_of(property);
  if (removed_) {
    throw UsageError("sheet '" + def_->name + "' " + std::to_string(key_) +
                     " was removed in this transaction");
  }
  if (values_[i] != v) {
    values_[i] = std::move(v);
    changed_[i] = true;
  }
}

void Sheet::set_null(std::string_view property) {
  const std::size_t i = index_of(property);
  const Property& p = def_->properties[i];
  if (!p.nullable) {
    throw SheetDefinitionError("sheet '" + def_->name + "' property '" + p.name +
                               "' is not nullable");
  }
  if (removed_) {
    throw UsageError("sheet '" + def_->name + "' " + std::to_string(key_) +
                     " was removed in this transaction");
  }
  if (!values_[i].is_null()) {
    values_[i] = sql::Value();
    changed_[i] = true;
  }
}

bool Sheet::is_null(std::string_view property) const {
  return values_[index_of(property)].is_null();
}

const sql::Value& Sheet::value(std::string_view property) const {
  return values_[index_of(property)];
}

void Sheet::remove() { removed_ = true; }

}  // namespace xact::sheets
