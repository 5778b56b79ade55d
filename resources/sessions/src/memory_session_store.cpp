#include <xact/sessions/memory_session_store.hpp>

#include <functional>
#include <mutex>
#include <unordered_map>

namespace xact::sessions {
namespace {

struct Session {
  std::map<std::string, Entry> values;
  std::int64_t expires_us = 0;
};

struct Shard {
  mutable std::mutex mu;
  std::unordered_map<std::string, Session> sessions;
};

bool same_owner(const std::optional<Fence>& a, const std::optional<Fence>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || a->owner == b->owner;
}

}  // namespace

struct MemorySessionStore::Impl {
  MemorySessionStoreOptions options;
  std::vector<Shard> shards;
  std::size_t mask = 0;

  explicit Impl(MemorySessionStoreOptions o) : options(std::move(o)) {
    std::size_t n = 1;
    while (n < options.shards) n <<= 1;
    shards = std::vector<Shard>(n);
    mask = n - 1;
    if (!options.clock) options.clock = wall_clock_us;
  }
  std::int64_t now() const { return options.clock(); }
  std::int64_t idle() const { return options.idle_timeout.count(); }
  Shard& shard(const std::string& sid) { return shards[std::hash<std::string>{}(sid)&mask]; }

  // The live session (an expired one is removed first: an expired id is a new session).
  Session* live(Shard& s, const std::string& sid, std::int64_t now) {
    auto it = s.sessions.find(sid);
    if (it == s.sessions.end()) return nullptr;
    if (it->second.expires_us <= now) {
      s.sessions.erase(it);
      return nullptr;
    }
    return &it->second;
  }
  Session& live_or_new(Shard& s, const std::string& sid, std::int64_t now) {
    if (Session* x = live(s, sid, now)) return *x;
    Session& fresh = s.sessions[sid];
    fresh.expires_us = now + idle();
    return fresh;
  }
  static Entry with_expiry(Entry e, const Session& s) {
    e.expires_us = s.expires_us;
    return e;
  }
};

MemorySessionStore::MemorySessionStore(MemorySessionStoreOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
MemorySessionStore::~MemorySessionStore() = default;

std::chrono::microseconds MemorySessionStore::idle_timeout() const noexcept {
  return impl_->options.idle_timeout;
}

std::optional<std::string> MemorySessionStore::get(const std::string& sid,
                                                   const std::string& name) {
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  Session* session = impl_->live(s, sid, impl_->now());
  if (!session) return std::nullopt;
  auto it = session->values.find(name);
  if (it == session->values.end()) return std::nullopt;
  return it->second.value;
}

std::map<std::string, std::string> MemorySessionStore::get_all(const std::string& sid) {
  std::map<std::string, std::string> out;
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  if (Session* session = impl_->live(s, sid, impl_->now())) {
    for (const auto& [name, e] : session->values) {
      if (e.value) out.emplace(name, *e.value);
    }
  }
  return out;
}

void MemorySessionStore::set(const std::string& sid, const std::string& name,
                             const std::string& value) {
  check_key(sid, name);
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  const std::int64_t now = impl_->now();
  Session& session = impl_->live_or_new(s, sid, now);
  Entry& e = session.values[name];
  e.value = value;
  e.version += 1;
  e.fence.reset();
  session.expires_us = now + impl_->idle();
}

void MemorySessionStore::erase(const std::string& sid, const std::string& name) {
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  const std::int64_t now = impl_->now();
  if (Session* session = impl_->live(s, sid, now)) {
    session->values.erase(name);
    session->expires_us = now + impl_->idle();
  }
}

bool MemorySessionStore::touch(const std::string& sid) {
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  const std::int64_t now = impl_->now();
  Session* session = impl_->live(s, sid, now);
  if (!session) return false;
  session->expires_us = now + impl_->idle();
  return true;
}

void MemorySessionStore::invalidate(const std::string& sid) {
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  s.sessions.erase(sid);
}

std::size_t MemorySessionStore::sweep_expired() {
  std::size_t removed = 0;
  const std::int64_t now = impl_->now();
  for (Shard& s : impl_->shards) {
    std::lock_guard lock(s.mu);
    for (auto it = s.sessions.begin(); it != s.sessions.end();) {
      if (it->second.expires_us <= now) {
        removed += it->second.values.size();
        it = s.sessions.erase(it);
      } else {
        ++it;
      }
    }
  }
  return removed;
}

std::optional<Entry> MemorySessionStore::read_entry(const std::string& sid,
                                                    const std::string& name) {
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  Session* session = impl_->live(s, sid, impl_->now());
  if (!session) return std::nullopt;
  auto it = session->values.find(name);
  if (it == session->values.end()) return std::nullopt;
  return Impl::with_expiry(it->second, *session);
}

std::map<std::string, Entry> MemorySessionStore::read_session(const std::string& sid) {
  std::map<std::string, Entry> out;
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  if (Session* session = impl_->live(s, sid, impl_->now())) {
    for (const auto& [name, e] : session->values) out.emplace(name, Impl::with_expiry(e, *session));
  }
  return out;
}

bool MemorySessionStore::compare_and_swap(const std::string& sid, const std::string& name,
                                          const std::optional<Entry>& seen,
                                          const std::optional<Entry>& next) {
  check_key(sid, name);
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  const std::int64_t now = impl_->now();
  Session* session = impl_->live(s, sid, now);
  Entry* current = nullptr;
  if (session) {
    auto it = session->values.find(name);
    if (it != session->values.end()) current = &it->second;
  }
  if (seen.has_value() != (current != nullptr)) return false;
  if (current && (current->version != seen->version || !same_owner(current->fence, seen->fence))) {
    return false;
  }
  if (!next) {
    if (current) session->values.erase(name);
    return true;
  }
  Session& target = session ? *session : impl_->live_or_new(s, sid, now);
  Entry stored = *next;
  stored.expires_us = 0;  // the session's expiry is the one that counts
  target.values[name] = std::move(stored);
  return true;
}

bool MemorySessionStore::update_entry(
    const std::string& sid, const std::string& name,
    const std::function<EntryUpdate(const std::optional<Entry>&)>& decide,
    std::optional<Entry>& found) {
  check_key(sid, name);
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);  // read, decide and write under one lock: nothing can come between
  const std::int64_t now = impl_->now();
  Session* session = impl_->live(s, sid, now);
  Entry* current = nullptr;
  if (session) {
    auto it = session->values.find(name);
    if (it != session->values.end()) {
      current = &it->second;
      found = Impl::with_expiry(*current, *session);
    }
  }
  if (!current) found.reset();
  EntryUpdate u = decide(found);
  switch (u.kind) {
    case EntryUpdate::Kind::keep: break;
    case EntryUpdate::Kind::remove:
      if (current) session->values.erase(name);
      break;
    case EntryUpdate::Kind::store:
      u.next.expires_us = 0;  // the session's expiry is the one that counts
      if (current) {
        *current = std::move(u.next);
      } else {
        Session& target = session ? *session : impl_->live_or_new(s, sid, now);
        target.values[name] = std::move(u.next);
      }
      break;
  }
  return true;
}

SessionStore::FencedWrite MemorySessionStore::write_fenced(
    const std::string& sid, const std::string& name, const std::string& value, const Gtrid& owner,
    std::int64_t now, Entry& result, std::optional<Entry>& before) {
  check_key(sid, name);
  Shard& s = impl_->shard(sid);
  std::lock_guard lock(s.mu);
  const std::int64_t stamp = impl_->now();
  Session& session = impl_->live_or_new(s, sid, stamp);
  auto [it, inserted] = session.values.try_emplace(name);
  if (!next_fenced(inserted ? nullptr : &it->second, value, owner, now, result, before)) {
    result.expires_us = session.expires_us;
    return FencedWrite::fenced_by_other;
  }
  it->second = result;
  it->second.expires_us = 0;  // the session's expiry is the one that counts
  result.expires_us = session.expires_us;
  return FencedWrite::written;
}

std::size_t MemorySessionStore::clear_fences(const Gtrid& owner,
                                             const std::vector<std::string>& session_ids,
                                             bool /*tombstones: found while scanning anyway*/) {
  std::size_t cleared = 0;
  const std::int64_t now = impl_->now();
  for (const std::string& sid : session_ids) {
    Shard& s = impl_->shard(sid);
    std::lock_guard lock(s.mu);
    Session* session = impl_->live(s, sid, now);
    if (!session) continue;
    for (auto it = session->values.begin(); it != session->values.end();) {
      Entry& e = it->second;
      if (e.fence && e.fence->owner == owner) {
        ++cleared;
        if (!e.value) {
          it = session->values.erase(it);
          continue;
        }
        e.fence.reset();
      }
      ++it;
    }
    session->expires_us = now + impl_->idle();
  }
  return cleared;
}

std::vector<FencedEntry> MemorySessionStore::list_fenced(const std::optional<NodeId>& node) {
  std::vector<FencedEntry> out;
  const std::int64_t now = impl_->now();
  for (Shard& s : impl_->shards) {
    std::lock_guard lock(s.mu);
    for (const auto& [sid, session] : s.sessions) {
      if (session.expires_us <= now) continue;
      for (const auto& [name, e] : session.values) {
        if (e.fence && (!node || e.fence->owner.node() == *node)) {
          out.push_back({sid, name, Impl::with_expiry(e, session)});
        }
      }
    }
  }
  return out;
}

std::vector<FencedEntry> MemorySessionStore::list_fenced_by(const Gtrid& owner) {
  std::vector<FencedEntry> out;
  for (FencedEntry& f : list_fenced(owner.node())) {
    if (f.entry.fence->owner == owner) out.push_back(std::move(f));
  }
  return out;
}

std::size_t MemorySessionStore::session_count() const {
  std::size_t n = 0;
  for (const Shard& s : impl_->shards) {
    std::lock_guard lock(s.mu);
    n += s.sessions.size();
  }
  return n;
}

}  // namespace xact::sessions
