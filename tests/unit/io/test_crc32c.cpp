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
