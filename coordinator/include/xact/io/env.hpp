// The file layer: every file xact itself writes (decision log, compensation logs, object
// store files) goes through an Env, as in LevelDB.
//
// Going through one narrow interface is what makes crash safety testable: tests swap the
// POSIX Env for MemEnv (in memory) or FaultInjectionEnv, which forgets everything that was
// never synced and can fail a chosen write or sync, so "a crash after step k" is simulated
// without killing the machine.
//
// Durability contract (the same for every Env, and the one POSIX really gives):
//   - data written to a file survives a crash only after WritableFile::sync() returned;
//   - a new name (create, rename) or a removed name survives a crash only after
//     Env::sync_dir() of the directory holding it returned. sync() of a file does not make
//     its directory entry durable.
//
// Errors: every operation that fails throws xact::StorageError whose message names the path
// and the system's reason. Nothing returns an error code.
//
// Thread-safety: an Env is thread-safe. A RandomAccessFile is thread-safe (reads do not
// move a shared position). A WritableFile has one writer at a time; readers of the same
// path may run concurrently and see written bytes at the latest after sync().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xact/errors.hpp>

namespace xact::io {

/// A file open for writing. Not thread-safe: one writer at a time.
class WritableFile {
 public:
  WritableFile() = default;
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;
  /// Closes the file; errors on this implicit close are ignored (call close() to see them).
  virtual ~WritableFile() = default;

  /// Writes at the end of the file: its size when opened plus what this handle wrote since.
  virtual void append(std::string_view data) = 0;
  /// Writes at `offset`, extending the file when the write goes past its end. Overwriting
  /// a preallocated (zero-filled, synced) region is the cheap way to a durable write: the
  /// later sync() then has no file size or block allocation to record.
  virtual void write_at(std::uint64_t offset, std::string_view data) = 0;
  /// Returns once every byte written through this handle is durable (fdatasync: the data,
  /// and the file size when it changed). Throws StorageError when the system reports a
  /// failure; the file's durable contents are then unknown.
  virtual void sync() = 0;
  /// Releases the handle. Idempotent; any other call after close() throws StorageError.
  virtual void close() = 0;

  /// The file's size as this handle knows it (size at open plus its own writes).
  virtual std::uint64_t size() const = 0;
  /// The path the file was opened with (used in error messages).
  virtual const std::string& path() const = 0;
};

/// A file open for reading at arbitrary offsets. Thread-safe.
class RandomAccessFile {
 public:
  RandomAccessFile() = default;
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;
  virtual ~RandomAccessFile() = default;

  /// Reads up to out.size() bytes at `offset` into `out`; returns how many were read,
  /// fewer than asked only at the end of the file (0 at or past the end).
  virtual std::size_t read(std::uint64_t offset, std::span<char> out) const = 0;
  /// The current size of the file.
  virtual std::uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
};

/// Env::lock_file found the lock held by someone else (the message names the holder). Any other
/// failure to take a lock is a plain StorageError.
class FileLockedError : public StorageError {
 public:
  using StorageError::StorageError;
};

/// An exclusive lock on a file, held until this object is destroyed.
class FileLock {
 public:
  FileLock() = default;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  virtual ~FileLock() = default;
};

/// Access to a file system. Thread-safe. See the file comment for the durability contract.
class Env {
 public:
  Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  virtual ~Env() = default;

  /// The real file system (POSIX calls, real fdatasync). A process-wide instance that
  /// lives until exit.
  static Env& posix();

  /// Creates the file, or truncates it to zero bytes when it exists.
  virtual std::unique_ptr<WritableFile> new_writable_file(const std::string& path) = 0;
  /// Opens the file for writing without truncating it; creates it when missing.
  virtual std::unique_ptr<WritableFile> new_appendable_file(const std::string& path) = 0;
  /// Opens an existing file for reading; throws StorageError when it does not exist.
  virtual std::unique_ptr<RandomAccessFile> new_random_access_file(const std::string& path) = 0;

  /// True when a file or directory of that name exists.
  virtual bool exists(const std::string& path) = 0;
  virtual std::uint64_t file_size(const std::string& path) = 0;
  /// Cuts the file to `size` bytes (or extends it with zeros). Not durable before a sync()
  /// of a handle on the file.
  virtual void truncate_file(const std::string& path, std::uint64_t size) = 0;
  /// Atomically replaces `to` with `from` (POSIX rename): a reader sees either the old or
  /// the new file, never a mix. Durable only after sync_dir() of the directory.
  virtual void rename_file(const std::string& from, const std::string& to) = 0;
  virtual void remove_file(const std::string& path) = 0;
  /// Creates the directory; does nothing when it already exists as a directory. The
  /// parent must exist. Durable only after sync_dir() of the parent.
  virtual void create_dir(const std::string& path) = 0;
  /// Removes an empty directory.
  virtual void remove_dir(const std::string& path) = 0;
  /// The names in the directory (no "." or ".."), sorted.
  virtual std::vector<std::string> list_dir(const std::string& path) = 0;
  /// Makes every create, rename and remove of a name in this directory durable.
  virtual void sync_dir(const std::string& path) = 0;

  /// Takes an exclusive lock on `path` (created if missing) for this holder. A lock held
  /// elsewhere - another process, or another lock_file() call in this process - is
  /// refused at once with FileLockedError naming the holder ("pid 1234 on host db1"), which
  /// the holder writes into the lock file. Any other failure (no permission to create or open
  /// the file, a directory in its place) is a plain StorageError with the system's reason:
  /// callers must not tell the user to stop another process then. The lock is released when
  /// the returned object is destroyed or the process exits.
  virtual std::unique_ptr<FileLock> lock_file(const std::string& path) = 0;

  /// Wall-clock time in microseconds since the Unix epoch.
  virtual std::int64_t now_micros() = 0;
};

/// "dir/name"; `name` alone when `dir` is empty.
std::string join_path(std::string_view dir, std::string_view name);
/// The directory part of `path`: "a/b" -> "a", "/a" -> "/", "a" -> ".".
std::string parent_dir(std::string_view path);
/// "pid <pid> on host <hostname>": what a lock holder writes into its lock file.
std::string lock_holder_description();

}  // namespace xact::io
