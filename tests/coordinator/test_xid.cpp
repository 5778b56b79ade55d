#include <xact/xid.hpp>

#include <gtest/gtest.h>

#include <set>

#include <xact/errors.hpp>

namespace xact {
namespace {

NodeId sample_node() {
  NodeId node;
  for (std::size_t i = 0; i < node.bytes.size(); ++i)
    node.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
  return node;
}

Xid sample_xid(std::string bqual) {
  Xid xid;
  xid.gtrid = Gtrid(sample_node(), 7, 0x0102030405060708ull);
  xid.bqual = std::move(bqual);
  return xid;
}

TEST(NodeId, HexRoundTrips) {
  const NodeId node = sample_node();
  EXPECT_EQ(node.to_hex(), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  EXPECT_EQ(NodeId::from_hex(node.to_hex()), node);
  EXPECT_EQ(NodeId::from_hex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"), node);
}

TEST(NodeId, FromHexRejectsAnythingButThirtyTwoHexDigits) {
  EXPECT_FALSE(NodeId::from_hex(""));
  EXPECT_FALSE(NodeId::from_hex("a0a1a2a3a4a5a6a7a8a9aaabacadae"));      // 30
  EXPECT_FALSE(NodeId::from_hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf00"));  // 34
  EXPECT_FALSE(NodeId::from_hex("g0a1a2a3a4a5a6a7a8a9aaabacadaeaf"));
  EXPECT_FALSE(NodeId::from_hex("a0a1a2a3a4a5a6a7a8a9aaabacadaea "));
}

TEST(NodeId, RandomIdsDiffer) {
  std::set<NodeId> ids;
  for (int i = 0; i < 100; ++i) ids.insert(NodeId::random());
  EXPECT_EQ(ids.size(), 100u);
}

TEST(Gtrid, PacksNodeEpochAndSequence) {
  const Gtrid g(sample_node(), 0x01020304, 0x1122334455667788ull);
  EXPECT_EQ(g.bytes().size(), Gtrid::kSize);
  EXPECT_EQ(g.node(), sample_node());
  EXPECT_EQ(g.epoch(), 0x01020304u);
  EXPECT_EQ(g.sequence(), 0x1122334455667788ull);
  EXPECT_EQ(g.to_hex(), sample_node().to_hex() + "01020304" + "1122334455667788");
  EXPECT_FALSE(g.empty());
  EXPECT_TRUE(Gtrid().empty());
}

TEST(Gtrid, ByteOrderIsCreationOrder) {
  const NodeId node = sample_node();
  EXPECT_LT(Gtrid(node, 1, 0xff), Gtrid(node, 1, 0x100));
  EXPECT_LT(Gtrid(node, 1, ~0ull), Gtrid(node, 2, 0));
  // Bytes compare unsigned: 0x7f before 0x80, as the bytes of the id sort.
  EXPECT_LT(Gtrid(node, 1, 0x7f), Gtrid(node, 1, 0x80));
  EXPECT_LT(Gtrid(node, 0x7f000000, 0), Gtrid(node, 0x80000000, 0));
  EXPECT_LT(Gtrid(), Gtrid(node, 0, 0));  // empty first
}

TEST(Gtrid, FromBytesRoundTripsAndRejectsOtherSizes) {
  const Gtrid g(sample_node(), 3, 4);
  EXPECT_EQ(Gtrid::from_bytes(g.bytes()), g);
  EXPECT_FALSE(Gtrid::from_bytes(g.bytes().substr(1)));
  EXPECT_FALSE(Gtrid::from_bytes(std::string(g.bytes()) + "x"));
}

TEST(Gtrid, EmptyGtridHasZeroFields) {
  EXPECT_EQ(Gtrid().epoch(), 0u);
  EXPECT_EQ(Gtrid().sequence(), 0u);
  EXPECT_EQ(Gtrid().node(), NodeId{});
}

TEST(Xid, GidRoundTripsAndStaysBelowPostgresLimit) {
  const Xid xid = sample_xid(std::string(Xid::kMaxBqual, '\xff'));
  const std::string gid = xid.to_gid();
  EXPECT_LT(gid.size(), 200u);
  EXPECT_EQ(gid.size(), 199u);
  EXPECT_EQ(gid.rfind("xact-00007861-", 0), 0u) << gid;
  EXPECT_EQ(Xid::from_gid(gid), xid);
}

TEST(Xid, GidIsBinarySafe) {
  const Xid xid = sample_xid(std::string("pg\0main\n", 8));
  EXPECT_EQ(Xid::from_gid(xid.to_gid()), xid);
}

TEST(Xid, FromGidRejectsForeignGids) {
  const std::string ours = sample_xid("pg:orders").to_gid();
  const std::string gtrid_hex = sample_xid("x").gtrid.to_hex();
  for (const std::string& gid : {
           std::string(), std::string("xact-"), std::string("some-other-program-42"),
           std::string("XACT") + ours.substr(4),                           // other prefix
           ours.substr(0, ours.size() - 1),                                // odd hex length
           ours + "0",                                                     // odd hex length
           std::string("xact-00007862-") + gtrid_hex + "-6162",            // other format id
           std::string("xact-00007861-") + gtrid_hex + "-",                // empty bqual
           std::string("xact-00007861-") + gtrid_hex.substr(2) + "-6162",  // short gtrid
           std::string("xact-00007861-") + gtrid_hex + "-" + std::string(130, 'a'),  // 65 bytes
           std::string("xact-00007861-") + gtrid_hex + "-6G62",                      // not hex
           std::string("xact-00007861-") + gtrid_hex + "-6A62",  // upper case: not ours
           std::string("xact-00007861_") + gtrid_hex + "-6162",  // separator
       }) {
    EXPECT_FALSE(Xid::from_gid(gid)) << gid;
  }
}

TEST(Xid, FromXaIsBinarySafe) {
  const Xid xid = sample_xid(std::string("\0a\0b", 4));
  Xid with_nul = xid;
  with_nul.gtrid = Gtrid(NodeId{}, 0, 0);  // all NUL bytes
  for (const Xid& x : {xid, with_nul}) {
    const std::string data = std::string(x.gtrid.bytes()) + x.bqual;
    EXPECT_EQ(Xid::from_xa(Xid::kFormatId, data, Gtrid::kSize, x.bqual.size()), x);
  }
}

TEST(Xid, FromXaRejectsOtherShapes) {
  const Xid xid = sample_xid("bq");
  const std::string data = std::string(xid.gtrid.bytes()) + xid.bqual;
  EXPECT_FALSE(Xid::from_xa(Xid::kFormatId + 1, data, Gtrid::kSize, 2));
  EXPECT_FALSE(Xid::from_xa(Xid::kFormatId, data, Gtrid::kSize - 1, 3));
  EXPECT_FALSE(Xid::from_xa(Xid::kFormatId, data, Gtrid::kSize, 3));  // lengths vs data
  EXPECT_FALSE(Xid::from_xa(Xid::kFormatId, xid.gtrid.bytes(), Gtrid::kSize, 0));
  const std::string long_bqual =
      std::string(xid.gtrid.bytes()) + std::string(Xid::kMaxBqual + 1, 'b');
  EXPECT_FALSE(Xid::from_xa(Xid::kFormatId, long_bqual, Gtrid::kSize, Xid::kMaxBqual + 1));
}

TEST(CheckBranchName, EmptyNameIsAUsageErrorSayingWhatToDo) {
  try {
    check_branch_name("");
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("non-empty"), std::string::npos) << e.what();
  }
}

TEST(CheckBranchName, NameLongerThanXaAllowsIsAUsageErrorSayingWhatToDo) {
  EXPECT_NO_THROW(check_branch_name(std::string(Xid::kMaxBqual, 'n')));
  try {
    check_branch_name(std::string(Xid::kMaxBqual + 1, 'n'));
    FAIL() << "no exception";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("65 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shorter"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace xact
