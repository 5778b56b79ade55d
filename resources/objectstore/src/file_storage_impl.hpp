// FileStorage's private state, shared by file_storage.cpp and the files of its phases
// (file_storage_open, _commit, _read, _maintenance and _pack.cpp). The concurrency design is
// written down in doc/file_storage.md ("Concurrency").
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <xact/io/env.hpp>
#include <xact/io/group_commit.hpp>
#include <xact/io/record.hpp>
#include <xact/objectstore/file_storage.hpp>

#include "file_storage_format.hpp"

namespace xact::objectstore {

struct FileStorage::Impl {
  /// Where the current revision of an object is.
  struct IndexEntry {
    std::uint64_t offset = 0;  ///< of its entry (header + data) in the file
    std::uint32_t length = 0;  ///< of its data
    Tid serial = kNoTid;
  };
  using Index = std::unordered_map<Oid, IndexEntry>;

  /// A write of a prepared (or in-flight one-phase) transaction, by file position.
  struct PendingWrite {
    Oid oid = 0;
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
  };

  struct Prepared {
    Xid xid;
    std::uint64_t record_offset = 0;
    std::vector<Oid> locked;  ///< writes and read checks
    std::vector<PendingWrite> writes;
    bool durable = false;    ///< its record was written (and synced); false while in the queue
    bool deciding = false;   ///< a commit or abort mark is in the queue
    bool recovered = false;  ///< found by open(), not prepared by this process
  };

  // One record in the group-commit queue (io::GroupCommitQueue).
  struct Writer : io::GroupCommitWriter {
    enum class Kind { prepare, one_phase, finish, abort };
    Kind kind = Kind::one_phase;
    std::uint8_t type = 0;
    std::string payload;
    bool sync = false;
    std::uint64_t offset = 0;          ///< reserved under mu: records go to the file in queue order
    Tid tid = kNoTid;                  ///< one_phase, finish
    PreparedId id = 0;                 ///< prepare, finish, abort
    std::vector<PendingWrite> writes;  ///< one_phase
    std::vector<Oid> locked;           ///< one_phase: released when published or failed

    std::uint64_t end() const { return offset + io::kRecordOverhead + payload.size(); }
  };
  using WriterPtr = std::shared_ptr<Writer>;

  // What the writer at the front of the queue does with a batch (file_storage.cpp).
  struct Leader final : io::GroupCommitQueue<Writer>::Handler {
    explicit Leader(Impl& s) : impl(s) {}
    std::size_t select(Batch queued) override;
    void write(Batch batch) override;
    void complete(Batch batch) override;
    void abandon(Batch writers) override;
    std::exception_ptr failure_error(std::exception_ptr cause) override;
    Impl& impl;
    // The batch being written, from select() to complete() (only the leader touches them).
    bool need_sync = false;
    std::uint64_t start = 0;
    std::uint64_t end = 0;
  };

  Impl(io::Env& e, std::string p, FileStorageOptions o) : env(e), path(std::move(p)), options(o) {}

  // --- open (file_storage.cpp) ---
  void open();
  void repair_pack_leftovers();
  void create_file();
  bool load_index(std::uint64_t* scan_from);
  void refuse_missing_file();
  void scan(std::uint64_t from);
  void apply_record(const io::Record& record);
  void cut_tail(std::uint64_t cut_at);
  /// open(): damage (or a cut-off end) at `offset` that the evidence says was durable:
  /// throws StorageError naming the file, the offset, what proves it and the way out.
  [[noreturn]] void refuse_damage(std::uint64_t offset, const std::string& what_is_wrong,
                                  const std::string& evidence) const;
  /// The highest durable end claimed by a valid record at or after `offset` (0: none), from
  /// one pass over the rest of the file made at the first damage (so open stays linear).
  struct Claims {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> suffix_max;  ///< (offset, max claim)
    bool gave_up = false;  ///< the pass could not tell what follows (see ScanReport)
  };
  std::uint64_t claimed_after(std::uint64_t offset);

  // --- committing ---
  void check_usable_locked() const;
  void check_writable() const;
  void check_request(const CommitRequest& request, bool one_phase) const;
  void check_conflicts_locked(const CommitRequest& request) const;
  /// The part of prepare and one-phase commit before they differ: checks the request, encodes
  /// it into `w`, takes `lock` once commits are not paused, checks for conflicts. Returns where
  /// each write's entry is in the payload.
  std::vector<std::size_t> begin_write(const CommitRequest& request, Writer& w,
                                       std::unique_lock<std::mutex>& lock);
  /// With mu held: true when an oid of `request` is locked by a one-phase commit that is
  /// being written (not by a prepared transaction).
  bool held_by_one_phase_locked(const CommitRequest& request) const;
  /// With mu held and `w`'s offset assigned: gives each write's entry its back pointer to the
  /// revision it replaces, records where its data lands, and keeps next_oid above its oid.
  void place_writes_locked(const CommitRequest& request, Writer& w,
                           const std::vector<std::size_t>& entry_at,
                           std::vector<PendingWrite>& out);
  void submit(std::unique_lock<std::mutex>& lock, const WriterPtr& w);
  void publish_locked(Writer& w);
  void fail_locked(Writer& w);
  Tid decide(PreparedId id, bool commit, bool sync);
  /// Recovery's commit_prepared / rollback_prepared: a durable mark for the prepared `xid`.
  RecoverableResource::Outcome decide_by_xid(const Xid& xid, bool commit);
  std::optional<PreparedId> find_prepared_locked(const Xid& xid) const;

  // --- maintenance ---
  /// Waits until no write is queued or running and stops new ones; resume() lets them go.
  void pause_locked(std::unique_lock<std::mutex>& lock);
  void resume_locked();
  struct IndexSnapshot {
    fs::IndexHeader header;
    std::vector<std::pair<Oid, IndexEntry>> entries;
  };
  IndexSnapshot snapshot_index_locked();
  /// The backups' copy: the first `end` bytes of `file` to dest_path (temporary, synced,
  /// renamed), padded to a whole `grow` chunk. No lock needed (those bytes never change).
  void copy_prefix(const io::RandomAccessFile& file, std::uint64_t end, std::uint64_t grow,
                   const std::string& dest_path) const;
  void write_index(const IndexSnapshot& snapshot);

  // --- reading ---
  /// Reads the data of the entry at `offset` (verified when options.verify_loads).
  std::string read_data(const io::RandomAccessFile& file, Oid oid, const IndexEntry& e) const;
  /// Reads an entry's header: its back pointer and length.
  struct EntryHeader {
    Tid prev_serial = kNoTid;
    std::uint64_t prev_offset = 0;
    std::uint32_t length = 0;
  };
  EntryHeader read_entry_header(const io::RandomAccessFile& file, Oid oid,
                                std::uint64_t offset) const;
  std::optional<IndexEntry> find_revision(const io::RandomAccessFile& file, Oid oid, IndexEntry e,
                                          Tid at, bool exact) const;

  std::string what() const { return "file storage " + path; }

  io::Env& env;
  const std::string path;
  const FileStorageOptions options;
  std::unique_ptr<io::FileLock> file_lock;
  FileStorageOpenReport report;
  fs::FileHeader header;
  // open() only: what proves bytes durable (the header's and the index's durable ends), and
  // where each prepared record found by the scan is (marks name it by offset).
  std::uint64_t evidence_end = 0;
  std::string evidence;
  std::optional<Claims> claims;
  std::unordered_map<std::uint64_t, PreparedId> prepared_at;
  std::atomic<bool> closed{false};

  // Readers of the data file: the current one, and those retired by pack (kept until
  // destruction, so a load that took a pointer under index_mu may finish reading after a
  // pack swapped files).
  std::vector<std::unique_ptr<io::RandomAccessFile>> readers;  // guarded by index_mu

  // What loads see, published in tid order by the leader (with mu held too).
  mutable std::shared_mutex index_mu;
  Index index;                             // guarded by index_mu (written with mu held too)
  io::RandomAccessFile* reader = nullptr;  // guarded by index_mu
  Tid last_tid = kNoTid;                   // guarded by index_mu
  std::uint64_t published_end = 0;         // guarded by index_mu: every record before is complete

  // The commit order.
  mutable std::mutex mu;
  // Guarded by mu; the writer at its front does the I/O.
  Leader leader{*this};
  io::GroupCommitQueue<Writer> queue{mu, leader};
  std::unordered_map<Oid, PreparedId> locks;  // guarded by mu
  std::map<PreparedId, Prepared> prepared;    // guarded by mu
  PreparedId next_prepared = 1;               // guarded by mu
  Tid last_assigned = kNoTid;                 // guarded by mu
  std::uint64_t next_offset = 0;              // guarded by mu: where the next queued record goes
  std::string failure;                        // guarded by mu; set once
  bool paused = false;                        // guarded by mu
  std::condition_variable paused_cv;          // submitters wait here while paused
  std::condition_variable released_cv;        // a one-phase commit's locks were released
  InvalidationListener listener;              // guarded by mu
  std::atomic<Oid> next_oid{1};
  std::mutex maintenance_mu;  // one pack / save_index / backup at a time
  Stats stats;                // guarded by mu

  // The writable file: used only by the group-commit leader (mu released during its I/O), or
  // by whoever paused the queue. Handing the lead from one writer to the next goes through mu,
  // which orders their I/O.
  std::unique_ptr<io::WritableFile> writer;
  std::uint64_t capacity = 0;  ///< the file's size, preallocated zeros included
  /// Every byte before it is fsynced: the claim written into each record of the next batch
  /// (owned like `writer`).
  std::uint64_t durable_end = 0;
};

/// A megabyte of zeros.
const std::string& zeros();
/// Where the last non-zero byte of [from, size) ends (from when all of it is zero).
std::uint64_t end_of_nonzero(const io::RandomAccessFile& file, std::uint64_t from,
                             std::uint64_t size);
/// Writes zeros over [from, to).
void write_zeros(io::WritableFile& file, std::uint64_t from, std::uint64_t to);
/// The size a file of `end` bytes of data grows to with preallocation chunks of `chunk`.
inline std::uint64_t round_up(std::uint64_t end, std::uint64_t chunk) {
  return chunk == 0 ? end : (end + chunk - 1) / chunk * chunk;
}

}  // namespace xact::objectstore
