// MemEnv: an Env whose files and directories live in memory.
//
// For tests and for tools that work on a copy of a log without touching the disk. It keeps
// the POSIX durability model exactly (see env.hpp): for every file what was last synced,
// for every directory which names were last synced. A plain MemEnv never forgets anything;
// FaultInjectionEnv (fault_injection_env.hpp, in xact::testing) adds the crash that does.
//
// Paths: "/" separates components; "." components and repeated slashes are ignored and a
// relative path is taken from the root, so "log/x" and "/log/x" name the same file. ".."
// is not supported.
//
// Thread-safety: thread-safe (one mutex over the whole tree); files follow env.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <xact/io/env.hpp>

namespace xact::io {

class MemEnv : public Env {
 public:
  MemEnv();
  ~MemEnv() override;

  std::unique_ptr<WritableFile> new_writable_file(const std::string& path) override;
  std::unique_ptr<WritableFile> new_appendable_file(const std::string& path) override;
  std::unique_ptr<RandomAccessFile> new_random_access_file(const std::string& path) override;
  bool exists(const std::string& path) override;
  std::uint64_t file_size(const std::string& path) override;
  void truncate_file(const std::string& path, std::uint64_t size) override;
  void rename_file(const std::string& from, const std::string& to) override;
  void remove_file(const std::string& path) override;
  void create_dir(const std::string& path) override;
  void remove_dir(const std::string& path) override;
  std::vector<std::string> list_dir(const std::string& path) override;
  void sync_dir(const std::string& path) override;
  std::unique_ptr<FileLock> lock_file(const std::string& path) override;
  std::int64_t now_micros() override;

  /// The whole current contents of a file (a test helper; throws when it does not exist).
  std::string read_file(const std::string& path);
  /// Replaces a file's current contents (a test helper for corrupting files on purpose).
  /// The new contents count as synced: they survive a later crash.
  void write_file(const std::string& path, std::string_view contents);

  // The mutating operations, as FaultInjectionEnv counts and fails them.
  enum class Op : std::uint8_t {
    kWrite,    // WritableFile::append / write_at
    kSync,     // WritableFile::sync
    kDirSync,  // Env::sync_dir
    kMeta,     // create, truncate, rename, remove, create_dir, remove_dir
    kLock,     // lock_file (writes the holder's name)
  };

 protected:
  /// What the hook below decides about one operation.
  struct Verdict {
    bool fail = false;            // throw StorageError(message) ...
    std::size_t apply_bytes = 0;  // ... after applying this many bytes of a failing write
    std::string message;
  };
  /// Called before every mutating operation, without MemEnv's lock held (so it may sleep).
  /// The default lets everything through.
  virtual Verdict before(Op op, const std::string& path, std::size_t bytes);

  /// The crash: every file loses what was written since its last sync, every directory
  /// loses the names created, renamed or removed since its last sync_dir (a directory that
  /// was never made durable disappears with everything in it). Handles and locks taken
  /// before the crash stop working, as if their process had died.
  void drop_unsynced();

 private:
  struct Node;
  class MemWritableFile;
  class MemRandomAccessFile;
  class MemFileLock;

  std::shared_ptr<Node> find_locked(const std::string& path) const;
  std::shared_ptr<Node> find_file_locked(const std::string& path, std::string_view what) const;
  std::pair<std::shared_ptr<Node>, std::string> find_parent_locked(const std::string& path,
                                                                   std::string_view what) const;
  std::shared_ptr<Node> open_file_locked(const std::string& path, bool truncate);
  std::unique_ptr<WritableFile> open_writable(const std::string& path, bool truncate);
  void check_generation_locked(std::uint64_t generation, const std::string& path) const;
  void apply(Op op, const std::string& path, std::size_t bytes,
             const std::function<void(std::size_t)>& action);

  mutable std::mutex mu_;
  std::shared_ptr<Node> root_;
  std::uint64_t generation_ = 0;  // bumped by drop_unsynced(): older handles are dead
  struct LockEntry {
    std::uint64_t token;
    std::string holder;
  };
  std::map<std::string, LockEntry> locks_;
  std::uint64_t next_lock_token_ = 1;
};

}  // namespace xact::io
