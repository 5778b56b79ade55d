// Named crash points: places in the commit protocol where a test can have the process killed
// (SIGKILL, as the OOM killer or a power cut would end it) to prove that recovery leaves every
// participant committed or rolled back together.
//
// A point is armed for a process by the environment variable XACT_CRASH_AT="name" (the first
// time the point is reached) or "name:N" (the Nth time), read once when the library is loaded,
// or by arm_crash_point() in the process itself. Disarmed, a crash point costs one
// relaxed atomic load and a branch. Built with -DXACT_CRASH_POINTS=OFF, xact's own crash points
// compile to nothing.
//
// Resource managers can use crash points of their own (the file-backed test resource does):
// the names are free-form; by convention "<component>.<step>".
//
// Thread-safety: thread-safe. The count of hits is per process.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace xact {

/// Kills the calling process with SIGKILL if `name` is the armed crash point (and this is the
/// armed hit). Never returns in that case.
void crash_point(std::string_view name) noexcept;

/// Arms `name` (hit number `hit`, 1-based) in this process; an empty name disarms.
void arm_crash_point(std::string name, unsigned hit = 1);

/// The coordinator's crash points, in protocol order.
inline constexpr std::array<std::string_view, 9> kCoordinatorCrashPoints = {
    "coordinator.before_tpc_begin",      // hooks ran; no participant was told anything
    "coordinator.after_tpc_begin",       // every participant began
    "coordinator.after_commit",          // every participant staged its work
    "coordinator.after_vote",            // after each yes/read-only vote (hit N = Nth vote)
    "coordinator.before_commit_record",  // every vote yes; nothing logged
    "coordinator.after_commit_record",   // the decision is durable; nobody finished
    "coordinator.after_last_resource",   // the last resource committed with the decision
    "coordinator.after_finish",          // after each tpc_finish (hit N = Nth finish)
    "coordinator.after_done_record",     // every participant finished; done record queued
};

}  // namespace xact

#if defined(XACT_CRASH_POINTS_ENABLED)
#define XACT_CRASH_POINT(name) ::xact::crash_point(name)
#else
#define XACT_CRASH_POINT(name) ((void)0)
#endif
