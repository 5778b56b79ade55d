// FileStorage (issue 6) against the cheapest equivalent work done without it, measured in this
// binary, in this run, on the same file system.
//
// Commit throughput, one small object changed per transaction, N concurrent committers (N = 1
// and 8, each with its own file / connection / row, so nothing conflicts):
//   BM_RawAppendFdatasync/threads:N    append a record of the size FileStorage writes per
//                                      commit to a growing file + fdatasync; each thread its own
//                                      file, no group commit (`vs_append` = 1)
//   BM_RawPreallocFdatasync/threads:N  the same over a zero-filled, synced 16 MiB file (what
//                                      FileStorage's preallocation makes a write cost)
//   BM_SqliteUpdate/threads:N          SQLite, WAL, synchronous=FULL: UPDATE one row by key in
//                                      autocommit (one transaction per iteration); each thread
//                                      its own connection and row, busy_timeout 10 s
//   BM_FileStorageCommit/threads:N     the full stack: ExplicitTransactionManager + DB +
//                                      Connection + FileStorage (SyncMode::full), one-phase
//                                      commit; each thread its own connection and object
//   BM_ContendedOnePhase/threads:8     8 threads commit transactions changing the same 3
//                                      objects (xact::run, default RetryPolicy); give_up_pct =
//                                      transactions that exhausted the retries, per 100
//                                      (give_up_locked_pct: those on a lock, not a serial)
//   BM_Interleaved_Commit              the same 8 workloads (4 kinds x 1 and 8 threads),
//                                      interleaved over XACT_BENCH_ROUNDS rounds (default 8):
//                                      one thread's kinds commit by turns, 8 threads get 0.2 s
//                                      slices. Every ratio from rates measured under the same
//                                      disk conditions: the figures to quote.
// Loads from a file of XACT_BENCH_OBJECTS objects (default 1,000,000), built once per run with
// SyncMode::none in transactions of 10,000 objects, random oids; "cold" = in no object cache
// (FileStorage has none; the connection's is emptied), while the OS page cache is warm (the
// file was just written):
//   BM_Baseline_Pread      pread() of an entry's size at a random offset of the same file
//   BM_Baseline_Mmap       memcpy() of the same from the file mapped into memory
//   BM_ColdLoad_Storage    FileStorage::load(oid)
//   BM_ColdLoad_StorageNoVerify  the same from a read-only open with verify_loads off (what the
//                          per-load CRC-32C costs)
//   BM_ColdLoad_Connection Connection::get<Item>(oid)->value(), 1000 per batch,
//                          cache_minimize() (untimed) between batches
// Open time of that file (read-write, SyncMode::full), timed around FileStorage::open only:
//   BM_Open/use_index:1    with FILE.index (scans only the tail after it)
//   BM_Open/use_index:0    full scan
// Commit cost against the size of the file:
//   BM_CommitCost          one full-stack commit (single writer, SyncMode::full) to a
//                          1,000-object file and one to the big file per iteration, in
//                          alternating order, each timed (`ratio` = big / small)
//
// Counters: commits/s, loads/s (rates over real time, summed over threads); ratios added at
// the end of a run by the reporter at the bottom of this file: vs_append, vs_prealloc,
// vs_sqlite (same thread count), vs_1 (the one-thread run of the same benchmark), vs_zodb
// (÷ 3,056 commits/s: ZODB FileStorage, quoted from the issue, not run), vs_pread, vs_mmap,
// vs_storage, vs_aim (loads/s ÷ 2M).
//
// Files go to a directory of its own (bench_dir.hpp) under $XACT_BENCH_DIR, or next to this
// executable (the build tree), and are removed at the end (kept with XACT_BENCH_KEEP=1): never a
// tmpfs, where fdatasync costs nothing. XACT_BENCH_SPIN=1 keeps one CPU busy during the run (see
// main()).
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <xact/manager.hpp>
#include <xact/objectstore/codec.hpp>
#include <xact/objectstore/db.hpp>
#include <xact/objectstore/file_storage.hpp>
#include <xact/retry.hpp>

#include "bench_dir.hpp"
#include "ratio_reporting.hpp"

namespace {

namespace stdfs = std::filesystem;
using namespace xact::objectstore;
using Clock = std::chrono::steady_clock;

// Quoted from the issue (CPython ZODB on this kind of machine), not measured here.
constexpr double kZodbFileStorageCommitsPerSecond = 3056;
constexpr double kLoadAim = 2e6;
constexpr std::uint64_t kPreallocBytes = 16u << 20;  // FileStorageOptions' default
constexpr std::uint64_t kSmallObjects = 1000;
constexpr std::size_t kBuildBatch = 10000;
constexpr int kConnectionBatch = 1000;

class Item : public Persistent {
 public:
  std::int64_t value() const {
    read_access();
    return value_;
  }
  void bump() {
    write_access();
    ++value_;
  }
  void set_value(std::int64_t v) { value_ = v; }
  void save(StateWriter& out) const override {
    out.write(value_);
    out.write(name_);
  }
  void load(StateReader& in, std::uint32_t) override {
    in.read(value_);
    in.read(name_);
  }

 private:
  std::int64_t value_ = 1;
  std::string name_ = "an item of a benchmark";
};
XACT_PERSISTENT_TYPE(Item, "bench.Item");

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- where the files go ----------------------------------------------------------------------

// The type of the file system holding `path`, from the longest matching mount point.
std::string fs_type_of(const stdfs::path& path) {
  const std::string p = stdfs::canonical(path).string();
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  std::string best_mount;
  std::string best_type = "unknown";
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string device, mount, type;
    if (!(in >> device >> mount >> type)) continue;
    const bool under = p == mount || mount == "/" ||
                       (p.starts_with(mount) && p.size() > mount.size() && p[mount.size()] == '/');
    if (under && mount.size() >= best_mount.size()) {
      best_mount = mount;
      best_type = type + " (" + device + " on " + mount + ")";
    }
  }
  return best_type;
}

xact::bench::BenchDir& own_dir() {
  static xact::bench::BenchDir d("file-storage-bench");
  return d;
}

const std::string& bench_dir() {
  static const std::string dir = [] {
    const stdfs::path base = own_dir().path();
    struct statfs st {};
    if (::statfs(base.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC) {
      throw std::runtime_error(base.string() +
                               " is on tmpfs, where fdatasync is free: set XACT_BENCH_DIR to a "
                               "directory on a real disk");
    }
    benchmark::AddCustomContext("bench_dir", base.string());
    benchmark::AddCustomContext("bench_fs", fs_type_of(base));
    return base.string();
  }();
  return dir;
}

// A fresh, empty directory under bench_dir().
std::string fresh_dir(const std::string& name) {
  const stdfs::path d = stdfs::path(bench_dir()) / name;
  stdfs::remove_all(d);
  stdfs::create_directories(d);
  return d.string();
}

std::uint64_t objects_in_big_file() {
  static const std::uint64_t n = [] {
    std::uint64_t v = 1000000;
    if (const char* env = std::getenv("XACT_BENCH_OBJECTS"); env != nullptr && *env != '\0') {
      v = std::stoull(env);
    }
    if (v < kSmallObjects) throw std::runtime_error("XACT_BENCH_OBJECTS must be >= 1000");
    return v;
  }();
  return n;
}

std::shared_ptr<FileStorage> open_storage(const std::string& path, SyncMode sync,
                                          bool use_index = true) {
  FileStorageOptions o;
  o.sync = sync;
  o.use_index = use_index;
  return std::shared_ptr<FileStorage>(FileStorage::open(path, o));
}

// The bytes FileStorage appends per one-object commit of an Item through the full stack
// (record framing included): the size of the raw baselines' records.
std::size_t commit_record_bytes() {
  static const std::size_t bytes = [] {
    const std::string dir = fresh_dir("record-size");
    std::size_t per_commit = 0;
    {
      auto storage = open_storage(dir + "/data.xfs", SyncMode::none);
      auto db = DB::open(storage);
      xact::ExplicitTransactionManager tm;
      auto conn = db->open({.manager = &tm});
      tm.begin();
      auto item = std::make_shared<Item>();
      conn->add(item);
      tm.commit();
      const auto before = storage->stats();
      constexpr int kCommits = 100;
      for (int i = 0; i < kCommits; ++i) {
        tm.begin();
        item->bump();
        tm.commit();
      }
      per_commit = (storage->stats().bytes_written - before.bytes_written) / kCommits;
    }
    stdfs::remove_all(dir);
    return per_commit;
  }();
  return bytes;
}

// Something built by the first thread of a multi-threaded benchmark run that gets there, and
// shared by all of that run's threads. Every thread takes it before the timed loop (whose
// start is a barrier), and thread 0 drops the shared reference after the loop, so the next run
// builds a fresh one; the last thread to let go destroys it.
template <class T>
class PerRun {
 public:
  std::shared_ptr<T> acquire(const std::function<std::shared_ptr<T>()>& make) {
    std::lock_guard l(m_);
    if (!p_) p_ = make();
    return p_;
  }
  void drop() {
    std::lock_guard l(m_);
    p_.reset();
  }

 private:
  std::mutex m_;
  std::shared_ptr<T> p_;
};

void set_commit_rate(benchmark::State& state) {
  state.counters["commits/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---- commit throughput: raw baselines ---------------------------------------------------------

void raw_loop(benchmark::State& state, bool preallocated) {
  const std::string path = bench_dir() + "/raw-" + (preallocated ? "prealloc-" : "append-") +
                           std::to_string(state.thread_index()) + ".dat";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    state.SkipWithError("cannot create the raw file");
    return;
  }
  if (preallocated) {
    const std::string zeros(1u << 20, '\0');
    for (std::uint64_t at = 0; at < kPreallocBytes; at += zeros.size()) {
      if (::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(at)) !=
          static_cast<ssize_t>(zeros.size())) {
        state.SkipWithError("pwrite failed");
      }
    }
    ::fsync(fd);
  }
  const std::string record(commit_record_bytes(), 'r');
  std::uint64_t offset = 0;
  for (auto _ : state) {
    if (::pwrite(fd, record.data(), record.size(), static_cast<off_t>(offset)) !=
        static_cast<ssize_t>(record.size())) {
      state.SkipWithError("pwrite failed");
      break;
    }
    offset += record.size();
    if (preallocated && offset + record.size() > kPreallocBytes) offset = 0;
    if (::fdatasync(fd) != 0) {
      state.SkipWithError("fdatasync failed");
      break;
    }
  }
  set_commit_rate(state);
  ::close(fd);
  ::unlink(path.c_str());
}

void BM_RawAppendFdatasync(benchmark::State& state) { raw_loop(state, false); }
void BM_RawPreallocFdatasync(benchmark::State& state) { raw_loop(state, true); }

// ---- commit throughput: SQLite ---------------------------------------------------------------

void sqlite_exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = std::string(sql) + ": " + (error ? error : "?");
    sqlite3_free(error);
    throw std::runtime_error(message);
  }
}

// One row per thread in a WAL database; removed when the last thread lets go.
struct SqliteFixture {
  explicit SqliteFixture(int rows) {
    dir = fresh_dir("sqlite");
    path = dir + "/bench.db";
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite3_open");
    sqlite_exec(db, "PRAGMA journal_mode=WAL");
    sqlite_exec(db, "PRAGMA synchronous=FULL");
    sqlite_exec(db,
                "CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL, name TEXT NOT NULL)");
    sqlite_exec(db, "BEGIN");
    for (int k = 0; k < rows; ++k) {
      const std::string sql =
          "INSERT INTO t VALUES (" + std::to_string(k) + ", 1, 'an item of a benchmark')";
      sqlite_exec(db, sql.c_str());
    }
    sqlite_exec(db, "COMMIT");
    sqlite3_close(db);
  }
  ~SqliteFixture() {
    std::error_code ignored;
    stdfs::remove_all(dir, ignored);
  }
  std::string dir;
  std::string path;
};
PerRun<SqliteFixture> g_sqlite;

void BM_SqliteUpdate(benchmark::State& state) {
  auto f = g_sqlite.acquire([&] { return std::make_shared<SqliteFixture>(state.threads()); });
  sqlite3* db = nullptr;
  sqlite3_stmt* update = nullptr;
  if (sqlite3_open_v2(f->path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    state.SkipWithError("sqlite3_open_v2 failed");
  } else {
    sqlite3_busy_timeout(db, 10000);  // first: even the PRAGMA may find the database locked
    try {
      sqlite_exec(db, "PRAGMA synchronous=FULL");  // per connection
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
    sqlite3_prepare_v2(db, "UPDATE t SET v = v + 1 WHERE k = ?1", -1, &update, nullptr);
    sqlite3_bind_int(update, 1, state.thread_index());
  }
  for (auto _ : state) {
    const int rc = sqlite3_step(update);
    sqlite3_reset(update);
    if (rc != SQLITE_DONE) {
      state.SkipWithError(sqlite3_errmsg(db));
      break;
    }
  }
  set_commit_rate(state);
  sqlite3_finalize(update);
  sqlite3_close(db);
  if (state.thread_index() == 0) g_sqlite.drop();
}

// ---- commit throughput: the full stack -------------------------------------------------------

// A fresh FileStorage (SyncMode::full) with one Item per thread.
struct CommitFixture {
  explicit CommitFixture(int items) {
    dir = fresh_dir("commit");
    storage = open_storage(dir + "/data.xfs", SyncMode::full);
    db = DB::open(storage);
    xact::ExplicitTransactionManager tm;
    auto conn = db->open({.manager = &tm});
    tm.begin();
    for (int i = 0; i < items; ++i) oids.push_back(conn->add(std::make_shared<Item>()));
    tm.commit();
  }
  ~CommitFixture() {
    db.reset();
    storage->close();
    storage.reset();
    std::error_code ignored;
    stdfs::remove_all(dir, ignored);
  }
  std::string dir;
  std::shared_ptr<FileStorage> storage;
  std::shared_ptr<DB> db;
  std::vector<Oid> oids;
};
PerRun<CommitFixture> g_commit;

void BM_FileStorageCommit(benchmark::State& state) {
  auto f = g_commit.acquire([&] { return std::make_shared<CommitFixture>(state.threads()); });
  xact::ExplicitTransactionManager tm;
  auto conn = f->db->open({.manager = &tm});
  auto item = conn->get<Item>(f->oids[static_cast<std::size_t>(state.thread_index())]);
  const FileStorage::Stats before = f->storage->stats();
  for (auto _ : state) {
    tm.begin();
    item->bump();
    tm.commit();
  }
  set_commit_rate(state);
  if (state.thread_index() == 0) {
    // Every thread's loop has ended (the end of the loop is a barrier).
    const FileStorage::Stats after = f->storage->stats();
    const auto syncs = after.syncs - before.syncs;
    if (syncs > 0) {
      state.counters["per_sync"] =
          static_cast<double>(after.commits - before.commits) / static_cast<double>(syncs);
    }
    state.counters["max_batch"] = static_cast<double>(after.max_batch);
  }
  item.reset();
  conn.close();
  if (state.thread_index() == 0) g_commit.drop();
}

// ---- one-phase commits contending for the same objects ----------------------------------------

// 8 threads each commit transactions that change the same 3 objects (one-phase, full stack,
// xact::run with 3 attempts: the default RetryPolicy when issue 14 measured it; today's
// default retries for 10 s and would hide the give-ups). `give_up_pct`: transactions that exhausted
// the retry policy with a conflict, per 100 attempted. A one-phase commit in flight holds its
// objects for one write and one fsync; FileStorage waits up to a few milliseconds for it instead of
// failing at once (issue 14: the give-up rate was 70% without the wait).
struct ContendedFixture : CommitFixture {
  ContendedFixture() : CommitFixture(3) {}
  std::atomic<std::uint64_t> attempted{0};
  std::atomic<std::uint64_t> gave_up{0};
  std::atomic<std::uint64_t> gave_up_locked{0};  ///< ... on "locked by another transaction"
};
PerRun<ContendedFixture> g_contended;
const xact::RetryPolicy kThreeAttempts{.deadline = {}, .attempts = 3};

void BM_ContendedOnePhase(benchmark::State& state) {
  auto f = g_contended.acquire([] { return std::make_shared<ContendedFixture>(); });
  xact::ExplicitTransactionManager tm;
  auto conn = f->db->open({.manager = &tm});
  for (auto _ : state) {
    ++f->attempted;
    try {
      xact::run(
          tm,
          [&] {
            for (Oid oid : f->oids) conn->get<Item>(oid)->bump();
          },
          kThreeAttempts);
    } catch (const xact::objectstore::ConflictError& e) {
      ++f->gave_up;
      if (e.locked()) ++f->gave_up_locked;
    } catch (const xact::ConflictError&) {
      ++f->gave_up;
    }
  }
  set_commit_rate(state);
  conn.close();
  if (state.thread_index() == 0) {
    state.counters["give_up_pct"] = 100.0 * static_cast<double>(f->gave_up.load()) /
                                    static_cast<double>(std::max<std::uint64_t>(1, f->attempted));
    state.counters["give_up_locked_pct"] =
        100.0 * static_cast<double>(f->gave_up_locked.load()) /
        static_cast<double>(std::max<std::uint64_t>(1, f->attempted));
    g_contended.drop();
  }
}

// ---- commit throughput, interleaved -----------------------------------------------------------

// The unpaired benchmarks above run one after the other, seconds apart, and this VM's
// fdatasync latency switches between ~0.1 ms and several ms from one second to the next: their
// ratios compare different disks. BM_Interleaved_Commit measures every workload (4 kinds x 1
// and 8 threads) round after round: one thread's four kinds take turns commit by commit (each
// commit timed), then each kind's 8 threads get a slice of kSliceSeconds, in an order rotated
// each round. Each ratio compares rates measured under the same conditions: the figures to
// quote.
constexpr double kSliceSeconds = 0.2;

int interleaved_rounds() {
  if (const char* env = std::getenv("XACT_BENCH_ROUNDS"); env != nullptr && *env != '\0') {
    return std::max(1, std::atoi(env));
  }
  return 8;
}

// One committer's resources and its commit; a kind has 8 lanes, a workload uses lanes
// [0, threads). A lane is used by one thread at a time.
class Lane {
 public:
  virtual ~Lane() = default;
  virtual void commit() = 0;
};

class RawLane final : public Lane {
 public:
  RawLane(const std::string& path, bool preallocated)
      : path_(path), preallocated_(preallocated), record_(commit_record_bytes(), 'r') {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("cannot create " + path);
    if (preallocated_) {
      const std::string zeros(1u << 20, '\0');
      for (std::uint64_t at = 0; at < kPreallocBytes; at += zeros.size()) {
        if (::pwrite(fd_, zeros.data(), zeros.size(), static_cast<off_t>(at)) < 0) {
          throw std::runtime_error("pwrite failed");
        }
      }
      ::fsync(fd_);
    }
  }
  ~RawLane() override {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  void commit() override {
    if (::pwrite(fd_, record_.data(), record_.size(), static_cast<off_t>(offset_)) !=
            static_cast<ssize_t>(record_.size()) ||
        ::fdatasync(fd_) != 0) {
      throw std::runtime_error("pwrite or fdatasync failed on " + path_);
    }
    offset_ += record_.size();
    if (preallocated_ && offset_ + record_.size() > kPreallocBytes) offset_ = 0;
  }

 private:
  std::string path_;
  bool preallocated_;
  std::string record_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
};

class SqliteLane final : public Lane {
 public:
  SqliteLane(const std::string& path, int row) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error("sqlite3_open_v2 " + path);
    }
    sqlite3_busy_timeout(db_, 10000);
    sqlite_exec(db_, "PRAGMA synchronous=FULL");
    sqlite3_prepare_v2(db_, "UPDATE t SET v = v + 1 WHERE k = ?1", -1, &update_, nullptr);
    sqlite3_bind_int(update_, 1, row);
  }
  ~SqliteLane() override {
    sqlite3_finalize(update_);
    sqlite3_close(db_);
  }
  void commit() override {
    const int rc = sqlite3_step(update_);
    sqlite3_reset(update_);
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db_));
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* update_ = nullptr;
};

class XactLane final : public Lane {
 public:
  XactLane(DB& db, Oid oid) {
    conn_ = db.open({.manager = &tm_});
    item_ = conn_->get<Item>(oid);
  }
  ~XactLane() override {
    item_.reset();
    conn_.close();
  }
  void commit() override {
    tm_.begin();
    item_->bump();
    tm_.commit();
  }

 private:
  xact::ExplicitTransactionManager tm_;
  ConnectionHandle conn_;
  std::shared_ptr<Item> item_;
};

struct Tally {
  std::uint64_t commits = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(commits) / seconds : 0; }
};

// Runs lanes[0, threads) each on its own thread until the slice ends; adds to `tally`.
void run_slice(std::vector<std::unique_ptr<Lane>>& lanes, int threads, Tally& tally) {
  std::vector<std::thread> pool;
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(threads), 0);
  std::exception_ptr error;
  std::mutex error_mu;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(kSliceSeconds));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        while (Clock::now() < deadline) {
          lanes[static_cast<std::size_t>(t)]->commit();
          ++counts[static_cast<std::size_t>(t)];
        }
      } catch (...) {
        std::lock_guard l(error_mu);
        error = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  tally.seconds += seconds_since(start);
  for (auto c : counts) tally.commits += c;
  if (error) std::rethrow_exception(error);
}

void BM_Interleaved_Commit(benchmark::State& state) {
  constexpr int kLanes = 8;
  const std::string dir = fresh_dir("interleaved");
  // SQLite: one row per lane.
  SqliteFixture sqlite(kLanes);
  // FileStorage: one object per lane.
  CommitFixture xact(kLanes);

  std::map<std::string, std::vector<std::unique_ptr<Lane>>> kinds;
  for (int i = 0; i < kLanes; ++i) {
    const std::string n = std::to_string(i);
    kinds["append"].push_back(std::make_unique<RawLane>(dir + "/append-" + n, false));
    kinds["prealloc"].push_back(std::make_unique<RawLane>(dir + "/prealloc-" + n, true));
    kinds["sqlite"].push_back(std::make_unique<SqliteLane>(sqlite.path, i));
    kinds["xact"].push_back(
        std::make_unique<XactLane>(*xact.db, xact.oids[static_cast<std::size_t>(i)]));
  }
  struct Workload {
    std::string kind;
    int threads;
    Tally tally;
  };
  std::vector<Workload> workloads;
  for (int threads : {1, kLanes}) {
    for (const char* kind : {"append", "prealloc", "sqlite", "xact"}) {
      workloads.push_back({kind, threads, {}});
    }
  }
  std::uint64_t xact8_commits = 0;
  std::uint64_t xact8_syncs = 0;
  const int rounds = interleaved_rounds();
  for (auto _ : state) {
    const auto start = Clock::now();
    try {
      for (int round = 0; round < rounds; ++round) {
        // One thread: the four kinds take turns commit by commit (each commit timed), for as
        // long as four slices.
        const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(4 * kSliceSeconds));
        for (std::size_t turn = static_cast<std::size_t>(round); Clock::now() < deadline; ++turn) {
          Workload& w = workloads[turn % 4];
          const auto t0 = Clock::now();
          kinds[w.kind].front()->commit();
          w.tally.seconds += seconds_since(t0);
          ++w.tally.commits;
        }
        // Eight threads: a slice per kind, in an order rotated each round.
        for (std::size_t k = 0; k < 4; ++k) {
          Workload& w = workloads[4 + (k + static_cast<std::size_t>(round)) % 4];
          const bool count_syncs = w.kind == "xact";
          const auto before = xact.storage->stats();
          run_slice(kinds[w.kind], w.threads, w.tally);
          if (count_syncs) {
            const auto after = xact.storage->stats();
            xact8_commits += after.commits - before.commits;
            xact8_syncs += after.syncs - before.syncs;
          }
        }
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
    state.SetIterationTime(seconds_since(start));
  }
  auto rate = [&](const std::string& kind, int threads) {
    for (const auto& w : workloads) {
      if (w.kind == kind && w.threads == threads) return w.tally.rate();
    }
    return 0.0;
  };
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  for (int threads : {1, kLanes}) {
    const std::string t = std::to_string(threads);
    for (const char* kind : {"append", "prealloc", "sqlite", "xact"}) {
      state.counters[std::string(kind) + t + "/s"] = rate(kind, threads);
    }
    state.counters["xact" + t + "_vs_append"] =
        ratio(rate("xact", threads), rate("append", threads));
    state.counters["xact" + t + "_vs_prealloc"] =
        ratio(rate("xact", threads), rate("prealloc", threads));
    state.counters["xact" + t + "_vs_sqlite"] =
        ratio(rate("xact", threads), rate("sqlite", threads));
  }
  state.counters["xact1_vs_zodb"] = rate("xact", 1) / kZodbFileStorageCommitsPerSecond;
  for (const char* kind : {"append", "prealloc", "sqlite", "xact"}) {
    state.counters[std::string(kind) + "8_vs_1"] = ratio(rate(kind, kLanes), rate(kind, 1));
  }
  if (xact8_syncs > 0) {
    state.counters["xact8_per_sync"] =
        static_cast<double>(xact8_commits) / static_cast<double>(xact8_syncs);
  }
  kinds.clear();
  stdfs::remove_all(dir);
}

// ---- the big file -----------------------------------------------------------------------------

std::string item_record(std::int64_t value) {
  Item item;
  item.set_value(value);
  std::string data;
  encode_header(data, "bench.Item", 1);
  StateWriter out(data);
  item.save(out);
  return data;
}

struct BuiltFile {
  std::string path;
  std::vector<Oid> oids;  // the items (the root, oid 0, is not among them)
  std::uint64_t bytes = 0;
  double build_seconds = 0;
};

// `n` Items in transactions of kBuildBatch, SyncMode::none; closed (so FILE.index is written).
BuiltFile build_file(const std::string& name, std::uint64_t n) {
  BuiltFile f;
  const auto start = Clock::now();
  f.path = fresh_dir(name) + "/data.xfs";
  auto storage = open_storage(f.path, SyncMode::none);
  DB::open(storage).reset();  // creates the root
  f.oids.reserve(n);
  for (std::uint64_t done = 0; done < n;) {
    CommitRequest req;
    const std::uint64_t k = std::min<std::uint64_t>(kBuildBatch, n - done);
    req.writes.reserve(k);
    for (std::uint64_t i = 0; i < k; ++i) {
      const Oid oid = storage->new_oid();
      f.oids.push_back(oid);
      req.writes.push_back(ObjectWrite{oid, kNoTid, item_record(static_cast<std::int64_t>(oid))});
    }
    storage->commit_one_phase(std::move(req));
    done += k;
  }
  storage->close();
  f.bytes = stdfs::file_size(f.path);
  f.build_seconds = seconds_since(start);
  return f;
}

const BuiltFile& big_file() {
  static const BuiltFile f = build_file("big", objects_in_big_file());
  return f;
}
const BuiltFile& small_file() {
  static const BuiltFile f = build_file("small", kSmallObjects);
  return f;
}

// The big file opened read-write (SyncMode::full), shared by the load and commit-cost
// benchmarks; closed by BM_Open, which needs it closed.
std::shared_ptr<FileStorage>& big_storage_slot() {
  static std::shared_ptr<FileStorage> s;
  return s;
}
FileStorage& big_storage() {
  auto& s = big_storage_slot();
  if (!s) s = open_storage(big_file().path, SyncMode::full);
  return *s;
}
void close_big_storage() {
  auto& s = big_storage_slot();
  if (s) s->close();
  s.reset();
}

// Random item oids (a fixed sequence: every load benchmark reads the same ones).
const std::vector<Oid>& random_oids() {
  static const std::vector<Oid> v = [] {
    const auto& oids = big_file().oids;
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::size_t> pick(0, oids.size() - 1);
    std::vector<Oid> out(1u << 20);
    for (auto& o : out) o = oids[pick(rng)];
    return out;
  }();
  return v;
}

void set_load_rate(benchmark::State& state, std::int64_t per_iteration) {
  state.counters["loads/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * per_iteration), benchmark::Counter::kIsRate);
}

// ---- open time --------------------------------------------------------------------------------

void BM_Open(benchmark::State& state) {
  const bool use_index = state.range(0) != 0;
  const std::string& path = big_file().path;
  close_big_storage();
  FileStorageOpenReport report;
  for (auto _ : state) {
    const auto start = Clock::now();
    auto storage = open_storage(path, SyncMode::full, use_index);
    state.SetIterationTime(seconds_since(start));
    report = storage->open_report();
    storage->close();  // untimed; with the index it rewrites FILE.index
  }
  if (use_index && !report.index_used) {
    state.SkipWithError(("the index was not used: " + report.index_problem).c_str());
  }
  state.counters["objects"] = static_cast<double>(report.objects);
  state.counters["scanned_bytes"] = static_cast<double>(report.scanned_bytes);
  state.counters["index_used"] = report.index_used ? 1 : 0;
  state.counters["file_bytes"] = static_cast<double>(stdfs::file_size(path));
  state.counters["build_s"] = big_file().build_seconds;
}

// ---- loads ------------------------------------------------------------------------------------

// The size FileStorage reads per load (entry header + data) in the big file.
std::size_t entry_bytes() { return 32 + item_record(1).size(); }

void BM_Baseline_Pread(benchmark::State& state) {
  const std::string& path = big_file().path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const std::uint64_t size = stdfs::file_size(path);
  const std::size_t len = entry_bytes();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> pick(0, size - len);
  std::vector<std::uint64_t> offsets(1u << 20);
  for (auto& o : offsets) o = pick(rng);
  std::string buffer(len, '\0');
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += static_cast<std::uint64_t>(
        ::pread(fd, buffer.data(), len, static_cast<off_t>(offsets[i++ & (offsets.size() - 1)])));
  }
  benchmark::DoNotOptimize(sum);
  set_load_rate(state, 1);
  ::close(fd);
}

void BM_Baseline_Mmap(benchmark::State& state) {
  const std::string& path = big_file().path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const std::uint64_t size = stdfs::file_size(path);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  const char* base = static_cast<const char*>(map);
  const std::size_t len = entry_bytes();
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> pick(0, size - len);
  std::vector<std::uint64_t> offsets(1u << 20);
  for (auto& o : offsets) o = pick(rng);
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    // What a load returns: a std::string holding a copy of the bytes.
    std::string copy(base + offsets[i++ & (offsets.size() - 1)], len);
    sum += static_cast<unsigned char>(copy[len / 2]);
  }
  benchmark::DoNotOptimize(sum);
  set_load_rate(state, 1);
  ::munmap(map, size);
}

void BM_ColdLoad_Storage(benchmark::State& state) {
  FileStorage& storage = big_storage();
  const auto& oids = random_oids();
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    auto rev = storage.load(oids[i++ & (oids.size() - 1)]);
    sum += rev->data.size();
  }
  benchmark::DoNotOptimize(sum);
  set_load_rate(state, 1);
}

// The same through a second, read-only open with FileStorageOptions::verify_loads off: what
// the per-load checksum costs.
void BM_ColdLoad_StorageNoVerify(benchmark::State& state) {
  big_storage();  // the writer is open, as in BM_ColdLoad_Storage
  FileStorageOptions o;
  o.read_only = true;
  o.verify_loads = false;
  auto storage = FileStorage::open(big_file().path, o);
  const auto& oids = random_oids();
  std::size_t i = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    auto rev = storage->load(oids[i++ & (oids.size() - 1)]);
    sum += rev->data.size();
  }
  benchmark::DoNotOptimize(sum);
  set_load_rate(state, 1);
}

void BM_ColdLoad_Connection(benchmark::State& state) {
  FileStorage& storage = big_storage();
  const auto& oids = random_oids();
  std::shared_ptr<Storage> unowned(std::shared_ptr<Storage>{}, &storage);
  auto db = DB::open(unowned, {.cache_size = 2 * kConnectionBatch});
  xact::ExplicitTransactionManager tm;
  auto conn = db->open({.manager = &tm});
  const auto loads_before = conn->stats().loads;
  std::size_t i = 0;
  std::int64_t sum = 0;
  for (auto _ : state) {
    for (int k = 0; k < kConnectionBatch; ++k) {
      sum += conn->get<Item>(oids[i++ & (oids.size() - 1)])->value();
    }
    state.PauseTiming();
    conn->cache_minimize();
    state.ResumeTiming();
  }
  benchmark::DoNotOptimize(sum);
  const auto loads = conn->stats().loads - loads_before;
  // A repeated oid within a batch is a cache hit: count what was really loaded.
  state.counters["cold_fraction"] =
      static_cast<double>(loads) / static_cast<double>(state.iterations() * kConnectionBatch);
  set_load_rate(state, kConnectionBatch);
  conn.close();
}

// ---- commit cost against the file's size ------------------------------------------------------

struct CommitSide {
  CommitSide(std::shared_ptr<Storage> storage, Oid oid) : db(DB::open(std::move(storage))) {
    conn = db->open({.manager = &tm});
    item = conn->get<Item>(oid);
  }
  void commit() {
    tm.begin();
    item->bump();
    tm.commit();
  }
  ~CommitSide() {
    item.reset();
    conn.close();
  }
  xact::ExplicitTransactionManager tm;
  std::shared_ptr<DB> db;
  ConnectionHandle conn;
  std::shared_ptr<Item> item;
};

void BM_CommitCost(benchmark::State& state) {
  FileStorage& big = big_storage();
  auto small = open_storage(small_file().path, SyncMode::full);
  std::shared_ptr<Storage> big_unowned(std::shared_ptr<Storage>{}, &big);
  const auto& big_oids = big_file().oids;
  const auto& small_oids = small_file().oids;
  CommitSide big_side(big_unowned, big_oids[big_oids.size() / 2]);
  CommitSide small_side(small, small_oids[small_oids.size() / 2]);
  double small_seconds = 0;
  double big_seconds = 0;
  bool small_first = true;
  for (auto _ : state) {
    auto timed = [](CommitSide& side, double& total) {
      const auto start = Clock::now();
      side.commit();
      total += seconds_since(start);
    };
    if (small_first) {
      timed(small_side, small_seconds);
      timed(big_side, big_seconds);
    } else {
      timed(big_side, big_seconds);
      timed(small_side, small_seconds);
    }
    small_first = !small_first;
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["small_us"] = small_seconds / n * 1e6;
  state.counters["big_us"] = big_seconds / n * 1e6;
  state.counters["ratio"] = big_seconds / small_seconds;
  state.counters["big_objects"] = static_cast<double>(big.open_report().objects);
}

// ---- registration -----------------------------------------------------------------------------

void commit_group(int threads) {
  auto common = [threads](benchmark::internal::Benchmark* b) {
    b->Threads(threads)->UseRealTime()->MinTime(1.0);
  };
  common(benchmark::RegisterBenchmark("BM_RawAppendFdatasync", BM_RawAppendFdatasync));
  common(benchmark::RegisterBenchmark("BM_RawPreallocFdatasync", BM_RawPreallocFdatasync));
  common(benchmark::RegisterBenchmark("BM_SqliteUpdate", BM_SqliteUpdate));
  common(benchmark::RegisterBenchmark("BM_FileStorageCommit", BM_FileStorageCommit));
}

void register_benchmarks() {
  commit_group(1);
  commit_group(8);
  benchmark::RegisterBenchmark("BM_ContendedOnePhase", BM_ContendedOnePhase)
      ->Threads(8)
      ->UseRealTime()
      ->MinTime(2.0);
  benchmark::RegisterBenchmark("BM_Interleaved_Commit", BM_Interleaved_Commit)
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kSecond);
  benchmark::RegisterBenchmark("BM_Open", BM_Open)
      ->ArgName("use_index")
      ->Arg(1)
      ->Iterations(5)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_Open", BM_Open)
      ->ArgName("use_index")
      ->Arg(0)
      ->Iterations(3)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
  for (auto* b :
       {benchmark::RegisterBenchmark("BM_Baseline_Pread", BM_Baseline_Pread),
        benchmark::RegisterBenchmark("BM_Baseline_Mmap", BM_Baseline_Mmap),
        benchmark::RegisterBenchmark("BM_ColdLoad_Storage", BM_ColdLoad_Storage),
        benchmark::RegisterBenchmark("BM_ColdLoad_StorageNoVerify", BM_ColdLoad_StorageNoVerify),
        benchmark::RegisterBenchmark("BM_ColdLoad_Connection", BM_ColdLoad_Connection)}) {
    b->UseRealTime()->MinTime(1.0);
  }
  benchmark::RegisterBenchmark("BM_CommitCost", BM_CommitCost)
      ->UseRealTime()
      ->MinTime(2.0)
      ->Unit(benchmark::kMicrosecond);
}

// ---- reporting --------------------------------------------------------------------------------

// A ratio counter: `name` = the run's rate ÷ the rate of `baseline` (a benchmark of this binary
// with `threads` threads; 0 = the run's own thread count), or ÷ `constant` when set.
struct RatioSpec {
  std::string name;
  std::string baseline;
  int threads = 0;
  double constant = 0;
  bool only_multi = false;  // only for runs with more than one thread
  bool only_single = false;
};

std::vector<RatioSpec> ratios_of(std::string_view function) {
  std::vector<RatioSpec> out;
  const bool raw = function == "BM_RawAppendFdatasync" || function == "BM_RawPreallocFdatasync" ||
                   function == "BM_SqliteUpdate";
  if (function == "BM_FileStorageCommit") {
    out.push_back({"vs_append", "BM_RawAppendFdatasync"});
    out.push_back({"vs_prealloc", "BM_RawPreallocFdatasync"});
    out.push_back({"vs_sqlite", "BM_SqliteUpdate"});
    out.push_back({"vs_zodb", "", 0, kZodbFileStorageCommitsPerSecond, false, true});
  }
  if (raw) out.push_back({"vs_append", "BM_RawAppendFdatasync"});
  if (raw || function == "BM_FileStorageCommit") {
    out.push_back({"vs_1", std::string(function), 1, 0, true});
  }
  if (function == "BM_ColdLoad_Storage" || function == "BM_ColdLoad_StorageNoVerify") {
    out.push_back({"vs_pread", "BM_Baseline_Pread"});
    out.push_back({"vs_mmap", "BM_Baseline_Mmap"});
  }
  if (function == "BM_ColdLoad_Connection") out.push_back({"vs_storage", "BM_ColdLoad_Storage"});
  if (function.starts_with("BM_ColdLoad_")) out.push_back({"vs_aim", "", 0, kLoadAim});
  return out;
}

// Adds the ratios of ratios_of() to the runs it forwards to the reporter it wraps, pairing a
// run with its baseline's run of the same repetition (or the same mean/median aggregate).
// A run whose baseline has not been reported yet waits for it, and goes out without that
// ratio at the end of the run if it never comes (--benchmark_filter).
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  explicit RatioReporter(benchmark::BenchmarkReporter* inner) : inner_(inner) {}

  bool ReportContext(const Context& context) override {
    inner_->SetOutputStream(&GetOutputStream());
    inner_->SetErrorStream(&GetErrorStream());
    return inner_->ReportContext(context);
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (!pairable(run)) continue;
      if (auto r = rate(run)) {
        rates_[key(run.run_name.function_name, static_cast<int>(run.threads), run)] = *r;
      }
    }
    pending_.push_back(runs);
    flush(false);
  }

  void Finalize() override {
    flush(true);
    inner_->Finalize();
  }

 private:
  static bool pairable(const Run& run) {
    return !run.error_occurred && (run.run_type == Run::RT_Iteration ||
                                   run.aggregate_name == "mean" || run.aggregate_name == "median");
  }

  static std::optional<double> rate(const Run& run) {
    for (const char* name : {"commits/s", "loads/s"}) {
      auto it = run.counters.find(name);
      if (it != run.counters.end()) return it->second.value;
    }
    return std::nullopt;
  }

  static std::string key(const std::string& function, int threads, const Run& run) {
    return function + "|" + std::to_string(threads) + "|" +
           (run.run_type == Run::RT_Aggregate ? run.aggregate_name
                                              : std::to_string(run.repetition_index));
  }

  static bool applies(const RatioSpec& spec, const Run& run) {
    if (spec.only_multi && run.threads <= 1) return false;
    if (spec.only_single && run.threads != 1) return false;
    return true;
  }

  std::string baseline_key(const RatioSpec& spec, const Run& run) const {
    return key(spec.baseline, spec.threads > 0 ? spec.threads : static_cast<int>(run.threads), run);
  }

  bool ready(const std::vector<Run>& runs) const {
    for (const Run& run : runs) {
      if (!pairable(run)) continue;
      for (const RatioSpec& spec : ratios_of(run.run_name.function_name)) {
        if (spec.constant > 0 || !applies(spec, run)) continue;
        if (!rates_.contains(baseline_key(spec, run))) return false;
      }
    }
    return true;
  }

  void flush(bool force) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (!force && !ready(*it)) {
        ++it;
        continue;
      }
      for (Run& run : *it) {
        if (!pairable(run)) continue;
        const auto r = rate(run);
        if (!r) continue;
        for (const RatioSpec& spec : ratios_of(run.run_name.function_name)) {
          if (!applies(spec, run)) continue;
          double base = spec.constant;
          if (base <= 0) {
            auto found = rates_.find(baseline_key(spec, run));
            if (found == rates_.end()) continue;
            base = found->second;
          }
          if (base > 0) run.counters[spec.name] = benchmark::Counter(*r / base);
        }
      }
      inner_->ReportRuns(*it);
      it = pending_.erase(it);
    }
  }

  benchmark::BenchmarkReporter* inner_;
  std::map<std::string, double> rates_;
  std::list<std::vector<Run>> pending_;
};

}  // namespace

int main(int argc, char** argv) {
  const auto output = xact::bench::output_flags(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  try {
    bench_dir();  // refuses a tmpfs; adds the directory and its file system to the context
    benchmark::AddCustomContext("commit_record_bytes", std::to_string(commit_record_bytes()));
    benchmark::AddCustomContext("big_file_objects", std::to_string(objects_in_big_file()));
    benchmark::AddCustomContext(
        "page_cache",
        "warm: the big file is read right after it was written (cold = in no "
        "object cache, not off the disk)");
    benchmark::AddCustomContext("zodb_filestorage_commits_per_s",
                                "3056 (quoted from the issue, not run)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "file_storage_bench: %s\n", e.what());
    return 1;
  }
  register_benchmarks();

  // On this VM a thread that sleeps in fdatasync on an otherwise idle vCPU is woken at the next
  // timer tick (~4 ms) instead of when the disk answers (~0.1 ms): XACT_BENCH_SPIN=1 keeps one
  // CPU busy meanwhile, as a loaded server would, so one-thread commit rates show the disk.
  std::atomic<bool> stop_spinning{false};
  std::thread spinner;
  if (const char* env = std::getenv("XACT_BENCH_SPIN"); env != nullptr && *env == '1') {
    benchmark::AddCustomContext("spinner", "on: one thread keeps a CPU busy (XACT_BENCH_SPIN=1)");
    spinner = std::thread([&] {
      while (!stop_spinning.load(std::memory_order_relaxed)) {
      }
    });
  }

  xact::bench::run_with_ratios<RatioReporter>(output);
  benchmark::Shutdown();
  stop_spinning = true;
  if (spinner.joinable()) spinner.join();

  close_big_storage();
  return 0;  // own_dir()'s destructor removes the files (unless XACT_BENCH_KEEP=1)
}
