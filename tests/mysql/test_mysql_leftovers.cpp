// Runs after every MySQL/MariaDB integration test (ctest FIXTURES_CLEANUP): no xact XA branch
// may be left prepared on the server. A leaked one keeps its row locks until someone decides it.
#include <xact/mysql/mysql_resource.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

TEST(MySqlAfterTheSuite, NoXaBranchIsLeft) {
  XACT_REQUIRE_MYSQL();
  Plain db;
  std::string listed;
  for (const auto& x : db.xact_branches()) listed += "\n  " + x.to_gid();
  EXPECT_TRUE(listed.empty()) << "XA branches left behind (XA RECOVER):" << listed;
}

}  // namespace
}  // namespace xact::mytest
