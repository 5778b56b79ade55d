// FileStorage, maintenance: pausing the group-commit queue, snapshots of the index, the index
// file (save_index). Pack, backup, verify and dump are in file_storage_pack.cpp.
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

// Entries per index record (28 bytes each: about 1 MiB per record).
constexpr std::size_t kIndexChunk = 36000;

}  // namespace

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

}  // namespace xact::objectstore
