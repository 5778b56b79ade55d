// FileStorage, reading: an object's data at a file position, the revision as of a tid, load,
// load_serial, for_each_object and iterate.
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

}  // namespace xact::objectstore
