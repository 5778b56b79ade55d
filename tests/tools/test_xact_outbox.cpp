// `xact outbox dead|requeue|drop --config FILE --sql NAME` on a real SQLite outbox: an
// application's dispatcher moves two failing messages to the dead state; the tool, run as a
// child process, lists them (exit 3), requeues one (which the dispatcher then delivers with the
// same key) and drops the other; unknown keys, resources and tables are errors, and no table is
// created by the tool.
#include <fstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/outbox/dispatcher.hpp>
#include <xact/outbox/outbox.hpp>
#include <xact/retry.hpp>
#include <xact/sqlite/sqlite_resource.hpp>

#include "xact_runner.hpp"

namespace xact {
namespace {

using testing::TempDir;
using tools_test::has;
using tools_test::run_xact;
using tools_test::ToolRun;

class XactOutboxTool : public ::testing::Test {
 protected:
  XactOutboxTool() {
    std::ofstream(config_) << "[decision_log]\ndirectory = \"" << (dir_ / "xact") << "\"\n"
                           << "[[sql]]\nname = \"app\"\nkind = \"sqlite\"\npath = \""
                           << (dir_ / "app.db") << "\"\n";
    sqlite::SqliteOptions o;
    o.path = dir_ / "app.db";
    o.name = "app";
    outbox_ = outbox::Outbox::create(sqlite::SqliteResource::create(o));
  }
  ToolRun tool(std::vector<std::string> args) {
    args.insert(args.end(), {"--config", config_, "--sql", "app"});
    return run_xact(scratch_, args);
  }

  TempDir dir_, scratch_;
  std::string config_ = dir_ / "xact.toml";
  std::shared_ptr<outbox::Outbox> outbox_;
};

TEST_F(XactOutboxTool, ListsRequeuesAndDropsDeadMessages) {
  {
    const ToolRun none = tool({"outbox", "dead"});
    EXPECT_EQ(none.code, 0) << none.err;
    EXPECT_TRUE(has(none.err, "0 dead message(s)"));
  }
  ExplicitTransactionManager tm;
  const std::string a =
      xact::run(tm, [&](Transaction& txn) { return outbox_->post(txn, "mail", "a"); });
  const std::string b =
      xact::run(tm, [&](Transaction& txn) { return outbox_->post(txn, "hook", "b"); });
  bool healed = false;
  std::vector<std::string> delivered;
  outbox::DispatcherOptions o;
  o.max_attempts = 1;
  outbox::Dispatcher d(
      outbox_,
      [&](const outbox::Message& m) {
        if (!healed) throw std::runtime_error("smtp: 554 no\tthanks");
        delivered.push_back(m.key);
      },
      o);
  d.dispatch_once();
  ASSERT_EQ(outbox_->dead_count(), 2u);

  const ToolRun dead = tool({"outbox", "dead"});
  EXPECT_EQ(dead.code, 3) << dead.err;
  EXPECT_TRUE(has(dead.out, "KEY\tTOPIC\tATTEMPTS\tDEAD_AT\tCREATED_AT\tLAST_ERROR\n"));
  EXPECT_TRUE(has(dead.out, a + "\tmail\t1\t"));
  EXPECT_TRUE(has(dead.out, b + "\thook\t1\t"));
  EXPECT_TRUE(has(dead.out, "\tsmtp: 554 no?thanks\n"));  // stored as printable ASCII
  EXPECT_TRUE(has(dead.err, "2 dead message(s) in xact_outbox"));

  const ToolRun requeue = tool({"outbox", "requeue", "--key", a, "--key", "not-a-key"});
  EXPECT_EQ(requeue.code, 1);
  EXPECT_TRUE(has(requeue.out, "requeued " + a));
  EXPECT_TRUE(has(requeue.err, "not-a-key is not a dead message"));
  EXPECT_FALSE(outbox_->is_dead(a));

  const ToolRun drop = tool({"outbox", "drop", "--key", b});
  EXPECT_EQ(drop.code, 0) << drop.err;
  EXPECT_EQ(outbox_->dead_count(), 0u);
  EXPECT_EQ(tool({"outbox", "drop", "--key", b}).code, 1);  // gone

  healed = true;
  EXPECT_EQ(d.dispatch_once(), 1u);
  EXPECT_EQ(delivered, std::vector<std::string>{a});
  EXPECT_TRUE(outbox_->is_done(a));
  EXPECT_EQ(tool({"outbox", "requeue", "--all"}).out, "requeued 0 message(s)\n");
}

TEST_F(XactOutboxTool, WrongResourcesTablesAndArgumentsAreRefusedAndNothingIsCreated) {
  const ToolRun no_sql = run_xact(scratch_, {"outbox", "dead", "--config", config_, "--sql", "x"});
  EXPECT_EQ(no_sql.code, 2);
  EXPECT_TRUE(has(no_sql.err, "no [[sql]] resource named 'x'"));
  const ToolRun no_table = tool({"outbox", "dead", "--table", "elsewhere"});
  EXPECT_EQ(no_table.code, 1);
  EXPECT_TRUE(has(no_table.err, "cannot read the outbox table 'elsewhere'"));
  auto conn = outbox_->store()->pool()->acquire();
  EXPECT_TRUE(conn->execute("SELECT name FROM sqlite_master WHERE name = 'elsewhere'").empty());
  EXPECT_EQ(tool({"outbox", "requeue"}).code, 2);  // neither --key nor --all
  EXPECT_EQ(tool({"outbox", "requeue", "--all", "--key", "k"}).code, 2);
  EXPECT_EQ(tool({"outbox", "drop"}).code, 2);  // --key is required
}

}  // namespace
}  // namespace xact
