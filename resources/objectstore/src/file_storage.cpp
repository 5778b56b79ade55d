// FileStorage: open (scan, index, torn tail), group commit, loads, recovery, the index file.
// Format and the crash-safety argument: doc/file_storage.md. Pack, backup, verify and dump are
// in file_storage_pack.cpp.
#include <xact/objectstore/file_storage.hpp>

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include <xact/crash_point.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>

#include "file_storage_impl.hpp"
#include "storage_conflicts.hpp"

namespace xact::objectstore {
namespace {

const std::string& zeros() {
  static const std::string block(1u << 20, '\0');
  return block;
}

// The most bytes one leader writes at once; more queued writers wait for the next batch.
constexpr std::size_t kMaxBatchBytes = 8u << 20;
// How long a committer waits for a one-phase commit that holds one of its oids (one write and
// one fsync: a few milliseconds on a disk) before it reports the conflict.
constexpr std::chrono::milliseconds kOnePhaseWait{5};
// Entries per index record (28 bytes each: about 1 MiB per record).
constexpr std::size_t kIndexChunk = 36000;

}  // namespace

// ---------------------------------------------------------------------------------------------
// helpers

void write_zeros(io::WritableFile& file, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t at = from; at < to;) {
    const std::uint64_t n = std::min<std::uint64_t>(zeros().size(), to - at);
    file.write_at(at, std::string_view(zeros()).substr(0, n));
    at += n;
  }
}

std::uint64_t end_of_nonzero(const io::RandomAccessFile& file, std::uint64_t from,
                             std::uint64_t size) {
  std::string chunk;
  std::uint64_t end = size;
  while (end > from) {
    const std::uint64_t begin = end - std::min<std::uint64_t>(end - from, 1u << 20);
    chunk.resize(end - begin);
    chunk.resize(file.read(begin, chunk));
    const auto it = std::find_if(chunk.rbegin(), chunk.rend(), [](char c) { return c != 0; });
    if (it != chunk.rend()) return begin + static_cast<std::uint64_t>(chunk.rend() - it);
    end = begin;
  }
  return from;
}

InDoubtLockError::InDoubtLockError(Oid oid, const std::string& type, Tid read, const Xid& holder,
                                   const std::string& storage_path)
    : ResourceError(
          "object " + oid_repr(oid) + (type.empty() ? std::string() : " (" + type + ")") +
          (read == kNoTid ? std::string() : " read at serial " + tid_repr(read)) +
          " is locked by transaction " + holder.to_gid() + ", which was prepared in " +
          storage_path +
          " before the storage was opened: a crash or restart interrupted its two-phase "
          "commit. Retrying cannot help; only recovery decides it and releases the lock: run "
          "xact::Recovery (with the coordinator's decision log, and DB::recovery_target() "
          "registered) at start-up, or decide it by hand with FileStorage::commit_prepared / "
          "rollback_prepared"),
      oid_(oid),
      holder_(holder) {}

std::string FileStorageOpenReport::describe() const {
  std::string out = created ? "created" : "opened";
  out += index_used ? " with the index, scanned " + std::to_string(scanned_bytes) +
                          " bytes from offset " + std::to_string(scanned_from)
                    : " by a full scan of " + std::to_string(scanned_bytes) + " bytes";
  if (!index_problem.empty()) out += " (index not used: " + index_problem + ")";
  out += "; " + std::to_string(objects) + " objects, " + std::to_string(prepared) +
         " prepared transactions";
  if (cut_off_bytes > 0) {
    out += "; cut off " + std::to_string(cut_off_bytes) +
           " bytes of an incomplete write at offset " + std::to_string(end_of_data) + " (" +
           cut_off_reason + ")";
    if (!tail_file.empty()) out += ", kept in " + tail_file;
  }
  for (const auto& r : salvaged) {
    out += "; salvage dropped " + std::to_string(r.bytes) + " damaged bytes at offset " +
           std::to_string(r.offset) + " (" + r.reason + ")";
  }
  for (const auto& r : repaired) out += "; " + r;
  return out;
}

// ---------------------------------------------------------------------------------------------
// open

namespace {

// The header of a data file, or nullopt when it has none.
std::optional<fs::FileHeader> read_header(io::Env& env, const std::string& path) {
  auto file = env.new_random_access_file(path);
  const auto first = io::read_record_at(*file, 0);
  if (!first || first->type != fs::kHeaderRecord) return std::nullopt;
  return fs::decode_file_header(first->payload);
}

}  // namespace

void FileStorage::Impl::repair_pack_leftovers() {
  const std::string dir = io::parent_dir(path);
  const std::string packed = fs::pack_path(path);
  const std::string old = fs::old_path(path);
  if (env.exists(path)) {
    // FILE is there, so a pack left FILE.pack before its renames (after them it is gone): the
    // old file is intact and current.
    if (env.exists(packed)) {
      env.remove_file(packed);
      report.repaired.push_back("removed " + packed + " left by an interrupted pack");
    }
    return;
  }
  if (!env.exists(packed) || !env.exists(old)) return;
  // FILE missing, FILE.old and FILE.pack present: a pack stopped between its renames only if
  // the pack says it was made from FILE.old (its header names the file it copied), and it was
  // complete and synced before the first rename. Mere presence proves nothing: FILE may have
  // been moved away after an earlier pack.
  std::optional<fs::FileHeader> packed_header;
  std::optional<fs::FileHeader> old_header;
  try {
    packed_header = read_header(env, packed);
    old_header = read_header(env, old);
  } catch (const StorageError&) {
    // Unreadable: not the evidence asked for; refused below.
  }
  if (packed_header && old_header && packed_header->packed_from == old_header->file_id &&
      packed_header->durable_end > 0) {
    env.rename_file(packed, path);
    env.sync_dir(dir);
    report.repaired.push_back("completed an interrupted pack (renamed " + packed + ")");
  }
}

void FileStorage::Impl::refuse_missing_file() {
  // Creating a new, empty file would silently drop every commit the missing one held.
  const std::string old = fs::old_path(path);
  const std::string ipath = fs::index_path(path);
  if (env.exists(old)) {
    throw StorageError(
        what() + " does not exist, but " + old +
        " (the file as it was before a pack) does: a pack leaves FILE.old beside FILE, so FILE "
        "was moved or deleted after it (or a pack's result is missing). Put FILE back or "
        "restore it from a backup; to go back to the state before that pack on purpose, "
        "rename " +
        old + " to " + path + " yourself");
  }
  if (env.exists(ipath)) {
    throw StorageError(what() + " does not exist, but its index " + ipath +
                       " does: the data file was moved or deleted. Restore it from a backup "
                       "(or put it back); to start a new, empty storage instead, remove " +
                       ipath);
  }
}

void FileStorage::Impl::create_file() {
  // Under a temporary name until the header is durable, so FILE never exists without one.
  const std::string temp = path + ".tmp";
  header.file_id = fs::random_file_id();
  header.created_us = env.now_micros();
  header.chunk = options.preallocate_bytes;
  const std::size_t header_size = io::kRecordOverhead + fs::encode_file_header(header).size();
  header.durable_end = header_size;
  auto file = env.new_writable_file(temp);
  const std::string record = io::encode_record(fs::kHeaderRecord, fs::encode_file_header(header));
  file->write_at(0, record);
  if (options.preallocate_bytes > record.size()) {
    write_zeros(*file, record.size(), options.preallocate_bytes);
  }
  file->sync();
  file->close();
  env.rename_file(temp, path);
  env.sync_dir(io::parent_dir(path));
  report.created = true;
}

void FileStorage::Impl::open() {
  const auto missing = [&] {
    return StorageError(what() +
                        " does not exist: check the path, or restore the file from a backup "
                        "(open it read-write with FileStorageOptions::create to create a new, "
                        "empty one)");
  };
  // Refused before the lock is taken, so a mistyped path leaves no FILE.lock behind (an
  // interrupted pack's leftovers still count as the file: open completes the pack).
  if ((options.read_only || !options.create) && !env.exists(path) &&
      !env.exists(fs::old_path(path))) {
    throw missing();
  }
  if (!options.read_only) {
    try {
      file_lock = env.lock_file(fs::lock_path(path));
    } catch (const io::FileLockedError& e) {
      throw io::FileLockedError(what() + " is in use: " + e.what() +
                                ". One process opens a storage file for writing at a time: close "
                                "the other process (or the other FileStorage), or open this one "
                                "read-only");
    } catch (const StorageError& e) {
      // Nobody holds it: the lock file cannot be created or opened (permissions, a directory
      // in its place). Not "in use": stopping other processes would not help.
      throw StorageError(what() + " cannot be locked: " + e.what() +
                         ". Check that this process's user may create and write the lock file "
                         "next to it, or open it read-only");
    }
    repair_pack_leftovers();
  }
  if (!env.exists(path)) {
    refuse_missing_file();
    if (options.read_only || !options.create) throw missing();
    create_file();
  }
  readers.push_back(env.new_random_access_file(path));
  reader = readers.back().get();
  const auto first = io::read_record_at(*reader, 0);
  std::optional<fs::FileHeader> h;
  if (first && first->type == fs::kHeaderRecord) {
    const auto version = fs::file_header_version(first->payload);
    if (version && *version != fs::kFormatVersion) {
      throw StorageError(
          what() + " is in storage format version " + std::to_string(*version) +
          ", and this build reads only version " + std::to_string(fs::kFormatVersion) +
          (*version < fs::kFormatVersion
               ? " (version 2 records in every write the evidence that tells damage from a "
                 "torn write). There is no in-place upgrade: open it with the xact release "
                 "that wrote it and copy its objects into a new storage"
               : ": it was written by a newer xact; open it with that release"));
    }
    h = fs::decode_file_header(first->payload);
  }
  if (!h) {
    throw StorageError(what() +
                       " does not start with an xact object storage header (offset 0, format "
                       "version " +
                       std::to_string(fs::kFormatVersion) +
                       "): it is another kind of file, or its first bytes are "
                       "damaged; restore it from a backup");
  }
  header = *h;
  evidence_end = header.durable_end;
  evidence = "the file's header says its first " + std::to_string(header.durable_end) +
             " bytes were synced when it was made";
  next_oid = std::max<Oid>(next_oid, header.next_oid);
  std::uint64_t scan_from = first->end();
  if (load_index(&scan_from)) report.index_used = true;
  report.scanned_from = scan_from;
  scan(scan_from);
  claims.reset();
  prepared_at.clear();
  next_offset = published_end;
  last_assigned = last_tid;
  report.end_of_data = published_end;
  report.last_tid = last_tid;
  report.objects = index.size();
  report.prepared = prepared.size();
  if (!options.read_only) {
    writer = env.new_appendable_file(path);
    capacity = writer->size();
    // What this process reads may be in the page cache only (a previous process may have died
    // before its fsync): synced once here, so the durable end this writer claims is true.
    if (options.sync == SyncMode::full) writer->sync();
    durable_end = options.sync == SyncMode::full ? published_end : evidence_end;
  }
  if (report.cut_off_bytes > 0 || !report.salvaged.empty() || !report.repaired.empty()) {
    log(LogLevel::warning, what() + ": " + report.describe());
  } else if (!report.index_problem.empty() && !report.created) {
    log(LogLevel::info, what() + ": " + report.describe());
  }
}

void FileStorage::Impl::refuse_damage(std::uint64_t offset, const std::string& what_is_wrong,
                                      const std::string& proof) const {
  throw StorageError(what() + " is damaged at offset " + std::to_string(offset) + ": " +
                     what_is_wrong + ", and " + proof +
                     ", so this is damage to written data, not a write cut off by a crash. Run "
                     "`xact storage verify " +
                     path +
                     "` and restore the file from a backup, or open it with "
                     "FileStorageOptions::salvage to keep what can still be read");
}

bool FileStorage::Impl::load_index(std::uint64_t* scan_from) {
  const std::string ipath = fs::index_path(path);
  if (!env.exists(ipath)) {
    report.index_problem = "no index file";
    return false;
  }
  try {
    auto file = env.new_random_access_file(ipath);
    const std::uint64_t index_size = file->size();
    io::RecordReader r(*file);
    auto first = r.next();
    std::optional<fs::IndexHeader> h;
    if (first && first->type == fs::kIndexHeader) h = fs::decode_index_header(first->payload);
    if (!h) {
      report.index_problem = "the index file has no valid header";
      return false;
    }
    if (h->file_id != header.file_id) {
      report.index_problem = "the index belongs to another file (or to the file before a pack)";
      return false;
    }
    // The index of this very file, written only after the data it covers was fsynced: its
    // covered end is evidence that those bytes were durable, used or not.
    const std::uint64_t size = reader->size();
    const auto last =
        h->covered_end <= size ? io::read_record_before(*reader, h->covered_end) : std::nullopt;
    char crc[4];
    const bool matches =
        last && reader->read(last->offset, crc) == 4 && fs::load_u32(crc) == h->last_record_crc;
    if (!matches) {
      const std::string proof = "its index " + ipath + " (written after an fsync) covers " +
                                std::to_string(h->covered_end) + " bytes of it";
      const std::string wrong = h->covered_end > size
                                    ? "the file holds " + std::to_string(size) +
                                          " bytes (truncated, or replaced by an older copy)"
                                    : "the record ending there is not the one the index recorded";
      if (!options.salvage) {
        refuse_damage(std::min(h->covered_end, size), wrong, proof);
      }
      report.salvaged.push_back({std::min(h->covered_end, size), 0, wrong + " (" + proof + ")"});
      report.index_problem = "the index does not match the file";
      return false;
    }
    evidence_end = std::max(evidence_end, h->covered_end);
    evidence = "its index " + ipath + " (written after an fsync) covers the first " +
               std::to_string(h->covered_end) + " bytes";
    // The highest oid ever handed out, even if the rest of the index is damaged.
    next_oid = std::max<Oid>(next_oid, h->next_oid);
    if (!options.use_index) {
      report.index_problem = "not used (FileStorageOptions::use_index is off)";
      return false;
    }
    // A forged count must not make us allocate: every entry takes kIndexEntrySize bytes.
    if (h->entries > index_size / fs::kIndexEntrySize) {
      report.index_problem = "the index header claims " + std::to_string(h->entries) +
                             " entries, more than its " + std::to_string(index_size) +
                             " bytes can hold";
      return false;
    }
    Index loaded;
    loaded.reserve(h->entries);
    bool ended = false;
    bool in_range = true;
    while (auto rec = r.next()) {
      if (rec->type == fs::kIndexEnd) {
        fs::Decoder d(rec->payload);
        std::uint64_t n = 0;
        ended = d.get_u64(n) && n == loaded.size() && n == h->entries;
        break;
      }
      if (rec->type != fs::kIndexEntries || rec->payload.size() % fs::kIndexEntrySize != 0) break;
      for (std::size_t at = 0; at < rec->payload.size(); at += fs::kIndexEntrySize) {
        const char* p = rec->payload.data() + at;
        const IndexEntry e{fs::load_u64(p + 8), fs::load_u32(p + 16), fs::load_u64(p + 20)};
        // Loads allocate the length read here: it must lie within the covered bytes.
        if (e.offset > h->covered_end ||
            h->covered_end - e.offset < fs::kEntryHeaderSize + std::uint64_t{e.length}) {
          in_range = false;
        }
        loaded[fs::load_u64(p)] = e;
      }
    }
    if (!ended || !in_range || !r.report().corrupt.empty()) {
      report.index_problem = "the index file is incomplete or damaged";
      return false;
    }
    // The prepared transactions undecided at the covered point: read back from the file.
    std::map<PreparedId, Prepared> pending;
    std::unordered_map<Oid, PreparedId> pending_locks;
    std::unordered_map<std::uint64_t, PreparedId> pending_at;
    for (std::uint64_t offset : h->prepared) {
      auto rec = offset < h->covered_end ? io::read_record_at(*reader, offset) : std::nullopt;
      fs::DecodedTransaction t;
      if (!rec || rec->type != fs::kPreparedRecord ||
          !fs::decode_transaction(rec->payload, t, false).empty()) {
        report.index_problem = "the index lists a prepared transaction the file does not hold";
        return false;
      }
      Prepared p;
      p.xid = t.xid;
      p.record_offset = offset;
      p.durable = true;
      p.recovered = true;
      for (const auto& e : t.entries) {
        p.writes.push_back({e.oid, offset + io::kRecordHeaderSize + e.at, e.length});
        p.locked.push_back(e.oid);
      }
      p.locked.insert(p.locked.end(), t.read_checks.begin(), t.read_checks.end());
      const PreparedId id = next_prepared++;
      for (Oid oid : p.locked) pending_locks[oid] = id;
      pending_at[offset] = id;
      pending.emplace(id, std::move(p));
    }
    index = std::move(loaded);
    prepared = std::move(pending);
    locks = std::move(pending_locks);
    prepared_at = std::move(pending_at);
    last_tid = h->last_tid;
    *scan_from = h->covered_end;
    return true;
  } catch (const StorageError& e) {
    if (std::string_view(e.what()).starts_with(what() + " is damaged")) throw;
    report.index_problem = std::string("the index file cannot be read: ") + e.what();
    return false;
  }
}

void FileStorage::Impl::apply_record(const io::Record& record) {
  auto bad = [&](const std::string& why) {
    throw StorageError(what() + " is damaged: the record at offset " +
                       std::to_string(record.offset) + " " + why +
                       ". Run `xact storage verify` on it and restore it from a backup (or open "
                       "it with FileStorageOptions::salvage to drop what cannot be read)");
  };
  auto commit = [&](Tid tid, const std::vector<PendingWrite>& writes) {
    if (tid <= last_tid) {
      bad("commits tid " + tid_repr(tid) + " after tid " + tid_repr(last_tid) +
          " (tids must increase)");
    }
    for (const auto& w : writes) {
      index[w.oid] = IndexEntry{w.offset, w.length, tid};
    }
    last_tid = tid;
    ++report.transactions;
  };
  switch (record.type) {
    case fs::kPreparedRecord:
    case fs::kCommittedRecord: {
      fs::DecodedTransaction t;
      if (auto error = fs::decode_transaction(record.payload, t, false); !error.empty()) {
        bad("is not a valid transaction (" + error + ")");
      }
      std::vector<PendingWrite> writes;
      writes.reserve(t.entries.size());
      Oid max_oid = t.next_oid > 0 ? t.next_oid - 1 : 0;
      for (const auto& e : t.entries) {
        writes.push_back({e.oid, record.offset + io::kRecordHeaderSize + e.at, e.length});
        max_oid = std::max(max_oid, e.oid);
      }
      next_oid = std::max<Oid>(next_oid, max_oid + 1);
      if (record.type == fs::kCommittedRecord) {
        commit(t.tid, writes);
        break;
      }
      Prepared p;
      p.xid = t.xid;
      p.record_offset = record.offset;
      p.durable = true;
      p.recovered = true;
      p.writes = std::move(writes);
      for (const auto& w : p.writes) p.locked.push_back(w.oid);
      p.locked.insert(p.locked.end(), t.read_checks.begin(), t.read_checks.end());
      const PreparedId id = next_prepared++;
      for (Oid oid : p.locked) locks[oid] = id;
      prepared_at[record.offset] = id;
      prepared.emplace(id, std::move(p));
      break;
    }
    case fs::kCommitMark:
    case fs::kAbortMark: {
      std::uint64_t target = 0;
      Tid tid = kNoTid;
      const bool ok = record.type == fs::kCommitMark
                          ? fs::decode_commit_mark(record.payload, target, tid)
                          : fs::decode_abort_mark(record.payload, target);
      if (!ok) bad("is a malformed commit or abort mark");
      // By offset through a hash map, not a search of every prepared transaction: a file
      // full of prepared records still opens in time linear in its size.
      auto at = prepared_at.find(target);
      auto it = at == prepared_at.end() ? prepared.end() : prepared.find(at->second);
      if (it == prepared.end()) {
        bad("decides a prepared transaction at offset " + std::to_string(target) +
            " that is not prepared there");
      }
      if (record.type == fs::kCommitMark) commit(tid, it->second.writes);
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      prepared_at.erase(at);
      break;
    }
    default: bad("has an unknown type " + std::to_string(record.type));
  }
}

std::uint64_t FileStorage::Impl::claimed_after(std::uint64_t offset) {
  if (!claims) {
    // One pass over everything after the first damage, kept as suffix maxima: every later
    // question is a binary search.
    claims.emplace();
    io::RecordReader r(*reader, io::ScanOptions{.start = offset});
    while (auto record = r.next()) {
      if (auto claim = fs::claimed_durable_end(*record)) {
        claims->suffix_max.emplace_back(record->offset, *claim);
      }
    }
    claims->gave_up = r.report().resync_gave_up;
    auto& v = claims->suffix_max;
    for (std::size_t i = v.size(); i-- > 1;)
      v[i - 1].second = std::max(v[i - 1].second, v[i].second);
  }
  const auto& v = claims->suffix_max;
  auto it = std::lower_bound(v.begin(), v.end(), offset,
                             [](const auto& e, std::uint64_t o) { return e.first < o; });
  return it == v.end() ? 0 : it->second;
}

void FileStorage::Impl::scan(std::uint64_t from) {
  io::RecordReader r(*reader, io::ScanOptions{.start = from});
  std::optional<std::uint64_t> gap;
  std::size_t corrupt_seen = 0;
  // Damage at `offset`: a torn tail only when nothing proves the bytes there were durable —
  // neither the header or index (evidence_end) nor any valid record after it claiming a
  // durable end beyond it. Not "any valid record after it": with group commit a later page of
  // the last unsynced batch may reach the disk before an earlier one, and that batch's
  // records claim only what was durable before it.
  auto durable_proof = [&](std::uint64_t offset) -> std::optional<std::string> {
    if (offset < evidence_end) return evidence;
    const std::uint64_t claimed = claimed_after(offset);
    if (claimed > offset) {
      return "a valid record after it says the file was synced up to offset " +
             std::to_string(claimed);
    }
    if (claims->gave_up) {
      return "what follows cannot be read (too many false record starts to tell)";
    }
    return std::nullopt;
  };
  auto handle_damage = [&](const io::DroppedRange& range) -> bool {
    const auto proof = durable_proof(range.offset);
    if (!proof) {
      // The end of data: pages of the last, unsynced writes reached the disk out of order.
      gap = range.offset;
      report.cut_off_reason =
          "damage followed only by writes that claim nothing durable beyond it: the last "
          "writes before a crash, never synced";
      return false;
    }
    if (!options.salvage) {
      refuse_damage(range.offset,
                    std::to_string(range.bytes) + " bytes are unreadable (" + range.reason + ")",
                    *proof);
    }
    report.salvaged.push_back(range);
    return true;
  };
  while (auto record = r.next()) {
    if (r.report().corrupt.size() > corrupt_seen) {
      const auto range = r.report().corrupt[corrupt_seen];
      corrupt_seen = r.report().corrupt.size();
      if (!handle_damage(range)) break;
    }
    report.scanned_bytes += record->end() - record->offset;
    if (options.salvage) {
      try {
        apply_record(*record);
      } catch (const StorageError& e) {
        report.salvaged.push_back({record->offset, record->end() - record->offset, e.what()});
      }
    } else {
      apply_record(*record);
    }
    published_end = record->end();
  }
  std::uint64_t cut_at = gap ? *gap : std::max(r.report().end_of_data, from);
  if (!gap && r.report().corrupt.size() > corrupt_seen) {
    // Damage after the last valid record that resynchronisation could not see past.
    const auto range = r.report().corrupt.back();
    if (!options.salvage) {
      refuse_damage(range.offset, range.reason,
                    "nothing shows whether the records after it were durable");
    }
    report.salvaged.push_back(range);
    cut_at = range.offset;
    gap = cut_at;
    report.cut_off_reason = "salvage: " + range.reason;
  }
  if (!gap && r.report().cut_off_bytes > 0) {
    report.cut_off_reason = r.report().cut_off_reason;
    if (cut_at < evidence_end) {
      if (!options.salvage) {
        refuse_damage(cut_at, "the last record is incomplete (" + report.cut_off_reason + ")",
                      evidence);
      }
      report.salvaged.push_back({cut_at, r.report().cut_off_bytes, report.cut_off_reason});
    }
  }
  if (!gap && header.chunk > 0) {
    // The file's size is evidence too: it grows by whole chunks, zeros first (in pieces of
    // 1 MiB at most, from the end of the batch that needs them), so a size that is not a
    // multiple of the chunk always ends in at least one piece of zeros.
    const std::uint64_t size = reader->size();
    const std::uint64_t piece = std::min<std::uint64_t>(header.chunk, zeros().size());
    if (size % header.chunk != 0 && r.report().zero_tail_bytes < piece) {
      const std::string wrong = "the file ends at " + std::to_string(size) +
                                " bytes, inside its last preallocated chunk of " +
                                std::to_string(header.chunk) + " bytes";
      if (!options.salvage) {
        refuse_damage(cut_at, wrong,
                      "the writer only ever leaves a whole chunk or a run of zeros there: the "
                      "file was truncated");
      }
      report.salvaged.push_back({cut_at, 0, wrong});
    }
  }
  published_end = cut_at;
  if (gap || r.report().cut_off_bytes > 0) cut_tail(cut_at);
}

void FileStorage::Impl::cut_tail(std::uint64_t cut_at) {
  const std::uint64_t size = reader->size();
  const std::uint64_t end = end_of_nonzero(*reader, cut_at, size);
  report.cut_off_bytes = end - cut_at;
  if (report.cut_off_bytes == 0 || options.read_only) return;
  // Kept aside rather than deleted: it may hold what a later reader wants to see (a
  // transaction whose fsync was interrupted), and it shows what happened.
  report.tail_file = fs::tail_path(path, env.now_micros());
  {
    auto side = env.new_writable_file(report.tail_file);
    std::string chunk;
    for (std::uint64_t at = cut_at; at < end;) {
      chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(end - at, 1u << 20)));
      chunk.resize(reader->read(at, chunk));
      if (chunk.empty()) break;
      side->append(chunk);
      at += chunk.size();
    }
    side->sync();
    side->close();
  }
  env.sync_dir(io::parent_dir(path));
  // Zeroed, not truncated: zeros are the clean end of data, and the space stays allocated.
  auto file = env.new_appendable_file(path);
  write_zeros(*file, cut_at, end);
  file->sync();
  file->close();
}

// ---------------------------------------------------------------------------------------------
// committing

void FileStorage::Impl::check_usable_locked() const {
  if (closed) throw UsageError(what() + " is closed: open it again to use it");
  if (!failure.empty()) throw StorageError(failure);
}

void FileStorage::Impl::check_writable() const {
  if (closed) throw UsageError(what() + " is closed: open it again to use it");
  if (options.read_only) {
    throw UsageError(what() + " is open read-only: open it read-write to commit");
  }
}

void FileStorage::Impl::check_request(const CommitRequest& request, bool one_phase) const {
  std::unordered_set<Oid> seen;
  seen.reserve(request.writes.size());
  for (const auto& w : request.writes) {
    if (!seen.insert(w.oid).second) {
      throw UsageError("a commit request writes object " + oid_repr(w.oid) +
                       " twice: write each object once per transaction");
    }
  }
  if (one_phase && !request.xid.gtrid.empty()) {
    // Allowed: the xid is recorded for tools, but never used by recovery.
  }
}

bool FileStorage::Impl::held_by_one_phase_locked(const CommitRequest& request) const {
  auto one_phase = [&](Oid oid) {
    auto it = locks.find(oid);
    return it != locks.end() && !prepared.contains(it->second);
  };
  for (const auto& w : request.writes) {
    if (one_phase(w.oid)) return true;
  }
  for (const auto& r : request.read_checks) {
    if (one_phase(r.oid)) return true;
  }
  return false;
}

void FileStorage::Impl::check_conflicts_locked(const CommitRequest& request) const {
  detail::check_conflicts(
      request,
      [&](Oid oid) {
        auto lock = locks.find(oid);
        if (lock == locks.end()) return detail::LockHolder{};
        // Held by a prepared transaction that this process did not prepare: no retry helps,
        // only recovery (which asks the coordinator's log for the outcome) releases it.
        auto p = prepared.find(lock->second);
        return detail::LockHolder{
            true, p != prepared.end() && p->second.recovered ? &p->second.xid : nullptr};
      },
      [&](Oid oid) {
        auto it = index.find(oid);
        return it == index.end() ? kNoTid : it->second.serial;
      },
      [&](Oid oid) {
        auto it = index.find(oid);
        if (it == index.end()) return std::string();
        try {
          return record_type_name(read_data(*reader, oid, it->second));
        } catch (const std::exception&) {
          return std::string();  // only for the message
        }
      },
      path);
}

// Queues `w` (already given its offset under `lock`) and returns once it is written (and
// synced when asked). The caller holds `lock`; it is released here.
void FileStorage::Impl::submit(std::unique_lock<std::mutex>& lock, const WriterPtr& w) {
  queue.submit(lock, w);
}

// The writer at the front of the queue takes the queued records that fit in one batch (they
// were given consecutive offsets in queue order); the queue then calls write() with mu released
// (one write and at most one sync), complete() with mu held to publish them in order, and
// hands the front on.
std::size_t FileStorage::Impl::Leader::select(Batch queued) {
  std::size_t n = 0;
  need_sync = false;
  start = queued.front().offset;
  for (const Writer& w : queued) {
    if (n > 0 && w.end() - start > kMaxBatchBytes) break;
    ++n;
    need_sync = need_sync || w.sync;
    end = w.end();
  }
  return n;
}

void FileStorage::Impl::Leader::write(Batch batch) {
  Impl& s = impl;
  std::string buffer;
  buffer.reserve(end - start);
  for (Writer& w : batch) {
    // The evidence open() uses to tell damage from a torn write: what was durable before
    // this batch. Damage below it cannot be this batch's pages reaching the disk out of
    // order.
    fs::patch_durable_end(w.payload, s.durable_end);
    io::encode_record(buffer, w.type, w.payload);
  }
  if (end > s.capacity) {
    // The file's own chunk (from its header), not the option: its size is evidence.
    const std::uint64_t new_capacity = round_up(end, s.header.chunk);
    // Zeros first, then the batch over them: the file size changes here, once per chunk.
    if (new_capacity > end) write_zeros(*s.writer, std::max(s.capacity, end), new_capacity);
    s.capacity = new_capacity;
  }
  s.writer->write_at(start, buffer);
  // Written, not yet durable: a kill here may keep any prefix of the batch.
  XACT_CRASH_POINT("file_storage.after_write");
  if (need_sync && s.options.sync == SyncMode::full) {
    s.writer->sync();
    s.durable_end = end;
  }
  // Durable, not yet visible, and nobody told.
  XACT_CRASH_POINT("file_storage.after_sync");
}

void FileStorage::Impl::Leader::complete(Batch batch) {
  Impl& s = impl;
  ++s.stats.writes;
  if (need_sync && s.options.sync == SyncMode::full) ++s.stats.syncs;
  s.stats.bytes_written += end - start;
  s.stats.max_batch = std::max<std::uint64_t>(s.stats.max_batch, batch.size());
  {
    std::unique_lock il(s.index_mu);
    for (Writer& w : batch) s.publish_locked(w);
    s.published_end = end;
  }
  // Outside index_mu: the listener may be slow, and loads should not wait for it.
  if (s.listener) {
    for (Writer& w : batch) {
      if (w.kind != Writer::Kind::one_phase && w.kind != Writer::Kind::finish) continue;
      std::vector<Oid> oids;
      if (w.kind == Writer::Kind::one_phase) {
        for (const auto& pw : w.writes) oids.push_back(pw.oid);
      } else {
        oids = std::move(w.locked);
      }
      try {
        s.listener(w.tid, oids);
      } catch (...) {
        log(LogLevel::error, s.what() + ": the invalidation listener threw; ignored");
      }
    }
  }
  // One-phase commits of this batch released their locks: committers waiting for them look
  // again.
  s.released_cv.notify_all();
}

void FileStorage::Impl::Leader::abandon(Batch writers) {
  for (Writer& w : writers) impl.fail_locked(w);
  impl.released_cv.notify_all();
}

std::exception_ptr FileStorage::Impl::Leader::failure_error(std::exception_ptr cause) {
  Impl& s = impl;
  if (s.failure.empty()) {
    s.failure = s.what() + " stopped after an I/O failure: " + error_message(cause) +
                ". What was written at that moment may or may not be durable, so the storage "
                "refuses every further write (fail-stop); prepared transactions are in doubt. "
                "Open the storage again (restart the process): open finds what is durable and "
                "recovery decides the prepared transactions";
    s.stats.failed = true;
  }
  return std::make_exception_ptr(StorageError(s.failure));
}

// mu and index_mu held: the record is written; make its effect visible.
void FileStorage::Impl::publish_locked(Writer& w) {
  auto apply = [&](const std::vector<PendingWrite>& writes, Tid tid) {
    for (const auto& pw : writes) index[pw.oid] = IndexEntry{pw.offset, pw.length, tid};
    last_tid = tid;
    ++stats.commits;
  };
  switch (w.kind) {
    case Writer::Kind::prepare: {
      auto it = prepared.find(w.id);
      if (it != prepared.end()) it->second.durable = true;
      ++stats.prepares;
      break;
    }
    case Writer::Kind::one_phase:
      apply(w.writes, w.tid);
      for (Oid oid : w.locked) locks.erase(oid);
      break;
    case Writer::Kind::finish: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      apply(it->second.writes, w.tid);
      for (Oid oid : it->second.locked) locks.erase(oid);
      // Handed to the listener: the written oids.
      w.locked.clear();
      for (const auto& pw : it->second.writes) w.locked.push_back(pw.oid);
      prepared.erase(it);
      break;
    }
    case Writer::Kind::abort: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      ++stats.aborts;
      break;
    }
  }
}

// mu held: the record was not written (fail-stop); undo what queueing it did.
void FileStorage::Impl::fail_locked(Writer& w) {
  switch (w.kind) {
    case Writer::Kind::prepare: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      break;
    }
    case Writer::Kind::one_phase:
      for (Oid oid : w.locked) locks.erase(oid);
      break;
    case Writer::Kind::finish:
    case Writer::Kind::abort: {
      // Stays prepared: recovery decides it after the next open.
      auto it = prepared.find(w.id);
      if (it != prepared.end()) it->second.deciding = false;
      break;
    }
  }
}

Tid FileStorage::Impl::decide(PreparedId id, bool commit, bool sync) {
  auto w = std::make_shared<Writer>();
  std::unique_lock l(mu);
  paused_cv.wait(l, [&] { return !paused || closed; });
  check_usable_locked();
  auto it = prepared.find(id);
  if (it == prepared.end() || !it->second.durable || it->second.deciding) {
    throw UsageError(what() + ": " + (commit ? "finish" : "abort") + " of transaction " +
                     std::to_string(id) +
                     ", which is not prepared here (never prepared, already decided, or being "
                     "decided by another call)");
  }
  Prepared& p = it->second;
  p.deciding = true;
  w->kind = commit ? Writer::Kind::finish : Writer::Kind::abort;
  w->id = id;
  w->sync = sync;
  if (commit) {
    w->tid = next_tid(last_assigned, env.now_micros());
    last_assigned = w->tid;
    w->type = fs::kCommitMark;
    w->payload = fs::encode_commit_mark(p.record_offset, w->tid);
  } else {
    w->type = fs::kAbortMark;
    w->payload = fs::encode_abort_mark(p.record_offset);
  }
  w->offset = next_offset;
  next_offset = w->end();
  submit(l, w);
  return w->tid;
}

std::optional<Storage::PreparedId> FileStorage::Impl::find_prepared_locked(const Xid& xid) const {
  for (const auto& [id, p] : prepared) {
    if (p.durable && !p.deciding && p.xid == xid) return id;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// maintenance

void FileStorage::Impl::pause_locked(std::unique_lock<std::mutex>& lock) {
  paused = true;
  queue.wait_idle(lock);
}

void FileStorage::Impl::resume_locked() {
  paused = false;
  paused_cv.notify_all();
}

FileStorage::Impl::IndexSnapshot FileStorage::Impl::snapshot_index_locked() {
  IndexSnapshot s;
  s.header.file_id = header.file_id;
  s.header.covered_end = published_end;
  s.header.last_tid = last_tid;
  s.header.next_oid = next_oid;
  s.header.entries = index.size();
  for (const auto& [id, p] : prepared) {
    if (p.durable) s.header.prepared.push_back(p.record_offset);
  }
  s.entries.assign(index.begin(), index.end());
  return s;
}

void FileStorage::Impl::write_index(const IndexSnapshot& s) {
  IndexSnapshot snapshot = s;
  const auto last = io::read_record_before(*reader, snapshot.header.covered_end);
  char crc[4] = {};
  if (last) reader->read(last->offset, crc);
  snapshot.header.last_record_crc = fs::load_u32(crc);
  const std::string final_path = fs::index_path(path);
  const std::string temp = final_path + ".tmp";
  auto file = env.new_writable_file(temp);
  io::RecordWriter w(*file, 0);
  w.add(fs::kIndexHeader, fs::encode_index_header(snapshot.header));
  std::string chunk;
  for (std::size_t i = 0; i < snapshot.entries.size(); i += kIndexChunk) {
    chunk.clear();
    const std::size_t n = std::min(kIndexChunk, snapshot.entries.size() - i);
    for (std::size_t j = i; j < i + n; ++j) {
      const auto& [oid, e] = snapshot.entries[j];
      fs::put_u64(chunk, oid);
      fs::put_u64(chunk, e.offset);
      fs::put_u32(chunk, e.length);
      fs::put_u64(chunk, e.serial);
    }
    w.add(fs::kIndexEntries, chunk);
  }
  std::string end;
  fs::put_u64(end, snapshot.entries.size());
  w.add(fs::kIndexEnd, end);
  file->sync();
  file->close();
  // No directory sync: losing the rename in a crash leaves the older index, which open
  // validates against the file like any other.
  env.rename_file(temp, final_path);
}

// ---------------------------------------------------------------------------------------------
// reading

std::string FileStorage::Impl::read_data(const io::RandomAccessFile& file, Oid oid,
                                         const IndexEntry& e) const {
  if (!options.verify_loads) {
    std::string data(e.length, '\0');
    if (file.read(e.offset + fs::kEntryHeaderSize, data) != e.length) {
      throw StorageError(what() + ": object " + oid_repr(oid) + " at offset " +
                         std::to_string(e.offset) + " runs past the end of the file");
    }
    return data;
  }
  std::string bytes(fs::kEntryHeaderSize + e.length, '\0');
  const std::size_t n = file.read(e.offset, bytes);
  if (n != bytes.size() || !fs::entry_valid(bytes, oid)) {
    throw StorageError(what() + ": the revision of object " + oid_repr(oid) + " at offset " +
                       std::to_string(e.offset) +
                       " is damaged (checksum mismatch). Run `xact storage verify` and restore "
                       "the file from a backup");
  }
  bytes.erase(0, fs::kEntryHeaderSize);
  return bytes;
}

FileStorage::Impl::EntryHeader FileStorage::Impl::read_entry_header(
    const io::RandomAccessFile& file, Oid oid, std::uint64_t offset) const {
  char b[fs::kEntryHeaderSize];
  if (file.read(offset, b) != sizeof b || fs::load_u64(b) != oid) {
    throw StorageError(what() + ": the history of object " + oid_repr(oid) + " points to offset " +
                       std::to_string(offset) +
                       ", which holds no revision of it. Run `xact storage verify`");
  }
  return EntryHeader{fs::load_u64(b + fs::kEntryPrevSerialAt),
                     fs::load_u64(b + fs::kEntryPrevOffsetAt), fs::load_u32(b + 24)};
}

std::optional<FileStorage::Impl::IndexEntry> FileStorage::Impl::find_revision(
    const io::RandomAccessFile& file, Oid oid, IndexEntry e, Tid at, bool exact) const {
  // Back pointers from the current revision: no in-memory map of every revision needed.
  while (e.serial > at) {
    const EntryHeader h = read_entry_header(file, oid, e.offset);
    if (h.prev_serial == kNoTid) return std::nullopt;
    if (h.prev_serial >= e.serial) {
      throw StorageError(what() + ": the history of object " + oid_repr(oid) +
                         " goes forward at offset " + std::to_string(e.offset) +
                         ". Run `xact storage verify`");
    }
    const EntryHeader prev = read_entry_header(file, oid, h.prev_offset);
    // A length read from the file: checked against the file before read_data allocates it.
    if (file.size() - h.prev_offset < fs::kEntryHeaderSize + std::uint64_t{prev.length}) {
      throw StorageError(what() + ": the history of object " + oid_repr(oid) +
                         " points to a revision at offset " + std::to_string(h.prev_offset) +
                         " that runs past the end of the file. Run `xact storage verify`");
    }
    e = IndexEntry{h.prev_offset, prev.length, h.prev_serial};
  }
  if (exact && e.serial != at) return std::nullopt;
  return e;
}

// ---------------------------------------------------------------------------------------------
// FileStorage

FileStorage::FileStorage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FileStorage::~FileStorage() { close(); }

std::unique_ptr<FileStorage> FileStorage::open(const std::string& path,
                                               FileStorageOptions options) {
  if (path.empty()) throw UsageError("FileStorage::open needs a file path; the path is empty");
  io::Env& env = options.env ? *options.env : io::Env::posix();
  auto impl = std::make_unique<Impl>(env, path, options);
  impl->open();
  return std::unique_ptr<FileStorage>(new FileStorage(std::move(impl)));
}

std::string FileStorage::describe() const { return impl_->what(); }
const std::string& FileStorage::path() const { return impl_->path; }
const FileStorageOpenReport& FileStorage::open_report() const { return impl_->report; }

Tid FileStorage::last_transaction() const {
  std::shared_lock l(impl_->index_mu);
  if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
  return impl_->last_tid;
}

std::optional<Revision> FileStorage::load(Oid oid, Tid at) const {
  Impl::IndexEntry e;
  const io::RandomAccessFile* file = nullptr;
  {
    std::shared_lock l(impl_->index_mu);
    if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
    auto it = impl_->index.find(oid);
    if (it == impl_->index.end()) return std::nullopt;
    e = it->second;
    file = impl_->reader;
  }
  // Read outside the lock: the entry's bytes never change (append-only), and the reader
  // outlives any pack (see Impl::readers).
  if (e.serial > at) {
    auto found = impl_->find_revision(*file, oid, e, at, false);
    if (!found) return std::nullopt;
    e = *found;
  }
  return Revision{e.serial, impl_->read_data(*file, oid, e)};
}

std::optional<std::string> FileStorage::load_serial(Oid oid, Tid serial) const {
  Impl::IndexEntry e;
  const io::RandomAccessFile* file = nullptr;
  {
    std::shared_lock l(impl_->index_mu);
    if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
    auto it = impl_->index.find(oid);
    if (it == impl_->index.end()) return std::nullopt;
    e = it->second;
    file = impl_->reader;
  }
  auto found = impl_->find_revision(*file, oid, e, serial, true);
  if (!found) return std::nullopt;
  return impl_->read_data(*file, oid, *found);
}

Oid FileStorage::new_oid() {
  if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
  return impl_->next_oid.fetch_add(1);
}

void FileStorage::for_each_object(const std::function<bool(Oid, Tid, std::string_view)>& fn) const {
  std::vector<std::pair<Oid, Impl::IndexEntry>> snapshot;
  const io::RandomAccessFile* file = nullptr;
  {
    std::shared_lock l(impl_->index_mu);
    if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
    snapshot.assign(impl_->index.begin(), impl_->index.end());
    file = impl_->reader;
  }
  for (const auto& [oid, e] : snapshot) {
    const std::string data = impl_->read_data(*file, oid, e);
    if (!fn(oid, e.serial, data)) return;
  }
}

void FileStorage::iterate(Tid from, Tid to,
                          const std::function<bool(const TransactionRecord&)>& fn) const {
  const io::RandomAccessFile* file = nullptr;
  std::uint64_t end = 0;
  {
    std::shared_lock l(impl_->index_mu);
    if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
    file = impl_->reader;
    end = impl_->published_end;
  }
  // File order is commit order (commit marks and one-phase records are appended under the
  // commit-order lock), so a front-to-back scan yields tid order.
  io::RecordReader r(*file);
  auto emit = [&](Tid tid, const io::Record& txn) {
    fs::DecodedTransaction t;
    if (auto error = fs::decode_transaction(txn.payload, t); !error.empty()) {
      throw StorageError(impl_->what() + ": the transaction at offset " +
                         std::to_string(txn.offset) + " is damaged (" + error + ")");
    }
    TransactionRecord rec;
    rec.tid = tid;
    rec.meta = std::move(t.meta);
    rec.objects.reserve(t.entries.size());
    for (const auto& e : t.entries) rec.objects.emplace_back(e.oid, std::string(e.data));
    return fn(rec);
  };
  while (auto record = r.next()) {
    if (record->offset >= end) break;
    Tid tid = kNoTid;
    if (record->type == fs::kCommittedRecord) {
      if (record->payload.size() < fs::kTidAt + 8) continue;
      tid = fs::load_u64(record->payload.data() + fs::kTidAt);
      if (tid > to) return;
      if (tid >= from && !emit(tid, *record)) return;
    } else if (record->type == fs::kCommitMark) {
      std::uint64_t target = 0;
      if (!fs::decode_commit_mark(record->payload, target, tid)) continue;
      if (tid > to) return;
      if (tid < from) continue;
      auto txn = io::read_record_at(*file, target);
      if (!txn || txn->type != fs::kPreparedRecord) {
        throw StorageError(impl_->what() + ": the commit mark at offset " +
                           std::to_string(record->offset) +
                           " points to no prepared transaction. Run `xact storage verify`");
      }
      if (!emit(tid, *txn)) return;
    }
  }
}

std::vector<std::size_t> FileStorage::Impl::begin_write(const CommitRequest& request, Writer& w,
                                                        std::unique_lock<std::mutex>& lock) {
  const bool one_phase = w.kind == Writer::Kind::one_phase;
  check_writable();
  check_request(request, one_phase);
  w.type = one_phase ? fs::kCommittedRecord : fs::kPreparedRecord;
  w.sync = true;
  auto encoded = fs::encode_transaction(request, next_oid);
  w.payload = std::move(encoded.payload);

  lock = std::unique_lock(mu);
  // A one-phase commit being written holds its oids for one write and one fsync: worth
  // waiting a few milliseconds for rather than failing, as most conflicts under concurrent
  // one-phase commits were only that. A transaction prepared in a two-phase commit may wait
  // for its coordinator indefinitely, so a lock held by one still fails at once.
  const auto deadline = std::chrono::steady_clock::now() + kOnePhaseWait;
  for (;;) {
    paused_cv.wait(lock, [&] { return !paused || closed; });
    check_usable_locked();
    if (!held_by_one_phase_locked(request)) break;
    if (released_cv.wait_until(lock, deadline) == std::cv_status::timeout) {
      paused_cv.wait(lock, [&] { return !paused || closed; });
      check_usable_locked();
      break;
    }
  }
  try {
    check_conflicts_locked(request);
  } catch (const ConflictError&) {
    ++stats.conflicts;
    throw;
  }
  return std::move(encoded.entry_at);
}

void FileStorage::Impl::place_writes_locked(const CommitRequest& request, Writer& w,
                                            const std::vector<std::size_t>& entry_at,
                                            std::vector<PendingWrite>& out) {
  for (std::size_t i = 0; i < request.writes.size(); ++i) {
    const auto& rw = request.writes[i];
    auto it = index.find(rw.oid);
    if (it != index.end()) {
      fs::patch_entry(w.payload, entry_at[i], it->second.serial, it->second.offset);
    }
    out.push_back({rw.oid, w.offset + io::kRecordHeaderSize + entry_at[i],
                   static_cast<std::uint32_t>(rw.data.size())});
    Oid want = rw.oid + 1;
    Oid have = next_oid.load();
    while (have < want && !next_oid.compare_exchange_weak(have, want)) {
    }
  }
}

Storage::PreparedId FileStorage::prepare(CommitRequest request) {
  auto w = std::make_shared<Impl::Writer>();
  w->kind = Impl::Writer::Kind::prepare;
  std::unique_lock<std::mutex> l;
  const auto entry_at = impl_->begin_write(request, *w, l);
  const PreparedId id = impl_->next_prepared++;
  w->id = id;
  w->offset = impl_->next_offset;
  impl_->next_offset = w->end();
  Impl::Prepared p;
  p.xid = request.xid;
  p.record_offset = w->offset;
  impl_->place_writes_locked(request, *w, entry_at, p.writes);
  detail::take_locks(request, impl_->locks, id, &p.locked);
  impl_->prepared.emplace(id, std::move(p));
  impl_->submit(l, w);
  return id;
}

Tid FileStorage::finish(PreparedId id, bool durable) {
  impl_->check_writable();
  return impl_->decide(id, true, durable);
}

void FileStorage::abort(PreparedId id) noexcept {
  try {
    {
      std::lock_guard l(impl_->mu);
      auto it = impl_->prepared.find(id);
      if (it == impl_->prepared.end() || !it->second.durable || it->second.deciding) return;
      if (impl_->closed || !impl_->failure.empty()) {
        // Nothing can be written: release it here; the file still holds it prepared, and
        // recovery rolls it back after the next open (presumed abort).
        for (Oid oid : it->second.locked) impl_->locks.erase(oid);
        impl_->prepared.erase(it);
        return;
      }
    }
    // Not synced: a crash before a later sync leaves it prepared, and recovery rolls it back.
    impl_->decide(id, false, false);
  } catch (const std::exception& e) {
    log(LogLevel::warning, impl_->what() + ": abort of prepared transaction " + std::to_string(id) +
                               " could not write its mark (" + e.what() +
                               "); recovery rolls it back after the next open");
  }
}

Tid FileStorage::commit_one_phase(CommitRequest request) {
  auto w = std::make_shared<Impl::Writer>();
  w->kind = Impl::Writer::Kind::one_phase;
  std::unique_lock<std::mutex> l;
  const auto entry_at = impl_->begin_write(request, *w, l);
  w->tid = next_tid(impl_->last_assigned, impl_->env.now_micros());
  impl_->last_assigned = w->tid;
  fs::patch_tid(w->payload, w->tid);
  w->offset = impl_->next_offset;
  impl_->next_offset = w->end();
  const PreparedId lock_id = impl_->next_prepared++;
  impl_->place_writes_locked(request, *w, entry_at, w->writes);
  // Locked until the record is written and visible: a writer building on the revision it
  // replaces must fail at once, as against a prepared transaction.
  detail::take_locks(request, impl_->locks, lock_id, &w->locked);
  impl_->submit(l, w);
  return w->tid;
}

void FileStorage::set_invalidation_listener(InvalidationListener listener) {
  std::lock_guard l(impl_->mu);
  impl_->listener = std::move(listener);
}

void FileStorage::close() noexcept {
  Impl& s = *impl_;
  std::unique_lock l(s.mu);
  if (s.closed) return;
  s.pause_locked(l);
  {
    std::unique_lock il(s.index_mu);
    s.closed = true;
  }
  s.paused_cv.notify_all();
  s.listener = {};
  if (s.writer && s.failure.empty()) {
    try {
      // The last commit marks of finish(id, false) were not synced: make them durable now, so a
      // clean close never leaves work for recovery.
      // Also with SyncMode::none: the index may only cover bytes that are fsynced.
      s.writer->sync();
      if (s.options.use_index) s.write_index(s.snapshot_index_locked());
    } catch (const std::exception& e) {
      log(LogLevel::warning, s.what() + ": close could not sync or write the index (" + e.what() +
                                 "); the next open scans the file instead");
    }
  }
  if (s.writer) {
    try {
      s.writer->close();
    } catch (const std::exception&) {
      // Everything that mattered was synced above, or the storage had failed already.
    }
  }
  s.writer.reset();
  s.file_lock.reset();
}

std::vector<Xid> FileStorage::recover(const NodeId& node) {
  std::lock_guard l(impl_->mu);
  impl_->check_usable_locked();
  std::vector<Xid> out;
  for (const auto& [id, p] : impl_->prepared) {
    if (p.durable && !p.deciding && !p.xid.gtrid.empty() && p.xid.gtrid.node() == node) {
      out.push_back(p.xid);
    }
  }
  return out;
}

RecoverableResource::Outcome FileStorage::Impl::decide_by_xid(const Xid& xid, bool commit) {
  check_writable();
  std::optional<PreparedId> id;
  {
    std::lock_guard l(mu);
    check_usable_locked();
    id = find_prepared_locked(xid);
  }
  if (!id) return Outcome::unknown_id;
  decide(*id, commit, true);
  return Outcome::done;
}

RecoverableResource::Outcome FileStorage::commit_prepared(const Xid& xid) {
  return impl_->decide_by_xid(xid, true);
}

RecoverableResource::Outcome FileStorage::rollback_prepared(const Xid& xid) {
  return impl_->decide_by_xid(xid, false);
}

void FileStorage::save_index() {
  impl_->check_writable();
  std::lock_guard m(impl_->maintenance_mu);
  Impl::IndexSnapshot snapshot;
  {
    std::unique_lock l(impl_->mu);
    impl_->check_usable_locked();
    impl_->pause_locked(l);
    try {
      // The index may only cover durable bytes.
      impl_->writer->sync();
      impl_->durable_end = impl_->published_end;
      snapshot = impl_->snapshot_index_locked();
    } catch (...) {
      // A failed fsync leaves the file's durable contents unknown: fail-stop, as after a
      // failed group-commit write.
      if (impl_->failure.empty()) {
        impl_->failure = impl_->what() + " stopped after an I/O failure: " +
                         error_message(std::current_exception()) +
                         ". Open the storage again (restart the process)";
        impl_->stats.failed = true;
        impl_->queue.fail_stop(std::make_exception_ptr(StorageError(impl_->failure)));
      }
      impl_->resume_locked();
      throw;
    }
    impl_->resume_locked();
  }
  impl_->write_index(snapshot);
}

FileStorage::Stats FileStorage::stats() const {
  std::lock_guard l(impl_->mu);
  Stats s = impl_->stats;
  s.prepared = impl_->prepared.size();
  std::shared_lock il(impl_->index_mu);
  s.objects = impl_->index.size();
  s.end_of_data = impl_->published_end;
  return s;
}

}  // namespace xact::objectstore
