// The contract of SessionStore::write_fenced (the blind write SessionResource makes in one store
// call), checked the same way for every store: the memory store's override under one lock,
// MyISAM's single INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING, and the default built on
// update_entry. Header-only: include it from a test that links the store.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include <xact/sessions/session_store.hpp>

namespace xact::testing {

/// Checks write_fenced on `store` with fresh session ids. `expire` must make every session
/// written before it expire (advance a clock, or sleep past the idle timeout).
inline void check_write_fenced(sessions::SessionStore& store, const std::function<void()>& expire) {
  using sessions::Entry;
  using FW = sessions::SessionStore::FencedWrite;
  const Gtrid me(NodeId::random(), 1, 1), other(NodeId::random(), 1, 2);
  const std::int64_t t0 = sessions::wall_clock_us();
  Entry result;
  std::optional<Entry> before;

  // Absent: version 1, fenced by me, nothing before.
  const std::string sid = sessions::new_session_id();
  ASSERT_EQ(store.write_fenced(sid, "new", "n1", me, t0, result, before), FW::written);
  EXPECT_EQ(result.value, "n1");
  EXPECT_EQ(result.version, 1u);
  ASSERT_TRUE(result.fence);
  EXPECT_EQ(result.fence->owner, me);
  EXPECT_EQ(result.fence->owner_version, 1u);
  EXPECT_EQ(result.fence->before_value, std::nullopt);
  EXPECT_EQ(result.fence->fenced_at_us, t0);
  EXPECT_EQ(before, std::nullopt);
  EXPECT_EQ(store.read_entry(sid, "new")->fence, result.fence);  // the compensation is stored

  // Unfenced: the stored value becomes the before-image.
  store.set(sid, "k", "v1");
  store.set(sid, "k", "v2");
  ASSERT_EQ(store.write_fenced(sid, "k", "mine", me, t0 + 1, result, before), FW::written);
  EXPECT_EQ(result.version, 3u);
  EXPECT_EQ(result.fence->before_value, "v2");
  EXPECT_EQ(result.fence->before_version, 2u);
  EXPECT_EQ(result.fence->owner_version, 3u);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->value, "v2");
  EXPECT_EQ(before->version, 2u);
  EXPECT_EQ(before->fence, std::nullopt);

  // My own fence: written again, the first before-image and fence time stay.
  ASSERT_EQ(store.write_fenced(sid, "k", "mine2", me, t0 + 2, result, before), FW::written);
  EXPECT_EQ(result.version, 4u);
  EXPECT_EQ(result.fence->before_value, "v2");
  EXPECT_EQ(result.fence->owner_version, 4u);
  EXPECT_EQ(result.fence->fenced_at_us, t0 + 1);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->value, "v2");

  // Another owner's fence: nothing changes, the entry as stored is shown.
  ASSERT_EQ(store.write_fenced(sid, "k", "theirs", other, t0 + 3, result, before),
            FW::fenced_by_other);
  EXPECT_EQ(result.value, "mine2");
  ASSERT_TRUE(result.fence);
  EXPECT_EQ(result.fence->owner, me);
  const std::optional<Entry> stored = store.read_entry(sid, "k");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->value, "mine2");
  EXPECT_EQ(stored->version, 4u);
  EXPECT_EQ(stored->fence->owner, me);

  // An expired session is a new one: its fenced value is replaced as if absent.
  expire();
  ASSERT_EQ(store.write_fenced(sid, "k", "fresh", other, t0 + 4, result, before), FW::written);
  EXPECT_EQ(result.version, 1u);
  EXPECT_EQ(result.fence->owner, other);
  EXPECT_EQ(result.fence->before_value, std::nullopt);
  EXPECT_EQ(before, std::nullopt);
  EXPECT_EQ(store.get(sid, "k"), "fresh");
}

}  // namespace xact::testing
