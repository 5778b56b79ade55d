// Helpers shared by the decision log tests (test_decision_log*.cpp).
#pragma once

#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/io/env.hpp>

namespace xact {

// Readable gtrids in GoogleTest failure messages (found by argument-dependent lookup).
inline void PrintTo(const Gtrid& gtrid, std::ostream* os) {
  *os << "epoch " << gtrid.epoch() << " seq " << gtrid.sequence();
}

}  // namespace xact

namespace xact::test {

inline constexpr const char* kLogDir = "/log";

/// Collects xact's log messages instead of printing them (damaged-log tests open hundreds of
/// damaged logs, each worth a warning). Restores the default sink when destroyed.
class CapturedLog {
 public:
  CapturedLog() {
    set_log_sink([this](LogLevel, std::string_view message) {
      std::lock_guard lock(mu_);
      messages_.emplace_back(message);
    });
  }
  ~CapturedLog() { set_log_sink({}); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  std::vector<std::string> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
};

/// Small segments keep MemEnv copies cheap; tests that need rotation shrink them further.
inline DecisionLogOptions small_options(bool preallocate = true) {
  DecisionLogOptions options;
  options.segment_bytes = 16 * 1024;
  options.preallocate = preallocate;
  return options;
}

inline CommitRecord make_commit(DecisionLog& log, int participants = 2) {
  CommitRecord record;
  record.gtrid = log.new_gtrid();
  record.time_us = 1'700'000'000'000'000;
  for (int i = 0; i < participants; ++i) {
    record.participants.push_back({"rm-" + std::to_string(i), "branch-" + std::to_string(i)});
  }
  return record;
}

inline std::set<Gtrid> unfinished_set(const DecisionLog& log) {
  std::set<Gtrid> out;
  for (const auto& r : log.unfinished()) out.insert(r.gtrid);
  return out;
}

inline std::vector<std::string> segment_files(io::Env& env, const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& name : env.list_dir(dir)) {
    if (name.starts_with("decisions-")) out.push_back(name);
  }
  return out;
}

}  // namespace xact::test
