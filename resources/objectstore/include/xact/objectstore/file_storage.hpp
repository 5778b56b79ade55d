// FileStorage: the embedded default storage. One append-only file of checksummed records
// (the shared framing of <xact/io/record.hpp>), crash-safe, shared by every connection of a
// DB, with a persisted index, history, iteration, pack and online backup. The byte layout
// and the concurrency and crash-safety arguments are in doc/file_storage.md.
//
//   auto storage = FileStorage::open("/srv/app/data.xfs");      // creates it when missing
//   DB db(std::move(storage));
//
// Files beside FILE (all in the same directory):
//   FILE            the data: a header record, then transactions, commit and abort marks
//   FILE.lock       the exclusive lock (held while open; names the holder)
//   FILE.index      the persisted index, written by close() and save_index()
//   FILE.tail-<us>  the last, never-synced writes cut off by open() (kept for inspection)
//   FILE.pack       a pack in progress;  FILE.old  the file as it was before the last pack
//
// Committing. prepare() appends a prepared record and fsyncs it (a yes vote); finish()
// appends a commit mark carrying the tid, with an fsync (shared with concurrent writers) unless
// the decision is recorded elsewhere (finish(id, false): the coordinator's commit record or a
// last resource's decision table; any later durable write then covers the mark); commit_one_phase()
// appends one committed record with one fsync. Concurrent committers share fsyncs (group commit).
// After a failed write or fsync the storage is fail-stop: every later write throws StorageError
// until it is opened again.
//
// Thread-safety: every method is thread-safe. A FileStorage is meant to be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <xact/errors.hpp>
#include <xact/io/env.hpp>
#include <xact/io/record.hpp>
#include <xact/objectstore/storage.hpp>

namespace xact::objectstore {

/// prepare() / commit_one_phase() found an object locked by a transaction that was prepared
/// before the storage was opened (a crash or restart interrupted its two-phase commit). Not a
/// TransientError: retrying cannot help, because only recovery (xact::Recovery with the
/// coordinator's decision log and `DB::recovery_target()` registered, or
/// FileStorage::commit_prepared / rollback_prepared by hand) decides it and releases the lock.
class InDoubtLockError : public ResourceError {
 public:
  InDoubtLockError(Oid oid, const std::string& type, Tid read, const Xid& holder,
                   const std::string& storage_path);
  Oid oid() const noexcept { return oid_; }
  /// The prepared transaction holding the lock.
  const Xid& holder() const noexcept { return holder_; }

 private:
  Oid oid_;
  Xid holder_;
};

/// How hard durable writes push to the disk.
enum class SyncMode {
  /// fdatasync for every durable write (prepare, one-phase commit, recovery marks). Default.
  full,
  /// Never sync: for bulk loads and tests that do not care about crashes. A crash may lose
  /// or cut off any recent transaction (open still finds a consistent prefix).
  none,
};

struct FileStorageOptions {
  /// The file system; nullptr means io::Env::posix(). Must outlive the storage.
  io::Env* env = nullptr;
  /// Open without writing anything: no lock, no tail repair, no index written; every commit
  /// throws UsageError. Several read-only opens (and one writer) may coexist.
  bool read_only = false;
  /// Create the file when it does not exist (otherwise open throws StorageError).
  bool create = true;
  SyncMode sync = SyncMode::full;
  /// The file grows in zero-filled chunks of this size, so a commit's fdatasync overwrites
  /// allocated blocks and need not record a new file size. 0 disables preallocation; at most
  /// 1 GiB (creating a file with more throws UsageError).
  std::uint64_t preallocate_bytes = 16u << 20;
  /// Open despite damage in the middle of the file (damaged bytes followed by valid records):
  /// the damaged records are dropped and listed in the open report. Without it open throws
  /// StorageError naming the offset.
  bool salvage = false;
  /// Use FILE.index when it is valid (and write it on close). Off: always scan the file.
  bool use_index = true;
  /// Check each loaded revision's own checksum (cheap: a CRC-32C of the object's bytes).
  bool verify_loads = true;
};

/// What open() found and did.
struct FileStorageOpenReport {
  bool created = false;             ///< the file did not exist and was created
  bool index_used = false;          ///< FILE.index was valid: only the tail after it was scanned
  std::string index_problem;        ///< why the index was not used (missing, stale, damaged)
  std::uint64_t scanned_from = 0;   ///< where the scan started (0 without an index)
  std::uint64_t scanned_bytes = 0;  ///< how many bytes of records were read by the scan
  std::uint64_t end_of_data = 0;    ///< where the next record goes
  std::uint64_t transactions = 0;   ///< committed transactions seen by the scan
  Tid last_tid = kNoTid;
  std::uint64_t objects = 0;   ///< live objects
  std::uint64_t prepared = 0;  ///< prepared transactions handed to recovery
  /// Bytes of an incomplete last write (a crash, or a copy taken while writing), cut off and
  /// moved to `tail_file` (read-write open) or just ignored (read-only open).
  std::uint64_t cut_off_bytes = 0;
  std::string cut_off_reason;
  std::string tail_file;
  /// Damaged ranges dropped because FileStorageOptions::salvage was set.
  std::vector<io::DroppedRange> salvaged;
  /// Leftovers of an interrupted pack that open() cleaned up or completed, and the zeros a
  /// read-write open added to end the file on a whole preallocated chunk.
  std::vector<std::string> repaired;
  /// One line for logs.
  std::string describe() const;
};

/// What pack() did.
struct PackReport {
  Tid pack_tid = kNoTid;
  std::uint64_t old_bytes = 0;
  std::uint64_t new_bytes = 0;
  std::uint64_t transactions_kept = 0;
  std::uint64_t revisions_kept = 0;
  std::uint64_t revisions_dropped = 0;  ///< old revisions and revisions of dropped objects
  std::uint64_t objects_dropped = 0;    ///< unreachable from the root as of the pack time
  std::uint64_t tail_transactions = 0;  ///< committed during the pack, copied at its end
  /// Objects kept only because an extra root (PackOptions::extra_roots or late_roots: for a
  /// database of a registry, a reference from another database) reaches them.
  std::uint64_t objects_kept_for_extra_roots = 0;
  /// Times the copy started over because late_roots named an object it had dropped.
  std::uint64_t restarts = 0;
  std::string describe() const;
};

/// How pack() finds what to keep beyond the root (Databases::pack fills these in).
struct PackOptions {
  /// Objects kept, with what they reach, as if the root referred to them.
  std::vector<Oid> extra_roots;
  /// Asked with commits paused, once the transactions committed during the copy are copied
  /// (the pack's last moment to keep more): objects that must be kept as well. When one of
  /// them was dropped by the copy, the pack starts over with them as extra roots (calling
  /// `restarting` first), at most `max_restarts` times, then fails with StorageError.
  std::function<std::vector<Oid>()> late_roots;
  std::function<void()> restarting;
  int max_restarts = 3;
  /// Told the objects the pack drops (unreachable as of the pack time), with commits paused,
  /// once no restart follows; the pack may still fail after this.
  std::function<void(const std::unordered_set<Oid>&)> dropped;
  /// Called after the mark (what is reachable is known), before the copy, with no lock held.
  /// For tests: a pause here interleaves commits with the pack deterministically.
  std::function<void()> after_mark;
};

/// What verify() found. ok() when there is nothing to fix.
struct VerifyReport {
  std::string path;
  std::uint64_t file_bytes = 0;
  std::uint64_t records = 0;
  std::uint64_t transactions = 0;  ///< committed
  std::uint64_t prepared = 0;      ///< prepared, not decided at the end of the file
  std::uint64_t aborted = 0;
  std::uint64_t revisions = 0;
  std::uint64_t objects = 0;  ///< live at the end
  Tid last_tid = kNoTid;
  io::ScanReport scan;  ///< the framing's view (cut-off tail, corrupt ranges)
  /// Everything wrong besides a cut-off tail: damaged records, marks without a prepared
  /// record, tids out of order, bad back pointers, references to missing objects.
  std::vector<std::string> problems;
  bool ok() const { return problems.empty() && scan.corrupt.empty(); }
  /// Several lines: counts, then each problem.
  std::string describe() const;
};

/// One record of a storage file, decoded, for `xact storage dump`.
struct FileRecordInfo {
  enum class Kind { header, prepared, committed, commit_mark, abort_mark, unknown };
  Kind kind = Kind::unknown;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;             ///< framed size in bytes
  Tid tid = kNoTid;                   ///< committed: its tid; commit mark: the tid it assigns
  std::uint64_t prepared_offset = 0;  ///< marks: the prepared record they decide
  Xid xid;                            ///< prepared / committed (empty for one-phase)
  TransactionMeta meta;
  std::vector<Oid> read_checks;
  struct Entry {
    Oid oid = 0;
    Tid prev_serial = kNoTid;       ///< the revision this one replaced (kNoTid: new)
    std::uint64_t prev_offset = 0;  ///< where that revision's entry is (0: none)
    std::uint64_t offset = 0;       ///< where this entry is
    std::string data;
  };
  std::vector<Entry> entries;
  std::string error;  ///< why a record could not be decoded (kind unknown)
};
std::string_view to_string(FileRecordInfo::Kind kind);

class FileStorage final : public Storage {
 public:
  /// Opens (or creates) the storage file at `path`. Takes FILE.lock (a second open for
  /// writing, from this or another process, throws StorageError naming the holder), cuts off
  /// the last, never-synced writes into a side file, loads FILE.index when it is valid and
  /// scans only the records after it, and hands prepared transactions to recovery. Throws
  /// StorageError for damage that the file's evidence (the durable end each write batch
  /// records, the index, the header, the file's size) shows was durable, naming the offset
  /// (unless options.salvage), for a missing file that its index or FILE.old shows existed,
  /// and for a file of format version 1; UsageError for bad options. See doc/file_storage.md,
  /// "What open can prove".
  static std::unique_ptr<FileStorage> open(const std::string& path,
                                           FileStorageOptions options = {});

  ~FileStorage() override;

  /// Checks every record of a storage file (which may be open by a writer: the check reads
  /// what is complete when it starts). Never modifies anything; throws StorageError only when
  /// the file cannot be read at all.
  static VerifyReport verify(const std::string& path, io::Env* env = nullptr);
  /// Calls `fn` for every record of a storage file in file order (damaged ranges are skipped
  /// and reported in the returned scan report). Stops when `fn` returns false.
  static io::ScanReport dump(const std::string& path,
                             const std::function<bool(const FileRecordInfo&)>& fn,
                             io::Env* env = nullptr);

  // --- Storage -------------------------------------------------------------------------------
  std::string describe() const override;
  Tid last_transaction() const override;
  std::optional<Revision> load(Oid oid, Tid at = kMaxTid) const override;
  std::optional<std::string> load_serial(Oid oid, Tid serial) const override;
  Oid new_oid() override;
  void for_each_object(
      const std::function<bool(Oid oid, Tid serial, std::string_view data)>& fn) const override;
  void iterate(Tid from, Tid to,
               const std::function<bool(const TransactionRecord&)>& fn) const override;
  PreparedId prepare(CommitRequest request) override;
  using Storage::finish;
  Tid finish(PreparedId id, bool durable) override;
  void abort(PreparedId id) noexcept override;
  Tid commit_one_phase(CommitRequest request) override;
  void set_invalidation_listener(InvalidationListener listener) override;
  /// Syncs the last commit marks, writes FILE.index, releases the lock. Never throws (a
  /// failure to write the index is logged: the next open rebuilds it).
  void close() noexcept override;

  // --- RecoverableResource -------------------------------------------------------------------
  /// The xids of prepared transactions (found on open, or prepared by this process and not
  /// yet decided) whose gtrid belongs to `node`.
  std::vector<Xid> recover(const NodeId& node) override;
  /// Every node's durable prepared transactions (a storage is one resource: all are its own).
  std::vector<Xid> recover_all_nodes() override;
  /// Appends a commit (rollback) mark and syncs it. unknown_id for an xid not held prepared.
  Outcome commit_prepared(const Xid& xid) override;
  Outcome rollback_prepared(const Xid& xid) override;

  // --- maintenance ---------------------------------------------------------------------------
  /// Removes revisions older than `pack_tid` that are not current as of it, and objects not
  /// reachable from the root (or from `extra_roots`, e.g. oids referenced from other
  /// databases) as of it. Revisions newer than `pack_tid` are kept. Writes FILE.pack, syncs it,
  /// renames FILE to FILE.old and FILE.pack to FILE. Commits go on during the copy and are
  /// paused only while the transactions committed meanwhile are copied. Safe to interrupt
  /// at any point (open() completes or discards an interrupted pack). Throws StorageError on
  /// I/O failure (before the renames the storage goes on with the old file; after the first
  /// rename it is fail-stop until reopened), UsageError when read-only.
  PackReport pack(Tid pack_tid, const std::vector<Oid>& extra_roots = {});
  /// The same, with late roots and hooks (PackOptions).
  PackReport pack(Tid pack_tid, const PackOptions& options);
  /// Writes a consistent copy of the storage (every transaction committed when it starts) to
  /// `dest_path` (via dest_path + ".tmp", synced, renamed). Commits go on meanwhile. Returns
  /// the bytes copied. The copy opens like the original.
  std::uint64_t backup(const std::string& dest_path) const;
  /// Where the file's complete records end now: a point backup() can copy up to later (a
  /// registry takes the points of all its file storages under one lock, Databases::backup).
  struct BackupPoint {
    std::uint64_t end = 0;
    const void* file = nullptr;  ///< which file (a pack replaces it); compared, never used
  };
  BackupPoint backup_point() const;
  /// backup(), up to `point` (a backup_point() of this storage) instead of the end now.
  /// Throws UsageError when a pack replaced the file since the point was taken.
  std::uint64_t backup(const std::string& dest_path, const BackupPoint& point) const;
  /// Writes FILE.index now (also done by close()), so a crash does not cost a full scan.
  void save_index();

  /// The file's path.
  const std::string& path() const;
  const FileStorageOpenReport& open_report() const;

  struct Stats {
    std::uint64_t commits = 0;  ///< finished + one-phase commits
    std::uint64_t prepares = 0;
    std::uint64_t aborts = 0;
    std::uint64_t conflicts = 0;
    std::uint64_t writes = 0;     ///< batch writes (each one write call)
    std::uint64_t syncs = 0;      ///< fdatasyncs of the data file
    std::uint64_t max_batch = 0;  ///< most writers served by one write
    std::uint64_t bytes_written = 0;
    std::uint64_t end_of_data = 0;
    std::uint64_t objects = 0;
    std::uint64_t prepared = 0;  ///< currently prepared
    bool failed = false;         ///< fail-stop after an I/O failure
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit FileStorage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xact::objectstore
