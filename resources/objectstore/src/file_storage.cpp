// FileStorage: the object, its lifetime (open() builds it, close() ends it) and its shared
// helpers. Format and the crash-safety argument: doc/file_storage.md. The work is in one file
// per phase:
//   file_storage_open.cpp         opening: the header, the index file, the scan, the torn tail
//   file_storage_commit.cpp       the commit path: checks, the group-commit leader, prepare,
//                                 finish, abort, one-phase commits, recovery's decisions
//   file_storage_read.cpp         loads, serials, for_each_object, iterate
//   file_storage_maintenance.cpp  pausing the queue, the index file (save_index)
//   file_storage_pack.cpp         pack, backup, verify, dump
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
// helpers

// A megabyte of zeros: what write_zeros writes, and the scan's read size over preallocation.
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
