// FileStorage's on-disk format: encoding and decoding (layout: doc/file_storage.md).
#include "file_storage_format.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>

#include <xact/errors.hpp>
#include <xact/io/crc32c.hpp>

namespace xact::objectstore::fs {

// --- header ----------------------------------------------------------------------------------

std::string encode_file_header(const FileHeader& header) {
  std::string out(kFileMagic);
  put_u32(out, header.version);
  out.append(reinterpret_cast<const char*>(header.file_id.data()), header.file_id.size());
  put_u64(out, static_cast<std::uint64_t>(header.created_us));
  put_u64(out, header.next_oid);
  put_u64(out, header.durable_end);
  put_u64(out, header.chunk);
  out.append(reinterpret_cast<const char*>(header.packed_from.data()), header.packed_from.size());
  return out;
}

std::optional<std::uint32_t> file_header_version(std::string_view payload) {
  Decoder d(payload);
  std::string_view magic;
  std::uint32_t version = 0;
  if (!d.get_bytes(kFileMagic.size(), magic) || magic != kFileMagic || !d.get_u32(version)) {
    return std::nullopt;
  }
  return version;
}

std::optional<FileHeader> decode_file_header(std::string_view payload) {
  Decoder d(payload);
  std::string_view magic;
  std::string_view id;
  FileHeader h;
  std::string_view from;
  std::uint64_t created = 0;
  if (!d.get_bytes(kFileMagic.size(), magic) || magic != kFileMagic || !d.get_u32(h.version) ||
      h.version != kFormatVersion || !d.get_bytes(h.file_id.size(), id) || !d.get_u64(created) ||
      !d.get_u64(h.next_oid) || !d.get_u64(h.durable_end) || !d.get_u64(h.chunk) ||
      !d.get_bytes(h.packed_from.size(), from) || !d.done() || h.chunk > kMaxChunk) {
    return std::nullopt;
  }
  std::memcpy(h.file_id.data(), id.data(), id.size());
  std::memcpy(h.packed_from.data(), from.data(), from.size());
  h.created_us = static_cast<std::int64_t>(created);
  return h;
}

FileId random_file_id() {
  boost::uuids::random_generator gen;
  const boost::uuids::uuid u = gen();
  FileId id{};
  std::copy(u.begin(), u.end(), id.begin());
  return id;
}

// --- transactions ----------------------------------------------------------------------------

namespace {

void check_size(std::size_t n, std::string_view what) {
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    throw UsageError(std::string(what) + " of " + std::to_string(n) +
                     " bytes is too large for a file storage record: keep it under 4 GiB");
  }
}

}  // namespace

std::uint32_t entry_checksum(Oid oid, std::string_view data) {
  char head[12];
  store_u64(head, oid);
  io::coding::store_u32(head + 8, static_cast<std::uint32_t>(data.size()));
  io::Crc32c crc;
  crc.update(std::string_view(head, sizeof head));
  crc.update(data);
  return io::mask_crc(crc.value());
}

bool entry_valid(std::string_view bytes, Oid oid) {
  if (bytes.size() < kEntryHeaderSize) return false;
  if (load_u64(bytes.data()) != oid) return false;
  const std::uint32_t length = load_u32(bytes.data() + 24);
  if (bytes.size() != kEntryHeaderSize + length) return false;
  return load_u32(bytes.data() + 28) == entry_checksum(oid, bytes.substr(kEntryHeaderSize));
}

EncodedTransaction encode_transaction(const CommitRequest& request, std::uint64_t next_oid) {
  EncodedTransaction out;
  std::size_t size = 64 + request.meta.user.size() + request.meta.description.size() +
                     8 * request.read_checks.size();
  for (const auto& [k, v] : request.meta.extension) size += 8 + k.size() + v.size();
  for (const auto& w : request.writes) size += kEntryHeaderSize + w.data.size();
  std::string& p = out.payload;
  p.reserve(size);
  put_u64(p, 0);  // durable end: patched by the writer
  put_u64(p, kNoTid);
  put_u64(p, next_oid);
  put_u32(p, request.xid.format_id);
  put_u8(p, static_cast<std::uint8_t>(request.xid.gtrid.bytes().size()));
  p.append(request.xid.gtrid.bytes());
  if (request.xid.bqual.size() > Xid::kMaxBqual) {
    throw UsageError("a branch qualifier of " + std::to_string(request.xid.bqual.size()) +
                     " bytes is longer than Xid::kMaxBqual");
  }
  put_u8(p, static_cast<std::uint8_t>(request.xid.bqual.size()));
  p.append(request.xid.bqual);
  check_size(request.meta.user.size(), "the transaction user");
  check_size(request.meta.description.size(), "the transaction description");
  io::coding::put_string32(p, request.meta.user);
  io::coding::put_string32(p, request.meta.description);
  put_u32(p, static_cast<std::uint32_t>(request.meta.extension.size()));
  for (const auto& [k, v] : request.meta.extension) {
    check_size(k.size() + v.size(), "a transaction extension");
    io::coding::put_string32(p, k);
    io::coding::put_string32(p, v);
  }
  put_u32(p, static_cast<std::uint32_t>(request.read_checks.size()));
  for (const auto& r : request.read_checks) put_u64(p, r.oid);
  put_u32(p, static_cast<std::uint32_t>(request.writes.size()));
  out.entry_at.reserve(request.writes.size());
  for (const auto& w : request.writes) {
    check_size(w.data.size(), "an object");
    out.entry_at.push_back(p.size());
    put_u64(p, w.oid);
    put_u64(p, kNoTid);
    put_u64(p, 0);
    put_u32(p, static_cast<std::uint32_t>(w.data.size()));
    put_u32(p, entry_checksum(w.oid, w.data));
    p.append(w.data);
  }
  if (p.size() > io::kMaxRecordPayload) {
    throw UsageError("a transaction of " + std::to_string(p.size()) +
                     " bytes exceeds the record limit of " +
                     std::to_string(io::kMaxRecordPayload >> 20) +
                     " MiB: commit the change in smaller transactions");
  }
  return out;
}

void patch_entry(std::string& payload, std::size_t entry_at, Tid prev_serial,
                 std::uint64_t prev_offset) {
  store_u64(payload.data() + entry_at + kEntryPrevSerialAt, prev_serial);
  store_u64(payload.data() + entry_at + kEntryPrevOffsetAt, prev_offset);
}

std::string decode_transaction(std::string_view payload, DecodedTransaction& out, bool with_meta) {
  Decoder d(payload);
  std::uint8_t glen = 0;
  std::uint8_t blen = 0;
  std::string_view gtrid;
  std::string_view bqual;
  std::uint64_t durable_end = 0;
  if (!d.get_u64(durable_end) || !d.get_u64(out.tid) || !d.get_u64(out.next_oid) ||
      !d.get_u32(out.xid.format_id) || !d.get_u8(glen) || !d.get_bytes(glen, gtrid) ||
      !d.get_u8(blen) || !d.get_bytes(blen, bqual)) {
    return "truncated transaction header";
  }
  if (!gtrid.empty()) {
    auto g = Gtrid::from_bytes(gtrid);
    if (!g) return "a global transaction id of " + std::to_string(glen) + " bytes";
    out.xid.gtrid = *g;
  }
  out.xid.bqual.assign(bqual);
  std::uint32_t n = 0;
  std::string ignored;
  std::string& user = with_meta ? out.meta.user : ignored;
  std::string& description = with_meta ? out.meta.description : ignored;
  if (!d.get_string32(user) || !d.get_string32(description) || !d.get_u32(n))
    return "truncated transaction meta";
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string k;
    std::string v;
    if (!d.get_string32(k) || !d.get_string32(v)) return "truncated transaction extension";
    if (with_meta) out.meta.extension.emplace_back(std::move(k), std::move(v));
  }
  if (!d.get_u32(n)) return "truncated read checks";
  if (n > payload.size() / 8) return "impossible read check count " + std::to_string(n);
  out.read_checks.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint64_t oid = 0;
    if (!d.get_u64(oid)) return "truncated read checks";
    out.read_checks.push_back(oid);
  }
  if (!d.get_u32(n)) return "truncated write count";
  if (n > payload.size() / kEntryHeaderSize) return "impossible write count " + std::to_string(n);
  out.entries.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    DecodedEntry e;
    e.at = d.consumed(payload);
    std::uint32_t crc = 0;
    if (!d.get_u64(e.oid) || !d.get_u64(e.prev_serial) || !d.get_u64(e.prev_offset) ||
        !d.get_u32(e.length) || !d.get_u32(crc) || !d.get_bytes(e.length, e.data)) {
      return "truncated object entry " + std::to_string(i);
    }
    if (crc != entry_checksum(e.oid, e.data)) {
      return "checksum mismatch in the entry of object " + oid_repr(e.oid);
    }
    out.entries.push_back(e);
  }
  if (!d.done()) return "trailing bytes after the last object entry";
  return {};
}

std::string encode_commit_mark(std::uint64_t prepared_offset, Tid tid) {
  std::string out;
  put_u64(out, 0);  // durable end
  put_u64(out, prepared_offset);
  put_u64(out, tid);
  return out;
}

bool decode_commit_mark(std::string_view payload, std::uint64_t& prepared_offset, Tid& tid) {
  Decoder d(payload);
  std::uint64_t durable_end = 0;
  return d.get_u64(durable_end) && d.get_u64(prepared_offset) && d.get_u64(tid) && d.done();
}

std::string encode_abort_mark(std::uint64_t prepared_offset) {
  std::string out;
  put_u64(out, 0);  // durable end
  put_u64(out, prepared_offset);
  return out;
}

bool decode_abort_mark(std::string_view payload, std::uint64_t& prepared_offset) {
  Decoder d(payload);
  std::uint64_t durable_end = 0;
  return d.get_u64(durable_end) && d.get_u64(prepared_offset) && d.done();
}

std::optional<std::uint64_t> claimed_durable_end(const io::Record& record) {
  switch (record.type) {
    case kPreparedRecord:
    case kCommittedRecord:
    case kCommitMark:
    case kAbortMark:
      if (record.payload.size() < 8) return std::nullopt;
      return load_u64(record.payload.data() + kDurableEndAt);
    default: return std::nullopt;
  }
}

FileRecordInfo describe_record(const io::Record& record) {
  FileRecordInfo info;
  info.offset = record.offset;
  info.size = record.end() - record.offset;
  switch (record.type) {
    case kHeaderRecord:
      info.kind = decode_file_header(record.payload) ? FileRecordInfo::Kind::header
                                                     : FileRecordInfo::Kind::unknown;
      if (info.kind == FileRecordInfo::Kind::unknown) info.error = "not a file header";
      break;
    case kPreparedRecord:
    case kCommittedRecord: {
      DecodedTransaction t;
      info.error = decode_transaction(record.payload, t);
      if (!info.error.empty()) break;
      info.kind = record.type == kPreparedRecord ? FileRecordInfo::Kind::prepared
                                                 : FileRecordInfo::Kind::committed;
      info.tid = t.tid;
      info.xid = t.xid;
      info.meta = std::move(t.meta);
      info.read_checks = std::move(t.read_checks);
      for (const auto& e : t.entries) {
        info.entries.push_back({e.oid, e.prev_serial, e.prev_offset,
                                record.offset + io::kRecordHeaderSize + e.at, std::string(e.data)});
      }
      break;
    }
    case kCommitMark:
      if (decode_commit_mark(record.payload, info.prepared_offset, info.tid)) {
        info.kind = FileRecordInfo::Kind::commit_mark;
      } else {
        info.error = "malformed commit mark";
      }
      break;
    case kAbortMark:
      if (decode_abort_mark(record.payload, info.prepared_offset)) {
        info.kind = FileRecordInfo::Kind::abort_mark;
      } else {
        info.error = "malformed abort mark";
      }
      break;
    default: info.error = "unknown record type " + std::to_string(record.type); break;
  }
  return info;
}

// --- index -----------------------------------------------------------------------------------

std::string encode_index_header(const IndexHeader& h) {
  std::string out(kIndexMagic);
  put_u32(out, h.version);
  out.append(reinterpret_cast<const char*>(h.file_id.data()), h.file_id.size());
  put_u64(out, h.covered_end);
  put_u32(out, h.last_record_crc);
  put_u64(out, h.last_tid);
  put_u64(out, h.next_oid);
  put_u64(out, h.entries);
  put_u32(out, static_cast<std::uint32_t>(h.prepared.size()));
  for (auto p : h.prepared) put_u64(out, p);
  return out;
}

std::optional<IndexHeader> decode_index_header(std::string_view payload) {
  Decoder d(payload);
  IndexHeader h;
  std::string_view magic;
  std::string_view id;
  std::uint32_t n = 0;
  if (!d.get_bytes(kIndexMagic.size(), magic) || magic != kIndexMagic || !d.get_u32(h.version) ||
      h.version != kIndexVersion || !d.get_bytes(h.file_id.size(), id) ||
      !d.get_u64(h.covered_end) || !d.get_u32(h.last_record_crc) || !d.get_u64(h.last_tid) ||
      !d.get_u64(h.next_oid) || !d.get_u64(h.entries) || !d.get_u32(n) || n > payload.size() / 8) {
    return std::nullopt;
  }
  std::memcpy(h.file_id.data(), id.data(), id.size());
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint64_t p = 0;
    if (!d.get_u64(p)) return std::nullopt;
    h.prepared.push_back(p);
  }
  if (!d.done()) return std::nullopt;
  return h;
}

std::string lock_path(const std::string& path) { return path + ".lock"; }
std::string index_path(const std::string& path) { return path + ".index"; }
std::string pack_path(const std::string& path) { return path + ".pack"; }
std::string old_path(const std::string& path) { return path + ".old"; }
std::string tail_path(const std::string& path, std::int64_t now_us) {
  return path + ".tail-" + std::to_string(now_us);
}

}  // namespace xact::objectstore::fs

namespace xact::objectstore {

std::string_view to_string(FileRecordInfo::Kind kind) {
  switch (kind) {
    case FileRecordInfo::Kind::header: return "header";
    case FileRecordInfo::Kind::prepared: return "prepared";
    case FileRecordInfo::Kind::committed: return "committed";
    case FileRecordInfo::Kind::commit_mark: return "commit-mark";
    case FileRecordInfo::Kind::abort_mark: return "abort-mark";
    case FileRecordInfo::Kind::unknown: return "unknown";
  }
  return "unknown";
}

}  // namespace xact::objectstore
