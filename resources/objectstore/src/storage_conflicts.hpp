// The conflict and lock check every storage makes before it prepares or commits a transaction
// (MemoryStorage, FileStorage, and any later one): first-committer-wins on each written oid,
// read checks, and the locks of prepared (or being written) transactions. One copy, so every
// storage reports the same conflict with the same error and details (private to the library).
//
// The storage answers three questions about an oid, under the lock that guards its state:
// who holds it, its current serial, and (for a read conflict's message only) its current type.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/storage.hpp>
#include <xact/xid.hpp>

namespace xact::objectstore::detail {

/// Who holds an oid's commit lock.
struct LockHolder {
  bool held = false;
  /// Held by a transaction prepared before the storage was opened (recovered, in doubt): no
  /// retry helps, only recovery (asking the coordinator's log) releases it. Its xid.
  const Xid* in_doubt = nullptr;
};

[[noreturn]] void throw_write_conflict(const ObjectWrite& write, Tid committed);
[[noreturn]] void throw_read_conflict(Oid oid, std::string type, Tid committed, Tid read);
[[noreturn]] void throw_in_doubt(Oid oid, const std::string& type, Tid read, const Xid& holder,
                                 const std::string& storage);

/// Throws the first conflict of `request`, writes before read checks:
///  - InDoubtLockError when an in-doubt prepared transaction holds the oid (`storage` names
///    the storage in its message);
///  - ConflictError for a write whose oid is locked (committed serial kNoTid) or whose base
///    is not the current serial; ReadConflictError likewise for a read check.
/// lock_of(oid) -> LockHolder, serial_of(oid) -> Tid (kNoTid: no such object),
/// type_of(oid) -> std::string (the current revision's type name, "" when unknown).
template <typename LockOf, typename SerialOf, typename TypeOf>
void check_conflicts(const CommitRequest& request, LockOf&& lock_of, SerialOf&& serial_of,
                     TypeOf&& type_of, const std::string& storage) {
  for (const auto& w : request.writes) {
    const LockHolder holder = lock_of(w.oid);
    if (holder.in_doubt) {
      throw_in_doubt(w.oid, record_type_name(w.data), w.base, *holder.in_doubt, storage);
    }
    if (holder.held) throw_write_conflict(w, kNoTid);
    if (const Tid serial = serial_of(w.oid); serial != w.base) throw_write_conflict(w, serial);
  }
  for (const auto& r : request.read_checks) {
    const LockHolder holder = lock_of(r.oid);
    if (holder.in_doubt) throw_in_doubt(r.oid, {}, r.serial, *holder.in_doubt, storage);
    if (holder.held) throw_read_conflict(r.oid, {}, kNoTid, r.serial);
    if (const Tid serial = serial_of(r.oid); serial != r.serial) {
      throw_read_conflict(r.oid, type_of(r.oid), serial, r.serial);
    }
  }
}

/// Locks the oids of a checked request until it is decided: its writes, then its read checks
/// (each once), entered in `locks` (oid -> holder id) as held by `id`; appends them to `taken`
/// when given.
template <typename Locks, typename Id>
void take_locks(const CommitRequest& request, Locks& locks, Id id,
                std::vector<Oid>* taken = nullptr) {
  for (const auto& w : request.writes) {
    locks[w.oid] = id;
    if (taken) taken->push_back(w.oid);
  }
  for (const auto& r : request.read_checks) {
    if (locks.emplace(r.oid, id).second && taken) taken->push_back(r.oid);
  }
}

}  // namespace xact::objectstore::detail
