// CRC-32C through Boost.CRC.
#include <xact/io/crc32c.hpp>

#include <boost/crc.hpp>

namespace xact::io {
namespace {

// Polynomial 0x1EDC6F41 (Castagnoli), reflected in and out, initial and final XOR all ones:
// CRC-32C as iSCSI (RFC 3720) defines it.
using Castagnoli = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

}  // namespace

void Crc32c::update(std::string_view data) {
  Castagnoli crc(remainder_);
  crc.process_bytes(data.data(), data.size());
  remainder_ = crc.get_interim_remainder();
}

std::uint32_t Crc32c::value() const { return Castagnoli(remainder_).checksum(); }

std::uint32_t crc32c(std::string_view data) {
  Castagnoli crc;
  crc.process_bytes(data.data(), data.size());
  return crc.checksum();
}

}  // namespace xact::io
