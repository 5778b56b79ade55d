// Record framing: the checksummed, length-prefixed records every xact file is made of
// (decision log segments, compensation logs, the object store's files).
//
// One record (all integers little-endian; byte layout and rationale in doc/record_format.md):
//
//   offset  size  field
//   0       4     masked CRC-32C of bytes [4, 13 + length): length, type, payload, trailer
//   4       4     length of the payload
//   8       1     type, 1..255 (0 never starts a record: zero-filled space is not data)
//   9       n     payload
//   9 + n   4     length again, so a reader can step backwards from the end of a record
//
// What a reader makes of a damaged file:
//   - the bytes after the last valid record, when no valid record follows them, are the
//     end of data: an incomplete last record (a write cut off by a crash) or the zero-filled
//     rest of a preallocated file. Reported (how many bytes, zero or not), not an error;
//   - damaged bytes followed by a valid record are corruption: reported with offset, byte
//     count and reason; the reader skips them and goes on, or throws StorageError when
//     asked to.
//
// Thread-safety: RecordWriter and RecordReader have one user at a time; the free functions
// are thread-safe (RandomAccessFile is).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/io/env.hpp>

namespace xact::io {

inline constexpr std::size_t kRecordHeaderSize = 9;   // crc, length, type
inline constexpr std::size_t kRecordTrailerSize = 4;  // length
inline constexpr std::size_t kRecordOverhead = kRecordHeaderSize + kRecordTrailerSize;
/// The largest payload the framing accepts. A larger length field is "impossible" and read
/// as corruption, which keeps a damaged length from making a reader allocate gigabytes.
inline constexpr std::uint32_t kMaxRecordPayload = 64u << 20;
/// Never a record type: a zero byte where a type should be means unwritten space.
inline constexpr std::uint8_t kNoRecordType = 0;

/// Appends one encoded record to `out`. Throws UsageError for type 0 or a payload larger
/// than kMaxRecordPayload.
void encode_record(std::string& out, std::uint8_t type, std::string_view payload);
/// The encoded record as a string.
std::string encode_record(std::uint8_t type, std::string_view payload);

/// Writes records one after the other into a WritableFile, starting at a given offset.
/// Writing at an offset rather than appending lets the same writer fill a preallocated
/// (zero-filled) file.
class RecordWriter {
 public:
  /// The first record goes at `offset`: file.size() to append to what is there, or the end
  /// of the valid data of a preallocated file.
  RecordWriter(WritableFile& file, std::uint64_t offset);

  /// Writes one record with a single write call and returns the offset it starts at. Not
  /// durable until sync(). When the write throws StorageError, offset() does not move: the
  /// file may hold part of the record, which a reader takes for a cut-off end, so it is
  /// safe to write the next record at the same offset or to stop.
  std::uint64_t add(std::uint8_t type, std::string_view payload);
  /// Writes records that were encoded with encode_record() (any number, concatenated) with
  /// one write call; returns the offset of the first.
  std::uint64_t add_encoded(std::string_view records);
  /// WritableFile::sync().
  void sync();

  /// Where the next record goes.
  std::uint64_t offset() const { return offset_; }
  WritableFile& file() { return file_; }

 private:
  WritableFile& file_;
  std::uint64_t offset_;
  std::string buffer_;
};

/// One record read back.
struct Record {
  std::uint64_t offset = 0;  // where its header starts
  std::uint8_t type = kNoRecordType;
  std::string payload;
  /// The offset just past this record (where the next one starts).
  std::uint64_t end() const { return offset + kRecordOverhead + payload.size(); }
};

/// Bytes a reader could not use.
struct DroppedRange {
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;
  std::string reason;  // "checksum mismatch", "impossible length 4294967295", ...
};

/// What a scan found besides the records.
struct ScanReport {
  /// Damaged ranges with valid records after them, in file order.
  std::vector<DroppedRange> corrupt;
  /// Just past the last valid record: where a writer would go on.
  std::uint64_t end_of_data = 0;
  /// Bytes after end_of_data up to the last non-zero byte: an incomplete or damaged last
  /// record. 0 when the file ends cleanly.
  std::uint64_t cut_off_bytes = 0;
  /// Why the bytes at end_of_data are not a record (empty when cut_off_bytes is 0).
  std::string cut_off_reason;
  /// Zero bytes at the very end: the unused part of a preallocated file.
  std::uint64_t zero_tail_bytes = 0;
  /// Resynchronisation stopped: the bytes after the last corrupt range hold so many false
  /// record starts (e.g. a long run of one byte value) that checking them all would cost more
  /// than a few reads of the file. That range is reported as corrupt up to the end of the
  /// file, whether or not valid records follow it, so every scan stays linear in the size.
  bool resync_gave_up = false;

  /// No corruption and no cut-off record.
  bool clean() const { return corrupt.empty() && cut_off_bytes == 0; }
  /// Every byte the reader dropped: corrupt ranges plus the cut-off tail.
  std::uint64_t dropped_bytes() const;
  /// One line for logs: "clean", or what was dropped where.
  std::string describe() const;
};

struct ScanOptions {
  /// Where the first record starts.
  std::uint64_t start = 0;
  /// Throw StorageError at the first corruption (damage followed by valid records) instead
  /// of reporting it and skipping it. A cut-off end never throws.
  bool throw_on_corruption = false;
  /// Lengths above this are impossible (see kMaxRecordPayload).
  std::uint32_t max_payload = kMaxRecordPayload;
};

/// Reads a file's records front to back. The file's size is taken when the reader is
/// constructed; bytes appended later are not seen.
class RecordReader {
 public:
  explicit RecordReader(const RandomAccessFile& file, ScanOptions options = {});

  /// The next valid record, or nullopt at the end of data. Damage on the way is skipped
  /// and reported (or thrown, see ScanOptions). Throws StorageError when reading fails.
  std::optional<Record> next();
  /// Complete once next() has returned nullopt.
  const ScanReport& report() const { return report_; }

 private:
  friend std::optional<Record> read_record_at(const RandomAccessFile&, std::uint64_t,
                                              std::uint32_t);
  enum class Parse { kOk, kBad };
  Parse parse_at(std::uint64_t offset, Record* out, std::string* reason);
  std::optional<std::uint64_t> resync(std::uint64_t from);
  std::optional<std::uint64_t> next_nonzero(std::uint64_t from);
  void finish_tail(std::uint64_t offset, std::string reason);
  std::string_view window_at(std::uint64_t offset, std::size_t min_bytes);
  std::string_view view(std::uint64_t offset, std::size_t n);
  std::string_view read(std::uint64_t offset, std::size_t n, std::string& scratch);
  bool over_budget() const { return work_ > budget_; }

  const RandomAccessFile& file_;
  ScanOptions options_;
  std::uint64_t size_;
  std::uint64_t pos_;
  bool done_ = false;
  ScanReport report_;
  // A read-ahead window, so a scan makes one read call per window, not three per record.
  std::string window_;
  std::uint64_t window_offset_ = 0;
  std::string scratch_;
  // Bytes checksummed plus a charge per read outside the window: bounded by budget_ (a few
  // times the file size), so a file crafted to look like records everywhere costs a few reads
  // of it, not one per byte.
  std::uint64_t work_ = 0;
  std::uint64_t budget_ = 0;
};

/// The record starting exactly at `offset`, or nullopt when no valid record starts there
/// (random access, e.g. through an index). Throws StorageError when reading fails.
std::optional<Record> read_record_at(const RandomAccessFile& file, std::uint64_t offset,
                                     std::uint32_t max_payload = kMaxRecordPayload);
/// The record ending exactly at `end` (found through its trailing length), or nullopt.
/// Starting from ScanReport::end_of_data, repeated calls walk a file backwards.
std::optional<Record> read_record_before(const RandomAccessFile& file, std::uint64_t end,
                                         std::uint32_t max_payload = kMaxRecordPayload);

}  // namespace xact::io
