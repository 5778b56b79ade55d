// The decision log's byte format (coordinator/src/decision_log_format.hpp).
#include "decision_log_format.hpp"

#include <gtest/gtest.h>

#include <xact/errors.hpp>

namespace xact::detail::dlog {
namespace {

CommitRecord sample() {
  CommitRecord r;
  r.gtrid = Gtrid(NodeId::random(), 3, 99);
  r.time_us = 1'700'000'000'123'456;
  r.participants = {{"pg:orders", std::string("b\0q", 3)}, {"", ""}, {"objects", "objects"}};
  return r;
}

TEST(DecisionLogFormat, CommitEntryRoundTrips) {
  const CommitRecord r = sample();
  std::string entry;
  append_commit_entry(entry, r);
  EXPECT_EQ(decode_commit_entry(entry), r);
}

TEST(DecisionLogFormat, TruncatedOrPaddedCommitEntryIsRejected) {
  std::string entry;
  append_commit_entry(entry, sample());
  for (std::size_t n = 0; n < entry.size(); ++n) {
    EXPECT_FALSE(decode_commit_entry(entry.substr(0, n))) << n;
  }
  EXPECT_FALSE(decode_commit_entry(entry + "x"));
}

TEST(DecisionLogFormat, CommitEntryNeedsAGtridAndShortNames) {
  std::string out;
  CommitRecord r = sample();
  r.gtrid = Gtrid();
  EXPECT_THROW(append_commit_entry(out, r), UsageError);
  r = sample();
  r.participants[0].resource.assign(70'000, 'r');
  EXPECT_THROW(append_commit_entry(out, r), UsageError);
}

TEST(DecisionLogFormat, DoneEntryHasAFixedSize) {
  std::string out;
  append_done_entry(out, Gtrid(NodeId{}, 1, 2));
  EXPECT_EQ(out.size(), kDoneEntrySize);
}

TEST(DecisionLogFormat, BatchVisitsEveryEntryInOrder) {
  const CommitRecord a = sample();
  const CommitRecord b = sample();
  std::string payload;
  append_commit_entry(payload, a);
  append_done_entry(payload, a.gtrid);
  append_commit_entry(payload, b);
  std::vector<std::pair<EntryKind, Gtrid>> seen;
  const std::string error =
      decode_batch(payload, [&](EntryKind kind, const Gtrid& g, std::string_view entry) {
        seen.emplace_back(kind, g);
        if (kind == EntryKind::kCommit) {
          EXPECT_EQ(decode_commit_entry(entry)->gtrid, g);
        }
      });
  EXPECT_EQ(error, "");
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::pair(EntryKind::kCommit, a.gtrid));
  EXPECT_EQ(seen[1], std::pair(EntryKind::kDone, a.gtrid));
  EXPECT_EQ(seen[2], std::pair(EntryKind::kCommit, b.gtrid));
}

TEST(DecisionLogFormat, UnknownEntryKindIsAnErrorNotSkipped) {
  std::string payload;
  append_done_entry(payload, Gtrid(NodeId{}, 1, 2));
  payload[0] = 9;
  EXPECT_NE(decode_batch(payload, [](auto, auto&, auto) {}).find("unknown entry kind 9"),
            std::string::npos);
}

TEST(DecisionLogFormat, TruncatedBatchIsAnError) {
  std::string payload;
  append_commit_entry(payload, sample());
  EXPECT_NE(decode_batch(payload.substr(0, payload.size() - 1), [](auto, auto&, auto) {}), "");
}

TEST(DecisionLogFormat, HeaderRoundTripsAndRejectsOtherVersions) {
  const SegmentHeader h{NodeId::random(), 7, 42, 8u << 20};
  const std::string encoded = encode_header(h);
  const auto decoded = decode_header(encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->node, h.node);
  EXPECT_EQ(decoded->epoch, 7u);
  EXPECT_EQ(decoded->sequence, 42u);
  EXPECT_EQ(decoded->preallocated, 8u << 20);
  std::string newer = encoded;
  newer[kMagic.size()] = 3;  // format version 3
  EXPECT_FALSE(decode_header(newer));
  EXPECT_FALSE(decode_header(encoded.substr(1)));
  EXPECT_FALSE(decode_header("XACTDLOX" + encoded.substr(8)));
}

TEST(DecisionLogFormat, Version1HeaderWithoutPreallocatedSizeIsStillRead) {
  const SegmentHeader h{NodeId::random(), 7, 42, 0};
  std::string v1 = encode_header(h);
  v1.resize(v1.size() - 8);  // no preallocated size
  v1[kMagic.size()] = 1;
  const auto decoded = decode_header(v1);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->epoch, 7u);
  EXPECT_EQ(decoded->preallocated, 0u);
}

TEST(DecisionLogFormat, NodeFileKeepsEpochAndSegmentAndReadsTheIdAloneToo) {
  const NodeFile f{NodeId::random(), true, 9, 12};
  const std::string text = encode_node_file(f);
  const auto back = decode_node_file(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->node, f.node);
  EXPECT_TRUE(back->has_position);
  EXPECT_EQ(back->epoch, 9u);
  EXPECT_EQ(back->sequence, 12u);
  const auto old = decode_node_file(f.node.to_hex() + "\n");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->has_position);
  EXPECT_FALSE(decode_node_file(f.node.to_hex() + "\nepoch x\nsegment 1\n"));
  EXPECT_FALSE(decode_node_file(f.node.to_hex() + "\nepoch 1\n"));
  EXPECT_FALSE(decode_node_file(""));
}

TEST(DecisionLogFormat, SegmentNamesSortByNumberAndParseBack) {
  EXPECT_EQ(segment_name(42), "decisions-0000000000000042.log");
  EXPECT_LT(segment_name(9), segment_name(10));
  EXPECT_EQ(parse_segment_name(segment_name(123456789)), 123456789u);
  EXPECT_FALSE(parse_segment_name("decisions-0000000000000042.log.tmp"));
  EXPECT_FALSE(parse_segment_name("decisions-00000000000000x2.log"));
  EXPECT_FALSE(parse_segment_name("node-id"));
}

}  // namespace
}  // namespace xact::detail::dlog
