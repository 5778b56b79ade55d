#include "dialect.hpp"

#include <cstdio>

namespace xact::sheets {

namespace {

const Dialect kPostgres{
    .name = "postgresql",
    .max_identifier = 63,
    .quote = '"',
    // A transaction-level advisory lock: released at COMMIT/ROLLBACK.
    .schema_begin = {"BEGIN", "SELECT pg_advisory_xact_lock(7312584170395)"},
    .schema_commit = {"COMMIT"},
    .schema_rollback = {"ROLLBACK"},
    .insert_returning = true,
    .last_insert_id = "",
    .columns_query =
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = $1",
};

// DDL commits implicitly in MySQL: the named lock (a session lock) serializes processes.
const Dialect kMySql{
    .name = "mysql",
    .max_identifier = 64,
    .quote = '`',
    .schema_begin = {"SELECT GET_LOCK('xact_sheets_schema', 60)"},
    .schema_commit = {"SELECT RELEASE_LOCK('xact_sheets_schema')"},
    .schema_rollback = {"SELECT RELEASE_LOCK('xact_sheets_schema')"},
    .insert_returning = false,
    .last_insert_id = "SELECT LAST_INSERT_ID()",
    .columns_query =
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "DATABASE() AND table_name = $1",
};

const Dialect kSqlite{
    .name = "sqlite",
    .max_identifier = 64,
    .quote = '"',
    .schema_begin = {"BEGIN IMMEDIATE"},
    .schema_commit = {"COMMIT"},
    .schema_rollback = {"ROLLBACK"},
    .insert_returning = true,
    .last_insert_id = "",
    .columns_query = "SELECT name FROM pragma_table_info($1)",
};

}  // namespace

const Dialect& dialect_for(std::string_view name) {
  if (name == "postgresql") return kPostgres;
  if (name == "mysql") return kMySql;
  if (name == "sqlite") return kSqlite;
  throw UsageError("xact::sheets: no dialect '" + std::string(name) +
                   "' (postgresql, mysql, sqlite)");
}

std::string Dialect::q(std::string_view identifier) const {
  // Identifiers were checked against [a-z][a-z0-9_]* (check_identifier): quoting is for
  // reserved words a later server version adds, never for escaping.
  return quote + std::string(identifier) + quote;
}

std::string Dialect::column_type(const Property& p) const {
  const bool pg = name == "postgresql";
  const bool my = name == "mysql";
  switch (p.type) {
    case PropertyType::text:
    case PropertyType::decimal_text:
      if (pg) return "text COLLATE \"C\"";
      if (my) return "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";
      return "TEXT";
    case PropertyType::int64: return pg ? "bigint" : my ? "BIGINT" : "INTEGER";
    case PropertyType::float64: return pg ? "double precision" : my ? "DOUBLE" : "REAL";
    case PropertyType::boolean: return pg ? "boolean" : my ? "BOOLEAN" : "INTEGER";
    case PropertyType::bytes: return pg ? "bytea" : my ? "LONGBLOB" : "BLOB";
    case PropertyType::timestamp: return pg ? "timestamp(6)" : my ? "DATETIME(6)" : "TEXT";
    case PropertyType::decimal: {
      if (!pg && !my) return "TEXT";
      const std::string size =
          "(" + std::to_string(p.precision) + "," + std::to_string(p.scale) + ")";
      return (pg ? "numeric" : "DECIMAL") + size;
    }
  }
  return "TEXT";
}

std::string literal(const Property& p, const sql::Value& v, std::string_view dialect) {
  const sql::Value n = normalize(p, v, "");
  if (n.is_null()) return "NULL";
  auto mysql_quoted = [](const std::string& s) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out += '\'';
      if (c == '\\') out += '\\';  // MySQL reads backslash escapes in literals
      out += c;
    }
    return out + "'";
  };
  switch (p.type) {
    case PropertyType::int64: return std::to_string(n.as_int64());
    case PropertyType::float64: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", n.as_double());
      return buf;
    }
    case PropertyType::boolean:
      return dialect == "postgresql" ? (n.as_bool() ? "true" : "false") : (n.as_bool() ? "1" : "0");
    case PropertyType::timestamp: return "'" + format_timestamp(n.as_int64()) + "'";
    case PropertyType::bytes: {
      static const char* hex = "0123456789abcdef";
      std::string h;
      for (auto b : n.as_bytes()) {
        h += hex[b >> 4];
        h += hex[b & 15];
      }
      return dialect == "postgresql" ? "'\\x" + h + "'::bytea" : "X'" + h + "'";
    }
    default: {
      const std::string s = n.as_string();
      if (dialect == "mysql") return mysql_quoted(s);
      std::string out = "'";
      for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
      }
      return out + "'";
    }
  }
}

std::string Dialect::column(const Property& p) const {
  std::string c = q(p.name) + " " + column_type(p);
  // MySQL allows no literal default on BLOB/TEXT columns before 8.0.13 (MariaDB does); an
  // expression default works on both.
  if (p.default_value && !p.default_value->is_null()) {
    const std::string lit = literal(p, *p.default_value, name);
    c += name == "mysql" ? " DEFAULT (" + lit + ")" : " DEFAULT " + lit;
  }
  if (!p.nullable) c += " NOT NULL";
  return c;
}

std::vector<std::string> Dialect::create_table(const SheetDefinition& def) const {
  const std::string t = q(def.name);
  std::string cols;
  for (const auto& p : def.properties) cols += ",\n  " + column(p);
  std::vector<std::string> out;
  if (name == "postgresql") {
    out.push_back("CREATE TABLE IF NOT EXISTS " + t +
                  " (\n  sheet_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
                  "  owner_db text COLLATE \"C\" NOT NULL,\n  owner_oid bigint NOT NULL,\n"
                  "  version bigint NOT NULL DEFAULT 1" +
                  cols + ",\n  UNIQUE (owner_db, owner_oid))");
    out.push_back(
        "CREATE OR REPLACE FUNCTION xact_sheet_bump_version() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN IF NEW.version = OLD.version THEN NEW.version := OLD.version + 1; END IF; "
        "RETURN NEW; END $$");
    out.push_back("CREATE OR REPLACE TRIGGER " + q(def.name + "_version") + " BEFORE UPDATE ON " +
                  t + " FOR EACH ROW EXECUTE FUNCTION xact_sheet_bump_version()");
  } else if (name == "mysql") {
    out.push_back("CREATE TABLE IF NOT EXISTS " + t +
                  " (\n  sheet_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"
                  "  owner_db VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n"
                  "  owner_oid BIGINT NOT NULL,\n  version BIGINT NOT NULL DEFAULT 1" +
                  cols + ",\n  UNIQUE KEY " + q(def.name + "_owner") +
                  " (owner_db, owner_oid)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 "
                  "COLLATE=utf8mb4_bin");
    out.push_back("CREATE TRIGGER IF NOT EXISTS " + q(def.name + "_version") +
                  " BEFORE UPDATE ON " + t +
                  " FOR EACH ROW SET NEW.version = IF(NEW.version = OLD.version, "
                  "OLD.version + 1, NEW.version)");
  } else {
    // AUTOINCREMENT: a deleted sheet's key is never given to another sheet (objects hold keys).
    out.push_back("CREATE TABLE IF NOT EXISTS " + t +
                  " (\n  sheet_id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
                  "  owner_db TEXT NOT NULL,\n  owner_oid INTEGER NOT NULL,\n"
                  "  version INTEGER NOT NULL DEFAULT 1" +
                  cols + ",\n  UNIQUE (owner_db, owner_oid))");
    // SQLite's BEFORE triggers cannot change NEW: an AFTER trigger bumps the row instead
    // (recursive_triggers is off, so its own UPDATE does not fire it again).
    out.push_back("CREATE TRIGGER IF NOT EXISTS " + q(def.name + "_version") + " AFTER UPDATE ON " +
                  t + " FOR EACH ROW WHEN NEW.version = OLD.version BEGIN UPDATE " + t +
                  " SET version = OLD.version + 1 WHERE sheet_id = NEW.sheet_id; END");
  }
  return out;
}

std::string Dialect::add_column(const SheetDefinition& def, const Property& p) const {
  return "ALTER TABLE " + q(def.name) + " ADD COLUMN " + column(p);
}

std::string Dialect::cast_type(const Property& p) const {
  if (name == "postgresql") {
    const std::string t = column_type(p);
    return p.type == PropertyType::text || p.type == PropertyType::decimal_text ? "text" : t;
  }
  if (name == "mysql") {
    switch (p.type) {
      case PropertyType::int64:
      case PropertyType::boolean: return "SIGNED";
      case PropertyType::float64: return "DOUBLE";
      case PropertyType::bytes: return "BINARY";
      case PropertyType::timestamp: return "DATETIME(6)";
      case PropertyType::decimal: return column_type(p);
      default: return "CHAR CHARACTER SET utf8mb4";
    }
  }
  switch (p.type) {
    case PropertyType::int64:
    case PropertyType::boolean: return "INTEGER";
    case PropertyType::float64: return "REAL";
    case PropertyType::bytes: return "BLOB";
    default: return "TEXT";
  }
}

std::string Dialect::catalog_table() const {
  const std::string text =
      name == "mysql" ? "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" : "VARCHAR(64)";
  std::string s = "CREATE TABLE IF NOT EXISTS xact_sheet_catalog (\n  sheet " + text +
                  " NOT NULL,\n  property " + text +
                  " NOT NULL,\n  position INTEGER NOT NULL,\n  type VARCHAR(16) NOT NULL,\n"
                  "  nullable INTEGER NOT NULL,\n  precision_ INTEGER NOT NULL,\n"
                  "  scale_ INTEGER NOT NULL,\n  default_sql TEXT,\n"
                  "  PRIMARY KEY (sheet, property))";
  if (name == "mysql") s += " ENGINE=InnoDB";
  return s;
}

std::string Dialect::prefix(const std::string& column, int n) const {
  if (name == "sqlite") {
    // SQLite's LIKE ignores ASCII case: compare the leading characters instead.
    return "substr(" + column + ", 1, length($" + std::to_string(n) + ")) = $" + std::to_string(n);
  }
  return column + " LIKE $" + std::to_string(n) + " ESCAPE '!'";
}

sql::Value to_param(const Property& p, const sql::Value& v) {
  if (v.is_null()) return v;
  if (p.type == PropertyType::timestamp) return format_timestamp(v.as_int64());
  return v;
}

}  // namespace xact::sheets
