// Record framing: encoding and the writer.
#include <xact/io/record.hpp>

#include <xact/errors.hpp>
#include <xact/io/coding.hpp>
#include <xact/io/crc32c.hpp>

namespace xact::io {

void encode_record(std::string& out, std::uint8_t type, std::string_view payload) {
  if (type == kNoRecordType) {
    throw UsageError("record type 0 is reserved (zero bytes mark unwritten space): use 1..255");
  }
  if (payload.size() > kMaxRecordPayload) {
    throw UsageError("a record payload of " + std::to_string(payload.size()) +
                     " bytes exceeds the framing limit of " + std::to_string(kMaxRecordPayload) +
                     " bytes: split it into several records");
  }
  const auto length = static_cast<std::uint32_t>(payload.size());
  const std::size_t start = out.size();
  out.reserve(start + kRecordOverhead + payload.size());
  out.append(4, '\0');  // the checksum, filled in below
  coding::put_u32(out, length);
  out.push_back(static_cast<char>(type));
  out.append(payload);
  coding::put_u32(out, length);
  const std::uint32_t crc = crc32c(std::string_view(out).substr(start + 4));
  coding::store_u32(out.data() + start, mask_crc(crc));
}

std::string encode_record(std::uint8_t type, std::string_view payload) {
  std::string out;
  encode_record(out, type, payload);
  return out;
}

RecordWriter::RecordWriter(WritableFile& file, std::uint64_t offset)
    : file_(file), offset_(offset) {}

std::uint64_t RecordWriter::add(std::uint8_t type, std::string_view payload) {
  buffer_.clear();
  encode_record(buffer_, type, payload);
  return add_encoded(buffer_);
}

std::uint64_t RecordWriter::add_encoded(std::string_view records) {
  const std::uint64_t at = offset_;
  file_.write_at(at, records);
  offset_ = at + records.size();  // only after the write succeeded
  return at;
}

void RecordWriter::sync() { file_.sync(); }

}  // namespace xact::io
