// FileStorage's on-disk format: record types and payload codecs of the data file and of the
// index file (private; the byte layout is documented in doc/file_storage.md).
//
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xact/io/coding.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/objectstore/storage.hpp>

namespace xact::objectstore::fs {

// Framing record types of the data file.
inline constexpr std::uint8_t kHeaderRecord = 1;
inline constexpr std::uint8_t kPreparedRecord = 2;
inline constexpr std::uint8_t kCommittedRecord = 3;
inline constexpr std::uint8_t kCommitMark = 4;
inline constexpr std::uint8_t kAbortMark = 5;

// Framing record types of the index file.
inline constexpr std::uint8_t kIndexHeader = 1;
inline constexpr std::uint8_t kIndexEntries = 2;
inline constexpr std::uint8_t kIndexEnd = 3;

inline constexpr std::string_view kFileMagic = "XACTOBJS";
inline constexpr std::string_view kIndexMagic = "XACTOIDX";
/// Version 2 added the durable end to every data record and the evidence fields of the header
/// (doc/file_storage.md, "Format versions"); version 1 files are refused with a clear error.
inline constexpr std::uint32_t kFormatVersion = 2;
inline constexpr std::uint32_t kIndexVersion = 1;

/// The largest preallocation chunk. The writer grows the file by the chunk its header records,
/// so a larger value there is damage (a checksum that happened to match), not a size to write.
inline constexpr std::uint64_t kMaxChunk = 1ull << 30;

/// oid (8) + prev serial (8) + prev offset (8) + length (4) + masked crc (4).
inline constexpr std::size_t kEntryHeaderSize = 32;
/// Where, inside an entry, the fields patched under the commit lock are.
inline constexpr std::size_t kEntryPrevSerialAt = 8;
inline constexpr std::size_t kEntryPrevOffsetAt = 16;
/// Every data record (prepared, committed, marks) starts with the durable end: the offset up to
/// which the file was fsynced when the batch holding the record was written (patched by the
/// writer at the front of the group-commit queue).
inline constexpr std::size_t kDurableEndAt = 0;
/// The tid follows it in a transaction payload (patched for one-phase commits).
inline constexpr std::size_t kTidAt = 8;
/// oid (8) + offset (8) + length (4) + serial (8).
inline constexpr std::size_t kIndexEntrySize = 28;

using FileId = std::array<std::uint8_t, 16>;

// --- little-endian helpers: xact's one set (<xact/io/coding.hpp>) ---------------------------
using io::coding::Decoder;
using io::coding::load_u32;
using io::coding::load_u64;
using io::coding::put_u32;
using io::coding::put_u64;
using io::coding::put_u8;
using io::coding::store_u64;

// --- the data file ---------------------------------------------------------------------------
struct FileHeader {
  std::uint32_t version = kFormatVersion;
  FileId file_id{};
  std::int64_t created_us = 0;
  /// Oids below this were in use before this file was written (pack keeps the high-water
  /// mark of the file it copied, so oids of packed-away objects are never handed out again).
  std::uint64_t next_oid = 1;
  /// Bytes of this file known durable when it was made: the header for a new file, the whole
  /// copy for a pack. Damage below it is never a torn tail.
  std::uint64_t durable_end = 0;
  /// The file grows in zero-filled chunks of this size (0: no preallocation). Its size is
  /// evidence: a writer never leaves non-zero bytes at the end of a file whose size is not a
  /// multiple of it, nor ends the data exactly there.
  std::uint64_t chunk = 0;
  /// The file id of the file a pack copied (zeros for a new file): how open recognises a
  /// pack's own result.
  FileId packed_from{};
};
/// A header record's payload has a fixed size, so pack can rewrite it in place.
std::string encode_file_header(const FileHeader& header);
/// nullopt when malformed, of another version, or with a chunk above kMaxChunk.
std::optional<FileHeader> decode_file_header(std::string_view payload);
/// The format version of a header payload with the right magic (nullopt: not a storage file).
std::optional<std::uint32_t> file_header_version(std::string_view payload);
FileId random_file_id();

/// Where a transaction payload's patchable fields are, after encoding.
struct EncodedTransaction {
  std::string payload;
  /// Offsets inside `payload` of each write's entry (in request order).
  std::vector<std::size_t> entry_at;
};

/// Encodes a prepared or committed transaction's payload with tid 0 and empty back pointers
/// (patched under the commit lock). Throws UsageError when it cannot be encoded.
EncodedTransaction encode_transaction(const CommitRequest& request, std::uint64_t next_oid);
/// Patches a write's back pointer.
void patch_entry(std::string& payload, std::size_t entry_at, Tid prev_serial,
                 std::uint64_t prev_offset);
inline void patch_tid(std::string& payload, Tid tid) { store_u64(payload.data() + kTidAt, tid); }
inline void patch_durable_end(std::string& payload, std::uint64_t end) {
  store_u64(payload.data() + kDurableEndAt, end);
}
/// The durable end a data record (types 2 to 5) claims; nullopt for other types.
std::optional<std::uint64_t> claimed_durable_end(const io::Record& record);

/// A decoded transaction payload; entries point into the payload they were decoded from.
struct DecodedEntry {
  Oid oid = 0;
  Tid prev_serial = kNoTid;
  std::uint64_t prev_offset = 0;
  std::size_t at = 0;  ///< offset of the entry inside the payload
  std::uint32_t length = 0;
  std::string_view data;
};
struct DecodedTransaction {
  Tid tid = kNoTid;
  std::uint64_t next_oid = 0;
  Xid xid;
  TransactionMeta meta;
  std::vector<Oid> read_checks;
  std::vector<DecodedEntry> entries;
};
/// Decodes a transaction payload; an error message (empty on success) when malformed.
std::string decode_transaction(std::string_view payload, DecodedTransaction& out,
                               bool with_meta = true);

/// The masked CRC-32C an entry carries: over its oid, length and data.
std::uint32_t entry_checksum(Oid oid, std::string_view data);
/// Checks an entry read back as `bytes` (header + data): its oid and checksum.
bool entry_valid(std::string_view bytes, Oid oid);

std::string encode_commit_mark(std::uint64_t prepared_offset, Tid tid);
bool decode_commit_mark(std::string_view payload, std::uint64_t& prepared_offset, Tid& tid);
std::string encode_abort_mark(std::uint64_t prepared_offset);
bool decode_abort_mark(std::string_view payload, std::uint64_t& prepared_offset);

/// Decodes any record of the data file for tools.
FileRecordInfo describe_record(const io::Record& record);

// --- the index file --------------------------------------------------------------------------
struct IndexHeader {
  std::uint32_t version = kIndexVersion;
  FileId file_id{};
  std::uint64_t covered_end = 0;      ///< the index describes the records before this offset
  std::uint32_t last_record_crc = 0;  ///< stored (masked) checksum of the record ending there
  Tid last_tid = kNoTid;
  std::uint64_t next_oid = 1;
  std::uint64_t entries = 0;
  std::vector<std::uint64_t> prepared;  ///< offsets of undecided prepared records
};
std::string encode_index_header(const IndexHeader& header);
std::optional<IndexHeader> decode_index_header(std::string_view payload);

/// "FILE.tail-<micros>" and the other names beside the data file.
std::string lock_path(const std::string& path);
std::string index_path(const std::string& path);
std::string pack_path(const std::string& path);
std::string old_path(const std::string& path);
std::string tail_path(const std::string& path, std::int64_t now_us);

}  // namespace xact::objectstore::fs
