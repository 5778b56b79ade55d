// Fixed-width little-endian byte coding for xact's file formats: the record framing, the
// decision log, the file storage's data and index files, the object codec's doubles, and any
// new log (a session store's compensation log) written through io::Env.
//
// Every on-disk integer is little-endian and fixed-width, so a file written on one machine
// reads the same on another and a reader can check a length before trusting it. put_* append
// to a byte string, store_* overwrite bytes in place (fields patched after encoding), load_*
// read from bytes the caller has checked are there, and Decoder reads fields from the front of
// a payload, refusing (returning false) rather than reading past its end.
//
// Pure functions and a value type; thread-safe. Header-only and without dependencies beyond
// the standard library (installed headers never include Boost).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

namespace xact::io::coding {

namespace detail {

template <typename T>
inline void store_le(char* dst, T v) {
  static_assert(std::is_unsigned_v<T>);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, &v, sizeof v);
  } else {
    for (std::size_t i = 0; i < sizeof v; ++i) dst[i] = static_cast<char>(v >> (8 * i));
  }
}

template <typename T>
inline T load_le(const char* p) {
  static_assert(std::is_unsigned_v<T>);
  T v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof v);
  } else {
    for (std::size_t i = sizeof v; i-- > 0;) {
      v = static_cast<T>((v << 8) | static_cast<unsigned char>(p[i]));
    }
  }
  return v;
}

template <typename T>
inline void put_le(std::string& out, T v) {
  char b[sizeof v];
  store_le(b, v);
  out.append(b, sizeof b);
}

}  // namespace detail

inline void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
inline void put_u16(std::string& out, std::uint16_t v) { detail::put_le(out, v); }
inline void put_u32(std::string& out, std::uint32_t v) { detail::put_le(out, v); }
inline void put_u64(std::string& out, std::uint64_t v) { detail::put_le(out, v); }
/// A u32 length, then the bytes. The caller checks that the size fits in 32 bits.
inline void put_string32(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

inline void store_u32(char* dst, std::uint32_t v) { detail::store_le(dst, v); }
inline void store_u64(char* dst, std::uint64_t v) { detail::store_le(dst, v); }

inline std::uint16_t load_u16(const char* p) { return detail::load_le<std::uint16_t>(p); }
inline std::uint32_t load_u32(const char* p) { return detail::load_le<std::uint32_t>(p); }
inline std::uint64_t load_u64(const char* p) { return detail::load_le<std::uint64_t>(p); }

/// Consumes fixed-width fields from the front of a byte string. Every getter returns false
/// (and consumes nothing) when too few bytes are left, so decoders never read past the end
/// of a record whose checksum happened to match. Views it returns point into the input.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  bool get_u8(std::uint8_t& v) {
    if (in_.empty()) return false;
    v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool get_u16(std::uint16_t& v) { return get_fixed(v, load_u16); }
  bool get_u32(std::uint32_t& v) { return get_fixed(v, load_u32); }
  bool get_u64(std::uint64_t& v) { return get_fixed(v, load_u64); }
  bool get_bytes(std::size_t n, std::string_view& v) {
    if (in_.size() < n) return false;
    v = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  /// A u32 length, then that many bytes (as put_string32 writes them).
  bool get_string32(std::string& v) {
    const std::string_view save = in_;
    std::uint32_t n = 0;
    std::string_view bytes;
    if (!get_u32(n) || !get_bytes(n, bytes)) {
      in_ = save;
      return false;
    }
    v.assign(bytes);
    return true;
  }
  std::size_t remaining() const { return in_.size(); }
  bool done() const { return in_.empty(); }
  /// How many bytes of `whole` (the string this decoder was made from) were consumed.
  std::size_t consumed(std::string_view whole) const { return whole.size() - in_.size(); }

 private:
  template <typename T, typename Load>
  bool get_fixed(T& v, Load load) {
    if (in_.size() < sizeof v) return false;
    v = load(in_.data());
    in_.remove_prefix(sizeof v);
    return true;
  }

  std::string_view in_;
};

}  // namespace xact::io::coding
