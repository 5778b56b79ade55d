// Named crash points (crash_point.cpp): which hit of which name kills the process, and that
// nothing else does. The kills happen in children (xact::testing::run_in_child).
#include <xact/crash_point.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include <xact/testing/crash_harness.hpp>
#include <xact/testing/temp_dir.hpp>

namespace xact {
namespace {

// Appends one line to `path` (O_APPEND, unbuffered: what a killed child wrote is on disk).
void note(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd < 0) return;
  const std::string text = line + "\n";
  [[maybe_unused]] auto n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

std::string slurp(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return out;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

TEST(CrashPoint, TheArmedHitKillsAndTheHitsBeforeItDoNot) {
  testing::TempDir dir;
  const std::string trace = dir / "trace";
  const auto run = testing::run_in_child(
      [&] {
        for (int i = 1; i <= 5; ++i) {
          note(trace, std::to_string(i));
          crash_point("test.step");
        }
        return 0;
      },
      "test.step", 3);
  EXPECT_TRUE(run.killed) << run.describe();
  EXPECT_EQ(slurp(trace), "1\n2\n3\n") << "killed at the third hit, not before or after";
}

TEST(CrashPoint, OtherNamesPassAndAnEmptyNameDisarms) {
  const auto other = testing::run_in_child(
      [] {
        for (int i = 0; i < 10; ++i) crash_point("test.other");
        crash_point("test.step.suffix");
        crash_point("test");
        return 7;
      },
      "test.step");
  EXPECT_FALSE(other.killed) << other.describe();
  EXPECT_EQ(other.exit_code, 7);

  const auto disarmed = testing::run_in_child(
      [] {
        arm_crash_point("");
        crash_point("test.step");
        return 8;
      },
      "test.step");
  EXPECT_FALSE(disarmed.killed) << disarmed.describe();
  EXPECT_EQ(disarmed.exit_code, 8);
}

TEST(CrashPoint, ArmingAgainStartsTheCountAfresh) {
  const auto run = testing::run_in_child(
      [] {
        crash_point("test.step");  // hit 1 of the first arming: passes (armed for hit 2)
        arm_crash_point("test.step", 2);
        crash_point("test.step");  // hit 1 of the new arming
        return 9;
      },
      "test.step", 2);
  EXPECT_FALSE(run.killed) << run.describe();
  EXPECT_EQ(run.exit_code, 9);
}

TEST(CrashPoint, UnarmedPointsNeverFire) {
  arm_crash_point("");
  for (const auto name : kCoordinatorCrashPoints) crash_point(name);
  SUCCEED() << "this process is still alive";
}

TEST(CrashPoint, TheCoordinatorsPointsHaveDistinctNamesInItsNamespace) {
  std::set<std::string_view> names(kCoordinatorCrashPoints.begin(), kCoordinatorCrashPoints.end());
  EXPECT_EQ(names.size(), kCoordinatorCrashPoints.size());
  for (const auto name : kCoordinatorCrashPoints) {
    EXPECT_EQ(name.substr(0, 12), "coordinator.") << name;
  }
}

}  // namespace
}  // namespace xact
