#include <xact/sheets/definition.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>

#include "dialect.hpp"

namespace xact::sheets {

std::string_view to_string(PropertyType type) {
  switch (type) {
    case PropertyType::text: return "text";
    case PropertyType::int64: return "int64";
    case PropertyType::float64: return "float64";
    case PropertyType::boolean: return "boolean";
    case PropertyType::bytes: return "bytes";
    case PropertyType::timestamp: return "timestamp";
    case PropertyType::decimal: return "decimal";
    case PropertyType::decimal_text: return "decimal_text";
  }
  return "?";
}

const Property* SheetDefinition::find(std::string_view property) const noexcept {
  for (const auto& p : properties) {
    if (p.name == property) return &p;
  }
  return nullptr;
}

namespace {

// Reserved in PostgreSQL, MySQL/MariaDB or SQLite (the union, lower case, sorted), plus words
// that are easy to trip over as column names on one of them.
constexpr std::array<std::string_view, 168> kReserved = {
    "abort",        "accessible",   "action",       "add",          "all",
    "alter",        "analyze",      "and",          "any",          "array",
    "as",           "asc",          "asensitive",   "attach",       "autoincrement",
    "before",       "begin",        "between",      "bigint",       "binary",
    "blob",         "both",         "by",           "call",         "cascade",
    "case",         "cast",         "change",       "char",         "character",
    "check",        "collate",      "column",       "commit",       "condition",
    "conflict",     "constraint",   "continue",     "convert",      "create",
    "cross",        "current",      "current_date", "current_time", "current_timestamp",
    "current_user", "cursor",       "database",     "databases",    "date",
    "decimal",      "declare",      "default",      "deferrable",   "delete",
    "desc",         "describe",     "distinct",     "do",           "double",
    "drop",         "each",         "else",         "elseif",       "end",
    "escape",       "except",       "exclusive",    "exists",       "explain",
    "false",        "fetch",        "float",        "for",          "force",
    "foreign",      "from",         "full",         "fulltext",     "glob",
    "grant",        "group",        "having",       "if",           "ignore",
    "immediate",    "in",           "index",        "inner",        "insert",
    "int",          "integer",      "intersect",    "interval",     "into",
    "is",           "isnull",       "join",         "key",          "keys",
    "kill",         "leading",      "left",         "like",         "limit",
    "lines",        "load",         "lock",         "long",         "match",
    "natural",      "no",           "not",          "notnull",      "null",
    "numeric",      "of",           "offset",       "on",           "option",
    "or",           "order",        "outer",        "over",         "partition",
    "plan",         "pragma",       "primary",      "procedure",    "range",
    "read",         "real",         "references",   "regexp",       "reindex",
    "release",      "rename",       "replace",      "restrict",     "returning",
    "right",        "rollback",     "row",          "rows",         "schema",
    "select",       "session_user", "set",          "show",         "table",
    "then",         "to",           "transaction",  "trigger",      "true",
    "union",        "unique",       "update",       "usage",        "user",
    "using",        "vacuum",       "values",       "view",         "when",
    "where",        "window",       "with"};

constexpr std::array<std::string_view, 4> kOwnColumns = {"sheet_id", "owner_db", "owner_oid",
                                                         "version"};

}  // namespace

void check_identifier(std::string_view name, std::string_view dialect, std::string_view what,
                      std::size_t reserve) {
  const std::string quoted = "'" + std::string(name.substr(0, 80)) + "'";
  auto refuse = [&](const std::string& why) {
    throw SheetDefinitionError(std::string(what) + " name " + quoted + " refused: " + why);
  };
  if (name.empty()) refuse("it is empty");
  if (!(name[0] >= 'a' && name[0] <= 'z')) {
    refuse("it must start with a lower-case letter a-z");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) refuse("only a-z, 0-9 and _ are allowed (pattern [a-z][a-z0-9_]*)");
  }
  const std::size_t limit = dialect_for(dialect).max_identifier;
  if (name.size() + reserve > limit) {
    refuse("longer than " + std::to_string(limit - reserve) + " bytes, the limit on " +
           std::string(dialect) +
           (reserve != 0 ? " (leaving room for the names derived from it)" : ""));
  }
  if (std::binary_search(kReserved.begin(), kReserved.end(), name)) {
    refuse("it is an SQL reserved word");
  }
  if (std::find(kOwnColumns.begin(), kOwnColumns.end(), name) != kOwnColumns.end() ||
      name.rfind("xact_", 0) == 0) {
    refuse("it is one of the sheet table's own columns or starts with xact_");
  }
}

void check_definition(const SheetDefinition& def, std::string_view dialect) {
  check_identifier(def.name, dialect, "sheet", 8);  // + "_version" (the trigger)
  if (def.properties.empty()) {
    throw SheetDefinitionError("sheet '" + def.name + "' has no properties");
  }
  for (std::size_t i = 0; i < def.properties.size(); ++i) {
    const Property& p = def.properties[i];
    check_identifier(p.name, dialect, "property");
    for (std::size_t j = 0; j < i; ++j) {
      if (def.properties[j].name == p.name) {
        throw SheetDefinitionError("sheet '" + def.name + "' defines property '" + p.name +
                                   "' twice");
      }
    }
    if (p.type == PropertyType::decimal &&
        (p.precision < 1 || p.precision > 38 || p.scale < 0 || p.scale > p.precision)) {
      throw SheetDefinitionError("sheet '" + def.name + "' property '" + p.name +
                                 "': decimal precision must be 1..38 and scale 0..precision");
    }
    if (!p.nullable && (!p.default_value || p.default_value->is_null())) {
      throw SheetDefinitionError("sheet '" + def.name + "' property '" + p.name +
                                 "' is not nullable: it needs a default_value");
    }
    if (p.default_value) (void)normalize(p, *p.default_value, def.name);
  }
}

std::string format_timestamp(std::int64_t micros) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds(micros)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02lld:%02lld:%02lld.%06lld",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(hms.hours().count()),
                static_cast<long long>(hms.minutes().count()),
                static_cast<long long>(hms.seconds().count()),
                static_cast<long long>(hms.subseconds().count()));
  return buf;
}

std::int64_t parse_timestamp(std::string_view text) {
  // "YYYY-MM-DD HH:MM:SS[.ffffff]" (also with 'T'); what the three databases return.
  auto bad = [&]() -> std::int64_t {
    throw SheetDefinitionError("not a timestamp: '" + std::string(text.substr(0, 40)) + "'");
  };
  auto num = [&](std::size_t pos, std::size_t len) {
    int v = 0;
    if (pos + len > text.size()) bad();
    auto r = std::from_chars(text.data() + pos, text.data() + pos + len, v);
    if (r.ec != std::errc() || r.ptr != text.data() + pos + len) bad();
    return v;
  };
  if (text.size() < 19) bad();
  using namespace std::chrono;
  const year_month_day ymd{year(num(0, 4)), month(static_cast<unsigned>(num(5, 2))),
                           day(static_cast<unsigned>(num(8, 2)))};
  if (!ymd.ok()) bad();
  std::int64_t micros = 0;
  if (text.size() > 20 && text[19] == '.') {
    std::string frac(text.substr(20, 6));
    for (char c : frac) {
      if (c < '0' || c > '9') bad();
    }
    frac.resize(6, '0');
    micros = std::stoll(frac);
  }
  const auto t = sys_days(ymd) + hours(num(11, 2)) + minutes(num(14, 2)) + seconds(num(17, 2));
  return duration_cast<microseconds>(t.time_since_epoch()).count() + micros;
}

sql::Value normalize(const Property& p, const sql::Value& v, std::string_view sheet) {
  if (v.is_null()) return v;
  try {
    switch (p.type) {
      case PropertyType::text:
      case PropertyType::decimal:
      case PropertyType::decimal_text: return v.as_string();
      case PropertyType::int64: return v.as_int64();
      case PropertyType::float64: return v.as_double();
      case PropertyType::boolean: return v.as_bool();
      case PropertyType::bytes:
        if (const auto* s = v.if_text()) return sql::Bytes(s->begin(), s->end());
        return v.as_bytes();
      case PropertyType::timestamp:
        if (const auto* s = v.if_text()) return parse_timestamp(*s);
        return v.as_int64();
    }
  } catch (const SheetDefinitionError&) {
    throw;
  } catch (const UsageError& e) {
    throw SheetDefinitionError("sheet '" + std::string(sheet) + "' property '" + p.name + "' is " +
                               std::string(to_string(p.type)) + ": " + e.what());
  }
  return v;
}

}  // namespace xact::sheets
