// The diagnostics sink, its level and the process-wide counters (diagnostics.cpp).
#include <xact/diagnostics.hpp>

#include <atomic>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <xact/manager.hpp>
#include <xact/testing/recording_resource.hpp>

namespace xact {
namespace {

// Restores the default sink and level whatever a test did: they are process-wide.
class DiagnosticsTest : public ::testing::Test {
 protected:
  ~DiagnosticsTest() override {
    set_log_sink({});
    set_log_level(LogLevel::info);
  }
  void capture() {
    set_log_sink([this](LogLevel level, std::string_view message) {
      std::lock_guard lock(mu_);
      seen_.emplace_back(level, std::string(message));
    });
  }
  std::vector<std::pair<LogLevel, std::string>> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  std::mutex mu_;
  std::vector<std::pair<LogLevel, std::string>> seen_;
};

TEST_F(DiagnosticsTest, MessagesBelowTheLevelNeverReachTheSink) {
  capture();
  set_log_level(LogLevel::warning);
  EXPECT_FALSE(log_enabled(LogLevel::info));
  EXPECT_TRUE(log_enabled(LogLevel::warning));
  log(LogLevel::debug, "d");
  log(LogLevel::info, "i");
  log(LogLevel::warning, "w");
  log(LogLevel::error, "e");
  const auto got = seen();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], std::make_pair(LogLevel::warning, std::string("w")));
  EXPECT_EQ(got[1], std::make_pair(LogLevel::error, std::string("e")));

  set_log_level(LogLevel::debug);
  log(LogLevel::debug, "d2");
  EXPECT_EQ(seen().back(), std::make_pair(LogLevel::debug, std::string("d2")));
}

TEST_F(DiagnosticsTest, TheDefaultSinkWritesWarningsAndErrorsToStderrAndNothingToStdout) {
  set_log_level(LogLevel::debug);
  // Without a sink of the application's, info and debug are not even built.
  EXPECT_FALSE(log_enabled(LogLevel::info));
  EXPECT_FALSE(log_enabled(LogLevel::debug));
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  log(LogLevel::info, "quiet");
  log(LogLevel::warning, "disk nearly full");
  log(LogLevel::error, "it broke");
  const std::string err = ::testing::internal::GetCapturedStderr();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "xact warning: disk nearly full\nxact error: it broke\n");
}

TEST_F(DiagnosticsTest, AnEmptySinkRestoresTheDefault) {
  capture();
  EXPECT_TRUE(log_enabled(LogLevel::info));
  set_log_sink({});
  EXPECT_FALSE(log_enabled(LogLevel::info));
  ::testing::internal::CaptureStderr();
  log(LogLevel::warning, "back to stderr");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "xact warning: back to stderr\n");
  EXPECT_TRUE(seen().empty());
}

TEST_F(DiagnosticsTest, AThrowingSinkLosesTheMessageNotTheCaller) {
  int calls = 0;
  set_log_sink([&](LogLevel, std::string_view) {
    ++calls;
    throw std::runtime_error("sink failed");
  });
  log(LogLevel::error, "one");  // noexcept: a leaked exception would terminate the test
  log(LogLevel::error, "two");
  EXPECT_EQ(calls, 2);
}

TEST_F(DiagnosticsTest, TheSinkGetsEveryMessageOfConcurrentThreads) {
  capture();
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kEach; ++i)
        log(LogLevel::info, std::to_string(t) + ":" + std::to_string(i));
    });
  }
  for (auto& th : threads) th.join();
  const auto got = seen();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kThreads * kEach));
  // Each thread's messages arrive whole and in its order.
  std::vector<int> next(kThreads, 0);
  for (const auto& [level, message] : got) {
    const auto colon = message.find(':');
    ASSERT_NE(colon, std::string::npos) << message;
    const int t = std::stoi(message.substr(0, colon));
    EXPECT_EQ(std::stoi(message.substr(colon + 1)), next[t]++);
  }
}

// Each counter of detail::count lands in its own field of counters(), and only there.
TEST(Counters, EachCounterMovesItsOwnFieldOnly) {
  using C = detail::Counter;
  const std::vector<std::pair<C, std::uint64_t Counters::*>> table = {
      {C::commits, &Counters::commits},
      {C::aborts, &Counters::aborts},
      {C::commit_failures, &Counters::commit_failures},
      {C::conflicts, &Counters::conflicts},
      {C::retries, &Counters::retries},
      {C::pending_completions, &Counters::pending_completions},
      {C::heuristics, &Counters::heuristics},
      {C::in_doubt, &Counters::in_doubt},
      {C::decisions_logged, &Counters::decisions_logged},
      {C::late_joins, &Counters::late_joins},
      {C::completions_redriven, &Counters::completions_redriven},
      {C::redrive_failures, &Counters::redrive_failures},
  };
  ASSERT_EQ(table.size(), static_cast<std::size_t>(C::count_));
  for (std::size_t i = 0; i < table.size(); ++i) {
    const Counters before = counters();
    detail::count(table[i].first, 3);
    const Counters after = counters();
    for (std::size_t j = 0; j < table.size(); ++j) {
      const auto field = table[j].second;
      EXPECT_EQ(after.*field - before.*field, i == j ? 3u : 0u)
          << "counter " << i << ", field " << j;
    }
  }
}

TEST(Counters, ACommitAndAnAbortAreCounted) {
  ExplicitTransactionManager tm;
  const Counters before = counters();
  auto rm = std::make_shared<testing::RecordingResource>("r", std::make_shared<testing::CallLog>());
  rm->set(tm.begin(), "v");
  tm.commit();
  ASSERT_EQ(rm->committed(), std::optional<std::string>("v"));
  tm.begin();
  tm.abort();
  const Counters after = counters();
  EXPECT_EQ(after.commits - before.commits, 1u);
  EXPECT_EQ(after.aborts - before.aborts, 1u);
  EXPECT_EQ(after.commit_failures - before.commit_failures, 0u);
}

}  // namespace
}  // namespace xact
