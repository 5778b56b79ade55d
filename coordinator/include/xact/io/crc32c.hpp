// CRC-32C (Castagnoli), the checksum of every record xact writes to its files.
//
// CRC-32C rather than zlib's CRC-32: it detects more error patterns at typical record
// lengths and is the checksum iSCSI, ext4, LevelDB and RocksDB use, so its behaviour on
// storage errors is well studied. The implementation is Intel ISA-L's (libisal), which uses the
// processor's crc32 instruction.
//
// Thread-safety: the free functions are pure; a Crc32c object has one user at a time.
#pragma once

#include <cstdint>
#include <string_view>

namespace xact::io {

/// An incremental CRC-32C: feeding "ab" then "c" gives the same value as "abc".
class Crc32c {
 public:
  void update(std::string_view data);
  std::uint32_t value() const;

 private:
  // The running (uninverted) remainder, so no library header is needed here.
  std::uint32_t remainder_ = 0xFFFFFFFFu;
};

/// The CRC-32C of `data` ("123456789" -> 0xE3069283).
std::uint32_t crc32c(std::string_view data);

/// The stored form of a checksum. Records may carry other records (a checkpoint copies
/// records, a payload may embed framed data), and the CRC of a string that contains its own
/// CRC is weak; rotating and adding a constant, as LevelDB does, breaks that relation. It
/// also means four zero bytes never read as the checksum of empty data.
constexpr std::uint32_t mask_crc(std::uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/// The inverse of mask_crc().
constexpr std::uint32_t unmask_crc(std::uint32_t masked) {
  const std::uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace xact::io
