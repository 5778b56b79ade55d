// Record framing: the reader, with resynchronisation after damage.
#include <xact/io/record.hpp>

#include <algorithm>

#include <xact/errors.hpp>
#include <xact/io/coding.hpp>
#include <xact/io/crc32c.hpp>

namespace xact::io {
namespace {

constexpr std::size_t kWindowBytes = 256 * 1024;
constexpr std::size_t kLookBehind = 16;
// Work allowed per byte of file (plus a constant) before resynchronisation gives up, and what
// a read outside the window counts as.
constexpr std::uint64_t kWorkPerByte = 4;
constexpr std::uint64_t kWorkConstant = 64u << 20;
constexpr std::uint64_t kReadCharge = 4096;

}  // namespace

std::uint64_t ScanReport::dropped_bytes() const {
  std::uint64_t n = cut_off_bytes;
  for (const auto& range : corrupt) n += range.bytes;
  return n;
}

std::string ScanReport::describe() const {
  std::string out;
  for (const auto& range : corrupt) {
    if (!out.empty()) out += "; ";
    out += "dropped " + std::to_string(range.bytes) + " corrupt bytes at offset " +
           std::to_string(range.offset) + " (" + range.reason + ")";
  }
  if (cut_off_bytes > 0) {
    if (!out.empty()) out += "; ";
    out += "cut off an incomplete last record of " + std::to_string(cut_off_bytes) +
           " bytes at offset " + std::to_string(end_of_data) + " (" + cut_off_reason + ")";
  }
  return out.empty() ? "clean" : out;
}

RecordReader::RecordReader(const RandomAccessFile& file, ScanOptions options)
    : file_(file), options_(options), size_(file.size()), pos_(options.start) {
  report_.end_of_data = options.start;
  budget_ = kWorkPerByte * size_ + kWorkConstant;
}

std::string_view RecordReader::window_at(std::uint64_t offset, std::size_t min_bytes) {
  const std::uint64_t window_end = window_offset_ + window_.size();
  const std::uint64_t available = size_ > offset ? size_ - offset : 0;
  if (offset < window_offset_ || offset > window_end ||
      window_end - offset < std::min<std::uint64_t>(min_bytes, available)) {
    // Refill from a little before `offset`: a resynchronising scan steps back up to 8 bytes
    // from a non-zero byte to the header that would hold it as its type.
    const std::uint64_t begin = offset >= kLookBehind ? offset - kLookBehind : 0;
    const std::uint64_t want =
        std::min<std::uint64_t>(std::max<std::uint64_t>(min_bytes + kLookBehind, kWindowBytes),
                                size_ > begin ? size_ - begin : 0);
    window_.resize(want);
    window_.resize(file_.read(begin, window_));
    window_offset_ = begin;
  }
  if (offset - window_offset_ > window_.size()) return {};
  return std::string_view(window_).substr(offset - window_offset_);
}

std::string_view RecordReader::view(std::uint64_t offset, std::size_t n) {
  return window_at(offset, n).substr(0, n);
}

std::string_view RecordReader::read(std::uint64_t offset, std::size_t n, std::string& scratch) {
  if (offset >= window_offset_ && offset + n <= window_offset_ + window_.size()) {
    return std::string_view(window_).substr(offset - window_offset_, n);
  }
  // Outside the window (a far trailer while resynchronising, a large payload): read it
  // directly rather than moving the window away from where the scan is.
  work_ += kReadCharge;
  scratch.resize(n);
  scratch.resize(file_.read(offset, scratch));
  return scratch;
}

RecordReader::Parse RecordReader::parse_at(std::uint64_t offset, Record* out, std::string* reason) {
  // `reason` may be null: resynchronisation tries every offset and needs no message.
  const std::uint64_t left = offset < size_ ? size_ - offset : 0;
  if (left < kRecordHeaderSize) {
    if (reason) *reason = "incomplete header: " + std::to_string(left) + " bytes left";
    return Parse::kBad;
  }
  const std::string_view header = view(offset, kRecordHeaderSize);
  if (header.size() < kRecordHeaderSize) {
    if (reason) *reason = "short read";
    return Parse::kBad;
  }
  const std::uint32_t length = coding::load_u32(header.data() + 4);
  const auto type = static_cast<std::uint8_t>(header[8]);
  if (type == kNoRecordType) {
    if (reason) *reason = "no record type (unwritten space)";
    return Parse::kBad;
  }
  if (length > options_.max_payload) {
    if (reason) *reason = "impossible length " + std::to_string(length);
    return Parse::kBad;
  }
  if (kRecordOverhead + length > left) {
    if (reason) *reason = "a record of " + std::to_string(length) +
              " payload bytes runs past the end of "
              "the file (" +
              std::to_string(left) + " bytes left)";
    return Parse::kBad;
  }
  // The trailer first: a 4-byte read that rules out nearly every false start cheaply.
  std::string trailer_scratch;
  const std::string_view trailer =
      read(offset + kRecordHeaderSize + length, kRecordTrailerSize, trailer_scratch);
  if (trailer.size() < kRecordTrailerSize || coding::load_u32(trailer.data()) != length) {
    if (reason) *reason = "trailing length does not match length " + std::to_string(length);
    return Parse::kBad;
  }
  const std::uint32_t stored = unmask_crc(coding::load_u32(header.data()));
  work_ += kRecordOverhead + length;
  const std::string_view body = read(offset + 4, kRecordOverhead - 4 + length, scratch_);
  if (body.size() < kRecordOverhead - 4 + length || crc32c(body) != stored) {
    if (reason) *reason = "checksum mismatch";
    return Parse::kBad;
  }
  out->offset = offset;
  out->type = type;
  out->payload.assign(body.substr(kRecordHeaderSize - 4, length));
  return Parse::kOk;
}

std::optional<std::uint64_t> RecordReader::next_nonzero(std::uint64_t from) {
  while (from < size_) {
    const std::string_view chunk = window_at(from, 1);
    if (chunk.empty()) return std::nullopt;
    const auto it = std::find_if(chunk.begin(), chunk.end(), [](char c) { return c != 0; });
    if (it != chunk.end()) return from + static_cast<std::uint64_t>(it - chunk.begin());
    from += chunk.size();
  }
  return std::nullopt;
}

std::optional<std::uint64_t> RecordReader::resync(std::uint64_t from) {
  std::uint64_t candidate = from;
  Record ignored;
  while (candidate < size_) {
    if (over_budget()) {
      report_.resync_gave_up = true;
      return std::nullopt;
    }
    // A record's type byte (at +8) is never zero, so runs of zeros - the unwritten part of
    // a preallocated file - are skipped at memchr speed instead of offset by offset.
    const auto type_at = next_nonzero(candidate + 8);
    if (!type_at) return std::nullopt;
    candidate = std::max(candidate, *type_at - 8);
    if (parse_at(candidate, &ignored, nullptr) == Parse::kOk) return candidate;
    ++candidate;
  }
  return std::nullopt;
}

void RecordReader::finish_tail(std::uint64_t offset, std::string reason) {
  // Find the last non-zero byte: what lies before it is a cut-off record, what follows it is
  // preallocated space that was never written.
  std::uint64_t end = size_;
  std::string chunk;
  while (end > offset) {
    const std::uint64_t begin = end - std::min<std::uint64_t>(end - offset, kWindowBytes);
    chunk.resize(end - begin);
    chunk.resize(file_.read(begin, chunk));
    const auto it = std::find_if(chunk.rbegin(), chunk.rend(), [](char c) { return c != 0; });
    if (it != chunk.rend()) {
      end = begin + static_cast<std::uint64_t>(chunk.rend() - it);
      break;
    }
    end = begin;
  }
  report_.end_of_data = offset;
  report_.cut_off_bytes = end - offset;
  report_.zero_tail_bytes = size_ - end;
  if (report_.cut_off_bytes > 0) report_.cut_off_reason = std::move(reason);
}

std::optional<Record> RecordReader::next() {
  while (!done_) {
    if (pos_ >= size_) {
      done_ = true;
      break;
    }
    Record record;
    std::string reason;
    if (parse_at(pos_, &record, &reason) == Parse::kOk) {
      pos_ = record.end();
      report_.end_of_data = pos_;
      return record;
    }
    const auto resume = resync(pos_ + 1);
    if (!resume && report_.resync_gave_up) {
      // Not a cut-off end: nobody can tell what follows, so it is reported as damage.
      DroppedRange range{pos_, size_ - pos_,
                         reason +
                             "; resynchronisation stopped after too many false record "
                             "starts, so whether valid records follow is unknown"};
      done_ = true;
      if (options_.throw_on_corruption) {
        throw StorageError("'" + file_.path() + "' is corrupt: " + std::to_string(range.bytes) +
                           " bytes at offset " + std::to_string(range.offset) +
                           " cannot be read (" + range.reason + ")");
      }
      report_.end_of_data = pos_;
      report_.corrupt.push_back(std::move(range));
      break;
    }
    if (!resume) {
      finish_tail(pos_, std::move(reason));
      done_ = true;
      break;
    }
    DroppedRange range{pos_, *resume - pos_, std::move(reason)};
    if (options_.throw_on_corruption) {
      throw StorageError("'" + file_.path() + "' is corrupt: " + std::to_string(range.bytes) +
                         " bytes at offset " + std::to_string(range.offset) + " are damaged (" +
                         range.reason +
                         ") and valid records follow them, so this is not a "
                         "write cut off by a crash but damage done later (disk, file system, "
                         "or another program writing the file)");
    }
    report_.corrupt.push_back(std::move(range));
    pos_ = *resume;
  }
  return std::nullopt;
}

std::optional<Record> read_record_at(const RandomAccessFile& file, std::uint64_t offset,
                                     std::uint32_t max_payload) {
  RecordReader reader(file, ScanOptions{.start = offset, .max_payload = max_payload});
  Record record;
  std::string reason;
  if (reader.parse_at(offset, &record, &reason) != RecordReader::Parse::kOk) return std::nullopt;
  return record;
}

std::optional<Record> read_record_before(const RandomAccessFile& file, std::uint64_t end,
                                         std::uint32_t max_payload) {
  if (end < kRecordOverhead) return std::nullopt;
  char trailer[kRecordTrailerSize];
  if (file.read(end - kRecordTrailerSize, trailer) < kRecordTrailerSize) return std::nullopt;
  const std::uint32_t length = coding::load_u32(trailer);
  if (length > max_payload || kRecordOverhead + length > end) return std::nullopt;
  auto record = read_record_at(file, end - kRecordOverhead - length, max_payload);
  if (record && record->end() != end) return std::nullopt;
  return record;
}

}  // namespace xact::io
