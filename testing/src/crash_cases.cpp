#include <xact/testing/crash_cases.hpp>

#include <algorithm>
#include <cctype>

#include <xact/crash_point.hpp>
#include <xact/testing/crash_harness.hpp>

namespace xact::testing {

void PrintTo(const CrashCase& c, std::ostream* os) {
  *os << (c.last_resource ? "last resource, " : "") << c.point << " #" << c.hit << " -> "
      << (c.expect == CrashCase::rolled_back ? "rolled back"
          : c.expect == CrashCase::committed ? "committed"
                                             : "not reached");
}

std::string crash_case_name(const ::testing::TestParamInfo<CrashCase>& info) {
  std::string n = std::string(info.param.last_resource ? "last_" : "") + info.param.point + "_" +
                  std::to_string(info.param.hit);
  for (char& c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return n;
}

std::vector<std::string> coordinator_points_not_killed(const std::vector<CrashCase>& cases) {
  std::vector<std::string> missing;
  for (const auto point : kCoordinatorCrashPoints) {
    const bool killed_there = std::any_of(cases.begin(), cases.end(), [&](const CrashCase& c) {
      return c.point == point && c.expect != CrashCase::not_reached;
    });
    if (!killed_there) missing.emplace_back(point);
  }
  return missing;
}

std::vector<CrashCase> prepared_pair_crash_cases() {
  return {
      {"coordinator.after_vote", 1, false, CrashCase::rolled_back},
      {"coordinator.before_commit_record", 1, false, CrashCase::rolled_back},
      {"coordinator.after_commit_record", 1, false, CrashCase::committed},
      {"coordinator.after_finish", 1, false, CrashCase::committed},
  };
}

std::vector<CrashCase> decision_in_last_resource_crash_cases(const std::string& last_resource,
                                                             unsigned finishes) {
  std::vector<CrashCase> cases = {
      {"coordinator.after_vote", 1, true, CrashCase::rolled_back},
      {"coordinator.before_commit_record", 1, true, CrashCase::rolled_back},
      {last_resource + ".before_commit", 1, true, CrashCase::rolled_back},
      {last_resource + ".after_commit", 1, true, CrashCase::committed},
      {"coordinator.after_last_resource", 1, true, CrashCase::committed},
  };
  for (unsigned i = 1; i <= finishes; ++i) {
    cases.push_back({"coordinator.after_finish", i, true, CrashCase::committed});
  }
  return cases;
}

void check_prepared_pair_crash(const CrashCase& c, const PreparedPairFixture& f) {
  TempDir dir;
  const auto run = run_in_child([&] { return f.child(dir.path()); }, c.point, c.hit);
  if (!run.killed && run.exit_code == 42) {
    GTEST_SKIP() << "crash points are compiled out (XACT_CRASH_POINTS=OFF)";
  }
  ASSERT_TRUE(run.killed) << run.describe();

  NodeId node;
  const RecoveryReport report = f.recover(dir.path(), &node);
  EXPECT_TRUE(report.complete()) << report.describe();
  const std::optional<std::string> expected =
      c.commits() ? std::optional<std::string>("committed?") : std::nullopt;
  EXPECT_EQ(f.value1("k"), expected) << report.describe();
  EXPECT_EQ(f.value2("k"), expected) << report.describe();
  EXPECT_TRUE(f.nothing_prepared(node))
      << "recovery left a branch prepared: " << report.describe();

  // A second run has nothing left to do.
  const RecoveryReport again = f.recover(dir.path(), nullptr);
  EXPECT_TRUE(again.complete()) << again.describe();
  for (const auto& a : again.actions) {
    EXPECT_NE(a.kind, RecoveryAction::Kind::commit) << again.describe();
    EXPECT_NE(a.kind, RecoveryAction::Kind::rollback) << again.describe();
  }
}

}  // namespace xact::testing
