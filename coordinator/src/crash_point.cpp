#include <xact/crash_point.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace xact {

namespace {

struct Armed {
  std::string name;
  unsigned hit = 1;
  std::atomic<unsigned> seen{0};
};

std::atomic<Armed*> armed{nullptr};

void arm_from_environment() {
  const char* spec = std::getenv("XACT_CRASH_AT");
  if (spec == nullptr || *spec == '\0') return;
  std::string s(spec);
  unsigned hit = 1;
  if (auto colon = s.rfind(':'); colon != std::string::npos) {
    hit = static_cast<unsigned>(std::strtoul(s.c_str() + colon + 1, nullptr, 10));
    s.resize(colon);
  }
  arm_crash_point(std::move(s), hit == 0 ? 1 : hit);
}

// Read once when the library is loaded, so a disarmed crash point costs one atomic load.
// (`armed` is constant-initialized, so it is ready before this runs.)
[[maybe_unused]] const bool armed_from_environment = (arm_from_environment(), true);

}  // namespace

void arm_crash_point(std::string name, unsigned hit) {
  Armed* next = nullptr;
  if (!name.empty()) {
    next = new Armed;
    next->name = std::move(name);
    next->hit = hit;
  }
  // The previous one is leaked on purpose: another thread may be reading it, and arming
  // happens a handful of times per test process.
  armed.store(next, std::memory_order_release);
}

void crash_point(std::string_view name) noexcept {
  Armed* a = armed.load(std::memory_order_acquire);
  if (a == nullptr || a->name != name) return;
  if (a->seen.fetch_add(1) + 1 != a->hit) return;
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace xact
