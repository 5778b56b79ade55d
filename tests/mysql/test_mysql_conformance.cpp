// The resource-manager conformance suite over MariaDB/MySQL: each target has an InnoDB table of
// its own (dropped afterwards) and reads committed values over a plain connection outside xact.
#include <xact/manager.hpp>
#include <xact/testing/conformance.hpp>

#include "mysql_test_support.hpp"

namespace xact::mytest {
namespace {

class MySqlTarget : public testing::ConformanceTarget {
 public:
  MySqlTarget() : name_(unique_name("my_conf")) {}
  std::shared_ptr<ResourceManager> open() override {
    return mysql::MySqlResource::create(options(name_));
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    put(static_cast<mysql::MySqlResource&>(rm), txn, table_.name(), key, value);
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    return reader_.value(table_.name(), key);
  }

 private:
  TempTable table_;
  Plain reader_;
  std::string name_;
};

void require_server() { XACT_REQUIRE_MYSQL(); }

using testing::ResourceManagerConformance;
INSTANTIATE_TEST_SUITE_P(MySql, ResourceManagerConformance,
                         ::testing::Values(testing::ConformanceParam{
                             "mysql",
                             []() -> std::unique_ptr<testing::ConformanceTarget> {
                               if (my_env() == nullptr) {
                                 require_server();
                                 return nullptr;
                               }
                               return std::make_unique<MySqlTarget>();
                             }}),
                         testing::conformance_name);

}  // namespace
}  // namespace xact::mytest
