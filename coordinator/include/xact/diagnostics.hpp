// Diagnostics: a log sink the application installs, and counters it can read. (Not the
// decision log, which is <xact/decision_log.hpp>: this is where messages for people go.)
//
// xact never writes to stdout; by default warnings and errors go to stderr. Install a sink to
// route them into the application's logging. Both the sink and the counters are process-wide
// and thread-safe; the sink may be called from any thread (also concurrently) and must not
// throw (an exception from it is swallowed).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace xact {

enum class LogLevel { debug, info, warning, error };

using LogSink = std::function<void(LogLevel level, std::string_view message)>;

/// Installs `sink` (an empty function restores the default stderr sink).
void set_log_sink(LogSink sink);
/// Messages below `level` are dropped before they reach the sink (default: info).
void set_log_level(LogLevel level);
void log(LogLevel level, std::string_view message) noexcept;
/// Whether a message of `level` would reach the sink: check before building a costly message.
bool log_enabled(LogLevel level) noexcept;

struct Counters {
  std::uint64_t commits = 0;              ///< transactions committed
  std::uint64_t aborts = 0;               ///< transactions aborted, failed commits included
  std::uint64_t commit_failures = 0;      ///< commits that failed before the decision
  std::uint64_t conflicts = 0;            ///< failures caused by a TransientError
  std::uint64_t retries = 0;              ///< attempts started again by the retry helpers
  std::uint64_t pending_completions = 0;  ///< branches whose tpc_finish failed after a commit
  std::uint64_t heuristics = 0;           ///< heuristic outcomes found
  std::uint64_t in_doubt = 0;             ///< commits left for recovery to decide
  std::uint64_t decisions_logged = 0;     ///< commit records forced to a decision log
  /// Joins refused because the commit had started (their work was not committed): before the
  /// decision they also fail the commit; after it they are logged as errors.
  std::uint64_t late_joins = 0;
  /// Branches the re-driver (<xact/redriver.hpp>) finished while the process ran.
  std::uint64_t completions_redriven = 0;
  std::uint64_t redrive_failures = 0;  ///< re-driver calls that failed and were retried
};

/// A snapshot of the process-wide counters.
Counters counters() noexcept;

namespace detail {
enum class Counter {
  commits,
  aborts,
  commit_failures,
  conflicts,
  retries,
  pending_completions,
  heuristics,
  in_doubt,
  decisions_logged,
  late_joins,
  completions_redriven,
  redrive_failures,
  count_
};
void count(Counter c, std::uint64_t n = 1) noexcept;
}  // namespace detail

}  // namespace xact
