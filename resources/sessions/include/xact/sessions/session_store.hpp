// Session stores: sessions by id, each a small map of named values with an idle expiry.
//
// A session store is NOT transactional: a write lands at once and other requests see it. That
// is what web applications share between processes (Zope's temporary storage, a MySQL MyISAM
// table, Redis). SessionResource (<xact/sessions/session_resource.hpp>) makes writes made inside
// an xact transaction undoable by keeping their compensation in the stored entry itself (the
// fence below), so no separate log has to reach the disk before the write does.
//
// The interface has two halves:
//  - the plain operations (get, set, erase, touch, invalidate, sweep_expired) are what a request
//    outside xact does; they ignore fences (an outside writer overwrites a fenced value, which a
//    later compensation then reports as a heuristic outcome instead of overwriting it back);
//  - the compensation protocol (read_entry, compare_and_swap, clear_fences, list_fenced) is
//    what SessionResource builds on. Every call is atomic per (session id, name).
//
// Expiry: a session unused for idle_timeout() is gone. An unknown or expired id reads as a new,
// empty session, never as an error (a client cannot tell whether an id ever existed). A
// committed write and touch() refresh the expiry; a value written by a transaction that has not
// finished does not (it may be compensated away). Times are wall-clock microseconds since the
// Unix epoch, because several processes (and machines) share a store.
//
// Versions: every value has a version, bumped by each write (1 for a new value). They are the
// compare-and-set tokens; a compensation restores the version the value had before.
//
// Thread-safety: every SessionStore is safe to call from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <xact/xid.hpp>

namespace xact::sessions {

/// Wall-clock microseconds since the Unix epoch, from the coarse clock (a few milliseconds'
/// resolution: expiry and leases need no more).
std::int64_t wall_clock_us() noexcept;

/// A new session id: 256 bits from the kernel's CSPRNG (getrandom), as 64 lowercase hex
/// characters. Never sequential, never derived from time or a counter. Throws ResourceError if
/// the kernel cannot supply randomness.
std::string new_session_id();

/// Throws UsageError unless 1 <= session_id.size() <= 128 and 1 <= name.size() <= 255 (what the
/// MyISAM table's key holds).
void check_key(const std::string& session_id, const std::string& name);

/// The compensation of an unfinished transaction's write, kept in the entry it wrote.
struct Fence {
  Gtrid owner;                              ///< the transaction that wrote the value
  std::uint64_t owner_version = 0;          ///< the version its latest write produced
  std::optional<std::string> before_value;  ///< the value before its first write (none: absent)
  std::uint64_t before_version = 0;         ///< that value's version (0 when absent)
  std::int64_t fenced_at_us = 0;            ///< when its first write landed (wall clock)
  bool operator==(const Fence&) const = default;
};

/// One stored value as the store holds it.
struct Entry {
  /// The value. None: erased by the fence's owner (a tombstone, dropped when it commits).
  std::optional<std::string> value;
  std::uint64_t version = 0;
  std::int64_t expires_us = 0;  ///< filled in by reads; ignored by compare_and_swap
  std::optional<Fence> fence;
  bool operator==(const Entry&) const = default;
};

/// The entry a fence's before-image stands for, unfenced (none: the value was absent).
std::optional<Entry> before_image(const Fence& fence);

/// What the function given to SessionStore::update_entry decides for the entry it was shown.
struct EntryUpdate {
  enum class Kind { keep, store, remove };
  Kind kind = Kind::keep;
  Entry next;  ///< what to store (Kind::store); its expires_us is ignored
};

/// A fenced entry found by list_fenced().
struct FencedEntry {
  std::string session_id;
  std::string name;
  Entry entry;
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  /// "memory store", "MyISAM table sessions.xact_sessions": for messages.
  virtual std::string describe() const = 0;
  virtual std::chrono::microseconds idle_timeout() const noexcept = 0;
  /// Whether `error`, thrown by one of this store's calls, says the store was out of reach for
  /// a moment (a connection that could not be made or was lost), so that running the
  /// transaction again is worth it. A write that failed so may still have landed: the resource
  /// then compensates its owner's fences by id when the transaction ends. None by default.
  virtual bool is_transient(const std::exception_ptr& /*error*/) const noexcept { return false; }

  // --- plain operations (outside xact) ---------------------------------------------------------
  /// The value as stored now (also a value an unfinished transaction wrote); none when the
  /// session or the value does not exist, the session expired, or the value is a tombstone.
  virtual std::optional<std::string> get(const std::string& session_id,
                                         const std::string& name) = 0;
  /// Every value of the session, as get() sees them.
  virtual std::map<std::string, std::string> get_all(const std::string& session_id) = 0;
  /// Writes the value with a new version, drops any fence on it, refreshes the session's expiry.
  virtual void set(const std::string& session_id, const std::string& name,
                   const std::string& value) = 0;
  /// Removes the value (fenced or not); refreshes the session's expiry.
  virtual void erase(const std::string& session_id, const std::string& name) = 0;
  /// Refreshes the session's expiry; false when it does not exist (or expired).
  virtual bool touch(const std::string& session_id) = 0;
  /// Removes the whole session (logging out).
  virtual void invalidate(const std::string& session_id) = 0;
  /// Removes every expired session; returns how many values were removed.
  virtual std::size_t sweep_expired() = 0;

  // --- compensation protocol (SessionResource) -------------------------------------------------
  /// The entry as stored (tombstones and fences included); none when absent or expired.
  virtual std::optional<Entry> read_entry(const std::string& session_id,
                                          const std::string& name) = 0;
  /// Every live entry of the session, tombstones and fences included.
  virtual std::map<std::string, Entry> read_session(const std::string& session_id) = 0;
  /// Atomically: when the stored entry still matches `seen` (same version and same fence owner,
  /// and live; none: absent or expired), stores `next` (none: removes it) and returns true;
  /// otherwise changes nothing and returns false. The expiry of a live entry is kept; a new
  /// entry in an absent or expired session starts a new session (expiry now + idle timeout).
  virtual bool compare_and_swap(const std::string& session_id, const std::string& name,
                                const std::optional<Entry>& seen,
                                const std::optional<Entry>& next) = 0;
  /// Atomically per (session_id, name): shows `decide` the entry as stored now (none: absent or
  /// expired; tombstones and fences included) and applies what it returns, as compare_and_swap
  /// would with that entry as `seen`. `found` is set to the entry `decide` was last shown.
  /// Returns false when the entry kept changing between the read and the write (a store whose
  /// read and write are separate steps retries a few times); `decide` may then have been called
  /// several times. An exception from `decide` propagates and nothing is changed.
  /// The default reads with read_entry and writes with compare_and_swap; a store that can do
  /// both in one step (the memory store: under one shard lock) overrides it.
  virtual bool update_entry(const std::string& session_id, const std::string& name,
                            const std::function<EntryUpdate(const std::optional<Entry>&)>& decide,
                            std::optional<Entry>& found);
  /// What write_fenced() did.
  enum class FencedWrite {
    written,          ///< stored
    fenced_by_other,  ///< another owner's fence is on the entry: nothing changed
    contended,        ///< the entry kept changing between read and write: nothing changed
  };
  /// A blind write (of a value the transaction has not read) in one atomic step: when the entry
  /// is absent or expired, unfenced, or fenced by `owner` already, stores `value` with the next
  /// version (1 for a new value) under `owner`'s fence, whose before-image is the entry found
  /// (or stays what `owner`'s fence held), fenced at `now` for a new fence; `result` = what was
  /// stored and `before` = the fence's before-image as an unfenced entry (none: absent).
  /// Another owner's fence (live, whatever its age: breaking a lease is the caller's slow path)
  /// changes nothing: fenced_by_other, `result` = the entry as stored.
  /// The default goes through update_entry; a store that can do it in one statement (MyISAM on
  /// MariaDB: INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING) or under one lock overrides it.
  virtual FencedWrite write_fenced(const std::string& session_id, const std::string& name,
                                   const std::string& value, const Gtrid& owner, std::int64_t now,
                                   Entry& result, std::optional<Entry>& before);

 protected:
  /// write_fenced's step for a store that holds the entry under a lock: whether `current`
  /// (null: absent or expired) can be written by `owner`; if so `result` is set to what to store
  /// and `before` to the fence's before-image; if not `result` is a copy of `*current`.
  static bool next_fenced(const Entry* current, const std::string& value, const Gtrid& owner,
                          std::int64_t now, Entry& result, std::optional<Entry>& before);

 public:
  /// A commit: drops the fences `owner` holds in `session_ids` (removing its tombstones, which
  /// exist only when `tombstones`: the owner erased a value) and refreshes those sessions'
  /// expiry (unless they expired). Returns how many entries it changed (the memory store: the
  /// fences dropped; a SQL store may also count the rows whose expiry it refreshed, and MyISAM,
  /// which writes the commits of concurrent callers in one batch, counts the whole batch's).
  virtual std::size_t clear_fences(const Gtrid& owner, const std::vector<std::string>& session_ids,
                                   bool tombstones = true) = 0;
  /// Live fenced entries whose owner belongs to `node` (every node: none), for recovery.
  virtual std::vector<FencedEntry> list_fenced(const std::optional<NodeId>& node) = 0;
  /// Live fenced entries of one owner.
  virtual std::vector<FencedEntry> list_fenced_by(const Gtrid& owner) = 0;
};

}  // namespace xact::sessions
