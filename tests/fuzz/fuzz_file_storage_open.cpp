// libFuzzer target: FileStorage on an arbitrary data file and index. Opens them read-only,
// read-write and with salvage; reads every object, walks history and the transactions, lists
// the prepared ones; verifies and dumps the file; and after a read-write open commits once,
// closes (which rewrites the index) and opens again.
//
// Input: byte 0 holds flags (bit 0: fix up the checksums after the mutation, see fuzz_frames.hpp),
// bytes 1-2 say where the data file ends and the index begins (no index when past the end).
//
// A finding is anything but StorageError escaping, a crash, a hang, a huge allocation, or
// silently wrong data: without the checksum fix-up (so every record is one a writer wrote), a
// read-only open with the index must read the same objects as one without it; a commit made
// after a read-write open must be read back unchanged, with everything that was there before.
//
// XACT_FUZZ_MAKE_CORPUS=<dir> writes seed inputs (real files) into <dir> and exits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "fuzz_frames.hpp"

namespace {

namespace os = xact::objectstore;
using xact::fuzz::put_file;

const std::string kPath = "/db/f";
const std::string kIndex = "/db/f.index";
constexpr std::uint8_t kFixChecksums = 1;

// Data file record types and payload layout (doc/file_storage.md), as the harness sees them.
constexpr std::uint8_t kPreparedRecord = 2;
constexpr std::uint8_t kCommittedRecord = 3;
constexpr std::uint8_t kIndexHeader = 1;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

// Rewrites the checksum of every object entry of a transaction payload (over the oid, the
// length and the data), following the layout as far as it parses.
void fix_entries(std::uint8_t type, char* p, std::size_t n) {
  if (type != kPreparedRecord && type != kCommittedRecord) return;
  namespace c = xact::io::coding;
  std::size_t at = 8 + 8 + 8 + 4;  // durable end, tid, next oid, xid format id
  auto skip8 = [&] {
    if (at >= n) return false;
    at += 1 + static_cast<std::uint8_t>(p[at]);
    return at <= n;
  };
  auto skip32 = [&] {
    if (at + 4 > n) return false;
    const std::uint64_t len = c::load_u32(p + at);
    if (len > n - at - 4) return false;
    at += 4 + len;
    return true;
  };
  if (!skip8() || !skip8() || !skip32() || !skip32() || at + 4 > n) return;  // gtrid, bqual, meta
  const std::uint32_t ext = c::load_u32(p + at);
  at += 4;
  for (std::uint32_t i = 0; i < ext; ++i) {
    if (!skip32() || !skip32()) return;
  }
  if (at + 4 > n) return;
  const std::uint64_t reads = c::load_u32(p + at);
  at += 4;
  if (reads > (n - at) / 8) return;
  at += 8 * reads;
  if (at + 4 > n) return;
  const std::uint32_t writes = c::load_u32(p + at);
  at += 4;
  for (std::uint32_t i = 0; i < writes && at + 32 <= n; ++i) {
    const std::uint32_t length = c::load_u32(p + at + 24);
    if (length > n - at - 32) return;
    xact::io::Crc32c crc;
    crc.update(std::string_view(p + at, 8));       // oid
    crc.update(std::string_view(p + at + 24, 4));  // length
    crc.update(std::string_view(p + at + 32, length));
    c::store_u32(p + at + 28, xact::io::mask_crc(crc.value()));
    at += 32 + length;
  }
}

// The data file's records, then the index header's record of the checksum of the record that
// ends where the index's coverage ends, then the index's records.
void fix_checksums(std::string& data, std::string& index) {
  namespace c = xact::io::coding;
  xact::fuzz::fix_frames(data, 0, fix_entries);
  // Index header payload: magic (8), version (4), file id (16), covered end (8), crc (4), ...
  constexpr std::size_t kCoveredAt = xact::io::kRecordHeaderSize + 8 + 4 + 16;
  if (index.size() >= kCoveredAt + 12 && static_cast<std::uint8_t>(index[8]) == kIndexHeader) {
    const std::uint64_t end = c::load_u64(index.data() + kCoveredAt);
    if (end >= 4 && end <= data.size()) {
      const std::uint64_t n = c::load_u32(data.data() + end - 4);
      if (n + xact::io::kRecordOverhead <= end) {
        const std::uint64_t start = end - n - xact::io::kRecordOverhead;
        c::store_u32(index.data() + kCoveredAt + 8, c::load_u32(data.data() + start));
      }
    }
  }
  xact::fuzz::fix_frames(index);
}

using Contents = std::map<os::Oid, std::pair<os::Tid, std::string>>;

Contents contents(const os::FileStorage& s) {
  Contents out;
  s.for_each_object([&](os::Oid oid, os::Tid serial, std::string_view data) {
    out[oid] = {serial, std::string(data)};
    return true;
  });
  return out;
}

// Everything a reader can ask of an open storage; StorageError is an answer.
void read_all(os::FileStorage& s) {
  try {
    xact::fuzz::note("opened", std::runtime_error(s.open_report().describe()));
    s.describe();
    s.last_transaction();
    s.recover_all_nodes();
    s.recover(xact::NodeId{});
    const Contents objects = contents(s);
    int history = 0;
    for (const auto& [oid, revision] : objects) {
      if (++history > 16) break;
      s.load(oid, revision.first > 0 ? revision.first - 1 : 0);
      s.load_serial(oid, revision.first);
      s.load(oid, 1);
    }
    s.iterate(0, os::kMaxTid, [](const os::TransactionRecord&) { return true; });
  } catch (const xact::StorageError& e) {
    xact::fuzz::note("read_all", e);
  }
}

os::FileStorageOptions options(xact::io::MemEnv& env) {
  os::FileStorageOptions o;
  o.env = &env;
  o.create = false;
  o.preallocate_bytes = 4096;
  return o;
}

// After a read-write open: one more commit, close, open again; the commit and everything
// that was readable before must be there.
void commit_and_reopen(xact::io::MemEnv& env, std::unique_ptr<os::FileStorage> s) {
  Contents before;
  try {
    before = contents(*s);
  } catch (const xact::StorageError& e) {
    xact::fuzz::note("commit_and_reopen", e);
    return;  // damage open could not see; not what this check is about
  }
  const os::Oid oid = s->new_oid();
  os::CommitRequest r;
  r.writes.push_back({oid, os::kNoTid, "fuzz"});
  os::Tid tid = 0;
  try {
    tid = s->commit_one_phase(std::move(r));
  } catch (const xact::StorageError& e) {
    xact::fuzz::note("commit_and_reopen", e);
    return;
  }
  s->close();
  s.reset();
  auto o = options(env);
  o.read_only = true;
  std::unique_ptr<os::FileStorage> again;
  Contents after;
  try {
    again = os::FileStorage::open(kPath, o);
    after = contents(*again);
  } catch (const xact::StorageError& e) {
    finding(std::string("a file that opened read-write and took a commit no longer opens: ") +
            e.what());
  }
  before[oid] = {tid, "fuzz"};
  if (after != before) finding("objects changed across a commit, close and reopen");
}

void run(std::uint8_t flags, const std::string& data, const std::string* index) {
  const bool fixed = flags & kFixChecksums;
  std::optional<Contents> with_index;
  std::optional<Contents> without_index;
  for (int variant = 0; variant < 4; ++variant) {
    xact::io::MemEnv env;
    env.create_dir("/db");
    put_file(env, kPath, data);
    if (index) put_file(env, kIndex, *index);
    auto o = options(env);
    o.read_only = variant == 0 || variant == 3;
    o.salvage = variant == 2;
    o.use_index = variant != 3;
    std::unique_ptr<os::FileStorage> s;
    try {
      s = os::FileStorage::open(kPath, o);
    } catch (const xact::StorageError& e) {
      xact::fuzz::note("run", e);
    }
    if (s) {
      read_all(*s);
      if (o.read_only && s->open_report().salvaged.empty()) {
        try {
          (variant == 0 ? with_index : without_index) = contents(*s);
        } catch (const xact::StorageError& e) {
          xact::fuzz::note("run", e);
        }
      }
      if (variant == 1) commit_and_reopen(env, std::move(s));
    }
    if (variant == 0) {
      try {
        os::FileStorage::verify(kPath, &env).describe();
        os::FileStorage::dump(
            kPath, [](const os::FileRecordInfo&) { return true; }, &env);
      } catch (const xact::StorageError& e) {
        xact::fuzz::note("run", e);
      }
    }
  }
  if (!fixed && with_index && without_index && *with_index != *without_index) {
    finding("the index and a full scan read different objects from records a writer wrote");
  }
}

// --- seeds -----------------------------------------------------------------------------------

std::string object(int i) { return "object " + std::to_string(i) + std::string(i % 7, '.'); }

void write_seed(const std::filesystem::path& dir, const std::string& name, std::uint8_t flags,
                const std::string& data, const std::string* index) {
  std::string input(1, static_cast<char>(flags));
  const std::size_t split = index ? data.size() : 0xffff;
  input.push_back(static_cast<char>(split >> 8));
  input.push_back(static_cast<char>(split & 0xff));
  input += data;
  if (index) input += *index;
  std::ofstream(dir / name, std::ios::binary) << input;
}

// Real files: one-phase commits of several objects, history, a two-phase commit, an abort,
// a prepared transaction left for recovery, meta data; closed (index written) or not.
void make_corpus(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const std::uint64_t chunk : {std::uint64_t{0}, std::uint64_t{4096}}) {
    xact::io::MemEnv env;
    env.create_dir("/db");
    os::FileStorageOptions o;
    o.env = &env;
    o.preallocate_bytes = chunk;
    auto s = os::FileStorage::open(kPath, o);
    std::map<os::Oid, os::Tid> serial;
    for (int t = 0; t < 6; ++t) {
      os::CommitRequest r;
      r.meta.user = t % 2 ? "alice" : "";
      r.meta.description = "commit " + std::to_string(t);
      if (t == 3) r.meta.extension.emplace_back("key", "value");
      for (int i = 0; i < 3; ++i) {
        const os::Oid oid = static_cast<os::Oid>((t + i) % 5);
        r.writes.push_back({oid, serial.count(oid) ? serial[oid] : os::kNoTid, object(t + i)});
      }
      const os::Tid tid = s->commit_one_phase(std::move(r));
      for (int i = 0; i < 3; ++i) serial[static_cast<os::Oid>((t + i) % 5)] = tid;
    }
    const xact::NodeId node = xact::NodeId::random();
    auto two_phase = [&](os::Oid oid, std::uint64_t n) {
      os::CommitRequest r;
      r.xid.gtrid = xact::Gtrid(node, 1, n);
      r.xid.bqual = "store";
      r.writes.push_back({oid, serial.count(oid) ? serial[oid] : os::kNoTid, object(40 + oid)});
      r.read_checks.push_back({0, serial[0]});
      return s->prepare(std::move(r));
    };
    const os::Tid tid = s->finish(two_phase(7, 1), true);
    serial[7] = tid;
    s->abort(two_phase(8, 2));
    s->save_index();
    const std::string early_data = env.read_file(kPath);
    const std::string early_index = env.read_file(kIndex);
    two_phase(9, 3);  // left prepared
    const std::string prepared_data = env.read_file(kPath);
    s->close();
    const std::string data = env.read_file(kPath);
    const std::string index = env.read_file(kIndex);
    const std::string tag = chunk ? "-prealloc" : "";
    for (std::uint8_t flags : {std::uint8_t{0}, kFixChecksums}) {
      const std::string f = flags ? "-fixed" : "";
      write_seed(dir, "closed" + tag + f, flags, data, &index);
      write_seed(dir, "no-index" + tag + f, flags, prepared_data, nullptr);
      write_seed(dir, "index-then-tail" + tag + f, flags, prepared_data, &early_index);
      write_seed(dir, "early" + tag + f, flags, early_data, &early_index);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return xact::fuzz::initialize(make_corpus); }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t flags = bytes[0];
  const std::string input(reinterpret_cast<const char*>(bytes) + 3, size - 3);
  const std::size_t split = (std::size_t{bytes[1]} << 8 | bytes[2]);
  std::string data = input.substr(0, std::min(split, input.size()));
  std::string index = split < input.size() ? input.substr(split) : std::string();
  if (flags & kFixChecksums) fix_checksums(data, index);
  // A header's chunk may be up to 1 GiB, and a read-write open pads a file cut inside its chunk
  // to a whole one: correct, but seconds of zeros in a MemEnv per input. Past 64 KiB the same
  // code only runs slower, so such inputs are left out.
  constexpr std::size_t kChunkAt = xact::io::kRecordHeaderSize + 52;
  if (data.size() >= kChunkAt + 8 &&
      xact::io::coding::load_u64(data.data() + kChunkAt) > (std::uint64_t{64} << 10)) {
    return 0;
  }
  run(flags, data, split < input.size() ? &index : nullptr);
  return 0;
}
