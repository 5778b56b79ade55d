// The configuration file (xact::config): a good file, every kind of bad file (each message names
// the file, the line and the key), ${VAR}, secrets from the environment and from owner-only
// files, no secret in any message, and an application loaded from a file with a real file
// storage and a real SQLite database.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/objectstore/containers.hpp>
#include <xact/objectstore/errors.hpp>
#include <xact/objectstore/memory_storage.hpp>
#include <xact/objectstore/registry.hpp>
#include <xact/retry.hpp>
#include <xact/sheets/sheet_owner.hpp>
#include <xact/testing/crash_harness.hpp>

namespace xact::config {
namespace {

using testing::TempDir;

const std::string kSecret = "s3cr3t-Pa55-w0rd";

ParseOptions with_env(std::map<std::string, std::string> vars) {
  ParseOptions options;
  options.environment = [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  return options;
}

void write(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// The message of the ConfigError `text` gets; fails the test when it parses.
std::string error_of(const std::string& text, const ParseOptions& options = {}) {
  try {
    parse_string(text, "app.toml", options);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "parsed:\n" << text;
  return {};
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::string kLog = "[decision_log]\ndirectory = \"/var/lib/app/xact\"\n";

TEST(Config, AGoodFileGivesEverySpec) {
  const Config c = parse_string(R"(# an application
[decision_log]
directory = "/var/lib/app/xact"
node = "00112233445566778899aabbccddeeff"

[[database]]
name = "main"
storage = "file:/var/lib/app/main.fs"
cache_size = 5000
pool_size = 4

[[database]]
name = "scratch"
storage = "memory:"

[[sql]]
name = "orders"
kind = "postgres"
uri = "postgresql://app@db/orders"
password_env = "ORDERS_PW"
pool_size = 3

[[sql]]
name = "stock"
kind = "mysql"
uri = "mysql://app@db:3306/stock"

[[sql]]
name = "app"
kind = "sqlite"
path = "/var/lib/app/app.db"
last_resource = true
)",
                                "app.toml", with_env({{"ORDERS_PW", kSecret}}));
  EXPECT_EQ(c.file, "app.toml");
  EXPECT_EQ(c.decision_log.directory, "/var/lib/app/xact");
  ASSERT_TRUE(c.decision_log.node);
  EXPECT_EQ(c.decision_log.node->to_hex(), "00112233445566778899aabbccddeeff");
  ASSERT_EQ(c.databases.size(), 2u);
  EXPECT_EQ(c.databases[0].name, "main");
  EXPECT_EQ(c.databases[0].resource_name(), "objects:main");
  EXPECT_EQ(c.databases[0].storage, DatabaseSpec::StorageKind::file);
  EXPECT_EQ(c.databases[0].path, "/var/lib/app/main.fs");
  EXPECT_EQ(c.databases[0].cache_size, 5000u);
  EXPECT_EQ(c.databases[0].pool_size, 4u);
  EXPECT_EQ(c.databases[0].origin.line, 6u);
  EXPECT_EQ(c.databases[1].storage, DatabaseSpec::StorageKind::memory);
  EXPECT_EQ(c.databases[1].cache_size, 10000u);  // the DB's defaults
  ASSERT_EQ(c.sql.size(), 3u);
  EXPECT_EQ(c.sql[0].kind, SqlKind::postgres);
  EXPECT_EQ(c.sql[0].uri, "postgresql://app@db/orders");
  EXPECT_EQ(c.sql[0].password, kSecret);
  EXPECT_EQ(c.sql[0].pool_size, 3u);
  EXPECT_FALSE(c.sql[0].last_resource);
  EXPECT_EQ(c.sql[1].kind, SqlKind::mysql);
  EXPECT_FALSE(c.sql[1].password);
  EXPECT_EQ(c.sql[2].kind, SqlKind::sqlite);
  EXPECT_EQ(c.sql[2].path, "/var/lib/app/app.db");
  EXPECT_TRUE(c.sql[2].last_resource);
  EXPECT_EQ(c.sql[2].origin.where(), "app.toml:28");
}

TEST(Config, SqliteIsTheLastResourceWithoutSayingSo) {
  const Config c = parse_string(kLog + "[[sql]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"a.db\"\n",
                                "app.toml");
  EXPECT_TRUE(c.sql.at(0).last_resource);
}

struct BadFile {
  std::string text;  // after the decision log (3 lines: it starts at line 3)
  std::string where; // "app.toml:LINE: key 'KEY'"
  std::string what;  // part of the explanation
};

TEST(Config, EveryBadFileIsNamedByFileLineAndKey) {
  const std::vector<BadFile> cases = {
      {"[[database]]\nname = \"main\"\nstorage = \"file:/x\"\ncache_sise = 5\n",
       "app.toml:6: key 'database[0].cache_sise'", "unknown key"},
      {"[[database]]\nname = \"main\"\nstorage = \"disk:/x\"\n", "app.toml:5: key 'database[0].storage'",
       "unknown storage 'disk:/x'"},
      {"[[database]]\nname = \"main\"\nstorage = \"file:\"\n", "app.toml:5: key 'database[0].storage'",
       "file: needs a path"},
      {"[[database]]\nname = \"main\"\n", "app.toml:3: key 'database[0].storage'", "missing"},
      {"[[database]]\nname = \"main\"\nstorage = \"memory:\"\npool_size = \"8\"\n",
       "app.toml:6: key 'database[0].pool_size'", "must be a positive integer"},
      {"[[database]]\nname = \"main\"\nstorage = \"memory:\"\ncache_size = 0\n",
       "app.toml:6: key 'database[0].cache_size'", "must be a positive integer"},
      {"[[database]]\nname = \"" + std::string(60, 'n') + "\"\nstorage = \"memory:\"\n",
       "app.toml:4: key 'database[0].name'", "1 to 56 bytes"},
      {"[database]\nname = \"main\"\n", "app.toml:3: key 'database'", "write each one as [[database]]"},
      {"[[sql]]\nname = \"a\"\nkind = \"oracle\"\nuri = \"x\"\n", "app.toml:5: key 'sql[0].kind'",
       "unknown kind 'oracle'"},
      {"[[sql]]\nname = \"a\"\nkind = \"postgres\"\n", "app.toml:3: key 'sql[0].uri'", "missing"},
      {"[[sql]]\nname = \"a\"\nkind = \"postgres\"\npath = \"a.db\"\n", "app.toml:6: key 'sql[0].path'",
       "has a uri, not a path"},
      {"[[sql]]\nname = \"a\"\nkind = \"sqlite\"\nuri = \"x\"\n", "app.toml:6: key 'sql[0].uri'",
       "has a path, not a uri"},
      {"[[sql]]\nname = \"a\"\nkind = \"postgres\"\nuri = \"postgresql://app:pw@db/x\"\n",
       "app.toml:6: key 'sql[0].uri'", "the URI holds a password"},
      {"[[sql]]\nname = \"a\"\nkind = \"postgres\"\nuri = \"x\"\nlast_resource = true\n",
       "app.toml:7: key 'sql[0].last_resource'", "only an sqlite resource"},
      {"[[sql]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"a\"\nlast_resource = false\n",
       "app.toml:7: key 'sql[0].last_resource'", "always the last resource"},
      {"[[sql]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"a\"\nlast_resource = \"yes\"\n",
       "app.toml:7: key 'sql[0].last_resource'", "must be true or false"},
      {"[[sql]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"a\"\n[[sql]]\nname = \"a\"\nkind = "
       "\"sqlite\"\npath = \"b\"\n",
       "app.toml:7: key 'sql[1].name'", "already used at line 3"},
      {"[[sql]]\nname = \"a\"\nkind = \"postgres\"\nuri = \"x\"\npassword_env = \"A\"\n"
       "password_file = \"/f\"\n",
       "app.toml:8: key 'sql[0].password_file'", "not both"},
      {"[sessions]\nstore = \"x\"\n", "app.toml:3: key 'sessions'", "unknown key"},
      {"[[database]]\nname = \"main\"\nstorage = \"memory:\"\nname = \"again\"\n", "app.toml:6",
       "not valid TOML"},
      {"[[database]]\nname = main\n", "app.toml:4", "not valid TOML"},
  };
  for (const auto& c : cases) {
    const std::string message = error_of(kLog + c.text);
    EXPECT_TRUE(has(message, c.where)) << message << "\n-- for --\n" << c.text;
    EXPECT_TRUE(has(message, c.what)) << message << "\n-- for --\n" << c.text;
  }
}

TEST(Config, TheDecisionLogIsRequiredAndChecked) {
  EXPECT_TRUE(has(error_of("[[database]]\nname = \"m\"\nstorage = \"memory:\"\n"),
                  "app.toml: key 'decision_log': missing"));
  EXPECT_TRUE(has(error_of("decision_log = \"/x\"\n"), "app.toml:1: key 'decision_log': must be a table"));
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = 7\n"),
                  "app.toml:2: key 'decision_log.directory': must be a string"));
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = \"\"\n"),
                  "app.toml:2: key 'decision_log.directory': is empty"));
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = \"/x\"\nnode = \"abc\"\n"),
                  "app.toml:3: key 'decision_log.node': a node id is 32 hex digits"));
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = \"/x\"\nsegment = 1\n"),
                  "app.toml:3: key 'decision_log.segment': unknown key; decision_log knows: "
                  "directory, node"));
}

TEST(Config, VariablesAreExpandedAndAnUnsetOneIsNamed) {
  const Config c = parse_string(
      "[decision_log]\ndirectory = \"${APP_HOME}/xact\"\n[[database]]\nname = \"main\"\n"
      "storage = \"file:${APP_HOME}/${DB}.fs\"\n",
      "app.toml", with_env({{"APP_HOME", "/srv/app"}, {"DB", "main"}}));
  EXPECT_EQ(c.decision_log.directory, "/srv/app/xact");
  EXPECT_EQ(c.databases.at(0).path, "/srv/app/main.fs");

  const std::string unset =
      error_of("[decision_log]\ndirectory = \"${APP_HOME}/xact\"\n", with_env({}));
  EXPECT_TRUE(has(unset, "app.toml:2: key 'decision_log.directory'")) << unset;
  EXPECT_TRUE(has(unset, "the environment variable APP_HOME is not set")) << unset;
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = \"${APP_HOME/xact\"\n"),
                  "without a closing '}'"));
  EXPECT_TRUE(has(error_of("[decision_log]\ndirectory = \"${1X}\"\n"), "is not a variable name"));
}

const std::string kPg =
    kLog + "[[sql]]\nname = \"orders\"\nkind = \"postgres\"\nuri = \"postgresql://app@db/orders\"\n";

TEST(Config, APasswordComesFromTheEnvironmentAndIsNeverPrinted) {
  const Config c = parse_string(kPg + "password_env = \"ORDERS_PW\"\n", "app.toml",
                                with_env({{"ORDERS_PW", kSecret}}));
  EXPECT_EQ(c.sql.at(0).password, kSecret);
  const std::string unset = error_of(kPg + "password_env = \"ORDERS_PW\"\n", with_env({}));
  EXPECT_TRUE(has(unset, "app.toml:7: key 'sql[0].password_env'")) << unset;
  EXPECT_TRUE(has(unset, "ORDERS_PW (the password) is not set")) << unset;
  // An error elsewhere in a file whose password is set never shows it.
  const std::string other = error_of(kPg + "password_env = \"ORDERS_PW\"\npool_size = -1\n",
                                     with_env({{"ORDERS_PW", kSecret}}));
  EXPECT_TRUE(has(other, "app.toml:8: key 'sql[0].pool_size'")) << other;
  EXPECT_FALSE(has(other, kSecret)) << other;
}

TEST(Config, APasswordFileMustBeTheOwnersOnly) {
  TempDir dir;
  const std::string secret = dir / "orders.pw";
  const auto with_file = kPg + "password_file = \"" + secret + "\"\n";

  write(secret, kSecret + "\n", 0600);
  EXPECT_EQ(parse_string(with_file, "app.toml").sql.at(0).password, kSecret);  // newline dropped
  write(secret, kSecret, 0400);
  EXPECT_EQ(parse_string(with_file, "app.toml").sql.at(0).password, kSecret);

  for (const mode_t mode : {0640, 0604, 0644, 0660, 0666}) {
    write(secret, kSecret, mode);
    const std::string message = error_of(with_file);
    EXPECT_TRUE(has(message, "app.toml:7: key 'sql[0].password_file'")) << message;
    EXPECT_TRUE(has(message, "others than its owner may read it")) << message;
    EXPECT_TRUE(has(message, "chmod 600")) << message;
    EXPECT_FALSE(has(message, kSecret)) << message;
  }
  const std::string missing = error_of(kPg + "password_file = \"" + (dir / "none") + "\"\n");
  EXPECT_TRUE(has(missing, "cannot read the password file")) << missing;
  write(secret, "\n", 0600);
  EXPECT_TRUE(has(error_of(with_file), "is empty"));
}

TEST(Config, AMissingFileSaysWhichPath) {
  try {
    parse_file("/nonexistent/app.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(has(e.what(), "/nonexistent/app.toml: cannot read the configuration file"));
  }
}

// A whole application from a file: a file storage and a real SQLite database as last resource,
// one transaction across both, and the same file loaded again (recovery runs, finds nothing).
TEST(Config, LoadOpensTheResourcesAndCommitsAcrossThem) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  write(file, "[decision_log]\ndirectory = \"${DIR}/xact\"\n"
              "[[database]]\nname = \"main\"\nstorage = \"file:${DIR}/main.fs\"\n"
              "[[database]]\nname = \"cache\"\nstorage = \"memory:\"\n"
              "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"${DIR}/app.db\"\n");
  LoadOptions options;
  options.parse = with_env({{"DIR", dir.path()}});
  {
    Application app = load(file, options);
    ASSERT_TRUE(app.recovery_report.complete()) << app.recovery_report.describe();
    EXPECT_EQ(app.database("main").resource_name(), "objects:main");
    EXPECT_EQ(app.sql_resource("app").resource_name(), "app");
    EXPECT_THROW(app.database("nope"), ConfigError);
    auto& lite = app.sql_resource("app");
    run(*app.manager, [&](Transaction& txn) {
      lite.execute(txn, "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v TEXT)");
    });
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto conn = app.database("main").open(o);
    run(*app.manager, [&](Transaction& txn) {
      conn->root()->set("k", "object");
      lite.execute(txn, "INSERT INTO t VALUES ('k', 'row')");
    });
  }
  Application again = load(file, options);
  EXPECT_TRUE(again.recovery_report.complete());
  objectstore::ConnectionOptions o;
  o.manager = again.manager.get();
  auto conn = again.database("main").open(o);
  run(*again.manager, [&](Transaction& txn) {
    EXPECT_EQ(conn->root()->at("k").as_string(), "object");
    const auto rows = again.sql_resource("app").execute(txn, "SELECT v FROM t WHERE k = 'k'");
    ASSERT_EQ(rows.size(), 1u);
  });
}

TEST(Config, LoadNamesTheLineOfAResourceThatCannotOpen) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  write(file, "[decision_log]\ndirectory = \"" + (dir / "xact") +
                  "\"\n[[database]]\nname = \"main\"\nstorage = \"file:" +
                  (dir / "no-such-dir/main.fs") + "\"\n");
  try {
    load(file);
    FAIL();
  } catch (const StorageError& e) {
    EXPECT_TRUE(has(e.what(), file + ":3: [[database]] 'main': cannot open its file storage"))
        << e.what();
  }
}

TEST(Config, LoadRefusesAnotherNodesLog) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  write(file, "[decision_log]\ndirectory = \"" + (dir / "xact") +
                  "\"\nnode = \"00000000000000000000000000000001\"\n");
  try {
    load(file);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_TRUE(has(e.what(), "key 'decision_log.node'")) << e.what();
    EXPECT_TRUE(has(e.what(), "another node's log")) << e.what();
  }
}

// Issue 17: each [[database]] takes xrefs = allow | check | forbid and, on a memory storage
// only, an expiry; every error names the file, the line and the key.
TEST(Config, DatabasesTakeTheSeatBeltAndAnExpiry) {
  const Config c = parse_string(kLog + R"(
[[database]]
name = "main"
storage = "file:/var/lib/app/main.fs"
xrefs = "forbid"

[[database]]
name = "sessions"
storage = "memory:"
expiry = "1h30m"
xrefs = "allow"

[[database]]
name = "catalog"
storage = "file:/var/lib/app/catalog.fs"
xrefs = "check"
)",
                                "app.toml");
  ASSERT_EQ(c.databases.size(), 3u);
  EXPECT_EQ(c.databases[0].xrefs, objectstore::XrefPolicy::forbid);
  EXPECT_FALSE(c.databases[0].expiry);
  EXPECT_EQ(c.databases[1].xrefs, objectstore::XrefPolicy::allow);
  ASSERT_TRUE(c.databases[1].expiry);
  EXPECT_EQ(*c.databases[1].expiry, std::chrono::minutes(90));
  EXPECT_EQ(c.databases[2].xrefs, objectstore::XrefPolicy::check);

  const std::string on_file = error_of(kLog + "[[database]]\nname = \"main\"\n"
                                              "storage = \"file:/x.fs\"\nexpiry = \"30m\"\n");
  EXPECT_TRUE(has(on_file, "app.toml:6: key 'database[0].expiry'")) << on_file;
  EXPECT_TRUE(has(on_file, "only a memory database expires")) << on_file;
  const std::string bad_policy = error_of(
      kLog + "[[database]]\nname = \"main\"\nstorage = \"memory:\"\nxrefs = \"sometimes\"\n");
  EXPECT_TRUE(has(bad_policy, "app.toml:6: key 'database[0].xrefs': unknown policy 'sometimes'"))
      << bad_policy;
  for (const char* bad : {"30", "m", "30x", "0s", "-5m", "1h30"}) {
    const std::string e = error_of(kLog + "[[database]]\nname = \"s\"\nstorage = \"memory:\"\n"
                                          "expiry = \"" + bad + "\"\n");
    EXPECT_TRUE(has(e, "app.toml:6: key 'database[0].expiry'")) << bad << ": " << e;
    EXPECT_TRUE(has(e, "is not a duration")) << bad << ": " << e;
  }
  const std::string not_string = error_of(
      kLog + "[[database]]\nname = \"s\"\nstorage = \"memory:\"\nexpiry = 30\n");
  EXPECT_TRUE(has(not_string, "key 'database[0].expiry': must be a string")) << not_string;
}

// Issue 17: the databases of one file form one registry, the first the default; the seat belt
// and the expiry come from the file (the seed's volatile sessions database).
TEST(Config, LoadGivesOneRegistryWithTheSeatBeltAndTheExpiry) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  write(file, "[decision_log]\ndirectory = \"" + (dir / "xact") + "\"\n"
              "[[database]]\nname = \"main\"\nstorage = \"file:" + (dir / "main.fs") + "\"\n"
              "[[database]]\nname = \"sessions\"\nstorage = \"memory:\"\n"
              "expiry = \"30m\"\nxrefs = \"allow\"\n");
  Application app = load(file);
  ASSERT_TRUE(app.registry);
  EXPECT_EQ(app.registry->names(), (std::vector<std::string>{"main", "sessions"}));
  EXPECT_EQ(app.registry->default_database().get(), &app.database("main"));
  auto* memory = dynamic_cast<objectstore::MemoryStorage*>(&app.database("sessions").storage());
  ASSERT_NE(memory, nullptr);
  EXPECT_EQ(memory->options().expiry, std::chrono::minutes(30));
  EXPECT_GT(memory->options().sweep_interval.count(), 0);

  objectstore::ConnectionOptions o;
  o.manager = app.manager.get();
  auto conn = app.registry->open(o);
  // sessions -> main: allowed (sessions has xrefs = allow).
  run(*app.manager, [&](Transaction&) {
    auto user = std::make_shared<objectstore::PersistentMap>();
    conn->add(user);
    conn->root()->set("user", user);
    auto session = std::make_shared<objectstore::PersistentMap>();
    session->set("user", user);
    conn->get_connection("sessions").root()->set("s1", session);
  });
  // main -> sessions: refused (main has the default, xrefs = forbid).
  EXPECT_THROW(run(*app.manager,
                   [&](Transaction&) {
                     auto session = conn->get_connection("sessions")
                                        .root()
                                        ->get<objectstore::PersistentMap>("s1");
                     conn->root()->set("session", session);
                   }),
               InvalidObjectReference);
  // Not written for the expiry: swept; the reference from the sessions root now dangles.
  EXPECT_EQ(memory->expire(std::chrono::system_clock::now() + std::chrono::minutes(31)), 1u);
  run(*app.manager, [&](Transaction&) {
    try {
      conn->get_connection("sessions").root()->get<objectstore::PersistentMap>("s1")->size();
      ADD_FAILURE() << "no DanglingReferenceError";
    } catch (const objectstore::DanglingReferenceError& e) {
      EXPECT_EQ(e.database(), "sessions");
    }
  });
}

// [[sheet_store]]: which [[sql]] resource hosts the property sheets (doc/config.md).
TEST(Config, ASheetStoreNamesTheSqlResourceThatHostsTheSheets) {
  const Config c = parse_string(kLog +
                                    "[[sheet_store]]\nsql = \"app\"\n"  // before its [[sql]]
                                    "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"a.db\"\n",
                                "app.toml");
  ASSERT_EQ(c.sheet_stores.size(), 1u);
  EXPECT_EQ(c.sheet_stores[0].sql, "app");
  EXPECT_EQ(c.sheet_stores[0].origin.line, 3u);
  ASSERT_NE(c.find_sql("app"), nullptr);
  EXPECT_EQ(c.find_sql("nope"), nullptr);

  const std::string sqlite = "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \"a.db\"\n";
  const std::vector<BadFile> cases = {
      {sqlite + "[[sheet_store]]\nsql = \"apps\"\n", "app.toml:8: key 'sheet_store[0].sql'",
       "no [[sql]] resource is named 'apps'; the file's are: app"},
      {"[[sheet_store]]\nsql = \"app\"\n", "app.toml:4: key 'sheet_store[0].sql'",
       "the file declares none"},
      {sqlite + "[[sheet_store]]\n", "app.toml:7: key 'sheet_store[0].sql'", "missing"},
      {sqlite + "[[sheet_store]]\nsql = \"\"\n", "app.toml:8: key 'sheet_store[0].sql'",
       "is empty"},
      {sqlite + "[[sheet_store]]\nsql = \"app\"\ntable_prefix = \"x_\"\n",
       "app.toml:9: key 'sheet_store[0].table_prefix'", "unknown key; sheet_store[0] knows: sql"},
      {sqlite + "[[sheet_store]]\nsql = \"app\"\n[[sheet_store]]\nsql = \"app\"\n",
       "app.toml:10: key 'sheet_store[1].sql'", "already declared at line 7"},
      {sqlite + "[sheet_store]\nsql = \"app\"\n", "app.toml:7: key 'sheet_store'",
       "write each one as [[sheet_store]]"},
  };
  for (const auto& bad : cases) {
    const std::string message = error_of(kLog + bad.text);
    EXPECT_TRUE(has(message, bad.where)) << message << "\n-- for --\n" << bad.text;
    EXPECT_TRUE(has(message, bad.what)) << message << "\n-- for --\n" << bad.text;
  }
}

class Article : public sheets::SheetOwner {
 public:
  void save(objectstore::StateWriter& out) const override { save_sheets(out); }
  void load(objectstore::StateReader& in, std::uint32_t) override { load_sheets(in); }
};
XACT_PERSISTENT_TYPE(Article, "test.config.Article");

// load() gives a ready sheet store bound to the file's SQLite resource: an object and its sheet
// commit together, and a second load of the file reads them back.
TEST(Config, LoadGivesASheetStoreOnTheNamedResource) {
  TempDir dir;
  const std::string file = dir / "app.toml";
  write(file, "[decision_log]\ndirectory = \"${DIR}/xact\"\n"
              "[[database]]\nname = \"main\"\nstorage = \"file:${DIR}/main.fs\"\n"
              "[[sql]]\nname = \"other\"\nkind = \"sqlite\"\npath = \"${DIR}/other.db\"\n"
              "[[sql]]\nname = \"catalog\"\nkind = \"sqlite\"\npath = \"${DIR}/catalog.db\"\n"
              "[[sheet_store]]\nsql = \"catalog\"\n");
  LoadOptions options;
  options.parse = with_env({{"DIR", dir.path()}});
  sheets::Property title;  // text, nullable
  title.name = "title";
  const sheets::SheetDefinition dc{"dublin_core", {title}};
  objectstore::Oid oid = 0;
  {
    Application app = load(file, options);
    ASSERT_EQ(app.sheet_stores.size(), 1u);
    auto& store = app.sheet_store("catalog");
    EXPECT_EQ(store.resource().get(), &app.sql_resource("catalog"));
    EXPECT_EQ(store.dialect(), "sqlite");
    EXPECT_TRUE(store.stored_sheets().empty()) << "load creates no sheet table";
    EXPECT_THROW(app.sheet_store("other"), ConfigError);
    store.define(dc);
    objectstore::ConnectionOptions o;
    o.manager = app.manager.get();
    auto conn = app.database("main").open(o);
    run(*app.manager, [&](Transaction& txn) {
      auto article = std::make_shared<Article>();
      article->add_sheet("dublin_core", txn, &*conn).set("title", "Ulysses");
      conn->root()->set("article", article);
      oid = article->oid();
    });
  }
  Application again = load(file, options);
  auto& store = again.sheet_store("catalog");
  EXPECT_EQ(store.stored_sheets(), std::vector<std::string>{"dublin_core"});
  const auto rows = store.stored_rows("dublin_core");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].owner, (sheets::Owner{"main", static_cast<std::int64_t>(oid)}));
  store.define(dc);
  objectstore::ConnectionOptions o;
  o.manager = again.manager.get();
  auto conn = again.database("main").open(o);
  run(*again.manager, [&](Transaction& txn) {
    auto article = conn->get<Article>(oid);
    EXPECT_EQ(article->sheet("dublin_core", txn).get<std::string>("title"), "Ulysses");
  });
}

}  // namespace
}  // namespace xact::config
