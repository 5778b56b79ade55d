// FaultInjectionEnv: counting, failing and crashing on top of MemEnv.
#include <xact/io/fault_injection_env.hpp>

#include <thread>

namespace xact::io {
namespace {

// Counts down an armed "fail the nth" setting; true when this call is the nth.
bool count_down(std::uint64_t& remaining) {
  if (remaining == 0) return false;
  return --remaining == 0;
}

}  // namespace

void FaultInjectionEnv::crash() {
  {
    std::lock_guard lock(mu_);
    fail_write_in_ = fail_sync_in_ = fail_dir_sync_in_ = 0;
    halt_budget_.reset();
    halted_ = false;
  }
  drop_unsynced();
}

void FaultInjectionEnv::fail_nth_write(std::uint64_t n, bool torn) {
  std::lock_guard lock(mu_);
  fail_write_in_ = n;
  torn_write_ = torn;
}

void FaultInjectionEnv::fail_nth_sync(std::uint64_t n) {
  std::lock_guard lock(mu_);
  fail_sync_in_ = n;
}

void FaultInjectionEnv::fail_nth_dir_sync(std::uint64_t n) {
  std::lock_guard lock(mu_);
  fail_dir_sync_in_ = n;
}

void FaultInjectionEnv::halt_after(std::uint64_t n) {
  std::lock_guard lock(mu_);
  halt_budget_ = n;
}

bool FaultInjectionEnv::halted() const {
  std::lock_guard lock(mu_);
  return halted_;
}

void FaultInjectionEnv::set_sync_delay(std::chrono::microseconds delay) {
  std::lock_guard lock(mu_);
  sync_delay_ = delay;
}

std::uint64_t FaultInjectionEnv::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

std::uint64_t FaultInjectionEnv::syncs() const {
  std::lock_guard lock(mu_);
  return syncs_;
}

std::uint64_t FaultInjectionEnv::dir_syncs() const {
  std::lock_guard lock(mu_);
  return dir_syncs_;
}

std::uint64_t FaultInjectionEnv::mutations() const {
  std::lock_guard lock(mu_);
  return mutations_;
}

MemEnv::Verdict FaultInjectionEnv::before(Op op, const std::string& path, std::size_t bytes) {
  std::chrono::microseconds delay{0};
  Verdict verdict;
  {
    std::lock_guard lock(mu_);
    ++mutations_;
    if (halt_budget_) {
      if (*halt_budget_ == 0) {
        halted_ = true;
        verdict.fail = true;
        verdict.message = "injected fault: '" + path + "': the process is halted (simulated death)";
        return verdict;
      }
      --*halt_budget_;
    }
    switch (op) {
      case Op::kWrite:
        ++writes_;
        if (count_down(fail_write_in_)) {
          verdict.fail = true;
          verdict.apply_bytes = torn_write_ ? bytes / 2 : 0;
          verdict.message = "injected fault: cannot write to '" + path + "': Input/output error";
        }
        break;
      case Op::kSync:
        ++syncs_;
        delay = sync_delay_;
        if (count_down(fail_sync_in_)) {
          verdict.fail = true;
          verdict.message = "injected fault: cannot sync '" + path + "': Input/output error";
        }
        break;
      case Op::kDirSync:
        ++dir_syncs_;
        if (count_down(fail_dir_sync_in_)) {
          verdict.fail = true;
          verdict.message =
              "injected fault: cannot sync directory '" + path + "': Input/output error";
        }
        break;
      case Op::kMeta:
      case Op::kLock: break;
    }
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  return verdict;
}

}  // namespace xact::io
