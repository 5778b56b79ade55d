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
      throw UsageError(s.what() + " was packed since the backup point was taken: take a new "
                                  "point (and do not pack during a backup)");
    }
    file = s.reader;
    grow = s.header.chunk;
  }
  // Bytes before the point never change (append-only), so they are copied without any lock.
  const std::string temp = dest_path + ".tmp";
  auto out = s.env.new_writable_file(temp);
  std::string chunk;
  for (std::uint64_t at = 0; at < point;) {
    chunk.resize(static_cast<std::size_t>(std::min<std::uint64_t>(point - at, 1u << 20)));
    chunk.resize(file->read(at, chunk));
    if (chunk.empty()) {
      throw StorageError(s.what() + ": backup read past the end of the file at offset " +
                         std::to_string(at));
    }
    out->append(chunk);
    at += chunk.size();
  }
  // Padded to a whole chunk, as the writer leaves a file: its size is evidence at open.
  write_zeros(*out, point, round_up(point, grow));
  out->sync();
  out->close();
  s.env.rename_file(temp, dest_path);
  s.env.sync_dir(io::parent_dir(dest_path));
  return point;
}

}  // namespace xact::objectstore
