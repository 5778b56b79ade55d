#include <algorithm>

#include <xact/sheets/sheet_store.hpp>

#include "dialect.hpp"

namespace xact::sheets {

namespace {

constexpr std::size_t kLoadBatch = 500;

std::string select_list(const Dialect& d, const SheetDefinition& def) {
  std::string s = "sheet_id, owner_db, owner_oid, version";
  for (const auto& p : def.properties) s += ", " + d.q(p.name);
  return s;
}

}  // namespace

SheetManager::SheetManager(std::shared_ptr<SheetStore> store, Transaction& txn)
    : store_(std::move(store)), txn_(&txn) {}

sql::Result SheetManager::run(std::string_view sql, const sql::Params& params) {
  try {
    return store_->resource()->execute(*txn_, sql, params);
  } catch (const sql::SqlError& e) {
    // MySQL/MariaDB: another process changed the table's definition after this branch used
    // it. Running the transaction again sees the new definition.
    if (e.native_code() == 1412) {
      throw ConflictError(std::string("sheet table definition changed under the transaction "
                                      "(MySQL 1412); retry: ") +
                          e.what());
    }
    throw;
  }
}

Sheet& SheetManager::adopt(const std::shared_ptr<const SheetDefinition>& def, const sql::Row& row) {
  const std::int64_t key = row.get<std::int64_t>(0);
  auto& slot = sheets_[{def->name, key}];
  if (slot) return *slot;  // the identity map: what this transaction holds wins
  std::vector<sql::Value> values;
  values.reserve(def->properties.size());
  for (std::size_t i = 0; i < def->properties.size(); ++i) {
    values.push_back(normalize(def->properties[i], row.at(4 + i), def->name));
  }
  Owner owner{row.get<std::string>(1), row.get<std::int64_t>(2)};
  by_owner_[{def->name, owner}] = key;
  slot.reset(new Sheet(def, key, std::move(owner), row.get<std::int64_t>(3), std::move(values)));
  return *slot;
}

Sheet& SheetManager::create(std::string_view sheet, const Owner& owner) {
  auto def = store_->ensured(sheet);
  if (by_owner_.count({def->name, owner}) != 0) {
    throw UsageError("object " + owner.database + ":" + std::to_string(owner.oid) +
                     " already has a sheet '" + def->name + "'");
  }
  const Dialect& d = dialect_for(store_->dialect());
  std::string sql =
      "INSERT INTO " + d.q(def->name) + " (owner_db, owner_oid, version) VALUES ($1, $2, 1)";
  std::int64_t key = 0;
  if (d.insert_returning) {
    key = run(sql + " RETURNING sheet_id", {owner.database, owner.oid}).one().get<std::int64_t>(0);
  } else {
    run(sql, {owner.database, owner.oid});
    key = run(d.last_insert_id, {}).one().get<std::int64_t>(0);
  }
  std::vector<sql::Value> values;
  for (const auto& p : def->properties) {
    values.push_back(p.default_value ? normalize(p, *p.default_value, def->name) : sql::Value());
  }
  auto s = std::shared_ptr<Sheet>(new Sheet(def, key, owner, 1, std::move(values)));
  sheets_[{def->name, key}] = s;
  by_owner_[{def->name, owner}] = key;
  return *s;
}

Sheet& SheetManager::get(std::string_view sheet, std::int64_t key) {
  if (auto it = sheets_.find({std::string(sheet), key}); it != sheets_.end()) return *it->second;
  auto def = store_->ensured(sheet);
  const Dialect& d = dialect_for(store_->dialect());
  const sql::Result r = run(
      "SELECT " + select_list(d, *def) + " FROM " + d.q(def->name) + " WHERE sheet_id = $1", {key});
  if (r.empty()) {
    throw SheetNotFoundError("no sheet '" + def->name + "' with key " + std::to_string(key) +
                             " (deleted, or not committed yet)");
  }
  return adopt(def, r[0]);
}

Sheet* SheetManager::find(std::string_view sheet, const Owner& owner) {
  if (auto it = by_owner_.find({std::string(sheet), owner}); it != by_owner_.end()) {
    return sheets_.at({std::string(sheet), it->second}).get();
  }
  auto def = store_->ensured(sheet);
  const Dialect& d = dialect_for(store_->dialect());
  const sql::Result r = run("SELECT " + select_list(d, *def) + " FROM " + d.q(def->name) +
                                " WHERE owner_db = $1 AND owner_oid = $2",
                            {owner.database, owner.oid});
  if (r.empty()) return nullptr;
  return &adopt(def, r[0]);
}

std::vector<Sheet*> SheetManager::load(std::string_view sheet, const std::string& database,
                                       const std::vector<std::int64_t>& oids) {
  auto def = store_->ensured(sheet);
  const Dialect& d = dialect_for(store_->dialect());
  std::vector<std::int64_t> missing;
  for (auto oid : oids) {
    if (by_owner_.count({def->name, Owner{database, oid}}) == 0) missing.push_back(oid);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  for (std::size_t at = 0; at < missing.size(); at += kLoadBatch) {
    const std::size_t n = std::min(kLoadBatch, missing.size() - at);
    std::string sql = "SELECT " + select_list(d, *def) + " FROM " + d.q(def->name) +
                      " WHERE owner_db = $1 AND owner_oid IN (";
    std::vector<sql::Value> values(n + 1);
    values[0] = database;
    for (std::size_t i = 0; i < n; ++i) {
      sql += (i == 0 ? "$" : ", $") + std::to_string(i + 2);
      values[i + 1] = missing[at + i];
    }
    for (const auto& row : run(sql + ")", sql::Params(std::move(values)))) adopt(def, row);
  }
  std::vector<Sheet*> out;
  for (auto oid : oids) {
    auto it = by_owner_.find({def->name, Owner{database, oid}});
    if (it != by_owner_.end()) out.push_back(sheets_.at({def->name, it->second}).get());
  }
  return out;
}

void SheetManager::write_back() {
  const Dialect& d = dialect_for(store_->dialect());
  // In key order: two transactions writing the same sheets lock them in the same order.
  for (auto it = sheets_.begin(); it != sheets_.end();) {
    Sheet& s = *it->second;
    if (!s.dirty()) {
      ++it;
      continue;
    }
    const std::string table = d.q(s.name());
    const std::string who = "sheet '" + s.name() + "' " + std::to_string(s.key()) + " of " +
                            s.owner().database + ":" + std::to_string(s.owner().oid);
    if (s.removed()) {
      const auto r = run("DELETE FROM " + table + " WHERE sheet_id = $1 AND version = $2",
                         {s.key(), s.version()});
      if (r.affected_rows() != 1) {
        throw ConflictError(who +
                            " was changed or deleted by another transaction since it was "
                            "read (version " +
                            std::to_string(s.version()) + ")");
      }
      by_owner_.erase({s.name(), s.owner()});
      retired_.push_back(it->second);
      it = sheets_.erase(it);
      continue;
    }
    std::string sql = "UPDATE " + table + " SET ";
    sql::Params params;
    int n = 0;
    for (std::size_t i = 0; i < s.values_.size(); ++i) {
      if (!s.changed_[i]) continue;
      const Property& p = s.definition().properties[i];
      sql += d.q(p.name) + " = $" + std::to_string(++n) + ", ";
      params.add(to_param(p, s.values_[i]));
    }
    sql += "version = version + 1 WHERE sheet_id = $" + std::to_string(n + 1) + " AND version = $" +
           std::to_string(n + 2);
    params.add(s.key());
    params.add(s.version());
    const auto r = run(sql, params);
    if (r.affected_rows() != 1) {
      throw ConflictError(who +
                          " was changed or deleted by another transaction since it was "
                          "read (version " +
                          std::to_string(s.version()) + ")");
    }
    ++s.version_;
    std::fill(s.changed_.begin(), s.changed_.end(), false);
    ++it;
  }
}

void SheetManager::flush() { write_back(); }

void SheetManager::before_vote(Transaction&, sql::SqlResource&) { write_back(); }

void SheetManager::rolled_back(Transaction&) noexcept {
  for (auto& [k, s] : sheets_) retired_.push_back(s);
  sheets_.clear();
  by_owner_.clear();
}

std::function<void()> SheetManager::savepoint(Transaction&) {
  // Copies of the sheets as they are now; the rollback puts these values back into the same
  // Sheet objects (references the application holds stay valid).
  auto saved = std::make_shared<std::map<Key, Sheet>>();
  for (const auto& [k, s] : sheets_) saved->emplace(k, *s);
  auto owners = by_owner_;
  return [this, saved, owners = std::move(owners)] {
    std::map<Key, std::shared_ptr<Sheet>> now;
    for (auto& [k, s] : *saved) {
      auto it = sheets_.find(k);
      if (it != sheets_.end()) {
        *it->second = s;
        now[k] = it->second;
        sheets_.erase(it);
      } else {
        now[k] = std::shared_ptr<Sheet>(new Sheet(s));
      }
    }
    for (auto& [k, s] : sheets_) retired_.push_back(s);
    sheets_ = std::move(now);
    by_owner_ = owners;
  };
}

std::vector<Owner> SheetManager::find_owners(std::string_view sheet, const Query& query) {
  auto def = store_->ensured(sheet);
  flush();
  const Dialect& d = dialect_for(store_->dialect());
  std::string sql = "SELECT owner_db, owner_oid FROM " + d.q(def->name);
  std::vector<std::string> conds;
  sql::Params params;
  int n = 0;
  auto property = [&](const std::string& name) -> const Property& {
    const Property* p = def->find(name);
    if (p == nullptr) {
      throw SheetDefinitionError("sheet '" + def->name + "' has no property '" +
                                 name.substr(0, 80) + "' to query");
    }
    return *p;
  };
  if (!query.database.empty()) {
    conds.push_back("owner_db = $" + std::to_string(++n));
    params.add(query.database);
  }
  using Op = Condition::Op;
  for (const auto& c : query.where) {
    const Property& p = property(c.property);
    const std::string col = d.q(p.name);
    if (c.op == Op::is_null || c.op == Op::not_null) {
      conds.push_back(col + (c.op == Op::is_null ? " IS NULL" : " IS NOT NULL"));
      continue;
    }
    if (c.value.is_null()) {
      throw SheetDefinitionError("query on sheet '" + def->name + "' property '" + p.name +
                                 "': compare with NULL through Op::is_null / Op::not_null");
    }
    if (c.op == Op::prefix) {
      if (p.type != PropertyType::text) {
        throw SheetDefinitionError("query on sheet '" + def->name + "' property '" + p.name +
                                   "': a prefix match needs a text property");
      }
      const std::string prefix = c.value.as_string();
      if (d.prefix_binds_pattern()) {
        std::string pattern;
        for (char ch : prefix) {
          if (ch == '!' || ch == '%' || ch == '_') pattern += '!';
          pattern += ch;
        }
        params.add(pattern + "%");
      } else {
        params.add(prefix);
      }
      conds.push_back(d.prefix(col, ++n));
      continue;
    }
    static constexpr const char* kOps[] = {" = ", " <> ", " < ", " <= ", " > ", " >= "};
    conds.push_back(col + kOps[static_cast<int>(c.op)] + "$" + std::to_string(++n));
    params.add(to_param(p, normalize(p, c.value, def->name)));
  }
  for (std::size_t i = 0; i < conds.size(); ++i) sql += (i == 0 ? " WHERE " : " AND ") + conds[i];
  const std::string dir = query.descending ? " DESC" : "";
  sql += " ORDER BY ";
  if (!query.order_by.empty()) sql += d.q(property(query.order_by).name) + dir + ", ";
  sql += "sheet_id" + dir;
  if (query.limit) {
    sql += " LIMIT $" + std::to_string(++n);
    params.add(*query.limit);
  }
  std::vector<Owner> out;
  for (const auto& row : run(sql, params)) {
    out.push_back(Owner{row.get<std::string>(0), row.get<std::int64_t>(1)});
  }
  return out;
}

}  // namespace xact::sheets
