#include <xact/sessions/session_store.hpp>

#include <sys/random.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <xact/errors.hpp>

namespace xact::sessions {

std::int64_t wall_clock_us() noexcept {
  // The coarse clock (the kernel's last tick, a few milliseconds) is plenty for idle timeouts
  // and fence leases counted in minutes, and reading it is a memory load: the precise clock
  // cost a third of a session write's time on this VM (bench/README.md).
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

std::string new_session_id() {
  unsigned char raw[32];
  std::size_t got = 0;
  while (got < sizeof raw) {
    const ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ResourceError(std::string("new_session_id: getrandom failed: ") + std::strerror(errno) +
                          "; the kernel's random source is needed");
    }
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(64);
  for (unsigned char c : raw) {
    id.push_back(kHex[c >> 4]);
    id.push_back(kHex[c & 15]);
  }
  return id;
}

void check_key(const std::string& session_id, const std::string& name) {
  if (session_id.empty() || session_id.size() > 128) {
    throw UsageError("session id must be 1 to 128 bytes (got " + std::to_string(session_id.size()) +
                     "); use new_session_id()");
  }
  if (name.empty() || name.size() > 255) {
    throw UsageError("session value name must be 1 to 255 bytes (got " +
                     std::to_string(name.size()) + ")");
  }
}

bool SessionStore::update_entry(
    const std::string& session_id, const std::string& name,
    const std::function<EntryUpdate(const std::optional<Entry>&)>& decide,
    std::optional<Entry>& found) {
  constexpr int kAttempts = 8;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    found = read_entry(session_id, name);
    EntryUpdate u = decide(found);
    switch (u.kind) {
      case EntryUpdate::Kind::keep: return true;
      case EntryUpdate::Kind::remove:
        if (compare_and_swap(session_id, name, found, std::nullopt)) return true;
        break;
      case EntryUpdate::Kind::store:
        if (compare_and_swap(session_id, name, found, u.next)) return true;
        break;
    }
  }
  return false;
}

std::optional<Entry> before_image(const Fence& fence) {
  if (!fence.before_value) return std::nullopt;
  return Entry{fence.before_value, fence.before_version, 0, {}};
}

bool SessionStore::next_fenced(const Entry* current, const std::string& value, const Gtrid& owner,
                               std::int64_t now, Entry& result, std::optional<Entry>& before) {
  if (current && current->fence && current->fence->owner != owner) {
    result = *current;
    return false;
  }
  Fence fence;
  if (current && current->fence) {  // owner's own fence: its before-image stays
    fence = *current->fence;
  } else {
    fence.owner = owner;
    if (current) {  // unfenced entries are never tombstones
      fence.before_value = current->value;
      fence.before_version = current->version;
    }
    fence.fenced_at_us = now;
  }
  before = before_image(fence);
  result.value = value;
  result.version = (current ? current->version : 0) + 1;
  result.expires_us = current ? current->expires_us : 0;
  fence.owner_version = result.version;
  result.fence = std::move(fence);
  return true;
}

SessionStore::FencedWrite SessionStore::write_fenced(const std::string& session_id,
                                                     const std::string& name,
                                                     const std::string& value, const Gtrid& owner,
                                                     std::int64_t now, Entry& result,
                                                     std::optional<Entry>& before) {
  bool written = false;
  auto decide = [&](const std::optional<Entry>& current) -> EntryUpdate {
    written = next_fenced(current ? &*current : nullptr, value, owner, now, result, before);
    if (!written) return {};
    return {EntryUpdate::Kind::store, result};
  };
  std::optional<Entry> found;
  if (!update_entry(session_id, name, decide, found)) return FencedWrite::contended;
  return written ? FencedWrite::written : FencedWrite::fenced_by_other;
}

}  // namespace xact::sessions
