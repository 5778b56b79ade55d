#include <xact/sqlite/sqlite_resource.hpp>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>

#include <xact/crash_point.hpp>
#include <xact/decision_log.hpp>
#include <xact/diagnostics.hpp>
#include <xact/errors.hpp>
#include <xact/sqlite/errors.hpp>
#include <xact/transaction.hpp>

namespace xact::sqlite {

namespace {

bool is_identifier(const std::string& s) {
  return !s.empty() && s.size() <= 64 &&
         (std::isalpha(static_cast<unsigned char>(s[0])) != 0 || s[0] == '_') &&
         std::all_of(s.begin(), s.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_'; });
}

const std::string& checked_savepoint(const std::string& name) {
  if (!is_identifier(name)) {
    throw UsageError("sqlite: refusing to use '" + name + "' as a savepoint name");
  }
  return name;
}

std::string file_name_of(const std::string& path) {
  std::string p = path;
  if (p.rfind("file:", 0) == 0) {
    p = p.substr(5);
    if (const auto q = p.find('?'); q != std::string::npos) p.resize(q);
  }
  if (const auto slash = p.find_last_of('/'); slash != std::string::npos) p = p.substr(slash + 1);
  return p;
}

}  // namespace

// Deletes forgotten markers on a connection of its own with synchronous=NORMAL: a deletion that
// a power loss undoes only keeps a marker longer, so it is not worth an fsync per transaction.
// Deletions are batched (kForgetBatch gtrids per DELETE) so that they take SQLite's write lock
// once per batch rather than once per transaction.
struct SqliteResource::Forgetter {
  std::mutex mutex;
  std::unique_ptr<SqliteConnection> conn;
  std::vector<std::string> pending;  // gtrid hex
};

namespace {
constexpr std::size_t kForgetBatch = 32;
}  // namespace

// The order in which this process's branches take SQLite's write lock (BeginMode::immediate; see
// "The write lock" in the header). SQLite's own busy handler polls with sleeps of up to 100 ms,
// so a waiter often sleeps through the moment the lock is free and others overtake it; here a
// branch waits its turn (first come, first served) and is woken the moment the holder commits or
// rolls back. Holders in other processes are still waited for by SQLite's busy timeout.
struct SqliteResource::WriterGate {
  std::mutex m;
  std::condition_variable cv;
  const void* holder = nullptr;  // the transaction (or the forgetter) holding the lock
  const sql::Connection* holder_conn = nullptr;
  bool holder_running = false;  // still running statements: it may wait for other stores
  std::deque<std::uint64_t> queue;
  std::uint64_t next_ticket = 0;

  // Between waiting and taking the gate: nobody else may take it (a waiter or the forgetter).
  bool free_for(std::uint64_t ticket) const {
    return holder == nullptr && !queue.empty() && queue.front() == ticket;
  }
  void leave(std::uint64_t ticket) {
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      if (*it == ticket) {
        queue.erase(it);
        break;
      }
    }
    cv.notify_all();
  }
  void release(const sql::Connection* conn) {
    {
      std::lock_guard lock(m);
      if (holder_conn != conn || holder == nullptr) return;
      holder = nullptr;
      holder_conn = nullptr;
      holder_running = false;
    }
    cv.notify_all();
  }
};

std::shared_ptr<SqliteResource> SqliteResource::create(SqliteOptions options) {
  if (options.path.empty() || options.path == ":memory:") {
    throw UsageError("SqliteOptions::path must name a database file (got '" + options.path +
                     "'): the last resource's commit must be durable, which an in-memory or "
                     "temporary database is not");
  }
  if (!is_identifier(options.decision_table)) {
    throw UsageError("SqliteOptions::decision_table '" + options.decision_table +
                     "' is not an identifier (letters, digits, _)");
  }
  std::string name = options.name.empty() ? "sqlite:" + file_name_of(options.path) : options.name;
  if (name.size() > Xid::kMaxBqual) {
    throw UsageError("the resource name '" + name + "' is longer than " +
                     std::to_string(Xid::kMaxBqual) + " bytes: give a shorter SqliteOptions::name");
  }
  check_branch_name(name);
  options.name = name;
  if (options.pool.name.empty() || options.pool.name == sql::PoolOptions().name) {
    options.pool.name = name;
  }
  const std::string context = "resource '" + name + "'";

  bool no_decision_table = false;
  if (options.read_only) {
    // Creates nothing: only asks whether the marker table exists.
    OpenOptions first{options.busy_timeout, false, true};
    auto c = SqliteConnection::open(options.path, first, context);
    no_decision_table = c->execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   {options.decision_table})
                            .empty();
  } else {
    // Creates the file if allowed, checks WAL + synchronous=FULL, creates the marker table.
    OpenOptions first{options.busy_timeout, options.create_if_missing};
    auto c = SqliteConnection::open(options.path, first, context);
    c->execute("CREATE TABLE IF NOT EXISTS " + options.decision_table +
               " (gtrid TEXT PRIMARY KEY,"        // the transaction's gtrid, hex
               " node TEXT NOT NULL,"             // the coordinator's node id, hex
               " epoch INTEGER NOT NULL,"         // of the coordinator run that committed
               " committed_us INTEGER NOT NULL,"  // µs since the Unix epoch
               " participants TEXT NOT NULL)"     // the prepared participants, for operators
               " WITHOUT ROWID");
  }

  const std::string path = options.path;
  const OpenOptions later{options.busy_timeout, false, options.read_only};
  auto pool = sql::ConnectionPool::create(
      [path, later, context]() -> std::unique_ptr<sql::Connection> {
        return SqliteConnection::open(path, later, context);
      },
      options.pool);
  std::shared_ptr<SqliteResource> resource(
      new SqliteResource(std::move(name), std::move(options), std::move(pool)));
  resource->no_decision_table_ = no_decision_table;
  return resource;
}

SqliteResource::SqliteResource(std::string name, SqliteOptions options,
                               std::shared_ptr<sql::ConnectionPool> pool)
    : SqlResource(name, std::move(pool)),
      options_(std::move(options)),
      forgetter_(std::make_unique<Forgetter>()),
      gate_(std::make_unique<WriterGate>()) {
  const std::string& t = options_.decision_table;
  insert_marker_ = "INSERT INTO " + t +
                   " (gtrid, node, epoch, committed_us, participants) VALUES (?, ?, ?, ?, ?)";
  select_marker_ = "SELECT 1 FROM " + t + " WHERE gtrid = ?";
  delete_marker_ = "DELETE FROM " + t + " WHERE gtrid = ?";
  before_commit_point_ = name + ".before_commit";
  after_commit_point_ = name + ".after_commit";
}

SqliteResource::~SqliteResource() { flush_forgotten(); }

std::string SqliteResource::context() const { return "resource '" + resource_name() + "'"; }

SqliteConnection& SqliteResource::lite(sql::Connection& conn) const {
  auto* c = dynamic_cast<SqliteConnection*>(&conn);
  if (c == nullptr) {
    throw UsageError(context() + ": a connection of dialect '" + std::string(conn.dialect()) +
                     "' cannot serve an SQLite branch");
  }
  return *c;
}

void SqliteResource::enlist(Transaction& txn, sqlite3* connection) {
  enlist_connection(txn, SqliteConnection::borrow(connection, options_.busy_timeout, context()));
}

void SqliteResource::enlist(Transaction& txn, std::shared_ptr<SqliteConnection> connection) {
  enlist_connection(txn, std::move(connection));
}

std::unique_ptr<SqliteConnection> SqliteResource::open_connection() const {
  return SqliteConnection::open(options_.path,
                                OpenOptions{options_.busy_timeout, false, options_.read_only},
                                context());
}

// ---- the last resource -----------------------------------------------------------------------

void SqliteResource::commit_one_phase(Transaction& txn, const CommitRecord* decision) {
  if (decision == nullptr) {
    SqlResource::commit_one_phase(txn, nullptr);
    return;
  }
  // The decision goes into the branch's own transaction (begun here if the application ran
  // nothing in it), so it commits exactly when the branch does.
  SqliteConnection& c = lite(connection(txn));
  c.check_usable();
  if (!c.in_transaction()) {
    throw TransientError(context() +
                         ": SQLite ended this branch's transaction after an earlier error; "
                         "nothing was committed: retry the transaction");
  }
  std::string participants;
  for (const auto& p : decision->participants) {
    if (!participants.empty()) participants += ",";
    participants += p.resource;
  }
  const Gtrid& g = decision->gtrid;
  c.execute(insert_marker_, {g.to_hex(), g.node().to_hex(), static_cast<std::int64_t>(g.epoch()),
                             decision->time_us, participants});
  SqlResource::commit_one_phase(txn, nullptr);  // COMMIT (commit_branch)
}

DecisionStore::Lookup SqliteResource::lookup_decision(const Gtrid& gtrid) {
  if (no_decision_table_) return Lookup::not_found;  // read-only: no marker was ever stored
  try {
    sql::PooledConnection c = pool()->acquire();
    const sql::Result r = c->execute(select_marker_, {gtrid.to_hex()});
    return r.empty() ? Lookup::not_found : Lookup::committed;
  } catch (...) {
    // A database that cannot be opened or read may hold the decision: recovery waits.
    log(LogLevel::warning, context() + ": cannot read the decision markers (" +
                               error_message(std::current_exception()) +
                               "); recovery waits for them, it never presumes abort");
    return Lookup::unreadable;
  }
}

void SqliteResource::forget_decision(const Gtrid& gtrid) noexcept {
  std::lock_guard lock(forgetter_->mutex);
  try {
    forgetter_->pending.push_back(gtrid.to_hex());
  } catch (...) {
    return;  // out of memory: the marker stays until forget_decisions_before()
  }
  // Called by a committer after its commit: it does not wait for the write lock for the first
  // batches (a busy database would hold up the commit's return, and every committer queued
  // behind this mutex); they wait for a moment when the lock is free. Past four batches it
  // waits its turn, so that markers cannot pile up under constant write traffic.
  const std::size_t n = forgetter_->pending.size();
  if (n >= kForgetBatch) flush_locked(/*wait=*/n >= 4 * kForgetBatch);
}

void SqliteResource::flush_forgotten() noexcept {
  std::lock_guard lock(forgetter_->mutex);
  flush_locked(/*wait=*/true);
}

void SqliteResource::flush_locked(bool wait) noexcept {
  Forgetter& f = *forgetter_;
  if (f.pending.empty()) return;
  // The deletion takes SQLite's write lock like a branch: through the gate, in turn.
  WriterGate& g = *gate_;
  {
    std::unique_lock lock(g.m);
    if (!wait && (g.holder != nullptr || !g.queue.empty())) {
      if (f.pending.size() > 16 * kForgetBatch) f.pending.clear();  // do not grow without bound
      return;
    }
    const std::uint64_t ticket = g.next_ticket++;
    g.queue.push_back(ticket);
    g.cv.wait_for(lock, options_.busy_timeout, [&] { return g.free_for(ticket); });
    g.leave(ticket);
    g.holder = forgetter_.get();
    g.holder_conn = nullptr;
    g.holder_running = false;
  }
  struct Release {
    WriterGate& g;
    const void* me;
    ~Release() {
      {
        std::lock_guard lock(g.m);
        if (g.holder == me) g.holder = nullptr;
      }
      g.cv.notify_all();
    }
  } release{g, forgetter_.get()};
  try {
    if (!f.conn) {
      f.conn = open_connection();
      f.conn->run_protocol("PRAGMA synchronous=NORMAL", sql::Phase::statement);
    }
    sql::Params params;
    std::string in;
    for (const auto& hex : f.pending) {
      params.add(hex);
      in += in.empty() ? "?" : ", ?";
    }
    f.conn->execute("DELETE FROM " + options_.decision_table + " WHERE gtrid IN (" + in + ")",
                    params);
    f.pending.clear();
  } catch (...) {
    f.conn.reset();
    log(LogLevel::warning, context() + ": could not delete " + std::to_string(f.pending.size()) +
                               " decision markers (" + error_message(std::current_exception()) +
                               "); they stay until a later attempt or forget_decisions_before()");
    if (f.pending.size() > 16 * kForgetBatch) f.pending.clear();  // do not grow without bound
  }
}

std::size_t SqliteResource::forget_decisions_before(const NodeId& node, std::uint32_t epoch) {
  sql::PooledConnection c = pool()->acquire();
  const sql::Result r =
      c->execute("DELETE FROM " + options_.decision_table + " WHERE node = ? AND epoch < ?",
                 {node.to_hex(), static_cast<std::int64_t>(epoch)});
  return static_cast<std::size_t>(r.affected_rows());
}

std::vector<Gtrid> SqliteResource::decisions() {
  flush_forgotten();
  sql::PooledConnection c = pool()->acquire();
  std::vector<Gtrid> out;
  for (const auto& row : c->execute("SELECT gtrid FROM " + options_.decision_table)) {
    const std::string hex = row.get<std::string>(0);
    std::string raw;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    if (auto g = Gtrid::from_bytes(raw)) out.push_back(*g);
  }
  return out;
}

// ---- the dialect ------------------------------------------------------------------------------

void SqliteResource::begin_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.clear_poison();
  c.run_protocol(options_.begin == BeginMode::immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED",
                 sql::Phase::statement);
}

void SqliteResource::begin_branch_of(Transaction& txn, sql::Connection& conn, const Xid& xid) {
  if (options_.begin != BeginMode::immediate || !options_.queue_writers) {
    begin_branch(conn, xid);
    return;
  }
  WriterGate& g = *gate_;
  {
    std::unique_lock lock(g.m);
    // This transaction joined other stores before SQLite (count includes this resource): it
    // may hold their row locks, which the holder may be about to ask for.
    const bool holds_others = txn.participant_count() > 1;
    const std::uint64_t ticket = g.next_ticket++;
    g.queue.push_back(ticket);
    const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
    for (;;) {
      if (g.free_for(ticket)) break;
      if (holds_others && g.holder != nullptr && g.holder_running && g.holder != &txn) {
        g.leave(ticket);
        throw ConflictError(
            context() +
            ": SQLite's write lock is held by another transaction of this process that is still "
            "running statements, and this transaction already joined other stores: waiting could "
            "deadlock across stores (the holder may be waiting for this transaction's row "
            "locks, which no database sees), so it gives way at once; retry it. Issuing the "
            "SQLite statements first in every transaction avoids the conflict");
      }
      if (g.cv.wait_until(lock, deadline) == std::cv_status::timeout) {
        // The holder has not let go within the busy timeout (or went away without saying so):
        // SQLite itself decides below.
        break;
      }
    }
    g.leave(ticket);
    g.holder = &txn;
    g.holder_conn = &conn;
    g.holder_running = true;
  }
  try {
    begin_branch(conn, xid);
  } catch (...) {
    g.release(&conn);
    throw;
  }
}

void SqliteResource::commit(Transaction& txn) {
  SqlResource::commit(txn);
  // The statements are done: from here the holder only commits, it waits for no other store's
  // row lock, so a transaction that holds such locks may wait for SQLite's.
  std::lock_guard lock(gate_->m);
  if (gate_->holder == &txn) gate_->holder_running = false;
}

void SqliteResource::prepare_branch(sql::Connection&, const Xid&) {
  throw UsageError(context() + ": SQLite cannot prepare: it takes part only as the last resource");
}

void SqliteResource::commit_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.check_usable();
  if (!c.in_transaction()) {
    throw TransientError(context() +
                         ": SQLite ended this branch's transaction after an earlier error; "
                         "nothing was committed: retry the transaction");
  }
  XACT_CRASH_POINT(before_commit_point_);
  try {
    c.run_protocol("COMMIT", sql::Phase::statement);
  } catch (...) {
    // Still open (SQLITE_BUSY): it did not commit, and the caller rolls it back. Ended: SQLite
    // gave up in the middle of the commit, which may or may not be on disk.
    if (c.in_transaction()) throw;
    gate_->release(&conn);
    std::rethrow_exception(sqlite::map_error(c.last_error_code(), c.last_error_message(),
                                             sql::Phase::commit_one_phase, context()));
  }
  gate_->release(&conn);
  XACT_CRASH_POINT(after_commit_point_);
}

void SqliteResource::rollback_branch(sql::Connection& conn, const Xid&) {
  SqliteConnection& c = lite(conn);
  c.clear_poison();
  struct Release {
    WriterGate& g;
    const sql::Connection* conn;
    ~Release() { g.release(conn); }
  } release{*gate_, &conn};
  if (c.in_transaction()) c.run_protocol("ROLLBACK", sql::Phase::rollback);
}

void SqliteResource::commit_prepared_branch(sql::Connection&, const Xid& xid) {
  throw sql::UnknownIdError(context() + ": SQLite holds no prepared branch (" + xid.to_gid() + ")");
}

void SqliteResource::rollback_prepared_branch(sql::Connection&, const Xid& xid) {
  throw sql::UnknownIdError(context() + ": SQLite holds no prepared branch (" + xid.to_gid() + ")");
}

std::vector<Xid> SqliteResource::prepared_branches(sql::Connection&) { return {}; }

void SqliteResource::set_savepoint(sql::Connection& conn, const std::string& name) {
  SqliteConnection& c = lite(conn);
  c.check_usable();
  c.run_protocol("SAVEPOINT " + checked_savepoint(name), sql::Phase::statement);
}

void SqliteResource::rollback_to_savepoint(sql::Connection& conn, const std::string& name) {
  lite(conn).run_protocol("ROLLBACK TO SAVEPOINT " + checked_savepoint(name),
                          sql::Phase::statement);
}

std::exception_ptr SqliteResource::map_error(const std::exception_ptr& error,
                                             sql::Phase) const noexcept {
  // The connection maps every SQLite result code where it happens (sqlite::map_error, which
  // needs the code and message): what reaches here is already xact's.
  return error;
}

}  // namespace xact::sqlite
