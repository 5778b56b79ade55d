// Crash-case tables: where a test kills a committing process (a named crash point, and which
// pass of it) and what recovery must then make of every participant. The crash tests of xact
// (coordinator, object store, SQLite, PostgreSQL, MariaDB, all three together) share this shape,
// its test names, the check that every coordinator crash point is killed at somewhere, and the
// tables that more than one of them runs.
//
//   const xact::testing::CrashCase kCases[] = {{"coordinator.after_vote", 1, false, RB}, ...};
//   INSTANTIATE_TEST_SUITE_P(Points, MyCrashTest, ::testing::ValuesIn(kCases),
//                            xact::testing::crash_case_name);
//
// Run each case with run_in_child(child, c.point, c.hit) (crash_harness.hpp).
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/recovery.hpp>
#include <xact/xid.hpp>

namespace xact::testing {

struct CrashCase {
  enum Expect {
    rolled_back,  ///< recovery rolls every participant back
    committed,    ///< recovery commits every participant
    not_reached,  ///< the point is not passed in this fixture: the child exits normally
  };
  std::string point;  ///< a crash point name: "coordinator.after_vote", "<resource>.<step>"
  unsigned hit = 1;   ///< which pass of the point kills (after_vote 2 = after the second vote)
  /// The fixture's variant with a last resource (a one-phase participant carrying the decision).
  bool last_resource = false;
  Expect expect = rolled_back;

  bool commits() const noexcept { return expect != rolled_back; }
};

/// How GoogleTest prints a case.
void PrintTo(const CrashCase& c, std::ostream* os);

/// Test-name generator: "[last_]<point>_<hit>", every character but a letter or digit as '_'
/// ("last_coordinator_after_finish_2").
std::string crash_case_name(const ::testing::TestParamInfo<CrashCase>& info);

/// The coordinator crash points (kCoordinatorCrashPoints) that no case kills at (a case with
/// expect not_reached does not count). A fixture's tables should leave none.
std::vector<std::string> coordinator_points_not_killed(const std::vector<CrashCase>& cases);

/// Two prepared participants (PostgreSQL and MariaDB both do PREPARE / XA PREPARE) and a
/// decision log, the application killed between prepare and commit: both prepared, no decision,
/// rolled back; only the first prepared, rolled back; the decision durable and nobody finished,
/// committed; one finished and the other still prepared, committed.
std::vector<CrashCase> prepared_pair_crash_cases();

/// Prepared participants and a last resource that stores the decision in its own commit (the
/// SQLite resource named `last_resource`, whose crash points are "<name>.before_commit" and
/// "<name>.after_commit"): committed exactly when the last resource committed. `finishes`: the
/// prepared participants, each killed after its tpc_finish.
std::vector<CrashCase> decision_in_last_resource_crash_cases(const std::string& last_resource,
                                                             unsigned finishes = 1);

/// The body of a prepared-pair crash test, shared by the PostgreSQL and MariaDB suites: the
/// child (`child(dir)`: one transaction over both databases, writing "committed?" under key "k",
/// with its decision log in `dir`) is killed at the case's point; recovery (`recover(dir,
/// &node)`) must then leave both databases alike (the value where the case commits, nothing
/// where it rolls back), no branch of the child's node prepared, and a second recovery run
/// nothing to commit or roll back. Skips when crash points are compiled out.
struct PreparedPairFixture {
  std::function<int(const std::string& dir)> child;
  std::function<RecoveryReport(const std::string& dir, NodeId* node)> recover;
  std::function<std::optional<std::string>(const std::string& key)> value1, value2;
  std::function<bool(const NodeId& node)> nothing_prepared;
};
void check_prepared_pair_crash(const CrashCase& c, const PreparedPairFixture& f);

}  // namespace xact::testing
