// Decision-log commit throughput against the raw fdatasync rate of the same file system,
// both measured in this binary, in this run.
//
//   BM_RawAppendFdatasync      append 64 bytes + fdatasync: what one durable write costs
//   BM_RawOverwriteFdatasync   overwrite 64 bytes of a zero-filled, synced file + fdatasync:
//                              what a preallocated segment makes it cost
//   BM_DecisionLogCommit/threads:N
//                              log_commit (2 participants) + log_done from N threads
//   BM_DecisionLogCommitSlowSync/threads:N
//                              the same in memory (FaultInjectionEnv) with every sync taking
//                              1 ms, as on a disk without a write cache: how far group commit
//                              scales when the sync, not the CPU, is the bottleneck
//
// Counters: commits/s (and syncs/s for the raw ones); vs_raw = commits/s over the raw append
// rate measured (500 syncs) just before the benchmark; vs_1 = commits/s over the
// one-committer rate; per_sync = commits sharing one fdatasync.
// Aims (issue 3): one committer >= 0.9 of the raw rate; 64 committers >= 20x one committer.
//
// The files go to a directory of its own (bench_dir.hpp) under $XACT_BENCH_DIR, or next to
// this executable (the build tree): never to a tmpfs, whose fdatasync costs nothing and would
// make every ratio meaningless.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <xact/decision_log.hpp>
#include <xact/io/env.hpp>
#include <xact/io/fault_injection_env.hpp>

#include "bench_dir.hpp"

namespace {

namespace fs = std::filesystem;

const std::string& bench_dir() {
  static const xact::bench::BenchDir own("decision-log-bench");
  static const std::string dir = [] {
    const fs::path base = own.path();
    struct statfs st {};
    if (::statfs(base.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC) {
      throw std::runtime_error(base.string() +
                               " is on tmpfs, where fdatasync is free: set "
                               "XACT_BENCH_DIR to a directory on a real disk");
    }
    benchmark::AddCustomContext("bench_dir", base.string());
    return base.string();
  }();
  return dir;
}

std::atomic<double> g_raw_rate{0};            // appends + fdatasync per second, just measured
std::atomic<double> g_one_committer_rate{0};  // commits per second with one committer

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int open_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  return fd;
}

void write_or_throw(int fd, const std::string& data, off_t offset) {
  if (::pwrite(fd, data.data(), data.size(), offset) != static_cast<ssize_t>(data.size())) {
    throw std::runtime_error("pwrite failed");
  }
}

// The raw append + fdatasync rate over `n` syncs, right now. The disk may be shared and its
// latency can change several-fold within a minute, so each commit benchmark compares itself
// with a baseline taken just before it, not only with BM_RawAppendFdatasync.
double raw_rate_now(int n) {
  const std::string path = bench_dir() + "/raw-now.dat";
  const int fd = open_file(path);
  const std::string record(64, 'r');
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    write_or_throw(fd, record, static_cast<off_t>(i) * static_cast<off_t>(record.size()));
    ::fdatasync(fd);
  }
  const double rate = n / seconds_since(start);
  ::close(fd);
  ::unlink(path.c_str());
  return rate;
}

void BM_RawAppendFdatasync(benchmark::State& state) {
  const std::string path = bench_dir() + "/raw-append.dat";
  const int fd = open_file(path);
  const std::string record(64, 'r');
  off_t offset = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    write_or_throw(fd, record, offset);
    offset += static_cast<off_t>(record.size());
    if (::fdatasync(fd) != 0) state.SkipWithError("fdatasync failed");
  }
  g_raw_rate = static_cast<double>(state.iterations()) / seconds_since(start);
  state.counters["syncs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  ::close(fd);
  ::unlink(path.c_str());
}
BENCHMARK(BM_RawAppendFdatasync)->UseRealTime()->MinTime(2.0);

void BM_RawOverwriteFdatasync(benchmark::State& state) {
  const std::string path = bench_dir() + "/raw-overwrite.dat";
  const int fd = open_file(path);
  const std::string zeros(8u << 20, '\0');
  write_or_throw(fd, zeros, 0);
  ::fsync(fd);
  const std::string record(64, 'r');
  off_t offset = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    write_or_throw(fd, record, offset);
    offset = (offset + static_cast<off_t>(record.size())) % static_cast<off_t>(zeros.size());
    if (::fdatasync(fd) != 0) state.SkipWithError("fdatasync failed");
  }
  state.counters["syncs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (g_raw_rate > 0) {
    state.counters["vs_raw"] =
        static_cast<double>(state.iterations()) / seconds_since(start) / g_raw_rate;
  }
  ::close(fd);
  ::unlink(path.c_str());
}
BENCHMARK(BM_RawOverwriteFdatasync)->UseRealTime()->MinTime(2.0);

// The loop shared by the commit benchmarks: log_commit (2 participants) + log_done per
// iteration from every thread, then the counters. `log` is set by thread 0 before the loop;
// the first iteration waits for every thread (Google Benchmark's start barrier), so no
// thread reads it earlier, and each thread's clock starts there. After the loop every thread
// has left it (the stop barrier), so thread 0 may tear down once this returns.
void commit_loop(benchmark::State& state, const std::unique_ptr<xact::DecisionLog>& log,
                 std::atomic<double>& one_committer_rate, bool against_raw) {
  std::chrono::steady_clock::time_point start;
  bool first = true;
  for (auto _ : state) {
    if (first) {
      start = std::chrono::steady_clock::now();
      first = false;
    }
    xact::CommitRecord record;
    record.gtrid = log->new_gtrid();
    record.participants = {{"pg:orders", "pg:orders"}, {"objects:main", "objects:main"}};
    log->log_commit(record);
    log->log_done(record.gtrid);
  }
  // Per-thread values; Google Benchmark sums them over the threads.
  const double rate = static_cast<double>(state.iterations()) / seconds_since(start);
  state.counters["commits/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (against_raw && g_raw_rate > 0) state.counters["vs_raw"] = rate / g_raw_rate;
  if (state.threads() > 1 && one_committer_rate > 0) {
    state.counters["vs_1"] = rate / one_committer_rate;
  }
  if (state.thread_index() == 0) {
    if (state.threads() == 1) one_committer_rate = rate;
    const auto stats = log->stats();
    state.counters["per_sync"] =
        static_cast<double>(stats.commits) /
        static_cast<double>(std::max<std::uint64_t>(1, stats.forced_writes));
  }
}

std::unique_ptr<xact::DecisionLog> g_log;

void BM_DecisionLogCommit(benchmark::State& state) {
  const std::string dir = bench_dir() + "/log";
  if (state.thread_index() == 0) {
    g_raw_rate = raw_rate_now(500);
    fs::remove_all(dir);
    g_log = xact::DecisionLog::open(xact::io::Env::posix(), dir);
  }
  commit_loop(state, g_log, g_one_committer_rate, /*against_raw=*/true);
  if (state.thread_index() == 0) {
    g_log.reset();
    fs::remove_all(dir);
  }
}
BENCHMARK(BM_DecisionLogCommit)
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->Threads(32)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(2.0);

std::unique_ptr<xact::io::FaultInjectionEnv> g_slow_env;
std::unique_ptr<xact::DecisionLog> g_slow_log;
std::atomic<double> g_slow_one_committer_rate{0};

void BM_DecisionLogCommitSlowSync(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_slow_env = std::make_unique<xact::io::FaultInjectionEnv>();
    g_slow_log = xact::DecisionLog::open(*g_slow_env, "/log");
    g_slow_env->set_sync_delay(std::chrono::milliseconds(1));
  }
  commit_loop(state, g_slow_log, g_slow_one_committer_rate, /*against_raw=*/false);
  if (state.thread_index() == 0) {
    g_slow_log.reset();
    g_slow_env.reset();
  }
}
BENCHMARK(BM_DecisionLogCommitSlowSync)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
