// The decision log's on-disk format: file names, the segment header, and the entries inside
// a batch record (private to the library; the layout is documented in doc/decision_log.md).
//
// A segment is a file of framed records (xact/io/record.hpp): one segment-header record, then
// batch records. A batch record carries the entries of one group-commit write, so a write cut
// off by a crash loses one whole batch - never half of one - and a valid record after a bad
// one always means later damage, not a torn write.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <xact/decision_log.hpp>
#include <xact/xid.hpp>

namespace xact::detail::dlog {

// Framing record types.
inline constexpr std::uint8_t kSegmentHeaderRecord = 1;
inline constexpr std::uint8_t kBatchRecord = 2;

// Entry kinds inside a batch record.
enum class EntryKind : std::uint8_t {
  kCommit = 1,           // a commit decision
  kDone = 2,             // every participant of a committed transaction finished
  kHeuristic = 3,        // a participant decided on its own; kept until forgotten
  kForgetHeuristic = 4,  // an operator forgot a heuristic outcome
  kDamage = 5,           // damage an open tolerated: commit records may have been lost
};

inline constexpr std::string_view kMagic = "XACTDLOG";
/// Version 2 adds the preallocated size to the segment header (and the damage entry); version 1
/// segments are still read.
inline constexpr std::uint32_t kFormatVersion = 2;
inline constexpr std::uint32_t kOldestFormatVersion = 1;
/// kind (1) + body length (4) + gtrid (28): every done entry has exactly this size.
inline constexpr std::size_t kDoneEntrySize = 1 + 4 + Gtrid::kSize;

inline constexpr std::string_view kLockFile = "LOCK";
inline constexpr std::string_view kNodeIdFile = "node-id";
inline constexpr std::string_view kTempSuffix = ".tmp";

struct SegmentHeader {
  NodeId node;
  std::uint32_t epoch = 0;
  std::uint64_t sequence = 0;
  /// The size the segment was zero-filled to when it was created (0: not preallocated, or a
  /// version 1 segment). A preallocated segment never shrinks, so a shorter file was cut.
  std::uint64_t preallocated = 0;
};

/// What the node-id file holds: the node id, and (since format version 2) the epoch and the
/// segment sequence of the newest segment written, rewritten at every rotation. They let open
/// tell a missing segment from a new log and keep the epoch when every segment is gone.
struct NodeFile {
  NodeId node;
  bool has_position = false;  ///< false for a file written by format version 1 (id only)
  std::uint32_t epoch = 0;
  std::uint64_t sequence = 0;
};
/// "<32 hex digits>\nepoch <n>\nsegment <n>\n"
std::string encode_node_file(const NodeFile& file);
/// nullopt when the text is not a node-id file.
std::optional<NodeFile> decode_node_file(std::string_view text);

std::string encode_header(const SegmentHeader& header);
/// nullopt when the payload is not a header of a format version this code reads.
std::optional<SegmentHeader> decode_header(std::string_view payload);

/// Appends a commit entry. Throws UsageError when the record cannot be encoded (gtrid not
/// 28 bytes, a name longer than 65535 bytes, more than 65535 participants).
void append_commit_entry(std::string& out, const CommitRecord& record);
void append_done_entry(std::string& out, const Gtrid& gtrid);

/// Appends a heuristic entry (same limits as append_commit_entry).
void append_heuristic_entry(std::string& out, const HeuristicRecord& record);
void append_forget_heuristic_entry(std::string& out, const Gtrid& gtrid, std::string_view resource);
/// nullopt when malformed.
std::optional<HeuristicRecord> decode_heuristic_entry(std::string_view entry);
/// The resource named by a forget entry; nullopt when malformed.
std::optional<std::string> decode_forget_heuristic_entry(std::string_view entry);

/// A damage entry: `gtrid` is (node, the newest epoch whose commit records may have been lost,
/// a number), followed by the time and what was lost.
void append_damage_entry(std::string& out, const LogDamage& damage);
std::optional<LogDamage> decode_damage_entry(std::string_view entry);

/// Decodes one commit entry as written by append_commit_entry (kind byte included).
/// nullopt when malformed.
std::optional<CommitRecord> decode_commit_entry(std::string_view entry);

/// Calls `visit(kind, gtrid, entry)` for each entry of a batch payload, `entry` being the
/// entry's whole encoding. Returns an error message for a malformed payload (an empty string
/// when every entry decoded).
std::string decode_batch(
    std::string_view payload,
    const std::function<void(EntryKind kind, const Gtrid& gtrid, std::string_view entry)>& visit);

/// "decisions-0000000000000042.log"
std::string segment_name(std::uint64_t sequence);
/// The sequence number of a segment file name; nullopt for any other name.
std::optional<std::uint64_t> parse_segment_name(std::string_view name);

}  // namespace xact::detail::dlog
