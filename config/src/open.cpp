// Opening what a configuration file declares: the decision log, the object databases and the
// SQL resources, and the Recovery that knows them all.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <xact/config/config.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/sessions/memory_session_store.hpp>

#if defined(XACT_CONFIG_WITH_POSTGRES)
#include <xact/postgres/postgres_resource.hpp>
#endif
#if defined(XACT_CONFIG_WITH_MYSQL)
#include <xact/mysql/myisam_session_store.hpp>
#include <xact/mysql/mysql_resource.hpp>
#endif
#if defined(XACT_CONFIG_WITH_SQLITE)
#include <xact/sqlite/sqlite_resource.hpp>
#endif

namespace xact::config {

namespace {

std::string resource_label(const SqlSpec& spec) {
  return spec.origin.where() + ": [[sql]] '" + spec.name + "' (" + std::string(to_string(spec.kind)) +
         ")";
}

[[noreturn, maybe_unused]] void not_built(const SqlSpec& spec, std::string_view option) {
  throw ConfigError(resource_label(spec) + ": key 'kind': this build of xact has no " +
                    std::string(to_string(spec.kind)) + " adapter (it was configured with " +
                    std::string(option) + "=OFF): rebuild with it, or remove the resource");
}

[[maybe_unused]] std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

[[maybe_unused]] std::string percent_decode(const SqlSpec& spec, std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      const auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      };
      if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) {
        throw ConfigError(resource_label(spec) + ": key 'uri': a bad %-escape");
      }
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

#if defined(XACT_CONFIG_WITH_POSTGRES)
// The password joins the connection string here, in memory only.
std::string postgres_conninfo(const SqlSpec& spec) {
  std::string conninfo = spec.uri;
  if (!spec.password) return conninfo;
  if (conninfo.rfind("postgresql://", 0) == 0 || conninfo.rfind("postgres://", 0) == 0) {
    conninfo += conninfo.find('?') == std::string::npos ? '?' : '&';
    conninfo += "password=" + percent_encode(*spec.password);
  } else {
    std::string quoted;
    for (char c : *spec.password) {
      if (c == '\\' || c == '\'') quoted += '\\';
      quoted += c;
    }
    conninfo += " password='" + quoted + "'";
  }
  return conninfo;
}
#endif

#if defined(XACT_CONFIG_WITH_MYSQL)
// mysql://USER@HOST[:PORT]/DATABASE[?socket=PATH]   (also mariadb://)
mysql::ConnectOptions mysql_connect(const SqlSpec& spec) {
  const auto bad = [&](const std::string& what) -> ConfigError {
    return ConfigError(resource_label(spec) + ": key 'uri': " + what +
                       "; the form is mysql://USER@HOST[:PORT]/DATABASE[?socket=PATH]");
  };
  std::string_view uri = spec.uri;
  std::size_t scheme = std::string_view::npos;
  for (std::string_view prefix : {"mysql://", "mariadb://"}) {
    if (uri.substr(0, prefix.size()) == prefix) scheme = prefix.size();
  }
  if (scheme == std::string_view::npos) throw bad("it does not start with mysql://");
  uri.remove_prefix(scheme);
  std::string_view query;
  if (const auto q = uri.find('?'); q != std::string_view::npos) {
    query = uri.substr(q + 1);
    uri = uri.substr(0, q);
  }
  const auto slash = uri.find('/');
  if (slash == std::string_view::npos || slash + 1 == uri.size()) throw bad("no database");
  mysql::ConnectOptions options;
  options.database = percent_decode(spec, uri.substr(slash + 1));
  std::string_view authority = uri.substr(0, slash);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos || at == 0) throw bad("no user");
  options.user = percent_decode(spec, authority.substr(0, at));
  std::string_view host = authority.substr(at + 1);
  if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    const std::string port(host.substr(colon + 1));
    char* end = nullptr;
    const unsigned long value = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || value == 0 || value > 65535) {
      throw bad("the port '" + port + "' is not a number from 1 to 65535");
    }
    options.port = static_cast<unsigned>(value);
    host = host.substr(0, colon);
  }
  if (!host.empty()) options.host = std::string(host);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.substr(0, 7) == "socket=") {
      options.unix_socket = percent_decode(spec, param.substr(7));
    } else {
      throw bad("unknown parameter '" + std::string(param.substr(0, param.find('='))) +
                "' (known: socket)");
    }
  }
  if (spec.password) options.password = *spec.password;
  return options;
}
#endif

}  // namespace

std::shared_ptr<objectstore::DB> open_database(const DatabaseSpec& spec,
                                               const OpenOptions& options) {
  std::shared_ptr<objectstore::Storage> storage;
  if (spec.storage == DatabaseSpec::StorageKind::memory) {
    objectstore::MemoryStorageOptions memory;
    if (spec.expiry) {
      memory.expiry = *spec.expiry;
      memory.sweep_interval = std::clamp<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(*spec.expiry) / 4,
          std::chrono::milliseconds(1), std::chrono::minutes(1));
    }
    storage = std::make_shared<objectstore::MemoryStorage>(std::move(memory));
  } else {
    objectstore::FileStorageOptions file_options;
    file_options.env = options.env;
    file_options.create = options.create && !options.read_only;
    file_options.read_only = options.read_only;
    try {
      storage = objectstore::FileStorage::open(spec.path, file_options);
    } catch (const StorageError& e) {
      throw StorageError(spec.origin.where() + ": [[database]] '" + spec.name +
                         "': cannot open its file storage: " + e.what());
    }
  }
  objectstore::DBOptions db_options;
  db_options.name = spec.name;
  db_options.cache_size = spec.cache_size;
  db_options.pool_size = spec.pool_size;
  db_options.xrefs = spec.xrefs;
  return objectstore::DB::open(std::move(storage), db_options);
}

std::shared_ptr<objectstore::Databases> open_databases(const Config& config,
                                                       const OpenOptions& options) {
  auto registry = objectstore::Databases::create();
  for (const auto& spec : config.databases) registry->add(open_database(spec, options));
  return registry;
}

std::shared_ptr<sql::SqlResource> open_sql(const SqlSpec& spec,
                                           [[maybe_unused]] const OpenOptions& options) {
  sql::PoolOptions pool;
  pool.name = spec.name;
  if (spec.pool_size) pool.max_size = *spec.pool_size;
  switch (spec.kind) {
    case SqlKind::postgres: {
#if defined(XACT_CONFIG_WITH_POSTGRES)
      postgres::PostgresOptions pg;
      pg.conninfo = postgres_conninfo(spec);
      pg.name = spec.name;
      pg.pool = pool;
      return postgres::PostgresResource::create(std::move(pg));
#else
      not_built(spec, "XACT_WITH_POSTGRES");
#endif
    }
    case SqlKind::mysql: {
#if defined(XACT_CONFIG_WITH_MYSQL)
      mysql::MySqlOptions my;
      my.connect = mysql_connect(spec);
      my.name = spec.name;
      my.pool = pool;
      return mysql::MySqlResource::create(std::move(my));
#else
      not_built(spec, "XACT_WITH_MYSQL");
#endif
    }
    case SqlKind::sqlite: {
#if defined(XACT_CONFIG_WITH_SQLITE)
      if (!options.create && !std::filesystem::exists(spec.path)) {
        throw StorageError(resource_label(spec) + ": the database file '" + spec.path +
                           "' does not exist (check the path; it is not created for recovery)");
      }
      sqlite::SqliteOptions lite;
      lite.path = spec.path;
      lite.name = spec.name;
      lite.create_if_missing = options.create && !options.read_only;
      lite.read_only = options.read_only;  // a dry run makes no file, table or journal mode
      lite.pool = pool;
      return sqlite::SqliteResource::create(std::move(lite));
#else
      not_built(spec, "XACT_WITH_SQLITE");
#endif
    }
  }
  throw ConfigError(resource_label(spec) + ": unknown kind");
}

std::shared_ptr<sessions::SessionResource> open_session_store(
    const SessionStoreSpec& spec, [[maybe_unused]] const OpenOptions& options,
    std::shared_ptr<DecisionLog> log) {
  std::shared_ptr<sessions::SessionStore> store;
  if (spec.kind == SessionStoreSpec::Kind::memory) {
    sessions::MemorySessionStoreOptions memory;
    memory.idle_timeout = spec.idle_timeout;
    store = std::make_shared<sessions::MemorySessionStore>(memory);
  } else {
#if defined(XACT_CONFIG_WITH_MYSQL)
    // The connection is read as an [[sql]] mysql resource's would be (same URI form).
    SqlSpec connection;
    connection.name = spec.name;
    connection.kind = SqlKind::mysql;
    connection.uri = spec.uri;
    connection.password = spec.password;
    connection.origin = spec.origin;
    mysql::MyIsamSessionStoreOptions myisam;
    myisam.connect = mysql_connect(connection);
    myisam.table = spec.table;
    myisam.idle_timeout = spec.idle_timeout;
    myisam.create_table = options.create && !options.read_only;
    if (spec.connections) myisam.connections = *spec.connections;
    try {
      store = mysql::MyIsamSessionStore::open(std::move(myisam));
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw ResourceError(spec.origin.where() + ": [[session_store]] '" + spec.name +
                          "' (myisam): cannot open the table '" + spec.table + "': " + e.what());
    }
#else
    throw ConfigError(spec.origin.where() + ": [[session_store]] '" + spec.name +
                      "': key 'kind': this build of xact has no mysql adapter (it was "
                      "configured with XACT_WITH_MYSQL=OFF): rebuild with it, or use memory");
#endif
  }
  sessions::SessionResourceOptions resource;
  resource.name = spec.name;
  resource.decision_log = std::move(log);
  resource.fence_lease = spec.fence_lease;
  return sessions::SessionResource::create(std::move(store), std::move(resource));
}

sessions::SessionResource& Application::session_store(const std::string& name) const {
  const auto it = session_stores.find(name);
  if (it == session_stores.end()) {
    throw ConfigError(config.file + ": no [[session_store]] named '" + name + "'");
  }
  return *it->second;
}

std::shared_ptr<sheets::SheetStore> open_sheet_store(const SheetStoreSpec& spec,
                                                     std::shared_ptr<sql::SqlResource> resource) {
  try {
    return sheets::SheetStore::create(std::move(resource));
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ResourceError(spec.origin.where() + ": [[sheet_store]] on '" + spec.sql +
                        "': cannot reach its database: " + e.what());
  }
}

sheets::SheetStore& Application::sheet_store(const std::string& sql_name) const {
  const auto it = sheet_stores.find(sql_name);
  if (it == sheet_stores.end()) {
    throw ConfigError(config.file + ": no [[sheet_store]] on the [[sql]] resource '" + sql_name +
                      "'");
  }
  return *it->second;
}

objectstore::DB& Application::database(const std::string& name) const {
  const auto it = databases.find(name);
  if (it == databases.end()) {
    throw ConfigError(config.file + ": no [[database]] named '" + name + "'");
  }
  return *it->second;
}

sql::SqlResource& Application::sql_resource(const std::string& name) const {
  const auto it = sql.find(name);
  if (it == sql.end()) throw ConfigError(config.file + ": no [[sql]] named '" + name + "'");
  return *it->second;
}

Application load(const std::string& path, LoadOptions options) {
  Application app;
  app.config = parse_file(path, options.parse);
  io::Env& env = options.open.env != nullptr ? *options.open.env : io::Env::posix();
  const DecisionLogSpec& log_spec = app.config.decision_log;
  try {
    app.decision_log = DecisionLog::open(env, log_spec.directory, options.decision_log);
  } catch (const StorageError& e) {
    throw StorageError(log_spec.origin.where() + ": [decision_log]: " + e.what());
  }
  if (log_spec.node && *log_spec.node != app.decision_log->node_id()) {
    throw ConfigError(log_spec.origin.where() + ": key 'decision_log.node': the log in '" +
                      log_spec.directory + "' belongs to node " +
                      app.decision_log->node_id().to_hex() + ", not " + log_spec.node->to_hex() +
                      ": the directory is another node's log (check decision_log.directory)");
  }
  ManagerOptions manager_options;
  manager_options.decision_log = app.decision_log;
  app.manager = std::make_shared<ThreadTransactionManager>(manager_options);
  const OpenOptions& open = options.open;
  app.recovery = std::make_unique<Recovery>(app.decision_log);
  if (!app.config.databases.empty()) app.registry = objectstore::Databases::create();
  for (const auto& spec : app.config.databases) {
    auto db = open_database(spec, open);
    app.recovery->register_resource(db->recovery_target());
    app.registry->add(db);
    app.databases.emplace(spec.name, std::move(db));
  }
  for (const auto& spec : app.config.sql) {
    auto resource = open_sql(spec, open);
    app.recovery->register_resource(resource);
    app.sql.emplace(spec.name, std::move(resource));
  }
  for (const auto& spec : app.config.session_stores) {
    auto resource = open_session_store(spec, open, app.decision_log);
    app.recovery->register_resource(resource);
    app.session_stores.emplace(spec.name, std::move(resource));
  }
  for (const auto& spec : app.config.sheet_stores) {
    app.sheet_stores.emplace(spec.sql, open_sheet_store(spec, app.sql.at(spec.sql)));
  }
  if (options.run_recovery) app.recovery_report = app.recovery->run();
  return app;
}

}  // namespace xact::config
