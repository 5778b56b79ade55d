// `$n` placeholders for every SQL dialect, so that one statement serves PostgreSQL, MySQL/MariaDB
// and SQLite:
//
//   conn.execute("UPDATE stock SET n = n - $1 WHERE item = $2 AND n >= $1", {1, "book"});
//
// `$1`, `$2`, ... number the parameters (1-based); a number may appear several times and in any
// order. Each adapter hands the statement to translate_placeholders() with its style:
//   PostgreSQL     `$n` is the native form: the statement runs as written.
//   SQLite         `$n` becomes `?n` (SQLite would read `$1` as a *named* parameter, numbered in
//                  order of first appearance: `$2 ... $1` would bind the wrong values).
//   MySQL/MariaDB  `$n` becomes `?`, and the parameters are reordered (and repeated) to follow
//                  the `?`s: bind_in_order().
// Only placeholders in the SQL text proper are translated: string literals ('...', E'...' with
// backslash escapes, MySQL's backslash escapes), quoted identifiers ("...", `...`, SQLite's
// [...]), comments (--, /* */ nested in PostgreSQL, MySQL's #) and PostgreSQL dollar quotes
// ($$...$$, $tag$...$tag$) are copied unchanged, and so is a `$` inside an identifier (`a$1`).
//
// The dialect's own placeholders still work on their own: a MySQL or SQLite statement with `?`
// and no `$n` runs unchanged. A statement that mixes `?` placeholders with `$n` is refused
// (UsageError): which value a `?` takes would be a guess. In PostgreSQL `?` is an operator (jsonb
// `?`, `?|`, `?&`) and is never touched.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <xact/sql/value.hpp>

namespace xact::sql {

enum class PlaceholderStyle {
  dollar,               ///< PostgreSQL: `$n`, as written
  numbered_question,    ///< SQLite: `?n`
  positional_question,  ///< MySQL/MariaDB: `?`, bound in order of appearance
};

struct TranslatedSql {
  std::string sql;  ///< the statement to give the database
  /// positional_question only: for each `?` of `sql`, in order, the 0-based index of the
  /// parameter it takes (`$3` -> 2). Empty when the statement had no `$n`.
  std::vector<std::size_t> order;
  /// The highest n of the `$n` placeholders (0: none; the statement was left as written).
  std::size_t max_placeholder = 0;
};

/// The statement for a dialect (see the file comment). Throws UsageError for `$0`, for a number
/// beyond 32766 (SQLite's and MySQL's limit) and for a statement that mixes `?` and `$n`.
TranslatedSql translate_placeholders(std::string_view sql, PlaceholderStyle style);

/// The parameters in the order the translated statement takes them (positional_question: one
/// per `?`, repeated where a `$n` is). Throws UsageError unless exactly max_placeholder
/// parameters were given. A statement without `$n` takes `params` unchanged.
Params bind_in_order(const TranslatedSql& translated, const Params& params,
                     std::string_view context = "sql");

}  // namespace xact::sql
