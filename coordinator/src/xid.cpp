// Transaction identifiers: encoding, parsing and the checks on branch names.
#include <xact/xid.hpp>

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <cstring>

#include <xact/errors.hpp>

namespace xact {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kGidPrefix = "xact-";
constexpr std::size_t kFormatHexSize = 8;

std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kHexDigits[b >> 4];
    out += kHexDigits[b & 0xf];
  }
  return out;
}

int hex_value(char c, bool lower_only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (!lower_only && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes an even-length hex string; nullopt on any other character.
std::optional<std::string> from_hex(std::string_view hex, bool lower_only) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i], lower_only);
    const int lo = hex_value(hex[i + 1], lower_only);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>((hi << 4) | lo);
  }
  return out;
}

std::uint64_t load_be(std::string_view bytes) {
  std::uint64_t v = 0;
  for (const char c : bytes) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

// Our ids only: recovery must never decide a branch some other coordinator owns.
bool is_our_shape(std::uint32_t format_id, std::size_t gtrid_size, std::size_t bqual_size) {
  return format_id == Xid::kFormatId && gtrid_size == Gtrid::kSize && bqual_size >= 1 &&
         bqual_size <= Xid::kMaxBqual;
}

}  // namespace

std::string NodeId::to_hex() const {
  return xact::to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::optional<NodeId> NodeId::from_hex(std::string_view hex) {
  if (hex.size() != 2 * std::tuple_size_v<decltype(bytes)>) return std::nullopt;
  const auto raw = xact::from_hex(hex, /*lower_only=*/false);
  if (!raw) return std::nullopt;
  NodeId id;
  std::memcpy(id.bytes.data(), raw->data(), id.bytes.size());
  return id;
}

NodeId NodeId::random() {
  // Boost's random_generator draws from the operating system's entropy source
  // (getrandom / /dev/urandom), so two coordinators never pick the same id by accident.
  boost::uuids::random_generator generate;
  const boost::uuids::uuid uuid = generate();
  NodeId id;
  static_assert(sizeof(uuid.data) == sizeof(id.bytes));
  std::memcpy(id.bytes.data(), uuid.data, id.bytes.size());
  return id;
}

Gtrid::Gtrid(const NodeId& node, std::uint32_t epoch, std::uint64_t sequence) : set_(true) {
  static_assert(sizeof(node.bytes) == 16);
  std::memcpy(bytes_.data(), node.bytes.data(), node.bytes.size());
  // Big-endian, so byte order is creation order within a node.
  for (int i = 0; i < 4; ++i) bytes_[16 + i] = static_cast<unsigned char>(epoch >> (8 * (3 - i)));
  for (int i = 0; i < 8; ++i) {
    bytes_[20 + i] = static_cast<unsigned char>(sequence >> (8 * (7 - i)));
  }
}

std::optional<Gtrid> Gtrid::from_bytes(std::string_view raw) {
  if (raw.size() != kSize) return std::nullopt;
  Gtrid g;
  std::memcpy(g.bytes_.data(), raw.data(), kSize);
  g.set_ = true;
  return g;
}

NodeId Gtrid::node() const {
  NodeId id;
  if (set_) std::memcpy(id.bytes.data(), bytes_.data(), id.bytes.size());
  return id;
}

std::uint32_t Gtrid::epoch() const {
  if (!set_) return 0;
  return static_cast<std::uint32_t>(load_be(bytes().substr(16, 4)));
}

std::uint64_t Gtrid::sequence() const {
  if (!set_) return 0;
  return load_be(bytes().substr(20, 8));
}

std::string Gtrid::to_hex() const { return xact::to_hex(bytes()); }

std::string Xid::to_gid() const {
  std::string format_hex;
  for (int shift = 28; shift >= 0; shift -= 4) format_hex += kHexDigits[(format_id >> shift) & 0xf];
  return std::string(kGidPrefix) + format_hex + "-" + gtrid.to_hex() + "-" + xact::to_hex(bqual);
}

std::optional<Xid> Xid::from_gid(std::string_view gid) {
  // Exactly what to_gid() writes, lower-case hex and all: anything else belongs to another
  // program sharing the database, and recovery must leave it alone.
  if (!gid.starts_with(kGidPrefix)) return std::nullopt;
  gid.remove_prefix(kGidPrefix.size());
  const std::size_t gtrid_hex = 2 * Gtrid::kSize;
  if (gid.size() < kFormatHexSize + 1 + gtrid_hex + 1 + 2 || gid[kFormatHexSize] != '-' ||
      gid[kFormatHexSize + 1 + gtrid_hex] != '-') {
    return std::nullopt;
  }
  const auto format = xact::from_hex(gid.substr(0, kFormatHexSize), /*lower_only=*/true);
  const auto gtrid = xact::from_hex(gid.substr(kFormatHexSize + 1, gtrid_hex), true);
  const auto bqual = xact::from_hex(gid.substr(kFormatHexSize + 1 + gtrid_hex + 1), true);
  if (!format || !gtrid || !bqual) return std::nullopt;
  const auto format_id = static_cast<std::uint32_t>(load_be(*format));
  if (!is_our_shape(format_id, gtrid->size(), bqual->size())) return std::nullopt;
  Xid xid;
  xid.format_id = format_id;
  xid.gtrid = *Gtrid::from_bytes(*gtrid);
  xid.bqual = std::move(*bqual);
  return xid;
}

std::optional<Xid> Xid::from_xa(std::uint32_t format_id, std::string_view data,
                                std::size_t gtrid_length, std::size_t bqual_length) {
  if (!is_our_shape(format_id, gtrid_length, bqual_length)) return std::nullopt;
  if (data.size() != gtrid_length + bqual_length) return std::nullopt;
  Xid xid;
  xid.format_id = format_id;
  xid.gtrid = *Gtrid::from_bytes(data.substr(0, gtrid_length));
  xid.bqual.assign(data.substr(gtrid_length));
  return xid;
}

void check_branch_name(std::string_view resource_name) {
  if (resource_name.empty()) {
    throw UsageError(
        "a resource manager has an empty name: every participant needs a stable, non-empty "
        "name of at most " +
        std::to_string(Xid::kMaxBqual) +
        " bytes, because it becomes the branch qualifier of its transaction ids and recovery "
        "finds the participant by it after a restart");
  }
  if (resource_name.size() > Xid::kMaxBqual) {
    throw UsageError("the resource manager name '" + std::string(resource_name.substr(0, 80)) +
                     (resource_name.size() > 80 ? "..." : "") + "' is " +
                     std::to_string(resource_name.size()) +
                     " bytes long, but branch "
                     "qualifiers are limited to " +
                     std::to_string(Xid::kMaxBqual) +
                     " bytes (XA): choose a shorter name that stays the same across restarts");
  }
}

}  // namespace xact
