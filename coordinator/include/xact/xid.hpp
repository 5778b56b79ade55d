// Transaction identifiers.
//
// An Xid names one participant's branch of one global transaction, in the X/Open shape that
// both PostgreSQL (a text gid) and MySQL/MariaDB (XA: formatID, gtrid, bqual) accept:
//
//   format id   kFormatId, small (MySQL keeps it in a 32-bit column; keep it small)
//   gtrid       node id (16 bytes) + epoch (4 bytes, big-endian) + sequence (8 bytes,
//               big-endian) = 28 bytes, binary.  The node id says which coordinator owns
//               the transaction, so recovery only ever touches its own node's ids; the
//               epoch grows at every start of that coordinator, the sequence within a run,
//               so ids are never reused after a restart.
//   bqual       the participant's stable resource name (1..kMaxBqual bytes), so two
//               participants on one server (two databases of one cluster) get distinct ids.
//
// to_gid() renders "xact-<format hex>-<gtrid hex>-<bqual hex>", at most 199 characters, which
// fits PostgreSQL's gid (< 200 bytes).  Xids are plain values: copyable, thread-compatible.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xact {

/// 16 bytes that identify one coordinator (one decision-log directory).
struct NodeId {
  std::array<std::uint8_t, 16> bytes{};
  std::string to_hex() const;
  static std::optional<NodeId> from_hex(std::string_view hex);
  /// A fresh random node id (for a new log directory, or a manager without a log).
  static NodeId random();
  auto operator<=>(const NodeId&) const = default;
};

/// The global transaction id shared by every branch of one transaction.
class Gtrid {
 public:
  static constexpr std::size_t kSize = 28;
  Gtrid() = default;
  Gtrid(const NodeId& node, std::uint32_t epoch, std::uint64_t sequence);
  /// Parses 28 raw bytes; nullopt when the size is wrong.
  static std::optional<Gtrid> from_bytes(std::string_view raw);

  NodeId node() const;
  std::uint32_t epoch() const;
  std::uint64_t sequence() const;
  /// The 28 raw bytes (binary); empty for a default-constructed Gtrid.
  std::string_view bytes() const {
    return set_ ? std::string_view(reinterpret_cast<const char*>(bytes_.data()), kSize)
                : std::string_view();
  }
  std::string to_hex() const;
  bool empty() const { return !set_; }

  /// Byte order (unsigned, as the bytes compare), then set before empty.
  auto operator<=>(const Gtrid&) const = default;

 private:
  // Inline, not a std::string: a transaction id is copied into every fence, undo record and
  // branch id, and 28 bytes do not fit a std::string's small buffer (a heap block per copy).
  std::array<unsigned char, kSize> bytes_{};
  bool set_ = false;
};

struct Xid {
  static constexpr std::uint32_t kFormatId = 0x7861;  // "xa"; small on purpose
  static constexpr std::size_t kMaxBqual = 64;        // XA's limit; also keeps to_gid() < 200

  std::uint32_t format_id = kFormatId;
  Gtrid gtrid;
  std::string bqual;  // binary-safe; the participant's resource name

  /// "xact-<format hex>-<gtrid hex>-<bqual hex>": the PostgreSQL gid.
  std::string to_gid() const;
  /// Parses what to_gid() produced for an id of ours (format id kFormatId, a 28-byte gtrid,
  /// a 1..kMaxBqual-byte bqual); nullopt for any other text (ids of other programs).
  static std::optional<Xid> from_gid(std::string_view gid);
  /// Builds from XA RECOVER's columns (data = gtrid bytes followed by bqual bytes);
  /// nullopt when the shape is not ours.
  static std::optional<Xid> from_xa(std::uint32_t format_id, std::string_view data,
                                    std::size_t gtrid_length, std::size_t bqual_length);

  auto operator<=>(const Xid&) const = default;
};

/// Throws UsageError when a resource name cannot be a branch qualifier (empty or longer
/// than Xid::kMaxBqual bytes).
void check_branch_name(std::string_view resource_name);

}  // namespace xact
