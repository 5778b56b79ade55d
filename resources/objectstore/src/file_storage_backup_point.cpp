// FileStorage: a backup up to a point taken earlier (Databases::backup takes the points of all
// its file storages under the registry's commit lock, then copies without it).
#include <algorithm>

#include <xact/errors.hpp>

#include "file_storage_impl.hpp"

namespace xact::objectstore {

FileStorage::BackupPoint FileStorage::backup_point() const {
  const Impl& s = *impl_;
  std::shared_lock il(s.index_mu);
  if (s.closed) throw UsageError(s.what() + " is closed: open it again to use it");
  return {s.published_end, s.reader};
}

std::uint64_t FileStorage::backup(const std::string& dest_path, const BackupPoint& at) const {
  const std::uint64_t point = at.end;
  const Impl& s = *impl_;
  const io::RandomAccessFile* file = nullptr;
  std::uint64_t grow = 0;
  {
    std::shared_lock il(s.index_mu);
    if (s.closed) throw UsageError(s.what() + " is closed: open it again to use it");
    if (point > s.published_end) {
      throw UsageError(s.what() + ": backup point " + std::to_string(point) +
                       " is past the end of the file's complete records (" +
                       std::to_string(s.published_end) + "): take it with backup_point()");
    }
    if (at.file != s.reader) {
      // Its offsets mean nothing in the file a pack wrote since.
      throw UsageError(s.what() +
                       " was packed since the backup point was taken: take a new "
                       "point (and do not pack during a backup)");
    }
    file = s.reader;
    grow = s.header.chunk;
  }
  s.copy_prefix(*file, point, grow, dest_path);
  return point;
}

}  // namespace xact::objectstore
