// Helpers shared by the fuzz targets: files in a MemEnv, and the checksum fix-up that lets a
// mutation reach the parsers behind the record framing.
//
// Every record carries a CRC-32C (doc/record_format.md), so almost every random change is
// rejected by the framing and the payload decoders never see it. With the fix-up, the harness
// walks the input's records the way a writer lays them out and rewrites each one's trailer and
// checksum after the fuzzer's mutation: the bytes stay malformed, the framing no longer hides
// them. Without it, the framing's own damage handling is what gets fuzzed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include <xact/diagnostics.hpp>
#include <xact/io/coding.hpp>
#include <xact/io/crc32c.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/io/record.hpp>

namespace xact::fuzz {

/// With XACT_FUZZ_VERBOSE set, prints the errors the harness takes as answers (for triage and
/// to check that the seeds open).
inline void note(const char* where, const std::exception& e) {
  static const bool verbose = std::getenv("XACT_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s: %s\n", where, e.what());
}

/// LLVMFuzzerInitialize of every target: the library's log silenced, and with
/// XACT_FUZZ_MAKE_CORPUS=<dir> the target's seed files written there (`make_corpus`) instead of
/// fuzzing.
inline int initialize(void (*make_corpus)(const std::filesystem::path& dir)) {
  set_log_sink([](LogLevel, std::string_view) {});
  if (const char* dir = std::getenv("XACT_FUZZ_MAKE_CORPUS")) {
    make_corpus(dir);
    std::exit(0);
  }
  return 0;
}

inline void put_file(io::MemEnv& env, const std::string& path, std::string_view bytes) {
  auto f = env.new_writable_file(path);
  f->append(bytes);
  f->sync();
  f->close();
}

/// Rewrites, from `start` on, the trailer and the checksum of every record whose length fits
/// in `bytes`; stops at the first position that cannot start one (a zero type byte: the
/// unwritten rest of a preallocated file, or a length past the end). `payload_fix` may first
/// repair checksums inside a payload (type, payload bytes); it must not change its size.
inline void fix_frames(
    std::string& bytes, std::uint64_t start = 0,
    const std::function<void(std::uint8_t, char*, std::size_t)>& payload_fix = nullptr) {
  std::uint64_t at = start;
  while (at + io::kRecordOverhead <= bytes.size()) {
    char* p = bytes.data() + at;
    const std::uint32_t n = io::coding::load_u32(p + 4);
    const auto type = static_cast<std::uint8_t>(p[8]);
    if (type == io::kNoRecordType || n > io::kMaxRecordPayload ||
        n > bytes.size() - at - io::kRecordOverhead) {
      return;
    }
    if (payload_fix) payload_fix(type, p + io::kRecordHeaderSize, n);
    io::coding::store_u32(p + io::kRecordHeaderSize + n, n);
    const std::uint32_t crc =
        io::crc32c(std::string_view(p + 4, io::kRecordOverhead - 4 + std::size_t{n}));
    io::coding::store_u32(p, io::mask_crc(crc));
    at += io::kRecordOverhead + n;
  }
}

}  // namespace xact::fuzz
