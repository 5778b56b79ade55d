#include <xact/sessions/session_resource.hpp>

#include <algorithm>
#include <any>
#include <set>
#include <utility>

#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/transaction.hpp>

namespace xact::sessions {
namespace {

using Key = std::pair<std::string, std::string>;

// Session ids are bearer secrets: messages and heuristic records show only a prefix.
std::string short_id(const std::string& sid) {
  return sid.size() <= 8 ? sid : sid.substr(0, 8) + "...";
}

std::string where(const std::string& sid, const std::string& name) {
  return "session " + short_id(sid) + " value '" + name + "'";
}

// What a transaction other than `me` may see of an entry: the before-image of a value another
// unfinished transaction wrote, the stored value otherwise.
std::optional<std::string> view(const std::optional<Entry>& e, const Gtrid& me) {
  if (!e) return std::nullopt;
  if (e->fence && e->fence->owner != me) return e->fence->before_value;
  return e->value;
}

// The value (none: absent) an entry stands for, tombstones read as absent.
std::optional<std::string> value_of(const std::optional<Entry>& e) {
  return e ? e->value : std::nullopt;
}

constexpr int kCasAttempts = 8;

}  // namespace

struct SessionResource::TxnState {
  struct Undo {
    std::string sid;
    std::string name;
    Entry written;              // what this write stored
    std::optional<Entry> prev;  // what it replaced (none: absent)
  };
  Gtrid gtrid;
  std::map<Key, std::optional<Entry>> seen;  // the CAS token per value: read or written
  std::vector<Undo> undo;
  std::vector<std::string> heuristics;
  // A write's store call failed (the store out of reach): that write may have landed, fenced
  // by this transaction but not in `undo`. The transaction is doomed, and its end compensates
  // whatever this owner still fences in the store.
  bool uncertain = false;
};

namespace {

class SessionSavepoint final : public ResourceSavepoint {
 public:
  SessionSavepoint(std::shared_ptr<SessionResource> rm,
                   std::shared_ptr<SessionResource::TxnState> st,
                   std::function<void(SessionResource::TxnState&, std::size_t)> undo)
      : rm_(std::move(rm)),
        st_(std::move(st)),
        mark_(st_->undo.size()),
        seen_(st_->seen),
        undo_(std::move(undo)) {}
  void rollback() override {
    undo_(*st_, mark_);
    st_->seen = seen_;
  }

 private:
  std::shared_ptr<SessionResource> rm_;
  std::shared_ptr<SessionResource::TxnState> st_;
  std::size_t mark_;
  std::map<Key, std::optional<Entry>> seen_;
  std::function<void(SessionResource::TxnState&, std::size_t)> undo_;
};

}  // namespace

std::shared_ptr<SessionResource> SessionResource::create(std::shared_ptr<SessionStore> store,
                                                         SessionResourceOptions options) {
  if (!store) throw UsageError("SessionResource::create: no store");
  check_branch_name(options.name);
  return std::shared_ptr<SessionResource>(
      new SessionResource(std::move(store), std::move(options)));
}

SessionResource::SessionResource(std::shared_ptr<SessionStore> store,
                                 SessionResourceOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

SessionResource::~SessionResource() = default;

SessionResource::TxnState& SessionResource::state(Transaction& txn) {
  std::any& slot = txn.data(this);
  if (!slot.has_value()) {
    auto st = std::make_shared<TxnState>();
    st->gtrid = txn.gtrid();
    slot = std::move(st);
  }
  return *std::any_cast<std::shared_ptr<TxnState>&>(slot);
}

SessionResource::TxnState* SessionResource::find_state(Transaction& txn) noexcept {
  std::any* slot = txn.find_data(this);
  if (!slot || !slot->has_value()) return nullptr;
  auto* p = std::any_cast<std::shared_ptr<TxnState>>(slot);
  return p ? p->get() : nullptr;
}

std::optional<Entry> SessionResource::observe(TxnState& st, const std::string& sid,
                                              const std::string& name) {
  const Key key{sid, name};
  auto it = st.seen.find(key);
  if (it != st.seen.end()) return it->second;
  std::optional<Entry> e = store_->read_entry(sid, name);
  st.seen.emplace(key, e);
  return e;
}

void SessionResource::join_for_retry(Transaction& txn) noexcept {
  if (!store_->is_transient(std::current_exception())) return;
  try {
    txn.join(shared_from_this());
  } catch (...) {  // past the decision: nothing to retry
  }
}

std::optional<std::string> SessionResource::get(Transaction& txn, const std::string& sid,
                                                const std::string& name) {
  check_key(sid, name);
  TxnState& st = state(txn);
  try {
    return view(observe(st, sid, name), st.gtrid);
  } catch (...) {
    join_for_retry(txn);
    throw;
  }
}

std::map<std::string, std::string> SessionResource::get_all(Transaction& txn,
                                                            const std::string& sid) {
  TxnState& st = state(txn);
  std::map<std::string, Entry> stored;
  try {
    stored = store_->read_session(sid);
  } catch (...) {
    join_for_retry(txn);
    throw;
  }
  std::map<std::string, std::string> out;
  for (auto& [name, e] : stored) {
    const Key key{sid, name};
    auto it = st.seen.find(key);
    std::optional<std::string> v = view(it != st.seen.end() ? it->second : e, st.gtrid);
    if (it == st.seen.end()) st.seen.emplace(key, e);
    if (v) out.emplace(name, std::move(*v));
  }
  // Values this transaction saw or wrote that the store no longer lists stay as it saw them.
  for (const auto& [key, e] : st.seen) {
    if (key.first != sid || out.count(key.second)) continue;
    if (std::optional<std::string> v = view(e, st.gtrid)) out.emplace(key.second, std::move(*v));
  }
  return out;
}

void SessionResource::set(Transaction& txn, const std::string& sid, const std::string& name,
                          const std::string& value) {
  write(txn, sid, name, value);
}

void SessionResource::erase(Transaction& txn, const std::string& sid, const std::string& name) {
  write(txn, sid, name, std::nullopt);
}

namespace {

// Whether the store's entry is still the one a transaction read (presence, version, fence owner).
bool unchanged(const std::optional<Entry>& now, const std::optional<Entry>& seen) {
  if (now.has_value() != seen.has_value()) return false;
  if (!now) return true;
  if (now->version != seen->version || now->fence.has_value() != seen->fence.has_value()) {
    return false;
  }
  return !now->fence || now->fence->owner == seen->fence->owner;
}

}  // namespace

void SessionResource::write(Transaction& txn, const std::string& sid, const std::string& name,
                            std::optional<std::string> value) {
  check_key(sid, name);
  // Joined before the write lands, so every path out of the transaction undoes it.
  txn.join(shared_from_this());
  TxnState& st = state(txn);
  Key key{sid, name};
  auto seen_it = st.seen.find(key);
  const bool was_read = seen_it != st.seen.end();
  const std::int64_t now = wall_clock_us();
  // The checks on an entry: another unfinished transaction's fence -> ConflictError (unless
  // older than the lease: then it is broken); erasing what is absent changes nothing.
  std::optional<Gtrid> broken;
  auto conflict_or_noop = [&](const std::optional<Entry>& cur) {
    broken.reset();
    if (cur && cur->fence && cur->fence->owner != st.gtrid) {
      if (now - cur->fence->fenced_at_us < options_.fence_lease.count()) {
        throw ConflictError(where(sid, name) + " in '" + options_.name +
                            "' was written by transaction " + cur->fence->owner.to_hex() +
                            ", which has not finished: retry the transaction");
      }
      broken = cur->fence->owner;
    }
    // Erasing what is absent (or already erased by this transaction) changes nothing.
    return !value && !value_of(cur) && (!cur || (cur->fence && cur->fence->owner == st.gtrid));
  };
  if (was_read && conflict_or_noop(seen_it->second)) return;

  // A store call that fails for another reason than a conflict may have written: note it.
  auto store_call = [&](auto&& call) {
    try {
      return call();
    } catch (const TransientError&) {
      throw;  // a conflict found by this resource's own checks: nothing was written
    } catch (...) {
      if (!st.uncertain) {
        st.uncertain = true;
        // A commit must not keep what the failed call may have written. (join() above refused a
        // transaction past its decision, the only state in which doom() throws.)
        txn.doom();
      }
      throw;
    }
  };

  // A blind write of a value: one store call that checks the fence and writes (the memory store
  // under one lock, MyISAM on MariaDB one statement). Another transaction's fence: ConflictError,
  // or, past its lease, the general path below breaks it.
  if (!was_read && value) {
    Entry written;
    std::optional<Entry> before;
    switch (store_call(
        [&] { return store_->write_fenced(sid, name, *value, st.gtrid, now, written, before); })) {
      case SessionStore::FencedWrite::written:
        st.undo.push_back({sid, name, written, std::move(before)});
        st.seen.emplace(std::move(key), std::move(written));
        return;
      case SessionStore::FencedWrite::contended:
        throw ConflictError(where(sid, name) + " in '" + options_.name +
                            "' kept changing under this write: retry the transaction");
      case SessionStore::FencedWrite::fenced_by_other:
        conflict_or_noop(written);  // throws unless the fence outlived its lease
        break;
    }
  }

  // One store call. A value this transaction read: a compare-and-set against the version read
  // (for MyISAM one UPDATE, no SELECT). A blind erase, or a blind write breaking a fence past
  // its lease: update_entry reads, checks and writes (the memory store under one lock; MyISAM
  // a SELECT and the compare-and-set).
  Entry next;
  auto decide = [&](const std::optional<Entry>& cur) -> EntryUpdate {
    if (was_read && !unchanged(cur, seen_it->second)) {
      throw ConflictError(where(sid, name) + " in '" + options_.name +
                          "' changed since this transaction read it: retry the transaction");
    }
    if (conflict_or_noop(cur)) return {};
    next.value = value;
    next.version = (cur ? cur->version : 0) + 1;
    Fence fence;
    if (cur && cur->fence && cur->fence->owner == st.gtrid) {
      fence = *cur->fence;
    } else {
      fence.owner = st.gtrid;
      fence.before_value = value_of(cur);
      fence.before_version = cur && cur->value ? cur->version : 0;
      fence.fenced_at_us = now;
    }
    fence.owner_version = next.version;
    next.fence = std::move(fence);
    return {EntryUpdate::Kind::store, next};
  };
  std::optional<Entry> cur;
  bool stored = false;
  if (was_read) {
    cur = seen_it->second;
    const EntryUpdate u = decide(cur);
    if (u.kind == EntryUpdate::Kind::store) {
      if (!store_call([&] { return store_->compare_and_swap(sid, name, cur, u.next); })) {
        throw ConflictError(where(sid, name) + " in '" + options_.name +
                            "' changed since this transaction read it: retry the transaction");
      }
      stored = true;
    }
  } else {
    auto decide_and_note = [&](const std::optional<Entry>& c) {
      EntryUpdate u = decide(c);
      stored = u.kind == EntryUpdate::Kind::store;
      return u;
    };
    // Through a one-pointer closure: std::function keeps it without an allocation.
    auto fn = [&decide_and_note](const std::optional<Entry>& c) { return decide_and_note(c); };
    if (!store_call([&] { return store_->update_entry(sid, name, fn, cur); })) {
      throw ConflictError(where(sid, name) + " in '" + options_.name +
                          "' kept changing under this write: retry the transaction");
    }
  }
  if (!stored) return;
  st.undo.push_back({sid, name, next, std::move(cur)});
  if (was_read) {
    seen_it->second = std::move(next);
  } else {
    st.seen.emplace(std::move(key), std::move(next));
  }
  if (broken) {
    record_heuristic(*broken, "heuristic commit",
                     where(sid, name) + ": its fence (older than the lease of " +
                         std::to_string(options_.fence_lease.count() / 1000000) +
                         " s) was broken by transaction " + st.gtrid.to_hex() +
                         "; its value was kept as the base of that write");
  }
}

void SessionResource::compensate(const Gtrid& owner, const std::string& sid,
                                 const std::string& name, const Entry& written,
                                 const std::optional<Entry>& prev,
                                 std::vector<std::string>& heuristics) {
  // What to store back: the previous entry as it was, except that a tombstone or a fence of
  // another owner (a fence this transaction broke) is not brought back.
  std::optional<Entry> restore = prev;
  if (restore && restore->fence && restore->fence->owner != owner) restore->fence.reset();
  if (restore && !restore->value && !restore->fence) restore.reset();
  const std::optional<std::string> before = restore ? restore->value : std::nullopt;

  for (int attempt = 0; attempt < kCasAttempts; ++attempt) {
    std::optional<Entry> cur = store_->read_entry(sid, name);
    const bool mine = cur && cur->fence && cur->fence->owner == owner;
    if (mine && cur->version == written.version) {
      if (store_->compare_and_swap(sid, name, cur, restore)) return;
      continue;
    }
    if (!cur) {
      if (!before) return;  // absent before, absent now
      // The whole session is gone: it expired or was invalidated. Never revive it.
      if (store_->read_session(sid).empty()) return;
      heuristics.push_back(
          where(sid, name) + ": this transaction wrote version " + std::to_string(written.version) +
          "; found it removed by a writer outside xact; the before-image (version " +
          std::to_string(prev ? prev->version : 0) + ") was not restored");
      return;
    }
    if (cur->value == before) {
      if (mine) {  // equal already, but still fenced by this transaction: drop the fence
        std::optional<Entry> unfenced = cur;
        unfenced->fence = restore ? restore->fence : std::nullopt;
        if (!store_->compare_and_swap(sid, name, cur, unfenced)) continue;
      }
      return;
    }
    if (mine) {  // someone changed it under this transaction's fence: keep it, drop the fence
      std::optional<Entry> unfenced = cur;
      unfenced->fence.reset();
      if (!unfenced->value) unfenced.reset();
      if (!store_->compare_and_swap(sid, name, cur, unfenced)) continue;
    }
    const std::string who =
        cur->fence ? (cur->fence->owner == owner ? "another write under this transaction's fence"
                                                 : "transaction " + cur->fence->owner.to_hex())
                   : "a writer outside xact";
    heuristics.push_back(where(sid, name) + ": this transaction wrote version " +
                         std::to_string(written.version) + "; found version " +
                         std::to_string(cur->version) + " written by " + who +
                         "; left as found, the before-image (version " +
                         std::to_string(prev ? prev->version : 0) + ") was not restored");
    return;
  }
  heuristics.push_back(where(sid, name) +
                       ": kept changing while this transaction undid its "
                       "write of version " +
                       std::to_string(written.version) + "; left as found");
}

void SessionResource::undo_from(TxnState& st, std::size_t from) {
  while (st.undo.size() > from) {
    const TxnState::Undo& u = st.undo.back();
    compensate(st.gtrid, u.sid, u.name, u.written, u.prev, st.heuristics);
    st.undo.pop_back();
  }
}

void SessionResource::record_heuristic(const Gtrid& gtrid, const std::string& outcome,
                                       const std::string& detail) noexcept {
  try {
    detail::count(detail::Counter::heuristics);
    log(LogLevel::error, "heuristic outcome on resource '" + options_.name + "' for " +
                             gtrid.to_hex() + ": " + detail);
    if (options_.decision_log) {
      HeuristicRecord h;
      h.gtrid = gtrid;
      h.resource = options_.name;
      h.bqual = options_.name;
      h.outcome = outcome;
      h.detail = detail;
      options_.decision_log->log_heuristic(h);
    }
  } catch (...) {
    log(LogLevel::error, "resource '" + options_.name +
                             "' could not record a heuristic outcome in the decision log: " +
                             error_message(std::current_exception()) + "; it was: " + detail);
  }
}

void SessionResource::finish_state(Transaction& txn) noexcept {
  TxnState* st = find_state(txn);
  if (!st) return;
  if (!st->heuristics.empty()) {
    std::string detail;
    for (const std::string& h : st->heuristics) detail += (detail.empty() ? "" : "; ") + h;
    // Found while undoing this live transaction's writes (abort, tpc_abort or a savepoint's
    // rollback): the transaction records it in its manager's decision log and lists it in
    // Transaction::heuristics(); without a manager log, in this resource's own.
    txn.report_heuristic(*this, detail, Outcome::heuristic_mixed);
    if (!txn.heuristics().empty() && !txn.heuristics().back().recorded && options_.decision_log) {
      record_heuristic(st->gtrid, "heuristic mixed", detail);
    }
    st->heuristics.clear();
  }
  if (std::any* slot = txn.find_data(this)) slot->reset();
}

void SessionResource::roll_back(Transaction& txn) noexcept {
  TxnState* st = find_state(txn);
  if (!st) return;
  try {
    undo_from(*st, 0);
    if (st->uncertain) compensate_fenced(st->gtrid, st->heuristics);
  } catch (...) {
    // Logged by the transaction, whose re-driver then compensates by id (rollback_prepared)
    // as soon as the store answers; recovery does after a restart.
    txn.report_rollback_failure(
        *this, "could not undo the session writes of transaction " + st->gtrid.to_hex() + " (" +
                   error_message(std::current_exception()) + "); their fences stay in " +
                   store_->describe() + " with the before-images until they are compensated");
  }
  finish_state(txn);
}

void SessionResource::abort(Transaction& txn) noexcept { roll_back(txn); }
void SessionResource::tpc_abort(Transaction& txn) noexcept { roll_back(txn); }
void SessionResource::tpc_begin(Transaction&) {}
void SessionResource::commit(Transaction&) {}

Vote SessionResource::tpc_vote(Transaction& txn) {
  TxnState* st = find_state(txn);
  if (st && !st->undo.empty()) return Vote::yes;  // every write already carries its undo
  finish_state(txn);
  return Vote::read_only;
}

void SessionResource::tpc_finish(Transaction& txn) {
  TxnState* st = find_state(txn);
  if (!st) return;
  if (!st->undo.empty()) {
    std::vector<std::string> sessions;  // usually one: a linear search beats a set
    bool erased = false;
    for (const auto& u : st->undo) {
      if (std::find(sessions.begin(), sessions.end(), u.sid) == sessions.end()) {
        sessions.push_back(u.sid);
      }
      erased = erased || !u.written.value;
    }
    store_->clear_fences(st->gtrid, sessions, erased);
    st->undo.clear();
  }
  finish_state(txn);
}

std::unique_ptr<ResourceSavepoint> SessionResource::savepoint(Transaction& txn) {
  state(txn);
  auto st = std::any_cast<std::shared_ptr<TxnState>>(*txn.find_data(this));
  auto self = shared_from_this();
  return std::make_unique<SessionSavepoint>(
      self, std::move(st),
      [raw = self.get()](TxnState& s, std::size_t mark) { raw->undo_from(s, mark); });
}

std::vector<Xid> SessionResource::recover(const NodeId& node) {
  std::set<Gtrid> owners;
  for (const FencedEntry& f : store_->list_fenced(node)) owners.insert(f.entry.fence->owner);
  std::vector<Xid> out;
  for (const Gtrid& g : owners) out.push_back(Xid{Xid::kFormatId, g, options_.name});
  return out;
}

std::vector<Xid> SessionResource::recover_all_nodes() {
  std::set<Gtrid> owners;
  for (const FencedEntry& f : store_->list_fenced(std::nullopt)) {
    owners.insert(f.entry.fence->owner);
  }
  std::vector<Xid> out;
  for (const Gtrid& g : owners) out.push_back(Xid{Xid::kFormatId, g, options_.name});
  return out;
}

RecoverableResource::Outcome SessionResource::commit_prepared(const Xid& xid) {
  std::set<std::string> sessions;
  for (const FencedEntry& f : store_->list_fenced_by(xid.gtrid)) sessions.insert(f.session_id);
  if (sessions.empty()) return Outcome::unknown_id;
  store_->clear_fences(xid.gtrid, {sessions.begin(), sessions.end()});
  return Outcome::done;
}

bool SessionResource::compensate_fenced(const Gtrid& owner, std::vector<std::string>& heuristics) {
  std::vector<FencedEntry> fenced = store_->list_fenced_by(owner);
  for (const FencedEntry& f : fenced) {
    const Fence& fence = *f.entry.fence;
    // What the owner's last write stored is the fence's owner_version, whatever is there now.
    Entry written = f.entry;
    written.version = fence.owner_version;
    compensate(owner, f.session_id, f.name, written, before_image(fence), heuristics);
  }
  return !fenced.empty();
}

bool SessionResource::should_retry(const std::exception_ptr& error) const noexcept {
  return store_->is_transient(error);
}

RecoverableResource::Outcome SessionResource::rollback_prepared(const Xid& xid) {
  std::vector<std::string> heuristics;
  if (!compensate_fenced(xid.gtrid, heuristics)) return Outcome::unknown_id;
  if (!heuristics.empty()) {
    std::string detail = "recovery (presumed abort): ";
    for (std::size_t i = 0; i < heuristics.size(); ++i) detail += (i ? "; " : "") + heuristics[i];
    record_heuristic(xid.gtrid, "heuristic mixed", detail);
  }
  return Outcome::done;
}

}  // namespace xact::sessions
