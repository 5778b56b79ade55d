// `xact recover --config FILE` and a [[session_store]] of kind myisam: a process loads the file,
// writes a session value through its SessionResource (the write lands in the MariaDB MyISAM
// table with its fence and before-image) and is killed (SIGKILL) before the transaction ends.
// A dry run lists the owed compensation and changes nothing; the real run restores the
// before-image and drops the fence. Needs the servers (scripts/servers.sh; CI=true makes their
// absence a failure).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include <xact/config/config.hpp>
#include <xact/testing/crash_harness.hpp>

#include "xact_runner.hpp"

#if defined(XACT_TEST_WITH_MYSQL)
#include <xact/mysql/myisam_session_store.hpp>
#endif

namespace xact {
namespace {

using testing::TempDir;
using tools_test::has;
using tools_test::run_xact;
using tools_test::ToolRun;

TEST(RecoverSessions, ConfigParsesSessionStores) {
  const config::Config c = config::parse_string(
      "[decision_log]\ndirectory = \"/x\"\n"
      "[[session_store]]\nname = \"web\"\nkind = \"memory\"\nidle_timeout_seconds = 60\n"
      "[[session_store]]\nname = \"shared\"\nkind = \"myisam\"\n"
      "uri = \"mysql://app@db:3306/s\"\ntable = \"sess\"\nfence_lease_seconds = 120\n",
      "app.toml");
  ASSERT_EQ(c.session_stores.size(), 2u);
  EXPECT_EQ(c.session_stores[0].kind, config::SessionStoreSpec::Kind::memory);
  EXPECT_EQ(c.session_stores[0].idle_timeout, std::chrono::seconds(60));
  EXPECT_EQ(c.session_stores[1].kind, config::SessionStoreSpec::Kind::myisam);
  EXPECT_EQ(c.session_stores[1].table, "sess");
  EXPECT_EQ(c.session_stores[1].fence_lease, std::chrono::seconds(120));
  try {
    (void)config::parse_string(
        "[decision_log]\ndirectory = \"/x\"\n[[session_store]]\nname = \"w\"\n"
        "kind = \"memory\"\ntable = \"t\"\n",
        "app.toml");
    FAIL() << "a memory store with a table was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_TRUE(has(e.what(), "app.toml:6: key 'session_store[0].table'")) << e.what();
  }
  try {
    (void)config::parse_string(
        "[decision_log]\ndirectory = \"/x\"\n[[session_store]]\nname = \"w\"\n"
        "kind = \"redis\"\n",
        "app.toml");
    FAIL() << "an unknown kind was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_TRUE(has(e.what(), "app.toml:5: key 'session_store[0].kind'")) << e.what();
  }
}

TEST(RecoverSessions, AKilledProcessesMyIsamWriteIsCompensated) {
#if !defined(XACT_TEST_WITH_MYSQL)
  GTEST_SKIP() << "built without the MySQL adapter";
#else
  if (std::getenv("XACT_MYSQL_HOST") == nullptr) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true") FAIL() << "CI=true but XACT_MYSQL_* unset";
    GTEST_SKIP() << "no servers: scripts/servers.sh start DIR; source DIR/env.sh";
  }
  TempDir dir;
  const std::string table = "sess_" + std::to_string(::getpid());
  const std::string file = dir / "app.toml";
  std::ofstream(file) << "[decision_log]\ndirectory = \"" << (dir / "xact") << "\"\n"
                      << "[[session_store]]\nname = \"sess\"\nkind = \"myisam\"\n"
                         "uri = \"mysql://${XACT_MYSQL_USER}@${XACT_MYSQL_HOST}:"
                         "${XACT_MYSQL_PORT}/${XACT_MYSQL_DB}\"\n"
                         "password_env = \"XACT_MYSQL_PASSWORD\"\ntable = \""
                      << table << "\"\n";
  const auto open_store = [&] {
    mysql::MyIsamSessionStoreOptions o;
    o.connect.host = std::getenv("XACT_MYSQL_HOST");
    o.connect.port = static_cast<unsigned>(std::atoi(std::getenv("XACT_MYSQL_PORT")));
    o.connect.user = std::getenv("XACT_MYSQL_USER");
    o.connect.password = std::getenv("XACT_MYSQL_PASSWORD");
    o.connect.database = std::getenv("XACT_MYSQL_DB");
    o.table = table;
    return mysql::MyIsamSessionStore::open(o);
  };
  const std::string sid = "s-" + std::to_string(::getpid());
  open_store()->set(sid, "cart", "before");  // committed before the crash; closed before fork

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    int code = 0;
    try {
      config::Application app = config::load(file);
      Transaction& txn = app.manager->begin();
      app.session_store("sess").set(txn, sid, "cart", "during");
      (void)!::write(ready[1], "w", 1);
      ::pause();  // killed here, the write in flight
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      code = 1;
    }
    ::_exit(code);
  }
  ::close(ready[1]);
  char c = 0;
  const bool wrote = ::read(ready[0], &c, 1) == 1;
  ::close(ready[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(wrote) << "the child failed before its write";
  {
    auto store = open_store();
    const auto entry = store->read_entry(sid, "cart");
    ASSERT_TRUE(entry && entry->fence) << "the killed process's write is not fenced";
    EXPECT_EQ(entry->value, "during");
  }

  const ToolRun dry = run_xact(dir, {"recover", "--config", file, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(has(dry.out, "1 session store(s)")) << dry.out;
  {
    auto store = open_store();
    const auto entry = store->read_entry(sid, "cart");
    ASSERT_TRUE(entry && entry->fence) << "the dry run changed the store";
    EXPECT_EQ(entry->value, "during");
  }

  const ToolRun run = run_xact(dir, {"recover", "--config", file});
  EXPECT_EQ(run.code, 0) << run.out << run.err;
  EXPECT_FALSE(has(run.out + run.err, std::getenv("XACT_MYSQL_PASSWORD") + std::string("@")));
  {
    auto store = open_store();
    const auto entry = store->read_entry(sid, "cart");
    ASSERT_TRUE(entry.has_value());
    EXPECT_FALSE(entry->fence) << "the fence is left";
    EXPECT_EQ(entry->value, "before");
    EXPECT_TRUE(store->list_fenced(std::nullopt).empty());
  }
  const ToolRun again = run_xact(dir, {"recover", "--config", file, "--dry-run"});
  EXPECT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_TRUE(has(again.out, "nothing to do")) << again.out;
  open_store()->execute("DROP TABLE " + table);
#endif
}

}  // namespace
}  // namespace xact
