// The installed `xact` tool's --resource kinds: none. Its resources come from the application's
// configuration file (xact recover --config FILE). The tests' build of the tool links
// tests/tools/kv_kind.cpp instead, which adds the key-value store of xact::testing.
#include "resource_spec.hpp"

namespace xact::cli {

std::vector<ResourceKind> extra_resource_kinds() { return {}; }

}  // namespace xact::cli
