// FileStorage: pack, online backup, verify and dump (the maintenance side; the commit path
// is in file_storage.cpp). The crash-safety argument of pack is in doc/file_storage.md.
#include <xact/objectstore/file_storage.hpp>

#include <algorithm>
#include <deque>
#include <set>
#include <unordered_set>

#include <xact/crash_point.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/objectstore/codec.hpp>

#include "file_storage_impl.hpp"

namespace xact::objectstore {
namespace {

// Walks the committed transactions of a data file in commit (= file) order. Prepared records
// are remembered by offset until their mark decides them; what is undecided at the end stays
// in `undecided`. The walk can be continued past where it stopped (pack copies the tail).
class CommitWalker {
 public:
  explicit CommitWalker(const io::RandomAccessFile& file, std::string what)
      : file_(file), what_(std::move(what)) {}

  /// Calls on_commit(tid, record of the transaction) for each commit in [from, to).
  template <class Fn>
  void walk(std::uint64_t from, std::uint64_t to, Fn&& on_commit) {
    io::RecordReader r(file_, io::ScanOptions{.start = from, .throw_on_corruption = true});
    while (auto record = r.next()) {
      if (record->offset >= to) break;
      switch (record->type) {
        case fs::kPreparedRecord: undecided.insert(record->offset); break;
        case fs::kCommittedRecord: {
          if (record->payload.size() < fs::kTidAt + 8) bad(record->offset, "is too short");
          on_commit(fs::load_u64(record->payload.data() + fs::kTidAt), *record);
          break;
        }
        case fs::kCommitMark: {
          std::uint64_t target = 0;
          Tid tid = kNoTid;
          if (!fs::decode_commit_mark(record->payload, target, tid) || !undecided.erase(target)) {
            bad(record->offset, "is a commit mark for no prepared transaction");
          }
          auto txn = io::read_record_at(file_, target);
          if (!txn || txn->type != fs::kPreparedRecord) {
            bad(record->offset, "is a commit mark for no prepared transaction");
          }
          on_commit(tid, *txn);
          break;
        }
        case fs::kAbortMark: {
          std::uint64_t target = 0;
          if (!fs::decode_abort_mark(record->payload, target) || !undecided.erase(target)) {
            bad(record->offset, "is an abort mark for no prepared transaction");
          }
          break;
        }
        case fs::kHeaderRecord:
          if (record->offset != 0) bad(record->offset, "is a second file header");
          break;
        default: bad(record->offset, "has an unknown type " + std::to_string(record->type));
      }
    }
  }

  std::set<std::uint64_t> undecided;

 private:
  [[noreturn]] void bad(std::uint64_t offset, const std::string& why) const {
    throw StorageError(what_ + ": the record at offset " + std::to_string(offset) + " " + why +
                       ". Run `xact storage verify` before packing");
  }
  const io::RandomAccessFile& file_;
  std::string what_;
};

fs::DecodedTransaction decode_or_throw(const io::Record& record, const std::string& what) {
  fs::DecodedTransaction t;
  if (auto error = fs::decode_transaction(record.payload, t); !error.empty()) {
    throw StorageError(what + ": the transaction at offset " + std::to_string(record.offset) +
                       " is damaged (" + error + "). Run `xact storage verify`");
  }
  return t;
}

CommitRequest to_request(const fs::DecodedTransaction& t) {
  CommitRequest req;
  req.xid = t.xid;
  req.meta = t.meta;
  return req;
}

}  // namespace

std::string PackReport::describe() const {
  return "packed as of " + tid_repr(pack_tid) + ": " + std::to_string(old_bytes) + " -> " +
         std::to_string(new_bytes) + " bytes; kept " + std::to_string(revisions_kept) +
         " revisions in " + std::to_string(transactions_kept) + " transactions, dropped " +
         std::to_string(revisions_dropped) + " revisions and " + std::to_string(objects_dropped) +
         " unreachable objects; " + std::to_string(tail_transactions) +
         " transactions committed during the pack; " +
         std::to_string(objects_kept_for_extra_roots) +
         " objects kept only for extra roots (references from other databases)" +
         (restarts ? "; started over " + std::to_string(restarts) + " times" : "");
}

// ---------------------------------------------------------------------------------------------
// pack

PackReport FileStorage::pack(Tid pack_tid, const std::vector<Oid>& extra_roots) {
  PackOptions options;
  options.extra_roots = extra_roots;
  return pack(pack_tid, options);
}

PackReport FileStorage::pack(Tid pack_tid, const PackOptions& options) {
  Impl& s = *impl_;
  s.check_writable();
  std::lock_guard maintenance(s.maintenance_mu);
  std::vector<Oid> extra_roots = options.extra_roots;
  for (std::uint64_t restarts = 0;; ++restarts) {
    const io::RandomAccessFile* old = nullptr;
    std::uint64_t end = 0;
    {
      std::lock_guard l(s.mu);
      s.check_usable_locked();
      std::shared_lock il(s.index_mu);
      old = s.reader;
      end = s.published_end;
      // Commits made during the pack get later tids, so they are all kept.
      pack_tid = std::min(pack_tid, s.last_tid);
    }
    PackReport report;
    report.pack_tid = pack_tid;
    report.restarts = restarts;
    const std::string what = s.what();
    const std::uint64_t start = io::read_record_at(*old, 0)->end();

    // 1. The state as of the pack time: the revision of each oid current then.
    struct AsOf {
      Tid serial = kNoTid;
      Impl::IndexEntry entry;
    };
    std::unordered_map<Oid, AsOf> as_of;
    {
      CommitWalker walker(*old, what);
      walker.walk(start, end, [&](Tid tid, const io::Record& txn) {
        if (tid > pack_tid) return;
        fs::DecodedTransaction t;
        if (auto error = fs::decode_transaction(txn.payload, t, false); !error.empty()) {
          throw StorageError(what + ": the transaction at offset " + std::to_string(txn.offset) +
                             " is damaged (" + error + ")");
        }
        for (const auto& e : t.entries) {
          as_of[e.oid] = AsOf{tid, {txn.offset + io::kRecordHeaderSize + e.at, e.length, tid}};
        }
      });
    }
    // 2. What is reachable then from the root, and what only the extra roots reach.
    std::unordered_set<Oid> reachable;
    {
      std::deque<Oid> todo;
      auto reach = [&](Oid oid) {
        if (as_of.contains(oid) && reachable.insert(oid).second) todo.push_back(oid);
      };
      auto drain = [&] {
        while (!todo.empty()) {
          const Oid oid = todo.front();
          todo.pop_front();
          const std::string data = s.read_data(*old, oid, as_of[oid].entry);
          for_each_reference(data, [&](std::string_view database, Oid target) {
            if (database.empty()) reach(target);
          });
        }
      };
      reach(kRootOid);
      drain();
      const std::size_t from_root = reachable.size();
      for (Oid oid : extra_roots) reach(oid);
      drain();
      report.objects_kept_for_extra_roots = reachable.size() - from_root;
    }
    if (options.after_mark) options.after_mark();
    std::unordered_set<Oid> dropped_objects;
    for (const auto& [oid, a] : as_of) {
      if (!reachable.contains(oid)) dropped_objects.insert(oid);
    }

    // 3. Copy into FILE.pack: every kept revision, with back pointers into the new file.
    const std::string packed = fs::pack_path(s.path);
    fs::FileHeader header;
    header.file_id = fs::random_file_id();
    header.created_us = s.env.now_micros();
    header.chunk = s.header.chunk;
    // Open recognises its own result by this, never by the mere presence of files.
    header.packed_from = s.header.file_id;
    auto out = s.env.new_writable_file(packed);
    io::RecordWriter writer(*out, 0);
    writer.add(fs::kHeaderRecord, fs::encode_file_header(header));
    Impl::Index new_index;
    std::uint64_t out_bytes = 0;
    auto copy_commit = [&](Tid tid, const io::Record& txn) {
      const fs::DecodedTransaction t = decode_or_throw(txn, what);
      CommitRequest req = to_request(t);
      for (const auto& e : t.entries) {
        const bool keep =
            tid > pack_tid || (reachable.contains(e.oid) && as_of.at(e.oid).serial == tid);
        if (keep) {
          req.writes.push_back({e.oid, kNoTid, std::string(e.data)});
        } else {
          ++report.revisions_dropped;
        }
      }
      if (req.writes.empty()) return;
      auto enc = fs::encode_transaction(req, t.next_oid);
      fs::patch_tid(enc.payload, tid);
      const std::uint64_t at = writer.offset();
      for (std::size_t i = 0; i < req.writes.size(); ++i) {
        const Oid oid = req.writes[i].oid;
        auto it = new_index.find(oid);
        if (it != new_index.end()) {
          fs::patch_entry(enc.payload, enc.entry_at[i], it->second.serial, it->second.offset);
        }
        new_index[oid] =
            Impl::IndexEntry{at + io::kRecordHeaderSize + enc.entry_at[i],
                             static_cast<std::uint32_t>(req.writes[i].data.size()), tid};
      }
      writer.add(fs::kCommittedRecord, enc.payload);
      ++report.transactions_kept;
      report.revisions_kept += req.writes.size();
      out_bytes = writer.offset();
    };

    bool renamed_old = false;
    std::unique_lock l(s.mu, std::defer_lock);
    try {
      CommitWalker walker(*old, what);
      walker.walk(start, end, copy_commit);

      // 4. The tail: what committed while the copy ran, with commits paused (only for this).
      l.lock();
      s.check_usable_locked();
      s.pause_locked(l);
      const std::uint64_t tail_end = s.published_end;
      const std::uint64_t kept_before = report.transactions_kept;
      walker.walk(end, tail_end, copy_commit);
      report.tail_transactions = report.transactions_kept - kept_before;
      // The last moment to keep more (references other databases committed meanwhile).
      if (options.late_roots) {
        std::vector<Oid> dropped_but_wanted;
        for (Oid oid : options.late_roots()) {
          if (as_of.contains(oid) && !reachable.contains(oid)) dropped_but_wanted.push_back(oid);
        }
        if (!dropped_but_wanted.empty()) {
          if (static_cast<int>(restarts) >= options.max_restarts) {
            throw StorageError(what + ": pack gave up after " + std::to_string(restarts) +
                               " restarts: objects it had dropped kept being referenced from "
                               "outside while it ran. Pack again later");
          }
          out->close();
          s.env.remove_file(packed);
          s.resume_locked();
          l.unlock();
          extra_roots.insert(extra_roots.end(), dropped_but_wanted.begin(),
                             dropped_but_wanted.end());
          log(LogLevel::info, what + ": pack starts over to keep " +
                                  std::to_string(dropped_but_wanted.size()) +
                                  " objects referenced from outside while it ran");
          if (options.restarting) options.restarting();
          continue;
        }
      }
      if (options.dropped) options.dropped(dropped_objects);
      // Prepared transactions still undecided are copied as prepared, after everything.
      std::map<std::uint64_t, std::pair<std::uint64_t, std::vector<Impl::PendingWrite>>> moved;
      for (std::uint64_t offset : walker.undecided) {
        auto txn = io::read_record_at(*old, offset);
        if (!txn)
          throw StorageError(what + ": prepared record at offset " + std::to_string(offset) +
                             " cannot be read back");
        const fs::DecodedTransaction t = decode_or_throw(*txn, what);
        CommitRequest req = to_request(t);
        for (Oid oid : t.read_checks) req.read_checks.push_back({oid, kNoTid});
        for (const auto& e : t.entries) req.writes.push_back({e.oid, kNoTid, std::string(e.data)});
        auto enc = fs::encode_transaction(req, t.next_oid);
        const std::uint64_t at = writer.offset();
        std::vector<Impl::PendingWrite> writes;
        for (std::size_t i = 0; i < req.writes.size(); ++i) {
          auto it = new_index.find(req.writes[i].oid);
          if (it != new_index.end()) {
            fs::patch_entry(enc.payload, enc.entry_at[i], it->second.serial, it->second.offset);
          }
          writes.push_back({req.writes[i].oid, at + io::kRecordHeaderSize + enc.entry_at[i],
                            static_cast<std::uint32_t>(req.writes[i].data.size())});
        }
        writer.add(fs::kPreparedRecord, enc.payload);
        moved[offset] = {at, std::move(writes)};
      }
      out_bytes = writer.offset();
      // The header, rewritten in place (fixed size) now that the copy is complete: everything
      // up to out_bytes is durable once the sync below returns, and no oid below next_oid may
      // be handed out again, even if the objects that used them were dropped.
      header.durable_end = out_bytes;
      header.next_oid = s.next_oid.load();
      out->write_at(0, io::encode_record(fs::kHeaderRecord, fs::encode_file_header(header)));
      // A whole chunk, as the writer leaves it: the file's size is evidence at open.
      write_zeros(*out, out_bytes, round_up(out_bytes, header.chunk));
      out->sync();
      out->close();
      const std::string dir = io::parent_dir(s.path);
      s.env.sync_dir(dir);
      XACT_CRASH_POINT("file_storage.pack_before_rename");

      // 5. Switch: FILE -> FILE.old, FILE.pack -> FILE. open() finishes a switch cut in half.
      const std::string old_file = fs::old_path(s.path);
      if (s.env.exists(old_file)) s.env.remove_file(old_file);
      s.env.rename_file(s.path, old_file);
      renamed_old = true;
      XACT_CRASH_POINT("file_storage.pack_between_renames");
      s.env.rename_file(packed, s.path);
      s.env.sync_dir(dir);
      auto new_reader = s.env.new_random_access_file(s.path);
      auto new_writer = s.env.new_appendable_file(s.path);

      report.old_bytes = tail_end;
      report.new_bytes = out_bytes;
      report.objects_dropped = dropped_objects.size();
      {
        std::unique_lock il(s.index_mu);
        s.index = std::move(new_index);
        s.readers.push_back(std::move(new_reader));
        s.reader = s.readers.back().get();
        s.published_end = out_bytes;
        s.header = header;
      }
      for (auto& [id, p] : s.prepared) {
        auto it = moved.find(p.record_offset);
        if (it == moved.end()) continue;
        p.record_offset = it->second.first;
        p.writes = it->second.second;
      }
      s.writer->close();
      s.writer = std::move(new_writer);
      s.capacity = s.writer->size();
      s.durable_end = out_bytes;
      s.next_offset = out_bytes;
      auto snapshot = s.snapshot_index_locked();
      s.resume_locked();
      l.unlock();
      try {
        s.write_index(snapshot);
      } catch (const std::exception& e) {
        log(LogLevel::warning, what + ": pack could not write the index (" + e.what() +
                                   "); the next open scans the file");
      }
    } catch (...) {
      if (!l.owns_lock()) l.lock();
      if (renamed_old && s.failure.empty()) {
        // The open handles now name FILE.old: writing on would go to the wrong file.
        s.failure = what + " stopped: a pack failed while switching files (" +
                    error_message(std::current_exception()) +
                    "). Open the storage again: open completes or undoes the switch";
        s.stats.failed = true;
        s.queue.fail_stop(std::make_exception_ptr(StorageError(s.failure)));
      }
      if (s.paused) s.resume_locked();
      l.unlock();
      if (!renamed_old) {
        try {
          if (s.env.exists(packed)) s.env.remove_file(packed);
        } catch (const std::exception&) {
          // open() removes it.
        }
      }
      throw;
    }
    log(LogLevel::info, what + ": " + report.describe());
    return report;
  }
}

// ---------------------------------------------------------------------------------------------
// backup

std::uint64_t FileStorage::backup(const std::string& dest_path) const {
  const Impl& s = *impl_;
  const io::RandomAccessFile* file = nullptr;
  std::uint64_t end = 0;
  std::uint64_t grow = 0;
  {
    std::shared_lock il(s.index_mu);
    if (s.closed) throw UsageError(s.what() + " is closed: open it again to use it");
    file = s.reader;
    end = s.published_end;
    grow = s.header.chunk;
  }
  s.copy_prefix(*file, end, grow, dest_path);
  return end;
}

// The first `end` bytes of `file` copied to dest_path (through a temporary, synced, renamed),
// padded to a whole `grow` chunk as the writer leaves a file (its size is evidence at open).
// Bytes before `end` never change (append-only), so the caller holds no lock.
void FileStorage::Impl::copy_prefix(const io::RandomAccessFile& file, std::uint64_t end,
                                    std::uint64_t grow, const std::string& dest_path) const {
  const std::string temp = dest_path + ".tmp";
  auto out = env.new_writable_file(temp);
  std::string chunk;
  for (std::uint64_t at = 0; at < end;) {
    chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(end - at, 1u << 20)));
    chunk.resize(file.read(at, chunk));
    if (chunk.empty()) {
      throw StorageError(what() + ": backup read past the end of the file at offset " +
                         std::to_string(at));
    }
    out->append(chunk);
    at += chunk.size();
  }
  write_zeros(*out, end, round_up(end, grow));
  out->sync();
  out->close();
  env.rename_file(temp, dest_path);
  env.sync_dir(io::parent_dir(dest_path));
}

// ---------------------------------------------------------------------------------------------
// verify and dump

std::string VerifyReport::describe() const {
  std::string out = path + ": " + (ok() ? "OK" : "PROBLEMS FOUND") + "\n";
  out += "  " + std::to_string(file_bytes) + " bytes, " + std::to_string(records) + " records, " +
         std::to_string(transactions) + " committed transactions (last " + tid_repr(last_tid) +
         "), " + std::to_string(prepared) + " prepared, " + std::to_string(aborted) + " aborted, " +
         std::to_string(revisions) + " revisions, " + std::to_string(objects) + " objects\n";
  out += "  framing: " + scan.describe() + "\n";
  for (const auto& p : problems) out += "  problem: " + p + "\n";
  return out;
}

VerifyReport FileStorage::verify(const std::string& path, io::Env* env_ptr) {
  io::Env& env = env_ptr ? *env_ptr : io::Env::posix();
  VerifyReport v;
  v.path = path;
  auto file = env.new_random_access_file(path);
  v.file_bytes = file->size();
  io::RecordReader r(*file);
  struct Current {
    Tid serial = kNoTid;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
  };
  std::unordered_map<Oid, Current> current;
  std::map<std::uint64_t, fs::DecodedTransaction> undecided;
  std::map<std::uint64_t, std::string> payloads;  // keeps the views of `undecided` alive
  auto problem = [&](std::uint64_t offset, const std::string& what) {
    if (v.problems.size() < 1000) {
      v.problems.push_back("offset " + std::to_string(offset) + ": " + what);
    }
  };
  auto commit = [&](std::uint64_t offset, Tid tid, std::uint64_t record_offset,
                    const fs::DecodedTransaction& t) {
    if (tid <= v.last_tid) {
      problem(offset, "tid " + tid_repr(tid) + " does not follow " + tid_repr(v.last_tid));
    }
    v.last_tid = std::max(v.last_tid, tid);
    ++v.transactions;
    for (const auto& e : t.entries) {
      ++v.revisions;
      auto& c = current[e.oid];
      if (e.prev_serial != c.serial || (c.serial != kNoTid && e.prev_offset != c.offset)) {
        problem(offset, "the revision of " + oid_repr(e.oid) + " points back to serial " +
                            tid_repr(e.prev_serial) + " but the previous revision is " +
                            tid_repr(c.serial));
      }
      c = Current{tid, record_offset + io::kRecordHeaderSize + e.at, e.length};
    }
  };
  bool first = true;
  while (auto record = r.next()) {
    ++v.records;
    if (first) {
      first = false;
      if (record->offset != 0 || record->type != fs::kHeaderRecord ||
          !fs::decode_file_header(record->payload)) {
        problem(record->offset, "the file does not start with a storage header");
      }
      continue;
    }
    switch (record->type) {
      case fs::kPreparedRecord:
      case fs::kCommittedRecord: {
        fs::DecodedTransaction t;
        if (auto error = fs::decode_transaction(record->payload, t); !error.empty()) {
          problem(record->offset, "damaged transaction: " + error);
          break;
        }
        if (record->type == fs::kCommittedRecord) {
          commit(record->offset, t.tid, record->offset, t);
        } else {
          // Re-decoded at its mark from a stored copy (the views point into the payload).
          payloads[record->offset] = record->payload;
          fs::DecodedTransaction kept;
          fs::decode_transaction(payloads[record->offset], kept);
          undecided[record->offset] = std::move(kept);
        }
        break;
      }
      case fs::kCommitMark: {
        std::uint64_t target = 0;
        Tid tid = kNoTid;
        auto it = fs::decode_commit_mark(record->payload, target, tid) ? undecided.find(target)
                                                                       : undecided.end();
        if (it == undecided.end()) {
          problem(record->offset, "a commit mark for no prepared transaction");
          break;
        }
        commit(record->offset, tid, target, it->second);
        undecided.erase(it);
        payloads.erase(target);
        break;
      }
      case fs::kAbortMark: {
        std::uint64_t target = 0;
        auto it = fs::decode_abort_mark(record->payload, target) ? undecided.find(target)
                                                                 : undecided.end();
        if (it == undecided.end()) {
          problem(record->offset, "an abort mark for no prepared transaction");
          break;
        }
        ++v.aborted;
        undecided.erase(it);
        payloads.erase(target);
        break;
      }
      default: problem(record->offset, "unknown record type " + std::to_string(record->type));
    }
  }
  if (first) problem(0, "the file holds no records (no storage header)");
  v.scan = r.report();
  v.prepared = undecided.size();
  v.objects = current.size();
  // Every reference points to an object that exists at the end.
  for (const auto& entry : current) {
    // Not a structured binding: the lambda below captures these, which clang < 16 cannot.
    const Oid& oid = entry.first;
    const auto& c = entry.second;
    std::string bytes(fs::kEntryHeaderSize + c.length, '\0');
    bytes.resize(file->read(c.offset, bytes));
    if (!fs::entry_valid(bytes, oid)) {
      problem(c.offset, "the current revision of " + oid_repr(oid) + " is damaged");
      continue;
    }
    try {
      for_each_reference(std::string_view(bytes).substr(fs::kEntryHeaderSize),
                         [&](std::string_view database, Oid target) {
                           if (database.empty() && !current.contains(target)) {
                             problem(c.offset, "object " + oid_repr(oid) + " refers to " +
                                                   oid_repr(target) + ", which does not exist");
                           }
                         });
    } catch (const std::exception& e) {
      problem(c.offset, "the state of " + oid_repr(oid) + " cannot be decoded: " + e.what());
    }
  }
  return v;
}

io::ScanReport FileStorage::dump(const std::string& path,
                                 const std::function<bool(const FileRecordInfo&)>& fn,
                                 io::Env* env_ptr) {
  io::Env& env = env_ptr ? *env_ptr : io::Env::posix();
  auto file = env.new_random_access_file(path);
  io::RecordReader r(*file);
  while (auto record = r.next()) {
    if (!fn(fs::describe_record(*record))) break;
  }
  return r.report();
}

}  // namespace xact::objectstore
