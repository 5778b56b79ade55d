// The configuration file's parser: toml++ for the syntax and the line numbers, then one pass that
// checks every key and turns the tables into specs.
#include <xact/config/config.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace xact::config {

std::string_view to_string(SqlKind kind) {
  switch (kind) {
    case SqlKind::postgres: return "postgres";
    case SqlKind::mysql: return "mysql";
    case SqlKind::sqlite: return "sqlite";
  }
  return "?";
}

const SqlSpec* Config::find_sql(std::string_view name) const {
  for (const auto& spec : sql) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

namespace {

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// Reads one file's tables; every error names the file, the line and the key.
class Reader {
 public:
  Reader(std::string file, const ParseOptions& options) : file_(std::move(file)) {
    environment_ = options.environment ? options.environment
                                       : [](const std::string& name) -> std::optional<std::string> {
      const char* value = std::getenv(name.c_str());
      if (value == nullptr) return std::nullopt;
      return std::string(value);
    };
  }

  [[noreturn]] void fail(std::size_t line, std::string_view key, std::string_view what) const {
    std::string message = file_;
    if (line != 0) message += ":" + std::to_string(line);
    if (!key.empty()) message += ": key '" + std::string(key) + "'";
    message += ": " + std::string(what);
    throw ConfigError(message);
  }

  static std::size_t line_of(const toml::node& node) { return node.source().begin.line; }
  Origin origin(const toml::node& node) const { return {file_, line_of(node)}; }

  // Refuses every key of `table` not in `known`, naming it and the keys that are.
  void check_keys(const toml::table& table, std::string_view path,
                  std::initializer_list<std::string_view> known) const {
    for (auto&& [key, value] : table) {
      bool found = false;
      for (auto k : known) found = found || k == key.str();
      if (found) continue;
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      const std::size_t line = key.source().begin.line != 0 ? key.source().begin.line
                                                            : line_of(value);
      fail(line, join(path, key.str()),
           "unknown key; " + std::string(path.empty() ? "the file's top level" : path) +
               " knows: " + list + " (check the spelling; doc/config.md lists every key)");
    }
  }

  static std::string join(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
  }

  // ${VAR} expansion.
  std::string expand(const std::string& text, std::size_t line, const std::string& key) const {
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
      const std::size_t start = text.find("${", i);
      if (start == std::string::npos) {
        out += text.substr(i);
        break;
      }
      out += text.substr(i, start - i);
      const std::size_t end = text.find('}', start + 2);
      if (end == std::string::npos) {
        fail(line, key, "'${' without a closing '}': write ${NAME} to use the environment "
                        "variable NAME");
      }
      const std::string name = text.substr(start + 2, end - start - 2);
      if (!valid_variable(name)) {
        fail(line, key, "'${" + name + "}' is not a variable name (letters, digits and _, "
                        "not starting with a digit)");
      }
      const auto value = environment_(name);
      if (!value) {
        fail(line, key, "the environment variable " + name +
                            " is not set: set it, or write the value into the file");
      }
      out += *value;
      i = end + 1;
    }
    return out;
  }

  static bool valid_variable(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name) {
      if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9'))) {
        return false;
      }
    }
    return true;
  }

  const toml::node* find(const toml::table& table, std::string_view key) const {
    return table.get(key);
  }

  std::optional<std::string> string(const toml::table& table, std::string_view path,
                                    std::string_view key) const {
    const toml::node* node = find(table, key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_string()) {
      fail(line_of(*node), join(path, key),
           "must be a string (in quotes), not " + type_name(*node));
    }
    return expand(node->as_string()->get(), line_of(*node), join(path, key));
  }

  std::string required_string(const toml::table& table, std::size_t table_line,
                              std::string_view path, std::string_view key,
                              std::string_view example) const {
    auto value = string(table, path, key);
    if (!value) {
      fail(table_line, join(path, key), "missing; e.g. " + std::string(key) + " = " +
                                            std::string(example));
    }
    if (value->empty()) {
      fail(line_of(*find(table, key)), join(path, key),
           "is empty; e.g. " + std::string(key) + " = " + std::string(example));
    }
    return *value;
  }

  std::optional<std::size_t> positive(const toml::table& table, std::string_view path,
                                      std::string_view key) const {
    const toml::node* node = find(table, key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_integer() || node->as_integer()->get() < 1) {
      fail(line_of(*node), join(path, key),
           "must be a positive integer (no quotes), not " +
               (node->is_integer() ? std::to_string(node->as_integer()->get()) : type_name(*node)));
    }
    return static_cast<std::size_t>(node->as_integer()->get());
  }

  std::optional<bool> boolean(const toml::table& table, std::string_view path,
                              std::string_view key) const {
    const toml::node* node = find(table, key);
    if (node == nullptr) return std::nullopt;
    if (!node->is_boolean()) {
      fail(line_of(*node), join(path, key),
           "must be true or false (no quotes), not " + type_name(*node));
    }
    return node->as_boolean()->get();
  }

  // Resource names are the branch qualifier of every transaction id: 1..64 bytes.
  void check_name(const std::string& resource_name, std::size_t line, const std::string& key,
                  std::size_t prefix) const {
    try {
      check_branch_name(resource_name);
    } catch (const UsageError&) {
      fail(line, key, "the name must be 1 to " + std::to_string(Xid::kMaxBqual - prefix) +
                          " bytes (it is part of every transaction id), not " +
                          std::to_string(resource_name.size() - prefix));
    }
  }

  std::optional<std::string> password(const toml::table& table, std::string_view path) const {
    const toml::node* env_node = find(table, "password_env");
    const toml::node* file_node = find(table, "password_file");
    if (env_node != nullptr && file_node != nullptr) {
      fail(line_of(*file_node), join(path, "password_file"),
           "give password_env or password_file, not both");
    }
    if (env_node != nullptr) {
      const std::string variable = string(table, path, "password_env").value_or("");
      if (!valid_variable(variable)) {
        fail(line_of(*env_node), join(path, "password_env"),
             "'" + variable + "' is not a variable name (letters, digits and _)");
      }
      auto value = environment_(variable);
      if (!value) {
        fail(line_of(*env_node), join(path, "password_env"),
             "the environment variable " + variable +
                 " (the password) is not set: export it before starting");
      }
      return value;
    }
    if (file_node != nullptr) {
      const std::string secret_path = *string(table, path, "password_file");
      return read_secret_file(secret_path, line_of(*file_node), join(path, "password_file"));
    }
    return std::nullopt;
  }

  std::string read_secret_file(const std::string& path, std::size_t line,
                               const std::string& key) const {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      fail(line, key, "cannot read the password file '" + path + "': " + std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) fail(line, key, "the password file '" + path + "' is not a file");
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      fail(line, key,
           "the password file '" + path + "' has mode " + mode +
               ": others than its owner may read it; make it owner-only (chmod 600 '" + path +
               "')");
    }
    if (st.st_uid != ::geteuid()) {
      fail(line, key, "the password file '" + path + "' belongs to user " +
                          std::to_string(st.st_uid) + ", not to this process's user " +
                          std::to_string(::geteuid()) + ": chown it to the user running xact");
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    if (!in) fail(line, key, "cannot read the password file '" + path + "'");
    std::string value = s.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) fail(line, key, "the password file '" + path + "' is empty");
    return value;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  Environment environment_;
};

// A password inside a URI would sit in the file (and in every message that quoted it).
bool uri_has_password(const std::string& uri) {
  const auto scheme = uri.find("://");
  if (scheme != std::string::npos) {
    const auto authority_end = uri.find_first_of("/?#", scheme + 3);
    const std::string authority = uri.substr(scheme + 3, authority_end == std::string::npos
                                                             ? std::string::npos
                                                             : authority_end - scheme - 3);
    const auto at = authority.rfind('@');
    if (at != std::string::npos && authority.substr(0, at).find(':') != std::string::npos) {
      return true;
    }
    return uri.find("password=") != std::string::npos;
  }
  return uri.find("password") != std::string::npos;
}

DecisionLogSpec read_decision_log(const Reader& r, const toml::table& root) {
  const toml::node* node = root.get("decision_log");
  if (node == nullptr) {
    r.fail(0, "decision_log",
           "missing; every application has one: [decision_log] with directory = "
           "\"/var/lib/app/xact\"");
  }
  if (!node->is_table()) {
    r.fail(Reader::line_of(*node), "decision_log",
           "must be a table ([decision_log]), not " + type_name(*node));
  }
  const toml::table& table = *node->as_table();
  r.check_keys(table, "decision_log", {"directory", "node"});
  DecisionLogSpec spec;
  spec.origin = r.origin(table);
  spec.directory = r.required_string(table, Reader::line_of(table), "decision_log", "directory",
                                     "\"/var/lib/app/xact\"");
  if (auto hex = r.string(table, "decision_log", "node")) {
    spec.node = NodeId::from_hex(*hex);
    if (!spec.node) {
      r.fail(Reader::line_of(*table.get("node")), "decision_log.node",
             "a node id is 32 hex digits (`xact log dump DIR` shows the log's)");
    }
  }
  return spec;
}

template <typename F>
void each_table(const Reader& r, const toml::table& root, std::string_view key, F&& f) {
  const toml::node* node = root.get(key);
  if (node == nullptr) return;
  const toml::array* array = node->as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    r.fail(Reader::line_of(*node), key,
           "must be a list of tables: write each one as [[" + std::string(key) + "]], not " +
               type_name(*node));
  }
  std::size_t i = 0;
  for (const toml::node& element : *array) {
    f(*element.as_table(), std::string(key) + "[" + std::to_string(i) + "]");
    ++i;
  }
}

// "30m", "90s", "1h30m", "2d": a positive duration (nullopt when malformed or zero).
std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::chrono::seconds total{0};
  std::size_t i = 0;
  if (text.empty()) return std::nullopt;
  while (i < text.size()) {
    std::uint64_t n = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (n > 1'000'000'000) return std::nullopt;
      n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
      ++i;
    }
    if (i == start || i == text.size()) return std::nullopt;
    std::uint64_t unit = 0;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return std::nullopt;
    }
    ++i;
    total += std::chrono::seconds(static_cast<std::int64_t>(n * unit));
  }
  if (total.count() <= 0) return std::nullopt;
  return total;
}

DatabaseSpec read_database(const Reader& r, const toml::table& table, const std::string& path) {
  r.check_keys(table, path, {"name", "storage", "cache_size", "pool_size", "xrefs", "expiry"});
  DatabaseSpec spec;
  spec.origin = r.origin(table);
  const std::size_t line = Reader::line_of(table);
  spec.name = r.required_string(table, line, path, "name", "\"main\"");
  r.check_name("objects:" + spec.name, Reader::line_of(*table.get("name")), path + ".name", 8);
  const std::string storage = r.required_string(table, line, path, "storage",
                                                "\"file:/var/lib/app/main.fs\" or \"memory:\"");
  const std::size_t storage_line = Reader::line_of(*table.get("storage"));
  if (storage.rfind("file:", 0) == 0) {
    spec.storage = DatabaseSpec::StorageKind::file;
    spec.path = storage.substr(5);
    if (spec.path.empty()) {
      r.fail(storage_line, path + ".storage",
             "file: needs a path, e.g. storage = \"file:/var/lib/app/main.fs\"");
    }
  } else if (storage == "memory:") {
    spec.storage = DatabaseSpec::StorageKind::memory;
  } else {
    r.fail(storage_line, path + ".storage",
           "unknown storage '" + storage +
               "'; the storages are file:PATH (a file storage) and memory: (lost at exit)");
  }
  if (auto n = r.positive(table, path, "cache_size")) spec.cache_size = *n;
  if (auto n = r.positive(table, path, "pool_size")) spec.pool_size = *n;
  if (auto xrefs = r.string(table, path, "xrefs")) {
    const std::size_t xrefs_line = Reader::line_of(*table.get("xrefs"));
    if (*xrefs == "allow") {
      spec.xrefs = objectstore::XrefPolicy::allow;
    } else if (*xrefs == "check") {
      spec.xrefs = objectstore::XrefPolicy::check;
    } else if (*xrefs == "forbid") {
      spec.xrefs = objectstore::XrefPolicy::forbid;
    } else {
      r.fail(xrefs_line, path + ".xrefs",
             "unknown policy '" + *xrefs +
                 "'; the policies are allow (every cross-database reference), check (those a "
                 "policy of the application allows) and forbid (none; the default)");
    }
  }
  if (auto expiry = r.string(table, path, "expiry")) {
    const std::size_t expiry_line = Reader::line_of(*table.get("expiry"));
    if (spec.storage != DatabaseSpec::StorageKind::memory) {
      r.fail(expiry_line, path + ".expiry",
             "only a memory database expires its objects (a volatile database, storage = "
             "\"memory:\"); a file storage keeps them until a pack drops the unreachable ones: "
             "remove the key, or use storage = \"memory:\"");
    }
    const auto d = parse_duration(*expiry);
    if (!d) {
      r.fail(expiry_line, path + ".expiry",
             "'" + *expiry +
                 "' is not a duration: a positive number with a unit, s, m, h or d, e.g. "
                 "expiry = \"30m\" (units may be combined: \"1h30m\")");
    }
    spec.expiry = *d;
  }
  return spec;
}

SqlSpec read_sql(const Reader& r, const toml::table& table, const std::string& path) {
  r.check_keys(table, path,
               {"name", "kind", "uri", "path", "password_env", "password_file", "last_resource",
                "pool_size"});
  SqlSpec spec;
  spec.origin = r.origin(table);
  const std::size_t line = Reader::line_of(table);
  spec.name = r.required_string(table, line, path, "name", "\"orders\"");
  r.check_name(spec.name, Reader::line_of(*table.get("name")), path + ".name", 0);
  const std::string kind =
      r.required_string(table, line, path, "kind", "\"postgres\", \"mysql\" or \"sqlite\"");
  const std::size_t kind_line = Reader::line_of(*table.get("kind"));
  if (kind == "postgres") {
    spec.kind = SqlKind::postgres;
  } else if (kind == "mysql" || kind == "mariadb") {
    spec.kind = SqlKind::mysql;
  } else if (kind == "sqlite") {
    spec.kind = SqlKind::sqlite;
  } else {
    r.fail(kind_line, path + ".kind",
           "unknown kind '" + kind + "'; the kinds are postgres, mysql (also for MariaDB) and "
                                     "sqlite");
  }
  const toml::node* uri = table.get("uri");
  const toml::node* file = table.get("path");
  if (spec.kind == SqlKind::sqlite) {
    if (uri != nullptr) {
      r.fail(Reader::line_of(*uri), path + ".uri",
             "an sqlite resource has a path, not a uri: path = \"/var/lib/app/app.db\"");
    }
    spec.path = r.required_string(table, line, path, "path", "\"/var/lib/app/app.db\"");
    if (table.get("password_env") != nullptr || table.get("password_file") != nullptr) {
      r.fail(line, path, "an sqlite database has no password: remove password_env/_file");
    }
  } else {
    if (file != nullptr) {
      r.fail(Reader::line_of(*file), path + ".path",
             "a " + kind + " resource has a uri, not a path, e.g. uri = \"" +
                 (spec.kind == SqlKind::postgres ? "postgresql://app@db/orders"
                                                 : "mysql://app@db:3306/orders") +
                 "\"");
    }
    spec.uri = r.required_string(table, line, path, "uri",
                                 spec.kind == SqlKind::postgres ? "\"postgresql://app@db/orders\""
                                                                : "\"mysql://app@db:3306/orders\"");
    if (uri_has_password(spec.uri)) {
      r.fail(Reader::line_of(*uri), path + ".uri",
             "the URI holds a password: remove it and give password_env = \"VAR\" or "
             "password_file = \"PATH\" (owner-only) instead");
    }
    spec.password = r.password(table, path);
  }
  const auto last = r.boolean(table, path, "last_resource");
  if (spec.kind == SqlKind::sqlite) {
    // SQLite cannot prepare: it takes part only as the last resource.
    if (last && !*last) {
      r.fail(Reader::line_of(*table.get("last_resource")), path + ".last_resource",
             "SQLite cannot prepare a transaction, so it is always the last resource: remove "
             "the key or write last_resource = true");
    }
    spec.last_resource = true;
  } else if (last && *last) {
    r.fail(Reader::line_of(*table.get("last_resource")), path + ".last_resource",
           "only an sqlite resource can be the last resource (" + kind +
               " prepares and votes like every other participant): remove the key");
  }
  spec.pool_size = r.positive(table, path, "pool_size");
  return spec;
}

SessionStoreSpec read_session_store(const Reader& r, const toml::table& table,
                                    const std::string& path) {
  r.check_keys(table, path,
               {"name", "kind", "uri", "password_env", "password_file", "table",
                "idle_timeout_seconds", "fence_lease_seconds", "connections"});
  SessionStoreSpec spec;
  spec.origin = r.origin(table);
  const std::size_t line = Reader::line_of(table);
  spec.name = r.required_string(table, line, path, "name", "\"sessions\"");
  r.check_name(spec.name, Reader::line_of(*table.get("name")), path + ".name", 0);
  const std::string kind = r.required_string(table, line, path, "kind", "\"memory\" or \"myisam\"");
  const std::size_t kind_line = Reader::line_of(*table.get("kind"));
  if (kind == "memory") {
    spec.kind = SessionStoreSpec::Kind::memory;
  } else if (kind == "myisam") {
    spec.kind = SessionStoreSpec::Kind::myisam;
  } else {
    r.fail(kind_line, path + ".kind",
           "unknown kind '" + kind + "'; the kinds are memory (this process only) and myisam "
                                     "(a MySQL/MariaDB MyISAM table shared by processes)");
  }
  if (spec.kind == SessionStoreSpec::Kind::memory) {
    for (const char* key : {"uri", "password_env", "password_file", "table", "connections"}) {
      if (const toml::node* node = table.get(key)) {
        r.fail(Reader::line_of(*node), path + "." + key,
               "a memory session store has no database: remove the key (or kind = \"myisam\")");
      }
    }
  } else {
    spec.uri = r.required_string(table, line, path, "uri", "\"mysql://app@db:3306/sessions\"");
    if (uri_has_password(spec.uri)) {
      r.fail(Reader::line_of(*table.get("uri")), path + ".uri",
             "the URI holds a password: remove it and give password_env = \"VAR\" or "
             "password_file = \"PATH\" (owner-only) instead");
    }
    spec.password = r.password(table, path);
    if (table.get("table") != nullptr) {
      spec.table = r.required_string(table, line, path, "table", "\"xact_sessions\"");
      const bool plain =
          spec.table.size() <= 64 &&
          std::all_of(spec.table.begin(), spec.table.end(), [](unsigned char c) {
            return std::isalnum(c) != 0 || c == '_';
          });
      if (!plain) {
        r.fail(Reader::line_of(*table.get("table")), path + ".table",
               "'" + spec.table + "' is not a plain table name (letters, digits, _; at most 64)");
      }
    }
    spec.connections = r.positive(table, path, "connections");
  }
  if (auto n = r.positive(table, path, "idle_timeout_seconds")) {
    spec.idle_timeout = std::chrono::seconds(*n);
  }
  if (auto n = r.positive(table, path, "fence_lease_seconds")) {
    spec.fence_lease = std::chrono::seconds(*n);
  }
  return spec;
}

SheetStoreSpec read_sheet_store(const Reader& r, const toml::table& table, const std::string& path,
                                const Config& config) {
  r.check_keys(table, path, {"sql"});
  SheetStoreSpec spec;
  spec.origin = r.origin(table);
  spec.sql = r.required_string(table, Reader::line_of(table), path, "sql", "\"catalog\"");
  const std::size_t sql_line = Reader::line_of(*table.get("sql"));
  if (config.find_sql(spec.sql) == nullptr) {
    std::string names;
    for (const auto& s : config.sql) names += (names.empty() ? "" : ", ") + s.name;
    r.fail(sql_line, path + ".sql",
           "no [[sql]] resource is named '" + spec.sql + "'; " +
               (names.empty() ? std::string("the file declares none: add one") + " ([[sql]] "
                                    "with name, kind and uri or path)"
                              : "the file's are: " + names));
  }
  for (const auto& other : config.sheet_stores) {
    if (other.sql == spec.sql) {
      r.fail(sql_line, path + ".sql",
             "the sheets of '" + spec.sql + "' are already declared at line " +
                 std::to_string(other.origin.line) + ": one [[sheet_store]] per database");
    }
  }
  return spec;
}

Config read(const Reader& r, const toml::table& root) {
  r.check_keys(root, "", {"decision_log", "database", "sql", "session_store", "sheet_store"});
  Config config;
  config.file = r.file();
  config.decision_log = read_decision_log(r, root);
  std::map<std::string, Origin> names;  // resource names, unique across the file
  const auto claim = [&](const std::string& resource_name, const Origin& origin,
                         const std::string& key) {
    auto [it, fresh] = names.emplace(resource_name, origin);
    if (!fresh) {
      r.fail(origin.line, key,
             "the resource name '" + resource_name + "' is already used at line " +
                 std::to_string(it->second.line) +
                 ": every resource needs its own name (it names its branches)");
    }
  };
  each_table(r, root, "database", [&](const toml::table& t, const std::string& path) {
    config.databases.push_back(read_database(r, t, path));
    claim(config.databases.back().resource_name(), config.databases.back().origin, path + ".name");
  });
  each_table(r, root, "sql", [&](const toml::table& t, const std::string& path) {
    config.sql.push_back(read_sql(r, t, path));
    claim(config.sql.back().resource_name(), config.sql.back().origin, path + ".name");
  });
  each_table(r, root, "session_store", [&](const toml::table& t, const std::string& path) {
    config.session_stores.push_back(read_session_store(r, t, path));
    claim(config.session_stores.back().resource_name(), config.session_stores.back().origin,
          path + ".name");
  });
  each_table(r, root, "sheet_store", [&](const toml::table& t, const std::string& path) {
    config.sheet_stores.push_back(read_sheet_store(r, t, path, config));
  });
  return config;
}

Config parse_table(std::string_view text, const std::string& file, const ParseOptions& options) {
  const Reader reader(file, options);
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    reader.fail(e.source().begin.line, "",
                "not valid TOML: " + std::string(e.description()) +
                    " (column " + std::to_string(e.source().begin.column) + ")");
  }
  return read(reader, root);
}

}  // namespace

Config parse_string(std::string_view text, const std::string& file, const ParseOptions& options) {
  return parse_table(text, file, options);
}

Config parse_file(const std::string& path, const ParseOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError(path + ": cannot read the configuration file: " + std::strerror(errno) +
                      " (check the path given with --config or to xact::config::load)");
  }
  std::ostringstream s;
  s << in.rdbuf();
  return parse_table(s.str(), path, options);
}

}  // namespace xact::config
