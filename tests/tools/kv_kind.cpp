// The tests' build of the `xact` tool (xact_test_tool): --resource NAME=kv:PATH, the durable
// file-backed key-value store of xact::testing. The installed tool links no_extra_kinds.cpp
// instead, and with it neither xact::testing nor GoogleTest.
#include <xact/errors.hpp>
#include <xact/testing/kv_resource.hpp>

#include "resource_spec.hpp"

namespace xact::cli {

namespace {

std::shared_ptr<ResourceManager> open_kv(io::Env& env, const ResourceSpec& spec) {
  // KvStore::open_file creates a missing store: for recovery that would hide a wrong path.
  if (!env.exists(spec.location)) {
    throw StorageError("the kv store file '" + spec.location +
                       "' does not exist (xact recover opens existing stores only: check "
                       "the path)");
  }
  testing::KvOptions options;
  options.last_resource = spec.last_resource;
  return std::make_shared<testing::KvResource>(
      spec.name, testing::KvStore::open_file(env, spec.location), options);
}

}  // namespace

std::vector<ResourceKind> extra_resource_kinds() {
  return {{"kv", "kv:PATH", "the durable file-backed key-value store of xact::testing",
           "/var/lib/app/orders.kv", &open_kv}};
}

}  // namespace xact::cli
