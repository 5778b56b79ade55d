// FileStorage against damaged files: the damage matrix (every kind of damage to the data file
// and its index, with and without the index) and a seeded mutation loop over open and verify.
// The rule: every acknowledged commit is there, or open refuses naming the file, the offset
// and the way out; never a success with fewer commits. The one exception is the inherent limit
// of any log (doc/file_storage.md, "What open can prove"): damage to the last write when no
// index and nothing after it vouches for it is a torn write, and only that write is dropped.
#include <xact/objectstore/file_storage.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <xact/errors.hpp>
#include <xact/io/coding.hpp>
#include <xact/io/crc32c.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/objectstore/codec.hpp>

namespace xact::objectstore {
namespace {

const std::string kPath = "/db/data.xfs";
const std::string kIndex = kPath + ".index";
constexpr std::uint64_t kChunk = 4096;

std::string obj(std::int64_t value) {
  std::string out;
  encode_header(out, "test.Thing", 1);
  StateWriter w(out);
  w.write(value);
  return out;
}

using Contents = std::map<Oid, std::pair<Tid, std::string>>;

Contents contents(const Storage& s) {
  Contents out;
  s.for_each_object([&](Oid oid, Tid serial, std::string_view data) {
    out[oid] = {serial, std::string(data)};
    return true;
  });
  return out;
}

FileStorageOptions options(io::Env& env) {
  FileStorageOptions o;
  o.env = &env;
  o.preallocate_bytes = kChunk;
  return o;
}

// A small storage written once: every commit acknowledged, then closed (index written).
struct Original {
  std::string data;
  std::string index;
  std::string older_data;   ///< the file after half of the commits
  std::string older_index;  ///< the index saved then
  Contents final;
  std::uint64_t last_start = 0;  ///< where the last record starts
  /// After each commit: where its record ends, and the contents then.
  std::vector<std::pair<std::uint64_t, Contents>> states;
};

const Original& original() {
  static const Original o = [] {
    Original out;
    io::MemEnv env;
    env.create_dir("/db");
    auto s = FileStorage::open(kPath, options(env));
    auto commit = [&](Oid oid, std::int64_t v) {
      auto cur = s->load(oid);
      CommitRequest r;
      r.writes.push_back({oid, cur ? cur->serial : kNoTid, obj(v)});
      const Tid tid = s->commit_one_phase(std::move(r));
      out.states.emplace_back(s->stats().end_of_data, contents(*s));
      return tid;
    };
    for (int i = 0; i < 8; ++i) commit(static_cast<Oid>(i % 3), i);
    // A two-phase commit in the middle (its mark made durable by the next one-phase commit).
    CommitRequest p;
    p.writes.push_back({5, kNoTid, obj(55)});
    s->finish(s->prepare(std::move(p)));
    out.states.emplace_back(s->stats().end_of_data, contents(*s));
    s->save_index();
    out.older_data = env.read_file(kPath);
    out.older_index = env.read_file(kIndex);
    for (int i = 8; i < 14; ++i) commit(static_cast<Oid>(i % 4), i);
    out.last_start = s->stats().end_of_data;
    commit(9, 99);
    out.final = contents(*s);
    s->close();
    out.data = env.read_file(kPath);
    out.index = env.read_file(kIndex);
    return out;
  }();
  return o;
}

// Opens (data, index) in a fresh file system and checks the rule. The damage is
// [damage_at, damage_end): when it reaches the last record and there is no index, nothing is
// left to prove the writes it hit durable (their evidence is in the last record), so opening
// at the last commit before the damage is allowed too.
void check(const std::string& what, const std::optional<std::string>& data,
           const std::optional<std::string>& index, std::uint64_t damage_at,
           std::uint64_t damage_end, bool create = true) {
  const Original& o = original();
  io::MemEnv env;
  env.create_dir("/db");
  auto put = [&](const std::string& path, const std::string& bytes) {
    auto f = env.new_writable_file(path);
    f->append(bytes);
    f->sync();
    f->close();
  };
  if (data) put(kPath, *data);
  if (index) put(kIndex, *index);
  FileStorageOptions opts = options(env);
  opts.create = create;  // true: the worst case, a missing file must not be recreated empty
  try {
    auto s = FileStorage::open(kPath, opts);
    const Contents now = contents(*s);
    if (now == o.final) return;
    Contents prefix;
    for (const auto& [end, state] : o.states) {
      if (end <= damage_at) prefix = state;
    }
    const bool evidence_destroyed = !index && damage_end > o.last_start;
    EXPECT_TRUE(evidence_destroyed && now == prefix)
        << what << ": opened with " << now.size() << " of " << o.final.size()
        << " objects, and without a refusal (" << s->open_report().describe() << ")";
  } catch (const StorageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(kPath), std::string::npos) << what << ": " << message;
    const bool names_offset = message.find("offset") != std::string::npos ||
                              message.find("does not exist") != std::string::npos ||
                              message.find("does not start with") != std::string::npos;
    EXPECT_TRUE(names_offset) << what << ": " << message;
    const bool way_out = message.find("salvage") != std::string::npos ||
                         message.find("backup") != std::string::npos ||
                         message.find("remove") != std::string::npos ||
                         message.find("rename") != std::string::npos;
    EXPECT_TRUE(way_out) << what << ": " << message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": escaped as " << typeid(e).name() << ": " << e.what();
  }
}

TEST(FileStorageDamageMatrix, EveryAcknowledgedCommitIsPresentOrOpenRefusesSayingWhereAndWhatToDo) {
  const Original& o = original();
  ASSERT_EQ(o.data.size() % kChunk, 0u);
  for (const bool with_index : {true, false}) {
    const std::optional<std::string> index =
        with_index ? std::optional<std::string>(o.index) : std::nullopt;
    const std::string tag = with_index ? " (with index)" : " (no index)";
    // Truncation at every byte: record boundaries and inside records.
    for (std::uint64_t cut = 0; cut < o.data.size(); ++cut) {
      if (::testing::Test::HasFailure()) return;
      check("truncated at " + std::to_string(cut) + tag, o.data.substr(0, cut), index, cut,
            cut + 1);
    }
    // A zeroed block at every block offset (64 bytes: several per record).
    for (std::uint64_t at = 0; at + 64 <= o.data.size(); at += 64) {
      std::string d = o.data;
      std::fill(d.begin() + static_cast<std::ptrdiff_t>(at),
                d.begin() + static_cast<std::ptrdiff_t>(at + 64), '\0');
      check("zeroed 64 bytes at " + std::to_string(at) + tag, d, index, at, at + 64);
    }
    // A flipped bit in every byte of the written part.
    const std::uint64_t written = o.data.find_last_not_of('\0') + 1;
    for (std::uint64_t at = 0; at < written; ++at) {
      std::string d = o.data;
      d[at] = static_cast<char>(d[at] ^ (1 << (at % 8)));
      check("bit flipped at " + std::to_string(at) + tag, d, index, at, at + 1);
    }
    // Deleted. With the index (or FILE.old) left, open refuses even with `create`; with
    // nothing left there is nothing to go by, so only an open without `create` can refuse.
    check("data file deleted" + tag, std::nullopt, index, 0, 0, with_index);
  }
  // Replaced with an older copy: only the index can tell (a complete older file is a valid
  // file; see the doc).
  check("data file replaced by an older copy", o.older_data, o.index, 0, 0);
  // The index: truncated, flipped, deleted, older; the data intact.
  for (std::uint64_t cut = 0; cut < o.index.size(); ++cut) {
    check("index truncated at " + std::to_string(cut), o.data, o.index.substr(0, cut),
          o.data.size(), o.data.size());
  }
  for (std::uint64_t at = 0; at < o.index.size(); ++at) {
    std::string i = o.index;
    i[at] = static_cast<char>(i[at] ^ (1 << (at % 8)));
    check("index bit flipped at " + std::to_string(at), o.data, i, o.data.size(), o.data.size());
  }
  check("index deleted", o.data, std::nullopt, o.data.size(), o.data.size());
  check("index replaced by an older copy", o.data, o.older_index, o.data.size(), o.data.size());
}

// Random damage, many times, from a seed (XACT_MUTATION_SEED to replay one): open (read-write
// and read-only, with and without salvage) and verify never crash, hang or throw anything but
// StorageError. Bounded by a count and by XACT_MUTATION_SECONDS (default 20).
TEST(FileStorageMutation, OpenAndVerifyOfRandomlyDamagedFilesNeverCrashOrEscape) {
  const Original& o = original();
  std::uint64_t seed = 20261202;
  if (const char* s = std::getenv("XACT_MUTATION_SEED")) seed = std::strtoull(s, nullptr, 10);
  double seconds = 20;
  if (const char* s = std::getenv("XACT_MUTATION_SECONDS")) seconds = std::strtod(s, nullptr);
  std::mt19937_64 rng(seed);
  const auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int rounds = 0;
  for (; rounds < 20000 && std::chrono::steady_clock::now() < stop; ++rounds) {
    std::string d = o.data;
    std::string i = o.index;
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      std::string& target = rng() % 4 == 0 ? i : d;
      if (target.empty()) continue;
      const std::size_t at = rng() % target.size();
      switch (rng() % 6) {
        case 0: target[at] = static_cast<char>(target[at] ^ (1 << (rng() % 8))); break;
        case 1: target[at] = static_cast<char>(rng()); break;
        case 2: target.resize(at); break;
        case 3: {  // a run of one value (a long run made scans quadratic)
          const std::size_t n = std::min<std::size_t>(target.size() - at, rng() % 600);
          std::fill_n(target.begin() + static_cast<std::ptrdiff_t>(at), n,
                      static_cast<char>(rng() % 3));
          break;
        }
        case 4: {  // bytes copied from elsewhere in the file (a plausible-looking record)
          const std::size_t from = rng() % target.size();
          const std::size_t n =
              std::min({target.size() - at, target.size() - from, std::size_t{rng() % 200}});
          target.replace(at, n, target.substr(from, n));
          break;
        }
        case 5: {  // a huge length or count where one is read
          const std::size_t n = std::min<std::size_t>(target.size() - at, 8);
          for (std::size_t k = 0; k < n; ++k) target[at + k] = '\xff';
          break;
        }
      }
    }
    io::MemEnv env;
    env.create_dir("/db");
    for (const auto& [path, bytes] : {std::pair{kPath, &d}, std::pair{kIndex, &i}}) {
      auto f = env.new_writable_file(path);
      f->append(*bytes);
      f->sync();
      f->close();
    }
    for (int variant = 0; variant < 3; ++variant) {
      FileStorageOptions opts = options(env);
      opts.read_only = variant == 0;
      opts.salvage = variant == 2;
      try {
        auto s = FileStorage::open(kPath, opts);
        contents(*s);
      } catch (const StorageError&) {
      } catch (const std::exception& e) {
        FAIL() << "seed " << seed << " round " << rounds << " variant " << variant
               << ": escaped as " << typeid(e).name() << ": " << e.what();
      }
    }
    try {
      FileStorage::verify(kPath, &env);
    } catch (const StorageError&) {
    } catch (const std::exception& e) {
      FAIL() << "seed " << seed << " round " << rounds << ": verify escaped: " << e.what();
    }
  }
  RecordProperty("rounds", rounds);
  EXPECT_GT(rounds, 0);
}

// Found by fuzz_file_storage_open. A torn tail that open accepts (damage followed only by
// writes that claim nothing durable: the last, never-synced batch) in a file cut inside its
// last preallocated chunk: open takes it as a crash, so commits go on in the rest of the
// chunk. Its own writes must not turn the file into one the next open refuses as truncated.
TEST(FileStorageTornTail, AnAcceptedTornTailInACutChunkStillOpensAfterTheNextCommits) {
  io::MemEnv env;
  env.create_dir("/db");
  std::vector<std::uint64_t> ends;
  {
    FileStorageOptions o = options(env);
    o.sync = SyncMode::none;  // every record claims only the header durable
    auto s = FileStorage::open(kPath, o);
    for (int i = 0; i < 4; ++i) {
      CommitRequest r;
      auto cur = s->load(1);
      r.writes.push_back({1, cur ? cur->serial : kNoTid, obj(i)});
      s->commit_one_phase(std::move(r));
      ends.push_back(s->stats().end_of_data);
    }
    s->close();
  }
  // The third commit's record damaged, the fourth intact, the file cut after it (no index).
  std::string data = env.read_file(kPath);
  ASSERT_EQ(data.size() % kChunk, 0u);
  data[ends[1] + 20] ^= 0x40;
  data.resize(ends[3] + 10);
  ASSERT_NE(data.size() % kChunk, 0u);
  env.remove_file(kIndex);
  {
    auto f = env.new_writable_file(kPath);
    f->append(data);
    f->sync();
    f->close();
  }
  Tid tid = kNoTid;
  {
    auto s = FileStorage::open(kPath, options(env));
    ASSERT_GT(s->open_report().cut_off_bytes, 0u) << s->open_report().describe();
    CommitRequest r;
    r.writes.push_back({2, kNoTid, obj(42)});
    tid = s->commit_one_phase(std::move(r));
    s->close();
  }
  env.remove_file(kIndex);  // as after a crash before close: only the data file vouches for it
  auto s = FileStorage::open(kPath, options(env));
  const auto revision = s->load(2);
  ASSERT_TRUE(revision);
  EXPECT_EQ(revision->serial, tid);
  EXPECT_EQ(revision->data, obj(42));
}

// Found by fuzz_file_storage_open. The writer grows the file by the chunk its header records,
// so a header whose checksum matches but whose chunk is impossible must be refused, not used:
// growing a small file to a whole chunk of 2^40 bytes is a huge allocation or a huge write.
TEST(FileStorageHeader, AHeaderWithAnImpossibleChunkIsReportedNotUsedToGrowTheFile) {
  io::MemEnv env;
  env.create_dir("/db");
  {
    auto s = FileStorage::open(kPath, options(env));
    CommitRequest r;
    r.writes.push_back({1, kNoTid, obj(1)});
    s->commit_one_phase(std::move(r));
    s->close();
  }
  // The header record's payload starts at offset 9; its chunk field is at byte 52 of it.
  std::string data = env.read_file(kPath);
  const std::uint32_t n = io::coding::load_u32(data.data() + 4);
  io::coding::store_u64(data.data() + io::kRecordHeaderSize + 52, std::uint64_t{1} << 40);
  io::coding::store_u32(data.data(),
                        io::mask_crc(io::crc32c(std::string_view(data).substr(4, 9 + n))));
  data.resize(data.size() - 100);  // a size inside that chunk: open would pad it
  env.remove_file(kIndex);
  {
    auto f = env.new_writable_file(kPath);
    f->append(data);
    f->sync();
    f->close();
  }
  for (const bool read_only : {true, false}) {
    FileStorageOptions o = options(env);
    o.read_only = read_only;
    try {
      FileStorage::open(kPath, o);
      ADD_FAILURE() << "opened a file whose header claims 1 TiB chunks (read_only " << read_only
                    << ")";
    } catch (const StorageError& e) {
      EXPECT_NE(std::string(e.what()).find(kPath), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("header"), std::string::npos) << e.what();
    }
  }
  FileStorageOptions o = options(env);
  o.preallocate_bytes = std::uint64_t{1} << 40;
  EXPECT_THROW(FileStorage::open("/db/other.xfs", o), UsageError);
}

}  // namespace
}  // namespace xact::objectstore
