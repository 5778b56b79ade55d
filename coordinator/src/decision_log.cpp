// The decision log: open/replay, group commit, rotation. Format: decision_log_format.hpp;
// protocol and crash-safety argument: doc/decision_log.md.
#include <xact/decision_log.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <set>

#include <unistd.h>

#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/io/group_commit.hpp>
#include <xact/redriver.hpp>

#include "decision_log_format.hpp"

namespace xact {
namespace {

namespace dlog = detail::dlog;

// Where a segment's header record carries the node id: record header (9), magic (8), format
// version (4).
constexpr std::uint64_t kNodeIdOffset = io::kRecordHeaderSize + 8 + 4;

const std::string& zeros() {
  static const std::string block(1u << 20, '\0');
  return block;
}

}  // namespace

namespace detail::dlog {

// One caller in the group-commit queue. Every kind but kCheckpoint carries one encoded entry
// that must be durable when the call returns.
struct Writer : io::GroupCommitWriter {
  enum class Kind { kCommit, kHeuristic, kForgetHeuristic, kCheckpoint };
  explicit Writer(Kind k, Gtrid g = {}) : kind(k), gtrid(std::move(g)) {}
  const Kind kind;
  Gtrid gtrid;           // all but kCheckpoint
  std::string resource;  // kHeuristic, kForgetHeuristic
  std::string entry;     // all but kCheckpoint: the encoded entry
};

}  // namespace detail::dlog

struct DecisionLog::Impl final : io::GroupCommitQueue<dlog::Writer>::Handler {
  using Writer = dlog::Writer;
  using WriterPtr = std::shared_ptr<Writer>;
  using Batch = io::GroupCommitQueue<Writer>::Batch;

  Impl(io::Env& e, std::string d, DecisionLogOptions o) : env(e), dir(std::move(d)), options(o) {}

  // The process that opened the log: a fork() child inherits the object but not the log's
  // lock, and ids it drew would repeat the parent's (same node, epoch and sequence).
  const pid_t opened_by = ::getpid();

  void start();
  // Reads the node id, checks that no segment is missing and replays the newest segment;
  // returns the segments found (sequence -> name) and the names of leftover temporaries.
  // Writes nothing.
  std::map<std::uint64_t, std::string> load(std::vector<std::string>* temporaries,
                                            bool* has_node_id);
  void read_node_id();
  void replay(const std::string& path, std::uint64_t sequence);
  // Damage that may have cost commit records: refused (StorageError with the way out) unless
  // tolerating; damage_found also lists it in the report's problems.
  void refuse_damage(const std::string& what);
  void damage_found(const std::string& what) {
    refuse_damage(what);
    report.problems.push_back(what);
  }
  void note_damage(std::uint32_t up_to_epoch);
  void apply_entry(dlog::EntryKind kind, const Gtrid& gtrid, std::string_view entry);
  void create_node_id();
  void write_node_file(std::uint32_t file_epoch, std::uint64_t sequence);
  void check_writable(std::string_view what) const;
  void rotate(std::uint64_t sequence, const std::vector<std::string>& snapshot, std::uint64_t room,
              const std::vector<std::string>& obsolete);
  std::vector<std::string> snapshot_locked();
  void submit(WriterPtr w);
  // The group-commit leader's part (io::GroupCommitQueue::Handler).
  std::size_t select(Batch queued) override;
  void write(Batch batch) override;
  void complete(Batch batch) override;
  void abandon(Batch) override {}  // a commit record that was never written holds nothing
  std::exception_ptr failure_error(std::exception_ptr cause) override;
  void flush_pending_done() noexcept;
  std::string path(std::string_view name) const { return io::join_path(dir, name); }

  io::Env& env;
  const std::string dir;
  const DecisionLogOptions options;
  std::unique_ptr<io::FileLock> lock;
  NodeId node;
  dlog::NodeFile node_file;  // as read at open
  std::uint32_t epoch = 0;
  std::atomic<std::uint64_t> next_sequence{1};
  OpenReport report;

  mutable std::mutex mu;
  // Guarded by mu; the writer at its front does the I/O (select, write, complete below).
  io::GroupCommitQueue<Writer> queue{mu, *this};
  std::map<Gtrid, std::string> unfinished;  // guarded by mu; gtrid -> encoded commit entry
  // guarded by mu; (gtrid, resource) -> encoded heuristic entry
  std::map<std::pair<Gtrid, std::string>, std::string> heuristics;
  std::map<Gtrid, std::string> damage;      // guarded by mu; id -> encoded damage entry
  std::uint64_t replayed_size = 0;          // of the replayed segment
  std::uint64_t replayed_preallocated = 0;  // its header's preallocated size
  mutable std::mutex flight_mu;
  std::set<Gtrid> flying;     // guarded by flight_mu: handed out by new_gtrid, not yet released
  std::string pending_done;   // guarded by mu; done entries not yet written
  std::string failure;        // guarded by mu; set once, on the first failure (queue's message)
  std::uint64_t commits = 0;  // guarded by mu
  std::uint64_t forced_writes = 0;  // guarded by mu
  std::uint64_t max_batch = 0;      // guarded by mu
  std::uint64_t dones = 0;          // guarded by mu
  // Counted where the I/O happens, which is sometimes outside mu.
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<std::uint64_t> dir_syncs{0};
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> checkpoints{0};

  // The current segment. Touched only by the group-commit leader (in write(), with mu
  // released; read in select() and complete()), or by start() and the destructor when no call
  // can run. The queue hands the lead from one writer to the next through mu and the next
  // writer's own mutex, which orders everything the first did before everything the second does.
  std::unique_ptr<io::WritableFile> segment;
  std::string segment_path;
  std::uint64_t segment_sequence = 0;
  std::uint64_t write_offset = 0;
  std::uint64_t capacity = 0;
  // The batch being written, from select() to complete() (the leader's too).
  std::string batch_payload;
  std::uint64_t batch_record_size = 0;
  std::vector<std::string> batch_snapshot;
  bool batch_rotates = false;
  std::string batch_record;
};

// ---------------------------------------------------------------------------------------------
// open

std::map<std::uint64_t, std::string> DecisionLog::Impl::load(std::vector<std::string>* temporaries,
                                                             bool* has_node_id) {
  std::map<std::uint64_t, std::string> segments;
  *has_node_id = false;
  for (const auto& name : env.list_dir(dir)) {
    if (auto sequence = dlog::parse_segment_name(name)) {
      segments.emplace(*sequence, name);
    } else if (name.ends_with(dlog::kTempSuffix)) {
      temporaries->push_back(name);
    } else if (name == dlog::kNodeIdFile) {
      *has_node_id = true;
    }
  }
  if (*has_node_id) {
    read_node_id();
  } else if (!segments.empty()) {
    // A new id would orphan every prepared transaction of the old one.
    throw StorageError("'" + path(dlog::kNodeIdFile) + "' is missing, but '" + dir +
                       "' holds decision log segments: restore the file from a backup, or "
                       "write it again from the node id in the newest segment's header (the 16 "
                       "bytes at offset " +
                       std::to_string(kNodeIdOffset) + " of '" + segments.rbegin()->second +
                       "', as 32 hex digits and a newline; see doc/decision_log.md)");
  }
  // The node-id file names the newest segment written. An older newest segment means the
  // newer ones were lost, and with them commit records: an empty log must not be taken for a
  // new one (recovery would roll back committed transactions).
  const std::uint64_t newest = segments.empty() ? 0 : segments.rbegin()->first;
  if (node_file.has_position && newest < node_file.sequence) {
    damage_found("'" + path(dlog::segment_name(node_file.sequence)) +
                 "' is missing: the node-id file records segment " +
                 std::to_string(node_file.sequence) + " (epoch " + std::to_string(node_file.epoch) +
                 ") as the newest one written, but " +
                 (segments.empty() ? std::string("the directory holds no segment")
                                   : "the newest segment is '" + segments.rbegin()->second + "'") +
                 "; the commit records it held are lost with it (offset 0 onwards)");
  }
  if (!segments.empty()) replay(path(segments.rbegin()->second), newest);
  return segments;
}

void DecisionLog::Impl::refuse_damage(const std::string& what) {
  if (!options.tolerate_corruption) {
    throw StorageError(
        "cannot open the decision log in '" + dir + "': " + what +
        ". A lost commit record would make recovery roll back a transaction that committed, "
        "so the log is not opened. Restore the file from a backup if you can. Otherwise open "
        "it with DecisionLogOptions::tolerate_corruption (xact recover --tolerate-corruption): "
        "the damage is then recorded in the log, and recovery records every rollback of a "
        "prepared branch that may have been one of the lost commits as a heuristic outcome, "
        "for you to check (xact heuristics list)");
  }
}

void DecisionLog::Impl::note_damage(std::uint32_t up_to_epoch) {
  std::string description;
  for (const auto& p : report.problems) description += (description.empty() ? "" : "; ") + p;
  for (const auto& c : report.scan.corrupt) {
    description += (description.empty() ? "" : "; ") + std::string("'") + report.segment +
                   "': dropped " + std::to_string(c.bytes) + " corrupt bytes at offset " +
                   std::to_string(c.offset) + " (" + c.reason + ")";
  }
  LogDamage d;
  d.up_to_epoch = up_to_epoch;
  d.id = Gtrid(node, up_to_epoch, damage.size() + 1);
  d.description = description;
  d.time_us = env.now_micros();
  std::string entry;
  dlog::append_damage_entry(entry, d);
  damage.insert_or_assign(d.id, std::move(entry));
}

void DecisionLog::Impl::read_node_id() {
  const std::string node_path = path(dlog::kNodeIdFile);
  auto file = env.new_random_access_file(node_path);
  std::string text(256, '\0');
  text.resize(file->read(0, text));
  const auto parsed = dlog::decode_node_file(text);
  if (!parsed) {
    throw StorageError("'" + node_path +
                       "' does not hold a node id (32 hex digits, then the epoch and segment "
                       "lines) at offset 0. It names this coordinator in every transaction id "
                       "it handed out; restore it from a backup rather than deleting it (the "
                       "node id is also in each segment's header, see doc/decision_log.md)");
  }
  node_file = *parsed;
  node = parsed->node;
}

void DecisionLog::Impl::start() {
  if (!env.exists(dir)) {
    if (options.read_only)
      throw StorageError("no decision log in '" + dir + "': no such directory");
    env.create_dir(dir);
  }
  try {
    lock = env.lock_file(path(dlog::kLockFile));
  } catch (const io::FileLockedError& e) {
    throw io::FileLockedError("cannot open the decision log in '" + dir + "': " + e.what() +
                              ". One process owns a log directory at a time: stop the other "
                              "coordinator, or give this one a directory of its own");
  } catch (const StorageError& e) {
    // Not held by anyone: the lock file itself cannot be created or opened.
    throw StorageError("cannot open the decision log in '" + dir +
                       "': cannot take its lock: " + e.what() +
                       ". Check that this process's user may create and write files in '" + dir +
                       "' (and the LOCK file in it, if it exists), and that LOCK is a "
                       "regular file");
  }
  // The directory's own name must be durable, or every file in it could vanish with it.
  // Synced at every open, not only when this process created it: `mkdir` by an installer
  // just before the first start is not durable either. One fsync per start.
  if (!options.read_only) {
    env.sync_dir(io::parent_dir(dir));
    ++dir_syncs;
  }

  // Leftovers of a rotation or of a node id creation that a crash interrupted before its
  // rename are never part of the log; they are removed below, so that creating the node id
  // cannot collide with its own leftover. (load() never reads them.)
  std::vector<std::string> temporaries;
  bool has_node_id = false;
  const auto segments = load(&temporaries, &has_node_id);
  if (options.read_only && !has_node_id) {
    throw StorageError("no decision log in '" + dir + "': it has no node-id file");
  }
  std::uint32_t last_epoch = 0;
  std::uint64_t last_sequence = 0;
  std::vector<std::string> obsolete;
  if (!segments.empty()) {
    last_sequence = segments.rbegin()->first;
    last_epoch = epoch;  // replay() read it from the header
    for (const auto& [s, n] : segments) obsolete.push_back(path(n));
  }
  // The node-id file knows the last epoch and segment even when segments were lost (opened
  // with tolerate_corruption): transaction ids and segment names never repeat.
  if (node_file.has_position) {
    last_epoch = std::max(last_epoch, node_file.epoch);
    last_sequence = std::max(last_sequence, node_file.sequence);
  }
  if (!report.problems.empty() || !report.scan.corrupt.empty()) {
    std::lock_guard guard(mu);
    note_damage(last_epoch);
    log(LogLevel::warning,
        "decision log in '" + dir +
            "': tolerated damage; commit records of "
            "epochs up to " +
            std::to_string(last_epoch) +
            " may be lost, and recovery records each rollback that may have been "
            "one of them as a heuristic outcome: " +
            report.describe());
  }
  if (options.read_only) {
    epoch = last_epoch;
    return;
  }
  for (const auto& name : temporaries) {
    env.remove_file(path(name));
    report.removed.push_back(name);
  }
  if (!has_node_id) {
    create_node_id();
    report.created = true;
  }
  if (last_epoch == UINT32_MAX) {
    throw StorageError("the decision log in '" + dir + "' has used up its epochs (2^32 opens)");
  }
  epoch = last_epoch + 1;

  // A new segment for this run: it makes the new epoch durable before any gtrid of it exists,
  // and this process never appends after a tail a crash may have cut off.
  std::vector<std::string> snapshot;
  {
    std::lock_guard guard(mu);
    snapshot = snapshot_locked();
  }
  rotate(last_sequence + 1, snapshot, 0, obsolete);
  for (const auto& p : obsolete) report.removed.push_back(p.substr(p.rfind('/') + 1));
  if (!report.scan.clean()) {
    log(LogLevel::warning, "decision log in '" + dir + "': " + report.describe());
  }
}

void DecisionLog::Impl::create_node_id() {
  node = NodeId::random();
  write_node_file(0, 0);
}

// Written through a temporary, synced and renamed: a crash leaves the old file or the new one.
void DecisionLog::Impl::write_node_file(std::uint32_t file_epoch, std::uint64_t sequence) {
  node_file = dlog::NodeFile{node, true, file_epoch, sequence};
  const std::string final_path = path(dlog::kNodeIdFile);
  const std::string temp_path = final_path + std::string(dlog::kTempSuffix);
  auto file = env.new_writable_file(temp_path);
  file->append(dlog::encode_node_file(node_file));
  file->sync();
  ++syncs;
  file->close();
  env.rename_file(temp_path, final_path);
  env.sync_dir(dir);
  ++dir_syncs;
}

void DecisionLog::Impl::check_writable(std::string_view what) const {
  if (const pid_t pid = ::getpid(); pid != opened_by) {
    throw UsageError(std::string(what) + ": the decision log in '" + dir +
                     "' was opened by process " + std::to_string(opened_by) + "; process " +
                     std::to_string(pid) +
                     " is a fork() child of it and may not write it (a log has one writer "
                     "process). Open the log after fork(), or give the child a log of its own "
                     "(another directory, another node id)");
  }
  if (options.read_only) {
    throw UsageError(std::string(what) + ": the decision log in '" + dir +
                     "' was opened read-only (DecisionLogOptions::read_only, a dry run)");
  }
}

void DecisionLog::Impl::replay(const std::string& segment_file, std::uint64_t sequence) {
  auto file = env.new_random_access_file(segment_file);
  replayed_size = file->size();
  // Damage is not thrown by the reader: damage_found() decides, with the way out in the text.
  io::RecordReader reader(*file, io::ScanOptions{.throw_on_corruption = false});
  auto first = reader.next();
  const auto header = first && first->offset == 0 && first->type == dlog::kSegmentHeaderRecord
                          ? dlog::decode_header(first->payload)
                          : std::nullopt;
  if (header) {
    if (header->node != node) {
      throw StorageError("cannot open the decision log in '" + dir + "': '" + segment_file +
                         "' belongs to node " + header->node.to_hex() + ", but '" +
                         path(dlog::kNodeIdFile) + "' says " + node.to_hex() +
                         ": one of the two files is damaged (the node id is at offset 0 of "
                         "node-id and at offset " +
                         std::to_string(kNodeIdOffset) +
                         " of the segment), or the directory mixes files of two coordinators. "
                         "Restore the damaged file from a backup; give each coordinator a "
                         "directory of its own");
    }
    epoch = header->epoch;
    replayed_preallocated = header->preallocated;
    if (header->sequence != sequence) {
      damage_found("'" + segment_file + "' holds segment " + std::to_string(header->sequence) +
                   " (its header at offset 0 says so), not " + std::to_string(sequence) +
                   ": a renamed or older copy, and the records of segment " +
                   std::to_string(sequence) + " are not in it");
    }
    // A preallocated segment is created at its full size and never shrinks.
    if (header->preallocated > 0 && replayed_size < header->preallocated) {
      damage_found("'" + segment_file + "' is " + std::to_string(replayed_size) +
                   " bytes, but it was zero-filled to " + std::to_string(header->preallocated) +
                   " bytes when it was created (its header says so) and a segment never "
                   "shrinks: it was cut at offset " +
                   std::to_string(replayed_size) + ", and records past that offset may be lost");
    }
    first.reset();
  } else {
    // A segment gets its name only after its header was synced, so a bad header is damage,
    // not a crash artefact. Without the header the epoch is known only from the node-id
    // file; a file written by format version 1 does not hold it, and then tolerating cannot
    // help either: do not advise it.
    const std::string what = "'" + segment_file +
                             "' does not start with a valid decision log segment header "
                             "(format version " +
                             std::to_string(dlog::kOldestFormatVersion) + " to " +
                             std::to_string(dlog::kFormatVersion) +
                             ") at offset 0: its first bytes are damaged";
    if (!node_file.has_position) {
      throw StorageError("cannot open the decision log in '" + dir + "': " + what +
                         ". The log's epoch is recorded only there (the node-id file was "
                         "written by an older version of xact and holds the node id alone), so "
                         "the log cannot be opened without it, not even with "
                         "tolerate_corruption: restore the segment from a backup");
    }
    damage_found(what);
    epoch = node_file.epoch;
    if (first && first->type != dlog::kBatchRecord) first.reset();
  }
  const auto apply_record = [&](const io::Record& record) {
    if (record.type != dlog::kBatchRecord) {
      throw StorageError("cannot open the decision log in '" + dir + "': '" + segment_file +
                         "' has a valid record of unknown type " + std::to_string(record.type) +
                         " at offset " + std::to_string(record.offset) +
                         ": it was written by a newer version of xact; open it with that version");
    }
    const std::string error = dlog::decode_batch(
        record.payload, [&](dlog::EntryKind kind, const Gtrid& gtrid, std::string_view entry) {
          if (kind == dlog::EntryKind::kCommit) ++report.commits_replayed;
          if (kind == dlog::EntryKind::kDone) ++report.dones_replayed;
          apply_entry(kind, gtrid, entry);
        });
    if (!error.empty()) {
      throw StorageError("cannot open the decision log in '" + dir + "': '" + segment_file + "': " +
                         error + " in the record at offset " + std::to_string(record.offset) +
                         " (its checksum is valid: written by a newer version of xact? open it "
                         "with that version)");
    }
  };
  if (first) apply_record(*first);
  while (auto record = reader.next()) apply_record(*record);
  report.segment = segment_file;
  report.scan = reader.report();
  if (!report.scan.corrupt.empty()) {
    const auto& c = report.scan.corrupt.front();
    // Tolerated, the ranges are listed in report.scan.
    refuse_damage("'" + segment_file + "' is damaged: " + std::to_string(c.bytes) +
                  " bytes at offset " + std::to_string(c.offset) + " (" + c.reason + ")" +
                  (report.scan.corrupt.size() > 1
                       ? " and " + std::to_string(report.scan.corrupt.size() - 1) + " more range(s)"
                       : std::string()) +
                  " are followed by valid records, so this is not a write a crash cut off");
  }
}

// Applies one durable entry to the in-memory state (mu held, or no other thread yet).
void DecisionLog::Impl::apply_entry(dlog::EntryKind kind, const Gtrid& gtrid,
                                    std::string_view entry) {
  switch (kind) {
    case dlog::EntryKind::kCommit: unfinished.insert_or_assign(gtrid, std::string(entry)); break;
    case dlog::EntryKind::kDone: unfinished.erase(gtrid); break;
    case dlog::EntryKind::kHeuristic:
      heuristics.insert_or_assign({gtrid, dlog::decode_heuristic_entry(entry)->resource},
                                  std::string(entry));
      break;
    case dlog::EntryKind::kForgetHeuristic:
      heuristics.erase({gtrid, *dlog::decode_forget_heuristic_entry(entry)});
      break;
    case dlog::EntryKind::kDamage: damage.insert_or_assign(gtrid, std::string(entry)); break;
  }
}

// ---------------------------------------------------------------------------------------------
// rotation

std::vector<std::string> DecisionLog::Impl::snapshot_locked() {
  std::vector<std::string> chunks;
  std::string chunk;
  auto add = [&](const std::string& entry) {
    if (!chunk.empty() && chunk.size() + entry.size() > options.max_batch_bytes) {
      chunks.push_back(std::move(chunk));
      chunk.clear();
    }
    chunk += entry;
  };
  for (const auto& [gtrid, entry] : unfinished) add(entry);
  for (const auto& [key, entry] : heuristics) add(entry);
  for (const auto& [id, entry] : damage) add(entry);
  if (!chunk.empty()) chunks.push_back(std::move(chunk));
  // The snapshot holds exactly the unfinished commits and the heuristic outcomes: pending done
  // records are subsumed.
  pending_done.clear();
  return chunks;
}

// The crash-safety argument for each step is in doc/decision_log.md ("Rotation").
void DecisionLog::Impl::rotate(std::uint64_t sequence, const std::vector<std::string>& snapshot,
                               std::uint64_t room, const std::vector<std::string>& obsolete) {
  std::uint64_t snapshot_bytes = 0;
  for (const auto& chunk : snapshot) snapshot_bytes += io::kRecordOverhead + chunk.size();
  // Room for at least as much again as the snapshot, so a large snapshot cannot make every
  // following write rotate. (The header's own size is bounded: 64 bytes are plenty.)
  const std::uint64_t new_capacity =
      std::max<std::uint64_t>(options.segment_bytes, 2 * (snapshot_bytes + 64) + room);
  std::string content = io::encode_record(
      dlog::kSegmentHeaderRecord,
      dlog::encode_header({node, epoch, sequence, options.preallocate ? new_capacity : 0}));
  for (const auto& chunk : snapshot) io::encode_record(content, dlog::kBatchRecord, chunk);

  const std::string final_path = path(dlog::segment_name(sequence));
  const std::string temp_path = final_path + std::string(dlog::kTempSuffix);
  // 1. Write the new segment under a temporary name.
  auto file = env.new_writable_file(temp_path);
  file->write_at(0, content);
  records += 1 + snapshot.size();
  bytes += content.size();
  if (options.preallocate) {
    for (std::uint64_t at = content.size(); at < new_capacity;) {
      const std::uint64_t n = std::min<std::uint64_t>(zeros().size(), new_capacity - at);
      file->write_at(at, std::string_view(zeros()).substr(0, n));
      at += n;
    }
  }
  // 2. Make it durable, zeros included (so later commits overwrite allocated blocks).
  file->sync();
  ++syncs;
  // 3. Give it its name, and make the name durable before anything depends on it.
  env.rename_file(temp_path, final_path);
  env.sync_dir(dir);
  ++dir_syncs;
  // 3b. Record it as the newest segment in the node-id file, so a later open can tell that it
  //     went missing (a crash before this leaves the older sequence there: still no gap).
  write_node_file(epoch, sequence);
  // 4. Switch. From here on the new segment is the newest one and holds every unfinished
  //    commit: the old ones are garbage.
  if (segment) {
    try {
      segment->close();
    } catch (const StorageError&) {
      // Everything that mattered in it was synced; a failed close loses nothing.
    }
  }
  segment = std::move(file);
  segment_path = final_path;
  segment_sequence = sequence;
  write_offset = content.size();
  capacity = new_capacity;
  ++checkpoints;
  // 5. Delete the old segments. Not synced: one that comes back after a crash is older than
  //    the newest segment, so it is ignored and deleted at the next open.
  for (const auto& p : obsolete) {
    try {
      env.remove_file(p);
    } catch (const StorageError&) {
      // Harmless, see above.
    }
  }
}

// ---------------------------------------------------------------------------------------------
// group commit

void DecisionLog::Impl::submit(WriterPtr w) {
  std::unique_lock lock(mu);
  queue.submit(lock, std::move(w));
}

// The writer at the front of the queue takes as many queued commits as fit in one batch; the
// queue then calls write() with the mutex released (so more commits queue up meanwhile for the
// next batch), complete() with it held, and wakes them.
std::size_t DecisionLog::Impl::select(Batch queued) {
  batch_payload.clear();
  batch_record_size = 0;
  batch_snapshot.clear();
  batch_rotates = false;
  if (queued.front().kind == Writer::Kind::kCheckpoint) {
    batch_snapshot = snapshot_locked();
    batch_rotates = true;
    return 1;
  }
  // Done records ride along, up to half a batch (whole entries: each has the same size).
  const std::size_t done_room =
      std::max<std::size_t>(1, options.max_batch_bytes / 2 / dlog::kDoneEntrySize) *
      dlog::kDoneEntrySize;
  const std::size_t done_bytes = std::min(pending_done.size(), done_room);
  batch_payload = pending_done.substr(0, done_bytes);
  pending_done.erase(0, done_bytes);
  std::size_t n = 0;
  for (const Writer& w : queued) {
    if (w.kind == Writer::Kind::kCheckpoint) break;
    if (n > 0 && batch_payload.size() + w.entry.size() > options.max_batch_bytes) break;
    batch_payload += w.entry;
    ++n;
  }
  batch_record_size = io::kRecordOverhead + batch_payload.size();
  if (write_offset + batch_record_size > capacity) {
    batch_snapshot = snapshot_locked();
    batch_rotates = true;
  }
  return n;
}

void DecisionLog::Impl::write(Batch) {
  batch_record.clear();
  // Encoded (checksummed) here, not under the mutex: committers keep queueing meanwhile.
  if (batch_record_size > 0) batch_record = io::encode_record(dlog::kBatchRecord, batch_payload);
  if (batch_rotates)
    rotate(segment_sequence + 1, batch_snapshot, batch_record_size, {segment_path});
  if (!batch_record.empty()) {
    segment->write_at(write_offset, batch_record);
    segment->sync();
  }
}

void DecisionLog::Impl::complete(Batch batch) {
  if (batch_record.empty()) return;  // a checkpoint: rotate() did the work
  write_offset += batch_record.size();
  ++syncs;
  ++records;
  bytes += batch_record.size();
  ++forced_writes;
  commits += batch.size();
  max_batch = std::max<std::uint64_t>(max_batch, batch.size());
  // Only now, durable, do they count as committed.
  for (Writer& w : batch) {
    switch (w.kind) {
      case Writer::Kind::kCommit: unfinished.insert_or_assign(w.gtrid, std::move(w.entry)); break;
      case Writer::Kind::kHeuristic:
        heuristics.insert_or_assign({w.gtrid, w.resource}, std::move(w.entry));
        break;
      case Writer::Kind::kForgetHeuristic: heuristics.erase({w.gtrid, w.resource}); break;
      case Writer::Kind::kCheckpoint: break;
    }
  }
}

std::exception_ptr DecisionLog::Impl::failure_error(std::exception_ptr cause) {
  failure = "the decision log in '" + dir +
            "' stopped after an I/O failure: " + error_message(cause) +
            ". The commit records written at that moment may or may not be durable, so the "
            "log refuses every further commit (fail-stop) and those transactions are in "
            "doubt. Restart the process: recovery at start-up reads the log and decides "
            "each of them";
  return std::make_exception_ptr(LogFailedError(failure));
}

void DecisionLog::Impl::flush_pending_done() noexcept {
  std::string payload;
  {
    std::lock_guard guard(mu);
    if (!failure.empty() || pending_done.empty() || !segment) return;
    payload.swap(pending_done);
  }
  try {
    // One record (and one sync) per batch-sized chunk, so a crash cuts off whole records.
    const std::size_t chunk =
        std::max<std::size_t>(1, options.max_batch_bytes / dlog::kDoneEntrySize) *
        dlog::kDoneEntrySize;
    for (std::size_t at = 0; at < payload.size(); at += chunk) {
      const std::string record =
          io::encode_record(dlog::kBatchRecord, std::string_view(payload).substr(at, chunk));
      segment->write_at(write_offset, record);
      segment->sync();
      write_offset += record.size();
      ++syncs;
      ++records;
      bytes += record.size();
    }
  } catch (...) {
    // Lost done records only make recovery re-drive finished commits, which is harmless.
  }
}

// ---------------------------------------------------------------------------------------------
// DecisionLog

std::string DecisionLog::OpenReport::describe() const {
  std::string out = created ? "created a new decision log"
                            : "replayed '" + segment + "': " + std::to_string(commits_replayed) +
                                  " commit and " + std::to_string(dones_replayed) +
                                  " done records, " + scan.describe();
  for (const auto& p : problems) out += "; tolerated damage: " + p;
  if (!removed.empty()) out += "; removed " + std::to_string(removed.size()) + " stale files";
  return out;
}

DecisionLog::DecisionLog(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), redriver_(std::make_unique<Redriver>(this)) {}

std::unique_ptr<DecisionLog> DecisionLog::open(io::Env& env, std::string dir,
                                               DecisionLogOptions options) {
  if (dir.empty()) throw UsageError("DecisionLog::open needs a directory; the path is empty");
  if (options.max_batch_bytes < 1024 || options.max_batch_bytes > io::kMaxRecordPayload) {
    throw UsageError("DecisionLogOptions::max_batch_bytes must be between 1 KiB and " +
                     std::to_string(io::kMaxRecordPayload >> 20) + " MiB");
  }
  auto impl = std::make_unique<Impl>(env, std::move(dir), options);
  impl->start();
  return std::unique_ptr<DecisionLog>(new DecisionLog(std::move(impl)));
}

DecisionLog::~DecisionLog() {
  redriver_.reset();  // its last done records go out with the flush below
  impl_->flush_pending_done();
  if (impl_->segment) {
    try {
      impl_->segment->close();
    } catch (const StorageError&) {
      // Nothing unsynced is left to lose.
    }
  }
}

const NodeId& DecisionLog::node_id() const { return impl_->node; }
std::uint32_t DecisionLog::epoch() const { return impl_->epoch; }
const std::string& DecisionLog::dir() const { return impl_->dir; }

Gtrid DecisionLog::new_gtrid() {
  // Read-only, the epoch is the last one used: its ids may exist already.
  impl_->check_writable("new_gtrid");
  Gtrid gtrid(impl_->node, impl_->epoch,
              impl_->next_sequence.fetch_add(1, std::memory_order_relaxed));
  std::lock_guard guard(impl_->flight_mu);
  impl_->flying.insert(gtrid);
  return gtrid;
}

bool DecisionLog::in_flight(const Gtrid& gtrid) const {
  {
    std::lock_guard guard(impl_->flight_mu);
    if (impl_->flying.contains(gtrid)) return true;
  }
  return redriver_->owns(gtrid);
}

Redriver& DecisionLog::redriver() noexcept { return *redriver_; }

void DecisionLog::release(const Gtrid& gtrid) noexcept {
  std::lock_guard guard(impl_->flight_mu);
  impl_->flying.erase(gtrid);
}

void DecisionLog::log_heuristic(const HeuristicRecord& record) {
  impl_->check_writable("log_heuristic");
  auto w = std::make_shared<Impl::Writer>(Impl::Writer::Kind::kHeuristic, record.gtrid);
  w->resource = record.resource;
  HeuristicRecord stamped = record;
  if (stamped.time_us == 0) stamped.time_us = impl_->env.now_micros();
  dlog::append_heuristic_entry(w->entry, stamped);
  impl_->submit(w);
}

std::vector<HeuristicRecord> DecisionLog::heuristics() const {
  std::lock_guard guard(impl_->mu);
  std::vector<HeuristicRecord> out;
  for (const auto& [key, entry] : impl_->heuristics) {
    out.push_back(*dlog::decode_heuristic_entry(entry));  // validated when written or replayed
  }
  return out;
}

std::vector<LogDamage> DecisionLog::damage() const {
  std::lock_guard guard(impl_->mu);
  std::vector<LogDamage> out;
  for (const auto& [id, entry] : impl_->damage) out.push_back(*dlog::decode_damage_entry(entry));
  return out;
}

bool DecisionLog::forget_heuristic(const Gtrid& gtrid, const std::string& resource) {
  impl_->check_writable("forget_heuristic");
  {
    std::lock_guard guard(impl_->mu);
    if (!impl_->heuristics.contains({gtrid, resource})) return false;
  }
  auto w = std::make_shared<Impl::Writer>(Impl::Writer::Kind::kForgetHeuristic, gtrid);
  w->resource = resource;
  dlog::append_forget_heuristic_entry(w->entry, gtrid, resource);
  impl_->submit(w);
  return true;
}

DecisionLog::Inspection DecisionLog::inspect(io::Env& env, const std::string& dir) {
  if (!env.exists(dir)) throw StorageError("no decision log in '" + dir + "': no such directory");
  DecisionLogOptions options;
  options.tolerate_corruption = true;  // show what is there, damage included
  Impl impl(env, dir, options);
  std::vector<std::string> temporaries;
  bool has_node_id = false;
  const auto segments = impl.load(&temporaries, &has_node_id);
  if (!has_node_id) {
    throw StorageError("no decision log in '" + dir + "': it has no node-id file");
  }
  Inspection out;
  out.node = impl.node;
  out.epoch = impl.node_file.has_position ? std::max(impl.epoch, impl.node_file.epoch) : impl.epoch;
  if (!segments.empty()) out.segment = impl.path(segments.rbegin()->second);
  for (const auto& [gtrid, entry] : impl.unfinished) {
    out.unfinished.push_back(*dlog::decode_commit_entry(entry));
  }
  for (const auto& [key, entry] : impl.heuristics) {
    out.heuristics.push_back(*dlog::decode_heuristic_entry(entry));
  }
  for (const auto& [id, entry] : impl.damage)
    out.damage.push_back(*dlog::decode_damage_entry(entry));
  out.commits_replayed = impl.report.commits_replayed;
  out.dones_replayed = impl.report.dones_replayed;
  out.scan = impl.report.scan;
  out.problems = impl.report.problems;
  out.segment_size = impl.replayed_size;
  out.preallocated = impl.replayed_preallocated;
  return out;
}

void DecisionLog::log_commit(const CommitRecord& record) {
  impl_->check_writable("log_commit");
  auto w = std::make_shared<Impl::Writer>(Impl::Writer::Kind::kCommit, record.gtrid);
  if (record.time_us == 0) {
    CommitRecord stamped = record;
    stamped.time_us = impl_->env.now_micros();
    dlog::append_commit_entry(w->entry, stamped);
  } else {
    dlog::append_commit_entry(w->entry, record);
  }
  if (w->entry.size() > impl_->options.max_batch_bytes) {
    throw UsageError("a commit record of " + std::to_string(w->entry.size()) +
                     " bytes exceeds DecisionLogOptions::max_batch_bytes (" +
                     std::to_string(impl_->options.max_batch_bytes) + ")");
  }
  impl_->submit(w);
}

void DecisionLog::log_done(const Gtrid& gtrid) {
  std::lock_guard guard(impl_->mu);
  if (!impl_->failure.empty() || impl_->options.read_only) return;
  const auto it = impl_->unfinished.find(gtrid);
  if (it == impl_->unfinished.end()) return;
  impl_->unfinished.erase(it);
  dlog::append_done_entry(impl_->pending_done, gtrid);
  ++impl_->dones;
}

bool DecisionLog::is_committed(const Gtrid& gtrid) const {
  std::lock_guard guard(impl_->mu);
  return impl_->unfinished.contains(gtrid);
}

std::vector<CommitRecord> DecisionLog::unfinished() const {
  std::lock_guard guard(impl_->mu);
  std::vector<CommitRecord> out;
  out.reserve(impl_->unfinished.size());
  // Gtrid bytes are node, epoch, sequence, big-endian: map order is commit-id order.
  for (const auto& [gtrid, entry] : impl_->unfinished) {
    out.push_back(*dlog::decode_commit_entry(entry));  // validated when written or replayed
  }
  return out;
}

void DecisionLog::checkpoint() {
  impl_->check_writable("checkpoint");
  impl_->submit(std::make_shared<Impl::Writer>(Impl::Writer::Kind::kCheckpoint));
}

DecisionLog::Stats DecisionLog::stats() const {
  std::lock_guard guard(impl_->mu);
  Stats s;
  s.commits = impl_->commits;
  s.forced_writes = impl_->forced_writes;
  s.max_batch = impl_->max_batch;
  s.dones = impl_->dones;
  s.syncs = impl_->syncs;
  s.dir_syncs = impl_->dir_syncs;
  s.records = impl_->records;
  s.bytes = impl_->bytes;
  s.checkpoints = impl_->checkpoints;
  s.unfinished = impl_->unfinished.size();
  s.failed = !impl_->failure.empty();
  return s;
}

const DecisionLog::OpenReport& DecisionLog::open_report() const { return impl_->report; }

}  // namespace xact
