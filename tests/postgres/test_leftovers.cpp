// Runs after every PostgreSQL integration test (ctest FIXTURES_CLEANUP): no prepared
// transaction may be left anywhere in the cluster. A leaked one keeps its locks and holds back
// VACUUM until someone decides it.
#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

TEST(PostgresAfterTheSuite, NoPreparedTransactionIsLeft) {
  XACT_REQUIRE_PG();
  Plain db(pg_env()->uri);
  const auto gids = db.prepared_gids();
  std::string listed;
  for (const auto& g : gids) listed += "\n  " + g;
  EXPECT_EQ(db.count("SELECT count(*) FROM pg_prepared_xacts"), 0)
      << "prepared transactions left behind:" << listed;
}

}  // namespace
}  // namespace xact::pgtest
