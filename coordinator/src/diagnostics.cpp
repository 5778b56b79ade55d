#include <xact/diagnostics.hpp>

#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace xact {

namespace {

struct SinkState {
  std::mutex mutex;
  LogSink sink;
};

SinkState& sink_state() {
  // Never destroyed: threads that outlive main (the re-driver's, stopping during static
  // destruction) may still log.
  static SinkState* state = new SinkState;
  return *state;
}

std::atomic<int> min_level{static_cast<int>(LogLevel::info)};
std::atomic<bool> sink_installed{false};  // the default sink shows warnings and errors only

std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(detail::Counter::count_)>
    counter_values{};

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "?";
}

}  // namespace

void set_log_sink(LogSink sink) {
  auto& state = sink_state();
  std::lock_guard lock(state.mutex);
  sink_installed.store(static_cast<bool>(sink));
  state.sink = std::move(sink);
}

void set_log_level(LogLevel level) { min_level.store(static_cast<int>(level)); }

bool log_enabled(LogLevel level) noexcept {
  return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed) &&
         (level >= LogLevel::warning || sink_installed.load(std::memory_order_relaxed));
}

void log(LogLevel level, std::string_view message) noexcept {
  if (!log_enabled(level)) return;
  auto& state = sink_state();
  std::lock_guard lock(state.mutex);
  try {
    if (state.sink) {
      state.sink(level, message);
    } else if (level >= LogLevel::warning) {
      std::fprintf(stderr, "xact %s: %.*s\n", level_name(level), static_cast<int>(message.size()),
                   message.data());
    }
  } catch (...) {
    // A sink must not throw; if it does, the message is lost rather than the caller's state.
  }
}

Counters counters() noexcept {
  auto v = [](detail::Counter c) {
    return counter_values[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
  };
  using C = detail::Counter;
  Counters out;
  out.commits = v(C::commits);
  out.aborts = v(C::aborts);
  out.commit_failures = v(C::commit_failures);
  out.conflicts = v(C::conflicts);
  out.retries = v(C::retries);
  out.pending_completions = v(C::pending_completions);
  out.heuristics = v(C::heuristics);
  out.in_doubt = v(C::in_doubt);
  out.decisions_logged = v(C::decisions_logged);
  out.late_joins = v(C::late_joins);
  out.completions_redriven = v(C::completions_redriven);
  out.redrive_failures = v(C::redrive_failures);
  return out;
}

void detail::count(Counter c, std::uint64_t n) noexcept {
  counter_values[static_cast<std::size_t>(c)].fetch_add(n, std::memory_order_relaxed);
}

}  // namespace xact
