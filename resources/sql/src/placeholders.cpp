#include <xact/sql/placeholders.hpp>

#include <xact/errors.hpp>

namespace xact::sql {

namespace {

// SQLITE_MAX_VARIABLE_NUMBER's default and MySQL's prepared-statement limit is 65535: the
// smaller one, so that a statement valid for one store is valid for all.
constexpr std::size_t kMaxPlaceholder = 32766;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c) || c == '$'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

class Scanner {
 public:
  Scanner(std::string_view sql, PlaceholderStyle style) : sql_(sql), style_(style) {}

  TranslatedSql run() {
    TranslatedSql out;
    out.sql.reserve(sql_.size());
    std::size_t copied = 0;  // sql_[copied, i) is still to be copied to out.sql
    bool question = false;   // the dialect's own `?` placeholder seen
    std::size_t i = 0;
    while (i < sql_.size()) {
      const char c = sql_[i];
      if (c == '\'') {
        i = skip_quoted(i, '\'', backslash_escapes_at(i));
      } else if (c == '"') {
        i = skip_quoted(i, '"', style_ == PlaceholderStyle::positional_question);
      } else if (c == '`') {
        i = skip_quoted(i, '`', false);
      } else if (c == '[' && style_ == PlaceholderStyle::numbered_question) {
        const auto end = sql_.find(']', i + 1);
        i = end == std::string_view::npos ? sql_.size() : end + 1;
      } else if (c == '-' && at(i + 1) == '-' && line_comment_dash(i)) {
        i = skip_line(i);
      } else if (c == '#' && style_ == PlaceholderStyle::positional_question) {
        i = skip_line(i);
      } else if (c == '/' && at(i + 1) == '*') {
        i = skip_block_comment(i);
      } else if (c == '?' && style_ != PlaceholderStyle::dollar) {
        question = true;
        ++i;
      } else if (c == '$' && !(i > 0 && is_ident_char(sql_[i - 1]))) {
        if (is_digit(at(i + 1))) {
          std::size_t j = i + 1;
          std::size_t n = 0;
          while (j < sql_.size() && is_digit(sql_[j])) {
            n = n * 10 + static_cast<std::size_t>(sql_[j] - '0');
            if (n > kMaxPlaceholder) {
              throw UsageError("placeholder $" + std::string(sql_.substr(i + 1, j + 1 - i - 1)) +
                               "... is beyond $" + std::to_string(kMaxPlaceholder) +
                               " in: " + std::string(sql_));
            }
            ++j;
          }
          if (n == 0) {
            throw UsageError("placeholder $0 in: " + std::string(sql_) +
                             " (parameters are numbered from $1)");
          }
          out.sql.append(sql_.substr(copied, i - copied));
          if (style_ == PlaceholderStyle::numbered_question) {
            out.sql += '?';
            out.sql.append(sql_.substr(i + 1, j - i - 1));
          } else if (style_ == PlaceholderStyle::positional_question) {
            out.sql += '?';
            out.order.push_back(n - 1);
          } else {
            out.sql.append(sql_.substr(i, j - i));
          }
          if (n > out.max_placeholder) out.max_placeholder = n;
          copied = i = j;
        } else {
          i = skip_dollar_quote(i);
        }
      } else {
        ++i;
      }
    }
    out.sql.append(sql_.substr(copied));
    if (question && out.max_placeholder > 0) {
      throw UsageError("the statement mixes ? and $n placeholders: " + std::string(sql_) +
                       " (use $1, $2, ... throughout)");
    }
    if (out.max_placeholder == 0) out.sql.assign(sql_);
    return out;
  }

 private:
  char at(std::size_t i) const { return i < sql_.size() ? sql_[i] : '\0'; }

  // MySQL reads backslash escapes in every string literal (without NO_BACKSLASH_ESCAPES);
  // PostgreSQL only in E'...' strings; SQLite never.
  bool backslash_escapes_at(std::size_t quote) const {
    if (style_ == PlaceholderStyle::positional_question) return true;
    if (style_ != PlaceholderStyle::dollar || quote == 0) return false;
    const char e = sql_[quote - 1];
    return (e == 'E' || e == 'e') && !(quote >= 2 && is_ident_char(sql_[quote - 2]));
  }

  // From the opening quote at `i` to past the closing one; a doubled quote is one character.
  std::size_t skip_quoted(std::size_t i, char quote, bool backslash) const {
    std::size_t j = i + 1;
    while (j < sql_.size()) {
      if (backslash && sql_[j] == '\\') {
        j += 2;
      } else if (sql_[j] == quote) {
        if (at(j + 1) == quote) {
          j += 2;
        } else {
          return j + 1;
        }
      } else {
        ++j;
      }
    }
    return sql_.size();  // unterminated: the database reports it
  }

  // MySQL needs whitespace (or the end) after "--" for a comment: 5--1 is 5 - (-1) there.
  bool line_comment_dash(std::size_t i) const {
    if (style_ != PlaceholderStyle::positional_question) return true;
    return i + 2 >= sql_.size() || is_space(sql_[i + 2]) || sql_[i + 2] < ' ';
  }

  std::size_t skip_line(std::size_t i) const {
    const auto end = sql_.find('\n', i);
    return end == std::string_view::npos ? sql_.size() : end + 1;
  }

  // PostgreSQL nests block comments; MySQL and SQLite end one at the first */.
  std::size_t skip_block_comment(std::size_t i) const {
    const bool nests = style_ == PlaceholderStyle::dollar;
    int depth = 1;
    std::size_t j = i + 2;
    while (j < sql_.size()) {
      if (sql_[j] == '*' && at(j + 1) == '/') {
        j += 2;
        if (--depth == 0) return j;
      } else if (nests && sql_[j] == '/' && at(j + 1) == '*') {
        j += 2;
        ++depth;
      } else {
        ++j;
      }
    }
    return sql_.size();
  }

  // $$...$$ or $tag$...$tag$ (tag: an identifier without $); a lone `$` is just copied.
  std::size_t skip_dollar_quote(std::size_t i) const {
    std::size_t j = i + 1;
    if (j < sql_.size() && is_ident_start(sql_[j])) {
      while (j < sql_.size() && (is_ident_start(sql_[j]) || is_digit(sql_[j]))) ++j;
    }
    if (at(j) != '$') return i + 1;
    const std::string_view tag = sql_.substr(i, j + 1 - i);
    const auto end = sql_.find(tag, j + 1);
    return end == std::string_view::npos ? sql_.size() : end + tag.size();
  }

  std::string_view sql_;
  PlaceholderStyle style_;
};

}  // namespace

TranslatedSql translate_placeholders(std::string_view sql, PlaceholderStyle style) {
  return Scanner(sql, style).run();
}

Params bind_in_order(const TranslatedSql& translated, const Params& params,
                     std::string_view context) {
  if (translated.max_placeholder == 0) return params;
  if (params.size() != translated.max_placeholder) {
    throw UsageError(std::string(context) + ": the statement uses $1..$" +
                     std::to_string(translated.max_placeholder) + ", " +
                     std::to_string(params.size()) + " parameters given: " + translated.sql);
  }
  if (translated.order.empty()) return params;
  Params out;
  for (const std::size_t index : translated.order) out.add(params[index]);
  return out;
}

}  // namespace xact::sql
