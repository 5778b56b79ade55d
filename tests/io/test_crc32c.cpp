#include <xact/io/crc32c.hpp>

#include <gtest/gtest.h>

#include <string>

namespace xact::io {
namespace {

// Test vectors of RFC 3720 (iSCSI), appendix B.4.
TEST(Crc32c, MatchesTheStandardTestVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending += static_cast<char>(i);
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, IncrementalUpdatesEqualOneShot) {
  const std::string data = "the quick brown fox jumps over the lazy dog";
  for (std::size_t split = 0; split <= data.size(); ++split) {
    Crc32c crc;
    crc.update(std::string_view(data).substr(0, split));
    crc.update(std::string_view(data).substr(split));
    EXPECT_EQ(crc.value(), crc32c(data)) << "split at " << split;
  }
}

// A bit-at-a-time CRC-32C straight from the definition: the oracle for every length and
// alignment the hardware path handles differently (tails, unaligned starts, long runs).
std::uint32_t reference_crc32c(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

TEST(Crc32c, MatchesTheDefinitionAtEveryLengthAndAlignment) {
  std::string buf(4096 + 64, '\0');
  std::uint32_t x = 12345;
  for (char& c : buf) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 16);
  }
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t len : {0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 255, 256, 1000, 4096}) {
      const std::string_view v(buf.data() + offset, len);
      ASSERT_EQ(crc32c(v), reference_crc32c(v)) << "offset " << offset << " length " << len;
    }
  }
}

TEST(Crc32c, MaskIsInvertibleAndChangesTheValue) {
  for (const std::uint32_t crc : {0u, 1u, 0xE3069283u, 0xffffffffu, 0x80000000u}) {
    EXPECT_EQ(unmask_crc(mask_crc(crc)), crc);
    EXPECT_NE(mask_crc(crc), crc);
  }
  // Four zero bytes must not pass for the checksum of empty data.
  EXPECT_NE(mask_crc(crc32c("")), 0u);
}

}  // namespace
}  // namespace xact::io
