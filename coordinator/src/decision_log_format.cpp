// The decision log's on-disk format.
#include "decision_log_format.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <vector>

#include <xact/errors.hpp>
#include <xact/io/coding.hpp>

namespace xact::detail::dlog {
namespace {

namespace coding = io::coding;

constexpr std::string_view kSegmentPrefix = "decisions-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr std::size_t kSequenceDigits = 16;

void put_short_string(std::string& out, std::string_view s, std::string_view what) {
  if (s.size() > 0xffff) {
    throw UsageError(std::string(what) + " of " + std::to_string(s.size()) +
                     " bytes cannot be logged: the decision log keeps names up to 65535 bytes");
  }
  coding::put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}

bool get_short_string(coding::Decoder& in, std::string& out) {
  std::uint16_t n = 0;
  std::string_view bytes;
  if (!in.get_u16(n) || !in.get_bytes(n, bytes)) return false;
  out.assign(bytes);
  return true;
}

}  // namespace

std::string encode_header(const SegmentHeader& header) {
  std::string out(kMagic);
  coding::put_u32(out, kFormatVersion);
  out.append(reinterpret_cast<const char*>(header.node.bytes.data()), header.node.bytes.size());
  coding::put_u32(out, header.epoch);
  coding::put_u64(out, header.sequence);
  coding::put_u64(out, header.preallocated);
  return out;
}

std::optional<SegmentHeader> decode_header(std::string_view payload) {
  coding::Decoder in(payload);
  std::string_view magic;
  std::string_view node;
  std::uint32_t version = 0;
  SegmentHeader header;
  if (!in.get_bytes(kMagic.size(), magic) || magic != kMagic || !in.get_u32(version) ||
      version < kOldestFormatVersion || version > kFormatVersion ||
      !in.get_bytes(header.node.bytes.size(), node) || !in.get_u32(header.epoch) ||
      !in.get_u64(header.sequence) || (version >= 2 && !in.get_u64(header.preallocated)) ||
      !in.done()) {
    return std::nullopt;
  }
  std::memcpy(header.node.bytes.data(), node.data(), node.size());
  return header;
}

void append_commit_entry(std::string& out, const CommitRecord& record) {
  if (record.gtrid.bytes().size() != Gtrid::kSize) {
    throw UsageError(
        "a commit record needs a transaction id (a Gtrid from new_gtrid()); "
        "this one is empty");
  }
  if (record.participants.size() > 0xffff) {
    throw UsageError("a commit record with " + std::to_string(record.participants.size()) +
                     " participants cannot be logged: the limit is 65535");
  }
  std::string body(record.gtrid.bytes());
  coding::put_u64(body, static_cast<std::uint64_t>(record.time_us));
  coding::put_u16(body, static_cast<std::uint16_t>(record.participants.size()));
  for (const auto& p : record.participants) {
    put_short_string(body, p.resource, "a resource name");
    put_short_string(body, p.bqual, "a branch qualifier");
  }
  out.push_back(static_cast<char>(EntryKind::kCommit));
  coding::put_u32(out, static_cast<std::uint32_t>(body.size()));
  out.append(body);
}

void append_done_entry(std::string& out, const Gtrid& gtrid) {
  out.push_back(static_cast<char>(EntryKind::kDone));
  coding::put_u32(out, static_cast<std::uint32_t>(Gtrid::kSize));
  out.append(gtrid.bytes());
}

namespace {

void check_gtrid(const Gtrid& gtrid, std::string_view what) {
  if (gtrid.bytes().size() != Gtrid::kSize) {
    throw UsageError(std::string(what) + " needs a transaction id (a Gtrid); this one is empty");
  }
}

void append_entry(std::string& out, EntryKind kind, const std::string& body) {
  out.push_back(static_cast<char>(kind));
  coding::put_u32(out, static_cast<std::uint32_t>(body.size()));
  out.append(body);
}

// The body of an entry of `kind` after its gtrid, or nullopt when the header is wrong.
std::optional<coding::Decoder> open_entry(std::string_view entry, EntryKind kind,
                                          std::string_view& gtrid) {
  coding::Decoder in(entry);
  std::uint8_t k = 0;
  std::uint32_t size = 0;
  if (!in.get_u8(k) || k != static_cast<std::uint8_t>(kind) || !in.get_u32(size) ||
      size != in.remaining() || !in.get_bytes(Gtrid::kSize, gtrid)) {
    return std::nullopt;
  }
  return in;
}

}  // namespace

void append_heuristic_entry(std::string& out, const HeuristicRecord& record) {
  check_gtrid(record.gtrid, "a heuristic record");
  std::string body(record.gtrid.bytes());
  coding::put_u64(body, static_cast<std::uint64_t>(record.time_us));
  put_short_string(body, record.resource, "a resource name");
  put_short_string(body, record.bqual, "a branch qualifier");
  put_short_string(body, record.outcome, "a heuristic outcome");
  put_short_string(body, record.detail.substr(0, 0xffff), "a heuristic detail");
  append_entry(out, EntryKind::kHeuristic, body);
}

void append_forget_heuristic_entry(std::string& out, const Gtrid& gtrid,
                                   std::string_view resource) {
  check_gtrid(gtrid, "forgetting a heuristic outcome");
  std::string body(gtrid.bytes());
  put_short_string(body, resource, "a resource name");
  append_entry(out, EntryKind::kForgetHeuristic, body);
}

std::optional<HeuristicRecord> decode_heuristic_entry(std::string_view entry) {
  std::string_view gtrid;
  auto in = open_entry(entry, EntryKind::kHeuristic, gtrid);
  HeuristicRecord record;
  std::uint64_t time = 0;
  if (!in || !in->get_u64(time) || !get_short_string(*in, record.resource) ||
      !get_short_string(*in, record.bqual) || !get_short_string(*in, record.outcome) ||
      !get_short_string(*in, record.detail) || !in->done()) {
    return std::nullopt;
  }
  record.gtrid = *Gtrid::from_bytes(gtrid);
  record.time_us = static_cast<std::int64_t>(time);
  return record;
}

std::optional<std::string> decode_forget_heuristic_entry(std::string_view entry) {
  std::string_view gtrid;
  auto in = open_entry(entry, EntryKind::kForgetHeuristic, gtrid);
  std::string resource;
  if (!in || !get_short_string(*in, resource) || !in->done()) return std::nullopt;
  return resource;
}

void append_damage_entry(std::string& out, const LogDamage& damage) {
  check_gtrid(damage.id, "a damage record");
  std::string body(damage.id.bytes());
  coding::put_u64(body, static_cast<std::uint64_t>(damage.time_us));
  put_short_string(body, damage.description.substr(0, 0xffff), "a damage description");
  append_entry(out, EntryKind::kDamage, body);
}

std::optional<LogDamage> decode_damage_entry(std::string_view entry) {
  std::string_view gtrid;
  auto in = open_entry(entry, EntryKind::kDamage, gtrid);
  LogDamage damage;
  std::uint64_t time = 0;
  if (!in || !in->get_u64(time) || !get_short_string(*in, damage.description) || !in->done()) {
    return std::nullopt;
  }
  damage.id = *Gtrid::from_bytes(gtrid);
  damage.up_to_epoch = damage.id.epoch();
  damage.time_us = static_cast<std::int64_t>(time);
  return damage;
}

std::string encode_node_file(const NodeFile& file) {
  std::string out = file.node.to_hex() + "\n";
  if (file.has_position) {
    out +=
        "epoch " + std::to_string(file.epoch) + "\nsegment " + std::to_string(file.sequence) + "\n";
  }
  return out;
}

std::optional<NodeFile> decode_node_file(std::string_view text) {
  NodeFile out;
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) lines.push_back(line);
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  if (lines.empty()) return std::nullopt;
  const auto id = NodeId::from_hex(lines[0]);
  if (!id) return std::nullopt;
  out.node = *id;
  if (lines.size() == 1) return out;  // format version 1: the id alone
  const auto number = [](std::string_view line, std::string_view key,
                         std::uint64_t max) -> std::optional<std::uint64_t> {
    if (!line.starts_with(key) || line.size() == key.size()) return std::nullopt;
    std::uint64_t n = 0;
    const auto digits = line.substr(key.size());
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (error != std::errc() || end != digits.data() + digits.size() || n > max) {
      return std::nullopt;
    }
    return n;
  };
  const auto epoch = number(lines[1], "epoch ", UINT32_MAX);
  const auto sequence = lines.size() == 3 ? number(lines[2], "segment ", UINT64_MAX) : std::nullopt;
  if (!epoch || !sequence) return std::nullopt;
  out.has_position = true;
  out.epoch = static_cast<std::uint32_t>(*epoch);
  out.sequence = *sequence;
  return out;
}

std::optional<CommitRecord> decode_commit_entry(std::string_view entry) {
  coding::Decoder in(entry);
  std::uint8_t kind = 0;
  std::uint32_t size = 0;
  std::string_view gtrid;
  std::uint64_t time = 0;
  std::uint16_t count = 0;
  if (!in.get_u8(kind) || kind != static_cast<std::uint8_t>(EntryKind::kCommit) ||
      !in.get_u32(size) || size != in.remaining() || !in.get_bytes(Gtrid::kSize, gtrid) ||
      !in.get_u64(time) || !in.get_u16(count)) {
    return std::nullopt;
  }
  CommitRecord record;
  record.gtrid = *Gtrid::from_bytes(gtrid);
  record.time_us = static_cast<std::int64_t>(time);
  record.participants.resize(count);
  for (auto& p : record.participants) {
    if (!get_short_string(in, p.resource) || !get_short_string(in, p.bqual)) return std::nullopt;
  }
  if (!in.done()) return std::nullopt;
  return record;
}

std::string decode_batch(
    std::string_view payload,
    const std::function<void(EntryKind kind, const Gtrid& gtrid, std::string_view entry)>& visit) {
  coding::Decoder in(payload);
  while (!in.done()) {
    const std::size_t offset = payload.size() - in.remaining();
    std::uint8_t kind = 0;
    std::uint32_t size = 0;
    std::string_view body;
    if (!in.get_u8(kind) || !in.get_u32(size) || !in.get_bytes(size, body) ||
        body.size() < Gtrid::kSize) {
      return "truncated entry at byte " + std::to_string(offset) + " of a batch";
    }
    const std::string_view entry = payload.substr(offset, 1 + 4 + size);
    const Gtrid gtrid = *Gtrid::from_bytes(body.substr(0, Gtrid::kSize));
    switch (static_cast<EntryKind>(kind)) {
      case EntryKind::kCommit:
        if (!decode_commit_entry(entry)) {
          return "malformed commit entry at byte " + std::to_string(offset) + " of a batch";
        }
        break;
      case EntryKind::kDone:
        if (size != Gtrid::kSize) {
          return "malformed done entry at byte " + std::to_string(offset) + " of a batch";
        }
        break;
      case EntryKind::kHeuristic:
        if (!decode_heuristic_entry(entry)) {
          return "malformed heuristic entry at byte " + std::to_string(offset) + " of a batch";
        }
        break;
      case EntryKind::kForgetHeuristic:
        if (!decode_forget_heuristic_entry(entry)) {
          return "malformed forget entry at byte " + std::to_string(offset) + " of a batch";
        }
        break;
      case EntryKind::kDamage:
        if (!decode_damage_entry(entry)) {
          return "malformed damage entry at byte " + std::to_string(offset) + " of a batch";
        }
        break;
      default:
        // A format version 1 reader cannot know what a newer kind means for recovery, and
        // guessing could roll back a committed transaction: refuse.
        return "unknown entry kind " + std::to_string(kind) + " at byte " + std::to_string(offset) +
               " of a batch";
    }
    visit(static_cast<EntryKind>(kind), gtrid, entry);
  }
  return {};
}

std::string segment_name(std::uint64_t sequence) {
  char digits[kSequenceDigits + 1];
  std::snprintf(digits, sizeof digits, "%016llu", static_cast<unsigned long long>(sequence));
  return std::string(kSegmentPrefix) + digits + std::string(kSegmentSuffix);
}

std::optional<std::uint64_t> parse_segment_name(std::string_view name) {
  if (name.size() != kSegmentPrefix.size() + kSequenceDigits + kSegmentSuffix.size() ||
      !name.starts_with(kSegmentPrefix) || !name.ends_with(kSegmentSuffix)) {
    return std::nullopt;
  }
  std::uint64_t sequence = 0;
  for (const char c : name.substr(kSegmentPrefix.size(), kSequenceDigits)) {
    if (c < '0' || c > '9') return std::nullopt;
    sequence = sequence * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return sequence;
}

}  // namespace xact::detail::dlog
