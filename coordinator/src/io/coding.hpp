// Fixed-width little-endian encoding for xact's file formats (private to the library).
//
// Every on-disk integer of the record framing, the decision log and its segment headers is
// little-endian and fixed-width, so a file written on one machine reads the same on another
// and a reader can check a length before trusting it. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace xact::io::coding {

inline void put_u16(std::string& out, std::uint16_t v) {
  const char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  out.append(b, sizeof b);
}

inline void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, sizeof b);
}

inline void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, sizeof b);
}

inline void store_u32(char* dst, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<char>(v >> (8 * i));
}

inline std::uint16_t load_u16(const char* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(p[0]) |
                                    (static_cast<unsigned char>(p[1]) << 8));
}

inline std::uint32_t load_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline std::uint64_t load_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

/// Consumes fixed-width fields from the front of a byte string. Every getter returns false
/// (and consumes nothing) when too few bytes are left, so decoders never read past the end
/// of a record whose checksum happened to match.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool get_u8(std::uint8_t& v) {
    if (in_.empty()) return false;
    v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool get_u16(std::uint16_t& v) { return get_fixed(v, 2, load_u16); }
  bool get_u32(std::uint32_t& v) { return get_fixed(v, 4, load_u32); }
  bool get_u64(std::uint64_t& v) { return get_fixed(v, 8, load_u64); }
  bool get_bytes(std::size_t n, std::string_view& v) {
    if (in_.size() < n) return false;
    v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  std::size_t remaining() const { return in_.size(); }
  bool done() const { return in_.empty(); }

 private:
  template <typename T, typename Load>
  bool get_fixed(T& v, std::size_t n, Load load) {
    if (in_.size() < n) return false;
    v = load(in_.data());
    in_.remove_prefix(n);
    return true;
  }

  std::string_view in_;
};

}  // namespace xact::io::coding
