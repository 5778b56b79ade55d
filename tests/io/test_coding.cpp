// The byte coding every xact file format uses: little-endian on disk whatever the machine, and
// a decoder that refuses rather than reads past the end.
#include <xact/io/coding.hpp>

#include <gtest/gtest.h>

#include <string>

namespace xact::io::coding {
namespace {

TEST(Coding, IntegersAreLittleEndianOnDisk) {
  std::string out;
  put_u8(out, 0x01);
  put_u16(out, 0x0302);
  put_u32(out, 0x07060504);
  put_u64(out, 0x0f0e0d0c0b0a0908);
  EXPECT_EQ(out, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 15));
  EXPECT_EQ(load_u16(out.data() + 1), 0x0302);
  EXPECT_EQ(load_u32(out.data() + 3), 0x07060504u);
  EXPECT_EQ(load_u64(out.data() + 7), 0x0f0e0d0c0b0a0908u);
}

TEST(Coding, StoreOverwritesInPlace) {
  std::string out(12, '\0');
  store_u64(out.data(), 0xfffffffffffffffe);
  store_u32(out.data() + 8, 0x80000001);
  EXPECT_EQ(load_u64(out.data()), 0xfffffffffffffffeu);
  EXPECT_EQ(load_u32(out.data() + 8), 0x80000001u);
  EXPECT_EQ(static_cast<unsigned char>(out[0]), 0xfe);
  EXPECT_EQ(static_cast<unsigned char>(out[11]), 0x80);
}

TEST(Coding, DecoderReadsBackWhatWasPut) {
  std::string out;
  put_u8(out, 7);
  put_u16(out, 65535);
  put_u32(out, 123456789);
  put_u64(out, 1ull << 63);
  put_string32(out, "name");
  Decoder d(out);
  std::uint8_t a = 0;
  std::uint16_t b = 0;
  std::uint32_t c = 0;
  std::uint64_t e = 0;
  std::string s;
  ASSERT_TRUE(d.get_u8(a) && d.get_u16(b) && d.get_u32(c) && d.get_u64(e));
  EXPECT_EQ(d.consumed(out), 15u);
  ASSERT_TRUE(d.get_string32(s));
  EXPECT_EQ(a, 7);
  EXPECT_EQ(b, 65535);
  EXPECT_EQ(c, 123456789u);
  EXPECT_EQ(e, 1ull << 63);
  EXPECT_EQ(s, "name");
  EXPECT_TRUE(d.done());
}

TEST(Coding, ATruncatedFieldIsRefusedAndNothingConsumed) {
  Decoder empty("abc");
  std::uint32_t n = 0;
  EXPECT_FALSE(empty.get_u32(n));
  EXPECT_EQ(empty.remaining(), 3u);

  std::string out;
  put_u32(out, 10);  // a string of 10 bytes...
  out += "short";    // ...of which 5 are there
  Decoder d(out);
  std::string s;
  EXPECT_FALSE(d.get_string32(s));
  EXPECT_EQ(d.remaining(), out.size());
  std::string_view bytes;
  EXPECT_FALSE(d.get_bytes(10, bytes));
  EXPECT_EQ(d.remaining(), out.size());
}

}  // namespace
}  // namespace xact::io::coding
