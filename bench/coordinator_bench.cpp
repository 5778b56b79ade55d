// The coordinator's commit path, against the cheapest equivalent work done without xact.
//
// Workloads (names shared with bench/python_transaction_bench.py, so bench/compare_python.sh
// can pair them):
//   BM_Commit_Explicit/participants:N/hooks:H   ExplicitTransactionManager: begin, join N
//   BM_Commit_Thread/participants:N/hooks:H     no-op RMs, H=1 adds one before-commit and one
//                                               after-commit hook, commit
//                                               (Thread = xact::thread_manager())
//   BM_Retry_Explicit/participants:N            xact::run; every 10th transaction's first
//   BM_Retry_Thread/participants:N              attempt throws ConflictError after the joins
// Baselines (same binary, same run):
//   BM_Baseline_Commit/participants:N/hooks:H   the same virtual calls on the same RMs in the
//                                               protocol's order, the same std::function hooks
//   BM_Baseline_Retry/participants:N            the above plus, on every 10th transaction, the
//                                               abort() calls and a thrown and caught
//                                               ConflictError
//
// Every xact run gets a counter `ratio_to_baseline` (xact CPU time per transaction / baseline
// CPU time per transaction, same arguments), added by the reporter at the end of this file
// when the baseline ran in the same process. It reaches the display reporter (console or
// --benchmark_format=json) and the --benchmark_out file (json or console). The no-op
// participants cost a few nanoseconds per call, so the ratio is the coordinator's own cost.
#include <benchmark/benchmark.h>

#include "ratio_reporting.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/manager.hpp>
#include <xact/resource_manager.hpp>
#include <xact/retry.hpp>
#include <xact/transaction.hpp>

namespace {

// Does nothing and votes yes. Not `final`, and its methods are called through
// ResourceManager& in the baseline too, so both sides pay the same virtual dispatch.
class NoopResource : public xact::ResourceManager {
 public:
  explicit NoopResource(std::string name) : name_(std::move(name)) {}
  std::string resource_name() const override { return name_; }
  void abort(xact::Transaction&) noexcept override {}
  void tpc_begin(xact::Transaction&) override {}
  void commit(xact::Transaction&) override {}
  xact::Vote tpc_vote(xact::Transaction&) override { return xact::Vote::yes; }
  void tpc_finish(xact::Transaction&) override {}
  void tpc_abort(xact::Transaction&) noexcept override {}

 private:
  std::string name_;
};

using Participants = std::vector<std::shared_ptr<xact::ResourceManager>>;

Participants make_participants(std::int64_t n) {
  Participants rms;
  for (std::int64_t i = 0; i < n; ++i) {
    rms.push_back(std::make_shared<NoopResource>("noop:" + std::to_string(i)));
  }
  return rms;
}

// Every 10th transaction (the 1st, 11th, ...) fails its first attempt: 10% of first attempts.
constexpr std::uint64_t kConflictEvery = 10;

xact::RetryPolicy no_wait_policy() {
  xact::RetryPolicy policy;
  policy.attempts = 3;
  policy.jitter = false;
  policy.sleep = [](std::chrono::microseconds) {};
  return policy;
}

// Checked after each timed loop: a benchmark that commits nothing measures nothing.
void expect_commits(benchmark::State& state, std::uint64_t before, std::uint64_t hook_calls,
                    bool hooks) {
  const auto committed = xact::counters().commits - before;
  const auto iterations = static_cast<std::uint64_t>(state.iterations());
  if (committed != iterations) {
    state.SkipWithError("xact committed a different number of transactions than iterations");
  } else if (hooks && hook_calls != 2 * iterations) {
    state.SkipWithError("the hooks did not run once each per transaction");
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- xact --------------------------------------------------------------------------------

void commit_loop(benchmark::State& state, xact::TransactionManager& tm) {
  const Participants rms = make_participants(state.range(0));
  const bool hooks = state.range(1) != 0;
  std::uint64_t hook_calls = 0;
  const auto before = xact::counters().commits;
  for (auto _ : state) {
    xact::Transaction& txn = tm.begin();
    for (const auto& rm : rms) txn.join(rm);
    if (hooks) {
      txn.add_before_commit_hook([&hook_calls] { ++hook_calls; });
      txn.add_after_commit_hook([&hook_calls](bool committed) { hook_calls += committed; });
    }
    tm.commit();
  }
  expect_commits(state, before, hook_calls, hooks);
}

// The coordinator's own cost, without a decision log (no commit record to force).
const xact::ManagerOptions kUnlogged{.allow_unlogged_decisions = true};

void BM_Commit_Explicit(benchmark::State& state) {
  xact::ExplicitTransactionManager tm(kUnlogged);
  commit_loop(state, tm);
}

void BM_Commit_Thread(benchmark::State& state) {
  xact::thread_manager().set_options(kUnlogged);
  commit_loop(state, xact::thread_manager());
}

void retry_loop(benchmark::State& state, xact::TransactionManager& tm) {
  const Participants rms = make_participants(state.range(0));
  const xact::RetryPolicy policy = no_wait_policy();
  const auto before = xact::counters();
  std::uint64_t txn_index = 0;
  for (auto _ : state) {
    const bool conflict = txn_index++ % kConflictEvery == 0;
    int attempt = 0;
    xact::run(
        tm,
        [&](xact::Transaction& txn) {
          ++attempt;
          for (const auto& rm : rms) txn.join(rm);
          if (conflict && attempt == 1) throw xact::ConflictError("benchmark conflict");
        },
        policy);
  }
  const auto retries = xact::counters().retries - before.retries;
  if (retries != (txn_index + kConflictEvery - 1) / kConflictEvery) {
    state.SkipWithError("unexpected number of retries");
    return;
  }
  expect_commits(state, before.commits, 0, false);
}

void BM_Retry_Explicit(benchmark::State& state) {
  xact::ExplicitTransactionManager tm(kUnlogged);
  retry_loop(state, tm);
}

void BM_Retry_Thread(benchmark::State& state) {
  xact::thread_manager().set_options(kUnlogged);
  retry_loop(state, xact::thread_manager());
}

// ---- baselines ---------------------------------------------------------------------------

// The RMs' methods take a Transaction&; the no-op ones never touch it, so one transaction that
// is never committed stands in for all of them.
struct BaselineTransaction {
  xact::ExplicitTransactionManager tm;
  xact::Transaction& txn = tm.begin();
};

inline void protocol_calls(const Participants& rms, xact::Transaction& txn) {
  for (const auto& rm : rms) rm->tpc_begin(txn);
  for (const auto& rm : rms) rm->commit(txn);
  for (const auto& rm : rms) {
    xact::Vote vote = rm->tpc_vote(txn);
    benchmark::DoNotOptimize(vote);
  }
  for (const auto& rm : rms) rm->tpc_finish(txn);
}

void BM_Baseline_Commit(benchmark::State& state) {
  const Participants rms = make_participants(state.range(0));
  const bool hooks = state.range(1) != 0;
  BaselineTransaction base;
  std::uint64_t hook_calls = 0;
  for (auto _ : state) {
    if (hooks) {
      std::function<void()> before_commit = [&hook_calls] { ++hook_calls; };
      std::function<void(bool)> after_commit = [&hook_calls](bool ok) { hook_calls += ok; };
      benchmark::DoNotOptimize(before_commit);
      benchmark::DoNotOptimize(after_commit);
      before_commit();
      protocol_calls(rms, base.txn);
      after_commit(true);
    } else {
      protocol_calls(rms, base.txn);
    }
  }
  benchmark::DoNotOptimize(hook_calls);
  state.SetItemsProcessed(state.iterations());
}

void BM_Baseline_Retry(benchmark::State& state) {
  const Participants rms = make_participants(state.range(0));
  BaselineTransaction base;
  std::uint64_t txn_index = 0;
  for (auto _ : state) {
    if (txn_index++ % kConflictEvery == 0) {
      try {
        throw xact::ConflictError("benchmark conflict");
      } catch (const xact::TransientError&) {
        for (const auto& rm : rms) rm->abort(base.txn);
      }
    }
    protocol_calls(rms, base.txn);
  }
  state.SetItemsProcessed(state.iterations());
}

// With --benchmark_repetitions, a `min` aggregate besides mean/median/stddev/cv: the least
// disturbed repetition, which is what a shared machine lets one compare (compare_python.sh
// uses it). Applied to the times; counters get the min too, so a rate's `min` is the lowest
// rate: derive rates from the times.
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void common(benchmark::internal::Benchmark* b) { b->ComputeStatistics("min", &min_of); }
void commit_args(benchmark::internal::Benchmark* b) {
  common(b);
  b->ArgNames({"participants", "hooks"});
  for (int hooks : {0, 1}) {
    for (int n : {0, 1, 3}) b->Args({n, hooks});
  }
}
void retry_args(benchmark::internal::Benchmark* b) {
  common(b);
  b->ArgName("participants");
  for (int n : {0, 1, 3}) b->Arg(n);
}

BENCHMARK(BM_Baseline_Commit)->Apply(commit_args);
BENCHMARK(BM_Commit_Explicit)->Apply(commit_args);
BENCHMARK(BM_Commit_Thread)->Apply(commit_args);
BENCHMARK(BM_Baseline_Retry)->Apply(retry_args);
BENCHMARK(BM_Retry_Explicit)->Apply(retry_args);
BENCHMARK(BM_Retry_Thread)->Apply(retry_args);

// ---- reporting ---------------------------------------------------------------------------

// Which baseline an xact benchmark family is measured against.
std::string baseline_of(std::string_view family) {
  if (family.starts_with("BM_Commit_")) return "BM_Baseline_Commit";
  if (family.starts_with("BM_Retry_")) return "BM_Baseline_Retry";
  return {};
}

double seconds_per_unit(benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond: return 1e-9;
    case benchmark::kMicrosecond: return 1e-6;
    case benchmark::kMillisecond: return 1e-3;
    case benchmark::kSecond: return 1.0;
  }
  return 1.0;
}

// Adds `ratio_to_baseline` to the runs it forwards to the reporter it wraps. Per-iteration
// runs are paired with the baseline's run of the same repetition, the mean, median and min
// aggregates with the baseline's same aggregate; stddev and cv are not ratios of anything
// useful. A report whose baseline has not been reported yet (--benchmark_filter, or
// --benchmark_enable_random_interleaving, which reports a benchmark when its last repetition
// ends) waits for it, and goes out without the ratio at the end of the run if it never comes.
class BaselineRatioReporter : public benchmark::BenchmarkReporter {
 public:
  // `inner` is not owned (the library's default display reporter is a process-wide static).
  explicit BaselineRatioReporter(benchmark::BenchmarkReporter* inner) : inner_(inner) {}

  bool ReportContext(const Context& context) override {
    // The library points this wrapper at the output; the wrapped reporter writes there.
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
    return inner_->ReportContext(context);
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (pairable(run) && baseline_key(run).empty())
        cpu_time_[key(run.run_name, run)] = cpu_seconds(run);
    }
    pending_.push_back(runs);
    flush(false);
  }

  void Finalize() override {
    flush(true);
    inner_->Finalize();
  }

 private:
  static bool pairable(const Run& run) {
    return !run.error_occurred &&
           (run.run_type == Run::RT_Iteration || run.aggregate_name == "mean" ||
            run.aggregate_name == "median" || run.aggregate_name == "min");
  }

  static double cpu_seconds(const Run& run) {
    return run.GetAdjustedCPUTime() * seconds_per_unit(run.time_unit);
  }

  static std::string key(const benchmark::BenchmarkName& name, const Run& run) {
    return name.str() + "|" +
           (run.run_type == Run::RT_Aggregate ? run.aggregate_name
                                              : std::to_string(run.repetition_index));
  }

  // The key of `run`'s baseline, or "" when `run` is not measured against one.
  static std::string baseline_key(const Run& run) {
    benchmark::BenchmarkName name = run.run_name;
    name.function_name = baseline_of(name.function_name);
    return name.function_name.empty() ? std::string() : key(name, run);
  }

  bool ready(const std::vector<Run>& runs) const {
    return std::all_of(runs.begin(), runs.end(), [&](const Run& run) {
      const std::string base = pairable(run) ? baseline_key(run) : std::string();
      return base.empty() || cpu_time_.contains(base);
    });
  }

  void flush(bool force) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (!force && !ready(*it)) {
        ++it;
        continue;
      }
      for (Run& run : *it) {
        if (!pairable(run)) continue;
        const std::string base = baseline_key(run);
        if (base.empty()) continue;
        auto found = cpu_time_.find(base);
        if (found != cpu_time_.end() && found->second > 0) {
          run.counters["ratio_to_baseline"] = benchmark::Counter(cpu_seconds(run) / found->second);
        }
      }
      inner_->ReportRuns(*it);
      it = pending_.erase(it);
    }
  }

  benchmark::BenchmarkReporter* inner_;
  std::map<std::string, double> cpu_time_;  // baselines' CPU seconds per transaction
  std::list<std::vector<Run>> pending_;
};

}  // namespace

int main(int argc, char** argv) {
  const auto output = xact::bench::output_flags(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  xact::bench::run_with_ratios<BaselineRatioReporter>(output);
  benchmark::Shutdown();
  return 0;
}
