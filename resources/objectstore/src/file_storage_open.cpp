// FileStorage, opening: the data file's header, pack leftovers, the index file, the scan of
// the records after it, the torn tail cut off. Format: doc/file_storage.md.
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
  if (options.preallocate_bytes > fs::kMaxChunk) {
    throw UsageError("FileStorageOptions::preallocate_bytes of " +
                     std::to_string(options.preallocate_bytes) + " for " + what() +
                     " is larger than the limit of " + std::to_string(fs::kMaxChunk >> 20) +
                     " MiB");
  }
  header.file_id = fs::random_file_id();
  header.created_us = env.now_micros();
  header.chunk = options.preallocate_bytes;
  const std::size_t header_size = io::kRecordOverhead + fs::encode_file_header(header).size();
  header.durable_end = header_size;
  auto file = env.new_writable_file(temp);
  const std::string record = io::encode_record(fs::kHeaderRecord, fs::encode_file_header(header));
  file->write_at(0, record);
  // A whole chunk, even one smaller than the header: the file's size is evidence.
  write_zeros(*file, record.size(), round_up(record.size(), header.chunk));
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
    if (header.chunk > 0 && capacity % header.chunk != 0) {
      // A size inside a chunk that open accepted (a torn tail after damage, a crash while
      // growing, salvage): restored to a whole chunk before anything is written, or the next
      // records would fill that chunk's rest and the next open would read the size as a
      // truncation of them.
      const std::uint64_t whole = round_up(capacity, header.chunk);
      write_zeros(*writer, capacity, whole);
      report.repaired.push_back("zero-filled the file from " + std::to_string(capacity) + " to " +
                                std::to_string(whole) +
                                " bytes, the end of its last preallocated chunk");
      capacity = whole;
    }
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
    claims = Claims{};  // not emplace(): clang 14 finds no default constructor for it
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

}  // namespace xact::objectstore
