#include <xact/objectstore/types.hpp>

#include <cinttypes>
#include <cstdio>

#include <xact/errors.hpp>

namespace xact::objectstore {

namespace {

constexpr std::uint64_t kMicrosPerSecond = 1'000'000;
constexpr std::uint64_t kSecondsPerDay = 86'400;
// 10000-01-01T00:00:00Z: past it a tid is no calendar time a message should print.
constexpr std::uint64_t kYear10000Seconds = 253'402'300'800;

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

}  // namespace

std::string oid_repr(Oid oid) { return hex(oid); }

std::string tid_repr(Tid tid) {
  std::string out = hex(tid);
  if (tid == kNoTid) return out + "(no revision)";
  const std::uint64_t seconds = tid / kMicrosPerSecond;
  if (seconds >= kYear10000Seconds) return out;
  const auto micros = static_cast<unsigned>(tid % kMicrosPerSecond);
  const std::uint64_t day_seconds = seconds % kSecondsPerDay;
  const std::chrono::year_month_day date{std::chrono::sys_days{
      std::chrono::days{static_cast<std::int64_t>(seconds / kSecondsPerDay)}}};
  char buf[48];
  std::snprintf(buf, sizeof buf, "(%04d-%02u-%02u %02u:%02u:%02u.%06uZ)",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<unsigned>(day_seconds / 3600),
                static_cast<unsigned>(day_seconds / 60 % 60),
                static_cast<unsigned>(day_seconds % 60), micros);
  return out + buf;
}

Tid tid_for_time(std::chrono::system_clock::time_point t) {
  // floor, not truncation: every commit at or before `t` has a tid <= the result.
  const auto micros = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
  // Times before the epoch come before every revision.
  return micros <= 0 ? kNoTid : static_cast<Tid>(micros);
}

std::chrono::system_clock::time_point time_of_tid(Tid tid) {
  using std::chrono::system_clock;
  // system_clock may count nanoseconds in 64 bits (about 292 years either side of 1970), much
  // less than 2^64 microseconds: saturate instead of overflowing.
  constexpr auto kMaxMicros =
      std::chrono::duration_cast<std::chrono::microseconds>(system_clock::duration::max()).count();
  if (tid > static_cast<std::uint64_t>(kMaxMicros)) return system_clock::time_point::max();
  return system_clock::time_point{std::chrono::duration_cast<system_clock::duration>(
      std::chrono::microseconds{static_cast<std::int64_t>(tid)})};
}

Tid next_tid(Tid previous, std::int64_t now_micros) {
  if (previous == kMaxTid) {
    throw StorageError("no tid after " + tid_repr(previous) +
                       " exists: the storage's last transaction id is damaged; restore the "
                       "storage from a backup or repair it");
  }
  const Tid now = now_micros <= 0 ? kNoTid : static_cast<Tid>(now_micros);
  // The clock may go back (NTP, a restored VM): tids must still increase.
  return now > previous ? now : previous + 1;
}

}  // namespace xact::objectstore
