#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/io/record.hpp>

namespace xact::io {
namespace {

struct Written {
  std::uint64_t offset;
  std::uint8_t type;
  std::string payload;
  std::uint64_t end() const { return offset + kRecordOverhead + payload.size(); }
};

class RecordReaderTest : public ::testing::Test {
 protected:
  // Writes `sizes.size()` records with pseudo-random payloads; returns what was written.
  std::vector<Written> write(const std::vector<std::size_t>& sizes, std::size_t zero_tail = 0) {
    std::mt19937 rng(42);
    std::string contents;
    std::vector<Written> out;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      std::string payload(sizes[i], '\0');
      for (auto& c : payload) c = static_cast<char>(rng());
      const auto type = static_cast<std::uint8_t>(1 + i % 200);
      out.push_back({contents.size(), type, payload});
      encode_record(contents, type, payload);
    }
    contents.append(zero_tail, '\0');
    set_contents(contents);
    return out;
  }

  void set_contents(const std::string& contents) {
    env_.new_writable_file(kPath);
    env_.write_file(kPath, contents);
  }
  std::string contents() { return env_.read_file(kPath); }

  std::vector<Record> read_all(ScanReport* report = nullptr, ScanOptions options = {}) {
    auto file = env_.new_random_access_file(kPath);
    RecordReader reader(*file, options);
    std::vector<Record> out;
    while (auto r = reader.next()) out.push_back(std::move(*r));
    if (report) *report = reader.report();
    return out;
  }

  static void expect_records(const std::vector<Record>& got, const std::vector<Written>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].offset, want[i].offset) << "record " << i;
      EXPECT_EQ(got[i].type, want[i].type) << "record " << i;
      EXPECT_EQ(got[i].payload, want[i].payload) << "record " << i;
    }
  }

  static constexpr const char* kPath = "/records";
  MemEnv env_;
};

TEST_F(RecordReaderTest, ReadsBackEveryRecordInOrder) {
  const auto written = write({0, 1, 7, 100, 3000, 12});
  ScanReport report;
  expect_records(read_all(&report), written);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.end_of_data, written.back().end());
  EXPECT_EQ(report.zero_tail_bytes, 0u);
}

TEST_F(RecordReaderTest, RecordsLargerThanTheReadWindowAreRead) {
  const auto written = write({10, 700 * 1024, 10, 300 * 1024});
  ScanReport report;
  expect_records(read_all(&report), written);
  EXPECT_TRUE(report.clean());
}

TEST_F(RecordReaderTest, EmptyFileIsACleanEnd) {
  set_contents("");
  ScanReport report;
  EXPECT_TRUE(read_all(&report).empty());
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.end_of_data, 0u);
}

TEST_F(RecordReaderTest, ZeroFilledTailIsTheEndOfData) {
  const auto written = write({5, 50, 500}, /*zero_tail=*/1 << 20);
  ScanReport report;
  expect_records(read_all(&report), written);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.end_of_data, written.back().end());
  EXPECT_EQ(report.zero_tail_bytes, 1u << 20);
}

TEST_F(RecordReaderTest, TruncatedTrailingRecordIsIgnored) {
  // Cut the file at every byte of its last three records: every complete record before the
  // cut is kept, the rest is reported as cut off, never as corruption.
  const auto written = write({3, 40, 0, 17, 260});
  const std::string full = contents();
  for (std::uint64_t cut = written[2].offset; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    set_contents(full.substr(0, cut));
    std::vector<Written> complete;
    for (const auto& w : written) {
      if (w.end() <= cut) complete.push_back(w);
    }
    ScanReport report;
    expect_records(read_all(&report), complete);
    EXPECT_TRUE(report.corrupt.empty());
    EXPECT_EQ(report.end_of_data, complete.back().end());
    EXPECT_EQ(report.cut_off_bytes + report.zero_tail_bytes, cut - complete.back().end());
  }
}

TEST_F(RecordReaderTest, TruncatedRecordInPreallocatedSpaceIsIgnored) {
  // A write cut off inside a zero-filled file: the part that reached the disk, then zeros.
  const auto written = write({30, 30, 30, 30});
  const std::string full = contents();
  for (std::uint64_t cut = written[2].offset; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    set_contents(full.substr(0, cut) + std::string(full.size() - cut + 4096, '\0'));
    std::vector<Written> complete;
    for (const auto& w : written) {
      // A record whose missing bytes were zeros anyway (the top bytes of its trailing
      // length) is complete.
      const bool missing_all_zero = w.end() <= cut || full.find_first_not_of('\0', cut) >= w.end();
      if (missing_all_zero) complete.push_back(w);
    }
    ScanReport report;
    expect_records(read_all(&report), complete);
    EXPECT_TRUE(report.corrupt.empty());
    EXPECT_EQ(report.end_of_data, complete.back().end());
  }
}

TEST_F(RecordReaderTest, ChecksumMismatchInTheMiddleIsReported) {
  const auto written = write({10, 20, 30, 40});
  std::string damaged = contents();
  damaged[written[1].offset + kRecordHeaderSize + 5] ^= 0x10;  // a payload byte of record 1
  set_contents(damaged);
  ScanReport report;
  expect_records(read_all(&report), {written[0], written[2], written[3]});
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_EQ(report.corrupt[0].offset, written[1].offset);
  EXPECT_EQ(report.corrupt[0].bytes, written[1].end() - written[1].offset);
  EXPECT_EQ(report.corrupt[0].reason, "checksum mismatch");
  EXPECT_EQ(report.cut_off_bytes, 0u);
  EXPECT_FALSE(report.clean());
  EXPECT_NE(report.describe().find("at offset " + std::to_string(written[1].offset)),
            std::string::npos);
}

TEST_F(RecordReaderTest, ImpossibleLengthInTheMiddleIsReported) {
  const auto written = write({10, 20, 30});
  std::string damaged = contents();
  damaged[written[1].offset + 7] = '\x7f';  // length's top byte: ~2 GB
  set_contents(damaged);
  ScanReport report;
  expect_records(read_all(&report), {written[0], written[2]});
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_EQ(report.corrupt[0].offset, written[1].offset);
  EXPECT_NE(report.corrupt[0].reason.find("impossible length"), std::string::npos);
}

TEST_F(RecordReaderTest, ZeroedBlockInTheMiddleIsReported) {
  const auto written = write({100, 100, 100});
  std::string damaged = contents();
  std::fill_n(damaged.begin() + static_cast<std::ptrdiff_t>(written[1].offset), 50, '\0');
  set_contents(damaged);
  ScanReport report;
  expect_records(read_all(&report), {written[0], written[2]});
  ASSERT_EQ(report.corrupt.size(), 1u);
  EXPECT_EQ(report.corrupt[0].bytes, written[1].end() - written[1].offset);
}

TEST_F(RecordReaderTest, CorruptionThrowsWhenAskedTo) {
  const auto written = write({10, 20, 30});
  std::string damaged = contents();
  damaged[written[1].offset + kRecordHeaderSize] ^= 1;
  set_contents(damaged);
  try {
    read_all(nullptr, ScanOptions{.throw_on_corruption = true});
    FAIL() << "no exception";
  } catch (const StorageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(kPath), std::string::npos) << what;
    EXPECT_NE(what.find("offset " + std::to_string(written[1].offset)), std::string::npos) << what;
  }
}

TEST_F(RecordReaderTest, CutOffTailNeverThrows) {
  const auto written = write({10, 20, 30});
  set_contents(contents().substr(0, written[2].end() - 3));
  ScanReport report;
  expect_records(read_all(&report, ScanOptions{.throw_on_corruption = true}),
                 {written[0], written[1]});
  EXPECT_EQ(report.cut_off_bytes, written[2].end() - 3 - written[2].offset);
}

TEST_F(RecordReaderTest, RandomBitFlipsLoseOnlyTheRecordTheyHit) {
  const std::vector<std::size_t> sizes = {12, 0, 64, 5, 200, 33, 1, 90};
  const auto written = write(sizes, /*zero_tail=*/64);
  const std::string full = contents();
  std::mt19937 rng(7);
  for (int round = 0; round < 400; ++round) {
    const std::uint64_t at = rng() % written.back().end();
    const int bit = static_cast<int>(rng() % 8);
    SCOPED_TRACE("flip bit " + std::to_string(bit) + " of byte " + std::to_string(at));
    std::string damaged = full;
    damaged[at] = static_cast<char>(damaged[at] ^ (1 << bit));
    set_contents(damaged);
    std::size_t hit = 0;
    while (written[hit].end() <= at) ++hit;
    std::vector<Written> survivors;
    for (std::size_t i = 0; i < written.size(); ++i) {
      if (i != hit) survivors.push_back(written[i]);
    }
    ScanReport report;
    expect_records(read_all(&report), survivors);
    if (hit + 1 < written.size()) {
      ASSERT_EQ(report.corrupt.size(), 1u);
      EXPECT_EQ(report.corrupt[0].offset, written[hit].offset);
      EXPECT_EQ(report.corrupt[0].bytes, written[hit].end() - written[hit].offset);
    } else {
      EXPECT_TRUE(report.corrupt.empty());  // the last record: indistinguishable from a cut
      EXPECT_EQ(report.end_of_data, written[hit].offset);
      EXPECT_GT(report.cut_off_bytes, 0u);
    }
  }
}

TEST_F(RecordReaderTest, ReadRecordAtGivesRandomAccess) {
  const auto written = write({10, 20, 30});
  auto file = env_.new_random_access_file(kPath);
  for (const auto& w : written) {
    const auto r = read_record_at(*file, w.offset);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->payload, w.payload);
    EXPECT_EQ(r->type, w.type);
  }
  EXPECT_FALSE(read_record_at(*file, written[1].offset + 1));
  EXPECT_FALSE(read_record_at(*file, written[2].end()));
}

TEST_F(RecordReaderTest, TrailingLengthsWalkTheFileBackwards) {
  const auto written = write({10, 0, 20, 30000, 5}, /*zero_tail=*/100);
  auto file = env_.new_random_access_file(kPath);
  std::uint64_t end = written.back().end();
  for (auto it = written.rbegin(); it != written.rend(); ++it) {
    const auto r = read_record_before(*file, end);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->offset, it->offset);
    EXPECT_EQ(r->payload, it->payload);
    end = r->offset;
  }
  EXPECT_EQ(end, 0u);
  EXPECT_FALSE(read_record_before(*file, 0));
  EXPECT_FALSE(read_record_before(*file, written[1].end() - 1));
}

TEST_F(RecordReaderTest, ScanCanStartAtAnOffset) {
  const auto written = write({10, 20, 30});
  expect_records(read_all(nullptr, ScanOptions{.start = written[1].offset}),
                 {written[1], written[2]});
}

}  // namespace
}  // namespace xact::io
