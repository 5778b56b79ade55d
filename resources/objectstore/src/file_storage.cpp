// FileStorage: open (scan, index, torn tail), group commit, loads, recovery, the index file.
// Format and the crash-safety argument: doc/file_storage.md. Pack, backup, verify and dump are
// in file_storage_pack.cpp.
#include <xact/objectstore/file_storage.hpp>

#include <algorithm>
#include <unordered_set>

#include <xact/crash_point.hpp>
#include <xact/errors.hpp>
#include <xact/log.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/errors.hpp>

#include "file_storage_impl.hpp"

namespace xact::objectstore {
namespace {

const std::string& zeros() {
  static const std::string block(1u << 20, '\0');
  return block;
}

void write_zeros(io::WritableFile& file, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t at = from; at < to;) {
    const std::uint64_t n = std::min<std::uint64_t>(zeros().size(), to - at);
    file.write_at(at, std::string_view(zeros()).substr(0, n));
    at += n;
  }
}

// The most bytes one leader writes at once; more queued writers wait for the next batch.
constexpr std::size_t kMaxBatchBytes = 8u << 20;
// Entries per index record (28 bytes each: about 1 MiB per record).
constexpr std::size_t kIndexChunk = 36000;

}  // namespace

// ---------------------------------------------------------------------------------------------
// helpers

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

bool looks_unwritten(const io::RandomAccessFile& file, const io::DroppedRange& range) {
  constexpr std::uint64_t kBlock = 512;
  std::string bytes(static_cast<std::size_t>(std::min<std::uint64_t>(range.bytes, 64u << 20)),
                    '\0');
  bytes.resize(file.read(range.offset, bytes));
  if (std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; })) return true;
  for (std::uint64_t at = (range.offset + kBlock - 1) / kBlock * kBlock;
       at + kBlock <= range.offset + bytes.size(); at += kBlock) {
    const std::string_view block(bytes.data() + (at - range.offset), kBlock);
    if (std::all_of(block.begin(), block.end(), [](char c) { return c == 0; })) return true;
  }
  return false;
}

std::string FileStorageOpenReport::describe() const {
  std::string out = created ? "created" : "opened";
  out += index_used ? " with the index, scanned " + std::to_string(scanned_bytes) +
                          " bytes from offset " + std::to_string(scanned_from)
                    : " by a full scan of " + std::to_string(scanned_bytes) + " bytes";
  if (!index_problem.empty()) out += " (index not used: " + index_problem + ")";
  out += "; " + std::to_string(objects) + " objects, " + std::to_string(prepared) +
         " prepared transactions";
  if (cut_off_bytes > 0) {
    out += "; cut off " + std::to_string(cut_off_bytes) + " bytes of an incomplete write at offset " +
           std::to_string(end_of_data) + " (" + cut_off_reason + ")";
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

void FileStorage::Impl::repair_pack_leftovers() {
  const std::string dir = io::parent_dir(path);
  const std::string packed = fs::pack_path(path);
  const std::string old = fs::old_path(path);
  if (!env.exists(path) && env.exists(old)) {
    // A pack stopped between its two renames: FILE.pack was complete and synced before the
    // first rename, so it is the result; without it the old file is put back.
    if (env.exists(packed)) {
      env.rename_file(packed, path);
      report.repaired.push_back("completed an interrupted pack (renamed " + packed + ")");
    } else {
      env.rename_file(old, path);
      report.repaired.push_back("restored " + old + " after an interrupted pack");
    }
    env.sync_dir(dir);
  } else if (env.exists(packed)) {
    // A pack stopped before its renames: the old file is intact and current.
    env.remove_file(packed);
    report.repaired.push_back("removed " + packed + " left by an interrupted pack");
  }
}

void FileStorage::Impl::create_file() {
  // Under a temporary name until the header is durable, so FILE never exists without one.
  const std::string temp = path + ".tmp";
  header.file_id = fs::random_file_id();
  header.created_us = env.now_micros();
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
    return StorageError(what() + " does not exist: check the path (open it read-write with "
                                 "FileStorageOptions::create to create it)");
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
    if (options.read_only || !options.create) throw missing();
    create_file();
  }
  readers.push_back(env.new_random_access_file(path));
  reader = readers.back().get();
  const auto first = io::read_record_at(*reader, 0);
  std::optional<fs::FileHeader> h;
  if (first && first->type == fs::kHeaderRecord) h = fs::decode_file_header(first->payload);
  if (!h) {
    throw StorageError(what() +
                       " does not start with an xact object storage header (offset 0, format "
                       "version " +
                       std::to_string(fs::kFormatVersion) +
                       "): it is another kind of file, a newer format, or its first bytes are "
                       "damaged; restore it from a backup");
  }
  header = *h;
  std::uint64_t scan_from = first->end();
  if (options.use_index && load_index(&scan_from)) report.index_used = true;
  report.scanned_from = scan_from;
  scan(scan_from);
  next_offset = published_end;
  last_assigned = last_tid;
  report.end_of_data = published_end;
  report.last_tid = last_tid;
  report.objects = index.size();
  report.prepared = prepared.size();
  if (!options.read_only) {
    writer = env.new_appendable_file(path);
    capacity = writer->size();
  }
  if (report.cut_off_bytes > 0 || !report.salvaged.empty() || !report.repaired.empty()) {
    log(LogLevel::warning, what() + ": " + report.describe());
  } else if (!report.index_problem.empty() && !report.created) {
    log(LogLevel::info, what() + ": " + report.describe());
  }
}

bool FileStorage::Impl::load_index(std::uint64_t* scan_from) {
  const std::string ipath = fs::index_path(path);
  if (!env.exists(ipath)) {
    report.index_problem = "no index file";
    return false;
  }
  try {
    auto file = env.new_random_access_file(ipath);
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
    const std::uint64_t size = reader->size();
    if (h->covered_end > size) {
      report.index_problem = "the index covers more than the file holds";
      return false;
    }
    const auto last = io::read_record_before(*reader, h->covered_end);
    char crc[4];
    if (!last || reader->read(last->offset, crc) != 4 || fs::load_u32(crc) != h->last_record_crc) {
      report.index_problem = "the index does not end at a record boundary of this file";
      return false;
    }
    Index loaded;
    loaded.reserve(h->entries);
    bool ended = false;
    while (auto rec = r.next()) {
      if (rec->type == fs::kIndexEnd) {
        fs::Decoder d(rec->payload);
        std::uint64_t n = 0;
        ended = d.u64(n) && n == loaded.size() && n == h->entries;
        break;
      }
      if (rec->type != fs::kIndexEntries || rec->payload.size() % fs::kIndexEntrySize != 0) break;
      for (std::size_t at = 0; at < rec->payload.size(); at += fs::kIndexEntrySize) {
        const char* p = rec->payload.data() + at;
        loaded[fs::load_u64(p)] =
            IndexEntry{fs::load_u64(p + 8), fs::load_u32(p + 16), fs::load_u64(p + 20)};
      }
    }
    if (!ended || !r.report().corrupt.empty()) {
      report.index_problem = "the index file is incomplete or damaged";
      return false;
    }
    // The prepared transactions undecided at the covered point: read back from the file.
    std::map<PreparedId, Prepared> pending;
    std::unordered_map<Oid, PreparedId> pending_locks;
    for (std::uint64_t offset : h->prepared) {
      auto rec = io::read_record_at(*reader, offset);
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
      pending.emplace(id, std::move(p));
    }
    index = std::move(loaded);
    prepared = std::move(pending);
    locks = std::move(pending_locks);
    last_tid = h->last_tid;
    next_oid = std::max<Oid>(next_oid, h->next_oid);
    *scan_from = h->covered_end;
    return true;
  } catch (const StorageError& e) {
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
      auto it = std::find_if(prepared.begin(), prepared.end(),
                             [&](const auto& kv) { return kv.second.record_offset == target; });
      if (it == prepared.end()) {
        bad("decides a prepared transaction at offset " + std::to_string(target) +
            " that is not prepared there");
      }
      if (record.type == fs::kCommitMark) commit(tid, it->second.writes);
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      break;
    }
    default: bad("has an unknown type " + std::to_string(record.type));
  }
}

void FileStorage::Impl::scan(std::uint64_t from) {
  io::RecordReader r(*reader, io::ScanOptions{.start = from});
  std::optional<std::uint64_t> gap;
  std::size_t corrupt_seen = 0;
  while (auto record = r.next()) {
    if (r.report().corrupt.size() > corrupt_seen) {
      const auto& range = r.report().corrupt[corrupt_seen];
      corrupt_seen = r.report().corrupt.size();
      if (looks_unwritten(*reader, range)) {
        // Space never written, followed by records written later that never became
        // durable (a durable record's fsync would have covered the space before it): the
        // end of data, like a cut-off last record.
        gap = range.offset;
        report.cut_off_reason = "unwritten space followed by writes that were never synced";
        break;
      }
      if (!options.salvage) {
        throw StorageError(
            what() + " is corrupt: " + std::to_string(range.bytes) + " bytes at offset " +
            std::to_string(range.offset) + " are damaged (" + range.reason +
            ") and valid records follow them, so this is damage done after the write, not a "
            "write cut off by a crash. Run `xact storage verify`, restore the file from a "
            "backup, or open it with FileStorageOptions::salvage to drop the damaged records");
      }
      report.salvaged.push_back(range);
    }
    report.scanned_bytes += record->end() - record->offset;
    if (options.salvage) {
      try {
        apply_record(*record);
      } catch (const StorageError& e) {
        report.salvaged.push_back(
            {record->offset, record->end() - record->offset, e.what()});
      }
    } else {
      apply_record(*record);
    }
    published_end = record->end();
  }
  const std::uint64_t cut_at = gap ? *gap : std::max(r.report().end_of_data, from);
  published_end = cut_at;
  if (gap || r.report().cut_off_bytes > 0) {
    if (!gap) report.cut_off_reason = r.report().cut_off_reason;
    cut_tail(cut_at);
  }
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

void FileStorage::Impl::check_conflicts_locked(const CommitRequest& request) const {
  auto current = [&](Oid oid) -> const IndexEntry* {
    auto it = index.find(oid);
    return it == index.end() ? nullptr : &it->second;
  };
  for (const auto& w : request.writes) {
    if (locks.contains(w.oid)) {
      throw ConflictError(w.oid, record_type_name(w.data), kNoTid, w.base);
    }
    const IndexEntry* e = current(w.oid);
    const Tid serial = e ? e->serial : kNoTid;
    if (serial != w.base) throw ConflictError(w.oid, record_type_name(w.data), serial, w.base);
  }
  for (const auto& r : request.read_checks) {
    if (locks.contains(r.oid)) throw ReadConflictError(r.oid, {}, kNoTid, r.serial);
    const IndexEntry* e = current(r.oid);
    const Tid serial = e ? e->serial : kNoTid;
    if (serial != r.serial) {
      std::string type;
      if (e) {
        try {
          type = record_type_name(read_data(*reader, r.oid, *e));
        } catch (const std::exception&) {
          // Only for the message.
        }
      }
      throw ReadConflictError(r.oid, type, serial, r.serial);
    }
  }
}

// Queues `w` (already given its offset under `lock`) and returns once it is written (and
// synced when asked). The caller holds `lock`; it is released here.
void FileStorage::Impl::submit(std::unique_lock<std::mutex>& lock, const WriterPtr& w) {
  writers.push_back(w);
  const bool leading = writers.size() == 1;
  lock.unlock();
  if (leading || w->await() == Writer::State::kLeading) lead(w);
  if (w->error) std::rethrow_exception(w->error);
}

// Runs in the writer at the front of the queue: takes the queued records that fit in one
// batch (they were given consecutive offsets in queue order), writes them with one write and
// at most one sync with mu released, then publishes them in order and hands the front on.
void FileStorage::Impl::lead(const WriterPtr& self) {
  std::vector<WriterPtr> batch;
  bool need_sync = false;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::unique_lock l(mu);
  start = writers.front()->offset;
  for (const WriterPtr& w : writers) {
    if (!batch.empty() && w->end() - start > kMaxBatchBytes) break;
    batch.push_back(w);
    need_sync = need_sync || w->sync;
    end = w->end();
  }
  l.unlock();

  std::exception_ptr error;
  try {
    std::string buffer;
    buffer.reserve(end - start);
    for (const WriterPtr& w : batch) io::encode_record(buffer, w->type, w->payload);
    if (end > capacity) {
      const std::uint64_t grow = options.preallocate_bytes;
      const std::uint64_t new_capacity =
          grow == 0 ? end : (end + grow - 1) / grow * grow;
      // Zeros first, then the batch over them: the file size changes here, once per chunk.
      if (new_capacity > end) write_zeros(*writer, std::max(capacity, end), new_capacity);
      capacity = new_capacity;
    }
    writer->write_at(start, buffer);
    // Written, not yet durable: a kill here may keep any prefix of the batch.
    XACT_CRASH_POINT("file_storage.after_write");
    if (need_sync && options.sync == SyncMode::full) writer->sync();
    // Durable, not yet visible, and nobody told.
    XACT_CRASH_POINT("file_storage.after_sync");
  } catch (...) {
    error = std::current_exception();
  }

  WriterPtr next;
  l.lock();
  if (error) {
    if (failure.empty()) {
      failure = what() + " stopped after an I/O failure: " + error_message(error) +
                ". What was written at that moment may or may not be durable, so the storage "
                "refuses every further write (fail-stop); prepared transactions are in doubt. "
                "Open the storage again (restart the process): open finds what is durable and "
                "recovery decides the prepared transactions";
      stats.failed = true;
    }
    batch.assign(writers.begin(), writers.end());
    writers.clear();
    for (const WriterPtr& w : batch) {
      w->error = std::make_exception_ptr(StorageError(failure));
      fail_locked(*w);
    }
  } else {
    ++stats.writes;
    if (need_sync && options.sync == SyncMode::full) ++stats.syncs;
    stats.bytes_written += end - start;
    stats.max_batch = std::max<std::uint64_t>(stats.max_batch, batch.size());
    {
      std::unique_lock il(index_mu);
      for (const WriterPtr& w : batch) publish_locked(*w);
      published_end = end;
    }
    // Outside index_mu: the listener may be slow, and loads should not wait for it.
    if (listener) {
      for (const WriterPtr& w : batch) {
        if (w->kind != Writer::Kind::one_phase && w->kind != Writer::Kind::finish) continue;
        std::vector<Oid> oids;
        if (w->kind == Writer::Kind::one_phase) {
          for (const auto& pw : w->writes) oids.push_back(pw.oid);
        } else {
          oids = std::move(w->locked);
        }
        try {
          listener(w->tid, oids);
        } catch (...) {
          log(LogLevel::error, what() + ": the invalidation listener threw; ignored");
        }
      }
    }
    writers.erase(writers.begin(), writers.begin() + static_cast<std::ptrdiff_t>(batch.size()));
    if (!writers.empty()) next = writers.front();
  }
  if (writers.empty()) idle_cv.notify_all();
  l.unlock();

  for (const WriterPtr& w : batch) {
    if (w != self) w->set(Writer::State::kDone);
  }
  if (next) next->set(Writer::State::kLeading);
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
  idle_cv.wait(lock, [&] { return writers.empty(); });
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
    throw StorageError(what() + ": the history of object " + oid_repr(oid) +
                       " points to offset " + std::to_string(offset) +
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

void FileStorage::for_each_object(
    const std::function<bool(Oid, Tid, std::string_view)>& fn) const {
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
      if (record->payload.size() < 8) continue;
      tid = fs::load_u64(record->payload.data());
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
  paused_cv.wait(lock, [&] { return !paused || closed; });
  check_usable_locked();
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
  for (const auto& rw : request.writes) p.locked.push_back(rw.oid);
  for (const auto& r : request.read_checks) {
    if (!impl_->locks.contains(r.oid)) p.locked.push_back(r.oid);
  }
  for (Oid oid : p.locked) impl_->locks[oid] = id;
  impl_->prepared.emplace(id, std::move(p));
  impl_->submit(l, w);
  return id;
}

Tid FileStorage::finish(PreparedId id) {
  impl_->check_writable();
  return impl_->decide(id, true, false);
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
    log(LogLevel::warning, impl_->what() + ": abort of prepared transaction " +
                               std::to_string(id) + " could not write its mark (" + e.what() +
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
  for (const auto& rw : request.writes) {
    impl_->locks[rw.oid] = lock_id;
    w->locked.push_back(rw.oid);
  }
  for (const auto& r : request.read_checks) {
    if (!impl_->locks.contains(r.oid)) {
      impl_->locks[r.oid] = lock_id;
      w->locked.push_back(r.oid);
    }
  }
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
      // The last commit marks were not synced by finish(): make them durable now, so a
      // clean close never leaves work for recovery.
      if (s.options.sync == SyncMode::full) s.writer->sync();
      if (s.options.use_index) s.write_index(s.snapshot_index_locked());
    } catch (const std::exception& e) {
      log(LogLevel::warning, s.what() + ": close could not sync or write the index (" +
                                 e.what() + "); the next open scans the file instead");
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
      if (impl_->options.sync == SyncMode::full) impl_->writer->sync();
      snapshot = impl_->snapshot_index_locked();
    } catch (...) {
      // A failed fsync leaves the file's durable contents unknown: fail-stop, as in lead().
      if (impl_->failure.empty()) {
        impl_->failure = impl_->what() + " stopped after an I/O failure: " +
                         error_message(std::current_exception()) +
                         ". Open the storage again (restart the process)";
        impl_->stats.failed = true;
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
