#include <xact/sheets/sheet_store.hpp>

#include <algorithm>
#include <any>

#include <xact/manager.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/errors.hpp>

#include "dialect.hpp"

namespace xact::sheets {

namespace {

// Which store defines which sheet, for SheetOwner (objects know sheet names, not stores).
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, std::weak_ptr<SheetStore>, std::less<>>& registry() {
  static std::map<std::string, std::weak_ptr<SheetStore>, std::less<>> r;
  return r;
}

}  // namespace

SheetStore::SheetStore(std::shared_ptr<sql::SqlResource> resource)
    : resource_(std::move(resource)) {}

SheetStore::~SheetStore() = default;

std::shared_ptr<SheetStore> SheetStore::create(std::shared_ptr<sql::SqlResource> resource) {
  if (!resource) throw UsageError("SheetStore::create: no SQL resource");
  std::shared_ptr<SheetStore> s(new SheetStore(std::move(resource)));
  sql::PooledConnection c = s->resource_->pool()->acquire();
  s->dialect_ = std::string(c->dialect());
  (void)dialect_for(s->dialect_);  // one xact::sheets knows
  return s;
}

void SheetStore::define(SheetDefinition def) {
  check_definition(def, dialect_);
  auto shared = std::make_shared<const SheetDefinition>(std::move(def));
  {
    std::lock_guard lock(mutex_);
    auto it = ensured_.find(shared->name);
    if (it != ensured_.end()) ensured_.erase(it);  // a changed definition is checked again
    defs_[shared->name] = shared;
  }
  std::lock_guard lock(registry_mutex());
  registry()[shared->name] = weak_from_this();
}

std::shared_ptr<SheetStore> SheetStore::for_sheet(std::string_view sheet) {
  std::lock_guard lock(registry_mutex());
  auto it = registry().find(sheet);
  return it == registry().end() ? nullptr : it->second.lock();
}

std::shared_ptr<const SheetDefinition> SheetStore::definition(std::string_view sheet) const {
  std::lock_guard lock(mutex_);
  auto it = defs_.find(sheet);
  if (it == defs_.end()) {
    throw SheetDefinitionError("no sheet '" + std::string(sheet.substr(0, 80)) +
                               "' is defined in this store (SheetStore::define)");
  }
  return it->second;
}

std::shared_ptr<const SheetDefinition> SheetStore::ensured(std::string_view sheet) {
  auto def = definition(sheet);
  {
    std::lock_guard lock(mutex_);
    if (ensured_.count(sheet) != 0) return def;
  }
  ensure(sheet);
  return def;
}

void SheetStore::ensure(std::string_view sheet) {
  auto def = definition(sheet);
  migrate(*def);
  std::lock_guard lock(mutex_);
  if (defs_[def->name] == def) ensured_.insert(def->name);
}

namespace {

std::string catalog_text(const Property& p) { return std::string(to_string(p.type)); }

// What a stored property and a defined one disagree on ("" when nothing).
std::string difference(const sql::Row& stored, const Property& p) {
  std::string out;
  const std::string type = stored.get<std::string>("type");
  if (type != to_string(p.type)) out += "type " + type + " -> " + catalog_text(p) + "; ";
  if ((stored.get<std::int64_t>("nullable") != 0) != p.nullable) {
    out += p.nullable ? "NOT NULL -> nullable; " : "nullable -> NOT NULL; ";
  }
  if (p.type == PropertyType::decimal && (stored.get<std::int64_t>("precision_") != p.precision ||
                                          stored.get<std::int64_t>("scale_") != p.scale)) {
    out += "decimal size; ";
  }
  return out;
}

}  // namespace

void SheetStore::in_schema_transaction(std::string_view sheet,
                                       const std::function<void(sql::Connection&)>& fn) {
  const Dialect& d = dialect_for(dialect_);
  // Its own connection and transaction: never the branch of a transaction (see the header).
  sql::PooledConnection c = resource_->pool()->acquire();
  for (auto s : d.schema_begin) {
    const sql::Result r = c->execute(s);
    // GET_LOCK answers 1 (taken), 0 (timed out) or NULL (error).
    if (s.find("GET_LOCK") != std::string_view::npos && r.one().at(0) != sql::Value(1)) {
      throw TransientError("sheet '" + std::string(sheet) +
                           "': another process held the schema lock (xact_sheets_schema) for "
                           "60 s; retry");
    }
  }
  try {
    c->execute(d.catalog_table());
    fn(*c);
    for (auto s : d.schema_commit) c->execute(s);
  } catch (...) {
    try {
      for (auto s : d.schema_rollback) c->execute(s);
    } catch (...) {
      c.discard();  // closing it rolls back and releases the lock
    }
    throw;
  }
}

void SheetStore::migrate(const SheetDefinition& def) {
  const Dialect& d = dialect_for(dialect_);
  in_schema_transaction(def.name, [&](sql::Connection& conn) {
    sql::Connection* c = &conn;
    const sql::Result stored = c->execute(
        "SELECT property, position, type, nullable, precision_, scale_ FROM xact_sheet_catalog "
        "WHERE sheet = $1 ORDER BY position",
        {def.name});
    // Refuse before changing anything.
    std::string problems;
    std::int64_t next_position = 0;
    for (const auto& row : stored) {
      const std::string name = row.get<std::string>("property");
      next_position = std::max(next_position, row.get<std::int64_t>("position") + 1);
      const Property* p = def.find(name);
      if (p == nullptr) {
        problems += "property '" + name + "' (" + row.get<std::string>("type") +
                    ") is in the table but not in the definition: dropping a property is not "
                    "automatic; keep it in the definition, or drop the column and delete its "
                    "row from xact_sheet_catalog by hand once no program uses it. ";
      } else if (const std::string diff = difference(row, *p); !diff.empty()) {
        problems += "property '" + name + "' changed (" + diff +
                    "): add a new property with the new type, copy the values over in batches, "
                    "then remove the old one (doc/sheets.md, Migrations). ";
      }
    }
    if (!problems.empty()) {
      throw SchemaMismatchError("sheet '" + def.name + "': the stored schema differs: " + problems);
    }
    if (stored.empty()) {
      for (const auto& s : d.create_table(def)) c->execute(s);
    }
    std::vector<std::string> columns;
    for (const auto& row : c->execute(d.columns_query, {def.name})) {
      columns.push_back(row.get<std::string>(0));
    }
    for (const auto& p : def.properties) {
      bool in_catalog = false;
      for (const auto& row : stored) in_catalog |= row.get<std::string>("property") == p.name;
      if (in_catalog) continue;
      if (std::find(columns.begin(), columns.end(), p.name) == columns.end()) {
        c->execute(d.add_column(def, p));
      }
      c->execute(
          "INSERT INTO xact_sheet_catalog (sheet, property, position, type, nullable, "
          "precision_, scale_, default_sql) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
          {def.name, p.name, next_position++, catalog_text(p),
           static_cast<std::int64_t>(p.nullable ? 1 : 0), p.precision, p.scale,
           p.default_value ? sql::Value(literal(p, *p.default_value, dialect_)) : sql::Value()});
    }
  });
}

std::optional<SheetDefinition> SheetStore::stored_definition(std::string_view sheet) {
  sql::PooledConnection c = resource_->pool()->acquire();
  c->execute(dialect_for(dialect_).catalog_table());
  const sql::Result rows = c->execute(
      "SELECT property, type, nullable, precision_, scale_ FROM xact_sheet_catalog WHERE sheet "
      "= $1 ORDER BY position",
      {std::string(sheet)});
  if (rows.empty()) return std::nullopt;
  SheetDefinition def{std::string(sheet), {}};
  for (const auto& row : rows) {
    Property p;
    p.name = row.get<std::string>("property");
    const std::string type = row.get<std::string>("type");
    for (auto t : {PropertyType::text, PropertyType::int64, PropertyType::float64,
                   PropertyType::boolean, PropertyType::bytes, PropertyType::timestamp,
                   PropertyType::decimal, PropertyType::decimal_text}) {
      if (to_string(t) == type) p.type = t;
    }
    p.nullable = row.get<std::int64_t>("nullable") != 0;
    p.precision = row.get<int>("precision_");
    p.scale = row.get<int>("scale_");
    def.properties.push_back(std::move(p));
  }
  return def;
}

std::int64_t SheetStore::copy_property(std::string_view sheet, std::string_view from,
                                       std::string_view to, std::int64_t batch) {
  auto def = ensured(sheet);
  const Property* source = def->find(from);
  const Property* target = def->find(to);
  if (source == nullptr || target == nullptr) {
    throw SheetDefinitionError("copy_property: sheet '" + def->name + "' defines no property '" +
                               std::string(source == nullptr ? from : to).substr(0, 80) +
                               "' (define the new property and ensure() first)");
  }
  if (batch < 1) throw UsageError("copy_property: batch must be at least 1");
  const Dialect& d = dialect_for(dialect_);
  const std::string t = d.q(def->name);
  std::int64_t lo = 0, hi = -1;
  {
    sql::PooledConnection c = resource_->pool()->acquire();
    const auto r = c->execute("SELECT MIN(sheet_id), MAX(sheet_id) FROM " + t).one();
    if (r.at(0).is_null()) return 0;
    lo = r.get<std::int64_t>(0);
    hi = r.get<std::int64_t>(1);
  }
  std::int64_t copied = 0;
  const std::string sql = "UPDATE " + t + " SET " + d.q(target->name) + " = CAST(" +
                          d.q(source->name) + " AS " + d.cast_type(*target) +
                          "), version = version + 1 WHERE sheet_id >= $1 AND sheet_id < $2";
  for (std::int64_t at = lo; at <= hi; at += batch) {
    sql::PooledConnection c = resource_->pool()->acquire();
    copied += c->execute(sql, {at, at + batch}).affected_rows();
  }
  return copied;
}

void SheetStore::drop_property(std::string_view sheet, std::string_view property) {
  auto def = definition(sheet);
  check_identifier(property, dialect_, "property");
  if (def->find(property) != nullptr) {
    throw SchemaMismatchError("drop_property: sheet '" + def->name + "' still defines '" +
                              std::string(property) +
                              "': define the sheet without it first, then drop it");
  }
  const Dialect& d = dialect_for(dialect_);
  in_schema_transaction(def->name, [&](sql::Connection& c) {
    std::vector<std::string> columns;
    for (const auto& row : c.execute(d.columns_query, {def->name})) {
      columns.push_back(row.get<std::string>(0));
    }
    if (std::find(columns.begin(), columns.end(), property) != columns.end()) {
      c.execute("ALTER TABLE " + d.q(def->name) + " DROP COLUMN " + d.q(property));
    }
    c.execute("DELETE FROM xact_sheet_catalog WHERE sheet = $1 AND property = $2",
              {def->name, std::string(property)});
  });
  std::lock_guard lock(mutex_);
  ensured_.erase(def->name);
}

std::vector<Owner> SheetStore::orphans(std::string_view sheet, objectstore::Connection& conn) {
  auto def = ensured(sheet);
  const std::string database = conn.db().name();
  sql::Result rows;
  {
    sql::PooledConnection c = resource_->pool()->acquire();
    rows = c->execute("SELECT owner_oid FROM " + dialect_for(dialect_).q(def->name) +
                          " WHERE owner_db = $1 ORDER BY owner_oid",
                      {database});
  }
  std::vector<Owner> out;
  for (const auto& row : rows) {
    const auto oid = row.get<std::int64_t>(0);
    try {
      (void)conn.get(static_cast<objectstore::Oid>(oid));
    } catch (const objectstore::ObjectNotFoundError&) {
      out.push_back(Owner{database, oid});
    }
  }
  return out;
}

std::vector<std::string> SheetStore::stored_sheets() {
  const Dialect& d = dialect_for(dialect_);
  sql::PooledConnection c = resource_->pool()->acquire();
  // Whether the catalog exists, from the database's own catalog: a SELECT on a missing table
  // would fail (and CREATE TABLE IF NOT EXISTS would write).
  if (c->execute(d.columns_query, {std::string("xact_sheet_catalog")}).empty()) return {};
  std::vector<std::string> out;
  for (const auto& row :
       c->execute("SELECT DISTINCT sheet FROM xact_sheet_catalog ORDER BY sheet")) {
    out.push_back(row.get<std::string>(0));
  }
  return out;
}

std::vector<SheetStore::StoredRow> SheetStore::stored_rows(std::string_view sheet) {
  check_identifier(sheet, dialect_, "sheet");
  const Dialect& d = dialect_for(dialect_);
  sql::PooledConnection c = resource_->pool()->acquire();
  std::vector<StoredRow> out;
  for (const auto& row : c->execute("SELECT sheet_id, owner_db, owner_oid FROM " + d.q(sheet) +
                                    " ORDER BY owner_db, owner_oid, sheet_id")) {
    out.push_back(
        {row.get<std::int64_t>(0), Owner{row.get<std::string>(1), row.get<std::int64_t>(2)}});
  }
  return out;
}

SheetManager& SheetStore::manager(Transaction& txn) {
  std::any& slot = txn.data(this);
  if (!slot.has_value()) {
    // Schema first, on its own connection, before this transaction's branch uses any table
    // (SQLite: the branch would hold the write lock the schema transaction needs).
    std::vector<std::string> names;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [name, def] : defs_) {
        if (ensured_.count(name) == 0) names.push_back(name);
      }
    }
    for (const auto& n : names) ensure(n);
    slot = std::make_shared<SheetManager>(shared_from_this(), txn);
  }
  auto m = std::any_cast<std::shared_ptr<SheetManager>&>(slot);
  resource_->add_extension(txn, m);  // again after a savepoint rollback dropped it
  return *m;
}

SheetManager& SheetStore::manager() { return manager(current_manager().get()); }

}  // namespace xact::sheets
