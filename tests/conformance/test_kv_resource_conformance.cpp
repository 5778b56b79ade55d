// The conformance suite over the reference key-value resource manager, with its store in
// memory and in a durable file.
#include <xact/io/mem_env.hpp>
#include <xact/manager.hpp>
#include <xact/testing/conformance.hpp>
#include <xact/testing/kv_resource.hpp>

namespace xact::testing {
namespace {

class KvTarget : public ConformanceTarget {
 public:
  explicit KvTarget(bool in_file) : store_file_(in_file) {
    store_ = in_file ? KvStore::open_file(env_, "/kv.store") : KvStore::in_memory();
  }
  std::shared_ptr<ResourceManager> open() override {
    return std::make_shared<KvResource>("kv", store_);
  }
  void write(ResourceManager& rm, Transaction& txn, const std::string& key,
             const std::string& value) override {
    static_cast<KvResource&>(rm).put(txn, key, value);
  }
  std::optional<std::string> read_committed(const std::string& key) override {
    // Reopening the file proves the value is in it, not only in this process's memory.
    if (store_file_) return KvStore::open_file(env_, "/kv.store")->get(key);
    return store_->get(key);
  }

 private:
  bool store_file_;
  io::MemEnv env_;
  std::shared_ptr<KvStore> store_;
};

INSTANTIATE_TEST_SUITE_P(
    Kv, ResourceManagerConformance,
    ::testing::Values(ConformanceParam{"memory", [] { return std::make_unique<KvTarget>(false); }},
                      ConformanceParam{"file", [] { return std::make_unique<KvTarget>(true); }}),
    conformance_name);

}  // namespace
}  // namespace xact::testing
