// An in-memory session store: sessions in a hash map split into shards, each with its own lock,
// so requests on different sessions seldom wait for each other. Dies with the process (and the
// compensations with it, which is what an in-memory store's users expect).
//
// Thread-safety: safe from any number of threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <xact/sessions/session_store.hpp>

namespace xact::sessions {

struct MemorySessionStoreOptions {
  std::chrono::microseconds idle_timeout = std::chrono::minutes(30);
  /// Lock shards (rounded up to a power of two).
  std::size_t shards = 64;
  /// The clock (wall-clock microseconds); tests move time by hand with it.
  std::function<std::int64_t()> clock;
};

class MemorySessionStore : public SessionStore {
 public:
  explicit MemorySessionStore(MemorySessionStoreOptions options = {});
  ~MemorySessionStore() override;
  MemorySessionStore(const MemorySessionStore&) = delete;
  MemorySessionStore& operator=(const MemorySessionStore&) = delete;

  std::string describe() const override { return "memory session store"; }
  std::chrono::microseconds idle_timeout() const noexcept override;

  std::optional<std::string> get(const std::string& session_id, const std::string& name) override;
  std::map<std::string, std::string> get_all(const std::string& session_id) override;
  void set(const std::string& session_id, const std::string& name,
           const std::string& value) override;
  void erase(const std::string& session_id, const std::string& name) override;
  bool touch(const std::string& session_id) override;
  void invalidate(const std::string& session_id) override;
  std::size_t sweep_expired() override;

  std::optional<Entry> read_entry(const std::string& session_id, const std::string& name) override;
  std::map<std::string, Entry> read_session(const std::string& session_id) override;
  bool compare_and_swap(const std::string& session_id, const std::string& name,
                        const std::optional<Entry>& seen,
                        const std::optional<Entry>& next) override;
  bool update_entry(const std::string& session_id, const std::string& name,
                    const std::function<EntryUpdate(const std::optional<Entry>&)>& decide,
                    std::optional<Entry>& found) override;
  /// Under one shard lock, without update_entry's callback.
  FencedWrite write_fenced(const std::string& session_id, const std::string& name,
                           const std::string& value, const Gtrid& owner, std::int64_t now,
                           Entry& result, std::optional<Entry>& before) override;
  std::size_t clear_fences(const Gtrid& owner, const std::vector<std::string>& session_ids,
                           bool tombstones = true) override;
  std::vector<FencedEntry> list_fenced(const std::optional<NodeId>& node) override;
  std::vector<FencedEntry> list_fenced_by(const Gtrid& owner) override;

  /// Sessions held now, expired ones not yet swept included.
  std::size_t session_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::sessions
