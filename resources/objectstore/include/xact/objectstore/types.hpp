// Object ids and transaction ids of the object store.
//
// Oid: a 64-bit object id, unique within one storage. Oid 0 is the root mapping.
// Tid: a 64-bit transaction id, strictly increasing in commit order within one storage.
//      It doubles as the commit time: tid = microseconds since the Unix epoch, bumped by one
//      when two commits fall in the same microsecond (or the clock went back), so "as of a
//      time" (pack, historical connections) and "as of a transaction" are the same question.
//      A revision's serial is the tid of the transaction that wrote it. kNoTid (0) is "no
//      revision": the base of a new object, the snapshot of an empty storage.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace xact::objectstore {

using Oid = std::uint64_t;
using Tid = std::uint64_t;

inline constexpr Oid kRootOid = 0;
inline constexpr Tid kNoTid = 0;
inline constexpr Tid kMaxTid = ~Tid{0};

/// "0x1f": how oids appear in messages and tools.
std::string oid_repr(Oid oid);
/// "0x5f2a…(2026-11-22 10:15:03.123456Z)": a tid with the time it stands for.
std::string tid_repr(Tid tid);

/// The tid that stands for a point in time (for pack and historical connections).
Tid tid_for_time(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point time_of_tid(Tid tid);

/// The next tid: max(previous + 1, now in microseconds); never kNoTid. Throws StorageError
/// when `previous` is kMaxTid (no later tid exists: the storage's tids are damaged).
Tid next_tid(Tid previous, std::int64_t now_micros);

}  // namespace xact::objectstore
