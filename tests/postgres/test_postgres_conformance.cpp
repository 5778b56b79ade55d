// The resource-manager conformance suite over PostgreSQL: each target has a table of its own
// (dropped afterwards) and reads committed values over a plain connection outside xact.
#include <xact/manager.hpp>
#include <xact/testing/conformance.hpp>

#include "pg_test_support.hpp"

namespace xact::pgtest {
namespace {

class PostgresTarget : public testing::ConformanceTarget {
 public:
  PostgresTarget() : table_(pg_env()->uri), reader_(pg_env()->uri), name_(unique_name("pg_conf")) {}

  std::shared_ptr<ResourceManager> open() override {
    // A new instance has a new pool, hence new connections: what a new process would get.
    return postgres::PostgresResource::create(options(pg_env()->uri, name_));
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    put(static_cast<postgres::PostgresResource&>(rm), txn, table_.name(), key, value);
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    return reader_.value(table_.name(), key);
  }

 private:
  TempTable table_;
  Plain reader_;
  std::string name_;
};

// Called from the suite's SetUp (through make()): a skip or failure recorded there stops the
// test before its body runs.
void require_server() { XACT_REQUIRE_PG(); }

using testing::ResourceManagerConformance;
INSTANTIATE_TEST_SUITE_P(Postgres, ResourceManagerConformance,
                         ::testing::Values(testing::ConformanceParam{
                             "postgres",
                             []() -> std::unique_ptr<testing::ConformanceTarget> {
                               if (pg_env() == nullptr) {
                                 require_server();
                                 return nullptr;
                               }
                               return std::make_unique<PostgresTarget>();
                             }}),
                         testing::conformance_name);

}  // namespace
}  // namespace xact::pgtest
