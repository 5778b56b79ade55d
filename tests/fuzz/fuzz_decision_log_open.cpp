// libFuzzer target: the coordinator's decision log on an arbitrary node-id file and newest
// segment. Inspects the directory (`xact log dump`), opens it read-only (`xact recover
// --dry-run`), read-write and with tolerate_corruption; lists what it holds and runs recovery
// with no resources; after a read-write open logs a commit, a done record, a heuristic
// outcome, checkpoints, and opens the log again.
//
// Input: byte 0 holds flags (bit 0: fix up the segment's checksums after the mutation, see
// fuzz_frames.hpp; bit 1: no segment file, only the node-id file), byte 1 the length of the node-id
// file, byte 2 the segment's sequence number (its file name); then the node-id file, then the
// segment.
//
// A finding is anything but StorageError escaping, a crash, a hang, a huge allocation, or
// silently wrong data: a log that opened read-write must open again (without tolerating
// damage) after its own writes and checkpoint, holding exactly the unfinished commits it held
// plus the one logged; a read-only open must list what inspect() lists when neither saw damage.
//
// XACT_FUZZ_MAKE_CORPUS=<dir> writes seed inputs (real log directories) into <dir> and exits.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <xact/decision_log.hpp>
#include <xact/errors.hpp>
#include <xact/io/mem_env.hpp>
#include <xact/recovery.hpp>

#include "fuzz_frames.hpp"

namespace {

using xact::fuzz::put_file;

const std::string kDir = "/log";
constexpr std::uint8_t kFixChecksums = 1;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "FINDING: %s\n", what.c_str());
  std::abort();
}

std::string segment_file(std::uint64_t sequence) {
  char name[64];
  std::snprintf(name, sizeof name, "decisions-%016llu.log",
                static_cast<unsigned long long>(sequence));
  return kDir + "/" + name;
}

std::set<xact::Gtrid> unfinished(const std::vector<xact::CommitRecord>& records) {
  std::set<xact::Gtrid> out;
  for (const auto& r : records) out.insert(r.gtrid);
  return out;
}

xact::DecisionLogOptions small_options() {
  xact::DecisionLogOptions o;
  o.segment_bytes = 4096;
  return o;
}

// What a read-only reader lists; StorageError is an answer.
void read_all(xact::DecisionLog& log) {
  log.open_report();
  log.node_id();
  log.epoch();
  log.stats();
  log.heuristics();
  log.damage();
  for (const auto& r : log.unfinished()) log.is_committed(r.gtrid);
}

// Logs, checkpoints, closes and opens again: everything must still be there.
void write_and_reopen(xact::io::MemEnv& env, std::shared_ptr<xact::DecisionLog> log) {
  std::set<xact::Gtrid> expected = unfinished(log->unfinished());
  const auto heuristics = log->heuristics().size();
  xact::CommitRecord commit;
  commit.gtrid = log->new_gtrid();
  commit.participants = {{"rm-a", "a"}, {"rm-b", "b"}};
  try {
    log->log_commit(commit);
    expected.insert(commit.gtrid);
    if (!expected.empty() && *expected.begin() != commit.gtrid) {
      log->log_done(*expected.begin());
      expected.erase(expected.begin());
    }
    xact::HeuristicRecord h;
    h.gtrid = commit.gtrid;
    h.resource = "rm-a";
    h.outcome = "heuristic rollback";
    log->log_heuristic(h);
    log->checkpoint();
  } catch (const xact::StorageError& e) {
    finding(std::string("a log that opened read-write could not be written: ") + e.what());
  }
  log.reset();
  std::unique_ptr<xact::DecisionLog> again;
  try {
    again = xact::DecisionLog::open(env, kDir, small_options());
  } catch (const xact::StorageError& e) {
    finding(std::string("a log that opened read-write no longer opens after its own writes: ") +
            e.what());
  }
  if (unfinished(again->unfinished()) != expected) {
    finding("the unfinished commits changed across a checkpoint and reopen");
  }
  if (again->heuristics().size() < 1 || again->heuristics().size() > heuristics + 1) {
    finding("the heuristic outcomes changed across a checkpoint and reopen");
  }
}

void run(const std::string& node_file, std::uint64_t sequence, const std::string& segment,
         bool with_segment) {
  std::optional<std::set<xact::Gtrid>> inspected;
  std::optional<std::set<xact::Gtrid>> read_only;
  for (int variant = 0; variant < 4; ++variant) {
    xact::io::MemEnv env;
    env.create_dir(kDir);
    put_file(env, kDir + "/node-id", node_file);
    if (with_segment) put_file(env, segment_file(sequence), segment);
    if (variant == 0) {
      try {
        const auto i = xact::DecisionLog::inspect(env, kDir);
        if (i.problems.empty() && i.scan.clean()) inspected = unfinished(i.unfinished);
      } catch (const xact::StorageError& e) {
        xact::fuzz::note("run", e);
      }
      continue;
    }
    auto o = small_options();
    o.read_only = variant == 1;
    o.tolerate_corruption = variant == 3;
    std::shared_ptr<xact::DecisionLog> log;
    try {
      log = xact::DecisionLog::open(env, kDir, o);
    } catch (const xact::StorageError& e) {
      xact::fuzz::note("run", e);
      continue;
    }
    read_all(*log);
    if (variant == 1 && log->open_report().problems.empty() && log->open_report().scan.clean()) {
      read_only = unfinished(log->unfinished());
    }
    try {
      xact::Recovery recovery(log);
      recovery.run(/*dry_run=*/true).describe();
    } catch (const xact::StorageError& e) {
      xact::fuzz::note("run", e);
    }
    if (variant != 1) write_and_reopen(env, std::move(log));
  }
  if (inspected && read_only && *inspected != *read_only) {
    finding("inspect() and a read-only open list different unfinished commits");
  }
}

// --- seeds -----------------------------------------------------------------------------------

void write_seed(const std::filesystem::path& dir, const std::string& name, std::uint8_t flags,
                const std::string& node_file, std::uint64_t sequence, const std::string& segment) {
  std::string input(1, static_cast<char>(flags));
  input.push_back(static_cast<char>(node_file.size()));
  input.push_back(static_cast<char>(sequence));
  input += node_file;
  input += segment;
  std::ofstream(dir / name, std::ios::binary) << input;
}

// Real log directories: commits with several participants, done records, heuristic outcomes
// (one forgotten), in preallocated and appended segments, after a few reopens.
void make_corpus(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const bool preallocate : {false, true}) {
    xact::io::MemEnv env;
    env.create_dir(kDir);
    auto o = small_options();
    o.preallocate = preallocate;
    for (int run = 0; run < 3; ++run) {
      auto log = xact::DecisionLog::open(env, kDir, o);
      std::vector<xact::Gtrid> ids;
      for (int i = 0; i < 4; ++i) {
        xact::CommitRecord c;
        c.gtrid = log->new_gtrid();
        c.time_us = 1'700'000'000'000'000 + i;
        for (int p = 0; p <= i % 3; ++p) {
          c.participants.push_back({"rm-" + std::to_string(p), "branch-" + std::to_string(p)});
        }
        log->log_commit(c);
        ids.push_back(c.gtrid);
      }
      log->log_done(ids[0]);
      xact::HeuristicRecord h;
      h.gtrid = ids[1];
      h.resource = "rm-0";
      h.bqual = "branch-0";
      h.outcome = "heuristic rollback";
      h.detail = "expected commit";
      log->log_heuristic(h);
      if (run == 1) log->forget_heuristic(ids[1], "rm-0");
      xact::CommitRecord last;
      last.gtrid = log->new_gtrid();
      last.participants = {{"rm-x", ""}};
      log->log_commit(last);
    }
    std::string node_file = env.read_file(kDir + "/node-id");
    std::uint64_t sequence = 0;
    for (const auto& name : env.list_dir(kDir)) {
      if (name.starts_with("decisions-")) sequence = std::stoull(name.substr(10, 16));
    }
    const std::string segment = env.read_file(segment_file(sequence));
    const std::string tag = preallocate ? "-prealloc" : "";
    write_seed(dir, "log" + tag, 0, node_file, sequence, segment);
    write_seed(dir, "log-fixed" + tag, kFixChecksums, node_file, sequence, segment);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) { return xact::fuzz::initialize(make_corpus); }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t flags = bytes[0];
  const std::string input(reinterpret_cast<const char*>(bytes) + 3, size - 3);
  const std::size_t node_size = std::min<std::size_t>(bytes[1], input.size());
  const std::string node_file = input.substr(0, node_size);
  std::string segment = input.substr(node_size);
  if (flags & kFixChecksums) xact::fuzz::fix_frames(segment);
  run(node_file, bytes[2], segment, !(flags & 2));
  return 0;
}
