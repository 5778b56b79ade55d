// The in-memory session store: plain operations, expiry, ids, compare-and-swap, many threads.
#include <xact/sessions/memory_session_store.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include <xact/errors.hpp>
#include <xact/testing/session_store_contract.hpp>

namespace xact::sessions {
namespace {

struct ManualClock {
  std::shared_ptr<std::atomic<std::int64_t>> now =
      std::make_shared<std::atomic<std::int64_t>>(1'000'000'000);
  std::function<std::int64_t()> fn() const {
    return [n = now] { return n->load(); };
  }
  void advance(std::chrono::microseconds d) { *now += d.count(); }
};

MemorySessionStoreOptions opts(const ManualClock& c) {
  MemorySessionStoreOptions o;
  o.idle_timeout = std::chrono::seconds(60);
  o.clock = c.fn();
  return o;
}

TEST(SessionIds, AreSixtyFourHexCharactersAndNeverRepeat) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    std::string id = new_session_id();
    ASSERT_EQ(id.size(), 64u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
    ids.insert(std::move(id));
  }
  EXPECT_EQ(ids.size(), 10000u);
}

TEST(SessionIds, ConsecutiveIdsShareNoPrefix) {
  // Sequential or time-based ids would share a long prefix; random ones almost never do.
  int shared = 0;
  std::string prev = new_session_id();
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_session_id();
    if (id.compare(0, 4, prev, 0, 4) == 0) ++shared;
    prev = id;
  }
  EXPECT_LE(shared, 3);
}

TEST(MemorySessionStore, SetGetEraseAndVersionsBump) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  const std::string sid = new_session_id();
  EXPECT_EQ(store.get(sid, "cart"), std::nullopt);
  store.set(sid, "cart", "a");
  EXPECT_EQ(store.get(sid, "cart"), "a");
  EXPECT_EQ(store.read_entry(sid, "cart")->version, 1u);
  store.set(sid, "cart", "b");
  EXPECT_EQ(store.read_entry(sid, "cart")->version, 2u);
  store.set(sid, "user", "ann");
  EXPECT_EQ(store.get_all(sid),
            (std::map<std::string, std::string>{{"cart", "b"}, {"user", "ann"}}));
  store.erase(sid, "cart");
  EXPECT_EQ(store.get(sid, "cart"), std::nullopt);
  EXPECT_EQ(store.get(sid, "user"), "ann");
}

TEST(MemorySessionStore, UnknownOrExpiredIdReadsAsNewEmptySession) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  EXPECT_TRUE(store.get_all("never-issued").empty());
  EXPECT_FALSE(store.touch("never-issued"));
  const std::string sid = new_session_id();
  store.set(sid, "k", "v");
  clock.advance(std::chrono::seconds(61));
  EXPECT_EQ(store.get(sid, "k"), std::nullopt);
  EXPECT_FALSE(store.touch(sid));
  // Writing to it starts a new session: the old values do not come back.
  store.set(sid, "other", "x");
  EXPECT_EQ(store.get_all(sid), (std::map<std::string, std::string>{{"other", "x"}}));
}

TEST(MemorySessionStore, TouchAndWritesRefreshTheIdleExpiry) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  const std::string sid = new_session_id();
  store.set(sid, "k", "v");
  clock.advance(std::chrono::seconds(50));
  EXPECT_TRUE(store.touch(sid));
  clock.advance(std::chrono::seconds(50));
  EXPECT_EQ(store.get(sid, "k"), "v");
  store.set(sid, "k2", "v2");
  clock.advance(std::chrono::seconds(50));
  EXPECT_EQ(store.get(sid, "k"), "v");
  clock.advance(std::chrono::seconds(11));
  EXPECT_EQ(store.get(sid, "k"), std::nullopt);
}

TEST(MemorySessionStore, InvalidateAndSweepRemoveSessions) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  const std::string a = new_session_id(), b = new_session_id(), c = new_session_id();
  store.set(a, "k", "1");
  store.set(b, "k", "2");
  store.set(b, "j", "3");
  store.invalidate(a);
  EXPECT_EQ(store.get(a, "k"), std::nullopt);
  clock.advance(std::chrono::seconds(30));
  store.set(c, "k", "4");
  clock.advance(std::chrono::seconds(31));
  EXPECT_EQ(store.sweep_expired(), 2u);  // b's two values
  EXPECT_EQ(store.session_count(), 1u);
  EXPECT_EQ(store.get(c, "k"), "4");
}

TEST(MemorySessionStore, CompareAndSwapChecksVersionAndFenceOwner) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  const std::string sid = new_session_id();
  Entry e1{"v1", 1, 0, std::nullopt};
  EXPECT_TRUE(store.compare_and_swap(sid, "k", std::nullopt, e1));
  EXPECT_FALSE(store.compare_and_swap(sid, "k", std::nullopt, e1));  // not absent any more
  Entry stale{"v1", 7, 0, std::nullopt};
  Entry e2{"v2", 2, 0, std::nullopt};
  EXPECT_FALSE(store.compare_and_swap(sid, "k", stale, e2));
  EXPECT_TRUE(store.compare_and_swap(sid, "k", e1, e2));
  EXPECT_EQ(store.get(sid, "k"), "v2");
  // A different fence owner with the same version does not match.
  Entry fenced = e2;
  fenced.fence = Fence{Gtrid(NodeId::random(), 1, 1), 2, "v1", 1, 5};
  EXPECT_FALSE(store.compare_and_swap(sid, "k", fenced, e1));
  EXPECT_TRUE(store.compare_and_swap(sid, "k", e2, std::nullopt));
  EXPECT_EQ(store.read_entry(sid, "k"), std::nullopt);
}

TEST(MemorySessionStore, ClearFencesDropsOwnersFencesAndTombstones) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  const std::string sid = new_session_id();
  const Gtrid me(NodeId::random(), 1, 1), other(NodeId::random(), 1, 2);
  ASSERT_TRUE(store.compare_and_swap(sid, "a", std::nullopt,
                                     Entry{"x", 1, 0, Fence{me, 1, std::nullopt, 0, 1}}));
  ASSERT_TRUE(store.compare_and_swap(sid, "b", std::nullopt,
                                     Entry{std::nullopt, 3, 0, Fence{me, 3, "old", 2, 1}}));
  ASSERT_TRUE(store.compare_and_swap(sid, "c", std::nullopt,
                                     Entry{"y", 1, 0, Fence{other, 1, std::nullopt, 0, 1}}));
  EXPECT_EQ(store.list_fenced(me.node()).size(), 2u);
  EXPECT_EQ(store.list_fenced(std::nullopt).size(), 3u);
  EXPECT_EQ(store.clear_fences(me, {sid}), 2u);
  EXPECT_EQ(store.read_entry(sid, "a")->fence, std::nullopt);
  EXPECT_EQ(store.read_entry(sid, "b"), std::nullopt);
  EXPECT_TRUE(store.read_entry(sid, "c")->fence.has_value());
  EXPECT_TRUE(store.list_fenced_by(me).empty());
}

TEST(MemorySessionStore, BlindFencedWriteUnderOneLockKeepsTheContract) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  testing::check_write_fenced(store, [&] { clock.advance(std::chrono::seconds(61)); });
}

// The default write_fenced (update_entry: read, then compare-and-swap) keeps the same contract.
class DefaultPathStore final : public SessionStore {
 public:
  explicit DefaultPathStore(MemorySessionStore& s) : s_(s) {}
  std::string describe() const override { return "default path"; }
  std::chrono::microseconds idle_timeout() const noexcept override { return s_.idle_timeout(); }
  std::optional<std::string> get(const std::string& a, const std::string& b) override {
    return s_.get(a, b);
  }
  std::map<std::string, std::string> get_all(const std::string& a) override {
    return s_.get_all(a);
  }
  void set(const std::string& a, const std::string& b, const std::string& c) override {
    s_.set(a, b, c);
  }
  void erase(const std::string& a, const std::string& b) override { s_.erase(a, b); }
  bool touch(const std::string& a) override { return s_.touch(a); }
  void invalidate(const std::string& a) override { s_.invalidate(a); }
  std::size_t sweep_expired() override { return s_.sweep_expired(); }
  std::optional<Entry> read_entry(const std::string& a, const std::string& b) override {
    return s_.read_entry(a, b);
  }
  std::map<std::string, Entry> read_session(const std::string& a) override {
    return s_.read_session(a);
  }
  bool compare_and_swap(const std::string& a, const std::string& b,
                        const std::optional<Entry>& seen,
                        const std::optional<Entry>& next) override {
    return s_.compare_and_swap(a, b, seen, next);
  }
  std::size_t clear_fences(const Gtrid& g, const std::vector<std::string>& s, bool t) override {
    return s_.clear_fences(g, s, t);
  }
  std::vector<FencedEntry> list_fenced(const std::optional<NodeId>& n) override {
    return s_.list_fenced(n);
  }
  std::vector<FencedEntry> list_fenced_by(const Gtrid& g) override { return s_.list_fenced_by(g); }

 private:
  MemorySessionStore& s_;
};

TEST(SessionStore, DefaultBlindFencedWriteKeepsTheContract) {
  ManualClock clock;
  MemorySessionStore store(opts(clock));
  DefaultPathStore through_cas(store);
  testing::check_write_fenced(through_cas, [&] { clock.advance(std::chrono::seconds(61)); });
}

TEST(MemorySessionStore, KeysAreChecked) {
  MemorySessionStore store;
  EXPECT_THROW(store.set("", "k", "v"), UsageError);
  EXPECT_THROW(store.set("s", "", "v"), UsageError);
  EXPECT_THROW(store.set(std::string(129, 'a'), "k", "v"), UsageError);
}

TEST(MemorySessionStore, ThousandsOfSessionsFromManyThreads) {
  MemorySessionStore store;
  constexpr int kThreads = 8, kSessions = 500;
  std::vector<std::vector<std::string>> ids(kThreads);
  for (auto& v : ids) {
    for (int i = 0; i < kSessions; ++i) v.push_back(new_session_id());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (const std::string& sid : ids[t]) store.set(sid, "n", std::to_string(round));
      }
      for (const std::string& sid : ids[(t + 1) % kThreads]) (void)store.get(sid, "n");
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& v : ids) {
    for (const std::string& sid : v) ASSERT_EQ(store.get(sid, "n"), "2");
  }
  EXPECT_EQ(store.session_count(), std::size_t{kThreads * kSessions});
}

}  // namespace
}  // namespace xact::sessions
