// FileStorage, the commit path: request checks and conflicts, the group-commit queue's leader
// (one write and one fsync per batch), prepare, finish, abort, one-phase commits, new oids, and
// recovery's decisions on prepared transactions. Concurrency: doc/file_storage.md.
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

// The most bytes one leader writes at once; more queued writers wait for the next batch.
constexpr std::size_t kMaxBatchBytes = 8u << 20;
// How long a committer waits for a one-phase commit that holds one of its oids (one write and
// one fsync: a few milliseconds on a disk) before it reports the conflict.
constexpr std::chrono::milliseconds kOnePhaseWait{5};

}  // namespace

// ---------------------------------------------------------------------------------------------
// committing

void FileStorage::Impl::check_usable_locked() const {
  if (closed) throw UsageError(what() + " is closed: open it again to use it");
  if (!failure.empty()) throw StorageError(failure);
}

void FileStorage::Impl::check_writable() const {
  if (closed) throw UsageError(what() + " is closed: open it again to use it");
  if (options.read_only) {
    throw UsageError(what() + " is open read-only: open it read-write to commit");
  }
}

void FileStorage::Impl::check_request(const CommitRequest& request, bool one_phase) const {
  std::unordered_set<Oid> seen;
  seen.reserve(request.writes.size());
  for (const auto& w : request.writes) {
    if (!seen.insert(w.oid).second) {
      throw UsageError("a commit request writes object " + oid_repr(w.oid) +
                       " twice: write each object once per transaction");
    }
  }
  if (one_phase && !request.xid.gtrid.empty()) {
    // Allowed: the xid is recorded for tools, but never used by recovery.
  }
}

bool FileStorage::Impl::held_by_one_phase_locked(const CommitRequest& request) const {
  auto one_phase = [&](Oid oid) {
    auto it = locks.find(oid);
    return it != locks.end() && !prepared.contains(it->second);
  };
  for (const auto& w : request.writes) {
    if (one_phase(w.oid)) return true;
  }
  for (const auto& r : request.read_checks) {
    if (one_phase(r.oid)) return true;
  }
  return false;
}

void FileStorage::Impl::check_conflicts_locked(const CommitRequest& request) const {
  detail::check_conflicts(
      request,
      [&](Oid oid) {
        auto lock = locks.find(oid);
        if (lock == locks.end()) return detail::LockHolder{};
        // Held by a prepared transaction that this process did not prepare: no retry helps,
        // only recovery (which asks the coordinator's log for the outcome) releases it.
        auto p = prepared.find(lock->second);
        return detail::LockHolder{
            true, p != prepared.end() && p->second.recovered ? &p->second.xid : nullptr};
      },
      [&](Oid oid) {
        auto it = index.find(oid);
        return it == index.end() ? kNoTid : it->second.serial;
      },
      [&](Oid oid) {
        auto it = index.find(oid);
        if (it == index.end()) return std::string();
        try {
          return record_type_name(read_data(*reader, oid, it->second));
        } catch (const std::exception&) {
          return std::string();  // only for the message
        }
      },
      path);
}

// Queues `w` (already given its offset under `lock`) and returns once it is written (and
// synced when asked). The caller holds `lock`; it is released here.
void FileStorage::Impl::submit(std::unique_lock<std::mutex>& lock, const WriterPtr& w) {
  queue.submit(lock, w);
}

// The writer at the front of the queue takes the queued records that fit in one batch (they
// were given consecutive offsets in queue order); the queue then calls write() with mu released
// (one write and at most one sync), complete() with mu held to publish them in order, and
// hands the front on.
std::size_t FileStorage::Impl::Leader::select(Batch queued) {
  std::size_t n = 0;
  need_sync = false;
  start = queued.front().offset;
  for (const Writer& w : queued) {
    if (n > 0 && w.end() - start > kMaxBatchBytes) break;
    ++n;
    need_sync = need_sync || w.sync;
    end = w.end();
  }
  return n;
}

void FileStorage::Impl::Leader::write(Batch batch) {
  Impl& s = impl;
  std::string buffer;
  buffer.reserve(end - start);
  for (Writer& w : batch) {
    // The evidence open() uses to tell damage from a torn write: what was durable before
    // this batch. Damage below it cannot be this batch's pages reaching the disk out of
    // order.
    fs::patch_durable_end(w.payload, s.durable_end);
    io::encode_record(buffer, w.type, w.payload);
  }
  if (end > s.capacity) {
    // The file's own chunk (from its header), not the option: its size is evidence.
    const std::uint64_t new_capacity = round_up(end, s.header.chunk);
    // Zeros first, then the batch over them: the file size changes here, once per chunk.
    if (new_capacity > end) write_zeros(*s.writer, std::max(s.capacity, end), new_capacity);
    s.capacity = new_capacity;
  }
  s.writer->write_at(start, buffer);
  // Written, not yet durable: a kill here may keep any prefix of the batch.
  XACT_CRASH_POINT("file_storage.after_write");
  if (need_sync && s.options.sync == SyncMode::full) {
    s.writer->sync();
    s.durable_end = end;
  }
  // Durable, not yet visible, and nobody told.
  XACT_CRASH_POINT("file_storage.after_sync");
}

void FileStorage::Impl::Leader::complete(Batch batch) {
  Impl& s = impl;
  ++s.stats.writes;
  if (need_sync && s.options.sync == SyncMode::full) ++s.stats.syncs;
  s.stats.bytes_written += end - start;
  s.stats.max_batch = std::max<std::uint64_t>(s.stats.max_batch, batch.size());
  {
    std::unique_lock il(s.index_mu);
    for (Writer& w : batch) s.publish_locked(w);
    s.published_end = end;
  }
  // Outside index_mu: the listener may be slow, and loads should not wait for it.
  if (s.listener) {
    for (Writer& w : batch) {
      if (w.kind != Writer::Kind::one_phase && w.kind != Writer::Kind::finish) continue;
      std::vector<Oid> oids;
      if (w.kind == Writer::Kind::one_phase) {
        for (const auto& pw : w.writes) oids.push_back(pw.oid);
      } else {
        oids = std::move(w.locked);
      }
      try {
        s.listener(w.tid, oids);
      } catch (...) {
        log(LogLevel::error, s.what() + ": the invalidation listener threw; ignored");
      }
    }
  }
  // One-phase commits of this batch released their locks: committers waiting for them look
  // again.
  s.released_cv.notify_all();
}

void FileStorage::Impl::Leader::abandon(Batch writers) {
  for (Writer& w : writers) impl.fail_locked(w);
  impl.released_cv.notify_all();
}

std::exception_ptr FileStorage::Impl::Leader::failure_error(std::exception_ptr cause) {
  Impl& s = impl;
  if (s.failure.empty()) {
    s.failure = s.what() + " stopped after an I/O failure: " + error_message(cause) +
                ". What was written at that moment may or may not be durable, so the storage "
                "refuses every further write (fail-stop); prepared transactions are in doubt. "
                "Open the storage again (restart the process): open finds what is durable and "
                "recovery decides the prepared transactions";
    s.stats.failed = true;
  }
  return std::make_exception_ptr(StorageError(s.failure));
}

// mu and index_mu held: the record is written; make its effect visible.
void FileStorage::Impl::publish_locked(Writer& w) {
  auto apply = [&](const std::vector<PendingWrite>& writes, Tid tid) {
    for (const auto& pw : writes) index[pw.oid] = IndexEntry{pw.offset, pw.length, tid};
    last_tid = tid;
    ++stats.commits;
  };
  switch (w.kind) {
    case Writer::Kind::prepare: {
      auto it = prepared.find(w.id);
      if (it != prepared.end()) it->second.durable = true;
      ++stats.prepares;
      break;
    }
    case Writer::Kind::one_phase:
      apply(w.writes, w.tid);
      for (Oid oid : w.locked) locks.erase(oid);
      break;
    case Writer::Kind::finish: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      apply(it->second.writes, w.tid);
      for (Oid oid : it->second.locked) locks.erase(oid);
      // Handed to the listener: the written oids.
      w.locked.clear();
      for (const auto& pw : it->second.writes) w.locked.push_back(pw.oid);
      prepared.erase(it);
      break;
    }
    case Writer::Kind::abort: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      ++stats.aborts;
      break;
    }
  }
}

// mu held: the record was not written (fail-stop); undo what queueing it did.
void FileStorage::Impl::fail_locked(Writer& w) {
  switch (w.kind) {
    case Writer::Kind::prepare: {
      auto it = prepared.find(w.id);
      if (it == prepared.end()) break;
      for (Oid oid : it->second.locked) locks.erase(oid);
      prepared.erase(it);
      break;
    }
    case Writer::Kind::one_phase:
      for (Oid oid : w.locked) locks.erase(oid);
      break;
    case Writer::Kind::finish:
    case Writer::Kind::abort: {
      // Stays prepared: recovery decides it after the next open.
      auto it = prepared.find(w.id);
      if (it != prepared.end()) it->second.deciding = false;
      break;
    }
  }
}

Tid FileStorage::Impl::decide(PreparedId id, bool commit, bool sync) {
  auto w = std::make_shared<Writer>();
  std::unique_lock l(mu);
  paused_cv.wait(l, [&] { return !paused || closed; });
  check_usable_locked();
  auto it = prepared.find(id);
  if (it == prepared.end() || !it->second.durable || it->second.deciding) {
    throw UsageError(what() + ": " + (commit ? "finish" : "abort") + " of transaction " +
                     std::to_string(id) +
                     ", which is not prepared here (never prepared, already decided, or being "
                     "decided by another call)");
  }
  Prepared& p = it->second;
  p.deciding = true;
  w->kind = commit ? Writer::Kind::finish : Writer::Kind::abort;
  w->id = id;
  w->sync = sync;
  if (commit) {
    w->tid = next_tid(last_assigned, env.now_micros());
    last_assigned = w->tid;
    w->type = fs::kCommitMark;
    w->payload = fs::encode_commit_mark(p.record_offset, w->tid);
  } else {
    w->type = fs::kAbortMark;
    w->payload = fs::encode_abort_mark(p.record_offset);
  }
  w->offset = next_offset;
  next_offset = w->end();
  submit(l, w);
  return w->tid;
}

std::optional<Storage::PreparedId> FileStorage::Impl::find_prepared_locked(const Xid& xid) const {
  for (const auto& [id, p] : prepared) {
    if (p.durable && !p.deciding && p.xid == xid) return id;
  }
  return std::nullopt;
}

Oid FileStorage::new_oid() {
  if (impl_->closed) throw UsageError(impl_->what() + " is closed: open it again to use it");
  return impl_->next_oid.fetch_add(1);
}

std::vector<std::size_t> FileStorage::Impl::begin_write(const CommitRequest& request, Writer& w,
                                                        std::unique_lock<std::mutex>& lock) {
  const bool one_phase = w.kind == Writer::Kind::one_phase;
  check_writable();
  check_request(request, one_phase);
  w.type = one_phase ? fs::kCommittedRecord : fs::kPreparedRecord;
  w.sync = true;
  auto encoded = fs::encode_transaction(request, next_oid);
  w.payload = std::move(encoded.payload);

  lock = std::unique_lock(mu);
  // A one-phase commit being written holds its oids for one write and one fsync: worth
  // waiting a few milliseconds for rather than failing, as most conflicts under concurrent
  // one-phase commits were only that. A transaction prepared in a two-phase commit may wait
  // for its coordinator indefinitely, so a lock held by one still fails at once.
  const auto deadline = std::chrono::steady_clock::now() + kOnePhaseWait;
  for (;;) {
    paused_cv.wait(lock, [&] { return !paused || closed; });
    check_usable_locked();
    if (!held_by_one_phase_locked(request)) break;
    if (released_cv.wait_until(lock, deadline) == std::cv_status::timeout) {
      paused_cv.wait(lock, [&] { return !paused || closed; });
      check_usable_locked();
      break;
    }
  }
  try {
    check_conflicts_locked(request);
  } catch (const ConflictError&) {
    ++stats.conflicts;
    throw;
  }
  return std::move(encoded.entry_at);
}

void FileStorage::Impl::place_writes_locked(const CommitRequest& request, Writer& w,
                                            const std::vector<std::size_t>& entry_at,
                                            std::vector<PendingWrite>& out) {
  for (std::size_t i = 0; i < request.writes.size(); ++i) {
    const auto& rw = request.writes[i];
    auto it = index.find(rw.oid);
    if (it != index.end()) {
      fs::patch_entry(w.payload, entry_at[i], it->second.serial, it->second.offset);
    }
    out.push_back({rw.oid, w.offset + io::kRecordHeaderSize + entry_at[i],
                   static_cast<std::uint32_t>(rw.data.size())});
    Oid want = rw.oid + 1;
    Oid have = next_oid.load();
    while (have < want && !next_oid.compare_exchange_weak(have, want)) {
    }
  }
}

Storage::PreparedId FileStorage::prepare(CommitRequest request) {
  auto w = std::make_shared<Impl::Writer>();
  w->kind = Impl::Writer::Kind::prepare;
  std::unique_lock<std::mutex> l;
  const auto entry_at = impl_->begin_write(request, *w, l);
  const PreparedId id = impl_->next_prepared++;
  w->id = id;
  w->offset = impl_->next_offset;
  impl_->next_offset = w->end();
  Impl::Prepared p;
  p.xid = request.xid;
  p.record_offset = w->offset;
  impl_->place_writes_locked(request, *w, entry_at, p.writes);
  detail::take_locks(request, impl_->locks, id, &p.locked);
  impl_->prepared.emplace(id, std::move(p));
  impl_->submit(l, w);
  return id;
}

Tid FileStorage::finish(PreparedId id, bool durable) {
  impl_->check_writable();
  return impl_->decide(id, true, durable);
}

void FileStorage::abort(PreparedId id) noexcept {
  try {
    {
      std::lock_guard l(impl_->mu);
      auto it = impl_->prepared.find(id);
      if (it == impl_->prepared.end() || !it->second.durable || it->second.deciding) return;
      if (impl_->closed || !impl_->failure.empty()) {
        // Nothing can be written: release it here; the file still holds it prepared, and
        // recovery rolls it back after the next open (presumed abort).
        for (Oid oid : it->second.locked) impl_->locks.erase(oid);
        impl_->prepared.erase(it);
        return;
      }
    }
    // Not synced: a crash before a later sync leaves it prepared, and recovery rolls it back.
    impl_->decide(id, false, false);
  } catch (const std::exception& e) {
    log(LogLevel::warning, impl_->what() + ": abort of prepared transaction " + std::to_string(id) +
                               " could not write its mark (" + e.what() +
                               "); recovery rolls it back after the next open");
  }
}

Tid FileStorage::commit_one_phase(CommitRequest request) {
  auto w = std::make_shared<Impl::Writer>();
  w->kind = Impl::Writer::Kind::one_phase;
  std::unique_lock<std::mutex> l;
  const auto entry_at = impl_->begin_write(request, *w, l);
  w->tid = next_tid(impl_->last_assigned, impl_->env.now_micros());
  impl_->last_assigned = w->tid;
  fs::patch_tid(w->payload, w->tid);
  w->offset = impl_->next_offset;
  impl_->next_offset = w->end();
  const PreparedId lock_id = impl_->next_prepared++;
  impl_->place_writes_locked(request, *w, entry_at, w->writes);
  // Locked until the record is written and visible: a writer building on the revision it
  // replaces must fail at once, as against a prepared transaction.
  detail::take_locks(request, impl_->locks, lock_id, &w->locked);
  impl_->submit(l, w);
  return w->tid;
}

std::vector<Xid> FileStorage::recover(const NodeId& node) {
  std::lock_guard l(impl_->mu);
  impl_->check_usable_locked();
  std::vector<Xid> out;
  for (const auto& [id, p] : impl_->prepared) {
    if (p.durable && !p.deciding && !p.xid.gtrid.empty() && p.xid.gtrid.node() == node) {
      out.push_back(p.xid);
    }
  }
  return out;
}

std::vector<Xid> FileStorage::recover_all_nodes() {
  std::lock_guard l(impl_->mu);
  impl_->check_usable_locked();
  std::vector<Xid> out;
  for (const auto& [id, p] : impl_->prepared) {
    if (p.durable && !p.deciding && !p.xid.gtrid.empty()) out.push_back(p.xid);
  }
  return out;
}

RecoverableResource::Outcome FileStorage::Impl::decide_by_xid(const Xid& xid, bool commit) {
  check_writable();
  std::optional<PreparedId> id;
  {
    std::lock_guard l(mu);
    check_usable_locked();
    id = find_prepared_locked(xid);
  }
  if (!id) return Outcome::unknown_id;
  decide(*id, commit, true);
  return Outcome::done;
}

RecoverableResource::Outcome FileStorage::commit_prepared(const Xid& xid) {
  return impl_->decide_by_xid(xid, true);
}

RecoverableResource::Outcome FileStorage::rollback_prepared(const Xid& xid) {
  return impl_->decide_by_xid(xid, false);
}

}  // namespace xact::objectstore
