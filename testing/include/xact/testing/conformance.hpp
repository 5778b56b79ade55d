// The resource-manager conformance suite: one parameterized GoogleTest suite that every
// resource manager passes — xact's own and yours. It drives the RM through a real transaction
// manager next to probe participants that fail, vote or leave the transaction in doubt at chosen
// steps, and checks what a reader outside xact sees.
//
// Use it from a test binary linked with xact::testing:
//
//   class MyTarget : public xact::testing::ConformanceTarget { ... };
//   INSTANTIATE_TEST_SUITE_P(
//       MyRm, xact::testing::ResourceManagerConformance,
//       ::testing::Values(xact::testing::ConformanceParam{
//           "my_rm", [] { return std::make_unique<MyTarget>(); }}),
//       xact::testing::conformance_name);
//
// Capabilities the RM offers (savepoints, recovery) are tested; those it lacks are skipped
// with a message (GTEST_SKIP), so a missing capability is visible in the test output.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include <xact/resource_manager.hpp>

namespace xact::testing {

/// What the suite needs to drive one kind of resource manager.
class ConformanceTarget {
 public:
  virtual ~ConformanceTarget() = default;
  /// A fresh RM instance, as a new process would get it (a new connection). Instances opened by
  /// one target share the underlying data and have the same resource name.
  virtual std::shared_ptr<ResourceManager> open() = 0;
  /// Stages key = value through `rm` in `txn`, joining it.
  virtual void write(ResourceManager& rm, Transaction& txn, const std::string& key,
                     const std::string& value) = 0;
  /// The committed value of `key`, read outside any xact transaction; nullopt when absent.
  virtual std::optional<std::string> read_committed(const std::string& key) = 0;
};

struct ConformanceParam {
  std::string name;
  std::function<std::unique_ptr<ConformanceTarget>()> make;
};

/// How GoogleTest prints a parameter (its name, not its bytes).
void PrintTo(const ConformanceParam& param, std::ostream* os);

/// Test-name generator for INSTANTIATE_TEST_SUITE_P.
std::string conformance_name(const ::testing::TestParamInfo<ConformanceParam>& info);

class ResourceManagerConformance : public ::testing::TestWithParam<ConformanceParam> {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::unique_ptr<ConformanceTarget> target_;
};

}  // namespace xact::testing
