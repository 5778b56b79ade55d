// FaultInjectionEnv: an in-memory Env that crashes and fails on command, for crash tests.
//
// It is a MemEnv (so it keeps POSIX's durability model: see env.hpp and mem_env.hpp) that
//   - on crash() forgets every byte not synced and every directory entry (create, rename,
//     remove) whose directory was not synced since, as a power cut would;
//   - fails the Nth write, file sync or directory sync from now with StorageError (a failing
//     write may first store part of its bytes: a torn write);
//   - "halts" after N more mutating operations: every later one fails, as if the process had
//     died right there, until crash() models the restart. halt_after(k) + crash() for
//     k = 0, 1, 2, ... is how a test crashes after every step of a protocol;
//   - counts writes, file syncs and directory syncs, so a test can assert "exactly one forced
//     write per commit";
//   - can make every file sync slow, so concurrent writers pile up as they do on a disk.
//
// Thread-safety: thread-safe, like every Env. The fault settings may be changed while other
// threads use the Env.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include <xact/io/mem_env.hpp>

namespace xact::io {

class FaultInjectionEnv : public MemEnv {
 public:
  /// The crash: drops everything not durable (see MemEnv::drop_unsynced), makes handles and
  /// locks from before it unusable, and clears pending failures and the halt.
  void crash();

  /// The nth write (append or write_at) from now - 1 is the next one - throws StorageError.
  /// When `torn`, it first stores the first half of its bytes.
  void fail_nth_write(std::uint64_t n, bool torn = false);
  /// The nth file sync from now throws StorageError (and makes nothing durable).
  void fail_nth_sync(std::uint64_t n);
  /// The nth directory sync from now throws StorageError (and makes nothing durable).
  void fail_nth_dir_sync(std::uint64_t n);
  /// After `n` more mutating operations, every further one throws StorageError until crash().
  void halt_after(std::uint64_t n);
  /// True once an operation was refused because of halt_after().
  bool halted() const;

  /// Every file sync sleeps this long before it completes (0 by default).
  void set_sync_delay(std::chrono::microseconds delay);

  /// Calls made so far (failed ones included).
  std::uint64_t writes() const;
  std::uint64_t syncs() const;      // WritableFile::sync
  std::uint64_t dir_syncs() const;  // Env::sync_dir
  std::uint64_t mutations() const;  // every mutating operation of any kind

 protected:
  Verdict before(Op op, const std::string& path, std::size_t bytes) override;

 private:
  mutable std::mutex mu_;
  std::uint64_t writes_ = 0;
  std::uint64_t syncs_ = 0;
  std::uint64_t dir_syncs_ = 0;
  std::uint64_t mutations_ = 0;
  std::uint64_t fail_write_in_ = 0;  // 0: not armed
  bool torn_write_ = false;
  std::uint64_t fail_sync_in_ = 0;
  std::uint64_t fail_dir_sync_in_ = 0;
  std::optional<std::uint64_t> halt_budget_;  // operations left before the halt
  bool halted_ = false;
  std::chrono::microseconds sync_delay_{0};
};

}  // namespace xact::io
