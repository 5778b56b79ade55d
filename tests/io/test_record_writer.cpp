#include <gtest/gtest.h>

#include <string>

#include <xact/errors.hpp>
#include <xact/io/crc32c.hpp>
#include <xact/io/fault_injection_env.hpp>
#include <xact/io/record.hpp>

namespace xact::io {
namespace {

std::uint32_t le32(std::string_view bytes, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

TEST(RecordWriter, LayoutIsMaskedCrcLengthTypePayloadLength) {
  const std::string rec = encode_record(7, "abc");
  ASSERT_EQ(rec.size(), kRecordOverhead + 3);
  EXPECT_EQ(rec.substr(4), std::string("\x03\x00\x00\x00\x07"
                                       "abc"
                                       "\x03\x00\x00\x00",
                                       12));
  EXPECT_EQ(le32(rec, 0), mask_crc(crc32c(std::string_view(rec).substr(4))));
}

TEST(RecordWriter, EmptyPayloadIsARecord) {
  const std::string rec = encode_record(1, "");
  EXPECT_EQ(rec.size(), kRecordOverhead);
  EXPECT_EQ(le32(rec, 4), 0u);
  EXPECT_EQ(le32(rec, 9), 0u);
}

TEST(RecordWriter, TypeZeroIsRejectedBecauseItMarksUnwrittenSpace) {
  EXPECT_THROW(encode_record(kNoRecordType, "x"), UsageError);
}

TEST(RecordWriter, PayloadAboveTheLimitIsRejected) {
  EXPECT_THROW(encode_record(1, std::string(kMaxRecordPayload + 1, 'x')), UsageError);
}

TEST(RecordWriter, AddReturnsTheRecordOffsetAndAdvances) {
  MemEnv env;
  auto file = env.new_writable_file("/f");
  RecordWriter writer(*file, 0);
  EXPECT_EQ(writer.add(1, "first"), 0u);
  EXPECT_EQ(writer.add(2, "second"), kRecordOverhead + 5);
  EXPECT_EQ(writer.offset(), 2 * kRecordOverhead + 11);
  EXPECT_EQ(env.read_file("/f"), encode_record(1, "first") + encode_record(2, "second"));
}

TEST(RecordWriter, WritesIntoAPreallocatedFileWithoutGrowingIt) {
  MemEnv env;
  auto file = env.new_writable_file("/f");
  file->append(std::string(4096, '\0'));
  RecordWriter writer(*file, 0);
  writer.add(1, "hello");
  writer.sync();
  const std::string contents = env.read_file("/f");
  EXPECT_EQ(contents.size(), 4096u);
  EXPECT_EQ(contents.substr(0, kRecordOverhead + 5), encode_record(1, "hello"));
}

TEST(RecordWriter, AddEncodedWritesSeveralRecordsWithOneWrite) {
  FaultInjectionEnv env;
  auto file = env.new_writable_file("/f");
  RecordWriter writer(*file, 0);
  std::string batch;
  encode_record(batch, 1, "a");
  encode_record(batch, 1, "b");
  const auto before = env.writes();
  EXPECT_EQ(writer.add_encoded(batch), 0u);
  EXPECT_EQ(env.writes() - before, 1u);
  EXPECT_EQ(writer.offset(), batch.size());
}

TEST(RecordWriter, FailedWriteLeavesTheOffsetWhereItWas) {
  FaultInjectionEnv env;
  auto file = env.new_writable_file("/f");
  RecordWriter writer(*file, 0);
  writer.add(1, "one");
  env.fail_nth_write(1, /*torn=*/true);
  EXPECT_THROW(writer.add(1, "two, torn"), StorageError);
  EXPECT_EQ(writer.offset(), kRecordOverhead + 3);
  // Writing again at the same offset replaces the torn bytes.
  writer.add(1, "two");
  EXPECT_EQ(env.read_file("/f").substr(0, writer.offset()),
            encode_record(1, "one") + encode_record(1, "two"));
}

}  // namespace
}  // namespace xact::io
