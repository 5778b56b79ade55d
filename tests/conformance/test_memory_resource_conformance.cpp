// The conformance suite over the in-memory reference resource manager.
#include <xact/manager.hpp>
#include <xact/testing/conformance.hpp>
#include <xact/testing/memory_resource.hpp>

namespace xact::testing {
namespace {

class MemoryTarget : public ConformanceTarget {
 public:
  std::shared_ptr<ResourceManager> open() override {
    return std::make_shared<MemoryResource>("memory", store_);
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    static_cast<MemoryResource&>(rm).put(txn, key, value);
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    return store_->get(key);
  }

 private:
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>();
};

INSTANTIATE_TEST_SUITE_P(Memory, ResourceManagerConformance,
                         ::testing::Values(ConformanceParam{
                             "memory", [] { return std::make_unique<MemoryTarget>(); }}),
                         conformance_name);

}  // namespace
}  // namespace xact::testing
